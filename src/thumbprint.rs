//! `issuerd thumbprint`: the SHA-1 thumbprint AWS IAM pins for an OpenID Connect provider, from
//! a PEM chain or the chain a live `https://` server presents, and whether AWS will use it.
//!
//! AWS's rule (IAM user guide, "Obtain the thumbprint for an OpenID Connect identity provider"):
//! the thumbprint is the lowercase hex SHA-1 of the DER of the *last* certificate the server
//! presents (`openssl s_client -showcerts`), which is the top intermediate CA of a well-formed
//! chain; a server that also sends its root makes it the root, and a server that sends only its
//! leaf makes it the leaf. AWS verifies the JWKS endpoint's chain against its own library of
//! trusted CAs first and uses the thumbprints only when that fails, so for a chain ending in a
//! publicly trusted CA the thumbprint is not used.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use der::Decode as _;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;

use crate::tls::client::host_and_server_name;

/// Why no thumbprint could be computed.
#[derive(Debug, thiserror::Error)]
pub enum ThumbprintError {
    /// The chain file could not be read.
    #[error("cannot read certificate chain {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not PEM, or holds no `CERTIFICATE` block.
    #[error("{source_name}: {reason}")]
    NoCertificate {
        /// The file or URL.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// A certificate that is not DER X.509.
    #[error("{source_name}: certificate {position} is not an X.509 certificate ({reason})")]
    BadCertificate {
        /// The file or URL.
        source_name: String,
        /// 1-based position in the chain.
        position: usize,
        /// The parser's message.
        reason: String,
    },
    /// The URL is not `https://host[:port]`.
    #[error("{url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// No TCP connection or no TLS handshake.
    #[error("{url}: {what}")]
    Connect {
        /// The URL.
        url: String,
        /// What failed.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed for a reason other than trust (recorded, not refused).
    #[error("{url}: TLS handshake failed")]
    Tls {
        /// The URL.
        url: String,
        /// Cause.
        #[source]
        source: rustls::Error,
    },
}

/// One certificate of a chain, as reported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject DN (RFC 4514).
    pub subject: String,
    /// Issuer DN (RFC 4514).
    pub issuer: String,
    /// Subject and issuer are the same name (a root, or a self-signed leaf).
    pub self_issued: bool,
    /// `notAfter`, RFC 3339.
    pub not_after: String,
    /// SHA-1 of the DER, lowercase hex without colons.
    pub sha1: String,
}

/// What the thumbprinted (last presented) certificate is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The top intermediate CA of a chain sent without its root: the usual case.
    Intermediate,
    /// A root CA the server sends at the end of its chain.
    Root,
    /// The only certificate sent is the leaf, issued by a CA the server does not send.
    Leaf,
    /// The only certificate sent is a self-signed leaf.
    SelfSigned,
}

impl Role {
    fn describe(self) -> &'static str {
        match self {
            Self::Intermediate => "the top intermediate CA of the chain",
            Self::Root => "the root CA, which the server sends at the end of its chain",
            Self::Leaf => {
                "the server's own (leaf) certificate: the server sends no intermediates, so the \
                 thumbprint changes whenever that certificate is renewed"
            }
            Self::SelfSigned => {
                "a self-signed server certificate: the thumbprint changes whenever it is renewed"
            }
        }
    }
}

/// Whether the chain verifies against the public roots (Mozilla's, as `webpki-root-certs`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Trust {
    /// The chain ends in a publicly trusted CA: AWS verifies it with its own CA library and does
    /// not use the thumbprint.
    pub publicly_trusted: bool,
    /// Why not, when not (the verifier's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a live server: whether the certificate names the host asked for (`None` for a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_matches: Option<bool>,
    /// With `--ca-file`: whether the chain verifies to one of those CAs, and why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<CaFileVerdict>,
}

/// Whether the chain verifies to a `--ca-file` CA.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CaFileVerdict {
    /// It does.
    pub trusted: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The file or URL the chain came from.
    pub source: String,
    /// SHA-1 of the last certificate presented.
    pub thumbprint: String,
    /// What that certificate is.
    pub role: Role,
    /// The chain in the order presented (leaf first).
    pub chain: Vec<CertInfo>,
    /// Trust in public roots.
    pub trust: Trust,
    /// Whether AWS uses the thumbprint: only when the chain is not publicly trusted.
    pub aws_uses_thumbprint: bool,
}

