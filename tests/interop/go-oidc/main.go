// Command go-oidc verifies a ServiceAccount token the way Go relying parties do: with
// github.com/coreos/go-oidc (v2, go-jose v2), discovering the issuer over HTTPS and fetching its
// JWKS through an http.Client that trusts only the CA given with -ca.
//
// It is driven by tests/interop/test_https.py against a running `issuerd serve --tls-cert ...`.
//
// Usage:
//
//	go-oidc -issuer URL -audience AUD -token-file FILE [-ca FILE]
//
// Without -ca the client uses the system roots (the negative check: issuerd's test CA is not
// among them, so discovery must fail). On success it prints one JSON line with the verified
// claims; on failure it prints "error: ..." on stderr and exits 1.
//
// Build (offline, Debian packages golang-go and golang-github-coreos-go-oidc-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/go-oidc ./tests/interop/go-oidc
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	oidc "github.com/coreos/go-oidc"
)

func main() {
	issuer := flag.String("issuer", "", "issuer URL, exactly as published")
	audience := flag.String("audience", "", "audience the token must carry (go-oidc's ClientID)")
	tokenFile := flag.String("token-file", "", "file holding the token")
	caFile := flag.String("ca", "", "PEM CA certificate to trust (the only root); default: system roots")
	flag.Parse()
	if *issuer == "" || *audience == "" || *tokenFile == "" {
		fmt.Fprintln(os.Stderr, "error: -issuer, -audience and -token-file are required")
		os.Exit(2)
	}
	if err := run(*issuer, *audience, *tokenFile, *caFile); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func run(issuer, audience, tokenFile, caFile string) error {
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		return fmt.Errorf("token file %s: %w", tokenFile, err)
	}
	token := strings.TrimSpace(string(raw))

	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("ca file %s: %w", caFile, err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("ca file %s: no PEM certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	ctx := oidc.ClientContext(context.Background(), client)

	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	// As Kubernetes' OIDC authenticator does: accept the algorithms the issuer advertises.
	var meta struct {
		Algs []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := provider.Claims(&meta); err != nil {
		return fmt.Errorf("discovery document: %w", err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: audience, SupportedSigningAlgs: meta.Algs})
	idToken, err := verifier.Verify(ctx, token)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var claims map[string]interface{}
	if err := idToken.Claims(&claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"iss":    idToken.Issuer,
		"sub":    idToken.Subject,
		"aud":    idToken.Audience,
		"claims": claims,
	})
}
