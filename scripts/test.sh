#!/usr/bin/env bash
# The whole test suite, from a fresh clone: Rust unit, service, integration and golden tests, then
# the interop suite where independent JWT/OIDC libraries (PyJWT, joserfc, authlib) verify tokens
# against a running `issuerd serve`. Installs the Python libraries into $CARGO_TARGET_DIR (default
# target)/interop-venv, and tests the binary cargo built there.
set -euo pipefail
cd "$(dirname "$0")/.."

# The programs the tests drive (pebble, promtool, node, go, curl, ...), installed when missing.
scripts/test-deps.sh

target_dir=${CARGO_TARGET_DIR:-target}
venv=$target_dir/interop-venv
if [ ! -x "$venv/bin/pytest" ] || [ tests/interop/requirements.txt -nt "$venv/bin/pytest" ]; then
  mkdir -p "$target_dir"
  python3 -m venv "$venv" || { echo "error: python3 -m venv failed (install python3-venv)" >&2; exit 1; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
  touch "$venv/bin/pytest"
fi

# The HTTPS interop verifiers outside Python (tests/interop/test_https.py): Node's openid-client +
# jose, installed from tests/interop/node/package-lock.json into node_modules there (git-ignored),
# and Go's go-oidc, built offline in GOPATH mode against Debian's packaged sources.
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "error: node and npm not found; the interop suite needs them (apt-get install nodejs npm)" >&2; exit 1; }
command -v go >/dev/null && [ -f /usr/share/gocode/src/github.com/coreos/go-oidc/oidc.go ] ||
  { echo "error: go or go-oidc not found (apt-get install golang-go golang-github-coreos-go-oidc-dev)" >&2; exit 1; }
node_dir=tests/interop/node
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] ||
   [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) ||
    { echo "error: npm ci failed in $node_dir" >&2; exit 1; }
fi

echo "== cargo test"
cargo test --all-targets
cargo test --doc

# The differential stress target (the same generator as tests/it/differential.rs, unshrunk, on a
# clock) for a short, bounded run; run it for minutes locally with ISSUERD_DIFF_MINUTES=10.
echo "== differential stress (${ISSUERD_DIFF_MINUTES:=0.25} min)"
ISSUERD_DIFF_MINUTES=$ISSUERD_DIFF_MINUTES cargo test --test it -- --ignored --exact differential::stress

echo "== interop (PyJWT, joserfc, authlib against a running issuerd; boto3 against issuerd sts; PyJWT, joserfc, openid-client, go-oidc over HTTPS)"
cargo build --quiet --bin issuerd
bin=$(cd "$target_dir" && pwd)/debug/issuerd
[ -x "$bin" ] || { echo "error: $bin was not built" >&2; exit 1; }
ISSUERD_BIN="$bin" "$venv/bin/pytest" -q -p no:cacheprovider tests/interop