// === pure parts ===

/// SHA-1 of `der`, lowercase hex without colons (AWS's thumbprint format).
pub fn sha1_hex(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The `CERTIFICATE` blocks of a PEM text, in order.
pub fn parse_pem_chain(
    pem_text: &[u8],
    source_name: &str,
) -> Result<Vec<CertificateDer<'static>>, ThumbprintError> {
    let blocks = pem::parse_many(pem_text).map_err(|e| ThumbprintError::NoCertificate {
        source_name: source_name.to_owned(),
        reason: format!("not PEM ({e})"),
    })?;
    let chain: Vec<_> = blocks
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| CertificateDer::from(block.into_contents()))
        .collect();
    if chain.is_empty() {
        return Err(ThumbprintError::NoCertificate {
            source_name: source_name.to_owned(),
            reason: "no CERTIFICATE block (give the PEM chain the server presents, leaf first)"
                .into(),
        });
    }
    Ok(chain)
}

/// Subject, issuer, expiry and SHA-1 of one certificate.
pub fn describe(
    der: &[u8],
    position: usize,
    source_name: &str,
) -> Result<CertInfo, ThumbprintError> {
    let cert =
        x509_cert::Certificate::from_der(der).map_err(|e| ThumbprintError::BadCertificate {
            source_name: source_name.to_owned(),
            position,
            reason: e.to_string(),
        })?;
    let tbs = &cert.tbs_certificate;
    Ok(CertInfo {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        self_issued: tbs.subject == tbs.issuer,
        not_after: tbs.validity.not_after.to_date_time().to_string(),
        sha1: sha1_hex(der),
    })
}

/// What the last certificate of a described chain is.
pub fn role_of_last(chain: &[CertInfo]) -> Role {
    let last = chain.last().expect("a chain has a certificate");
    match (chain.len(), last.self_issued) {
        (1, true) => Role::SelfSigned,
        (1, false) => Role::Leaf,
        (_, true) => Role::Root,
        (_, false) => Role::Intermediate,
    }
}

/// Builds the report of a chain and its trust verdict.
pub fn report(
    source: &str,
    chain: &[CertificateDer<'_>],
    trust: Trust,
) -> Result<Report, ThumbprintError> {
    let described = chain
        .iter()
        .enumerate()
        .map(|(i, der)| describe(der, i + 1, source))
        .collect::<Result<Vec<_>, _>>()?;
    let role = role_of_last(&described);
    Ok(Report {
        source: source.to_owned(),
        thumbprint: described.last().expect("non-empty").sha1.clone(),
        role,
        aws_uses_thumbprint: !trust.publicly_trusted,
        chain: described,
        trust,
    })
}

/// Whether a verifier's verdict means the chain itself is trusted (a name mismatch still is: for
/// a file there is no name, and for a server it is reported apart).
fn trust_from(verdict: Result<(), rustls::Error>, live: bool) -> Trust {
    let name_error = |e: &rustls::Error| {
        matches!(
            e,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        )
    };
    match verdict {
        Ok(()) => Trust {
            publicly_trusted: true,
            reason: None,
            name_matches: live.then_some(true),
            ca_file: None,
        },
        Err(e) if name_error(&e) => Trust {
            publicly_trusted: true,
            reason: None,
            name_matches: live.then_some(false),
            ca_file: None,
        },
        Err(e) => Trust {
            publicly_trusted: false,
            reason: Some(e.to_string()),
            name_matches: None,
            ca_file: None,
        },
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last = self.chain.last().expect("non-empty");
        writeln!(f, "thumbprint: {}", self.thumbprint)?;
        writeln!(
            f,
            "  SHA-1 of certificate {} of {} presented by {}: {}",
            self.chain.len(),
            self.chain.len(),
            self.source,
            self.role.describe()
        )?;
        writeln!(f, "  subject:   {}", last.subject)?;
        writeln!(f, "  issuer:    {}", last.issuer)?;
        writeln!(f, "  not after: {}", last.not_after)?;
        writeln!(f, "chain (as presented, leaf first):")?;
        for (i, cert) in self.chain.iter().enumerate() {
            writeln!(f, "  {}. {}  {}", i + 1, cert.sha1, cert.subject)?;
        }
        if self.trust.publicly_trusted {
            writeln!(
                f,
                "public trust: the chain ends in a publicly trusted CA. AWS verifies this server \
                 with its own trusted CAs and does NOT use the thumbprint (IAM still requires one \
                 in the provider; this one is fine)."
            )?;
        } else {
            writeln!(
                f,
                "public trust: none ({}). AWS will pin this thumbprint: put it in the OIDC \
                 provider's thumbprint list, and update it when this certificate changes.",
                self.trust
                    .reason
                    .as_deref()
                    .unwrap_or("not verified against public roots")
            )?;
        }
        match &self.trust.ca_file {
            Some(CaFileVerdict { trusted: true, .. }) => writeln!(
                f,
                "--ca-file: the chain verifies to a CA given with --ca-file"
            )?,
            Some(CaFileVerdict { reason, .. }) => writeln!(
                f,
                "--ca-file: the chain does NOT verify to any CA given with --ca-file ({})",
                reason.as_deref().unwrap_or("not verified")
            )?,
            None => {}
        }
        if self.trust.name_matches == Some(false) {
            writeln!(
                f,
                "warning: the server's certificate does not name the host asked for; AWS will \
                 refuse it"
            )?;
        }
        Ok(())
    }
}

// === verification against the public roots ===

fn public_verifier() -> Arc<WebPkiServerVerifier> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    verifier(roots)
}

