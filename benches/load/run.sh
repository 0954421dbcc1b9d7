#!/usr/bin/env bash
# Comparative load benchmark: issuerd vs nginx serving the same two documents
# (OIDC discovery + JWKS), in one run, on this machine, over 127.0.0.1 only.
#
# Usage:   bash benches/load/run.sh > results.md     # defaults: ~6.5 minutes on 2 cores
#          ROUNDS=1 DURATION=5 bash benches/load/run.sh  # quick look (~1.5 minutes)
# Progress and per-run figures go to stderr; the Markdown summary to stdout.
# Run it on an otherwise idle machine: it warns when other work is using the CPUs.
#
# Environment (all optional):
#   ISSUERD_BIN   issuerd binary. Unset: `cargo build --release` runs first and
#                 ${CARGO_TARGET_DIR:-target}/release/issuerd is used.
#   ROUNDS=3      rounds; every round runs every scenario against every server
#                 (server order alternates between rounds).
#   DURATION=10   seconds per run (a trailing "s" is accepted).
#   CONNS=128     wrk connections, keep-alive scenarios.
#   THREADS=2     client threads (wrk -t, h2load -t).
#   CLOSE_CONNS=32  wrk connections, connection-per-request scenario.
#   H2_CONNS=32 H2_STREAMS=10  h2load -c / -m.
#   HOLD_CONNS=10000  idle keep-alive connections for the RSS measurement.
#   STALL_CONNS=5000 STALL_PIPELINE=200  clients that pipeline STALL_PIPELINE requests
#                 and never read, for the stalled-reader RSS measurement.
#   READY_RUNS=5  start-to-ready samples (median reported).
#   PIN=0         0: nothing is pinned; client and server share both cores
#                 (the same way for every server). 1: client on CPU 0, servers on
#                 CPU 1. CLIENT_CPUS / SERVER_CPUS (taskset lists) override PIN.
#   ONLY=REGEX    run only scenarios whose name matches (e.g. ONLY='^h1-ka').
#   MEMORY_ONLY=1 skip the throughput runs: only idle RSS, the HOLD_CONNS idle keep-alive
#                 connections and the stalled clients, issuerd next to nginx (~1 minute).
#   BASE_PORT=18080  ports BASE..BASE+10 on 127.0.0.1 are used.
#   TLS_LOAD_BIN  the TLS handshake client (examples/tls_load). Unset: built with
#                 `cargo build --release --example tls_load`.
#   KEY_KIND=public  pass the public (public) or private (private) PEMs as --key-file.
#   ISSUERD_EXTRA_ARGS  appended to `issuerd serve` (word-split).
#   INSTALL=1     apt-get install nginx / wrk / h2load when missing (0: fail instead).
#   KEEP=0        1: keep the temp dir (raw client output, logs, configs).
#   RESULTS_MD    also write the final Markdown summary to this file (and the
#                 per-run TSV next to it, .md -> .tsv).
#
# Method (what is measured, per scenario x server x round):
#   req/s and p99 as reported by the client (wrk --latency; h2load: p99 from its
#   per-request --log-file), and server CPU per request = delta of utime+stime from
#   /proc/PID/stat over the run (issuerd: the process, all threads; nginx: master +
#   workers) divided by the requests the client completed; client CPU per request
#   likewise from the client's rusage once it is reaped (with PIN=0 the two share
#   the cores, so a client that needs more CPU than the server caps both servers'
#   req/s alike). Each figure in the
#   summary is the median over rounds. "nginx" = the better (by req/s) of
#   worker_processes 1 and worker_processes auto, chosen per scenario.
#   Fairness: both servers send the same bodies (issuerd `render` writes the files
#   nginx serves; run.sh checks the bodies are equal) with the same Content-Type,
#   Cache-Control, ETag and Access-Control-Allow-Origin headers (nginx also sends
#   Server, Last-Modified, Connection and Accept-Ranges: ~110 bytes more per
#   response), same client and parameters, same CPU placement. With PIN=0 the client competes with the
#   server for the 2 cores, so a server that needs less CPU leaves more for the
#   client; the CPU-per-request column is the placement-independent figure.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TOOL=(python3 "$HERE/loadtool.py")

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}; DURATION=${DURATION%s}
CONNS=${CONNS:-128}
THREADS=${THREADS:-2}
CLOSE_CONNS=${CLOSE_CONNS:-32}
H2_CONNS=${H2_CONNS:-32}
H2_STREAMS=${H2_STREAMS:-10}
HOLD_CONNS=${HOLD_CONNS:-10000}
STALL_CONNS=${STALL_CONNS:-5000}
STALL_PIPELINE=${STALL_PIPELINE:-200}
READY_RUNS=${READY_RUNS:-5}
PIN=${PIN:-0}
ONLY=${ONLY:-}
BASE_PORT=${BASE_PORT:-18080}
KEY_KIND=${KEY_KIND:-public}
ISSUERD_EXTRA_ARGS=${ISSUERD_EXTRA_ARGS:-}
INSTALL=${INSTALL:-1}
KEEP=${KEEP:-0}
MEMORY_ONLY=${MEMORY_ONLY:-0}
RESULTS_MD=${RESULTS_MD:-}

if [[ $PIN == 1 ]]; then
  CLIENT_CPUS=${CLIENT_CPUS-0}; SERVER_CPUS=${SERVER_CPUS-1}
else
  CLIENT_CPUS=${CLIENT_CPUS-}; SERVER_CPUS=${SERVER_CPUS-}
