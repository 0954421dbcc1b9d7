//! Signing public keys: loading them from files, validating them, and the [`KeySet`] they form.
//!
//! # Layout
//! - `source`: key file and directory paths (Kubernetes volume layout) -> file contents.
//! - `pem_blocks`: PEM blocks (public keys, certificates, private keys) -> public keys.
//! - `jwks_file`: a saved JWKS (`{"keys":[…]}`) -> public keys with their given kids.
//! - `spki`: the canonical SubjectPublicKeyInfo every input is validated into.
//! - [`kid`]: the kube-apiserver key ID.
//! - [`jwk`]: a public key as the JWK kube-apiserver publishes.

pub mod jwk;
mod jwks_file;
pub mod kid;
mod pem_blocks;
mod source;
mod spki;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use self::jwk::Jwk;
pub use self::spki::{MAX_RSA_BITS, MIN_RSA_BITS};

/// An elliptic curve issuerd publishes keys on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (secp256r1), signs ES256.
    P256,
    /// NIST P-384 (secp384r1), signs ES384.
    P384,
    /// NIST P-521 (secp521r1), signs ES512.
    P521,
}

impl Curve {
    /// The JWK `crv` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }

    /// Bytes in one coordinate; JWK `x` and `y` are left-padded to this length.
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }
}

/// A JWS algorithm a published key signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// ECDSA P-521 with SHA-512.
    ES512,
}

impl Algorithm {
    /// The JOSE name of the algorithm.
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
        }
    }
}

/// The public numbers of a key. There is no private component anywhere in this type.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum KeyMaterial {
    /// RSA modulus and exponent, minimal big-endian.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// EC point, coordinates left-padded to the curve size.
    Ec {
        /// Curve.
        curve: Curve,
        /// X coordinate.
        x: Vec<u8>,
        /// Y coordinate.
        y: Vec<u8>,
    },
}

/// One validated public signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kid: String,
    material: KeyMaterial,
    spki_der: Vec<u8>,
}

impl PublicKey {
    /// Parses one key given as PEM `PUBLIC KEY`, `CERTIFICATE`, or a private key (public half kept).
    pub fn from_pem(pem: &[u8]) -> Result<Vec<Self>, Reason> {
        pem_blocks::parse(pem)
            .map(|keys| keys.into_iter().map(Self::with_computed_kid).collect())
            .map_err(|(_, reason)| reason)
    }

    fn with_computed_kid(canonical: spki::Canonical) -> Self {
        Self {
            kid: kid::key_id(&canonical.spki_der),
            material: canonical.material,
            spki_der: canonical.spki_der,
        }
    }

    /// Parses a JWKS document (`{"keys":[…]}`, e.g. fetched from a `jwks_uri`): RSA and EC
    /// signing keys, kids as given (computed when absent); private members are refused.
    pub fn from_jwks(json: &[u8]) -> Result<Vec<Self>, String> {
        let keys = jwks_file::parse(json).map_err(|(index, reason)| match index {
            Some(i) => format!("JWK #{}: {reason}", i + 1),
            None => reason.to_string(),
        })?;
        Ok(keys
            .into_iter()
            .map(|(canonical, kid)| match kid {
                Some(kid) => Self {
                    kid,
                    material: canonical.material,
                    spki_der: canonical.spki_der,
                },
                None => Self::with_computed_kid(canonical),
            })
            .collect())
    }

    /// Parses the JWKS of a Kubernetes API server (`/openid/v1/jwks`): as
    /// [`PublicKey::from_jwks`] (public RSA and EC signing keys only; a JWK with private members
    /// is refused), and every JWK must carry the kid kube-apiserver computes for its key.
    /// Errors carry the index of the JWK they are about.
    pub fn from_apiserver_jwks(json: &[u8]) -> Result<Vec<Self>, (Option<usize>, Reason)> {
        let keys = jwks_file::parse(json)?;
        keys.into_iter()
            .enumerate()
            .map(|(index, (canonical, kid))| {
                let key = Self::with_computed_kid(canonical);
                match kid {
                    Some(kid) if kid == key.kid => Ok(key),
                    Some(kid) => Err((
                        Some(index),
                        Reason::KidMismatch {
                            kid,
                            expected: key.kid,
                        },
                    )),
                    None => Err((Some(index), Reason::Malformed("JWK has no kid".into()))),
                }
            })
            .collect()
    }

