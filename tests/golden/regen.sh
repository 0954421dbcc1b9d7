#!/usr/bin/env bash
# Rebuild the golden kube-apiserver outputs in tests/golden/<case>/ from the key
# fixtures in tests/fixtures/keys/, with the Go program in tests/golden/gen/
# (go-jose v2 + encoding/json, as kube-apiserver renders them).
#
# Needs, from Debian (works offline, no module proxy):
#   apt-get update && apt-get install -y golang-go golang-gopkg-square-go-jose.v2-dev
#
#   bash tests/golden/regen.sh
#
# Every case directory holds discovery.json and jwks.json (exact bytes, no
# trailing newline) and args.txt: line 1 issuer, line 2 jwks_uri, then one key
# file per line, relative to tests/fixtures/keys/, in the order given.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
keys="$root/tests/fixtures/keys"

command -v go >/dev/null || {
  echo "go not found: apt-get install -y golang-go golang-gopkg-square-go-jose.v2-dev" >&2; exit 1; }
[ -d /usr/share/gocode/src/gopkg.in/square/go-jose.v2 ] || {
  echo "go-jose v2 not found: apt-get install -y golang-gopkg-square-go-jose.v2-dev" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gen="$work/gen"
(cd "$root" && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="$work/cache" \
  go build -o "$gen" ./tests/golden/gen)

ISSUER="https://issuer.example.com/clusters/a"
JWKS="https://issuer.example.com/clusters/a/openid/v1/jwks"

# Remove old case directories (anything holding an args.txt), keep gen/ and docs.
for d in "$here"/*/; do
  [ -f "$d/args.txt" ] && rm -rf "$d"
done

# mk CASE [-sort-kid] [-issuer URL] [-jwks-uri URL] KEYFILE...
mk() {
  local name=$1; shift
  local sort="" iss=$ISSUER jwks=$JWKS
  while [ $# -gt 0 ]; do
    case $1 in
      -sort-kid) sort=-sort-kid; shift ;;
      -issuer) iss=$2; shift 2 ;;
      -jwks-uri) jwks=$2; shift 2 ;;
      *) break ;;
    esac
  done
  local out="$here/$name"
  mkdir -p "$out"
  (cd "$keys" && "$gen" -issuer "$iss" -jwks-uri "$jwks" -out "$out" $sort "$@")
  { printf '%s\n%s\n' "$iss" "$jwks"; printf '%s\n' "$@"; } > "$out/args.txt"
}

# keys sorted by kid (byte order, as Go's sort.Strings), for order-agnostic cases
kid_sorted() {
  (cd "$keys" && "$gen" -kids "$@") | LC_ALL=C sort -t "$(printf '\t')" -k3,3 | cut -f1
}

# ---- one case per key and accepted form
for k in rsa2048 rsa3072 rsa4096; do
  for form in pkcs8 pkcs1 pub crt; do mk "$k-$form" "$k.$form.pem"; done
done
for k in ec256 ec384 ec521; do
  for form in sec1 sec1-params pub crt; do mk "$k-$form" "$k.$form.pem"; done
done
# edge keys: P-256 with a leading-zero coordinate; RSA with e=3
mk ec256lz-pub ec256lz.pub.pem
mk rsa2048e3-pub rsa2048e3.pub.pem

# ---- several keys
six="rsa2048.pub.pem rsa3072.pub.pem rsa4096.pub.pem ec256.pub.pem ec384.pub.pem ec521.pub.pem"
# shellcheck disable=SC2046,SC2086
mk all $(kid_sorted $six)                    # listed in kid order: input order == kid order
# shellcheck disable=SC2086
mk all-input-order $six                      # kube-apiserver: input order kept
# shellcheck disable=SC2086
mk all-kid-sorted -sort-kid $six             # kOps-style: sorted by kid (same bytes as `all`)
mk bundle-input-order bundle.pem             # 4 keys in one file, block order kept
mk bundle-kid-sorted -sort-kid bundle.pem
mk duplicate-key rsa2048.pkcs8.pem rsa2048.pub.pem   # kube-apiserver publishes the key twice

# ---- Kubernetes test vectors
mk k8s-vectors k8s-rsa.pub.pem k8s-ecdsa.pub.pem
mk k8s-vectors-private k8s-rsa.key.pem k8s-ecdsa.key.pem

# ---- JSON string escaping (Go escapes < > & as \u003c \u003e \u0026)
mk escaping -issuer 'https://issuer.example.com/a&b<c>' \
  -jwks-uri 'https://issuer.example.com/a&b<c>/openid/v1/jwks' ec256.pub.pem
mk escaping-quote-unicode -issuer 'https://issuer.example.com/ü/"q"\b' \
  -jwks-uri 'https://issuer.example.com/ü/"q"\b/openid/v1/jwks' ec256.pub.pem

# ---- files from bad/ that kube-apiserver nevertheless accepts
mk bad-rsa1024 bad/rsa1024.pem                      # no RSA size check in kube-apiserver
mk bad-mixed-good-and-dsa bad/mixed-good-and-dsa.pem  # DSA block skipped silently

# ---- what kube-apiserver refuses: FILE<TAB>case with the same public key (or -)<TAB>error
{
  printf '# key file (relative to tests/fixtures/keys)\tgolden case with the same public key, or -\tkube-apiserver (keyutil) error\n'
  for f in rsa2048.pkcs1-pub.pem rsa3072.pkcs1-pub.pem rsa4096.pkcs1-pub.pem \
           ec256.pkcs8.pem ec384.pkcs8.pem ec521.pkcs8.pem ec256lz.pkcs8.pem \
           $(cd "$keys" && ls bad/*.pem); do
    line=$( (cd "$keys" && "$gen" -kids "$f") || true)
    case $line in
      *REFUSED*) ;;
      *) continue ;;
    esac
    err=${line##*$'\t'}
    same=-
    case $f in
      *.pkcs1-pub.pem) same="${f%%.*}-pub" ;;
      *.pkcs8.pem) [ "${f#bad/}" = "$f" ] && same="${f%%.*}-pub" ;;
    esac
    printf '%s\t%s\t%s\n' "$f" "$same" "$err"
  done
} > "$here/go-refused.tsv"

# sanity: order-agnostic twins must be byte-identical
cmp -s "$here/all/jwks.json" "$here/all-kid-sorted/jwks.json" || { echo "all != all-kid-sorted" >&2; exit 1; }
cmp -s "$here/k8s-vectors/jwks.json" "$here/k8s-vectors-private/jwks.json" || { echo "k8s vectors differ" >&2; exit 1; }

n=$(find "$here" -name args.txt | wc -l)
echo "golden cases written: $n"
