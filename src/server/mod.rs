//! The HTTP server: the accept loop, one task per connection (HTTP/1.1 by `http1`, h2c by
//! hyper), and the graceful drain on shutdown.

pub mod admin;
mod date;
mod encoded;
mod h2_guard;
mod http1;
mod inline_executor;
pub mod metrics;
mod rewind;
pub mod service;
mod tls;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tracing::{debug, warn};

pub use self::http1::DELIBERATE_DIFFERENCES;
use self::http1::Outcome;
use self::inline_executor::InlineFirst;
pub use self::metrics::ConnectionInfo;
use self::rewind::Rewind;
use self::service::ConnectionService;
pub use self::service::{Attached, IssuerService};
pub use self::tls::{TlsSettings, TlsSetupError, server_config};
pub use self::transport::Transport;
use crate::{listener, shutdown};

/// Most concurrent HTTP/2 streams per connection.
const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Streams a client may reset before they are accepted, at once (hyper's default is 20): the
/// HTTP/2 "rapid reset" defence.
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams hyper may reset for a client's protocol errors before it closes the connection.
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 64;
/// Largest request header list accepted over HTTP/2, as over HTTP/1.1 (16 KiB).
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// How long a connection that was sent GOAWAY `ENHANCE_YOUR_CALM` may take to close.
const H2_CALM_CLOSE: Duration = Duration::from_secs(1);

type Http2Builder = hyper::server::conn::http2::Builder<InlineFirst>;

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

/// Connection limits beyond the timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Time an HTTP/2 client has, from the start of the connection, to send its preface and
    /// SETTINGS; it is closed after that.
    pub h2_handshake: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: listener::default_max_connections(),
            h2_handshake: Duration::from_secs(10),
        }
    }
}

/// Serves connections: HTTP/1.1 by its own loop, HTTP/2 (prior knowledge) through hyper.
#[derive(Debug)]
pub struct Server {
    service: IssuerService,
    http2: Http2Builder,
    timeouts: Timeouts,
    limits: Limits,
}

impl Server {
    /// A server answering with `service`.
    pub fn new(service: IssuerService, timeouts: Timeouts) -> Self {
        let mut http2 = Http2Builder::new(InlineFirst);
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            // No PING keep-alive: the guard closes a connection with no request for the idle
            // timeout (a dead peer included), and hyper's keep-alive would record every frame
            // under a lock.
            .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
            .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
            .max_header_list_size(MAX_HEADER_LIST_SIZE);
        Self {
            service,
            http2,
            timeouts,
            limits: Limits::default(),
        }
    }

