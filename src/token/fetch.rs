//! The discovery document and JWKS over HTTP(S), fetched the way relying parties do (go-oidc,
//! AWS STS): `TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"`, then `jwks_uri`.
//!
//! https is required unless the caller allows http explicitly; certificates are checked against
//! the caller's [`Trust`]: the system's roots, plus `--ca-file` CAs (rustls with aws-lc-rs).

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::issuer::DISCOVERY_SUFFIX;
use crate::keys::PublicKey;
use crate::trust::Trust;

/// Largest document read (the same limit as key files).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// STS gives up on a slow issuer after about this long.
pub const STS_BUDGET: Duration = Duration::from_secs(5);

/// An HTTP client for issuer documents.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    allow_insecure: bool,
    trust: Trust,
}

/// One fetched document.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The URL fetched.
    pub url: String,
    /// `Content-Type`, as sent.
    pub content_type: Option<String>,
    /// `Cache-Control`, as sent.
    pub cache_control: Option<String>,
    /// Whether the response allowed anonymous cross-origin reads (`Access-Control-Allow-Origin`).
    pub cors: Option<String>,
    /// The body.
    pub body: Bytes,
    /// Time to the whole body.
    pub elapsed: Duration,
}

impl Fetched {
    /// The media type without parameters, lower case.
    pub fn media_type(&self) -> Option<String> {
        self.content_type.as_deref().map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// A discovery document, with the members verification needs.
#[derive(Clone, Debug)]
pub struct Discovery {
    /// `issuer`.
    pub issuer: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// The whole document.
    pub document: Value,
    /// The response.
    pub fetched: Fetched,
}

/// A fetched JWKS.
#[derive(Clone, Debug)]
pub struct Jwks {
    /// The keys, with their kids as published.
    pub keys: Vec<PublicKey>,
    /// The response.
    pub fetched: Fetched,
}

/// Why a document could not be fetched or used.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// http where https is needed.
    #[error(
        "{what} {url} uses http: AWS STS and other relying parties only fetch https \
         (pass --allow-insecure to test against a local http issuer)"
    )]
    Insecure {
        /// What the URL is.
        what: &'static str,
        /// The URL.
        url: String,
    },
    /// Not a URL.
    #[error("{what} {url:?} is not an absolute http(s) URL")]
    InvalidUrl {
        /// What the URL is.
        what: &'static str,
        /// The URL.
        url: String,
    },
    /// The HTTP client could not be built (TLS roots, crypto provider).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Connection, TLS or timeout failure.
    #[error("cannot fetch {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// The cause, with its chain.
        reason: String,
    },
    /// A status other than 200.
    #[error("{url} answered HTTP {status}; it must answer 200 to anonymous requests")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The body is not what was expected.
    #[error("{url}: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

impl Fetcher {
    /// A client with the given total timeout per request, trusting `trust`. `allow_insecure`
    /// permits http URLs.
    pub fn new(timeout: Duration, allow_insecure: bool, trust: &Trust) -> Result<Self, FetchError> {
        let tls = trust
            .client_config()
            .map_err(|e| FetchError::Client(crate::log::error_chain(&e)))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("issuerd/", env!("CARGO_PKG_VERSION")))
            .https_only(!allow_insecure)
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| FetchError::Client(crate::log::error_chain(&e)))?;
        Ok(Self {
            client,
            allow_insecure,
            trust: trust.clone(),
        })
    }

    /// The discovery URL of an issuer, as go-oidc and AWS STS build it.
    pub fn discovery_url(issuer: &str) -> String {
        format!("{}{DISCOVERY_SUFFIX}", issuer.trim_end_matches('/'))
    }

    /// GETs a URL; any status but 200 is an error.
    pub async fn get(&self, what: &'static str, url: &str) -> Result<Fetched, FetchError> {
        let parsed = url::Url::parse(url).map_err(|_| FetchError::InvalidUrl {
            what,
            url: url.to_owned(),
        })?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_insecure => {}
            "http" => {
                return Err(FetchError::Insecure {
                    what,
                    url: url.to_owned(),
                });
            }
            _ => {
                return Err(FetchError::InvalidUrl {
                    what,
                    url: url.to_owned(),
                });
            }
        }
        let unreachable = |e: reqwest::Error| {
            let mut reason = crate::log::error_chain(&e);
            if let Some(hint) = self.trust.hint(&reason) {
                reason = format!("{reason} ({hint})");
            }
            FetchError::Unreachable {
                url: url.to_owned(),
                reason,
            }
        };
        let start = Instant::now();
        let mut response = self.client.get(parsed).send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status,
            });
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let content_type = header("content-type");
        let cache_control = header("cache-control");
        let cors = header("access-control-allow-origin");
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::Invalid {
                    url: url.to_owned(),
                    reason: format!("larger than {MAX_DOCUMENT_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            url: url.to_owned(),
            content_type,
            cache_control,
            cors,
            body: Bytes::from(body),
            elapsed: start.elapsed(),
        })
    }

    /// Fetches and parses an issuer's discovery document (`issuer` and `jwks_uri` required).
    pub async fn discovery(&self, issuer: &str) -> Result<Discovery, FetchError> {
        let fetched = self
            .get("discovery document", &Self::discovery_url(issuer))
            .await?;
        let invalid = |reason: String| FetchError::Invalid {
            url: fetched.url.clone(),
            reason,
        };
        let document: Value = serde_json::from_slice(&fetched.body)
            .map_err(|e| invalid(format!("not JSON ({e})")))?;
        let member = |name: &str| match document.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(invalid(format!(
                "discovery member \"{name}\" is not a string"
            ))),
            None => Err(invalid(format!("discovery document has no \"{name}\""))),
        };
        let issuer = member("issuer")?;
        let jwks_uri = member("jwks_uri")?;
        Ok(Discovery {
            issuer,
            jwks_uri,
            document,
            fetched,
        })
    }

    /// Fetches and validates a JWKS: public RSA/EC signing keys only.
    pub async fn jwks(&self, uri: &str) -> Result<Jwks, FetchError> {
        let fetched = self.get("jwks_uri", uri).await?;
        let keys = PublicKey::from_jwks(&fetched.body).map_err(|reason| FetchError::Invalid {
            url: fetched.url.clone(),
            reason: format!("JWKS: {reason}"),
        })?;
        Ok(Jwks { keys, fetched })
    }
}
