#!/usr/bin/env bash
# Installs (Debian/apt) the programs the test suite drives, when missing; called by scripts/test.sh,
# so the README's one test command works on a fresh machine. Every test fails loudly, never skips,
# without what it needs.
#
#   python3-venv          the interop venv (PyJWT, joserfc, authlib, boto3, moto, kubernetes-validate)
#   curl, openssl         the HTTPS tests' real clients (tests/it/tls.rs), thumbprint cross-checks
#   nodejs, npm           openid-client + jose over HTTPS (tests/interop/node)
#   golang-go, go-oidc    go-oidc v2 over HTTPS, built offline against Debian's Go sources
#   pebble                Let's Encrypt's test ACME server and its DNS (tests/it/acme.rs)
#   iproute2              `ss`, to read a listener's backlog (tests/it/limits.rs)
#   prometheus            promtool: every /metrics scrape and the alert rules (tests/it/metrics.rs)
#   systemd               systemd-analyze verify/security of deploy/systemd (test_deploy.py)
#   nghttp2-client        h2load: nghttp2's HTTP/2 client against the engine (test_h2.py)
set -euo pipefail

missing=()
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
{ command -v node >/dev/null && command -v npm >/dev/null; } || missing+=(nodejs npm)
command -v go >/dev/null || missing+=(golang-go)
[ -f /usr/share/gocode/src/github.com/coreos/go-oidc/oidc.go ] || missing+=(golang-github-coreos-go-oidc-dev)
{ command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null; } || missing+=(pebble)
command -v ss >/dev/null || missing+=(iproute2)
command -v promtool >/dev/null || missing+=(prometheus)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v h2load >/dev/null || missing+=(nghttp2-client)

[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "error: the tests need these Debian packages, or the same tools from your system's packages:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  echo "(no apt-get here; install them and rerun scripts/test.sh)" >&2
  exit 1
fi
echo "== installing test tools: ${missing[*]} (apt-get install)"
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# Installing a package must start no service: prometheus's would listen on :9090, issuerd's
# documented admin port. invoke-rc.d asks /usr/sbin/policy-rc.d first; 101 means "not allowed".
# An existing policy is kept and restored.
policy=/usr/sbin/policy-rc.d
saved=
if [ -e "$policy" ]; then saved=$(mktemp); "${sudo[@]}" cp -p "$policy" "$saved"; fi
restore_policy() {
  if [ -n "$saved" ]; then "${sudo[@]}" cp -p "$saved" "$policy"; rm -f "$saved"
  else "${sudo[@]}" rm -f "$policy"; fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
"${sudo[@]}" chmod 755 "$policy"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
  { echo "error: cannot install ${missing[*]} (apt-get); install them and rerun" >&2; exit 1; }
