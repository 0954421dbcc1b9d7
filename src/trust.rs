//! What issuerd's HTTPS clients trust (`check`, `verify`, `sts`, `serve --sts-listen`, `probe`,
//! `thumbprint`): the platform's public roots, plus the private CAs given with `--ca-file`
//! (added to the public roots, never replacing them, as Vault's `oidc_discovery_ca_pem`), plus,
//! for the STS beside `serve`, the very certificate `serve` presents.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The most bytes a `--ca-file` may hold (a bundle of every public root is about 250 KiB).
const MAX_CA_FILE: u64 = 4 << 20;

/// The certificate a server presents now (its leaf), for a client that trusts exactly it.
pub type Pinned = Arc<dyn Fn() -> Option<CertificateDer<'static>> + Send + Sync>;

/// The trust of one client: public roots, extra CAs, and at most one pinned certificate.
#[derive(Clone, Default)]
pub struct Trust {
    extra_roots: Vec<CertificateDer<'static>>,
    /// Where the extra roots came from, for messages.
    ca_files: Vec<PathBuf>,
    pinned: Option<Pinned>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("ca_files", &self.ca_files)
            .field("extra_roots", &self.extra_roots.len())
            .field("pinned", &self.pinned.is_some())
            .finish()
    }
}

/// Why a CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file could not be read.
    #[error("--ca-file {}: cannot read it", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a PEM bundle of certificates.
    #[error("--ca-file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The platform's roots could not be loaded.
    #[error("cannot set up certificate verification: {0}")]
    Verifier(String),
}

impl Trust {
    /// The platform's public roots and nothing else.
    pub fn public() -> Self {
        Self::default()
    }

    /// The public roots plus every certificate in `files` (PEM bundles: one or more
    /// `CERTIFICATE` blocks each). A file that cannot be read, holds no certificate or holds
    /// one that cannot be a trust anchor is an error naming it.
    pub fn with_ca_files(files: &[PathBuf]) -> Result<Self, TrustError> {
        let mut trust = Self::public();
        for path in files {
            trust.extra_roots.extend(read_ca_file(path)?);
            trust.ca_files.push(path.clone());
        }
        Ok(trust)
    }

    /// Also trusts exactly the certificate `pinned` returns when a server presents it (the
    /// handshake signature is still checked).
    pub fn with_pinned(mut self, pinned: Pinned) -> Self {
        self.pinned = Some(pinned);
        self
    }

    /// The `--ca-file`s read, in order.
    pub fn ca_files(&self) -> &[PathBuf] {
        &self.ca_files
    }

    /// The extra roots (from `--ca-file`).
    pub fn extra_roots(&self) -> &[CertificateDer<'static>] {
        &self.extra_roots
    }

    /// The verifier: the platform's (public roots, plus the extra ones), and the pinned
    /// certificate if any.
    pub fn verifier(
        &self,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<dyn ServerCertVerifier>, TrustError> {
        let platform = rustls_platform_verifier::Verifier::new_with_extra_roots(
            self.extra_roots.iter().cloned(),
            provider,
        )
        .map_err(|e| TrustError::Verifier(e.to_string()))?;
        let platform: Arc<dyn ServerCertVerifier> = Arc::new(platform);
        Ok(match &self.pinned {
            Some(pinned) => Arc::new(PinnedOrElse {
                pinned: Arc::clone(pinned),
                otherwise: platform,
            }),
            None => platform,
        })
    }

    /// A rustls client configuration (aws-lc-rs) verifying with [`Trust::verifier`].
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TrustError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = self.verifier(Arc::clone(&provider))?;
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TrustError::Verifier(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    /// Mozilla's roots plus the extra ones, for a verifier that must not depend on the
    /// platform (`thumbprint` reasons about the chain AWS sees).
    pub fn mozilla_root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        roots.add_parsable_certificates(self.extra_roots.iter().cloned());
        roots
    }

    /// A hint to add to a certificate error: which flag makes a private CA trusted.
    pub fn hint(&self, error: &str) -> Option<String> {
        // BadSignature: a trusted CA has the issuer's name but not its key (a regenerated CA).
        let unknown = ["UnknownIssuer", "unknown issuer", "BadSignature"]
            .iter()
            .any(|needle| error.contains(needle));
        match (unknown, self.ca_files.is_empty()) {
            (false, _) => None,
            (true, true) => Some(
                "the certificate is not signed by a publicly trusted CA; for a private CA, pass \
                 its certificate with --ca-file FILE"
                    .into(),
            ),
            (true, false) => Some(format!(
                "the certificate is signed neither by a publicly trusted CA nor by one in --ca-file \
                 {}",
                self.ca_files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Every certificate of a PEM bundle, each usable as a trust anchor.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let invalid = |reason: String| TrustError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let read = |source| TrustError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > MAX_CA_FILE {
        return Err(invalid(format!(
            "{size} bytes is more than a CA bundle holds (at most {MAX_CA_FILE})"
        )));
    }
    let text = std::fs::read(path).map_err(read)?;
    let blocks = pem::parse_many(&text).map_err(|e| invalid(format!("not PEM ({e})")))?;
    let mut certificates = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        if block.tag() != "CERTIFICATE" {
            return Err(invalid(format!(
                "PEM block #{} is {}, not CERTIFICATE (give CA certificates only)",
                index + 1,
                block.tag()
            )));
        }
        let der = CertificateDer::from(block.contents().to_vec());
        RootCertStore::empty().add(der.clone()).map_err(|e| {
            invalid(format!(
                "PEM block #{} is not a usable CA certificate ({e})",
                index + 1
            ))
        })?;
        certificates.push(der);
    }
    if certificates.is_empty() {
        return Err(invalid("holds no PEM CERTIFICATE block".into()));
    }
    Ok(certificates)
}

/// Accepts the pinned certificate as the end entity (signatures checked), and asks `otherwise`
/// about any other.
struct PinnedOrElse {
    pinned: Pinned,
    otherwise: Arc<dyn ServerCertVerifier>,
}

impl fmt::Debug for PinnedOrElse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedOrElse").finish_non_exhaustive()
    }
}

impl ServerCertVerifier for PinnedOrElse {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if (self.pinned)().is_some_and(|pinned| pinned.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        self.otherwise.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    // The handshake signatures are checked as the platform verifier checks them.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.otherwise.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.otherwise.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.otherwise.supported_verify_schemes()
    }
}
