//! Hot rotation: filesystem events, a poll timer and SIGHUP -> debounce -> reload every source as
//! one set -> publish when it changed. A failed reload keeps the last good snapshot. The same
//! watching reloads the serving certificate ([`CertificateReload`]).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use crate::keys::KeySet;
use crate::shutdown;
use crate::store::{FailureCause, Origin, Store};
use crate::tls::{CertificateFiles, Certificates};

/// A burst of events is waited out for at most this many debounce periods.
const MAX_DEBOUNCE_PERIODS: u32 = 10;
/// After a failed reload, retry this soon even without an event (or at the poll interval).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(2);

/// What to watch and how.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Key files and directories, as given on the command line.
    pub sources: Vec<PathBuf>,
    /// Quiet time after the last event before reloading.
    pub debounce: Duration,
    /// Periodic re-read, for filesystems without inotify (NFS, some FUSE).
    pub poll_interval: Duration,
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The platform watcher could not be created.
    #[error("cannot start the file watcher")]
    Notify(#[source] notify::Error),
    /// The SIGHUP handler could not be installed.
    #[error("cannot listen for SIGHUP")]
    Signal(#[source] std::io::Error),
}

/// Key sources being watched. Created before the first load, so a change made between that
/// load and the reload loop is not lost: it waits in the event channel.
pub struct Watcher {
    config: WatchConfig,
    notify: RecommendedWatcher,
    events: mpsc::Receiver<()>,
    hangup: tokio::signal::unix::Signal,
    watched: HashMap<PathBuf, Identity>,
}

impl Watcher {
    /// Watches `config.sources` and installs the SIGHUP handler (from now on SIGHUP reloads
    /// instead of killing the process). Must run inside the runtime.
    pub fn start(config: WatchConfig) -> Result<Self, WatchError> {
        let (events_tx, events) = mpsc::channel::<()>(1);
        let sources = config.sources.clone();
        let notify = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let relevant = match &event {
                Ok(event) => is_relevant(event, &sources),
                Err(_) => true,
            };
            if relevant {
                // A full channel already holds a pending wake-up: coalesce.
                let _ = events_tx.try_send(());
            }
        })
        .map_err(WatchError::Notify)?;
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(WatchError::Signal)?;
        let mut watcher = Self {
            config,
            notify,
            events,
            hangup,
            watched: HashMap::new(),
        };
        rewatch(
            &mut watcher.notify,
            &watcher.config.sources,
            &mut watcher.watched,
        );
        Ok(watcher)
    }

    /// Reloads `target` on every change (publishing every changed, valid key set when it is the
    /// key [`Store`]) until `shutdown` fires.
    pub async fn run(mut self, mut target: impl Reload, mut shutdown: shutdown::Signal) {
        let sources = &self.config.sources;
        let mut next_poll = Instant::now() + self.config.poll_interval;
        let mut retry_at: Option<Instant> = None;
        loop {
            let wake = retry_at.map_or(next_poll, |retry| retry.min(next_poll));
            let cause = tokio::select! {
                () = shutdown.requested() => break,
                Some(()) = self.events.recv() => {
                    debounce(&mut self.events, self.config.debounce).await;
                    "change"
                }
                () = sleep_until(wake) => if retry_at.is_some_and(|r| r <= Instant::now()) { "retry" } else { "poll" },
                _ = self.hangup.recv() => "SIGHUP",
            };
            if cause == "poll" {
                next_poll = Instant::now() + self.config.poll_interval;
            }
            let mut ok = target.reload(sources, cause).await;
            // A directory that appeared or was replaced got a new watch; what changed in it
            // before the watch existed produced no event, so read once more.
            while rewatch(&mut self.notify, sources, &mut self.watched) {
                ok = target.reload(sources, "new watch").await;
            }
            retry_at = (!ok).then(|| Instant::now() + RETRY_AFTER_FAILURE);
        }
    }
}

/// Waits until no event has arrived for `quiet`, or for `MAX_DEBOUNCE_PERIODS * quiet` in all.
pub async fn debounce(events: &mut mpsc::Receiver<()>, quiet: Duration) {
    let give_up = Instant::now() + quiet * MAX_DEBOUNCE_PERIODS;
    loop {
        let deadline = (Instant::now() + quiet).min(give_up);
        tokio::select! {
            event = events.recv() => if event.is_none() { return },
            () = sleep_until(deadline) => return,
        }
        if Instant::now() >= give_up {
            return;
        }
    }
}

/// What a [`Watcher`] reloads when its sources may have changed.
pub trait Reload: Send {
    /// Re-reads `sources`; returns whether they loaded (a failure is retried soon).
    fn reload(
        &mut self,
        sources: &[PathBuf],
        cause: &'static str,
    ) -> impl std::future::Future<Output = bool> + Send;
}

impl Reload for Store {
    async fn reload(&mut self, sources: &[PathBuf], cause: &'static str) -> bool {
        reload_keys(self, sources, cause).await
    }
}

/// A store shared with another source (the API server poller): the files replace their part.
impl Reload for Arc<Store> {
    async fn reload(&mut self, sources: &[PathBuf], cause: &'static str) -> bool {
        reload_keys(self, sources, cause).await
    }
}

/// The serving certificate's files and the live certificate they feed.
#[derive(Debug)]
pub struct CertificateReload {
    /// `--tls-cert` and `--tls-key` (the watcher's sources).
    pub files: CertificateFiles,
    /// Where a changed, valid pair is installed.
    pub certificates: Certificates,
}

impl Reload for CertificateReload {
    async fn reload(&mut self, _sources: &[PathBuf], cause: &'static str) -> bool {
        self.files.reload(&self.certificates, cause).await
    }
}

