//! An issued certificate as ACME hands it over: PEM chain + PEM key, checked and described.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use super::AcmeError;

/// A certificate chain and its private key, parsed and checked: the key matches the leaf.
#[derive(Clone)]
pub struct Issued {
    /// The chain, leaf first, as PEM.
    pub chain_pem: String,
    /// The leaf's private key, as PEM (PKCS#8).
    pub key_pem: String,
    /// What rustls serves.
    pub certified: Arc<CertifiedKey>,
    /// The leaf's DNS names (SANs).
    pub names: Vec<String>,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
    /// Start of the leaf's validity.
    pub not_before: SystemTime,
    /// End of the leaf's validity.
    pub not_after: SystemTime,
}

impl Issued {
    /// Parses and checks a PEM chain and key; `origin` names where they come from in errors.
    pub fn from_pem(chain_pem: String, key_pem: String, origin: &str) -> Result<Self, AcmeError> {
        let invalid = |reason: String| AcmeError::InvalidCertificate {
            origin: origin.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("bad certificate PEM: {e}")))?;
        let leaf = chain
            .first()
            .ok_or_else(|| invalid("no certificate in the chain".into()))?;
        let parsed = x509_cert::Certificate::from_der(leaf)
            .map_err(|e| invalid(format!("bad leaf certificate: {e}")))?;
        let tbs = &parsed.tbs_certificate;
        let names = match tbs.get::<SubjectAltName>() {
            Ok(Some((_, sans))) => sans
                .0
                .into_iter()
                .filter_map(|name| match name {
                    GeneralName::DnsName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(invalid(format!("bad subject alternative names: {e}"))),
        };
        let serial = tbs
            .serial_number
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| invalid(format!("bad private key PEM: {e}")))?;
        let signing = aws_lc_rs::sign::any_supported_type(&key)
            .map_err(|e| invalid(format!("unusable private key: {e}")))?;
        let certified = CertifiedKey::new(chain, signing);
        certified
            .keys_match()
            .map_err(|e| invalid(format!("the key does not match the leaf certificate: {e}")))?;
        Ok(Self {
            chain_pem,
            key_pem,
            certified: Arc::new(certified),
            names,
            serial,
            not_before: tbs.validity.not_before.to_system_time(),
            not_after: tbs.validity.not_after.to_system_time(),
        })
    }

    /// The leaf names every one of `domains`.
    pub fn covers(&self, domains: &[String]) -> bool {
        domains
            .iter()
            .all(|d| self.names.iter().any(|n| n.eq_ignore_ascii_case(d)))
    }

    /// When renewal is due: `renew_before` ahead of expiry.
    pub fn renewal_due(&self, renew_before: Duration) -> SystemTime {
        self.not_after
            .checked_sub(renew_before)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("names", &self.names)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}