fi
CLIENT_PREFIX=(); [[ -n $CLIENT_CPUS ]] && CLIENT_PREFIX=(taskset -c "$CLIENT_CPUS")
SERVER_PREFIX=(); [[ -n $SERVER_CPUS ]] && SERVER_PREFIX=(taskset -c "$SERVER_CPUS")

JWKS_PATH=/openid/v1/jwks
DISCOVERY_PATH=/.well-known/openid-configuration
CT_JWKS=application/jwk-set+json
CT_DISCOVERY=application/json
CACHE_CONTROL="public, max-age=3600"

ISSUERD_PORT=$BASE_PORT
ISSUER="http://127.0.0.1:$ISSUERD_PORT"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ============================================================================
# ADJUST HERE if the issuerd CLI changes. Everything issuerd-specific is here.
# ============================================================================
# Args shared by `render` and `serve`. KEY_FILES is filled in once keys exist.
issuerd_common_args() {
  ISSUERD_COMMON=(--issuer "$ISSUER" --allow-insecure-issuer)
  local k
  for k in "${KEY_FILES[@]}"; do ISSUERD_COMMON+=(--key-file "$k"); done
}
# Write the exact bytes issuerd serves to $1/.well-known/openid-configuration
# and $1/openid/v1/jwks.
issuerd_render() {
  issuerd_common_args
  "$ISSUERD_BIN" render --out "$1" "${ISSUERD_COMMON[@]}"
}
# Fill ISSUERD_ARGV with the full `serve` command line (incl. CPU pinning).
issuerd_serve_argv() {
  issuerd_common_args
  # shellcheck disable=SC2206 # ISSUERD_EXTRA_ARGS is meant to be word-split
  ISSUERD_ARGV=("${SERVER_PREFIX[@]}" "$ISSUERD_BIN" serve --listen "127.0.0.1:$ISSUERD_PORT"
                "${ISSUERD_COMMON[@]}" $ISSUERD_EXTRA_ARGS)
}
# HTTPS: one more issuerd per certificate type (ECDSA P-256, RSA 2048), same binary and keys.
issuerd_tls_argv() { # kind port -> ISSUERD_TLS_ARGV
  issuerd_common_args
  # shellcheck disable=SC2206 # ISSUERD_EXTRA_ARGS is meant to be word-split
  ISSUERD_TLS_ARGV=("${SERVER_PREFIX[@]}" "$ISSUERD_BIN" serve --listen "127.0.0.1:$2"
                    "${ISSUERD_COMMON[@]}" --tls-cert "$TMP/tls/$1.crt" --tls-key "$TMP/tls/$1.key"
                    $ISSUERD_EXTRA_ARGS)
}
ISSUERD_READY_PATH=/readyz
# issuerd speaks h2c (prior knowledge) on its one port (hyper-util auto).
ISSUERD_H2C_PORT=$ISSUERD_PORT
# ============================================================================

