//! The HTTP server: the accept loop, one task per connection (HTTP/1.1 by `http1`, h2c by
//! hyper), and the graceful drain on shutdown.

mod date;
mod http1;
mod rewind;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use self::http1::{Outcome, Timeouts};
use self::rewind::Rewind;
pub use self::service::IssuerService;
use crate::shutdown;

/// Time a client has to finish a request head it has started.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Time an idle keep-alive connection is kept (nginx's default is 75 s).
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Most concurrent HTTP/2 streams per connection.
const MAX_CONCURRENT_STREAMS: u32 = 256;

type Http2Builder = hyper::server::conn::http2::Builder<TokioExecutor>;

/// What every connection task shares; one reference count per connection instead of one per
/// field.
struct Shared {
    service: IssuerService,
    http2: Http2Builder,
    timeouts: Timeouts,
}

/// Serves `service` on `listener` until `shutdown` fires, then stops accepting and lets in-flight
/// requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    service: IssuerService,
    mut shutdown: shutdown::Signal,
    grace: Duration,
) {
    let mut http2 = Http2Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        // Dead peers are found by PING instead of holding a connection forever.
        .keep_alive_interval(Some(KEEP_ALIVE_TIMEOUT / 3))
        .keep_alive_timeout(Duration::from_secs(20));
    let shared = Arc::new(Shared {
        service,
        http2,
        timeouts: Timeouts {
            header_read: HEADER_READ_TIMEOUT,
            keep_alive: KEEP_ALIVE_TIMEOUT,
        },
    });
    // Accepted sockets inherit TCP_NODELAY from the listener: no extra syscall per connection.
    if let Err(error) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
        warn!(%error, "cannot set TCP_NODELAY on the listener");
    }
    // Every connection task holds a receiver; `closed()` completes when the last one ends.
    let (connections, connection_token) = watch::channel(());

    loop {
        tokio::select! {
            biased;
            () = shutdown.requested() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(connection(
                        stream,
                        Arc::clone(&shared),
                        shutdown.clone(),
                        connection_token.clone(),
                    ));
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    drop(connection_token);
    info!(
        grace_secs = grace.as_secs_f64(),
        "stopped accepting; draining connections"
    );
    if tokio::time::timeout(grace, connections.closed())
        .await
        .is_err()
    {
        warn!("grace period elapsed; closing the remaining connections");
    }
}

/// One connection, start to end. Idle connections close on shutdown; a request being answered
/// is finished first.
async fn connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: shutdown::Signal,
    _token: watch::Receiver<()>,
) {
    match http1::serve(&stream, &shared.service, &mut shutdown, shared.timeouts).await {
        Ok(Outcome::Closed) => {}
        Ok(Outcome::Http2(preface)) => {
            let connection = shared.http2.serve_connection(
                TokioIo::new(Rewind::new(preface, stream)),
                shared.service.clone(),
            );
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.requested() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                debug!(%error, "HTTP/2 connection ended with an error");
            }
        }
        Err(error) => debug!(%error, "connection ended with an error"),
    }
}
