//! The HTTP server: the accept loop, one task per connection (HTTP/1.1 by `http1`, HTTP/2 by
//! `http2`, both issuerd's own), and the graceful drain on shutdown.

pub mod admin;
mod date;
mod encoded;
mod http1;
mod http2;
pub mod limits;
pub mod metrics;
mod output;
mod response_block;
pub mod service;
mod tls;
mod transport;
pub mod workers;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

pub use self::http1::DELIBERATE_DIFFERENCES;
use self::http1::Outcome;
pub use self::http2::DELIBERATE_DIFFERENCES as H2_DELIBERATE_DIFFERENCES;
#[doc(hidden)]
pub use self::http2::fuzzing;
pub use self::limits::{Limits, Timeouts};
pub use self::metrics::ConnectionInfo;
use self::metrics::OpenConnection;
pub use self::service::{Attached, IssuerService};
pub use self::tls::{TlsSettings, TlsSetupError, server_config};
pub use self::transport::Transport;
use crate::{listener, shutdown};

/// Serves connections: HTTP/1.1 and HTTP/2 (prior knowledge, or by ALPN over TLS).
#[derive(Debug)]
pub struct Server {
    service: IssuerService,
    timeouts: Timeouts,
    limits: Limits,
    /// The connection cap, shared by every accept loop of this server (its workers).
    budget: listener::ConnectionBudget,
}

impl Server {
    /// A server answering with `service`.
    pub fn new(service: IssuerService, timeouts: Timeouts) -> Self {
        let limits = Limits::default();
        Self {
            service,
            timeouts,
            budget: listener::ConnectionBudget::new(limits.max_connections),
            limits,
        }
    }

    /// The same server with these connection limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.budget = listener::ConnectionBudget::new(limits.max_connections);
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
        self.accept(listener, shutdown, grace, false, serve_on)
            .await;
    }

    /// The accept loop of the plain and TLS listeners: TCP_NODELAY, the connection cap, each
    /// connection counted as open while `serve` runs it.
    async fn accept<F, Fut>(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: shutdown::Signal,
        grace: Duration,
        tls: bool,
        serve: F,
    ) where
        F: Fn(
                Arc<Self>,
                TcpStream,
                shutdown::Signal,
                ConnectionInfo,
                (OpenConnection, listener::Admission),
            ) -> Fut
            + Clone
            + Send
            + Sync
            + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        set_nodelay(&listener);
        let budget = self.budget.clone();
        listener::accept_limited(
            "issuer",
            listener,
            shutdown,
            grace,
            budget,
            move |stream, shutdown, admission| {
                let server = Arc::clone(&self);
                let info = server.connection_info(&stream, tls);
                let open = server.service.metrics().connection(tls);
                // The connection's future itself, not wrapped in another that would store
                // the stream, signal and info a second time.
                serve(server, stream, shutdown, info, (open, admission))
            },
        )
        .await;
    }

    /// What the metrics and the access log know of a connection. The peer address costs a
    /// syscall: asked only for the access log.
    fn connection_info(&self, stream: &TcpStream, tls: bool) -> ConnectionInfo {
        let peer = if self.service.access_log() {
            stream.peer_addr().ok().map(Box::new)
        } else {
            None
        };
        ConnectionInfo { tls, peer }
    }

    /// One connection, start to end (counted as open by whoever accepted it): the HTTP/1.1 loop,
    /// which hands over to HTTP/2 on the prior knowledge preface (h2c). Idle connections close
    /// on shutdown; a request being answered is finished first. `info` says whether it is TLS
    /// (and who the peer is, for the access log).
    pub fn serve_connection<T: Transport>(
        &self,
        io: T,
        shutdown: shutdown::Signal,
        info: ConnectionInfo,
    ) -> impl Future<Output = ()> + Send + '_ {
        serve_on(self, io, shutdown, info, ())
    }

    /// An HTTP/2 connection (h2 negotiated by ALPN), until it ends or is drained on shutdown.
    pub async fn serve_h2<T: Transport>(
        &self,
        io: T,
        shutdown: shutdown::Signal,
        info: ConnectionInfo,
    ) {
        self.serve_h2_read(io, shutdown, info, Vec::new()).await;
    }

    /// An HTTP/2 connection of which `read` was already read.
    async fn serve_h2_read<T: Transport>(
        &self,
        mut io: T,
        mut shutdown: shutdown::Signal,
        info: ConnectionInfo,
        read: Vec<u8>,
    ) {
        let served = http2::serve(
            &mut io,
            &self.service,
            &mut shutdown,
            &self.timeouts,
            &self.limits,
            info,
            read,
        )
        .await;
        if let Err(error) = served {
            debug!(%error, "HTTP/2 connection ended with an error");
        }
    }
}

/// [`Server::serve_connection`] over a server borrowed or shared, holding `guard` until the
/// connection ends. Not an `async fn` (one stores its arguments twice, rust-lang/rust#62958),
/// and no further wrapper: this future is what every idle connection costs.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
fn serve_on<S, T, G>(
    server: S,
    mut io: T,
    mut shutdown: shutdown::Signal,
    info: ConnectionInfo,
    guard: G,
) -> impl Future<Output = ()> + Send
where
    S: std::ops::Deref<Target = Server> + Send,
    T: Transport,
    G: Send,
{
    async move {
        let served = http1::serve(
            &mut io,
            &server.service,
            &mut shutdown,
            &server.timeouts,
            &info,
        )
        .await;
        match served {
            Ok(Outcome::Closed) => {}
            Ok(Outcome::Http2(preface)) => {
                // Boxed: every connection future (idle HTTP/1.1 ones included) would otherwise
                // be as large as the HTTP/2 one, and cost that much memory each.
                Box::pin(server.serve_h2_read(io, shutdown, info, preface)).await;
            }
            Err(error) => debug!(%error, "connection ended with an error"),
        }
        drop(guard);
    }
}

/// Accepted sockets inherit TCP_NODELAY from the listener: no extra syscall per connection.
fn set_nodelay(listener: &TcpListener) {
    if let Err(error) = socket2::SockRef::from(listener).set_tcp_nodelay(true) {
        warn!(%error, "cannot set TCP_NODELAY on the listener");
    }
}
