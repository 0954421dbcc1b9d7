//! Settings -> the API server's URL, what its certificate must chain to, and the credentials:
//! in a pod from the mounted token and CA, elsewhere from a kubeconfig context loaded with the
//! `kube` crate's loader (`Kubeconfig::read`, `Config::from_custom_kubeconfig`).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret as _;

use super::ApiServerError;
use super::settings::{Connection, IN_CLUSTER_CA_FILE, IN_CLUSTER_TOKEN_FILE, IN_CLUSTER_URL};

/// The most bytes a CA bundle, certificate or key file may hold.
const MAX_PEM_FILE: u64 = 4 << 20;

/// The API server, resolved.
pub struct Endpoint {
    /// Its base URL (https; a path, as behind a proxy, is kept).
    pub url: url::Url,
    /// What its certificate must chain to.
    pub roots: Roots,
    /// The bearer token, if any.
    pub token: Option<Token>,
    /// A client certificate and its key (kubeconfig `client-certificate`), if any.
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// How it was found, for logs: `in-cluster` or `kubeconfig context NAME`.
    pub origin: String,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("roots", &self.roots)
            .field("token", &self.token)
            .field("identity", &self.identity.is_some())
            .field("origin", &self.origin)
            .finish()
    }
}

/// The trust anchors of the API server's certificate.
#[derive(Clone)]
pub enum Roots {
    /// The cluster CA, and nothing else (a pod's `ca.crt`, a kubeconfig's
    /// `certificate-authority`).
    Cluster(Vec<CertificateDer<'static>>),
    /// The platform's public roots (a kubeconfig without a CA: a publicly trusted API server).
    Public,
}

impl fmt::Debug for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cluster(certs) => write!(f, "Cluster({} certificates)", certs.len()),
            Self::Public => f.write_str("Public"),
        }
    }
}

/// A bearer token: read from its file on every poll (kubelet rotates the bound token), or
/// given inline in a kubeconfig.
#[derive(Clone)]
pub enum Token {
    /// Re-read on every poll.
    File(PathBuf),
    /// As given.
    Inline(String),
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

/// The most bytes a token file may hold (a bound token is about 1 KiB).
const MAX_TOKEN_BYTES: u64 = 64 << 10;

impl Token {
    /// The token now: the file's current content, trimmed.
    pub fn read(&self) -> Result<String, ApiServerError> {
        let path = match self {
            Self::Inline(token) => return Ok(token.clone()),
            Self::File(path) => path,
        };
        let text = read_bounded(path, "ServiceAccount token", MAX_TOKEN_BYTES)?;
        let invalid = |reason: &str| ApiServerError::InvalidFile {
            what: "ServiceAccount token",
            origin: path.display().to_string(),
            reason: reason.to_owned(),
        };
        let token = String::from_utf8(text).map_err(|_| invalid("is not text"))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(invalid("is empty"));
        }
        // It goes into a header: a line break would end it.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "holds characters a bearer token cannot (spaces, line breaks, non-ASCII)",
            ));
        }
        Ok(token.to_owned())
    }
}

