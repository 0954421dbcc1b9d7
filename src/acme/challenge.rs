//! The tls-alpn-01 answer (RFC 8737): a self-signed certificate for the domain carrying the
//! critical `acmeIdentifier` extension with the SHA-256 digest of the key authorization.

use std::sync::Arc;

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use super::AcmeError;

/// The certificate that answers the tls-alpn-01 challenge for `domain`.
pub fn certificate(
    domain: &str,
    key_authorization_digest: &[u8],
) -> Result<Arc<CertifiedKey>, AcmeError> {
    let error = |e: rcgen::Error| AcmeError::Challenge {
        domain: domain.to_owned(),
        reason: e.to_string(),
    };
    let mut params = CertificateParams::new(vec![domain.to_owned()]).map_err(error)?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(
        key_authorization_digest,
    )];
    let key = KeyPair::generate().map_err(error)?;
    let cert = params.self_signed(&key).map_err(error)?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = aws_lc_rs::sign::any_supported_type(&der).map_err(|e| AcmeError::Challenge {
        domain: domain.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use x509_cert::der::Decode as _;

    #[test]
    fn carries_the_critical_acme_identifier() {
        let digest = [7u8; 32];
        let key = super::certificate("issuer.example", &digest).unwrap();
        let cert = x509_cert::Certificate::from_der(&key.cert[0]).unwrap();
        let extensions = cert.tbs_certificate.extensions.unwrap();
        let ext = extensions
            .iter()
            .find(|e| e.extn_id.to_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // OCTET STRING (0x04) of 32 bytes, holding the digest.
        let value = ext.extn_value.as_bytes();
        assert_eq!(&value[..2], &[0x04, 32]);
        assert_eq!(&value[2..], &digest);
    }
}
