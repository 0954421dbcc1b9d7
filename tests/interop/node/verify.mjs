// verify.mjs: verify a ServiceAccount token as a Node relying party does: openid-client's
// Issuer.discover over HTTPS, then jose's createRemoteJWKSet(jwks_uri) + jwtVerify (issuer,
// audience, the advertised algorithms).
//
// Driven by tests/interop/test_https.py against a running `issuerd serve --tls-cert ...`. The test
// CA is trusted through NODE_EXTRA_CA_CERTS, nothing else: TLS verification stays on.
//
// openid-client 5.x and jose 4.x (the jose openid-client 5 itself uses) run on Debian 12's Node 18;
// openid-client 6 and jose 6 need Node 20's global WebCrypto.
//
// Usage: node verify.mjs ISSUER AUDIENCE TOKEN_FILE
// Prints one JSON line (issuer metadata + verified header and payload) on success; on failure
// prints "error: ..." on stderr and exits 1.
import { readFileSync } from "node:fs";
import { Issuer } from "openid-client";
import { createRemoteJWKSet, jwtVerify } from "jose";

const [issuerUrl, audience, tokenFile] = process.argv.slice(2);
if (!issuerUrl || !audience || !tokenFile) {
  console.error("error: usage: node verify.mjs ISSUER AUDIENCE TOKEN_FILE");
  process.exit(2);
}

function describe(err) {
  // Show the chain of causes, with codes (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE for a TLS failure).
  const parts = [];
  for (let e = err; e; e = e.cause) {
    parts.push([e.name, e.code, e.message].filter(Boolean).join(" "));
  }
  return parts.join(" <- ");
}

try {
  const token = readFileSync(tokenFile, "utf8").trim();
  const issuer = await Issuer.discover(issuerUrl);
  const metadata = issuer.metadata;
  // What go-oidc and AWS demand, and what Issuer.discover leaves to the caller.
  if (metadata.issuer !== issuerUrl) {
    throw new Error(`discovery document names issuer ${metadata.issuer}, expected ${issuerUrl}`);
  }
  const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: metadata.issuer,
    audience,
    algorithms: metadata.id_token_signing_alg_values_supported,
    requiredClaims: ["sub", "exp", "iat", "nbf"],
  });
  console.log(JSON.stringify({ metadata, header: protectedHeader, payload }));
} catch (err) {
  console.error(`error: ${describe(err)}`);
  process.exit(1);
}
