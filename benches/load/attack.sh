#!/usr/bin/env bash
# HTTP/2 attack classes and memory bounds: issuerd (one binary, or BEFORE and AFTER binaries)
# next to nginx (worker_processes 1), in one run, on this machine, over 127.0.0.1 only. The
# machine is noisy (2 shared cores): read the ratios and the issuerd/nginx comparison, not the
# absolute figures.
#
# Usage:   bash benches/load/attack.sh [BEFORE_BIN [AFTER_BIN]] > attack.md   (~6 minutes)
#          no binary: ${CARGO_TARGET_DIR:-target}/release/issuerd (built when missing)
# Progress goes to stderr, the Markdown tables to stdout.
#
# Every server serves the same two documents (`issuerd render` writes the files nginx serves;
# the bodies are checked equal): issuerd on one port (HTTP/1.1 and h2c prior knowledge),
# nginx 1 worker on an HTTP/1.1 port and an h2c port (`listen ... http2`). nginx keeps its
# defaults (keepalive_requests 1000, http2_max_concurrent_streams 128, 32 KiB of header list,
# ...) except worker_connections and client_header_timeout. Both get the same header timeout:
# issuerd --header-timeout $HEADER_TIMEOUT, nginx client_header_timeout $HEADER_TIMEOUT.
# issuerd runs its default runtime (a thread per core), nginx one worker: the victim shares
# nginx's one event loop with the attackers. The attacker (Python) itself keeps about one core
# busy, so on 2 cores a victim ratio of 1-2.5x is the floor of any attack, whatever the server.
#
# Scenarios (benches/load/h2_attack.py, stdlib-only Python asyncio raw sockets):
#   Attacks 1-3: a victim opens a fresh h2c connection every 50 ms and GETs /openid/v1/jwks:
#   p50/p99 latency first unattacked ($BASELINE_SECS s), then while attacker connections run
#   the attack for $ATTACK_SECS s (reconnecting at once whenever the server closes them).
#   Reported per server: attacked/unattacked victim latency ratios, the server's CPU % during
#   the attack (/proc/PID/stat; nginx master + worker), how and when the attackers'
#   connections were closed (GOAWAY code, EOF, reset), and from a probe connection run between
#   the two (at most 1,000,000 frames or $PROBE_SECS s) how many attack frames the server takes
#   before it closes: frames go in batches, a batch counts once the server's socket receive
#   queue is empty (sock_diag, as ss reads it) and it has not closed (exact to within a batch:
#   100 frames up to 10,000, 1,000 up to 100,000, then 10,000; hpack: 100 requests). Sending
#   as fast as the socket takes cannot tell this: MBs sit in the kernel buffers when the GOAWAY
#   comes.
#     1. reset-headers ($ATTACKERS conns): GET on stream 1 without END_STREAM (answered, stream
#        reset NO_ERROR), then a small trailer HEADERS (END_STREAM) on stream 1, again and again.
#     2. hpack ($HPACK_ATTACKERS conns): a 4,000-byte field inserted into the HPACK dynamic
#        table once (literal with incremental indexing), then valid GETs that each index it 3
#        times (0xbe 0xbe 0xbe: 12 KB decoded from a 3-byte reference list).
#     3. unbudgeted frames ($ATTACKERS conns each): a) DATA with PADDED and no data on the reset
#        stream, b) 1-byte DATA on the reset stream, c) empty CONTINUATIONs after a HEADERS
#        without END_HEADERS, d) empty HEADERS (END_STREAM) cycling over 100 reset streams.
#   4. partial header blocks: $PARTIAL_CONNS connections each send HEADERS without END_HEADERS
#      plus CONTINUATIONs up to $PARTIAL_BLOCK bytes of block, then go silent: the largest
#      block (a multiple of 1 KiB) the server leaves unanswered, searched first with test
#      connections (nginx refuses more than 32 KiB of header list). RssAnon per connection,
#      when and how the server answers (GOAWAY, RST_STREAM), RssAnon then, and how long it
#      keeps the connections (polled until closed, cap $PARTIAL_CAP s). All servers at once
#      (fresh processes), each its own connections.
#   5. idle memory: $IDLE_H1 HTTP/1.1 keep-alive connections, each sent one request and read the
#      response, then idle: RssAnon before/after per connection (fresh processes; nginx
#      worker_connections 15000). Then $IDLE_H2 idle h2c connections the same way.
#   6. connection cap: issuerd --max-connections $CAP, nginx worker_connections $CAP (one
#      listener): $CAP sockets connect and never send a byte, then a new client's HTTP/1.1 GET
#      ($CAP_PROBES of them, 0.3 s apart): served or not, and how fast (cap 5 s).
#
# Environment (all optional):
#   ATTACKERS=2 HPACK_ATTACKERS=4 ATTACK_SECS=8 BASELINE_SECS=3 INTERVAL=0.05 PROBE_SECS=2
#   HEADER_TIMEOUT=10s PARTIAL_CONNS=2000 PARTIAL_BLOCK=65536 PARTIAL_CAP=60
#   IDLE_H1=10000 IDLE_H2=2000 CAP=300 CAP_PROBES=3
#   ONLY=REGEX      phases to run, among: reset-headers hpack pad-data data1 empty-cont
#                   empty-headers partial idle cap (e.g. ONLY='hpack|partial')
#   BASE_PORT=19380 ports BASE..BASE+8 on 127.0.0.1
#   INSTALL=1       apt-get install nginx when missing
#   KEEP=0          1: keep the temp dir (server logs, raw JSON lines)
#   RESULTS_MD      also write the Markdown to this file (and the JSON lines next to it)
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TOOL=(python3 "$HERE/h2_attack.py")

