#!/usr/bin/env bash
# A/B benchmark of two issuerd binaries in one run: same keys, same client, rounds interleaved
# (order alternating), medians and after/before ratios. For any change to the request path:
# build the parent commit and the change, then
#
#   bash benches/load/ab.sh BEFORE_BIN AFTER_BIN > ab.md
#
# Environment: ROUNDS=5 DURATION=5 CONNS=128 CLOSE_CONNS=32 H2_CONNS=32 H2_STREAMS=10 THREADS=2
#              BASE_PORT=19080 INSTALL=1 (apt-get install wrk / nghttp2-client when missing)
#              BEFORE_ARGS / AFTER_ARGS: extra `serve` arguments (word-split) for one side, to
#              compare one binary with itself under another setting, e.g. a mirror that retries:
#   AFTER_ARGS="--mirror s3://b/p --s3-endpoint http://127.0.0.1:9" bash benches/load/ab.sh BIN BIN
# Prints a Markdown table on stdout, progress on stderr. Loopback only; every run is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."

[[ $# == 2 ]] || { echo "usage: $0 BEFORE_BIN AFTER_BIN" >&2; exit 2; }
declare -A BIN=([before]=$(realpath "$1") [after]=$(realpath "$2"))
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-128}
CLOSE_CONNS=${CLOSE_CONNS:-32}
H2_CONNS=${H2_CONNS:-32}
H2_STREAMS=${H2_STREAMS:-10}
THREADS=${THREADS:-2}
BASE_PORT=${BASE_PORT:-19080}
INSTALL=${INSTALL:-1}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in wrk h2load; do
  if ! command -v "$tool" >/dev/null; then
    [[ $INSTALL == 1 ]] || die "missing $tool"
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk nghttp2-client >/dev/null
  fi
done
for v in before after; do [[ -x ${BIN[$v]} ]] || die "${BIN[$v]} is not executable"; done

TMP=$(mktemp -d)
declare -A PID PORT=([before]=$BASE_PORT [after]=$((BASE_PORT + 1)))
cleanup() {
  for v in before after; do [[ -n ${PID[$v]:-} ]] && kill "${PID[$v]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

KEYS=(--key-file tests/fixtures/keys/rsa2048.pub.pem --key-file tests/fixtures/keys/ec256.pub.pem)
declare -A EXTRA=([before]=${BEFORE_ARGS:-} [after]=${AFTER_ARGS:-})
for v in before after; do
  url=http://127.0.0.1:${PORT[$v]}
  # shellcheck disable=SC2086 # EXTRA is meant to be word-split
  "${BIN[$v]}" serve --issuer "$url" --allow-insecure-issuer "${KEYS[@]}" \
    --listen "127.0.0.1:${PORT[$v]}" ${EXTRA[$v]} >"$TMP/$v.out" 2>"$TMP/$v.log" &
  PID[$v]=$!
  for _ in $(seq 100); do curl -sf "$url/readyz" >/dev/null && break; sleep 0.05; done
  curl -sf "$url/readyz" >/dev/null || die "$v did not become ready: $(tail -3 "$TMP/$v.log")"
done
cmp -s <(curl -s "http://127.0.0.1:${PORT[before]}/openid/v1/jwks" | sed "s/${PORT[before]}/P/g") \
       <(curl -s "http://127.0.0.1:${PORT[after]}/openid/v1/jwks" | sed "s/${PORT[after]}/P/g") ||
  die "the two binaries serve different JWKS"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# run SCENARIO VARIANT -> "req/s µs/req" on stdout
run() {
  local scenario=$1 v=$2 url=http://127.0.0.1:${PORT[$2]} out=$TMP/run.txt t0 t1 rps n
  t0=$(ticks "${PID[$v]}")
  case $scenario in
    keep-alive-jwks) wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" "$url/openid/v1/jwks" >"$out" ;;
    keep-alive-discovery) wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" "$url/.well-known/openid-configuration" >"$out" ;;
    new-connection-jwks) wrk -t "$THREADS" -c "$CLOSE_CONNS" -d "${DURATION}s" -H 'Connection: close' "$url/openid/v1/jwks" >"$out" ;;
    h2c-jwks) h2load -t "$THREADS" -c "$H2_CONNS" -m "$H2_STREAMS" -D "$DURATION" "$url/openid/v1/jwks" >"$out" ;;
  esac
  t1=$(ticks "${PID[$v]}")
  if [[ $scenario == h2c-* ]]; then
    n=$(awk '/^requests:/{print $8}' "$out")
    rps=$(awk '/^finished in/{gsub(",", ""); print $4}' "$out")
  else
    n=$(awk '/requests in/{print $1}' "$out")
    rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
    grep -q 'Non-2xx\|Socket errors' "$out" && log "  note: $(grep 'Non-2xx\|Socket errors' "$out" | tr -s ' ')"
  fi
  awk -v r="$rps" -v n="$n" -v d="$((t1 - t0))" -v hz="$HZ" \
    'BEGIN { printf "%.0f %.2f\n", r, (n > 0 ? d * 1e6 / hz / n : 0) }'
}

SCENARIOS=(keep-alive-jwks keep-alive-discovery new-connection-jwks h2c-jwks)
RESULTS=$TMP/results.tsv
for ((round = 1; round <= ROUNDS; round++)); do
  order=(before after); ((round % 2 == 0)) && order=(after before)
  for scenario in "${SCENARIOS[@]}"; do
    for v in "${order[@]}"; do
      read -r rps us < <(run "$scenario" "$v")
      log "round $round $scenario $v: $rps req/s, $us µs/req"
      printf '%s\t%s\t%s\t%s\n' "$scenario" "$v" "$rps" "$us" >>"$RESULTS"
    done
  done
done
for v in before after; do kill -0 "${PID[$v]}" || die "$v died during the runs"; done

median() { sort -g | awk '{a[NR] = $1} END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }
echo "| scenario | before req/s | after req/s | after/before | before µs/req | after µs/req | after/before CPU |"
echo "|---|--:|--:|--:|--:|--:|--:|"
for scenario in "${SCENARIOS[@]}"; do
  declare -A R U
  for v in before after; do
    R[$v]=$(awk -F'\t' -v s="$scenario" -v v="$v" '$1 == s && $2 == v {print $3}' "$RESULTS" | median)
    U[$v]=$(awk -F'\t' -v s="$scenario" -v v="$v" '$1 == s && $2 == v {print $4}' "$RESULTS" | median)
  done
  awk -v s="$scenario" -v rb="${R[before]}" -v ra="${R[after]}" -v ub="${U[before]}" -v ua="${U[after]}" \
    'BEGIN { printf "| %s | %.0f | %.0f | %.2f× | %.2f | %.2f | %.2f× |\n", s, rb, ra, ra / rb, ub, ua, ua / ub }'
done
echo
echo "Medians of $ROUNDS interleaved rounds × ${DURATION} s; wrk -t $THREADS -c $CONNS (keep-alive), -c $CLOSE_CONNS (new connection); h2load -c $H2_CONNS -m $H2_STREAMS; CPU = Δ(utime+stime) of the server ÷ requests."
