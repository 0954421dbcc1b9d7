//! Shutdown: the OS signals that start it, the signal every task waits on, and the readiness latch.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use tokio::time::{Instant, Sleep};

use tokio::sync::Notify;

/// What a trigger and its signals share.
#[derive(Debug, Default)]
struct Shared {
    stopped: AtomicBool,
    notify: Notify,
    /// Stop requests made for signals polled with [`Signal::poll_requested`] outside a
    /// listener, stopped on shutdown like a listener stops its connections'.
    polled: Mutex<Vec<Weak<Reclaim>>>,
}

/// The trigger side: `trigger` (or dropping it) starts a graceful shutdown of every task holding
/// a [`Signal`].
#[derive(Debug)]
pub struct Trigger {
    shared: Arc<Shared>,
}

/// The waiting side, one clone per task. An idle HTTP/1.1 connection polls it
/// ([`Signal::poll_requested`]: its waker is kept in the connection's [`Reclaim`], so waiting
/// costs the connection's future nothing); other tasks await [`Signal::requested`].
#[derive(Debug)]
pub struct Signal {
    shared: Arc<Shared>,
    /// A connection's own stop request, when its listener may reclaim it (or one made for
    /// [`Signal::poll_requested`], which clones do not share).
    reclaim: Option<Arc<Reclaim>>,
    /// The deadline timer of [`Signal::poll_wait`] outside a listener (a listener keeps its
    /// connections' deadlines itself), boxed: made only there.
    timer: Option<Pin<Box<Sleep>>>,
}

impl Clone for Signal {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            reclaim: self.reclaim.clone().filter(|r| !r.own),
            timer: None,
        }
    }
}

/// One connection's stop request beside the shared shutdown: when the connection cap is reached,
/// the listener asks connections that are waiting for input (and so lose nothing by closing) to
/// close, to admit new clients. It also says whether the connection is waiting now and whether
/// it was ever served a request, so the listener can choose.
#[derive(Debug, Default)]
pub struct Reclaim {
    stopped: AtomicBool,
    /// Waiting in [`Signal::requested`]: for input (or, on HTTP/2, for the client's window).
    waiting: AtomicBool,
    /// A request was answered on it.
    served: AtomicBool,
    /// The task polling [`Signal::poll_requested`].
    waker: Mutex<Option<Waker>>,
    /// Made by a signal for itself (outside a listener).
    own: bool,
    /// Its listener wakes it at its deadline ([`Reclaim::wake_if_due`]): the connection needs
    /// no timer of its own.
    reaped: bool,
    /// When the connection's wait is due ([`millis`]; 0: none).
    deadline: AtomicU64,
}

/// How a connection's wait in [`Signal::poll_wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// Shutdown, or the connection was reclaimed.
    Stopped,
    /// Its deadline passed.
    Due,
}

/// `instant` as milliseconds since the first call, plus one (0 stands for no deadline); the
/// clock of [`Reclaim`] deadlines, which fit an atomic.
pub fn millis(instant: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let since = instant.saturating_duration_since(epoch);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX - 1) + 1
}

impl Reclaim {
    /// The stop request of a connection its listener registers, which also keeps its deadlines
    /// (see [`Reclaim::wake_if_due`]).
    pub fn registered() -> Self {
        Self {
            reaped: true,
            ..Self::default()
        }
    }

    /// Asks the connection to close: its [`Signal::requested`] completes.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Wakes the connection if it waits in [`Signal::poll_wait`] and its deadline is `now`
    /// ([`millis`]) or earlier: its listener calls this a few times a second.
    pub fn wake_if_due(&self, now: u64) {
        let deadline = self.deadline.load(Ordering::Relaxed);
        if deadline != 0 && deadline <= now && self.waiting() {
            self.wake();
        }
    }

    /// Whether it was asked to close.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Whether the connection waits for its client (in [`Signal::requested`]).
    pub fn waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Whether a request was answered on it.
    pub fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }
}

/// A connection's signal while it waits in [`Signal::requested`]: no longer counted as waiting
/// once the wait ends (or is dropped for other work).
struct Waiting<'a>(&'a mut Signal);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.busy();
    }
}

/// A connected trigger and signal.
pub fn channel() -> (Trigger, Signal) {
    let shared = Arc::new(Shared::default());
    (
        Trigger {
            shared: Arc::clone(&shared),
        },
        Signal {
            shared,
            reclaim: None,
            timer: None,
        },
    )
}

