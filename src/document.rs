//! (Publication, KeySet) -> the discovery document and JWKS: bytes byte-identical to
//! kube-apiserver's, with the path, content type, ETag and cache lifetime they are published with.
//! Protocol-neutral (the server encodes them for HTTP/1.1 and h2; a mirror uploads them as they
//! are). Pure: no I/O, no clock.

use std::io;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::Serialize;
use serde_json::ser::Formatter;

use crate::issuer::{DiscoveryProfile, Issuer, Publication};
use crate::keys::{Algorithm, Jwk, KeySet};

/// `Content-Type` of the discovery document, as kube-apiserver sends it.
pub const DISCOVERY_CONTENT_TYPE: &str = "application/json";
/// `Content-Type` of the JWKS, as kube-apiserver sends it.
pub const JWKS_CONTENT_TYPE: &str = "application/jwk-set+json";

/// One published document: what any protocol or object store needs to serve it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// Request path, e.g. `/openid/v1/jwks`.
    pub path: String,
    /// Body bytes.
    pub body: Bytes,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Strong ETag, quotes included, derived from the body.
    pub etag: String,
    /// `Cache-Control`.
    pub cache_control: String,
}

impl Document {
    /// A document at `path` with `body`, cached for `max_age_secs`.
    pub fn new(path: &str, body: Bytes, content_type: &'static str, max_age_secs: u32) -> Self {
        let hash = digest::digest(&digest::SHA256, &body);
        Self {
            path: path.to_owned(),
            etag: format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16])),
            cache_control: format!("public, max-age={max_age_secs}"),
            content_type,
            body,
        }
    }

    /// The object key in a bucket (or path under `render --out`): the path without its leading `/`.
    pub fn object_key(&self) -> &str {
        self.path.trim_start_matches('/')
    }
}

/// Both documents of one key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Documents {
    /// `.well-known/openid-configuration`.
    pub discovery: Document,
    /// The JWKS.
    pub jwks: Document,
}

impl Documents {
    /// Renders both documents for `keys` as `publication` says.
    pub fn render(publication: &Publication, keys: &KeySet) -> Self {
        let issuer = &publication.issuer;
        let rendered = render(issuer, publication.profile, keys);
        Self {
            discovery: Document::new(
                issuer.discovery_path(),
                rendered.discovery,
                DISCOVERY_CONTENT_TYPE,
                publication.max_age_secs,
            ),
            jwks: Document::new(
                issuer.jwks_path(),
                rendered.jwks,
                JWKS_CONTENT_TYPE,
                publication.max_age_secs,
            ),
        }
    }
}

/// The rendered bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// `.well-known/openid-configuration`.
    pub discovery: Bytes,
    /// The JWKS.
    pub jwks: Bytes,
}

#[derive(Serialize)]
struct Discovery<'a> {
    issuer: &'a str,
    jwks_uri: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_endpoint: Option<&'static str>,
    response_types_supported: [&'static str; 1],
    subject_types_supported: [&'static str; 1],
    id_token_signing_alg_values_supported: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims_supported: Option<[&'static str; 2]>,
}

#[derive(Serialize)]
struct JwkSet<'a> {
    keys: Vec<Jwk<'a>>,
}

/// Renders both bodies for a key set (keys are already ordered by kid).
pub fn render(issuer: &Issuer, profile: DiscoveryProfile, keys: &KeySet) -> Rendered {
    let mut algorithms: Vec<Algorithm> = keys.keys().iter().map(|k| k.algorithm()).collect();
    algorithms.sort_by_key(|a| a.name());
    algorithms.dedup();
    let kops = profile == DiscoveryProfile::Kops;
    let discovery = Discovery {
        issuer: issuer.url(),
        jwks_uri: issuer.jwks_uri(),
        authorization_endpoint: kops.then_some("urn:kubernetes:programmatic_authorization"),
        response_types_supported: ["id_token"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: algorithms.iter().map(|a| a.name()).collect(),
        claims_supported: kops.then_some(["sub", "iss"]),
    };
    let jwks = JwkSet {
        keys: keys.keys().iter().map(Jwk::from).collect(),
    };
    Rendered {
        discovery: to_go_json(&discovery),
        jwks: to_go_json(&jwks),
    }
}

/// Serializes compactly with Go `encoding/json`'s escaping, so bytes match kube-apiserver's.
fn to_go_json<T: Serialize>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(512);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut serializer)
        .expect("serializing plain structs to memory cannot fail");
    Bytes::from(out)
}

/// Go's `json.Marshal` additionally escapes `<`, `>`, `&`, U+2028 and U+2029.
struct GoFormatter;

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping_applies_to_html_characters() {
        let out = to_go_json(&"a<b>&c\u{2028}d\"e");
        assert_eq!(&out[..], br#""a\u003cb\u003e\u0026c\u2028d\"e""#);
    }
}