    /// The same server with these connection limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves `listener` until `shutdown` fires, then stops accepting and lets in-flight
    /// requests finish for at most `grace`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: shutdown::Signal,
        grace: Duration,
    ) {
        set_nodelay(&listener);
        let max_connections = self.limits.max_connections;
        listener::accept_limited(
            "issuer",
            listener,
            shutdown,
            grace,
            max_connections,
            move |stream, shutdown| {
                let server = Arc::clone(&self);
                let info = server.connection_info(&stream, false);
                async move {
                    let _open = server.service.metrics().connection(info.tls);
                    server.serve_connection(stream, shutdown, info).await;
                }
            },
        )
        .await;
    }

    /// What the metrics and the access log know of a connection. The peer address costs a
    /// syscall: asked only for the access log.
    fn connection_info(&self, stream: &TcpStream, tls: bool) -> ConnectionInfo {
        let peer = if self.service.access_log() {
            stream.peer_addr().ok()
        } else {
            None
        };
        ConnectionInfo { tls, peer }
    }

    /// One connection, start to end (counted as open by whoever accepted it): the HTTP/1.1 loop, which hands over to h2 on the prior
    /// knowledge preface (h2c). Idle connections close on shutdown; a request being answered is
    /// finished first. `info` says whether it is TLS (and who the peer is, for the access log).
    pub async fn serve_connection<T: Transport>(
        &self,
        mut io: T,
        mut shutdown: shutdown::Signal,
        info: ConnectionInfo,
    ) {
        match http1::serve(&mut io, &self.service, &mut shutdown, &self.timeouts, info).await {
            Ok(Outcome::Closed) => {}
            Ok(Outcome::Http2(preface)) => {
                // Boxed: every connection future (idle HTTP/1.1 ones included) would otherwise
                // be as large as the h2 one, and cost that much memory each.
                Box::pin(self.serve_h2(Rewind::new(preface, io), shutdown, info)).await;
            }
            Err(error) => debug!(%error, "connection ended with an error"),
        }
    }

    /// An HTTP/2 connection (h2c after its preface was read, or h2 negotiated by ALPN), through
    /// hyper, until it ends or is drained on shutdown. Its bytes pass through a
    /// guard (`h2_guard.rs`): a client that has not sent SETTINGS within the handshake timeout is
    /// closed; one that sends no request for the keep-alive timeout is sent GOAWAY and closed
    /// (answering PINGs does not keep it); one that floods control frames is sent GOAWAY
    /// `ENHANCE_YOUR_CALM`.
    pub async fn serve_h2<T>(&self, io: T, mut shutdown: shutdown::Signal, info: ConnectionInfo)
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let watch = h2_guard::Watch::new();
        let io = h2_guard::H2Guard::new(io, std::sync::Arc::clone(&watch));
        // Boxed: hyper's h2 connection state is large.
        let mut connection = Box::pin(self.http2.serve_connection(
            TokioIo::new(io),
            ConnectionService::new(self.service.clone(), info),
        ));
        let handshake_deadline = watch.start() + self.limits.h2_handshake;
        // Once closing (idle, flood or shutdown): how long the close may take at most.
        let mut closing: Option<Instant> = None;
        let mut draining = false;
        let idle_deadline = watch.start() + self.timeouts.keep_alive;
        let timer = tokio::time::sleep_until(handshake_deadline.min(idle_deadline));
        tokio::pin!(timer);
        let result = loop {
            tokio::select! {
                biased;
                result = connection.as_mut() => break result,
                () = shutdown.requested(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = timer.as_mut() => {
                    let now = Instant::now();
                    if closing.is_some_and(|deadline| now >= deadline) {
                        debug!("HTTP/2 connection did not close in time; dropped");
                        return;
                    }
                    if !watch.settings_seen() && now >= handshake_deadline {
                        debug!("HTTP/2 client sent no SETTINGS within the handshake timeout");
                        return;
                    }
                    if watch.calmed() && closing.is_none() {
                        closing = Some(now + H2_CALM_CLOSE);
                    }
                    let idle_at = watch.last_request() + self.timeouts.keep_alive;
                    if watch.settings_seen() && now >= idle_at && closing.is_none() {
                        connection.as_mut().graceful_shutdown();
                        closing = Some(now + self.timeouts.write);
                    }
                    // A flooder that was sent GOAWAY ends itself (the guard stops its input); one
                    // that then falls silent is caught here at the idle deadline.
                    let next = match closing {
                        Some(deadline) => deadline,
                        None if !watch.settings_seen() => handshake_deadline.min(idle_at),
                        None => idle_at,
                    };
                    timer.as_mut().reset(next);
                }
            }
        };
        if watch.calmed() {
            debug!("HTTP/2 control frame flood; sent GOAWAY ENHANCE_YOUR_CALM and closed");
        }
        if let Err(error) = result {
            debug!(%error, "HTTP/2 connection ended with an error");
        }
    }
}

/// Accepted sockets inherit TCP_NODELAY from the listener: no extra syscall per connection.
fn set_nodelay(listener: &TcpListener) {
    if let Err(error) = socket2::SockRef::from(listener).set_tcp_nodelay(true) {
        warn!(%error, "cannot set TCP_NODELAY on the listener");
    }
}
