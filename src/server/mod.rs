//! The HTTP server: the accept loop, one task per connection (HTTP/1.1 by `http1`, h2c by
//! hyper), and the graceful drain on shutdown.

pub mod admin;
mod date;
mod encoded;
mod http1;
pub mod metrics;
mod rewind;
pub mod service;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, warn};

pub use self::http1::DELIBERATE_DIFFERENCES;
use self::http1::Outcome;
pub use self::metrics::ConnectionInfo;
use self::rewind::Rewind;
use self::service::ConnectionService;
pub use self::service::{Attached, IssuerService};
pub use self::transport::Transport;
use crate::{listener, shutdown};

/// Most concurrent HTTP/2 streams per connection.
const MAX_CONCURRENT_STREAMS: u32 = 256;

type Http2Builder = hyper::server::conn::http2::Builder<TokioExecutor>;

/// Connection timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Time a client has to finish a request head once it has sent its first byte (408 after).
    pub header_read: Duration,
    /// Time an idle keep-alive connection is kept (nginx's default is 75 s).
    pub keep_alive: Duration,
    /// Time a response may take to be written; a client that stops reading is cut off after it.
    pub write: Duration,
    /// Time a closing connection spends draining input it will not read, so the kernel does not
    /// reset the connection before the client has read the response.
    pub linger: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(30),
            keep_alive: Duration::from_secs(75),
            write: Duration::from_secs(30),
            linger: Duration::from_secs(2),
        }
    }
}

/// Serves connections: HTTP/1.1 by its own loop, HTTP/2 (prior knowledge) through hyper.
#[derive(Debug)]
pub struct Server {
    service: IssuerService,
    http2: Http2Builder,
    timeouts: Timeouts,
}

impl Server {
    /// A server answering with `service`.
    pub fn new(service: IssuerService, timeouts: Timeouts) -> Self {
        let mut http2 = Http2Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            // Dead peers are found by PING instead of holding a connection forever.
            .keep_alive_interval(Some(timeouts.keep_alive / 3))
            .keep_alive_timeout(Duration::from_secs(20));
        Self {
            service,
            http2,
            timeouts,
        }
    }

    /// Serves `listener` until `shutdown` fires, then stops accepting and lets in-flight
    /// requests finish for at most `grace`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: shutdown::Signal,
        grace: Duration,
    ) {
        // Accepted sockets inherit TCP_NODELAY from the listener: no extra syscall per connection.
        if let Err(error) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
            warn!(%error, "cannot set TCP_NODELAY on the listener");
        }
        listener::accept_until_shutdown("issuer", listener, shutdown, grace, |stream, shutdown| {
            let server = Arc::clone(&self);
            // The peer costs a syscall: asked only for the access log.
            let peer = if server.service.access_log() {
                stream.peer_addr().ok()
            } else {
                None
            };
            let info = ConnectionInfo { tls: false, peer };
            async move { server.serve_connection(stream, shutdown, info).await }
        })
        .await;
    }

    /// One connection, start to end: the HTTP/1.1 loop, which hands over to h2 on the prior
    /// knowledge preface (h2c). Idle connections close on shutdown; a request being answered is
    /// finished first. `info` says whether it is TLS (and who the peer is, for the access log).
    pub async fn serve_connection<T: Transport>(
        &self,
        mut io: T,
        mut shutdown: shutdown::Signal,
        info: ConnectionInfo,
    ) {
        let _open = self.service.metrics().connection(info.tls);
        match http1::serve(&mut io, &self.service, &mut shutdown, self.timeouts, info).await {
            Ok(Outcome::Closed) => {}
            Ok(Outcome::Http2(preface)) => {
                self.serve_h2_counted(Rewind::new(preface, io), shutdown, info)
                    .await;
            }
            Err(error) => debug!(%error, "connection ended with an error"),
        }
    }

    /// An HTTP/2 connection (h2c after its preface was read, or h2 negotiated by ALPN), through
    /// hyper, until it ends or is drained on shutdown.
    pub async fn serve_h2<T>(&self, io: T, shutdown: shutdown::Signal, info: ConnectionInfo)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let _open = self.service.metrics().connection(info.tls);
        self.serve_h2_counted(io, shutdown, info).await;
    }

    /// [`Server::serve_h2`] for a connection already counted as open.
    async fn serve_h2_counted<T>(&self, io: T, mut shutdown: shutdown::Signal, info: ConnectionInfo)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // Boxed: hyper's h2 connection state is large, and every connection future (HTTP/1.1
        // ones included) would otherwise carry its size and be copied in full when spawned.
        let connection = Box::pin(self.http2.serve_connection(
            TokioIo::new(io),
            ConnectionService::new(self.service.clone(), info),
        ));
        let result = listener::until_done_or_drained(connection, &mut shutdown, |c| {
            c.get_mut().as_mut().graceful_shutdown();
        })
        .await;
        if let Err(error) = result {
            debug!(%error, "HTTP/2 connection ended with an error");
        }
    }
}
