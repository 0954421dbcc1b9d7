//! The admin listener: `/metrics`, `/statusz`, `/healthz` and `/readyz` on an address of their
//! own, through a small hyper HTTP/1.1 server (not a hot path).

use std::time::Duration;

use tokio::net::TcpListener;

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
    let respond = move |request: &_| service.respond_admin(request);
    listener::serve_admin(listener, HEADER_READ_TIMEOUT, respond, shutdown, grace).await;
}
