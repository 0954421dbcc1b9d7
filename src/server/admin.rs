//! The admin listener: `/metrics`, `/statusz`, `/healthz` and `/readyz` on an address of their
//! own, through a small hyper HTTP/1.1 server (not a hot path).

use std::time::Duration;

use tokio::net::TcpListener;
use tracing::info;

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
        move |stream, shutdown| {
            let service = service.clone();
            listener::serve_http1(
                "admin",
                stream,
                HEADER_READ_TIMEOUT,
                move |request| std::future::ready(service.respond_admin(&request)),
                shutdown,
            )
        },
    )
    .await;
}