    /// The key ID published as `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public numbers.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// Canonical DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The algorithm kube-apiserver advertises for this key.
    pub fn algorithm(&self) -> Algorithm {
        match self.material {
            KeyMaterial::Rsa { .. } => Algorithm::RS256,
            KeyMaterial::Ec { curve, .. } => match curve {
                Curve::P256 => Algorithm::ES256,
                Curve::P384 => Algorithm::ES384,
                Curve::P521 => Algorithm::ES512,
            },
        }
    }

    /// `RSA 2048` or `EC P-256`, for logs.
    pub fn describe(&self) -> String {
        match &self.material {
            KeyMaterial::Rsa { n, .. } => format!("RSA {}", n.len() * 8),
            KeyMaterial::Ec { curve, .. } => format!("EC {}", curve.name()),
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("type", &self.describe())
            .finish()
    }
}

/// A complete, non-empty set of public keys ordered by kid, each published once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<PublicKey>,
}

impl KeySet {
    /// Loads every key from the given files and directories. Either every source loads and the
    /// set is non-empty, or nothing is returned: there is no partial set.
    pub fn load(sources: &[PathBuf]) -> Result<Self, KeyError> {
        let mut found = Vec::new();
        for source in sources {
            for file in source::expand(source)? {
                for key in load_file(&file.path, &file.contents)? {
                    found.push((key, file.path.clone()));
                }
            }
        }
        Self::from_keys(found).map_err(|e| match e {
            BuildError::Empty => KeyError::NoKeys {
                sources: sources
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            BuildError::KidConflict { kid, first, second } => {
                KeyError::KidConflict { kid, first, second }
            }
        })
    }

    /// Builds a set from keys tagged with where they came from: sorted by kid, identical keys
    /// merged, one kid on two different keys refused.
    fn from_keys(found: Vec<(PublicKey, PathBuf)>) -> Result<Self, BuildError> {
        let mut by_kid: BTreeMap<String, (PublicKey, PathBuf)> = BTreeMap::new();
        for (key, path) in found {
            match by_kid.get(&key.kid) {
                Some((existing, _)) if existing.spki_der == key.spki_der => {}
                Some((_, first)) => {
                    return Err(BuildError::KidConflict {
                        kid: key.kid,
                        first: first.clone(),
                        second: path,
                    });
                }
                None => {
                    by_kid.insert(key.kid.clone(), (key, path));
                }
            }
        }
        if by_kid.is_empty() {
            return Err(BuildError::Empty);
        }
        Ok(Self {
            keys: by_kid.into_values().map(|(key, _)| key).collect(),
        })
    }

    /// The union of key sets from different sources, each named for messages: identical keys
    /// once, one kid on two different keys refused (naming both sources).
    pub fn union<'a>(
        parts: impl IntoIterator<Item = (&'a str, &'a Self)>,
    ) -> Result<Self, KeyError> {
        let found = parts
            .into_iter()
            .flat_map(|(name, set)| {
                set.keys
                    .iter()
                    .map(move |k| (k.clone(), PathBuf::from(name)))
            })
            .collect();
        Self::from_keys(found).map_err(|e| match e {
            BuildError::Empty => KeyError::NoKeys {
                sources: "any source".into(),
            },
            BuildError::KidConflict { kid, first, second } => {
                KeyError::KidConflict { kid, first, second }
            }
        })
    }

    /// Builds a set from already validated keys (for tests and benches).
    pub fn from_public_keys(keys: Vec<PublicKey>) -> Option<Self> {
        Self::from_keys(keys.into_iter().map(|k| (k, PathBuf::new())).collect()).ok()
    }

    /// The keys, ordered by kid.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The kids, ordered.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(PublicKey::kid)
    }
}

enum BuildError {
    Empty,
    KidConflict {
        kid: String,
        first: PathBuf,
        second: PathBuf,
    },
}

