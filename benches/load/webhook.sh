#!/usr/bin/env bash
# Admissions per second and latency of `issuerd webhook` (release build) over HTTPS:
#   1. closed loop, CONNS keep-alive connections as fast as it answers (admissions/s it sustains);
#   2. open loop at RATE admissions/s (default 1000, the issue's target: p99 < 5 ms on 2 cores),
#      latency from each request's scheduled send time.
# The review is a pod CREATE whose ServiceAccount the map wires (a real patch every time).
#
#   bash benches/load/webhook.sh            # SECONDS_RUN=10 CONNS=8 RATE=1000
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_=${SECONDS_RUN:-10}
CONNS=${CONNS:-8}
RATE=${RATE:-1000}
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT

cargo build --release --quiet --bin issuerd --example webhook_load
bin=target/release/issuerd
load=target/release/examples/webhook_load

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$TMP/tls.key" -out "$TMP/tls.crt" 2>/dev/null
cat >"$TMP/map.yaml" <<'MAP'
clusterName: bench.example.com
serviceAccountExternalPermissions:
  - name: app
    namespace: default
    aws:
      policyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess]
MAP
cat >"$TMP/review.json" <<'REVIEW'
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"default","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller"},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"app-7d9f8-","namespace":"default","labels":{"app":"app"}},"spec":{"serviceAccountName":"app","initContainers":[{"name":"init","image":"busybox"}],"containers":[{"name":"app","image":"example/app:1.0","env":[{"name":"LOG_LEVEL","value":"info"}],"volumeMounts":[{"name":"data","mountPath":"/data"}]},{"name":"sidecar","image":"example/proxy:2.1"}],"volumes":[{"name":"data","emptyDir":{}}]}},"dryRun":false}}
REVIEW

NO_COLOR=1 "$bin" webhook --listen 127.0.0.1:0 --tls-cert "$TMP/tls.crt" --tls-key "$TMP/tls.key" \
  --cluster-spec "$TMP/map.yaml" --account-id 111122223333 2>"$TMP/log" &
for _ in $(seq 100); do grep -q "webhook ready" "$TMP/log" && break; sleep 0.1; done
addr=$(grep -o 'webhook ready listen=[^ ]*' "$TMP/log" | cut -d= -f2)
[[ -n $addr ]] || { cat "$TMP/log" >&2; exit 1; }
url="https://$addr/mutate"

echo "| mode | admissions | per second | p50 ms | p99 ms | max ms | errors |"
echo "|---|--:|--:|--:|--:|--:|--:|"
read -r n rps p50 p99 max errors < <("$load" "$url" "$CONNS" "$SECONDS_" max "$TMP/review.json")
echo "| closed loop, $CONNS conns | $n | $rps | $p50 | $p99 | $max | $errors |"
read -r n rps p50 p99 max errors < <("$load" "$url" "$CONNS" "$SECONDS_" "$RATE" "$TMP/review.json")
echo "| open loop at $RATE/s, $CONNS conns | $n | $rps | $p50 | $p99 | $max | $errors |"
echo
echo "issuerd webhook (release) and the load client share this machine's $(nproc) cores."
