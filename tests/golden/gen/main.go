// Command gen renders the OIDC discovery document and JWKS that kube-apiserver
// would serve for a service-account issuer, so issuerd's output can be
// compared with it byte for byte.
//
// It re-implements, independently, the parts of kube-apiserver that matter:
//   - reading --service-account-key-file contents the way client-go's
//     keyutil.ParsePublicKeysPEM does (every PEM block whatever its label;
//     PKCS#1/PKCS#8 RSA private, PKIX public or certificate (RSA or EC), SEC1 EC
//     private; anything else is skipped; a file with no usable block is an error);
//   - kid = base64url-nopad(SHA-256(x509.MarshalPKIXPublicKey(pub)));
//   - jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"};
//   - json.Marshal of the JSONWebKeySet and of the discovery struct.
//
// Keys are published in input order (file order, then block order within a
// file), as kube-apiserver's static key getter does; -sort-kid sorts them by
// kid instead (what kOps does).
//
// Usage:
//
//	gen -issuer URL -jwks-uri URL -out DIR [-sort-kid] KEYFILE...
//	gen -kids KEYFILE...      (print "file<TAB>alg<TAB>kid" per key, or the refusal)
//
// Build (offline, Debian packages golang-go and golang-gopkg-square-go-jose.v2-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/issuerd-golden-gen ./tests/golden/gen
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	jose "gopkg.in/square/go-jose.v2"
)

// parseKeyFile mirrors keyutil.ParsePublicKeysPEM: try each block in turn.
func parseKeyFile(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		der := block.Bytes
		if k, err := rsaPrivate(der); err == nil {
			keys = append(keys, &k.PublicKey)
			continue
		}
		if k, err := rsaPublic(der); err == nil {
			keys = append(keys, k)
			continue
		}
		if k, err := x509.ParseECPrivateKey(der); err == nil {
			keys = append(keys, &k.PublicKey)
			continue
		}
		if k, err := ecPublic(der); err == nil {
			keys = append(keys, k)
			continue
		}
		// any other block (EC PARAMETERS, DSA, Ed25519, encrypted, ...) is skipped
	}
	if len(keys) == 0 {
		return nil, errors.New("data does not contain any valid RSA or ECDSA public keys")
	}
	return keys, nil
}

func rsaPrivate(der []byte) (*rsa.PrivateKey, error) {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	if rk, ok := k.(*rsa.PrivateKey); ok {
		return rk, nil
	}
	return nil, errors.New("not an RSA private key")
}

func pkixOrCert(der []byte) (interface{}, error) {
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		return k, nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return c.PublicKey, nil
}

func rsaPublic(der []byte) (*rsa.PublicKey, error) {
	k, err := pkixOrCert(der)
	if err != nil {
		return nil, err
	}
	if rk, ok := k.(*rsa.PublicKey); ok {
		return rk, nil
	}
	return nil, errors.New("not an RSA public key")
}

func ecPublic(der []byte) (*ecdsa.PublicKey, error) {
	k, err := pkixOrCert(der)
	if err != nil {
		return nil, err
	}
	if ek, ok := k.(*ecdsa.PublicKey); ok {
		return ek, nil
	}
	return nil, errors.New("not an ECDSA public key")
}

func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

func algorithm(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return string(jose.RS256), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return string(jose.ES256), nil
		case elliptic.P384():
			return string(jose.ES384), nil
		case elliptic.P521():
			return string(jose.ES512), nil
		}
		return "", errors.New("unknown private key curve, must be 256, 384, or 521")
	}
	return "", fmt.Errorf("unknown public key type %T", pub)
}

type discovery struct {
	Issuer        string   `json:"issuer"`
	JWKSURI       string   `json:"jwks_uri"`
	ResponseTypes []string `json:"response_types_supported"`
	SubjectTypes  []string `json:"subject_types_supported"`
	SigningAlgs   []string `json:"id_token_signing_alg_values_supported"`
}

func loadKeys(files []string) ([]jose.JSONWebKey, error) {
	var out []jose.JSONWebKey
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		pubs, err := parseKeyFile(data)
		if err != nil {
			return nil, fmt.Errorf("error reading public key file %s: %v", f, err)
		}
		for _, pub := range pubs {
			kid, err := keyID(pub)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f, err)
			}
			alg, err := algorithm(pub)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f, err)
			}
			jwk := jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
			if !jwk.IsPublic() || !jwk.Valid() {
				return nil, fmt.Errorf("%s: key not valid", f)
			}
			out = append(out, jwk)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no keys provided for validating keyset")
	}
	return out, nil
}

func main() {
	issuer := flag.String("issuer", "", "issuer URL (written verbatim)")
	jwksURI := flag.String("jwks-uri", "", "jwks_uri (written verbatim)")
	outDir := flag.String("out", "", "output directory for discovery.json and jwks.json")
	sortKid := flag.Bool("sort-kid", false, "sort keys by kid (kOps) instead of input order (kube-apiserver)")
	kids := flag.Bool("kids", false, "print file, alg and kid of each key instead of rendering")
	flag.Parse()

	if *kids {
		rc := 0
		for _, f := range flag.Args() {
			keys, err := loadKeys([]string{f})
			if err != nil {
				fmt.Printf("%s\tREFUSED\t%v\n", f, err)
				rc = 1
				continue
			}
			for _, k := range keys {
				fmt.Printf("%s\t%s\t%s\n", f, k.Algorithm, k.KeyID)
			}
		}
		os.Exit(rc)
	}

	if *issuer == "" || *jwksURI == "" || *outDir == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: gen -issuer URL -jwks-uri URL -out DIR [-sort-kid] KEYFILE...")
		os.Exit(64)
	}
	keys, err := loadKeys(flag.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *sortKid {
		sort.SliceStable(keys, func(i, j int) bool { return keys[i].KeyID < keys[j].KeyID })
	}

	algSet := map[string]bool{}
	for _, k := range keys {
		algSet[k.Algorithm] = true
	}
	algs := make([]string, 0, len(algSet))
	for a := range algSet {
		algs = append(algs, a)
	}
	sort.Strings(algs)

	disc, err := json.Marshal(discovery{
		Issuer:        *issuer,
		JWKSURI:       *jwksURI,
		ResponseTypes: []string{"id_token"},
		SubjectTypes:  []string{"public"},
		SigningAlgs:   algs,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(*outDir, "discovery.json"), disc, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(*outDir, "jwks.json"), jwks, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
