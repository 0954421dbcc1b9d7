//! What every listener of issuerd does alike (the issuer server, the STS): bind with a backlog,
//! accept until shutdown under a connection cap, one task per connection, then a bounded drain;
//! and a hyper connection that finishes its request in flight on shutdown.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::shutdown::{self, Reclaim};

/// Descriptors kept free for everything that is not a connection (key files, the watcher,
/// the mirror's and the STS's sockets, logs), when the connection cap is sized from the fd limit:
/// this many, or a quarter of a lower limit.
pub const RESERVED_FDS: u64 = 64;
/// The first pause after a failed `accept`; doubled on each further failure.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause after failed `accept`s.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often the connections whose wait is due (keep-alive, header timeout) are woken.
const DEADLINE_TICK: Duration = Duration::from_millis(250);
/// Connections asked to close at once when the cap is reached and a new one waits.
const RECLAIM_BATCH: usize = 8;
/// How long a new connection waits for a reclaimed one to go before it is refused.
const RECLAIM_WAIT: Duration = Duration::from_secs(1);
/// Accept failures and refusals are logged at most once per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Binds `addr` with a listen backlog of `backlog` (`SO_REUSEADDR`, non-blocking), for
/// [`TcpListener::from_std`].
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    bind_with(addr, backlog, false)
}

/// [`bind`], with `SO_REUSEPORT` set when `reuse_port` (the issuer listener's workers).
pub fn bind_with(
    addr: SocketAddr,
    backlog: u32,
    reuse_port: bool,
) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Sets the backlog of a socket that already listens (one bound elsewhere, e.g. by `--dev` on
/// port 0 or by a test): Linux applies a second `listen` to the queue length.
pub fn set_backlog(listener: &TcpListener, backlog: u32) -> io::Result<()> {
    socket2::SockRef::from(listener).listen(i32::try_from(backlog).unwrap_or(i32::MAX))
}

/// The open-files limit after raising its soft value to the hard one, as Go's runtime does, so
/// that the connection cap can be sized from it. Returns (before, after) soft limits.
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current.unwrap_or(u64::MAX);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised)?;
    }
    let after = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    Ok((before, after))
}

/// Descriptors each worker thread of the issuer listener holds besides its connections (its
/// runtime's epoll and eventfd, its socket; measured 4 to 5, with room).
pub const FDS_PER_WORKER: u64 = 8;

/// The default connection cap: the soft open-files limit less [`RESERVED_FDS`] (or less a
/// quarter of a limit under 256), so that the cap is reached before `accept` fails with EMFILE
/// (and a refused connection can still be accepted and closed); at least 1.
pub fn default_max_connections() -> usize {
    default_max_connections_with_workers(0)
}

/// [`default_max_connections`] of a listener served by `workers` threads of its own, each
/// holding [`FDS_PER_WORKER`] descriptors too.
pub fn default_max_connections_with_workers(workers: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let reserved = RESERVED_FDS.min(soft / 4);
    let workers = FDS_PER_WORKER.saturating_mul(u64::try_from(workers).unwrap_or(u64::MAX));
    let cap = soft.saturating_sub(reserved).saturating_sub(workers).max(1);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// Accepts on `listener` until `shutdown` fires, serving each connection with `serve` in its own
/// task, under the default connection cap; see [`accept_limited`].
pub async fn accept_until_shutdown<S, F>(
    name: &'static str,
    listener: TcpListener,
    shutdown: shutdown::Signal,
    grace: Duration,
    serve: S,
) where
    S: Fn(TcpStream, shutdown::Signal) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    accept_limited(
        name,
        listener,
        shutdown,
        grace,
        ConnectionBudget::new(default_max_connections()),
        move |stream, shutdown, admission| {
            let connection = serve(stream, shutdown);
            async move {
                connection.await;
                drop(admission);
            }
        },
    )
    .await;
}

