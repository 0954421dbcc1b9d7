//! A private key file -> the signer for its algorithm (from the key type and curve), carrying the
//! kid issuerd publishes for its public half.
//!
//! RS256, ES256 and ES384 are signed by `jsonwebtoken` on its aws-lc-rs backend. `jsonwebtoken`
//! has no ES512, so P-521 keys are signed by aws-lc-rs directly, behind the same [`SigningKey`].

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use der::Decode as _;

use crate::keys::{Algorithm, Curve, KeyMaterial, PublicKey};

/// RSA `rsaEncryption` OID.
const RSA_ENCRYPTION: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A key that signs tokens. Holds private key material: `Debug` shows the kid only.
pub struct SigningKey {
    public: PublicKey,
    signer: Signer,
}

enum Signer {
    /// Signed by `jsonwebtoken` (RSA: PKCS#1 DER; EC: PKCS#8 DER).
    Jwt(jsonwebtoken::EncodingKey, jsonwebtoken::Algorithm),
    /// ES512, signed by aws-lc-rs.
    P521(EcdsaKeyPair),
}

/// Why a key file cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    /// The file could not be read.
    #[error("cannot read signing key {}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable private key. Never quotes the file.
    #[error("signing key {}: {reason}", path.display())]
    Invalid {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The crypto provider refused to sign.
    #[error("signing failed")]
    Sign,
}

impl SigningKey {
    /// Reads a PEM private key: PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1
    /// `EC PRIVATE KEY` (what `--service-account-signing-key-file` takes).
    pub fn load(path: &Path) -> Result<Self, SigningKeyError> {
        let bytes = std::fs::read(path).map_err(|source| SigningKeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&bytes).map_err(|reason| SigningKeyError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses PEM text holding exactly one private key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        // The public half first: its errors (encrypted, unsupported algorithm or curve, RSA size)
        // are the precise ones.
        let public = match PublicKey::from_pem(pem)
            .map_err(|r| r.to_string())?
            .as_slice()
        {
            [key] => key.clone(),
            _ => return Err("the file holds more than one key; give exactly one".into()),
        };
        let blocks = ::pem::parse_many(pem).map_err(|_| "invalid PEM".to_owned())?;
        let block = blocks
            .iter()
            .find(|b| b.tag().ends_with("PRIVATE KEY"))
            .ok_or("a public key cannot sign; give the private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)")?;
        let der = block.contents();
        let signer = match public.material() {
            KeyMaterial::Rsa { .. } => {
                let pkcs1 = match block.tag() {
                    "RSA PRIVATE KEY" => der.to_vec(),
                    _ => {
                        let info = pkcs8::PrivateKeyInfo::from_der(der)
                            .map_err(|e| format!("PKCS#8: {e}"))?;
                        if info.algorithm.oid != RSA_ENCRYPTION {
                            return Err("PKCS#8 key is not RSA".into());
                        }
                        info.private_key.to_vec()
                    }
                };
                Signer::Jwt(
                    jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1),
                    jsonwebtoken::Algorithm::RS256,
                )
            }
            KeyMaterial::Ec { curve, .. } => {
                let algorithm = match curve {
                    Curve::P256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
                    Curve::P384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
                    Curve::P521 => &ECDSA_P521_SHA512_FIXED_SIGNING,
                };
                let pair = EcdsaKeyPair::from_private_key_der(algorithm, der)
                    .map_err(|e| format!("EC private key rejected: {e}"))?;
                match curve {
                    Curve::P521 => Signer::P521(pair),
                    Curve::P256 | Curve::P384 => {
                        let pkcs8 = pair
                            .to_pkcs8v1()
                            .map_err(|_| "cannot re-encode the EC key as PKCS#8".to_owned())?;
                        let alg = if *curve == Curve::P256 {
                            jsonwebtoken::Algorithm::ES256
                        } else {
                            jsonwebtoken::Algorithm::ES384
                        };
                        Signer::Jwt(jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()), alg)
                    }
                }
            }
        };
        Ok(Self { public, signer })
    }

    /// The public half (its kid is the published kid).
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The algorithm, from the key type and curve.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm()
    }

    /// Signs `claims` as a compact JWS with the header kube-apiserver writes:
    /// `{"alg":…,"kid":…}`. `kid` overrides the key's own kid (to test kid mismatches).
    pub fn sign(
        &self,
        claims: &impl serde::Serialize,
        kid: Option<&str>,
    ) -> Result<String, SigningKeyError> {
        let header = serde_json::json!({
            "alg": self.algorithm().name(),
            "kid": kid.unwrap_or(self.public.kid()),
        });
        let claims_json = serde_json::to_vec(claims).map_err(|_| SigningKeyError::Sign)?;
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims_json)
        );
        let signature = match &self.signer {
            Signer::Jwt(key, alg) => jsonwebtoken::crypto::sign(message.as_bytes(), key, *alg)
                .map_err(|_| SigningKeyError::Sign)?,
            Signer::P521(pair) => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let signature = pair
                    .sign(&rng, message.as_bytes())
                    .map_err(|_| SigningKeyError::Sign)?;
                URL_SAFE_NO_PAD.encode(signature.as_ref())
            }
        };
        Ok(format!("{message}.{signature}"))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid())
            .field("alg", &self.algorithm().name())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
        std::fs::read(path.join(name)).unwrap()
    }

    #[test]
    fn the_algorithm_follows_the_key_and_the_kid_is_the_published_one() {
        for (file, alg) in [
            ("rsa2048.pkcs1.pem", Algorithm::RS256),
            ("rsa2048.pkcs8.pem", Algorithm::RS256),
            ("ec256.sec1.pem", Algorithm::ES256),
            ("ec384.pkcs8.pem", Algorithm::ES384),
            ("ec521.sec1-params.pem", Algorithm::ES512),
        ] {
            let key = SigningKey::from_pem(&fixture(file)).unwrap();
            assert_eq!(key.algorithm(), alg, "{file}");
            let public = PublicKey::from_pem(&fixture(file)).unwrap();
            assert_eq!(key.public_key().kid(), public[0].kid(), "{file}");
        }
    }

    #[test]
    fn keys_that_cannot_sign_are_named() {
        let error = SigningKey::from_pem(&fixture("ec256.pub.pem")).unwrap_err();
        assert!(error.contains("a public key cannot sign"), "{error}");
        let error = SigningKey::from_pem(&fixture("bad/encrypted.pem")).unwrap_err();
        assert!(error.contains("encrypted"), "{error}");
        let error = SigningKey::from_pem(&fixture("bad/ed25519.pem")).unwrap_err();
        assert!(error.contains("Ed25519"), "{error}");
        let error = SigningKey::from_pem(&fixture("bundle.pem")).unwrap_err();
        assert!(error.contains("exactly one"), "{error}");
    }
}
