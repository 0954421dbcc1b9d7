//! Shutdown: the OS signals that start it, the signal every task waits on, and the readiness latch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// The trigger side: `trigger` starts a graceful shutdown of every task holding a [`Signal`].
#[derive(Debug)]
pub struct Trigger {
    sender: watch::Sender<bool>,
}

/// The waiting side, one clone per task.
#[derive(Clone, Debug)]
pub struct Signal {
    receiver: watch::Receiver<bool>,
}

/// A connected trigger and signal.
pub fn channel() -> (Trigger, Signal) {
    let (sender, receiver) = watch::channel(false);
    (Trigger { sender }, Signal { receiver })
}

impl Trigger {
    /// Asks every task to stop.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }
}

impl Signal {
    /// Completes once shutdown has been triggered (or the trigger was dropped).
    pub async fn requested(&mut self) {
        let _ = self.receiver.wait_for(|stop| *stop).await;
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