fn verifier(roots: RootCertStore) -> Arc<WebPkiServerVerifier> {
    WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .expect("a non-empty root store")
}

/// The verdict of the public roots on a chain (leaf first), for `name`.
fn verify_publicly(
    verifier: &WebPkiServerVerifier,
    chain: &[CertificateDer<'_>],
    name: &ServerName<'_>,
) -> Result<(), rustls::Error> {
    let (leaf, intermediates) = chain.split_first().expect("non-empty");
    verifier
        .verify_server_cert(leaf, intermediates, name, &[], UnixTime::now())
        .map(|_| ())
}

/// A verifier that accepts any chain (the command reports trust, it does not enforce it) and
/// records what the public roots would have said.
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    verdict: Mutex<Option<Result<(), rustls::Error>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ());
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(verdict);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

// === sources ===

/// The report for a PEM chain file (the chain as the server presents it, leaf first).
pub fn from_file(path: &Path) -> Result<Report, ThumbprintError> {
    from_file_with_chain(path).map(|(report, _)| report)
}

fn from_file_with_chain(
    path: &Path,
) -> Result<(Report, Vec<CertificateDer<'static>>), ThumbprintError> {
    let text = std::fs::read(path).map_err(|source| ThumbprintError::Read {
        path: path.to_owned(),
        source,
    })?;
    let name = path.display().to_string();
    let chain = parse_pem_chain(&text, &name)?;
    let report = report_on_file_chain(&name, &chain, &public_verifier())?;
    Ok((report, chain))
}

