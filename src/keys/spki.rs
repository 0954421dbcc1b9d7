//! The canonical public key: SubjectPublicKeyInfo DER in, validated `PublicKey` out.
//!
//! Every input form (PEM public key, certificate, private key, JWK) ends up here, so the kid is
//! always computed over the same canonical re-encoding Go's `x509.MarshalPKIXPublicKey` produces.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, ECDSA_P521_SHA512_ASN1, ParsedPublicKey,
};
use der::asn1::{AnyRef, BitString, ObjectIdentifier, UintRef};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use super::{Curve, KeyMaterial, Reason};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the limit of the crypto provider's RSA verifier).
pub const MAX_RSA_BITS: usize = 8192;

pub(crate) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
pub(crate) const EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// Names the algorithms people try that issuerd refuses, for a readable error.
pub(crate) fn algorithm_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.3.101.110" => "X25519".into(),
        "1.3.101.111" => "X448".into(),
        "1.2.840.10040.4.1" => "DSA".into(),
        "1.2.840.113549.1.1.10" => "RSASSA-PSS".into(),
        "1.2.840.10046.2.1" => "Diffie-Hellman".into(),
        other => format!("OID {other}"),
    }
}

fn curve_name(oid: &ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.3.132.0.10" => "secp256k1".into(),
        "1.3.36.3.3.2.8.1.1.7" => "brainpoolP256r1".into(),
        "1.3.36.3.3.2.8.1.1.11" => "brainpoolP384r1".into(),
        "1.3.36.3.3.2.8.1.1.13" => "brainpoolP512r1".into(),
        "1.2.840.10045.3.1.1" => "P-192".into(),
        "1.3.132.0.33" => "P-224".into(),
        other => format!("OID {other}"),
    }
}

impl Curve {
    pub(crate) fn from_oid(oid: &ObjectIdentifier) -> Result<Self, Reason> {
        match *oid {
            SECP256R1 => Ok(Self::P256),
            SECP384R1 => Ok(Self::P384),
            SECP521R1 => Ok(Self::P521),
            _ => Err(Reason::UnsupportedCurve(curve_name(oid))),
        }
    }

    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => SECP256R1,
            Self::P384 => SECP384R1,
            Self::P521 => SECP521R1,
        }
    }
}

/// A validated public key with its canonical DER encoding.
pub(crate) struct Canonical {
    pub(crate) material: KeyMaterial,
    pub(crate) spki_der: Vec<u8>,
}

/// Parses and validates DER SubjectPublicKeyInfo, returning its canonical form.
pub(crate) fn from_spki_der(der: &[u8]) -> Result<Canonical, Reason> {
    let spki = SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| Reason::Malformed(format!("SubjectPublicKeyInfo: {e}")))?;
    let key_bytes = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| Reason::Malformed("public key bit string is not byte aligned".into()))?;
    match spki.algorithm.oid {
        RSA_ENCRYPTION => from_pkcs1_public_der(key_bytes),
        EC_PUBLIC_KEY => {
            let params: AnyRef<'_> = spki.algorithm.parameters.ok_or_else(|| {
                Reason::Malformed("EC public key without curve parameters".into())
            })?;
            let oid: ObjectIdentifier = params.decode_as().map_err(|_| {
                Reason::UnsupportedCurve("explicit (non-named) curve parameters".into())
            })?;
            from_ec_point(Curve::from_oid(&oid)?, key_bytes)
        }
        ref oid => Err(Reason::UnsupportedAlgorithm(algorithm_name(oid))),
    }
}

/// Parses and validates a PKCS#1 `RSAPublicKey`.
pub(crate) fn from_pkcs1_public_der(der: &[u8]) -> Result<Canonical, Reason> {
    let key = pkcs1::RsaPublicKey::from_der(der)
        .map_err(|e| Reason::Malformed(format!("RSA public key: {e}")))?;
    from_rsa_components(key.modulus.as_bytes(), key.public_exponent.as_bytes())
}

/// Validates RSA `n` and `e` (big-endian) and builds the canonical key.
pub(crate) fn from_rsa_components(n: &[u8], e: &[u8]) -> Result<Canonical, Reason> {
    let n = strip_leading_zeros(n);
    let e = strip_leading_zeros(e);
    let bits = bit_length(n);
    if bits < MIN_RSA_BITS {
        return Err(Reason::RsaTooSmall(bits));
    }
    if bits > MAX_RSA_BITS {
        return Err(Reason::RsaTooLarge(bits));
    }
    let pkcs1 = pkcs1::RsaPublicKey {
        modulus: UintRef::new(n).map_err(|e| Reason::Malformed(format!("RSA modulus: {e}")))?,
        public_exponent: UintRef::new(e)
            .map_err(|e| Reason::Malformed(format!("RSA exponent: {e}")))?,
    }
    .to_der()
    .map_err(|e| Reason::Malformed(format!("RSA public key: {e}")))?;
    // RSA_check_key: rejects even moduli, tiny or even exponents and other broken keys.
    aws_lc_rs::rsa::PublicKey::from_der(&pkcs1)
        .map_err(|e| Reason::Malformed(format!("RSA public key rejected: {e}")))?;
    let algorithm = AlgorithmIdentifierOwned {
        oid: RSA_ENCRYPTION,
        parameters: Some(der::Any::null()),
    };
    Ok(Canonical {
        spki_der: encode_spki(algorithm, &pkcs1)?,
        material: KeyMaterial::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        },
    })
}

/// Validates an uncompressed EC point (`04 || x || y`) on `curve` and builds the canonical key.
pub(crate) fn from_ec_point(curve: Curve, point: &[u8]) -> Result<Canonical, Reason> {
    let size = curve.coordinate_len();
    match point.first() {
        Some(0x04) if point.len() == 1 + 2 * size => {}
        Some(0x02 | 0x03) => {
            return Err(Reason::Malformed(
                "compressed EC points are not supported".into(),
            ));
        }
        _ => {
            return Err(Reason::Malformed(format!(
                "EC point is not an uncompressed {} point",
                curve.name()
            )));
        }
    }
    let verifier = match curve {
        Curve::P256 => &ECDSA_P256_SHA256_ASN1,
        Curve::P384 => &ECDSA_P384_SHA384_ASN1,
        Curve::P521 => &ECDSA_P521_SHA512_ASN1,
    };
    ParsedPublicKey::new(verifier, point)
        .map_err(|_| Reason::Malformed(format!("EC point is not on the {} curve", curve.name())))?;
    let algorithm = AlgorithmIdentifierOwned {
        oid: EC_PUBLIC_KEY,
        parameters: Some(
            der::Any::encode_from(&curve.oid())
                .map_err(|e| Reason::Malformed(format!("curve: {e}")))?,
        ),
    };
    Ok(Canonical {
        spki_der: encode_spki(algorithm, point)?,
        material: KeyMaterial::Ec {
            curve,
            x: point[1..=size].to_vec(),
            y: point[1 + size..].to_vec(),
        },
    })
}

fn encode_spki(algorithm: AlgorithmIdentifierOwned, key: &[u8]) -> Result<Vec<u8>, Reason> {
    let subject_public_key =
        BitString::from_bytes(key).map_err(|e| Reason::Malformed(format!("public key: {e}")))?;
    SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key,
    }
    .to_der()
    .map_err(|e| Reason::Malformed(format!("SubjectPublicKeyInfo: {e}")))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn bit_length(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&top) => be.len() * 8 - top.leading_zeros() as usize,
    }
}
