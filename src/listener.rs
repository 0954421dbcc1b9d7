//! What every listener of issuerd does alike (the issuer server, the STS): accept until shutdown,
//! one task per connection, then a bounded drain; and a hyper connection that finishes its
//! request in flight on shutdown.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::shutdown;

/// Accepts on `listener` until `shutdown` fires, serving each connection with `serve` in its own
/// task; then stops accepting and waits at most `grace` for the connections to end. `name`
/// labels the log lines.
pub async fn accept_until_shutdown<S, F>(
    name: &'static str,
    listener: TcpListener,
    mut shutdown: shutdown::Signal,
    grace: Duration,
    serve: S,
) where
    S: Fn(TcpStream, shutdown::Signal) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    // Every connection task holds a receiver; `closed()` completes when the last one ends.
    let (connections, token) = watch::channel(());
    loop {
        tokio::select! {
            biased;
            () = shutdown.requested() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let connection = serve(stream, shutdown.clone());
                    let token = token.clone();
                    tokio::spawn(async move {
                        connection.await;
                        drop(token);
                    });
                }
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(listener = name, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    drop(token);
    info!(
        listener = name,
        grace_secs = grace.as_secs_f64(),
        "stopped accepting; draining connections"
    );
    if tokio::time::timeout(grace, connections.closed())
        .await
        .is_err()
    {
        warn!(
            listener = name,
            "grace period elapsed; closing the remaining connections"
        );
    }
}

/// Runs a hyper connection to its end; when `shutdown` fires first, asks it (through
/// `graceful_shutdown`) to finish the request in flight and close.
pub async fn until_done_or_drained<C: Future>(
    connection: C,
    shutdown: &mut shutdown::Signal,
    graceful_shutdown: impl FnOnce(Pin<&mut C>),
) -> C::Output {
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        output = connection.as_mut() => output,
        () = shutdown.requested() => {
            graceful_shutdown(connection.as_mut());
            connection.await
        }
    }
}
