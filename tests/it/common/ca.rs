//! A certificate authority made in the test (rcgen, aws-lc-rs): private CAs, serving
//! certificates with chosen names, serials and validity.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SerialNumber,
};
use rustls::pki_types::CertificateDer;

/// A test CA that issues serving certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "issuerd test CA");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf for `names` with `serial`, valid from `days_from_now.0` to `.1` days from now.
    pub fn leaf(&self, names: &[&str], serial: u64, valid_days: (i64, i64)) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].to_owned());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(valid_days.0);
        params.not_after = now + time::Duration::days(valid_days.1);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain: format!("{}{}", cert.pem(), self.pem()),
            key: key.serialize_pem(),
        }
    }
}

pub struct Leaf {
    pub chain: String,
    pub key: String,
}

impl Leaf {
    pub fn write(&self, dir: &Path) {
        write_atomically(&dir.join("tls.crt"), self.chain.as_bytes());
        write_atomically(&dir.join("tls.key"), self.key.as_bytes());
    }
}

/// Writes `bytes` to `path` by a rename, as certificate managers do.
pub fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