/// Accepts on `listener` until `shutdown` fires, serving each connection with `serve` in its own
/// task; then stops accepting and waits at most `grace` for the connections to end. `name`
/// labels the log lines.
///
/// At most `budget`'s connections are served at once (by every accept loop that shares it, the
/// issuer listener's workers). At the cap, connections that wait for their
/// client are reclaimed to admit a new one: up to 8 are asked to close (those never served a
/// request first, then idle ones, oldest first; each gets its stop request through the
/// [`shutdown::Signal`] handed to `serve`), and the new connection waits up to a second for one
/// of them to go. When none waits, the new connection is closed at once, so it is neither left
/// waiting in the backlog nor costs more than an accept. When `accept` itself
/// fails (EMFILE: out of descriptors), the loop pauses, 10 ms doubling up to 1 s, instead of
/// spinning. Both are logged at most once per 10 s, with a count.
pub async fn accept_limited<S, F>(
    name: &'static str,
    listener: TcpListener,
    mut shutdown: shutdown::Signal,
    grace: Duration,
    budget: ConnectionBudget,
    serve: S,
) where
    S: Fn(TcpStream, shutdown::Signal, Admission) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let ConnectionBudget {
        connections,
        registry,
        permits,
    } = budget;
    let mut at_cap = AtCap {
        throttle: Throttled::new(),
        reclaimed: 0,
        refused: 0,
    };
    let mut failed = Throttled::new();
    let mut backoff = BACKOFF_MIN;
    // The connections' deadlines are kept here, not by a timer in each: a few times a second,
    // those due are woken (a timeout fires up to one tick late).
    let mut deadlines = tokio::time::interval(DEADLINE_TICK);
    deadlines.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.requested() => break,
            _ = deadlines.tick() => registry.wake_due(),
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    backoff = BACKOFF_MIN;
                    let permit = match Arc::clone(&connections).try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        // At the cap: close connections that wait for their client (those
                        // never served first, then the oldest), and admit this one in their
                        // place once one has gone.
                        Err(_) => {
                            let asked = registry.reclaim(RECLAIM_BATCH);
                            at_cap.reclaimed += asked;
                            let permit = if asked > 0 {
                                let permit = Arc::clone(&connections).acquire_owned();
                                tokio::time::timeout(RECLAIM_WAIT, permit).await.ok().and_then(Result::ok)
                            } else {
                                None
                            };
                            at_cap.refused += usize::from(permit.is_none());
                            if let Some(count) = at_cap.throttle.tick() {
                                warn!(listener = name, max_connections = permits, times = count,
                                    reclaimed = at_cap.reclaimed, refused = at_cap.refused,
                                    "connection limit reached; reclaiming connections that wait \
                                     for their client, refusing new ones when none does");
                                at_cap.reclaimed = 0;
                                at_cap.refused = 0;
                            }
                            permit
                        }
                    };
                    let Some(permit) = permit else {
                        // Closed at once: the client sees the connection end instead of a hang.
                        drop(stream);
                        continue;
                    };
                    let (registered, reclaim) = Registry::register(&registry);
                    let admission = Admission {
                        _registered: registered,
                        _permit: permit,
                    };
                    // The connection's own future is the task: not wrapped in one that would
                    // store the stream and signal a second time (each idle connection is its
                    // future), though spawning it moves it.
                    tokio::spawn(serve(stream, shutdown.reclaimable(reclaim), admission));
                }
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    // EMFILE and friends: the pending connection stays queued and `accept` would
                    // fail again at once, so pause, longer each time.
                    if let Some(count) = failed.tick() {
                        warn!(listener = name, %error, failures = count,
                            retry_ms = backoff.as_millis() as u64, "accept failed; backing off");
                    }
                    tokio::select! {
                        biased;
                        () = shutdown.requested() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            },
        }
    }
    drop(listener);
    // Connections wait on their own stop request, not on the shared one: pass it on.
    registry.stop_all();
    info!(
        listener = name,
        grace_secs = grace.as_secs_f64(),
        "stopped accepting; draining connections"
    );
    let all = u32::try_from(permits).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, connections.acquire_many(all))
        .await
        .is_err()
    {
        warn!(
            listener = name,
            "grace period elapsed; closing the remaining connections"
        );
    }
}

/// The connection cap of one listener and its connections, shared by the accept loops that serve
/// it (one per worker): one permit per connection (the drain waits until every permit is back)
/// and one registry, so that the cap is the listener's whole and reclaiming finds idle
/// connections whichever worker holds them. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ConnectionBudget {
    connections: Arc<Semaphore>,
    registry: Arc<Registry>,
    permits: usize,
}

impl ConnectionBudget {
    /// A cap of `max_connections` (at least 1).
    pub fn new(max_connections: usize) -> Self {
        let permits = max_connections.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            connections: Arc::new(Semaphore::new(permits)),
            registry: Arc::new(Registry::default()),
            permits,
        }
    }
}

/// What happened at the connection cap since it was last logged.
struct AtCap {
    throttle: Throttled,
    /// Connections asked to close for new ones.
    reclaimed: usize,
    /// New connections closed at once (none could be reclaimed in time).
    refused: usize,
}

