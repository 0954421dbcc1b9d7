//! Verification as AWS STS and Vault do it: discovery, `issuer` equal to `iss` byte for byte,
//! `jwks_uri`, key by `kid`, algorithm against the key, signature, `exp`/`nbf`/`iat` with a small
//! leeway, audience. Each failure is one [`VerifyError`] that names both sides of the mismatch.

use std::time::Duration;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ECDSA_P521_SHA512_FIXED,
    RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};

use super::claims::describe_time;
use super::fetch::{Discovery, FetchError, Fetcher, Jwks};
use super::jwt::Jwt;
use crate::keys::{Curve, KeyMaterial, PublicKey};

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// Media types accepted for the discovery document.
pub const DISCOVERY_TYPES: [&str; 1] = ["application/json"];
/// Media types accepted for the JWKS.
pub const JWKS_TYPES: [&str; 2] = ["application/json", "application/jwk-set+json"];

/// Why a token does not verify: one precise diagnosis.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT, or a claim of the wrong type.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// A required claim is absent.
    #[error("the token has no \"{0}\" claim")]
    MissingClaim(&'static str),
    /// Two issuer strings differ.
    #[error(
        "issuer mismatch: {expected_what} is {expected:?} but the token's iss is {actual:?}{}",
        slash_hint(expected, actual)
    )]
    IssuerMismatch {
        /// Where the expected issuer comes from.
        expected_what: &'static str,
        /// The expected issuer.
        expected: String,
        /// The token's `iss`.
        actual: String,
    },
    /// The discovery document or JWKS could not be fetched or used.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A document is served with the wrong `Content-Type`.
    #[error(
        "wrong Content-Type: the {what} at {url} is served as {got}; expected {expected} \
         (strict clients, such as the Rust openidconnect crate, refuse it)"
    )]
    ContentType {
        /// Which document.
        what: &'static str,
        /// Its URL.
        url: String,
        /// The header sent (or `no Content-Type`).
        got: String,
        /// The accepted types.
        expected: String,
    },
    /// The header has no `kid` and the JWKS has more than one key.
    #[error(
        "the token's header has no kid and the JWKS publishes {} keys {published:?}; AWS STS \
         matches kid literally",
        published.len()
    )]
    MissingKid {
        /// The published kids.
        published: Vec<String>,
    },
    /// The header's `kid` is the empty string (not the same as no kid: STS matches it literally).
    #[error(
        "the token's kid is empty (\"\"); the JWKS publishes {published:?}, and AWS STS matches kid \
         literally, so an empty kid never selects a key"
    )]
    EmptyKid {
        /// The published kids.
        published: Vec<String>,
    },
    /// No published key has the token's kid.
    #[error("unknown kid {kid:?}: the JWKS at {jwks_uri} publishes {published:?}{}", local_hint(kid, published, local.as_deref()))]
    UnknownKid {
        /// The token's kid.
        kid: String,
        /// Where the keys came from.
        jwks_uri: String,
        /// The published kids.
        published: Vec<String>,
        /// The kid computed for the key given locally (`--key`).
        local: Option<String>,
    },
    /// An algorithm nothing here verifies (`none`, HMAC, ...).
    #[error(
        "algorithm {0:?} is not accepted; ServiceAccount tokens are RS256, ES256, ES384 or ES512"
    )]
    UnsupportedAlgorithm(String),
    /// The token's `alg` does not fit the key its kid selects.
    #[error(
        "algorithm mismatch: the token says {alg} but key {kid:?} is {key} and signs {expected}"
    )]
    AlgorithmMismatch {
        /// The token's alg.
        alg: String,
        /// The key's kid.
        kid: String,
        /// The key, described.
        key: String,
        /// The algorithm the key signs with.
        expected: &'static str,
    },
    /// The signature does not verify with the selected key.
    #[error(
        "bad signature: the token does not verify with published key {kid:?} (signed by another \
         key that reuses the kid, or altered after signing)"
    )]
    BadSignature {
        /// The key's kid.
        kid: String,
    },
    /// `exp` has passed.
    #[error("token expired: exp is {}, now is {} (leeway {}s)", describe_time(*exp), describe_time(*now), LEEWAY.as_secs())]
    Expired {
        /// `exp`.
        exp: i64,
        /// Now.
        now: i64,
    },
    /// `nbf` is in the future.
    #[error("token not yet valid: nbf is {}, now is {} (leeway {}s)", describe_time(*nbf), describe_time(*now), LEEWAY.as_secs())]
    NotYetValid {
        /// `nbf`.
        nbf: i64,
        /// Now.
        now: i64,
    },
    /// `iat` is in the future.
    #[error("token issued in the future: iat is {}, now is {} (leeway {}s)", describe_time(*iat), describe_time(*now), LEEWAY.as_secs())]
    IssuedInFuture {
        /// `iat`.
        iat: i64,
        /// Now.
        now: i64,
    },
    /// No audience of the token is accepted.
    #[error("wrong audience: the token's aud is {actual:?}, expected one of {expected:?}")]
    WrongAudience {
        /// The token's `aud`.
        actual: Vec<String>,
        /// The accepted audiences.
        expected: Vec<String>,
    },
}

