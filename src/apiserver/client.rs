//! One poll's requests: `GET` with the bearer token read now, `If-None-Match` with the ETag of
//! the last answer (a 304 stands for that answer), an answer of at most
//! [`MAX_DOCUMENT_BYTES`], within a deadline; no redirects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::{AUTHORIZATION, ETAG, IF_NONE_MATCH};

use super::endpoint::{Endpoint, Roots, Token};
use super::{ApiServerError, MAX_DOCUMENT_BYTES};

/// An HTTP client for one API server.
#[derive(Debug)]
pub(super) struct Client {
    http: reqwest::Client,
    token: Option<Token>,
    timeout: Duration,
}

/// The last answer to one URL, for conditional requests.
#[derive(Clone, Debug, Default)]
pub(super) struct Cached {
    etag: Option<String>,
    body: Option<Bytes>,
}

/// A document as this poll has it.
#[derive(Debug)]
pub(super) struct Answer {
    /// The body (the cached one after a 304).
    pub(super) body: Bytes,
    /// Whether the API server said it had not changed (304).
    pub(super) not_modified: bool,
}

impl Client {
    /// A client trusting `endpoint`'s roots (and presenting its client certificate).
    pub(super) fn new(endpoint: &Endpoint, timeout: Duration) -> Result<Self, ApiServerError> {
        let failed = |e: &dyn std::error::Error| ApiServerError::Client(crate::log::error_chain(e));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| failed(&e))?;
        let builder = match &endpoint.roots {
            Roots::Cluster(certificates) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in certificates {
                    roots
                        .add(certificate.clone())
                        .map_err(|e| ApiServerError::InvalidFile {
                            what: "cluster CA bundle",
                            origin: endpoint.origin.clone(),
                            reason: format!("a certificate is not a usable CA ({e})"),
                        })?;
                }
                builder.with_root_certificates(roots)
            }
            Roots::Public => {
                let verifier = crate::trust::Trust::public()
                    .verifier(provider)
                    .map_err(|e| failed(&e))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
            }
        };
        let tls = match &endpoint.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| ApiServerError::InvalidFile {
                    what: "client certificate",
                    origin: endpoint.origin.clone(),
                    reason: format!("unusable with its key ({e})"),
                })?,
            None => builder.with_no_client_auth(),
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("issuerd/", env!("CARGO_PKG_VERSION")))
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| failed(&e))?;
        Ok(Self {
            http,
            token: endpoint.token.clone(),
            timeout,
        })
    }

    /// GETs `url`, conditionally on `cached`'s ETag; updates `cached` with a new answer.
    pub(super) async fn get(
        &self,
        url: &str,
        cached: &mut Cached,
    ) -> Result<Answer, ApiServerError> {
        let mut request = self.http.get(url);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.read()?));
        }
        if let (Some(etag), Some(_)) = (&cached.etag, &cached.body) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                ApiServerError::Timeout {
                    url: url.to_owned(),
                    timeout: self.timeout,
                }
            } else {
                ApiServerError::Unreachable {
                    url: url.to_owned(),
                    reason: crate::log::error_chain(&e),
                }
            }
        };
        let mut response = request.send().await.map_err(failed)?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_MODIFIED => {
                if let Some(body) = &cached.body {
                    return Ok(Answer {
                        body: body.clone(),
                        not_modified: true,
                    });
                }
                // A 304 to an unconditional request: nothing to stand for.
                return Err(ApiServerError::Status {
                    url: url.to_owned(),
                    status: 304,
                });
            }
            StatusCode::UNAUTHORIZED => {
                return Err(ApiServerError::Unauthorized {
                    url: url.to_owned(),
                });
            }
            StatusCode::FORBIDDEN => {
                return Err(ApiServerError::Forbidden {
                    url: url.to_owned(),
                });
            }
            StatusCode::NOT_FOUND => {
                return Err(ApiServerError::NotFound {
                    url: url.to_owned(),
                });
            }
            status => {
                return Err(ApiServerError::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                });
            }
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if response
            .content_length()
            .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(ApiServerError::TooLarge {
                url: url.to_owned(),
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(ApiServerError::TooLarge {
                    url: url.to_owned(),
                });
            }
            body.extend_from_slice(&chunk);
        }
        let body = Bytes::from(body);
        *cached = Cached {
            etag,
            body: Some(body.clone()),
        };
        Ok(Answer {
            body,
            not_modified: false,
        })
    }
}