# ---------------------------------------------------------------- cleanup
TMP=$(mktemp -d /tmp/issuerd-load.XXXXXX)
STARTED_PIDS=()
cleanup() {
  local rc=$? p kids=()
  trap - EXIT INT TERM
  set +e
  # A client (wrk, h2load, loadtool) still running: stop it first. loadtool
  # ready-time stops the server it launched when it gets SIGTERM.
  [[ -n ${CLIENT_PID:-} ]] && kill -TERM "$CLIENT_PID" 2>/dev/null && wait "$CLIENT_PID" 2>/dev/null
  for p in "${STARTED_PIDS[@]}"; do
    # shellcheck disable=SC2207 # pids: one word each
    kids+=($(child_pids "$p"))
    kill -TERM "$p" 2>/dev/null
  done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=0
    for p in "${STARTED_PIDS[@]}" "${kids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for p in "${STARTED_PIDS[@]}" "${kids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [[ $KEEP == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a client in the background and wait for it, so that a signal to this script
# is handled at once (bash defers traps while a foreground command runs).
CLIENT_PID=
# Runs a load client; CLIENT_MS adds up the CPU (user + system) the clients used.
CLIENT_MS=0
client() {
  local rc=0 before
  children_cpu_ms; before=$CHILDREN_MS
  "${CLIENT_PREFIX[@]}" "$@" &
  CLIENT_PID=$!
  wait "$CLIENT_PID" || rc=$?
  CLIENT_PID=
  children_cpu_ms; CLIENT_MS=$((CLIENT_MS + CHILDREN_MS - before))
  return "$rc"
}

children_cpu_ms() { # -> CHILDREN_MS: user+system CPU of this shell's reaped children
  # `times` must run in this shell (a subshell has no children of its own yet).
  times >"$TMP/times.txt"
  CHILDREN_MS=$(tail -1 "$TMP/times.txt" |
    awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] } printf "%.0f", t * 1000 }')
}

child_pids() {
  local p=$1
  if [[ -r /proc/$p/task/$p/children ]]; then cat "/proc/$p/task/$p/children"
  else pgrep -P "$p" || true; fi
}

# ---------------------------------------------------------------- prerequisites
apt_install() {
  [[ $INSTALL == 1 ]] || die "missing: $*; install it or run with INSTALL=1"
  log "installing: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "$@" >"$TMP/apt.log" 2>&1 ||
    { apt-get update -q >>"$TMP/apt.log" 2>&1 && apt-get install -y -q "$@" >>"$TMP/apt.log" 2>&1; } ||
    { cat "$TMP/apt.log" >&2; return 1; }
}
command -v nginx >/dev/null || apt_install nginx-light || apt_install nginx || die "cannot install nginx"
command -v wrk >/dev/null || apt_install wrk || die "cannot install wrk"
command -v h2load >/dev/null || apt_install nghttp2-client || die "cannot install h2load"
for c in openssl curl python3 taskset pgrep; do command -v "$c" >/dev/null || die "missing $c"; done

if [[ -z ${ISSUERD_BIN:-} ]]; then
  log "building issuerd (cargo build --release)"
  (cd "$ROOT" && cargo build --release --quiet) || die "cargo build failed"
  ISSUERD_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/issuerd
fi
[[ -x $ISSUERD_BIN ]] || die "issuerd binary not found: $ISSUERD_BIN"
if [[ -z ${TLS_LOAD_BIN:-} ]]; then
  log "building the TLS handshake client (cargo build --release --example tls_load)"
  (cd "$ROOT" && cargo build --release --quiet --example tls_load) || die "cargo build --example tls_load failed"
  TLS_LOAD_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/tls_load
fi
[[ -x $TLS_LOAD_BIN ]] || die "TLS client not found: $TLS_LOAD_BIN"
# Run a private copy: a concurrent `cargo build` must not swap the binary mid-run.
cp "$ISSUERD_BIN" "$TMP/issuerd"
ISSUERD_SRC_BIN=$(readlink -f "$ISSUERD_BIN")
ISSUERD_BIN=$TMP/issuerd

# Enough descriptors for HOLD_CONNS idle connections (inherited by the servers).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
((NOFILE > HOLD_CONNS + 500)) || log "warning: open-files limit $NOFILE is low for HOLD_CONNS=$HOLD_CONNS"

CLK_TCK=$(getconf CLK_TCK)
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/.*nginx\///')
NGINX_V=$(nginx -V 2>&1)
NGINX_H2=1; grep -q -- --with-http_v2_module <<<"$NGINX_V" || NGINX_H2=0

# ---------------------------------------------------------------- keys + documents
log "generating keys in $TMP/keys"
mkdir -p "$TMP/keys"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/keys/rsa.key" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/keys/ec.key" 2>/dev/null
openssl pkey -in "$TMP/keys/rsa.key" -pubout -out "$TMP/keys/rsa.pub"
openssl pkey -in "$TMP/keys/ec.key" -pubout -out "$TMP/keys/ec.pub"
case $KEY_KIND in
  public) KEY_FILES=("$TMP/keys/rsa.pub" "$TMP/keys/ec.pub") ;;
  private) KEY_FILES=("$TMP/keys/rsa.key" "$TMP/keys/ec.key") ;;
  *) die "KEY_KIND must be public or private" ;;
esac

# Serving certificates for the HTTPS scenarios, one per type, the same files for both servers.
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$TMP/tls/ec.key" -out "$TMP/tls/ec.crt" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$TMP/tls/rsa.key" -out "$TMP/tls/rsa.crt" 2>/dev/null

DOCROOT=$TMP/docroot
log "issuerd render --out $DOCROOT"
issuerd_render "$DOCROOT" >"$TMP/render.log" 2>&1 || { cat "$TMP/render.log" >&2; die "issuerd render failed"; }
for f in "$DOCROOT$DISCOVERY_PATH" "$DOCROOT$JWKS_PATH"; do
  [[ -s $f ]] || die "render did not write $f"
done

# ---------------------------------------------------------------- nginx configs
# Two variants: worker_processes 1 and auto. Each has its own prefix and ports.
declare -A H1_PORT H2C_PORT NGX_PREFIX NGX_WORKERS TLS_EC_PORT TLS_RSA_PORT
H1_PORT[issuerd]=$ISSUERD_PORT
H2C_PORT[issuerd]=$ISSUERD_H2C_PORT
NGX_WORKERS[nginx-w1]=1;       H1_PORT[nginx-w1]=$((BASE_PORT + 1));    H2C_PORT[nginx-w1]=$((BASE_PORT + 2))
NGX_WORKERS[nginx-wauto]=auto; H1_PORT[nginx-wauto]=$((BASE_PORT + 3)); H2C_PORT[nginx-wauto]=$((BASE_PORT + 4))
TLS_EC_PORT[issuerd]=$((BASE_PORT + 5));     TLS_RSA_PORT[issuerd]=$((BASE_PORT + 6))
TLS_EC_PORT[nginx-w1]=$((BASE_PORT + 7));    TLS_RSA_PORT[nginx-w1]=$((BASE_PORT + 8))
TLS_EC_PORT[nginx-wauto]=$((BASE_PORT + 9)); TLS_RSA_PORT[nginx-wauto]=$((BASE_PORT + 10))
NGINX_VARIANTS=(nginx-w1 nginx-wauto)
SERVERS=(issuerd "${NGINX_VARIANTS[@]}")