impl Endpoint {
    /// Resolves `connection`: reads the CA bundle (and the kubeconfig), checks the token can be
    /// read now. Nothing is sent to the API server.
    pub async fn resolve(connection: &Connection) -> Result<Self, ApiServerError> {
        let endpoint = match connection {
            Connection::InCluster {
                url,
                token_file,
                ca_file,
            } => in_cluster(url.clone(), token_file, ca_file)?,
            Connection::Kubeconfig { file, context, url } => {
                kubeconfig(file.as_deref(), context.as_deref(), url.clone()).await?
            }
            Connection::Infer { url } => {
                if Path::new(IN_CLUSTER_TOKEN_FILE).exists() {
                    let url = url
                        .clone()
                        .unwrap_or_else(|| IN_CLUSTER_URL.parse().expect("a valid URL"));
                    in_cluster(
                        url,
                        Path::new(IN_CLUSTER_TOKEN_FILE),
                        Path::new(IN_CLUSTER_CA_FILE),
                    )?
                } else {
                    kubeconfig(None, None, url.clone())
                        .await
                        .map_err(|error| match error {
                            ApiServerError::Kubeconfig { reason } => ApiServerError::Kubeconfig {
                                reason: format!(
                                    "not in a pod ({IN_CLUSTER_TOKEN_FILE} does not exist), and \
                                     no kubeconfig to use instead: {reason}"
                                ),
                            },
                            other => other,
                        })?
                }
            }
        };
        if endpoint.url.scheme() != "https" {
            return Err(ApiServerError::Url {
                url: endpoint.url.to_string(),
                reason: "is not https; issuerd sends its credentials to the API server over \
                         TLS only"
                    .into(),
            });
        }
        if let Some(token) = &endpoint.token {
            token.read()?;
        }
        Ok(endpoint)
    }

    /// The URL of a document of the API server (`path` starts with `/`).
    pub fn document_url(&self, path: &str) -> String {
        format!("{}{path}", self.url.as_str().trim_end_matches('/'))
    }
}

fn in_cluster(
    url: url::Url,
    token_file: &Path,
    ca_file: &Path,
) -> Result<Endpoint, ApiServerError> {
    let roots = read_certificates(
        &read_bounded(ca_file, "cluster CA bundle", MAX_PEM_FILE)?,
        "cluster CA bundle",
        &ca_file.display().to_string(),
    )?;
    Ok(Endpoint {
        url,
        roots: Roots::Cluster(roots),
        token: Some(Token::File(token_file.to_owned())),
        identity: None,
        origin: "in-cluster".into(),
    })
}

async fn kubeconfig(
    file: Option<&Path>,
    context: Option<&str>,
    url: Option<url::Url>,
) -> Result<Endpoint, ApiServerError> {
    let failed = |error: &dyn std::error::Error| ApiServerError::Kubeconfig {
        reason: crate::log::error_chain(error),
    };
    let loaded = match file {
        Some(path) => kube::config::Kubeconfig::read_from(path),
        None => kube::config::Kubeconfig::read(),
    }
    .map_err(|e| failed(&e))?;
    let context_name = context
        .map(str::to_owned)
        .or_else(|| loaded.current_context.clone())
        .unwrap_or_default();
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_owned),
        cluster: None,
        user: None,
    };
    let config = kube::Config::from_custom_kubeconfig(loaded, &options)
        .await
        .map_err(|e| failed(&e))?;
    if config.accept_invalid_certs {
        return Err(unsupported(
            "insecure-skip-tls-verify",
            "give the cluster's certificate-authority instead",
        ));
    }
    if config.tls_server_name.is_some() {
        return Err(unsupported(
            "tls-server-name",
            "use a server URL whose host the certificate names",
        ));
    }
    if config.proxy_url.is_some() {
        return Err(unsupported(
            "proxy-url",
            "reach the API server directly, or through HTTPS_PROXY",
        ));
    }
    let auth = &config.auth_info;
    if auth.exec.is_some() || auth.auth_provider.is_some() {
        return Err(unsupported(
            "a credential plugin (exec or auth-provider, such as `aws eks get-token`)",
            "use a context with a token, tokenFile or client certificate (e.g. a ServiceAccount \
             token from `kubectl create token`)",
        ));
    }
    if auth.username.is_some() || auth.password.is_some() {
        return Err(unsupported(
            "basic authentication (username and password)",
            "use a token or a client certificate",
        ));
    }
    if auth.impersonate.is_some() || auth.impersonate_groups.is_some() {
        return Err(unsupported(
            "impersonation (as, as-groups)",
            "use the credentials of the identity itself",
        ));
    }
    let token = match (&auth.token, &auth.token_file) {
        (Some(token), _) => Some(Token::Inline(token.expose_secret().trim().to_owned())),
        (None, Some(file)) => Some(Token::File(PathBuf::from(file))),
        (None, None) => None,
    };
    let identity = client_identity(auth)?;
    let roots = match &config.root_cert {
        Some(certs) if !certs.is_empty() => Roots::Cluster(
            certs
                .iter()
                .map(|der| CertificateDer::from(der.clone()))
                .collect(),
        ),
        _ => Roots::Public,
    };
    let url = match url {
        Some(url) => url,
        None => {
            let server = config.cluster_url.to_string();
            url::Url::parse(&server).map_err(|e| ApiServerError::Url {
                url: server.clone(),
                reason: e.to_string(),
            })?
        }
    };
    Ok(Endpoint {
        url,
        roots,
        token,
        identity,
        origin: format!("kubeconfig context {context_name}"),
    })
}

