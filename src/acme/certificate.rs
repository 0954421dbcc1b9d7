//! An issued certificate as ACME hands it over: the PEM texts (for the cache) and the checked
//! [`CertifiedPair`] (for serving).

use std::time::{Duration, SystemTime};

use crate::tls::CertifiedPair;

use super::AcmeError;

/// A certificate chain and its private key, as PEM and as a checked pair.
#[derive(Debug)]
pub struct Issued {
    /// The chain, leaf first, as PEM.
    pub chain_pem: String,
    /// The leaf's private key, as PEM (PKCS#8).
    key_pem: String,
    /// The parsed pair: key matches leaf, within validity.
    pub pair: CertifiedPair,
}

impl Issued {
    /// Parses and checks a chain and key; `chain_origin` and `key_origin` name them in errors.
    pub fn from_pem(
        chain_pem: String,
        chain_origin: &str,
        key_pem: String,
        key_origin: &str,
    ) -> Result<Self, AcmeError> {
        let pair = CertifiedPair::from_named_pem(
            chain_pem.as_bytes(),
            chain_origin,
            key_pem.as_bytes(),
            key_origin,
        )
        .map_err(AcmeError::Certificate)?;
        Ok(Self {
            chain_pem,
            key_pem,
            pair,
        })
    }

    /// The private key PEM (for the cache).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The leaf names every one of `domains`.
    pub fn covers(&self, domains: &[String]) -> bool {
        domains.iter().all(|d| self.pair.covers(d))
    }

    /// When renewal is due: `renew_before` ahead of expiry.
    pub fn renewal_due(&self, renew_before: Duration) -> SystemTime {
        self.pair
            .not_after()
            .checked_sub(renew_before)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}
