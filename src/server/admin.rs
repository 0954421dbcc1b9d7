//! The admin listener: `/metrics`, `/statusz`, `/healthz` and `/readyz` on an address of their
//! own, through a small hyper HTTP/1.1 server (not a hot path).

use std::convert::Infallible;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

use super::service::IssuerService;
use crate::{listener, shutdown};

/// Time a client has to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves the admin endpoints of `service` on `listener` until `shutdown` fires, then lets
/// in-flight requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    service: IssuerService,
    shutdown: shutdown::Signal,
    grace: Duration,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(listen = %addr, "admin listener ready");
    }
    listener::accept_until_shutdown(
        "admin",
        listener,
        shutdown,
        grace,
        move |stream, shutdown| connection(stream, service.clone(), shutdown),
    )
    .await;
}

/// One HTTP/1.1 connection; on shutdown an idle connection closes and a request being answered
/// is finished first.
async fn connection(stream: TcpStream, service: IssuerService, mut shutdown: shutdown::Signal) {
    let service = hyper::service::service_fn(move |request| {
        std::future::ready(Ok::<_, Infallible>(service.respond_admin(&request)))
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let result = listener::until_done_or_drained(connection, &mut shutdown, |c| {
        c.graceful_shutdown();
    })
    .await;
    if let Err(error) = result {
        debug!(%error, "admin connection ended with an error");
    }
}
