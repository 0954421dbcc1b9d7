//! HTTPS: the rustls acceptor over the live [`Certificates`], and TLS connections dispatched by
//! ALPN: `h2` to the HTTP/2 engine, `http/1.1` (or none) to the HTTP/1.1 loop, `acme-tls/1`
//! closed once its handshake has answered the challenge.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::{ConnectionInfo, Server};
use crate::shutdown;
use crate::tls::{ACME_TLS_ALPN, Certificates};

/// Why the TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// rustls refused the configuration (protocol versions, the ticketer).
    #[error("cannot configure TLS")]
    Rustls(#[source] rustls::Error),
}

/// How TLS is offered.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The serving certificate (and ACME challenge certificates).
    pub certificates: Certificates,
    /// Offer ALPN `acme-tls/1` (tls-alpn-01 challenges are answered on this listener).
    pub acme: bool,
    /// Offer ALPN `h2` (the issuer's engine speaks it; the webhook's hyper server does not).
    pub h2: bool,
}

/// The rustls server configuration: TLS 1.3 and 1.2, aws-lc-rs, ALPN `h2` (if asked) then `http/1.1`,
/// stateless session tickets (rotated by rustls) and a session cache for TLS 1.2 resumption.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsSetupError::Rustls)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(settings.certificates.clone()));
    config.alpn_protocols = if settings.h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    if settings.acme {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    config.ticketer = aws_lc_rs::Ticketer::new().map_err(TlsSetupError::Rustls)?;
    Ok(Arc::new(config))
}

/// Bytes of TLS records a connection's rustls buffers for a client that does not read.
const TLS_BUFFER_LIMIT: usize = 16 * 1024;

impl Server {
    /// Serves HTTPS on `listener` until `shutdown` fires, then drains as [`Server::serve`] does.
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: TcpListener,
        config: Arc<ServerConfig>,
        shutdown: shutdown::Signal,
        grace: std::time::Duration,
    ) {
        let acceptor = TlsAcceptor::from(config);
        self.accept(
            listener,
            shutdown,
            grace,
            true,
            move |server, stream, shutdown, info, open| {
                let acceptor = acceptor.clone();
                async move {
                    server
                        .serve_tls_connection(stream, acceptor, shutdown, info)
                        .await;
                    drop(open);
                }
            },
        )
        .await;
    }

    /// One TLS connection: the handshake (bounded by the header timeout), then HTTP by ALPN.
    async fn serve_tls_connection(
        &self,
        stream: TcpStream,
        acceptor: TlsAcceptor,
        mut shutdown: shutdown::Signal,
        info: ConnectionInfo,
    ) {
        let handshake = tokio::select! {
            biased;
            () = shutdown.requested() => return,
            handshake = tokio::time::timeout(self.timeouts.header_read, acceptor.accept(stream)) => handshake,
        };
        let stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!("TLS handshake timed out");
                return;
            }
        };
        // What a client that stops reading can make rustls hold (written, not yet sent): as
        // much as the HTTP engines themselves keep (16 KiB), not rustls's default 64 KiB.
        let mut stream = stream;
        stream.get_mut().1.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        match stream.get_ref().1.alpn_protocol() {
            Some(b"h2") => self.serve_h2(stream, shutdown, info).await,
            // The challenge was the handshake; RFC 8737 has no application data.
            Some(ACME_TLS_ALPN) => {}
            _ => self.serve_connection(stream, shutdown, info).await,
        }
    }
}
