//! A saved JWKS (`{"keys":[…]}`, e.g. from `kubectl get --raw /openid/v1/jwks`) -> public keys.
//! Kids are kept as given; a JWK carrying private members is refused, never stripped.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::spki::{self, Canonical};
use super::{Curve, Reason};

/// Members that only private (or symmetric) JWKs carry.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A file is read as a JWKS when it is named `*.json` or its text starts with `{`.
pub(crate) fn looks_like_json(path: &Path, contents: &[u8]) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || contents.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Parses a JWKS document. Errors carry the index of the JWK they are about.
#[allow(clippy::type_complexity)]
pub(crate) fn parse(
    contents: &[u8],
) -> Result<Vec<(Canonical, Option<String>)>, (Option<usize>, Reason)> {
    let document: Value = serde_json::from_slice(contents)
        .map_err(|e| (None, Reason::Malformed(format!("invalid JSON: {e}"))))?;
    let keys = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| (None, Reason::Malformed("JWKS has no \"keys\" array".into())))?;
    if keys.is_empty() {
        return Err((None, Reason::EmptyJwks));
    }
    keys.iter()
        .enumerate()
        .map(|(index, jwk)| parse_jwk(jwk).map_err(|reason| (Some(index), reason)))
        .collect()
}

fn parse_jwk(jwk: &Value) -> Result<(Canonical, Option<String>), Reason> {
    let jwk = jwk
        .as_object()
        .ok_or_else(|| Reason::Malformed("JWK is not a JSON object".into()))?;
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(Reason::PrivateJwk((*member).to_owned()));
    }
    if let Some(usage) = optional_str(jwk, "use")?
        && usage != "sig"
    {
        return Err(Reason::Malformed(format!(
            "JWK use {usage:?} is not \"sig\""
        )));
    }
    let kid = match optional_str(jwk, "kid")? {
        Some("") => return Err(Reason::Malformed("JWK kid is empty".into())),
        kid => kid.map(str::to_owned),
    };
    let alg = optional_str(jwk, "alg")?;
    let canonical = match required_str(jwk, "kty")? {
        "RSA" => {
            check_alg(alg, "RS256")?;
            spki::from_rsa_components(&base64url(jwk, "n")?, &base64url(jwk, "e")?)?
        }
        "EC" => {
            let curve = match required_str(jwk, "crv")? {
                "P-256" => Curve::P256,
                "P-384" => Curve::P384,
                "P-521" => Curve::P521,
                other => return Err(Reason::UnsupportedCurve(other.to_owned())),
            };
            check_alg(
                alg,
                match curve {
                    Curve::P256 => "ES256",
                    Curve::P384 => "ES384",
                    Curve::P521 => "ES512",
                },
            )?;
            let (x, y) = (base64url(jwk, "x")?, base64url(jwk, "y")?);
            let size = curve.coordinate_len();
            if x.len() != size || y.len() != size {
                return Err(Reason::Malformed(format!(
                    "JWK x and y must be {size} bytes each for {}",
                    curve.name()
                )));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            spki::from_ec_point(curve, &point)?
        }
        "OKP" => return Err(Reason::UnsupportedAlgorithm("OKP (Ed25519/X25519)".into())),
        other => return Err(Reason::UnsupportedAlgorithm(format!("kty {other:?}"))),
    };
    Ok((canonical, kid))
}

fn check_alg(alg: Option<&str>, expected: &'static str) -> Result<(), Reason> {
    match alg {
        Some(alg) if alg != expected => Err(Reason::JwkAlgMismatch {
            alg: alg.to_owned(),
            expected,
        }),
        _ => Ok(()),
    }
}

fn optional_str<'a>(jwk: &'a Map<String, Value>, member: &str) -> Result<Option<&'a str>, Reason> {
    match jwk.get(member) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Reason::Malformed(format!("JWK {member} is not a string"))),
    }
}

fn required_str<'a>(jwk: &'a Map<String, Value>, member: &str) -> Result<&'a str, Reason> {
    optional_str(jwk, member)?.ok_or_else(|| Reason::Malformed(format!("JWK has no {member}")))
}

fn base64url(jwk: &Map<String, Value>, member: &str) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD
        .decode(required_str(jwk, member)?)
        .map_err(|e| Reason::Malformed(format!("JWK {member} is not base64url: {e}")))
}
