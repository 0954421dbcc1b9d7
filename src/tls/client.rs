//! What issuerd's own TLS clients share (`probe`, `thumbprint`, the handshake load client): the
//! server name of a URL, and a verifier that takes any certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The host of `url` as an authority writes it (IPv6 in brackets) and its TLS server name; the
/// error is the reason, for the caller to name the URL with.
pub fn host_and_server_name(url: &url::Url) -> Result<(String, ServerName<'static>), &'static str> {
    match url.host() {
        Some(url::Host::Domain(name)) => Ok((
            name.to_owned(),
            ServerName::try_from(name.to_owned()).map_err(|_| "invalid host name")?,
        )),
        Some(url::Host::Ipv4(ip)) => {
            Ok((ip.to_string(), ServerName::from(std::net::IpAddr::V4(ip))))
        }
        Some(url::Host::Ipv6(ip)) => Ok((
            format!("[{ip}]"),
            ServerName::from(std::net::IpAddr::V6(ip)),
        )),
        None => Err("has no host"),
    }
}

/// Accepts any certificate (as kubelet's https probes do, or a load client measuring the
/// server); the handshake signatures are still checked.
#[derive(Debug)]
pub struct AnyCertificate(Arc<CryptoProvider>);

impl AnyCertificate {
    /// A verifier checking signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(Self(provider))
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