/// Re-reads every source as one set and publishes it if it changed. Returns whether it loaded.
async fn reload_keys(store: &Store, sources: &[PathBuf], cause: &'static str) -> bool {
    let owned = sources.to_vec();
    let loaded = tokio::task::spawn_blocking(move || KeySet::load(&owned)).await;
    let keys = match loaded {
        Ok(Ok(keys)) => keys,
        Ok(Err(error)) => {
            let generation = store.current().generation;
            warn!(cause, %error, serving_generation = generation, "key reload failed; still serving the last good key set");
            store.record_failure(FailureCause::of(&error), error.to_string());
            return false;
        }
        Err(join_error) => {
            warn!(cause, error = %join_error, "key reload task failed");
            store.record_failure(FailureCause::Internal, join_error.to_string());
            return false;
        }
    };
    let published = match store.publish_part(Origin::Files, keys) {
        Ok(published) => published,
        Err(error) => {
            warn!(cause, %error, "key reload failed; still serving the last good key set");
            store.record_failure(FailureCause::of(&error), error.to_string());
            return false;
        }
    };
    published.log(store, cause);
    true
}

/// Watches each source's parent directory (catches renames over a file, `..data` symlink swaps,
/// deletion and re-creation) and each directory source itself. Called after every reload: a
/// watch is never removed first (that would drop the events queued on it): adding a watch again
/// is a no-op for the same directory and watches the new one after a re-creation. Returns whether
/// a directory is new or was replaced, so the caller reads once more.
fn rewatch(
    watcher: &mut RecommendedWatcher,
    sources: &[PathBuf],
    watched: &mut HashMap<PathBuf, Identity>,
) -> bool {
    let mut wanted = Vec::new();
    for source in sources {
        match source.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => wanted.push(parent.to_path_buf()),
            None => wanted.push(PathBuf::from(".")),
        }
        if source.is_dir() {
            wanted.push(source.clone());
        }
    }
    let mut added = false;
    for path in wanted {
        let Ok(metadata) = std::fs::metadata(&path) else {
            // Gone: its watch died with it; watch it again once it is back.
            watched.remove(&path);
            continue;
        };
        // Birth time tells a re-created directory from the old one even if its inode is reused.
        let identity = (metadata.dev(), metadata.ino(), metadata.created().ok());
        match watcher.watch(&path, RecursiveMode::NonRecursive) {
            Ok(()) => {
                if watched.insert(path.clone(), identity) != Some(identity) {
                    debug!(path = %path.display(), "watching");
                    added = true;
                }
            }
            Err(error) => {
                debug!(path = %path.display(), %error, "cannot watch (yet)");
                watched.remove(&path);
            }
        }
    }
    added
}

/// What makes a watched directory the same directory.
type Identity = (u64, u64, Option<std::time::SystemTime>);

/// Our own reads (open, read, close-without-write) must not trigger reloads; anything else about
/// a source, a file in a directory source, or a `..`-prefixed entry beside a source does.
fn is_relevant(event: &Event, sources: &[PathBuf]) -> bool {
    if let EventKind::Access(kind) = event.kind
        && !matches!(kind, AccessKind::Close(AccessMode::Write))
    {
        return false;
    }
    if event.paths.is_empty() {
        return true;
    }
    event.paths.iter().any(|path| {
        sources.iter().any(|source| {
            path == source
                || path.parent() == Some(source.as_path())
                || (path.parent() == source.parent() && is_kubelet_entry(path))
                || source.starts_with(path)
        })
    })
}

fn is_kubelet_entry(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with(".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn debounce_waits_for_quiet() {
        let (tx, mut rx) = mpsc::channel(1);
        let quiet = Duration::from_millis(100);
        let start = Instant::now();
        let burst = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                tx.send(()).await.unwrap();
            }
            tx
        });
        debounce(&mut rx, quiet).await;
        // Events at 50, 100 and 150 ms: quiet from 150 ms, so it returns at 250 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        drop(burst.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn debounce_is_bounded_under_a_constant_stream() {
        let (tx, mut rx) = mpsc::channel(1);
        let quiet = Duration::from_millis(100);
        let start = Instant::now();
        let stream = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if tx.send(()).await.is_err() {
                    break;
                }
            }
        });
        debounce(&mut rx, quiet).await;
        assert_eq!(start.elapsed(), quiet * MAX_DEBOUNCE_PERIODS);
        drop(rx);
        stream.await.unwrap();
    }

    #[test]
    fn own_reads_are_not_changes() {
        let sources = vec![PathBuf::from("/keys/sa.pub")];
        let read = Event::new(EventKind::Access(AccessKind::Close(AccessMode::Read)))
            .add_path(PathBuf::from("/keys/sa.pub"));
        assert!(!is_relevant(&read, &sources));
        let write = Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)))
            .add_path(PathBuf::from("/keys/sa.pub"));
        assert!(is_relevant(&write, &sources));
    }

    #[test]
    fn unrelated_siblings_are_ignored_but_kubelet_swaps_are_not() {
        let sources = vec![PathBuf::from("/keys/sa.pub")];
        let event = |p: &str| {
            Event::new(EventKind::Create(notify::event::CreateKind::Any)).add_path(PathBuf::from(p))
        };
        assert!(!is_relevant(&event("/keys/other.txt"), &sources));
        assert!(is_relevant(&event("/keys/..data"), &sources));
        assert!(is_relevant(&event("/keys/sa.pub"), &sources));
        let dir_sources = vec![PathBuf::from("/keys")];
        assert!(is_relevant(&event("/keys/new.pem"), &dir_sources));
        assert!(is_relevant(&event("/keys"), &dir_sources));
    }
}
