#!/usr/bin/env bash
# Instructions per request of one or more issuerd binaries, counted by valgrind (callgrind):
# unlike req/s and CPU time, the count repeats exactly whatever else the machine is doing, so a
# change to the request path can be compared before/after on a noisy machine.
#
#   bash benches/load/instructions.sh BIN [BIN...]      # REQUESTS=20000 CONNS=4
#
# Each binary serves the fixture keys twice under callgrind: once with no request and once with
# REQUESTS keep-alive GETs (JWKS and discovery alternating, CONNS connections); the difference
# divided by REQUESTS is printed, with the new-connection and h2c (h2load, 10 streams per
# connection) figures. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ $# -ge 1 ]] || { echo "usage: $0 BIN [BIN...]" >&2; exit 2; }
REQUESTS=${REQUESTS:-20000}
CONNS=${CONNS:-4}
PORT=${PORT:-19180}
command -v valgrind >/dev/null && command -v h2load >/dev/null ||
  { apt-get update -qq >/dev/null && apt-get install -y -qq valgrind nghttp2-client >/dev/null; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# total instructions of one server run serving `mode` with `n` requests
count() { # bin mode n
  local bin=$1 mode=$2 n=$3 out=$TMP/cg.out pid
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve \
    --issuer "http://127.0.0.1:$PORT" --allow-insecure-issuer --listen "127.0.0.1:$PORT" \
    --key-file tests/fixtures/keys/rsa2048.pub.pem --key-file tests/fixtures/keys/ec256.pub.pem \
    >/dev/null 2>"$TMP/log" &
  pid=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
  if [[ $mode != new-connection ]]; then
    local flags=(--h1 -m 1)
    [[ $mode == h2c ]] && flags=(-m 10)
    if ((n > 0)); then
      h2load "${flags[@]}" -n "$n" -c "$CONNS" "http://127.0.0.1:$PORT/openid/v1/jwks" >"$TMP/h2load" ||
        { cat "$TMP/h2load" >&2; exit 1; }
      grep -q "succeeded, 0 failed, 0 errored" "$TMP/h2load" || { grep requests: "$TMP/h2load" >&2; exit 1; }
    fi
  else
  python3 - "$PORT" "$mode" "$n" "$CONNS" <<'EOF'
import http.client, socket, sys, threading
port, mode, n, conns = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
paths = ["/openid/v1/jwks", "/.well-known/openid-configuration"]
def new_connection(count):
    for i in range(count):
        c = http.client.HTTPConnection("127.0.0.1", port)
        c.request("GET", paths[i % 2], headers={"Connection": "close"}); r = c.getresponse(); r.read()
        assert r.status == 200, r.status
        c.close()
run = {"new-connection": new_connection}[mode]
if n:
    per = n // conns
    ts = [threading.Thread(target=run, args=(per,)) for _ in range(conns)]
    [t.start() for t in ts]; [t.join() for t in ts]
EOF
  fi
  kill -TERM "$pid"; wait "$pid" || true
  awk '/^(summary|totals):/{print $2; exit}' "$out"
}

printf '| binary | keep-alive instr/req | new connection instr/req | h2c instr/req |\n|---|--:|--:|--:|\n'
for bin in "$@"; do
  row="| $(basename "$bin")"
  for mode in keep-alive new-connection h2c; do
    n=$REQUESTS; [[ $mode == new-connection ]] && n=$((REQUESTS / 4))
    base=$(count "$bin" "$mode" 0)
    loaded=$(count "$bin" "$mode" "$n")
    row+=" | $(( (loaded - base) / (n / CONNS * CONNS) ))"
  done
  echo "$row |"
done
echo
echo "valgrind callgrind, server instructions only; REQUESTS=$REQUESTS over CONNS=$CONNS connections (new connection: a quarter as many), minus a run with none."
