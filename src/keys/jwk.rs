//! A public key as kube-apiserver publishes it in its JWKS (go-jose member order).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::{KeyMaterial, PublicKey};

/// One JWK of the published set. Field order is the serialization order, and matches go-jose:
/// RSA `use,kty,kid,alg,n,e`; EC `use,kty,kid,crv,alg,x,y`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Jwk<'a> {
    /// An RSA key.
    Rsa {
        /// Always `sig`.
        #[serde(rename = "use")]
        usage: &'static str,
        /// `RSA`.
        kty: &'static str,
        /// Key ID.
        kid: &'a str,
        /// `RS256`.
        alg: &'static str,
        /// Modulus, base64url.
        n: String,
        /// Exponent, base64url.
        e: String,
    },
    /// An EC key.
    Ec {
        /// Always `sig`.
        #[serde(rename = "use")]
        usage: &'static str,
        /// `EC`.
        kty: &'static str,
        /// Key ID.
        kid: &'a str,
        /// Curve name.
        crv: &'static str,
        /// `ES256`, `ES384` or `ES512`.
        alg: &'static str,
        /// X coordinate, padded, base64url.
        x: String,
        /// Y coordinate, padded, base64url.
        y: String,
    },
}

impl<'a> From<&'a PublicKey> for Jwk<'a> {
    fn from(key: &'a PublicKey) -> Self {
        let alg = key.algorithm().name();
        match key.material() {
            KeyMaterial::Rsa { n, e } => Jwk::Rsa {
                usage: "sig",
                kty: "RSA",
                kid: key.kid(),
                alg,
                n: URL_SAFE_NO_PAD.encode(n),
                e: URL_SAFE_NO_PAD.encode(e),
            },
            KeyMaterial::Ec { curve, x, y } => Jwk::Ec {
                usage: "sig",
                kty: "EC",
                kid: key.kid(),
                crv: curve.name(),
                alg,
                x: URL_SAFE_NO_PAD.encode(x),
                y: URL_SAFE_NO_PAD.encode(y),
            },
        }
    }
}
