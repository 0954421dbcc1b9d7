//! PEM -> public keys, accepting everything kube-apiserver's `--service-account-key-file` does
//! (and PKCS#1 `RSA PUBLIC KEY` and PKCS#8 EC keys besides). Private keys yield their public half.
//!
//! Unlike kube-apiserver, a block that cannot be used is an error for the whole file instead of
//! being skipped: a silently dropped key is a rotation outage waiting to happen.

use std::fmt;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};

use super::spki::{self, Canonical, EC_PUBLIC_KEY, RSA_ENCRYPTION};
use super::{Curve, Reason};

/// Names a block inside a file: `PEM block #2 (PRIVATE KEY)`.
#[derive(Debug, Clone)]
pub(crate) struct BlockLocation {
    index: usize,
    label: String,
}

impl fmt::Display for BlockLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PEM block #{} ({})", self.index + 1, self.label)
    }
}

/// Parses every PEM block of a file. Either all blocks yield keys (or are `EC PARAMETERS`), or
/// the first failure is returned with the block it happened in.
pub(crate) fn parse(contents: &[u8]) -> Result<Vec<Canonical>, (Option<BlockLocation>, Reason)> {
    let blocks = pem::parse_many(contents).map_err(|e| (None, pem_error(&e)))?;
    let begins = count_begin_lines(contents);
    if begins > blocks.len() {
        return Err((
            None,
            Reason::Malformed(format!(
                "PEM block #{} has no END line (file truncated or still being written)",
                blocks.len() + 1
            )),
        ));
    }
    if blocks.is_empty() {
        return Err((None, Reason::NoPemBlock));
    }
    let mut keys = Vec::with_capacity(blocks.len());
    let mut ec_parameters = None;
    for (index, block) in blocks.iter().enumerate() {
        let location = || {
            Some(BlockLocation {
                index,
                label: block.tag().to_owned(),
            })
        };
        let encrypted = block
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"));
        if encrypted {
            return Err((location(), Reason::Encrypted));
        }
        if block.tag() == "EC PARAMETERS" {
            let oid = ObjectIdentifier::from_der(block.contents()).map_err(|_| {
                (
                    location(),
                    Reason::UnsupportedCurve("explicit (non-named) curve parameters".into()),
                )
            })?;
            ec_parameters = Some(oid);
            continue;
        }
        let key = parse_block(block.tag(), block.contents(), ec_parameters.take())
            .map_err(|reason| (location(), reason))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err((None, Reason::NoPemBlock));
    }
    Ok(keys)
}

/// Describes a PEM framing error in fixed words. The pem crate's own messages quote the
/// offending line or symbol, which inside a private key block is private key material.
fn pem_error(error: &pem::PemError) -> Reason {
    use pem::PemError;
    Reason::Malformed(
        match error {
            PemError::MismatchedTags(..) => "invalid PEM: BEGIN and END labels differ",
            PemError::MissingBeginTag | PemError::MalformedFraming => {
                "invalid PEM: malformed BEGIN/END lines"
            }
            PemError::MissingEndTag => {
                "invalid PEM: a block has no END line (file truncated or still being written)"
            }
            PemError::MissingData => "invalid PEM: a block has no data",
            PemError::InvalidData(_) => "invalid PEM: a block's base64 data is corrupt",
            PemError::InvalidHeader(_) => {
                "invalid PEM: a block has a malformed header line or a blank line inside its data"
            }
            PemError::NotUtf8(_) => "invalid PEM: not UTF-8 text",
        }
        .to_owned(),
    )
}

fn count_begin_lines(contents: &[u8]) -> usize {
    const BEGIN: &[u8] = b"-----BEGIN ";
    contents
        .windows(BEGIN.len())
        .filter(|w| *w == BEGIN)
        .count()
}