/// The report of a chain from a file, judged by `verifier`.
fn report_on_file_chain(
    name: &str,
    chain: &[CertificateDer<'_>],
    verifier: &WebPkiServerVerifier,
) -> Result<Report, ThumbprintError> {
    // A file names no host: only the chain's trust is asked (name errors are ignored).
    let any_name = ServerName::try_from("thumbprint.invalid").expect("valid DNS name");
    let verdict = verify_publicly(verifier, chain, &any_name);
    report(name, chain, trust_from(verdict, false))
}

/// `host`, `port` and the name for SNI from `https://host[:port][/path]`.
fn parse_url(text: &str) -> Result<(String, u16, ServerName<'static>), ThumbprintError> {
    let refuse = |reason| ThumbprintError::Url {
        url: text.to_owned(),
        reason,
    };
    let url = url::Url::parse(text).map_err(|_| refuse("not an absolute URL"))?;
    if url.scheme() != "https" {
        return Err(refuse(
            "give an https:// URL (AWS requires https) or a PEM chain file",
        ));
    }
    let (host, name) = host_and_server_name(&url).map_err(refuse)?;
    Ok((host, url.port_or_known_default().unwrap_or(443), name))
}

/// Connects to `url`, completes a TLS handshake whatever the chain, and reports the chain the
/// server presented. Blocking; at most `timeout` per network step.
pub fn from_url(url: &str, timeout: Duration) -> Result<Report, ThumbprintError> {
    from_url_with_chain(url, timeout).map(|(report, _)| report)
}

fn from_url_with_chain(
    url: &str,
    timeout: Duration,
) -> Result<(Report, Vec<CertificateDer<'static>>), ThumbprintError> {
    let (host, port, name) = parse_url(url)?;
    let connect = |what: String, source| ThumbprintError::Connect {
        url: url.to_owned(),
        what,
        source,
    };
    let authority = format!("{host}:{port}");
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| connect(format!("cannot resolve {authority}"), e))?
        .next()
        .ok_or_else(|| {
            connect(
                format!("{authority} resolves to no address"),
                std::io::ErrorKind::NotFound.into(),
            )
        })?;
    let mut socket = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| connect(format!("cannot connect to {addr}"), e))?;
    socket
        .set_read_timeout(Some(timeout))
        .and_then(|()| socket.set_write_timeout(Some(timeout)))
        .map_err(|e| connect("cannot set socket timeouts".into(), e))?;

    let recorder = Arc::new(Recorder {
        inner: public_verifier(),
        verdict: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|source| ThumbprintError::Tls {
        url: url.to_owned(),
        source,
    })?
    .dangerous()
    .with_custom_certificate_verifier(recorder.clone())
    .with_no_client_auth();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).map_err(|source| {
        ThumbprintError::Tls {
            url: url.to_owned(),
            source,
        }
    })?;
    while tls.is_handshaking() {
        tls.complete_io(&mut socket).map_err(|e| {
            // rustls reports its own failures as io errors wrapping a rustls::Error.
            match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls_error) => ThumbprintError::Tls {
                    url: url.to_owned(),
                    source: tls_error.clone(),
                },
                None => connect("TLS handshake interrupted".into(), e),
            }
        })?;
    }
    let chain: Vec<CertificateDer<'static>> = tls
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    // Close politely; the answer is already in hand.
    tls.send_close_notify();
    let _ = tls.write_tls(&mut socket);
    let _ = socket.flush();
    let _ = socket.read(&mut [0u8; 0]);
    if chain.is_empty() {
        return Err(ThumbprintError::NoCertificate {
            source_name: url.to_owned(),
            reason: "the server presented no certificate".into(),
        });
    }
    let verdict = recorder
        .verdict
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_else(|| Err(rustls::Error::General("chain not verified".into())));
    let report = report(url, &chain, trust_from(verdict, true))?;
    Ok((report, chain))
}