/// The connections of one listener, oldest first, each with its stop request.
#[derive(Debug, Default)]
struct Registry {
    connections: Mutex<(u64, BTreeMap<u64, Arc<Reclaim>>)>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Arc<Reclaim>>)> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new connection: registered until the guard drops, and its stop request.
    fn register(registry: &Arc<Self>) -> (Registered, Arc<Reclaim>) {
        let reclaim = Arc::new(Reclaim::registered());
        let mut connections = registry.lock();
        let id = connections.0;
        connections.0 += 1;
        connections.1.insert(id, Arc::clone(&reclaim));
        let registered = Registered {
            registry: Arc::clone(registry),
            id,
        };
        (registered, reclaim)
    }

    /// Asks up to `most` connections that wait for their client to close: first those that
    /// were never served a request (silent or trickling clients), then idle ones, oldest first
    /// (as nginx reclaims its reusable connections). Returns how many were asked.
    fn reclaim(&self, most: usize) -> usize {
        let connections = self.lock();
        let candidates = |served: bool| {
            connections
                .1
                .values()
                .filter(move |r| r.waiting() && !r.stopped() && r.served() == served)
        };
        let mut asked = 0;
        for reclaim in candidates(false).chain(candidates(true)).take(most) {
            reclaim.stop();
            asked += 1;
        }
        asked
    }

    /// Wakes the connections whose wait is due (their keep-alive or header deadline).
    fn wake_due(&self) {
        let now = shutdown::millis(Instant::now());
        for reclaim in self.lock().1.values() {
            reclaim.wake_if_due(now);
        }
    }

    /// Shutdown: every connection is asked to close (idle ones at once, busy ones once they
    /// have answered).
    fn stop_all(&self) {
        for reclaim in self.lock().1.values() {
            reclaim.stop();
        }
    }
}

/// A connection's admission under the cap (its permit and its place in the registry): the
/// connection's future holds it until the connection ends.
#[derive(Debug)]
pub struct Admission {
    _registered: Registered,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// A connection's place in the [`Registry`], given up when it ends (or its task panics).
#[derive(Debug)]
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().1.remove(&self.id);
    }
}

/// Errors of one connection (it was reset before it was accepted), not of the listener.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Counts events and says when to log them: the first at once, then at most once per
/// [`LOG_INTERVAL`], with the number of events since the last line.
#[derive(Debug)]
struct Throttled {
    last: Option<Instant>,
    count: u64,
}

impl Throttled {
    fn new() -> Self {
        Self {
            last: None,
            count: 0,
        }
    }

    /// One more event; `Some(events)` when a line is due.
    fn tick(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + LOG_INTERVAL) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
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

/// Serves a small plain HTTP/1.1 listener (an admin listener: metrics, health) until `shutdown`
/// fires, each request answered at once by `respond`; logs its address as `"admin listener
/// ready"`. Bounded as every listener: the default connection cap, `header_timeout`, `grace`.
pub async fn serve_admin<F>(
    listener: TcpListener,
    header_timeout: Duration,
    respond: F,
    shutdown: shutdown::Signal,
    grace: Duration,
) where
    F: Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Clone + Send + Sync + 'static,
{
    if let Ok(addr) = listener.local_addr() {
        info!(listen = %addr, "admin listener ready");
    }
    accept_until_shutdown(
        "admin",
        listener,
        shutdown,
        grace,
        move |stream, shutdown| {
            let respond = respond.clone();
            serve_http1(
                "admin",
                stream,
                header_timeout,
                move |request| std::future::ready(respond(&request)),
                shutdown,
            )
        },
    )
    .await;
}

/// One connection (plain or TLS) of a small hyper HTTP/1.1 server (the STS, the admin listener,
/// ACME http-01, the webhook):
/// each request answered by `handle`, a request head due within `header_timeout`; on shutdown an
/// idle connection closes and a request being answered is finished first. `name` labels the log.
pub async fn serve_http1<S, F, R>(
    name: &'static str,
    stream: S,
    header_timeout: Duration,
    handle: F,
    mut shutdown: shutdown::Signal,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> R + Send + 'static,
    R: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    // Each answer marks the connection as served: at the connection cap, the listener reclaims
    // connections that never were before those (an API server's pool) that were.
    let marker = shutdown.clone();
    let service = hyper::service::service_fn(move |request| {
        let answer = handle(request);
        let marker = marker.clone();
        async move {
            let answer = answer.await;
            marker.served();
            Ok::<_, Infallible>(answer)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    let result = until_done_or_drained(connection, &mut shutdown, |c| c.graceful_shutdown()).await;
    if let Err(error) = result {
        debug!(listener = name, %error, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttled_logs_once_per_interval_with_a_count() {
        let mut throttled = Throttled::new();
        assert_eq!(throttled.tick(), Some(1));
        assert_eq!(throttled.tick(), None);
        assert_eq!(throttled.tick(), None);
        tokio::time::advance(LOG_INTERVAL).await;
        assert_eq!(throttled.tick(), Some(3));
        assert_eq!(throttled.tick(), None);
    }
}
