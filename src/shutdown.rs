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
}

/// A connected trigger and signal.
pub fn channel() -> (Trigger, Signal) {
    let shared = Arc::new(Shared::default());
    (
        Trigger {
            shared: Arc::clone(&shared),
        },
        Signal { shared },
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
    /// Completes once shutdown has been triggered (or the trigger was dropped).
    pub async fn requested(&mut self) {
        loop {
            // Created before the flag is read: a `Notified` sees every later `notify_waiters`.
            let notified = self.shared.notify.notified();
            if self.shared.stopped.load(Ordering::Acquire) {
                return;
            }
            notified.await;
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
