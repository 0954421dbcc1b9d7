//! Shutdown: the OS signals that start it, the signal every task waits on, and the readiness latch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// What a trigger and its signals share.
#[derive(Debug, Default)]
struct Shared {
    stopped: AtomicBool,
    notify: Notify,
}

/// The trigger side: `trigger` (or dropping it) starts a graceful shutdown of every task holding
/// a [`Signal`].
#[derive(Debug)]
pub struct Trigger {
    shared: Arc<Shared>,
}

/// The waiting side, one clone per task. Waiting on it is small (a `Notified`, about 64 bytes),
/// which counts: every idle connection waits on one.
#[derive(Clone, Debug)]
pub struct Signal {
    shared: Arc<Shared>,
    /// A connection's own stop request, when its listener may reclaim it.
    reclaim: Option<Arc<Reclaim>>,
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
    notify: Notify,
}

impl Reclaim {
    /// Asks the connection to close: its [`Signal::requested`] completes.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify.notify_waiters();
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

/// Marks a [`Reclaim`] as waiting while it lives.
struct Waiting<'a>(&'a Reclaim);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.store(false, Ordering::Relaxed);
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
        },
    )
}

impl Trigger {
    /// Asks every task to stop.
    pub fn trigger(&self) {
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.notify.notify_waiters();
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
        let shared = &*self.shared;
        let reclaim = self.reclaim.as_deref();
        async move {
            // A reclaimable connection waits on its own notify: the listener passes shutdown on.
            let notify = reclaim.map_or(&shared.notify, |r| &r.notify);
            let _waiting = reclaim.map(Waiting);
            loop {
                // Created before the flags are read: a `Notified` sees every later
                // `notify_waiters`.
                let notified = notify.notified();
                if shared.stopped.load(Ordering::Acquire) || reclaim.is_some_and(Reclaim::stopped) {
                    return;
                }
                if let Some(reclaim) = reclaim {
                    reclaim.waiting.store(true, Ordering::Relaxed);
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
