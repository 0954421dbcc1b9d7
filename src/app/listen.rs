//! Binding a listener with an error that says which flag set the address and what to do.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Binds `addr`, which `flag` set.
pub(super) async fn bind(addr: SocketAddr, flag: &'static str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| cannot_listen(addr, flag, &error))
}

/// The error of a failed bind of `addr` (set by `flag`): what happened and what to do.
pub(super) fn cannot_listen(
    addr: SocketAddr,
    flag: &'static str,
    error: &io::Error,
) -> anyhow::Error {
    let what_to_do = match error.kind() {
        io::ErrorKind::AddrInUse => {
            format!("another process listens there; stop it, or give {flag} another address")
        }
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            "ports below 1024 need CAP_NET_BIND_SERVICE (or root); grant it, or give {flag} a \
             port above 1023 behind a port forward"
        ),
        io::ErrorKind::AddrNotAvailable => {
            format!("no interface of this host has that address; give {flag} one of its own")
        }
        _ => format!("check {flag}"),
    };
    anyhow::anyhow!("cannot listen on {addr} ({flag}): {error}; {what_to_do}")
}
