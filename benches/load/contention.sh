#!/usr/bin/env bash
# Keep-alive throughput on an oversubscribed box (issue 22): issuerd and nginx serve the same JWKS
# while N CPU-bound neighbours (a Python busy loop each) compete for the cores, in one run.
# Per (neighbours, server): req/s (wrk -t1 -c128, keep-alive), the CPU the server obtained (cores,
# from /proc utime+stime), CPU per request, context switches per request (voluntary /
# involuntary, all threads), and run-queue wait per request (/proc/<pid>/task/*/schedstat: time
# runnable but not running), the figures that say whether a server loses its place in the queue,
# and the cores wrk itself obtained (with N busy neighbours the client competes for the cores too,
# and in a closed loop it can be what limits the rate).
#
# issuerd runs once per --workers mode in WORKERS (default "shared auto": tokio's multi-thread
# runtime, then one worker thread per core on its own SO_REUSEPORT socket), and once more as
# BEFORE_BIN when given (an older binary, default flags). With QUOTA=CORES (e.g. QUOTA=1), each
# server runs in a cgroup with that CPU quota (cpu.max on cgroup v2, cpu.cfs_quota_us on v1: what
# a Kubernetes CPU limit sets) and the neighbours outside it; root and a writable cpu controller
# are needed.
#
#   bash benches/load/contention.sh                  # NEIGHBOURS="0 2 6" DURATION=10 ROUNDS=3
#   ISSUERD_BIN=path NEIGHBOURS="0 6" bash benches/load/contention.sh
#   BEFORE_BIN=old-issuerd QUOTA=1 bash benches/load/contention.sh
#   CLIENT_NICE=-10 bash benches/load/contention.sh  # wrk favoured (root): the servers, not the
#                                                    # client, limit the rate beside neighbours
set -euo pipefail
cd "$(dirname "$0")/../.."
NEIGHBOURS=${NEIGHBOURS:-0 2 6}
DURATION=${DURATION:-10}
CONNS=${CONNS:-128}
PORT=${PORT:-18380}
WORKERS=${WORKERS:-shared auto}
CLIENT_NICE=${CLIENT_NICE:-0}
ROUNDS=${ROUNDS:-3}
if ((CLIENT_NICE < 0)) && [[ $(id -u) != 0 ]]; then
  echo "error: CLIENT_NICE=$CLIENT_NICE needs root (nice would run wrk unfavoured)" >&2; exit 1
fi
QUOTA=${QUOTA:-}
for tool in nginx wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed (apt-get install nginx wrk python3 curl)" >&2; exit 1; }
done
if [[ -z ${ISSUERD_BIN:-} ]]; then
  cargo build --release --quiet --bin issuerd
  ISSUERD_BIN=${CARGO_TARGET_DIR:-target}/release/issuerd
fi
TMP=$(mktemp -d)
pids=()
cgroup=
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"
  if [[ -n $cgroup ]]; then rmdir "$cgroup" 2>/dev/null || true; fi
}
trap cleanup EXIT

# The quota's cgroup: v2 (cpu.max) or v1 (cpu.cfs_quota_us), made for this run.
in_quota=()
if [[ -n $QUOTA ]]; then
  period=100000
  quota=$(awk -v q="$QUOTA" -v p=$period 'BEGIN { printf "%d", q * p }')
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    cgroup=/sys/fs/cgroup/issuerd-contention-$$
    mkdir "$cgroup" && echo "$quota $period" >"$cgroup/cpu.max"
  elif [[ -d /sys/fs/cgroup/cpu ]]; then
    cgroup=/sys/fs/cgroup/cpu/issuerd-contention-$$
    mkdir "$cgroup" && echo $period >"$cgroup/cpu.cfs_period_us" && echo "$quota" >"$cgroup/cpu.cfs_quota_us"
  else
    echo "error: QUOTA needs a cgroup cpu controller (cgroup v2 cpu.max or v1 cpu)" >&2; exit 1
  fi
  # Runs the command inside the cgroup: the shell moves itself in, then execs.
  in_quota=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cgroup")
fi

issuer=http://127.0.0.1:$PORT
keys=(--key-file tests/fixtures/keys/rsa2048.pub.pem --key-file tests/fixtures/keys/ec256.pub.pem)
"$ISSUERD_BIN" render --issuer "$issuer" --allow-insecure-issuer "${keys[@]}" --out "$TMP/root" >/dev/null 2>"$TMP/render.log" ||
  { cat "$TMP/render.log" >&2; exit 1; }
mkdir -p "$TMP/nginx/tmp"
nginx_conf() { # workers -> config path
  cat >"$TMP/nginx/$1.conf" <<CONF
user root;
worker_processes $1;
pid $TMP/nginx/$1.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off; server_tokens off; sendfile on; tcp_nodelay on;
    keepalive_requests 1000000; open_file_cache max=16 inactive=600s; etag on;
    client_body_temp_path $TMP/nginx/tmp/body; proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi; uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT reuseport;
        root $TMP/root;
        location = /openid/v1/jwks {
            default_type application/jwk-set+json;
            add_header Cache-Control "public, max-age=3600";
            add_header Access-Control-Allow-Origin "*";
        }
        location / { return 404; }
    }
}
CONF
  echo "$TMP/nginx/$1.conf"
}

