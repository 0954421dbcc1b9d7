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
use tracing::error;

/// The sockets of `count` workers on `addr`, each listening with `backlog`. One worker gets
/// one plain socket. Several get one socket each, bound with `SO_REUSEPORT` (the first to
/// `addr`, the others to the address it got, so port 0 works), after a plain bind of `addr`
/// has shown that no other process listens there: `SO_REUSEPORT` would otherwise let a second
/// issuerd (or any program of the same user that sets it) share the port silently.
pub fn bind(
    addr: SocketAddr,
    backlog: u32,
    count: NonZeroUsize,
) -> io::Result<Vec<std::net::TcpListener>> {
    if count.get() == 1 {
        return Ok(vec![crate::listener::bind(addr, backlog)?]);
    }
    if addr.port() != 0 {
        drop(crate::listener::bind(addr, 1)?);
    }
    let mut listeners = Vec::with_capacity(count.get());
    let mut bound = addr;
    for _ in 0..count.get() {
        let listener = crate::listener::bind_with(bound, backlog, true)?;
        bound = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Runs `serve` on each listener, each on a thread of its own (`issuerd-io-N`) with a
/// current-thread runtime. The handle (a task of the calling runtime) completes when every
/// worker has returned; connections a worker still holds then end with its runtime. A worker
/// that panicked makes the handle's task panic too, naming it, so that whoever joins the
/// server hears of it as of any task's panic.
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
                    let listener = TcpListener::from_std(listener)
                        .expect("a bound, non-blocking listener registers with its runtime");
                    serve(listener).await;
                });
                drop(runtime);
                // Not sent when the thread unwinds: the receiver sees it dropped.
                let _ = done.send(());
            })?;
        finished.push((index, done_rx));
    }
    Ok(tokio::spawn(async move {
        for (index, done) in finished {
            if done.await.is_err() {
                error!(worker = index, "a worker thread panicked");
                panic!("worker issuerd-io-{index} panicked");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_the_address_and_a_taken_port_is_refused() {
        let three = NonZeroUsize::new(3).unwrap();
        let all = bind("127.0.0.1:0".parse().unwrap(), 16, three).unwrap();
        assert_eq!(all.len(), 3);
        let addr = all[0].local_addr().unwrap();
        assert!(all.iter().all(|l| l.local_addr().unwrap() == addr));
        // A second server on the same port is refused, though these set SO_REUSEPORT.
        let error = bind(addr, 16, three).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        let error = bind(addr, 16, NonZeroUsize::MIN).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        // One worker: a plain socket, which no SO_REUSEPORT socket can join.
        let one = bind("127.0.0.1:0".parse().unwrap(), 16, NonZeroUsize::MIN).unwrap();
        assert!(!socket2::SockRef::from(&one[0]).reuse_port().unwrap());
        assert!(crate::listener::bind_with(one[0].local_addr().unwrap(), 16, true).is_err());
    }
}