ATTACKERS=${ATTACKERS:-2}
HPACK_ATTACKERS=${HPACK_ATTACKERS:-4}
ATTACK_SECS=${ATTACK_SECS:-8}
PROBE_SECS=${PROBE_SECS:-2}
BASELINE_SECS=${BASELINE_SECS:-3}
INTERVAL=${INTERVAL:-0.05}
HEADER_TIMEOUT=${HEADER_TIMEOUT:-10s}
PARTIAL_CONNS=${PARTIAL_CONNS:-2000}
PARTIAL_BLOCK=${PARTIAL_BLOCK:-65536}
PARTIAL_CAP=${PARTIAL_CAP:-60}
IDLE_H1=${IDLE_H1:-10000}
IDLE_H2=${IDLE_H2:-2000}
CAP=${CAP:-300}
CAP_PROBES=${CAP_PROBES:-3}
ONLY=${ONLY:-}
BASE_PORT=${BASE_PORT:-19380}
INSTALL=${INSTALL:-1}
KEEP=${KEEP:-0}
RESULTS_MD=${RESULTS_MD:-}
ISSUER="http://127.0.0.1:$BASE_PORT"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
want() { [[ -z $ONLY ]] || [[ $1 =~ $ONLY ]]; }

(($# <= 2)) || die "usage: $0 [BEFORE_BIN [AFTER_BIN]]"
if (($# == 0)); then
  bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/issuerd
  if [[ ! -x $bin ]]; then
    log "building issuerd (cargo build --release --bin issuerd)"
    (cd "$ROOT" && cargo build --release --quiet --bin issuerd) || die "cargo build failed"
  fi
  set -- "$bin"
fi

TMP=$(mktemp -d /tmp/issuerd-attack.XXXXXX)
declare -A PID PORT BIN
ISSUERDS=()
if (($# == 2)); then ISSUERDS=(issuerd-before issuerd-after); else ISSUERDS=(issuerd); fi
SERVERS=("${ISSUERDS[@]}" nginx)
ARGS=("$@")
declare -A SRC
i=0
for s in "${ISSUERDS[@]}"; do
  [[ -x ${ARGS[$i]} ]] || die "not an executable: ${ARGS[$i]}"
  SRC[$s]=$(realpath "${ARGS[$i]}")
  cp "${SRC[$s]}" "$TMP/$s" # a private copy: a concurrent build must not swap it mid-run
  BIN[$s]=$TMP/$s
  PORT[$s]=$((BASE_PORT + i))
  i=$((i + 1))
done
NGX_H1_PORT=$((BASE_PORT + 2)); NGX_H2C_PORT=$((BASE_PORT + 3)); PORT[nginx]=$NGX_H2C_PORT
CAP_PORT_BASE=$((BASE_PORT + 4)) # issuerd(s) +4, +5; nginx +6

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  stop_all
  if [[ $KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- prerequisites
if ! command -v nginx >/dev/null; then
  [[ $INSTALL == 1 ]] || die "nginx missing (INSTALL=1 installs it)"
  log "installing nginx"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q nginx-light || { apt-get update -q && apt-get install -y -q nginx-light; }; } \
    >"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log" >&2; die "cannot install nginx"; }
fi
nginx -V 2>&1 | grep -q -- --with-http_v2_module || die "this nginx has no HTTP/2 module"
for c in python3 curl; do command -v "$c" >/dev/null || die "missing $c"; done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
((NOFILE > IDLE_H1 + 1000)) || log "warning: open-files limit $NOFILE is low for IDLE_H1=$IDLE_H1"
for s in "${ISSUERDS[@]}"; do
  "${BIN[$s]}" serve --help | grep -q -- --header-timeout || die "$s: no --header-timeout flag"
  "${BIN[$s]}" serve --help | grep -q -- --max-connections || die "$s: no --max-connections flag"
done

# ---------------------------------------------------------------- documents
KEYS=(--key-file "$ROOT/tests/fixtures/keys/rsa2048.pub.pem" --key-file "$ROOT/tests/fixtures/keys/ec256.pub.pem")
DOCROOT=$TMP/docroot
"${BIN[${ISSUERDS[0]}]}" render --out "$DOCROOT" --issuer "$ISSUER" --allow-insecure-issuer "${KEYS[@]}" \
  >"$TMP/render.log" 2>&1 || { cat "$TMP/render.log" >&2; die "issuerd render failed"; }

write_nginx_conf() { # name worker_connections h2c(0/1) h1port [h2cport]
  local prefix=$TMP/$1 h2="" extra=""
  mkdir -p "$prefix/tmp"
  (($3)) && h2="listen 127.0.0.1:$5 http2;"
  nginx -V 2>&1 | grep -q -- --without-http_uwsgi_module || extra+="uwsgi_temp_path $prefix/tmp/uwsgi;"
  nginx -V 2>&1 | grep -q -- --without-http_scgi_module || extra+=" scgi_temp_path $prefix/tmp/scgi;"
  cat >"$prefix/nginx.conf" <<EOF
user root;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections $2; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nodelay on;
    client_header_timeout $HEADER_TIMEOUT;
    keepalive_timeout 75s;
    open_file_cache max=64 inactive=600s;
    open_file_cache_valid 600s;
    open_file_cache_min_uses 1;
    etag on;
    types { }
    default_type application/octet-stream;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    $extra
    server {
        listen 127.0.0.1:$4;
        $h2
        root $DOCROOT;
        location = /.well-known/openid-configuration {
            default_type application/json;
            add_header Cache-Control "public, max-age=3600";
            add_header Access-Control-Allow-Origin "*";
        }
        location = /openid/v1/jwks {
            default_type application/jwk-set+json;
            add_header Cache-Control "public, max-age=3600";
            add_header Access-Control-Allow-Origin "*";
        }
        location / { return 404; }
    }
}
EOF
  nginx -t -q -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" 2>"$prefix/t.log" ||
    { cat "$prefix/t.log" >&2; die "nginx config test failed ($1)"; }
}
write_nginx_conf nginx 15000 1 "$NGX_H1_PORT" "$NGX_H2C_PORT"
write_nginx_conf nginx-cap "$CAP" 0 $((CAP_PORT_BASE + 2))

for port in $(seq "$BASE_PORT" $((BASE_PORT + 8))); do
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
    die "port $port already in use on 127.0.0.1 (set BASE_PORT)"
  fi
done

# ---------------------------------------------------------------- servers
wait_200() { # url pid
  local i
  for ((i = 0; i < 200; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1") == 200 ]] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
children() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }
STARTED=() # name:pid of what is running
start() { # name [cap]: starts the server (issuerd-* or nginx), fills PID[name]
  local s=$1 cap=${2:-} port pid
  if [[ $s == nginx ]]; then
    local conf=nginx url="http://127.0.0.1:$NGX_H1_PORT/openid/v1/jwks"
    [[ -n $cap ]] && conf=nginx-cap url="http://127.0.0.1:$((CAP_PORT_BASE + 2))/openid/v1/jwks"
    nginx -p "$TMP/$conf" -e "$TMP/$conf/error.log" -c "$TMP/$conf/nginx.conf" -g 'daemon off;' \
      </dev/null >>"$TMP/$conf/stdout.log" 2>&1 &
    pid=$!
    wait_200 "$url" "$pid" || { cat "$TMP/$conf/error.log" >&2; die "nginx did not start"; }
  else
    port=${PORT[$s]} args=()
    if [[ -n $cap ]]; then
      local k
      for k in "${!ISSUERDS[@]}"; do [[ ${ISSUERDS[$k]} == "$s" ]] && port=$((CAP_PORT_BASE + k)); done
      args=(--max-connections "$cap")
    fi
    "${BIN[$s]}" serve --listen "127.0.0.1:$port" --issuer "$ISSUER" --allow-insecure-issuer "${KEYS[@]}" \
      --header-timeout "$HEADER_TIMEOUT" "${args[@]}" </dev/null >>"$TMP/$s.log" 2>&1 &
    pid=$!
    wait_200 "http://127.0.0.1:$port/readyz" "$pid" || { tail -20 "$TMP/$s.log" >&2; die "$s did not start"; }
  fi
  PID[$s]=$pid
  STARTED+=("$s:$pid")
}
stop() { # name
  local s=$1 pid=${PID[$1]:-} i kids
  [[ -n $pid ]] || return 0
  kids=$(children "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" $kids 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PID[$s]=
}
stop_all() { local s; for s in "${!PID[@]}"; do stop "$s"; done; }
restart_all() { local s; stop_all; for s in "${SERVERS[@]}"; do start "$s"; done; }
pids_of() { # name -> pids (nginx: master + worker)
  echo "${PID[$1]}"
  [[ $1 == nginx* ]] && children "${PID[$1]}"
  return 0
}
pid_args() { local p; for p in $(pids_of "$1"); do printf -- '--pid\n%s\n' "$p"; done; }
died() { # name -> true when the server is gone (and logs it)
  local s=$1
  kill -0 "${PID[$s]}" 2>/dev/null && return 1
  local rc=0
  wait "${PID[$s]}" 2>/dev/null || rc=$?
  log "!!! $s (pid ${PID[$s]}) DIED, exit status $rc; last log lines:"
  tail -20 "$TMP/$s.log" >&2 || true
  echo "$s died (exit status $rc) during $2" >>"$TMP/died.txt"
  PID[$s]=
  return 0
}

RESULTS=$TMP/results.jsonl
: >"$RESULTS"
restart_all

# Same bytes from every server.
for s in "${SERVERS[@]}"; do
  url=http://127.0.0.1:${PORT[$s]}/openid/v1/jwks
  [[ $s == nginx ]] && url=http://127.0.0.1:$NGX_H1_PORT/openid/v1/jwks
  curl -s -o "$TMP/body-$s" "$url"
  cmp -s "$TMP/body-$s" "$DOCROOT/openid/v1/jwks" || die "$s serves another JWKS than the rendered one"
  curl -s --http2-prior-knowledge -o /dev/null -w '%{http_version}' "http://127.0.0.1:${PORT[$s]}/openid/v1/jwks" |
    grep -q 2 || die "$s does not answer h2c on ${PORT[$s]}"
done
log "servers: ${SERVERS[*]}; $(nginx -v 2>&1); JWKS $(stat -c %s "$DOCROOT/openid/v1/jwks") bytes"

# ---------------------------------------------------------------- 5. idle memory
if want idle; then
  for proto in h1 h2; do
    n=$IDLE_H1; [[ $proto == h2 ]] && n=$IDLE_H2
    for s in "${SERVERS[@]}"; do
      stop "$s"; start "$s" # a fresh process: memory freed by earlier work would be reused and hide the cost
      port=${PORT[$s]}; [[ $s == nginx && $proto == h1 ]] && port=$NGX_H1_PORT
      log "idle $proto: $n connections to $s"
      mapfile -t pa < <(pid_args "$s")
      timeout 120 "${TOOL[@]}" idle --server "$s" --port "$port" "${pa[@]}" --conns "$n" --proto "$proto" \
        >>"$RESULTS" || log "idle $proto $s: failed"
      died "$s" "idle $proto" && start "$s"
    done
  done
fi

# ---------------------------------------------------------------- 4. partial header blocks
if want partial; then
  restart_all
  targets=()
  for s in "${SERVERS[@]}"; do
    targets+=(--target "$s=${PORT[$s]}:$(pids_of "$s" | paste -sd, -)")
  done
  log "partial header blocks: $PARTIAL_CONNS connections x ${PARTIAL_BLOCK} B to each server at once (cap ${PARTIAL_CAP} s)"
  timeout $((PARTIAL_CAP + 120)) "${TOOL[@]}" partial "${targets[@]}" --conns "$PARTIAL_CONNS" \
    --block "$PARTIAL_BLOCK" --cap "$PARTIAL_CAP" \
    --header-timeout "issuerd --header-timeout $HEADER_TIMEOUT; nginx client_header_timeout $HEADER_TIMEOUT" \
    >>"$RESULTS" || log "partial: failed"
  for s in "${SERVERS[@]}"; do died "$s" partial && start "$s"; done
fi

# ---------------------------------------------------------------- 1-3. attacks
ATTACKS=("1. HEADERS on a reset stream:reset-headers:$ATTACKERS"
         "2. HPACK amplification:hpack:$HPACK_ATTACKERS"
         "3a. padded empty DATA, reset stream:pad-data:$ATTACKERS"
         "3b. 1-byte DATA, reset stream:data1:$ATTACKERS"
         "3c. empty CONTINUATIONs:empty-cont:$ATTACKERS"
         "3d. empty HEADERS, reset streams:empty-headers:$ATTACKERS")
restart_all
round=0
for a in "${ATTACKS[@]}"; do
  IFS=: read -r name kind n <<<"$a"
  want "$kind" || continue
  # Server order rotates from scenario to scenario.
  order=("${SERVERS[@]:round % ${#SERVERS[@]}}" "${SERVERS[@]:0:round % ${#SERVERS[@]}}")
  round=$((round + 1))
  for s in "${order[@]}"; do
    log "$name: $n attackers vs $s"
    mapfile -t pa < <(pid_args "$s")
    timeout $((BASELINE_SECS + ATTACK_SECS + 60)) "${TOOL[@]}" scenario --name "$name" --server "$s" \
      --port "${PORT[$s]}" "${pa[@]}" --kind "$kind" --conns "$n" --baseline "$BASELINE_SECS" \
      --duration "$ATTACK_SECS" --interval "$INTERVAL" --probe-secs "$PROBE_SECS" >>"$RESULTS" ||
      log "$name $s: failed"
    died "$s" "$name" && start "$s"
  done
done

# ---------------------------------------------------------------- 6. connection cap
if want cap; then
  stop_all
  for s in "${SERVERS[@]}"; do
    start "$s" "$CAP"
    if [[ $s == nginx ]]; then port=$((CAP_PORT_BASE + 2)); label="worker_connections $CAP"
    else
      for k in "${!ISSUERDS[@]}"; do [[ ${ISSUERDS[$k]} == "$s" ]] && port=$((CAP_PORT_BASE + k)); done
      label="--max-connections $CAP"
    fi
    log "connection cap: $CAP silent sockets, then GETs, $s"
    timeout 60 "${TOOL[@]}" capfair --server "$s" --port "$port" --silent "$CAP" --probes "$CAP_PROBES" \
      --cap-label "$label" >>"$RESULTS" || log "cap $s: failed"
    died "$s" cap || true
    stop "$s"
  done
fi

# ---------------------------------------------------------------- report
{
  echo "## HTTP/2 attacks and memory bounds: ${ISSUERDS[*]} vs nginx"
  echo
  for s in "${ISSUERDS[@]}"; do echo "- $s: \`${SRC[$s]}\` ($(sha256sum "${BIN[$s]}" | cut -c1-12))"; done
  echo "- $(nginx -v 2>&1 | sed 's/^nginx version: //'), worker_processes 1; header timeout $HEADER_TIMEOUT on both"
  echo "- $(nproc) CPUs, $(uname -r); attack ${ATTACK_SECS} s, baseline ${BASELINE_SECS} s, victim every ${INTERVAL} s"
  if [[ -s $TMP/died.txt ]]; then echo; sed 's/^/**/; s/$/**/' "$TMP/died.txt"; fi
  echo
  "${TOOL[@]}" report "$RESULTS" --interval "$INTERVAL"
} >"$TMP/report.md"
cat "$TMP/report.md"
if [[ -n $RESULTS_MD ]]; then
  cp "$TMP/report.md" "$RESULTS_MD"
  cp "$RESULTS" "${RESULTS_MD%.md}.jsonl"
fi