# Summed over the server's processes and all their threads: CPU ticks, voluntary and involuntary
# context switches, run-queue wait (ns).
sample() { # pids... -> "ticks vol invol wait_ns"
  local ticks=0 vol=0 invol=0 wait=0 pid task
  for pid in "$@"; do
    ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    for task in /proc/"$pid"/task/*; do
      vol=$((vol + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$task/status")))
      invol=$((invol + $(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "$task/status")))
      wait=$((wait + $(awk '{print $2}' "$task/schedstat")))
    done
  done
  echo "$ticks $vol $invol $wait"
}

# One measured run of the server whose pids are given: appends a row of raw figures to rows.tsv.
run() { # label pids...
  local label=$1; shift
  local ok=0
  for _ in $(seq 100); do curl -sf "$issuer/openid/v1/jwks" >/dev/null && { ok=1; break; }; sleep 0.05; done
  if ((ok == 0)) || ! kill -0 "$1" 2>/dev/null; then
    echo "error: $label never answered on $issuer (its log: $TMP/server.log)" >&2
    cat "$TMP/server.log" >&2 2>/dev/null || true
    exit 1
  fi
  wrk -t1 -c"$CONNS" -d1s "$issuer/openid/v1/jwks" >/dev/null # warm-up
  local before after requests wrk_cpu
  read -r -a before < <(sample "$@")
  # wrk's own CPU (user + system seconds, bash's `time`, on a line of its own): whether the
  # client was what limited the rate.
  local TIMEFORMAT=$'\nwrk-cpu %U %S'
  { time nice -n "$CLIENT_NICE" wrk -t1 -c"$CONNS" -d"${DURATION}s" "$issuer/openid/v1/jwks" >"$TMP/wrk.out" ; } 2>"$TMP/wrk.time"
  read -r -a after < <(sample "$@")
  if ((${#before[@]} != 4 || ${#after[@]} != 4)); then
    echo "error: cannot read /proc figures of $label ($*)" >&2; exit 1
  fi
  wrk_cpu=$(awk '$1 == "wrk-cpu" {print $2 + $3}' "$TMP/wrk.time")
  requests=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
  [[ -n $wrk_cpu && -n $requests ]] || { echo "error: wrk said:" >&2; cat "$TMP/wrk.out" "$TMP/wrk.time" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$requests" $((after[0] - before[0])) \
    $((after[1] - before[1])) $((after[2] - before[2])) $((after[3] - before[3])) "$wrk_cpu" >>"$TMP/rows.tsv"
}

measure() { # variant -> one run
  local bin mode label server master
  IFS='|' read -r bin mode label <<<"$1"
  if [[ $bin == nginx ]]; then
    ${in_quota[@]+"${in_quota[@]}"} nginx -p "$TMP/nginx" -c "$(nginx_conf "$mode")" -g 'daemon off;' 2>"$TMP/server.log" &
    master=$!; pids+=("$master")
    sleep 0.3
    run "$n, $label" "$master" $(pgrep -P "$master")
    kill "$master"; wait "$master" 2>/dev/null || true
  else
    "$bin" serve --help >/dev/null # a binary that cannot run fails here, not as a silent row
    ${in_quota[@]+"${in_quota[@]}"} "$bin" serve --issuer "$issuer" --allow-insecure-issuer \
      --listen "127.0.0.1:$PORT" "${keys[@]}" ${mode:+"$mode"} 2>"$TMP/server.log" &
    server=$!; pids+=("$server")
    run "$n, $label" "$server"
    kill "$server"; wait "$server" 2>/dev/null || true
  fi
}

variants=()
for mode in $WORKERS; do variants+=("$ISSUERD_BIN|--workers=$mode|issuerd ($mode)"); done
if [[ -n ${BEFORE_BIN:-} ]]; then variants+=("$BEFORE_BIN||issuerd (before)"); fi
variants+=("nginx|1|nginx (1)" "nginx|auto|nginx (auto)")
: >"$TMP/rows.tsv"
for n in $NEIGHBOURS; do
  busy=()
  for _ in $(seq "$n"); do python3 -c 'while True: pass' & busy+=($!); done
  pids+=("${busy[@]}")
  # Each round starts one variant later, so no variant always runs first or last.
  for round in $(seq "$ROUNDS"); do
    count=${#variants[@]}
    for i in $(seq 0 $((count - 1))); do
      measure "${variants[$(( (i + round - 1) % count ))]}"
    done
  done
  if ((n > 0)); then kill "${busy[@]}"; wait "${busy[@]}" 2>/dev/null || true; fi
done

# Medians over the rounds, per (neighbours, server), in the order first measured.
python3 - "$TMP/rows.tsv" "$DURATION" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
path, duration, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows = {}
for line in open(path):
    label, n, ticks, vol, invol, wait, wrk = line.rstrip("\n").split("\t")
    n = float(n)
    rows.setdefault(label, []).append((
        n / duration, float(ticks) / hz / duration, float(ticks) / hz / n * 1e6,
        float(vol) / n, float(invol) / n, float(wait) / n / 1000, float(wrk) / duration))
print("| neighbours, server | req/s | cores obtained | CPU µs/req | voluntary cs/req | involuntary cs/req | run-queue wait µs/req | wrk's cores | req/s of each round |")
print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
def order(label):
    return (int(label.split(",")[0]), list(rows).index(label))
for label in sorted(rows, key=order):
    runs = rows[label]
    med = [statistics.median(column) for column in zip(*runs)]
    each = ", ".join(f"{r[0]:.0f}" for r in runs)
    print(f"| {label} | {med[0]:.0f} | {med[1]:.2f} | {med[2]:.1f} | {med[3]:.3f} | {med[4]:.3f} | {med[5]:.1f} | {med[6]:.2f} | {each} |")
PY
echo
echo "Medians of $ROUNDS round(s), variants rotated each round; wrk -t1 -c$CONNS keep-alive GETs of the JWKS for ${DURATION}s per run (nice $CLIENT_NICE), $(nproc) cores, neighbours: python busy loops${QUOTA:+; each server in a cgroup with a quota of $QUOTA cores}."