fn load_file(path: &Path, contents: &[u8]) -> Result<Vec<PublicKey>, KeyError> {
    let file_error = |reason| KeyError::Rejected {
        path: path.to_owned(),
        location: None,
        reason,
    };
    if contents.iter().all(u8::is_ascii_whitespace) {
        return Err(file_error(Reason::EmptyFile));
    }
    if jwks_file::looks_like_json(path, contents) {
        let keys = jwks_file::parse(contents).map_err(|(index, reason)| KeyError::Rejected {
            path: path.to_owned(),
            location: index.map(|i| format!("JWK #{}", i + 1)),
            reason,
        })?;
        return Ok(keys
            .into_iter()
            .map(|(canonical, kid)| match kid {
                Some(kid) => PublicKey {
                    kid,
                    material: canonical.material,
                    spki_der: canonical.spki_der,
                },
                None => PublicKey::with_computed_kid(canonical),
            })
            .collect());
    }
    let keys = pem_blocks::parse(contents).map_err(|(block, reason)| KeyError::Rejected {
        path: path.to_owned(),
        location: block.map(|b| b.to_string()),
        reason,
    })?;
    Ok(keys.into_iter().map(PublicKey::with_computed_kid).collect())
}

/// Why a key source could not be loaded. Messages name the file and never include key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A path could not be read.
    #[error("cannot read key source {}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but refused.
    #[error("key file {}: {}{reason}", path.display(), location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Rejected {
        /// The file.
        path: PathBuf,
        /// The PEM block or JWK inside the file, when the problem is one of them.
        location: Option<String>,
        /// Why.
        reason: Reason,
    },
    /// Two different keys carry the same kid.
    #[error("key ID {kid} is carried by two different keys, in {} and {}", first.display(), second.display())]
    KidConflict {
        /// The kid.
        kid: String,
        /// Where the first key came from.
        first: PathBuf,
        /// Where the second key came from.
        second: PathBuf,
    },
    /// Every source was read and none held a key.
    #[error("no keys found in {sources}; an empty key set is never published")]
    NoKeys {
        /// The sources, comma separated.
        sources: String,
    },
}

/// Why one key, block or file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Zero bytes or only whitespace.
    #[error("file is empty")]
    EmptyFile,
    /// Over 1 MiB (`source::MAX_KEY_FILE_BYTES`).
    #[error("file is {0} bytes; key files over 1 MiB are refused")]
    TooLarge(u64),
    /// Text without any PEM block.
    #[error("no PEM block found (expected PUBLIC KEY, CERTIFICATE or a private key)")]
    NoPemBlock,
    /// A JWKS with an empty `keys` array.
    #[error("JWKS has no keys")]
    EmptyJwks,
    /// An encrypted private key.
    #[error(
        "encrypted private keys are not supported; decrypt it first (openssl pkey -in KEY -out PLAIN)"
    )]
    Encrypted,
    /// A PEM label issuerd does not read.
    #[error("unsupported PEM block type {0:?}")]
    UnsupportedBlock(String),
    /// A key algorithm other than RSA or ECDSA.
    #[error(
        "{0} keys are not supported; Kubernetes signs with RSA (2048 bits or more) or ECDSA P-256/P-384/P-521"
    )]
    UnsupportedAlgorithm(String),
    /// An elliptic curve other than P-256, P-384 or P-521.
    #[error("elliptic curve {0} is not supported; use P-256, P-384 or P-521")]
    UnsupportedCurve(String),
    /// An RSA modulus under 2048 bits.
    #[error("RSA key has {0} bits; at least 2048 are required")]
    RsaTooSmall(usize),
    /// An RSA modulus over 8192 bits.
    #[error("RSA key has {0} bits; at most 8192 are supported")]
    RsaTooLarge(usize),
    /// A JWK with private members.
    #[error("JWK carries the private member {0:?}; only public keys may be published")]
    PrivateJwk(String),
    /// A JWK whose kid is not the one kube-apiserver computes for its key.
    #[error(
        "JWK kid {kid:?} is not the key ID Kubernetes computes for its key ({expected:?}, \
         base64url(SHA-256(SubjectPublicKeyInfo)))"
    )]
    KidMismatch {
        /// The kid given.
        kid: String,
        /// The kid of the key.
        expected: String,
    },
    /// A JWK whose `alg` does not fit its key.
    #[error("JWK alg {alg:?} does not match its key (expected {expected:?})")]
    JwkAlgMismatch {
        /// The alg given.
        alg: String,
        /// The alg the key signs with.
        expected: &'static str,
    },
    /// Anything else structurally wrong with the input.
    #[error("{0}")]
    Malformed(String),
}
