//! Shared bench inputs: generated keys as PEM, parsed key sets, a publication.
#![allow(dead_code, missing_docs, unreachable_pub)]

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use issuerd::issuer::{DiscoveryProfile, Issuer, Publication};
use issuerd::keys::{KeySet, PublicKey};

/// `count` fresh P-256 private keys as PKCS#8 PEM.
pub fn private_pems(count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
            let der = pair.to_pkcs8v1().unwrap();
            pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()))
        })
        .collect()
}

pub fn key_set(count: usize) -> KeySet {
    let keys = private_pems(count)
        .iter()
        .flat_map(|p| PublicKey::from_pem(p.as_bytes()).unwrap())
        .collect();
    KeySet::from_public_keys(keys).unwrap()
}

pub fn publication() -> Publication {
    Publication {
        issuer: Issuer::new("https://issuer.example.com/clusters/a", None, false).unwrap(),
        profile: DiscoveryProfile::Kubernetes,
        max_age_secs: 3600,
    }
}