/// A chain file, or a live `https://` URL.
/// With `--ca-file` CAs, also whether the chain verifies to one of them.
pub fn thumbprint(
    source: &str,
    timeout: Duration,
    ca: &crate::trust::Trust,
) -> Result<Report, ThumbprintError> {
    let live = source.contains("://");
    let (mut report, chain) = if live {
        from_url_with_chain(source, timeout)?
    } else {
        from_file_with_chain(Path::new(source))?
    };
    if !ca.extra_roots().is_empty() {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(ca.extra_roots().iter().cloned());
        let name = match live {
            true => parse_url(source)?.2,
            false => ServerName::try_from("thumbprint.invalid").expect("valid DNS name"),
        };
        let verdict = verify_publicly(&verifier(roots), &chain, &name);
        // A file names no host: only the chain's trust is asked.
        let name_error = |e: &rustls::Error| {
            !live
                && matches!(
                    e,
                    rustls::Error::InvalidCertificate(
                        CertificateError::NotValidForName
                            | CertificateError::NotValidForNameContext { .. }
                    )
                )
        };
        report.trust.ca_file = Some(match verdict {
            Ok(()) => CaFileVerdict {
                trusted: true,
                reason: None,
            },
            Err(e) if name_error(&e) => CaFileVerdict {
                trusted: true,
                reason: None,
            },
            Err(e) => CaFileVerdict {
                trusted: false,
                reason: Some(e.to_string()),
            },
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/thumbprint")
            .join(name)
    }

    #[test]
    fn sha1_is_lowercase_hex_without_colons() {
        // FIPS 180-2 test vector.
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn the_last_certificate_decides_the_role() {
        let cert = |self_issued| CertInfo {
            subject: String::new(),
            issuer: String::new(),
            self_issued,
            not_after: String::new(),
            sha1: String::new(),
        };
        assert_eq!(role_of_last(&[cert(false)]), Role::Leaf);
        assert_eq!(role_of_last(&[cert(true)]), Role::SelfSigned);
        assert_eq!(
            role_of_last(&[cert(false), cert(false)]),
            Role::Intermediate
        );
        assert_eq!(
            role_of_last(&[cert(false), cert(false), cert(true)]),
            Role::Root
        );
    }

    #[test]
    fn pem_without_certificates_is_refused_with_its_name() {
        let error = parse_pem_chain(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "k.pem",
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("k.pem: no CERTIFICATE block"), "{error}");
        let error = parse_pem_chain(b"", "empty.pem").unwrap_err().to_string();
        assert!(error.contains("empty.pem"), "{error}");
    }

    #[test]
    fn fixture_chain_thumbprints_its_intermediate() {
        let expected = std::fs::read_to_string(fixture("expected.txt")).unwrap();
        let expected = |key: &str| {
            expected
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key} ")))
                .unwrap()
                .trim()
                .to_owned()
        };
        let report = from_file(&fixture("chain.pem")).unwrap();
        assert_eq!(report.thumbprint, expected("intermediate"));
        assert_eq!(report.role, Role::Intermediate);
        assert_eq!(report.chain.len(), 2);
        assert_eq!(report.chain[0].sha1, expected("leaf"));
        assert!(!report.trust.publicly_trusted);
        assert!(report.aws_uses_thumbprint);
        assert!(
            report.chain[1]
                .subject
                .contains("issuerd test intermediate")
        );

        let report = from_file(&fixture("fullchain-with-root.pem")).unwrap();
        assert_eq!(report.thumbprint, expected("root"));
        assert_eq!(report.role, Role::Root);

        let report = from_file(&fixture("leaf.crt.pem")).unwrap();
        assert_eq!(report.thumbprint, expected("leaf"));
        assert_eq!(report.role, Role::Leaf);
    }

    #[test]
    fn a_chain_to_a_trusted_root_is_called_out_as_not_using_the_thumbprint() {
        // The fixture root standing in for a public root: the same path a real public chain takes.
        let root = parse_pem_chain(&std::fs::read(fixture("root.crt.pem")).unwrap(), "root")
            .unwrap()
            .remove(0);
        let mut roots = RootCertStore::empty();
        roots.add(root).unwrap();
        let chain =
            parse_pem_chain(&std::fs::read(fixture("chain.pem")).unwrap(), "chain.pem").unwrap();
        let report = report_on_file_chain("chain.pem", &chain, &verifier(roots)).unwrap();
        assert!(report.trust.publicly_trusted, "{:?}", report.trust);
        assert!(!report.aws_uses_thumbprint);
        let text = report.to_string();
        assert!(text.contains("ends in a publicly trusted CA"), "{text}");
        assert!(text.contains("does NOT use the thumbprint"), "{text}");
        // The real public roots do not know the fixture root.
        let report = report_on_file_chain("chain.pem", &chain, &public_verifier()).unwrap();
        assert!(!report.trust.publicly_trusted);
    }

    #[test]
    fn a_name_mismatch_alone_still_counts_as_trusted() {
        let mismatch = Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        let trust = trust_from(mismatch, true);
        assert!(trust.publicly_trusted);
        assert_eq!(trust.name_matches, Some(false));
        let unknown = Err(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        let trust = trust_from(unknown, true);
        assert!(!trust.publicly_trusted);
        assert!(trust.reason.unwrap().contains("UnknownIssuer"));
        assert_eq!(trust_from(Ok(()), false).name_matches, None);
    }

    #[test]
    fn urls_must_be_https() {
        let (host, port, _) = parse_url("https://oidc.example.com/clusters/prod").unwrap();
        assert_eq!((host.as_str(), port), ("oidc.example.com", 443));
        let (host, port, _) = parse_url("https://127.0.0.1:8443").unwrap();
        assert_eq!((host.as_str(), port), ("127.0.0.1", 8443));
        let error = parse_url("http://oidc.example.com")
            .unwrap_err()
            .to_string();
        assert!(error.contains("https://"), "{error}");
    }
}
