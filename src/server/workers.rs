//! The issuer listener's worker threads (`[server] workers`, described by
//! [`crate::config::Workers`]).
//!
//! By default, nginx's worker model: one thread per available core, each with its own
//! current-thread runtime accepting on its own socket, all bound to the same address with
//! `SO_REUSEPORT`, so the kernel spreads new connections across them and a connection lives and
//! dies on the thread that accepted it. No task moves between threads and no thread wakes
//! another. On a quiet box it serves as fast as tokio's work-stealing runtime; on cores shared
//! with busy neighbours each thread has work of its own queued, and the server obtains its
//! share of the CPU (issue 22; docs/performance.md has the runs).
//!
//! `shared` keeps every connection on the process's multi-thread runtime (work stealing), which
//! balances a few long-lived connections (a load balancer's keep-alive pool) across cores where
//! `SO_REUSEPORT`'s hash of the client address may put them on one thread.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::warn;

/// Binds `addr` for a worker: `SO_REUSEPORT` (and `SO_REUSEADDR`), non-blocking, listening with
/// `backlog`.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// The sockets of `threads` workers: `first`, and siblings bound to its address when it has
/// `SO_REUSEPORT`. A listener bound without it (by a test, or handed over) gets one worker.
pub fn listeners(
    first: std::net::TcpListener,
    backlog: u32,
    threads: NonZeroUsize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let reuse_port = socket2::SockRef::from(&first).reuse_port().unwrap_or(false);
    let count = if reuse_port { threads.get() } else { 1 };
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..count {
        listeners.push(bind(addr, backlog)?);
    }
    Ok(listeners)
}

/// Runs `serve` on each listener, each on a thread of its own (`issuerd-io-N`) with a
/// current-thread runtime. The handle (a task of the calling runtime) completes when every
/// worker has returned; connections a worker still holds then end with its runtime.
pub fn spawn<F, Fut>(listeners: Vec<std::net::TcpListener>, serve: F) -> io::Result<JoinHandle<()>>
where
    F: Fn(TcpListener) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let serve = Arc::new(serve);
    let mut finished = Vec::with_capacity(listeners.len());
    for (index, listener) in listeners.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let serve = Arc::clone(&serve);
        let (done, done_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("issuerd-io-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener).await,
                        Err(error) => {
                            warn!(%error, worker = index, "cannot register the listener");
                        }
                    }
                });
                drop(runtime);
                let _ = done.send(());
            })?;
        finished.push(done_rx);
    }
    Ok(tokio::spawn(async move {
        for done in finished {
            let _ = done.await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_share_the_address_only_with_reuse_port() {
        let first = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = first.local_addr().unwrap();
        let all = listeners(first, 16, NonZeroUsize::new(3).unwrap()).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|l| l.local_addr().unwrap() == addr));
        // Bound without SO_REUSEPORT: one worker, and no sibling could bind anyway.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            listeners(plain, 16, NonZeroUsize::new(3).unwrap())
                .unwrap()
                .len(),
            1
        );
    }
}