fn unsupported(what: &'static str, hint: &'static str) -> ApiServerError {
    ApiServerError::Unsupported { what, hint }
}

/// `client-certificate(-data)` and `client-key(-data)`: both or neither.
#[allow(clippy::type_complexity)]
fn client_identity(
    auth: &kube::config::AuthInfo,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, ApiServerError> {
    let certificate = pem_data(
        "client certificate",
        auth.client_certificate_data.as_deref(),
        auth.client_certificate.as_deref(),
    )?;
    let key = pem_data(
        "client key",
        auth.client_key_data
            .as_ref()
            .map(|secret| secret.expose_secret()),
        auth.client_key.as_deref(),
    )?;
    let ((certificate, certificate_origin), (key, key_origin)) = match (certificate, key) {
        (None, None) => return Ok(None),
        (Some(certificate), Some(key)) => (certificate, key),
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiServerError::Kubeconfig {
                reason: "the user has a client certificate or a client key, not both".into(),
            });
        }
    };
    let chain = read_certificates(&certificate, "client certificate", &certificate_origin)?;
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|_| ApiServerError::InvalidFile {
        what: "client key",
        origin: key_origin,
        reason: "holds no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)".into(),
    })?;
    Ok(Some((chain, key)))
}

/// kubeconfig `*-data` (base64 of PEM) or the file it names; with where it came from.
fn pem_data(
    what: &'static str,
    data: Option<&str>,
    file: Option<&str>,
) -> Result<Option<(Vec<u8>, String)>, ApiServerError> {
    match (data, file) {
        (Some(data), _) => {
            let origin = format!("in the kubeconfig ({what} data)");
            let bytes = STANDARD
                .decode(data.trim())
                .map_err(|e| ApiServerError::InvalidFile {
                    what,
                    origin: origin.clone(),
                    reason: format!("not base64 ({e})"),
                })?;
            Ok(Some((bytes, origin)))
        }
        (None, Some(file)) => {
            let path = Path::new(file);
            Ok(Some((
                read_bounded(path, what, MAX_PEM_FILE)?,
                path.display().to_string(),
            )))
        }
        (None, None) => Ok(None),
    }
}

/// Every `CERTIFICATE` block of a PEM bundle; at least one.
fn read_certificates(
    pem: &[u8],
    what: &'static str,
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, ApiServerError> {
    let invalid = |reason: String| ApiServerError::InvalidFile {
        what,
        origin: origin.to_owned(),
        reason,
    };
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a PEM certificate bundle ({e})")))?;
    if certificates.is_empty() {
        return Err(invalid("holds no PEM CERTIFICATE block".into()));
    }
    Ok(certificates)
}

/// A whole file of at most `limit` bytes.
fn read_bounded(path: &Path, what: &'static str, limit: u64) -> Result<Vec<u8>, ApiServerError> {
    use std::io::Read as _;
    let read_error = |source| ApiServerError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(ApiServerError::InvalidFile {
            what,
            origin: path.display().to_string(),
            reason: format!("is larger than {limit} bytes"),
        });
    }
    Ok(bytes)
}