fn parse_block(
    label: &str,
    der: &[u8],
    ec_parameters: Option<ObjectIdentifier>,
) -> Result<Canonical, Reason> {
    match label {
        "PUBLIC KEY" => spki::from_spki_der(der),
        "RSA PUBLIC KEY" => spki::from_pkcs1_public_der(der),
        "CERTIFICATE" => certificate(der),
        "RSA PRIVATE KEY" => rsa_private_pkcs1(der),
        "PRIVATE KEY" => private_pkcs8(der),
        "EC PRIVATE KEY" => ec_private_sec1(der, ec_parameters),
        "ENCRYPTED PRIVATE KEY" => Err(Reason::Encrypted),
        "DSA PRIVATE KEY" | "DSA PUBLIC KEY" => Err(Reason::UnsupportedAlgorithm("DSA".into())),
        "OPENSSH PRIVATE KEY" => Err(Reason::Malformed(
            "OpenSSH private key format is not supported; convert it to PKCS#8 (ssh-keygen -p -m PKCS8)".into(),
        )),
        other => Err(Reason::UnsupportedBlock(other.to_owned())),
    }
}

fn certificate(der: &[u8]) -> Result<Canonical, Reason> {
    let certificate = x509_cert::Certificate::from_der(der)
        .map_err(|e| Reason::Malformed(format!("X.509 certificate: {e}")))?;
    let spki_der = certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| Reason::Malformed(format!("X.509 certificate public key: {e}")))?;
    spki::from_spki_der(&spki_der)
}

/// PKCS#1 `RSAPrivateKey`: the public numbers are checked against the private ones by the crypto
/// provider before anything is kept.
fn rsa_private_pkcs1(der: &[u8]) -> Result<Canonical, Reason> {
    let public = rsa_public_of_private(der)?;
    aws_lc_rs::rsa::KeyPair::from_der(der)
        .map_err(|e| Reason::Malformed(format!("RSA private key rejected: {e}")))?;
    Ok(public)
}

fn rsa_public_of_private(pkcs1_der: &[u8]) -> Result<Canonical, Reason> {
    let private = pkcs1::RsaPrivateKey::from_der(pkcs1_der)
        .map_err(|e| Reason::Malformed(format!("RSA private key: {e}")))?;
    spki::from_rsa_components(
        private.modulus.as_bytes(),
        private.public_exponent.as_bytes(),
    )
}

fn private_pkcs8(der: &[u8]) -> Result<Canonical, Reason> {
    let info = pkcs8::PrivateKeyInfo::from_der(der)
        .map_err(|e| Reason::Malformed(format!("PKCS#8 private key: {e}")))?;
    match info.algorithm.oid {
        RSA_ENCRYPTION => {
            let public = rsa_public_of_private(info.private_key)?;
            aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
                .map_err(|e| Reason::Malformed(format!("RSA private key rejected: {e}")))?;
            Ok(public)
        }
        EC_PUBLIC_KEY => {
            let oid = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or_else(|| Reason::Malformed("EC private key without a named curve".into()))?;
            ec_public_of_private(Curve::from_oid(&oid)?, der)
        }
        ref oid => Err(Reason::UnsupportedAlgorithm(spki::algorithm_name(oid))),
    }
}

fn ec_private_sec1(
    der: &[u8],
    ec_parameters: Option<ObjectIdentifier>,
) -> Result<Canonical, Reason> {
    let private = sec1::EcPrivateKey::from_der(der)
        .map_err(|e| Reason::Malformed(format!("EC private key: {e}")))?;
    let oid = private
        .parameters
        .and_then(|p| p.named_curve())
        .or(ec_parameters)
        .ok_or_else(|| Reason::Malformed("EC private key without a named curve".into()))?;
    ec_public_of_private(Curve::from_oid(&oid)?, der)
}

/// Derives (and so checks) the public point of an EC private key in SEC1 or PKCS#8 form.
fn ec_public_of_private(curve: Curve, der: &[u8]) -> Result<Canonical, Reason> {
    let algorithm = match curve {
        Curve::P256 => &ECDSA_P256_SHA256_FIXED_SIGNING,
        Curve::P384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &ECDSA_P521_SHA512_FIXED_SIGNING,
    };
    let pair = EcdsaKeyPair::from_private_key_der(algorithm, der)
        .map_err(|e| Reason::Malformed(format!("EC private key rejected: {e}")))?;
    spki::from_ec_point(curve, pair.public_key().as_ref())
}