write_nginx_conf() { # name
  local name=$1 prefix=$TMP/$1 h2listen="" extra_temp="" tls_h2=""
  NGX_PREFIX[$name]=$prefix
  mkdir -p "$prefix/tmp"
  # nginx 1.22 syntax: `listen ... http2` on a plain listener = h2c prior knowledge.
  ((NGINX_H2)) && h2listen="listen 127.0.0.1:${H2C_PORT[$name]} http2 reuseport;" && tls_h2=http2
  grep -q -- --without-http_uwsgi_module <<<"$NGINX_V" || extra_temp+="uwsgi_temp_path $prefix/tmp/uwsgi;"
  grep -q -- --without-http_scgi_module <<<"$NGINX_V" || extra_temp+=" scgi_temp_path $prefix/tmp/scgi;"
  local wc=$((NOFILE - 200)); ((wc > 20000)) && wc=20000
  cat >"$prefix/nginx.conf" <<EOF
user root;
worker_processes ${NGX_WORKERS[$name]};
worker_rlimit_nofile $NOFILE;
pid $prefix/nginx.pid;
error_log $prefix/error.log warn;
events { worker_connections $wc; }
http {
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=64 inactive=600s;
    open_file_cache_valid 600s;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;
    etag on;
    types { }
    default_type application/octet-stream;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    $extra_temp
    # HTTPS as issuerd offers it: TLS 1.2 + 1.3, ALPN h2 + http/1.1, tickets and a session
    # cache for resumption.
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    server {
        listen 127.0.0.1:${TLS_EC_PORT[$name]} ssl $tls_h2 reuseport;
        ssl_certificate $TMP/tls/ec.crt;
        ssl_certificate_key $TMP/tls/ec.key;
        include $prefix/locations.conf;
    }
    server {
        listen 127.0.0.1:${TLS_RSA_PORT[$name]} ssl $tls_h2 reuseport;
        ssl_certificate $TMP/tls/rsa.crt;
        ssl_certificate_key $TMP/tls/rsa.key;
        include $prefix/locations.conf;
    }
    server {
        listen 127.0.0.1:${H1_PORT[$name]} reuseport;
        $h2listen
        include $prefix/locations.conf;
    }
}
EOF
  cat >"$prefix/locations.conf" <<EOF
        root $DOCROOT;
        # Same entity headers as issuerd sends: Content-Type, Cache-Control,
        # ETag (etag on), Access-Control-Allow-Origin.
        location = $DISCOVERY_PATH {
            default_type $CT_DISCOVERY;
            add_header Cache-Control "$CACHE_CONTROL";
            add_header Access-Control-Allow-Origin "*";
        }
        location = $JWKS_PATH {
            default_type $CT_JWKS;
            add_header Cache-Control "$CACHE_CONTROL";
            add_header Access-Control-Allow-Origin "*";
        }
        location / { return 404; }
EOF
  nginx -t -q -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" 2>"$prefix/t.log" ||
    { cat "$prefix/t.log" >&2; die "nginx config test failed for $name"; }
}
for v in "${NGINX_VARIANTS[@]}"; do write_nginx_conf "$v"; done
nginx_argv() { # name -> NGINX_ARGV
  local p=${NGX_PREFIX[$1]}
  NGINX_ARGV=("${SERVER_PREFIX[@]}" nginx -p "$p" -e "$p/error.log" -c "$p/nginx.conf" -g 'daemon off;')
}

for port in $(seq "$BASE_PORT" $((BASE_PORT + 10))); do
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
    die "port $port already in use on 127.0.0.1 (set BASE_PORT)"
  fi
done

# ---------------------------------------------------------------- start-to-ready
issuerd_serve_argv
log "start-to-ready: issuerd x$READY_RUNS"
CLIENT_PREFIX_SAVED=("${CLIENT_PREFIX[@]}"); CLIENT_PREFIX=() # the poller is not pinned
client "${TOOL[@]}" ready-time --runs "$READY_RUNS" --log "$TMP/issuerd-ready.log" \
  --url "http://127.0.0.1:$ISSUERD_PORT$ISSUERD_READY_PATH" -- "${ISSUERD_ARGV[@]}" >"$TMP/ready-issuerd.json" ||
  { tail -20 "$TMP/issuerd-ready.log" >&2; die "issuerd did not become ready"; }
READY_ISSUERD=$(<"$TMP/ready-issuerd.json")
nginx_argv nginx-w1
log "start-to-ready: nginx (w1, first 200 on JWKS) x$READY_RUNS"
client "${TOOL[@]}" ready-time --runs "$READY_RUNS" --log "$TMP/nginx-ready.log" \
  --url "http://127.0.0.1:${H1_PORT[nginx-w1]}$JWKS_PATH" -- "${NGINX_ARGV[@]}" >"$TMP/ready-nginx.json" ||
  { tail -20 "$TMP/nginx-ready.log" >&2; die "nginx did not become ready"; }
READY_NGINX=$(<"$TMP/ready-nginx.json")
CLIENT_PREFIX=("${CLIENT_PREFIX_SAVED[@]}")

