//! The API server's two documents -> its issuer and its keys, validated as key files are
//! (public RSA/EC signing keys of allowed sizes and curves, no private members) and each kid
//! recomputed as kube-apiserver computes it. Pure.

use serde_json::Value;

use super::ApiServerError;
use crate::keys::{KeySet, PublicKey};

/// What the API server publishes, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterKeys {
    /// The discovery document's `issuer`: the `iss` of the cluster's tokens.
    pub issuer: String,
    /// The discovery document's `jwks_uri` (the API server's own address, usually; never
    /// republished).
    pub jwks_uri: Option<String>,
    /// The JWKS's keys.
    pub keys: KeySet,
}

/// Checks the discovery document (from `discovery_url`) and the JWKS (from `jwks_url`).
pub(super) fn parse(
    discovery: &[u8],
    discovery_url: &str,
    jwks: &[u8],
    jwks_url: &str,
) -> Result<ClusterKeys, ApiServerError> {
    let invalid = |reason: String| ApiServerError::Invalid {
        url: discovery_url.to_owned(),
        reason,
    };
    let document: Value =
        serde_json::from_slice(discovery).map_err(|e| invalid(format!("not JSON ({e})")))?;
    let issuer = match document.get("issuer") {
        Some(Value::String(issuer)) if !issuer.is_empty() => issuer.clone(),
        Some(Value::String(_)) => return Err(invalid("\"issuer\" is empty".into())),
        Some(_) => return Err(invalid("\"issuer\" is not a string".into())),
        None => {
            return Err(invalid(
                "no \"issuer\" (not an OpenID discovery document)".into(),
            ));
        }
    };
    let jwks_uri = document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let keys =
        PublicKey::from_apiserver_jwks(jwks).map_err(|(index, reason)| ApiServerError::Key {
            url: jwks_url.to_owned(),
            location: index.map(|i| format!("JWK #{}", i + 1)),
            reason,
        })?;
    // Kids are SHA-256 of the key: one kid is one key, so the set cannot conflict, and the
    // JWKS parser refuses an empty one.
    let keys = KeySet::from_public_keys(keys).ok_or_else(|| ApiServerError::Key {
        url: jwks_url.to_owned(),
        location: None,
        reason: crate::keys::Reason::EmptyJwks,
    })?;
    Ok(ClusterKeys {
        issuer,
        jwks_uri,
        keys,
    })
}
