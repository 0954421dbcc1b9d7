#!/usr/bin/env bash
# The whole test suite, from a fresh clone: Rust unit, service, integration and golden tests, then
# the interop suite where independent JWT/OIDC libraries (PyJWT, joserfc, authlib) verify tokens
# against a running `issuerd serve`. Installs the Python libraries into $CARGO_TARGET_DIR (default
# target)/interop-venv, and tests the binary cargo built there.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
venv=$target_dir/interop-venv
if [ ! -x "$venv/bin/pytest" ] || [ tests/interop/requirements.txt -nt "$venv/bin/pytest" ]; then
  mkdir -p "$target_dir"
  python3 -m venv "$venv" || { echo "error: python3 -m venv failed (install python3-venv)" >&2; exit 1; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
  touch "$venv/bin/pytest"
fi

echo "== cargo test"
cargo test --all-targets
cargo test --doc

# The differential stress target (the same generator as tests/differential.rs, unshrunk, on a
# clock) for a short, bounded run; run it for minutes locally with ISSUERD_DIFF_MINUTES=10.
echo "== differential stress (${ISSUERD_DIFF_MINUTES:=0.25} min)"
ISSUERD_DIFF_MINUTES=$ISSUERD_DIFF_MINUTES cargo test --test differential -- --ignored stress

echo "== interop (PyJWT, joserfc, authlib against a running issuerd; boto3 against issuerd sts)"
cargo build --quiet --bin issuerd
bin=$(cd "$target_dir" && pwd)/debug/issuerd
[ -x "$bin" ] || { echo "error: $bin was not built" >&2; exit 1; }
ISSUERD_BIN="$bin" "$venv/bin/pytest" -q -p no:cacheprovider tests/interop