json_get() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# ---------------------------------------------------------------- start servers
declare -A SERVER_PID
wait_200() { # url
  local i
  for ((i = 0; i < 200; i++)); do
    [[ $(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$1") == 200 ]] && return 0
    sleep 0.05
  done
  return 1
}
log "starting servers"
"${ISSUERD_ARGV[@]}" </dev/null >"$TMP/issuerd.log" 2>&1 &
SERVER_PID[issuerd]=$!; STARTED_PIDS+=($!)
for kind in ec rsa; do
  if [[ $kind == ec ]]; then port=${TLS_EC_PORT[issuerd]}; else port=${TLS_RSA_PORT[issuerd]}; fi
  issuerd_tls_argv "$kind" "$port"
  "${ISSUERD_TLS_ARGV[@]}" </dev/null >"$TMP/issuerd-tls-$kind.log" 2>&1 &
  SERVER_PID[issuerd-tls-$kind]=$!; STARTED_PIDS+=($!)
done
for v in "${NGINX_VARIANTS[@]}"; do
  nginx_argv "$v"
  "${NGINX_ARGV[@]}" </dev/null >"${NGX_PREFIX[$v]}/stdout.log" 2>&1 &
  SERVER_PID[$v]=$!; STARTED_PIDS+=($!)
done
wait_200 "http://127.0.0.1:$ISSUERD_PORT$ISSUERD_READY_PATH" ||
  { tail -20 "$TMP/issuerd.log" >&2; die "issuerd not ready"; }
for kind in ec rsa; do
  if [[ $kind == ec ]]; then port=${TLS_EC_PORT[issuerd]}; else port=${TLS_RSA_PORT[issuerd]}; fi
  wait_200 "https://127.0.0.1:$port$ISSUERD_READY_PATH" ||
    { tail -20 "$TMP/issuerd-tls-$kind.log" >&2; die "issuerd (TLS $kind) not ready"; }
done
for v in "${NGINX_VARIANTS[@]}"; do
  wait_200 "http://127.0.0.1:${H1_PORT[$v]}$JWKS_PATH" ||
    { cat "${NGX_PREFIX[$v]}/error.log" >&2; die "$v not ready"; }
done
sleep 0.5

server_pids() { # server [proto] -> pids (nginx: master + workers; issuerd: the one serving proto)
  local m=${SERVER_PID[$1]}
  [[ $1 == issuerd && ${2:-} == tls-* ]] && m=${SERVER_PID[issuerd-$2]}
  echo "$m"
  [[ $1 == nginx* ]] && child_pids "$m"
  return 0
}
rss_kib() { # pids... -> summed VmRSS in KiB
  local p t=0 v
  for p in "$@"; do
    v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
pss_kib() { # pids... -> summed Pss in KiB (shared pages split between the processes)
  local p t=0 v
  for p in "$@"; do
    v=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
cpu_ticks() { # pids... -> summed utime+stime (clock ticks)
  local p s t=0 f
  for p in "$@"; do
    { s=$(<"/proc/$p/stat"); } 2>/dev/null || continue
    s=${s##*) }
    read -ra f <<<"$s"
    t=$((t + f[11] + f[12])) # fields 14 (utime) and 15 (stime)
  done
  echo "$t"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# ---------------------------------------------------------------- equivalence check
log "checking both servers return the same bytes and headers"
for path in "$DISCOVERY_PATH" "$JWKS_PATH"; do
  for s in "${SERVERS[@]}"; do
    curl -s -D "$TMP/hdr-$s${path//\//_}" -o "$TMP/body-$s${path//\//_}" "http://127.0.0.1:${H1_PORT[$s]}$path"
  done
  for s in "${NGINX_VARIANTS[@]}"; do
    cmp -s "$TMP/body-issuerd${path//\//_}" "$TMP/body-$s${path//\//_}" ||
      die "$path: body from issuerd differs from $s (render output != served bytes?)"
  done
  for s in issuerd nginx-w1; do
    printf '  %-8s %-36s %s bytes | %s | %s\n' "$s" "$path" \
      "$(stat -c %s "$TMP/body-$s${path//\//_}")" \
      "$(grep -i '^content-type:' "$TMP/hdr-$s${path//\//_}" | tr -d '\r')" \
      "$(grep -i '^cache-control:' "$TMP/hdr-$s${path//\//_}" | tr -d '\r')" >&2
  done
done
if ((NGINX_H2)); then
  for s in "${SERVERS[@]}"; do
    curl -s --http2-prior-knowledge -o /dev/null "http://127.0.0.1:${H2C_PORT[$s]}$JWKS_PATH" ||
      log "warning: $s does not answer h2c on port ${H2C_PORT[$s]}"
  done
fi

# Response headers, for the record (nginx adds Server, Last-Modified, Connection, Accept-Ranges).
for s in issuerd nginx-w1; do
  log "  $s headers: $(sed -n '2,$p' "$TMP/hdr-$s${JWKS_PATH//\//_}" | tr -d '\r' | cut -d: -f1 | grep . | paste -sd, -)"
done

# ---------------------------------------------------------------- memory
EXTRA=$TMP/extra.tsv
: >"$EXTRA"
RSS_IDLE_I=$(rss_kib "${SERVER_PID[issuerd]}")
# shellcheck disable=SC2046 # pids: one word each
RSS_IDLE_N=$(rss_kib $(server_pids nginx-w1))
# shellcheck disable=SC2046
PSS_IDLE_N=$(pss_kib $(server_pids nginx-w1))
log "RSS idle: issuerd $(mib "$RSS_IDLE_I"), nginx w1 master+worker $(mib "$RSS_IDLE_N") (PSS $(mib "$PSS_IDLE_N"))"

printf 'RSS idle (after start)\t%s\t%s\n' "$(mib "$RSS_IDLE_I")" "$(mib "$RSS_IDLE_N") (PSS $(mib "$PSS_IDLE_N"))" >>"$EXTRA"
printf 'start → ready, median of %s (min–max)\t%s ms (%s–%s)\t%s ms (%s–%s) (first 200 on JWKS)\n' "$READY_RUNS" \
  "$(json_get "$READY_ISSUERD" median_ms)" "$(json_get "$READY_ISSUERD" min_ms)" "$(json_get "$READY_ISSUERD" max_ms)" \
  "$(json_get "$READY_NGINX" median_ms)" "$(json_get "$READY_NGINX" min_ms)" "$(json_get "$READY_NGINX" max_ms)" >>"$EXTRA"

# ---------------------------------------------------------------- drivers
# A driver is called as: DRIVER URL RAWFILE and prints one line
#   "REQUESTS RPS P99_MS ERRORS"   (NA for anything it could not measure)
# It must run its client through `client` (pinning + prompt Ctrl-C) and last
# DURATION seconds.

to_ms() { # wrk latency like 812.00us / 1.23ms / 1.02s -> ms
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}
parse_wrk() { # rawfile
  local file=$1 reqs rps p99 errs
  reqs=$(awk '/ requests in /{print $1}' "$file")
  rps=$(awk '/^Requests\/sec:/{print $2}' "$file")
  p99=$(awk '$1=="99%"{print $2}' "$file")
  errs=$(awk '/Socket errors:/{gsub(",",""); s+=$4+$6+$8+$10} /Non-2xx or 3xx/{s+=$NF} END{print s+0}' "$file")
  [[ -n $reqs && -n $rps ]] || { echo "NA NA NA NA"; return; }
  echo "$reqs $rps $(to_ms "${p99:-NA}") $errs"
}
drv_wrk_keepalive() {
  client wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --latency "$1" >"$2" 2>&1 || true
  parse_wrk "$2"
}
drv_wrk_close() {
  client wrk -t "$THREADS" -c "$CLOSE_CONNS" -d "${DURATION}s" --latency \
    -H 'Connection: close' "$1" >"$2" 2>&1 || true
  parse_wrk "$2"
}
drv_h2load() {
  client h2load -t "$THREADS" -c "$H2_CONNS" -m "$H2_STREAMS" -D "$DURATION" \
    --log-file="$2.log" "$1" >"$2" 2>&1 || true
  local reqs rps p99 errs
  reqs=$(awk '/^requests:/{for (i=1;i<NF;i++) if ($(i+1) ~ /^succeeded/) print $i}' "$2")
  rps=$(awk '/^finished in/{for (i=1;i<NF;i++) if ($(i+1) ~ /^req\/s/) print $i}' "$2")
  errs=$(awk '/^requests:/{for (i=1;i<NF;i++) if ($(i+1) ~ /^(failed|errored|timeout)/) s+=$i}
              /^status codes:/{for (i=1;i<NF;i++) if ($(i+1) ~ /^[345]xx/) s+=$i} END{print s+0}' "$2")
  if [[ -z $reqs || -z $rps || $reqs == 0 ]]; then echo "NA NA NA NA"; return; fi
  p99=$("${TOOL[@]}" pctl "$2.log" -p 99)
  rm -f "$2.log"
  echo "$reqs $rps $p99 $errs"
}

drv_tls() { # mode url raw
  client env THREADS="$THREADS" "$TLS_LOAD_BIN" "$2" "$CLOSE_CONNS" "$DURATION" "$1" >"$3" 2>"$3.err" || true
  local out; out=$(head -1 "$3")
  cat "$3.err" >>"$3"
  if [[ -n $out ]]; then echo "$out"; else echo "NA NA NA NA"; fi
}
drv_tls_full() { drv_tls full "$@"; }
drv_tls_resume() { drv_tls resume "$@"; }

endpoint() { # server proto -> base URL, or nothing if unsupported
  case $2 in
    h1) echo "http://127.0.0.1:${H1_PORT[$1]}" ;;
    h2c) if [[ $1 == nginx* ]] && ((!NGINX_H2)); then return; fi
         echo "http://127.0.0.1:${H2C_PORT[$1]}" ;;
    tls-ec) echo "https://127.0.0.1:${TLS_EC_PORT[$1]}" ;;
    tls-rsa) echo "https://127.0.0.1:${TLS_RSA_PORT[$1]}" ;;
    *) ;;
  esac
}

# ============================================================================
# SCENARIO TABLE: name | label (summary) | driver | path | protocol
# ============================================================================
SCENARIOS=(
  "h1-ka-jwks|HTTP/1.1 keep-alive, JWKS (c=$CONNS)|drv_wrk_keepalive|$JWKS_PATH|h1"
  "h1-ka-discovery|HTTP/1.1 keep-alive, discovery (c=$CONNS)|drv_wrk_keepalive|$DISCOVERY_PATH|h1"
  "h1-close-jwks|HTTP/1.1 new connection per request, JWKS (c=$CLOSE_CONNS)|drv_wrk_close|$JWKS_PATH|h1"
  "h2c-jwks|h2c prior knowledge, JWKS (c=$H2_CONNS, m=$H2_STREAMS)|drv_h2load|$JWKS_PATH|h2c"
  # HTTPS (TLS 1.3, X25519): one request per handshake (full, or resumed from a ticket), then
  # keep-alive and h2 over TLS. CPU/request of the handshake rows is CPU per handshake.
  "tls-ec-full|HTTPS ECDSA P-256, full handshake per request (c=$CLOSE_CONNS)|drv_tls_full|$JWKS_PATH|tls-ec"
  "tls-ec-resumed|HTTPS ECDSA P-256, resumed handshake per request (c=$CLOSE_CONNS)|drv_tls_resume|$JWKS_PATH|tls-ec"
  "tls-rsa-full|HTTPS RSA 2048, full handshake per request (c=$CLOSE_CONNS)|drv_tls_full|$JWKS_PATH|tls-rsa"
  "tls-rsa-resumed|HTTPS RSA 2048, resumed handshake per request (c=$CLOSE_CONNS)|drv_tls_resume|$JWKS_PATH|tls-rsa"
  "tls-ka-jwks|HTTPS keep-alive, JWKS (c=$CONNS)|drv_wrk_keepalive|$JWKS_PATH|tls-ec"
  "tls-h2-jwks|h2 over TLS, JWKS (c=$H2_CONNS, m=$H2_STREAMS)|drv_h2load|$JWKS_PATH|tls-ec"
)
# ============================================================================

ACTIVE=()
for s in "${SCENARIOS[@]}"; do
  [[ -z $ONLY || ${s%%|*} =~ $ONLY ]] && ACTIVE+=("$s")
done
((${#ACTIVE[@]})) || die "no scenario matches ONLY=$ONLY"

RESULTS=$TMP/results.tsv
printf 'round\tscenario\tlabel\tserver\trequests\trps\tp99_ms\tcpu_us_per_req\terrors\tclient_cpu_us_per_req\n' >"$RESULTS"


run_one() { # round scenario-spec server
  local round=$1 name label driver path proto server=$3 base raw c0 c1 k0 k1 out reqs rps p99 errs cpu ccpu=NA
  IFS='|' read -r name label driver path proto <<<"$2"
  base=$(endpoint "$server" "$proto")
  if [[ -z $base ]]; then
    printf '%s\t%s\t%s\t%s\tNA\tNA\tNA\tNA\t0\tNA\n' "$round" "$name" "$label" "$server" >>"$RESULTS"
    return
  fi
  raw=$TMP/raw/r$round-$name-$server.txt
  mkdir -p "$TMP/raw"
  # shellcheck disable=SC2046 # pids: one word each
  c0=$(cpu_ticks $(server_pids "$server" "$proto"))
  k0=$CLIENT_MS
  "$driver" "$base$path" "$raw" >"$raw.res"
  k1=$CLIENT_MS
  out=$(<"$raw.res")
  # shellcheck disable=SC2046
  c1=$(cpu_ticks $(server_pids "$server" "$proto"))
  read -r reqs rps p99 errs <<<"$out"
  if [[ $reqs == NA || $reqs == 0 ]]; then
    cpu=NA
    log "  $(printf '%-16s %-12s' "$name" "$server") FAILED (see below)"
    grep -iE 'error|fail|refused|reset|protocol|requests|status' "$raw" | tail -6 | sed 's/^/      /' >&2
  else
    cpu=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.2f", d / hz * 1e6 / n }')
    ccpu=$(awk -v d=$((k1 - k0)) -v n="$reqs" 'BEGIN { printf "%.2f", d * 1e3 / n }')
    log "  $(printf '%-16s %-12s %10.0f req/s  p99 %8.3f ms  cpu %7s µs/req (client %s)  errors %s' \
      "$name" "$server" "$rps" "$p99" "$cpu" "$ccpu" "$errs")"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$label" "$server" \
    "$reqs" "$rps" "$p99" "$cpu" "$errs" "$ccpu" >>"$RESULTS"
}

busy_pct() { # % of all CPUs busy over 1 s
  local a b
  read -ra a < <(head -1 /proc/stat); sleep 1; read -ra b < <(head -1 /proc/stat)
  awk -v u=$((b[1] + b[2] + b[3] + b[6] + b[7] + b[8] - a[1] - a[2] - a[3] - a[6] - a[7] - a[8])) \
      -v i=$((b[4] + b[5] - a[4] - a[5])) 'BEGIN { printf "%.0f", (u + i) ? 100 * u / (u + i) : 0 }'
}
BUSY_MAX=0
check_quiet() { # warn when something else is using the CPUs
  local b
  b=$(busy_pct)
  ((b > BUSY_MAX)) && BUSY_MAX=$b
  if ((b > 10)); then
    log "WARNING: the machine is ${b}% busy with no load running (other jobs?); figures will be noisy"
  fi
  return 0
}

if [[ $MEMORY_ONLY != 1 ]]; then # (not indented: the whole throughput part)
log "warm-up (2 s per server)"
for s in "${SERVERS[@]}"; do
  client wrk -t "$THREADS" -c "$CONNS" -d 2s "http://127.0.0.1:${H1_PORT[$s]}$JWKS_PATH" >/dev/null 2>&1 || true
done

total=$((ROUNDS * ${#ACTIVE[@]} * ${#SERVERS[@]}))
log "running $total runs of ${DURATION}s (rounds=$ROUNDS, scenarios=${#ACTIVE[@]}, servers=${#SERVERS[@]}), ~$((total * (DURATION + 1) / 60 + 1)) min"
for ((r = 1; r <= ROUNDS; r++)); do
  log "round $r/$ROUNDS"
  check_quiet
  order=("${SERVERS[@]}")
  if ((r % 2 == 0)); then # alternate the order between rounds
    order=(); for ((i = ${#SERVERS[@]} - 1; i >= 0; i--)); do order+=("${SERVERS[i]}"); done
  fi
  for spec in "${ACTIVE[@]}"; do
    for s in "${order[@]}"; do
      run_one "$r" "$spec" "$s"
    done
  done
done

fi # MEMORY_ONLY
for s in "${SERVERS[@]}"; do
  kill -0 "${SERVER_PID[$s]}" 2>/dev/null || die "$s died during the load runs"
done
if grep -E ' (WARN|ERROR) ' "$TMP/issuerd.log" | grep -qv 'uses http:'; then
  log "note: issuerd logged warnings/errors during the run (last 5):"
  grep -E ' (WARN|ERROR) ' "$TMP/issuerd.log" | grep -v 'uses http:' | tail -5 | sed 's/^/      /' >&2
fi
RSS_LOADED_I=$(rss_kib "${SERVER_PID[issuerd]}")
HWM_LOAD_I=$(awk '/^VmHWM:/{print $2}' "/proc/${SERVER_PID[issuerd]}/status")

# ---------------------------------------------------------------- 10k idle connections
# Done after the load runs so that neither the held connections nor the
# TIME_WAIT sockets they leave behind can affect the throughput figures.
hold() { # server [conns [stalled]] -> json in $TMP/hold-SERVER.json
  local extra=()
  [[ $1 == nginx* ]] && extra=(--with-children)
  client "${TOOL[@]}" hold-conns --conns "${2:-$HOLD_CONNS}" --stalled "${3:-0}" \
    --url "http://127.0.0.1:${H1_PORT[$1]}$JWKS_PATH" --pid "${SERVER_PID[$1]}" "${extra[@]}" >"$TMP/hold-$1.json"
}
log "holding $HOLD_CONNS idle keep-alive connections to issuerd"
hold issuerd || die "hold-conns against issuerd failed"
HOLD_I=$(<"$TMP/hold-issuerd.json")
log "  $HOLD_I"
log "holding $HOLD_CONNS idle keep-alive connections to nginx-w1"
hold nginx-w1 || die "hold-conns against nginx failed"
HOLD_N=$(<"$TMP/hold-nginx-w1.json")
log "  $HOLD_N"
sleep 1
RSS_AFTER_I=$(rss_kib "${SERVER_PID[issuerd]}")
hold_cell() { # json [pss [expected]]
  local rss est open cell want=${3:-$HOLD_CONNS}
  rss=$(json_get "$1" rss_kib); est=$(json_get "$1" established); open=$(json_get "$1" still_open)
  cell=$(mib "$rss")
  [[ ${2:-} == pss ]] && cell+=" (PSS $(mib "$(json_get "$1" pss_kib)"))"
  [[ $open == "$want" ]] || cell+=" — only $open/$want still open ($est established)"
  echo "$cell"
}
# Clients that stop reading: what each pins is bounded by the output high-water mark.
log "holding $STALL_CONNS stalled pipelining clients ($STALL_PIPELINE requests each) on issuerd"
hold issuerd "$STALL_CONNS" "$STALL_PIPELINE" || die "stalled clients against issuerd failed"
STALL_I=$(<"$TMP/hold-issuerd.json")
log "  $STALL_I"
log "holding $STALL_CONNS stalled pipelining clients on nginx-w1"
hold nginx-w1 "$STALL_CONNS" "$STALL_PIPELINE" || die "stalled clients against nginx failed"
STALL_N=$(<"$TMP/hold-nginx-w1.json")
log "  $STALL_N"
sleep 1
printf 'RSS after the load runs (peak VmHWM)\t%s (%s)\t-\n' "$(mib "$RSS_LOADED_I")" "$(mib "$HWM_LOAD_I")" >>"$EXTRA"
printf 'RSS with %s idle keep-alive conns\t%s\t%s\n' "$HOLD_CONNS" "$(hold_cell "$HOLD_I")" "$(hold_cell "$HOLD_N" pss)" >>"$EXTRA"
printf 'RSS after those conns closed\t%s\t-\n' "$(mib "$RSS_AFTER_I")" >>"$EXTRA"
printf 'RSS with %s stalled pipelining clients (%s requests each, never read)\t%s\t%s\n' "$STALL_CONNS" "$STALL_PIPELINE" \
  "$(hold_cell "$STALL_I" "" "$STALL_CONNS")" "$(hold_cell "$STALL_N" pss "$STALL_CONNS")" >>"$EXTRA"

# ---------------------------------------------------------------- summary
ISSUERD_VERSION=$("$ISSUERD_BIN" --version 2>/dev/null | head -1 || true)
{
  echo
  echo "## issuerd vs nginx — load benchmark"
  echo
  echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)"
  echo "- issuerd: ${ISSUERD_VERSION:-?} ($ISSUERD_SRC_BIN); nginx $NGINX_VERSION; $(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'); $(h2load --version | head -1)"
  echo "- ${ROUNDS} round(s) × ${DURATION} s per run, medians over rounds; wrk -t $THREADS; keys: RSA 2048 + EC P-256;" \
       "bodies: discovery $(stat -c %s "$DOCROOT$DISCOVERY_PATH") B, JWKS $(stat -c %s "$DOCROOT$JWKS_PATH") B"
  if [[ -n $CLIENT_CPUS || -n $SERVER_CPUS ]]; then
    echo "- CPU placement: client on CPU(s) ${CLIENT_CPUS:-any}, server on CPU(s) ${SERVER_CPUS:-any} (taskset)"
  else
    echo "- CPU placement: unpinned; client and server share all $(nproc) CPUs"
  fi
  ((BUSY_MAX > 10)) && echo "- **warning: up to ${BUSY_MAX}% of the CPUs were busy with other work between rounds; figures are noisy**"
  echo "- server CPU/request = Δ(utime+stime) of the server process(es) during the run ÷ completed requests;" \
       "client CPU/request the same for the load client (its rusage once reaped)"
  echo "- memory: issuerd VmRSS; nginx = master + 1 worker (w1 instance), VmRSS summed (PSS sum in parentheses)"
  echo
  "${TOOL[@]}" summarize "$RESULTS" --extra "$EXTRA"
} | tee "$TMP/summary.md"
if [[ -n $RESULTS_MD ]]; then
  cp "$TMP/summary.md" "$RESULTS_MD"
  cp "$RESULTS" "${RESULTS_MD%.md}.tsv"
fi
log "done"