fn slash_hint(expected: &str, actual: &str) -> &'static str {
    if expected.trim_end_matches('/') == actual.trim_end_matches('/') {
        "; they differ only by a trailing slash, and AWS STS, go-oidc and Vault compare issuers \
         byte for byte"
    } else {
        ""
    }
}

fn local_hint(kid: &str, published: &[String], local: Option<&str>) -> String {
    match local {
        None => String::new(),
        Some(local) if local == kid => format!(
            "; the key given with --key has this kid ({local}): the token was signed by a key \
             the issuer does not publish"
        ),
        Some(local) if published.iter().any(|p| p == local) => format!(
            "; the key given with --key is published as {local:?}: the token's kid was not \
             computed as kube-apiserver computes it"
        ),
        Some(local) => {
            format!("; the key given with --key has kid {local:?}, not published either")
        }
    }
}

/// Requires `expected` to equal the token's `iss` byte for byte.
pub fn check_issuer(
    jwt: &Jwt,
    expected_what: &'static str,
    expected: &str,
) -> Result<(), VerifyError> {
    let actual = jwt
        .claims
        .iss
        .as_deref()
        .ok_or(VerifyError::MissingClaim("iss"))?;
    if actual == expected {
        Ok(())
    } else {
        Err(VerifyError::IssuerMismatch {
            expected_what,
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

/// Selects the key by kid (a kid-less token only against a one-key set, as jose does) and checks
/// the algorithm and the signature.
pub fn check_signature<'k>(
    jwt: &Jwt,
    keys: &'k [PublicKey],
    jwks_uri: &str,
    local: Option<&PublicKey>,
) -> Result<&'k PublicKey, VerifyError> {
    if !["RS256", "ES256", "ES384", "ES512"].contains(&jwt.alg.as_str()) {
        return Err(VerifyError::UnsupportedAlgorithm(jwt.alg.clone()));
    }
    let published = || keys.iter().map(|k| k.kid().to_owned()).collect::<Vec<_>>();
    let key = match jwt.kid.as_deref() {
        Some("") => {
            return Err(VerifyError::EmptyKid {
                published: published(),
            });
        }
        Some(kid) => {
            keys.iter()
                .find(|k| k.kid() == kid)
                .ok_or_else(|| VerifyError::UnknownKid {
                    kid: kid.to_owned(),
                    jwks_uri: jwks_uri.to_owned(),
                    published: published(),
                    local: local.map(|k| k.kid().to_owned()),
                })?
        }
        None => match keys {
            [only] => only,
            _ => {
                return Err(VerifyError::MissingKid {
                    published: published(),
                });
            }
        },
    };
    let expected = key.algorithm().name();
    if jwt.alg != expected {
        return Err(VerifyError::AlgorithmMismatch {
            alg: jwt.alg.clone(),
            kid: key.kid().to_owned(),
            key: key.describe(),
            expected,
        });
    }
    if verify_signature(key, jwt.signing_input(), jwt.signature()) {
        Ok(key)
    } else {
        Err(VerifyError::BadSignature {
            kid: key.kid().to_owned(),
        })
    }
}

/// Checks a JWS signature with a public key, in the key's algorithm.
pub fn verify_signature(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    match key.material() {
        KeyMaterial::Rsa { n, e } => RsaPublicKeyComponents { n, e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
            .is_ok(),
        KeyMaterial::Ec { curve, x, y } => {
            let algorithm = match curve {
                Curve::P256 => &ECDSA_P256_SHA256_FIXED,
                Curve::P384 => &ECDSA_P384_SHA384_FIXED,
                Curve::P521 => &ECDSA_P521_SHA512_FIXED,
            };
            let mut point = Vec::with_capacity(1 + x.len() + y.len());
            point.push(4);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            UnparsedPublicKey::new(algorithm, point)
                .verify(message, signature)
                .is_ok()
        }
    }
}

/// Checks `exp` (required), `nbf` and `iat` against `now` with [`LEEWAY`].
pub fn check_times(jwt: &Jwt, now: i64) -> Result<(), VerifyError> {
    let leeway = LEEWAY.as_secs() as i64;
    let exp = jwt.claims.exp.ok_or(VerifyError::MissingClaim("exp"))?;
    if now > exp.saturating_add(leeway) {
        return Err(VerifyError::Expired { exp, now });
    }
    if let Some(nbf) = jwt.claims.nbf
        && nbf > now.saturating_add(leeway)
    {
        return Err(VerifyError::NotYetValid { nbf, now });
    }
    if let Some(iat) = jwt.claims.iat
        && iat > now.saturating_add(leeway)
    {
        return Err(VerifyError::IssuedInFuture { iat, now });
    }
    Ok(())
}

/// Returns the first of the token's audiences that is accepted.
pub fn check_audience<'a>(jwt: &'a Jwt, accepted: &[String]) -> Result<&'a str, VerifyError> {
    if jwt.claims.aud.is_empty() {
        return Err(VerifyError::MissingClaim("aud"));
    }
    jwt.claims
        .aud
        .iter()
        .find(|aud| accepted.contains(aud))
        .map(String::as_str)
        .ok_or_else(|| VerifyError::WrongAudience {
            actual: jwt.claims.aud.clone(),
            expected: accepted.to_vec(),
        })
}

/// Requires a media type among `expected`.
pub fn check_content_type(
    what: &'static str,
    fetched: &super::fetch::Fetched,
    expected: &[&str],
) -> Result<(), VerifyError> {
    match fetched.media_type() {
        Some(media) if expected.contains(&media.as_str()) => Ok(()),
        _ => Err(VerifyError::ContentType {
            what,
            url: fetched.url.clone(),
            got: fetched
                .content_type
                .clone()
                .unwrap_or_else(|| "no Content-Type".into()),
            expected: expected.join(" or "),
        }),
    }
}

/// What `verify` found.
#[derive(Debug)]
pub struct Verified {
    /// The token.
    pub jwt: Jwt,
    /// The discovery document.
    pub discovery: Discovery,
    /// The JWKS.
    pub jwks: Jwks,
    /// The kid of the key that verified the signature.
    pub kid: String,
}

/// The whole check `issuerd verify` runs, in the order a relying party runs it. `audiences`
/// empty skips the audience check; `local` is the key the user believes signed the token.
pub async fn verify_with_issuer(
    fetcher: &Fetcher,
    token: &str,
    issuer: &str,
    audiences: &[String],
    local: Option<&PublicKey>,
    now: i64,
) -> Result<Verified, VerifyError> {
    let jwt = Jwt::parse(token).map_err(VerifyError::Malformed)?;
    check_issuer(&jwt, "--issuer", issuer)?;
    let discovery = fetcher.discovery(issuer).await?;
    check_content_type("discovery document", &discovery.fetched, &DISCOVERY_TYPES)?;
    check_issuer(&jwt, "the discovery document's issuer", &discovery.issuer)?;
    let jwks = fetcher.jwks(&discovery.jwks_uri).await?;
    check_content_type("JWKS", &jwks.fetched, &JWKS_TYPES)?;
    let kid = check_signature(&jwt, &jwks.keys, &discovery.jwks_uri, local)?
        .kid()
        .to_owned();
    check_times(&jwt, now)?;
    if !audiences.is_empty() {
        check_audience(&jwt, audiences)?;
    }
    Ok(Verified {
        jwt,
        discovery,
        jwks,
        kid,
    })
}