impl Trigger {
    /// Asks every task to stop.
    pub fn trigger(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.notify.notify_waiters();
        let polled = std::mem::take(
            &mut *self
                .shared
                .polled
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for reclaim in polled.iter().filter_map(Weak::upgrade) {
            reclaim.stop();
        }
    }
}

impl Drop for Trigger {
    fn drop(&mut self) {
        self.trigger();
    }
}

impl Signal {
    /// This signal for one connection that its listener may reclaim: it also completes when
    /// `reclaim` is stopped, and only then — the listener stops every connection it registered
    /// when shutdown is triggered (connections check the shared flag whenever they wait).
    #[must_use]
    pub fn reclaimable(&self, reclaim: Arc<Reclaim>) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            reclaim: Some(reclaim),
            timer: None,
        }
    }

    /// Polls for [`Signal::requested`] without a future to keep: ready once shutdown was
    /// triggered or this connection reclaimed; pending, the task's waker is kept in the
    /// connection's [`Reclaim`] (and the connection counts as waiting) until the next poll.
    pub fn poll_requested(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        let reclaim = match &self.reclaim {
            Some(reclaim) => reclaim,
            None => {
                // Outside a listener: a stop request of its own, which shutdown reaches.
                let reclaim = Arc::new(Reclaim {
                    own: true,
                    ..Reclaim::default()
                });
                let mut polled = self
                    .shared
                    .polled
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if polled.len() >= 64 && polled.len().is_power_of_two() {
                    polled.retain(|r| r.strong_count() > 0);
                }
                polled.push(Arc::downgrade(&reclaim));
                drop(polled);
                self.reclaim.insert(reclaim)
            }
        };
        {
            let mut waker = reclaim.waker.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *waker {
                Some(kept) if kept.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        // Checked after the waker is kept: a stop in between wakes it.
        if reclaim.stopped() || self.shared.stopped.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        reclaim.waiting.store(true, Ordering::Relaxed);
        Poll::Pending
    }

    /// [`Signal::poll_requested`] with a deadline: ready when stopped, or when `deadline` has
    /// passed. A listener's connection keeps no timer: its listener wakes the task within its
    /// tick of the deadline ([`Reclaim::wake_if_due`]). Any other keeps a boxed one here.
    pub fn poll_wait(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<Woken> {
        if self.poll_requested(cx).is_ready() {
            return Poll::Ready(Woken::Stopped);
        }
        let reclaim = self
            .reclaim
            .as_ref()
            .expect("polled: a stop request is kept");
        if !reclaim.reaped {
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            return timer.as_mut().poll(cx).map(|()| Woken::Due);
        }
        if Instant::now() >= deadline {
            reclaim.waiting.store(false, Ordering::Relaxed);
            return Poll::Ready(Woken::Due);
        }
        reclaim.deadline.store(millis(deadline), Ordering::Relaxed);
        Poll::Pending
    }

    /// Says that the connection is no longer waiting (its poll of [`Signal::poll_requested`]
    /// was pending, and it has work now).
    pub fn busy(&self) {
        if let Some(reclaim) = &self.reclaim {
            reclaim.waiting.store(false, Ordering::Relaxed);
        }
    }

    /// Says that a request was answered on this connection (reclaimed after those that never
    /// were).
    pub fn served(&self) {
        if let Some(reclaim) = &self.reclaim {
            reclaim.served.store(true, Ordering::Relaxed);
        }
    }

    /// Whether shutdown was triggered, or this connection was asked to close.
    pub fn is_requested(&self) -> bool {
        self.shared.stopped.load(Ordering::Acquire)
            || self.reclaim.as_ref().is_some_and(|r| r.stopped())
    }

    /// Completes once shutdown has been triggered (or the trigger was dropped), or this
    /// connection is reclaimed. While it waits, the connection counts as waiting for its client.
    /// (Not an `async fn`, whose argument would be stored twice: every idle connection waits
    /// on one of these.)
    #[allow(
        clippy::manual_async_fn,
        reason = "an async fn stores its arguments twice"
    )]
    pub fn requested(&mut self) -> impl Future<Output = ()> + Send + '_ {
        async move {
            if self.reclaim.is_some() {
                // A connection's: its waker is kept in its Reclaim, which the listener stops.
                let waiting = Waiting(self);
                std::future::poll_fn(|cx| waiting.0.poll_requested(cx)).await;
                return;
            }
            let shared = &*self.shared;
            loop {
                // Created before the flag is read: a `Notified` sees every later
                // `notify_waiters`.
                let notified = shared.notify.notified();
                if shared.stopped.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        }
    }
}

/// Installs SIGTERM and SIGINT handlers now (so a signal during start-up is not fatal) and returns
/// a future that completes with the name of the first one received.
pub fn os_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}

/// Ready once the first snapshot is published; not ready again once draining starts.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
}

impl Readiness {
    /// Marks the server ready.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Marks the server as draining.
    pub fn set_draining(&self) {
        self.ready.store(false, Ordering::Release);
    }

    /// Whether `/readyz` should answer 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
