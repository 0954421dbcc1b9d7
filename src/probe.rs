//! `issuerd probe URL`: one HTTP/1.1 GET that succeeds only on `200`, for container health
//! checks in images without a shell or curl (the distroless image's `HEALTHCHECK`).
//!
//! `https://` is probed as kubelet probes it: the certificate is not verified (a liveness check
//! asks whether the process answers, not who it is), the handshake signature is.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::tls::client::{AnyCertificate, host_and_server_name};
use crate::trust::Trust;

/// The most of the response read to find its status line.
const MAX_HEAD: usize = 8 * 1024;

/// Why a probe failed; each message is the one line a health check log shows.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL cannot be probed.
    #[error("probe {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No TCP connection.
    #[error("probe {url}: cannot connect to {authority}")]
    Connect {
        /// The URL.
        url: String,
        /// `host:port`.
        authority: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("probe {url}: TLS handshake failed")]
    Tls {
        /// The URL.
        url: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the request or reading the answer failed.
    #[error("probe {url}: connection failed")]
    Io {
        /// The URL.
        url: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("probe {url}: no answer within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// The answer is not an HTTP/1.x response head.
    #[error("probe {url}: the answer is not an HTTP response")]
    NotHttp {
        /// The URL.
        url: String,
    },
    /// Any status but 200.
    #[error("probe {url}: answered {status}{}", reason_suffix(reason))]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The reason phrase sent, if any.
        reason: String,
    },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" {reason}")
    }
}

/// GETs `url` (http or https) and returns `Ok` on a `200` within `timeout`.
pub async fn probe(url: &str, timeout: Duration, trust: Option<&Trust>) -> Result<(), ProbeError> {
    let target = Target::parse(url)?;
    match tokio::time::timeout(timeout, target.get(url, trust)).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::Timeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

/// Where a probe connects and what it asks for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port` to connect to (IPv6 hosts in brackets).
    authority: String,
    /// The `Host` header.
    host: String,
    /// Path and query.
    path: String,
    /// The name to send in SNI, for https.
    tls: Option<ServerName<'static>>,
}

impl Target {
    fn parse(text: &str) -> Result<Self, ProbeError> {
        let refuse = |reason| ProbeError::Url {
            url: text.to_owned(),
            reason,
        };
        let url = url::Url::parse(text).map_err(|_| refuse("not an absolute URL"))?;
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => {
                return Err(refuse(
                    "only http:// and https:// are probed (e.g. http://127.0.0.1:8080/healthz)",
                ));
            }
        };
        let (host, name) = host_and_server_name(&url).map_err(refuse)?;
        let port = url.port_or_known_default().unwrap_or(80);
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        Ok(Self {
            authority: format!("{host}:{port}"),
            host: match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            },
            path,
            tls: https.then_some(name),
        })
    }

    async fn get(&self, url: &str, trust: Option<&Trust>) -> Result<(), ProbeError> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|source| ProbeError::Connect {
                url: url.to_owned(),
                authority: self.authority.clone(),
                source,
            })?;
        let Some(name) = &self.tls else {
            return self.exchange(stream, url).await;
        };
        let tls_error = |e: &dyn std::fmt::Display| ProbeError::Tls {
            url: url.to_owned(),
            source: std::io::Error::other(e.to_string()),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        // As kubelet: any certificate, unless the caller names what to trust.
        let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match trust {
            Some(trust) => trust
                .verifier(Arc::clone(&provider))
                .map_err(|e| tls_error(&e))?,
            None => AnyCertificate::new(Arc::clone(&provider)),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(&e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name.clone(), stream)
            .await
            .map_err(|source| ProbeError::Tls {
                url: url.to_owned(),
                source,
            })?;
        self.exchange(stream, url).await
    }

    /// Sends the request on `stream` and reads the status line.
    async fn exchange(
        &self,
        mut stream: impl AsyncRead + AsyncWrite + Unpin,
        url: &str,
    ) -> Result<(), ProbeError> {
        let io = |source| ProbeError::Io {
            url: url.to_owned(),
            source,
        };
        stream
            .write_all(self.request().as_bytes())
            .await
            .map_err(io)?;
        let mut head = Vec::with_capacity(1024);
        loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.map_err(io)?;
            head.extend_from_slice(&chunk[..n]);
            match status_of(&head) {
                Some(status) => return status.into_result(url),
                None if n == 0 || head.len() >= MAX_HEAD => {
                    return Err(ProbeError::NotHttp {
                        url: url.to_owned(),
                    });
                }
                None => {}
            }
        }
    }

    fn request(&self) -> String {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: issuerd-probe/{}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// The status line of a response, once it is complete.
#[derive(Debug, PartialEq, Eq)]
struct Status {
    code: u16,
    reason: String,
}

impl Status {
    fn into_result(self, url: &str) -> Result<(), ProbeError> {
        if self.code == 200 {
            Ok(())
        } else {
            Err(ProbeError::Status {
                url: url.to_owned(),
                status: self.code,
                reason: self.reason,
            })
        }
    }
}

/// The status of `head` once its first line is complete; `None` while it is not (or if it is no
/// HTTP/1.x status line, which the caller finds out when the stream ends).
fn status_of(head: &[u8]) -> Option<Status> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    let code = code.parse().ok()?;
    let reason = parts.next().unwrap_or("").trim().to_owned();
    Some(Status { code, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_authority_host_and_path() {
        let target = Target::parse("http://127.0.0.1:8080/readyz?x=1").unwrap();
        assert_eq!(
            target,
            Target {
                authority: "127.0.0.1:8080".into(),
                host: "127.0.0.1:8080".into(),
                path: "/readyz?x=1".into(),
                tls: None,
            }
        );
        let target = Target::parse("https://localhost/healthz").unwrap();
        assert_eq!(target.authority, "localhost:443");
        assert_eq!(target.tls, Some(ServerName::try_from("localhost").unwrap()));
        let target = Target::parse("http://[::1]/healthz").unwrap();
        assert_eq!(target.authority, "[::1]:80");
        assert_eq!(target.host, "[::1]");
        assert_eq!(Target::parse("http://localhost:1").unwrap().path, "/");
    }

    #[test]
    fn only_http_urls_are_probed() {
        for (url, reason) in [
            ("127.0.0.1:8080/healthz", "not an absolute URL"),
            ("ftp://127.0.0.1/healthz", "only http:// and https://"),
            ("/healthz", "not an absolute URL"),
        ] {
            let error = Target::parse(url).unwrap_err().to_string();
            assert!(error.contains(reason), "{url}: {error}");
        }
    }

    #[test]
    fn the_status_line_decides() {
        assert_eq!(status_of(b"HTTP/1.1 200 OK\r"), None);
        assert_eq!(
            status_of(b"HTTP/1.1 200 OK\r\n"),
            Some(Status {
                code: 200,
                reason: "OK".into()
            })
        );
        assert_eq!(
            status_of(b"HTTP/1.0 503 Service Unavailable\r\nx: y\r\n"),
            Some(Status {
                code: 503,
                reason: "Service Unavailable".into()
            })
        );
        assert_eq!(status_of(b"HTTP/1.1 204\r\n").unwrap().reason, "");
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 20x OK\r\n"), None);
        let error = status_of(b"HTTP/1.1 503 Service Unavailable\r\n")
            .unwrap()
            .into_result("http://h/readyz")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "probe http://h/readyz: answered 503 Service Unavailable"
        );
    }
}
