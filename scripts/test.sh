#!/usr/bin/env bash
# The whole test suite, from a fresh clone: Rust unit, service, integration and golden tests, then
# the interop suite where independent JWT/OIDC libraries (PyJWT, joserfc, authlib) verify tokens
# against a running `issuerd serve`. Installs the Python libraries into target/interop-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/interop-venv
if [ ! -x "$venv/bin/pytest" ] || [ tests/interop/requirements.txt -nt "$venv/bin/pytest" ]; then
  mkdir -p target
  python3 -m venv "$venv" || { echo "error: python3 -m venv failed (install python3-venv)" >&2; exit 1; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
  touch "$venv/bin/pytest"
fi

echo "== cargo test"
cargo test --all-targets
cargo test --doc

echo "== interop (PyJWT, joserfc, authlib against a running issuerd; boto3 against issuerd sts)"
cargo build --quiet --bin issuerd
ISSUERD_BIN="$PWD/target/debug/issuerd" "$venv/bin/pytest" -q -p no:cacheprovider tests/interop
