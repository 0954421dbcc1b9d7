//! The published state: an immutable [`Snapshot`] per key set, written by the [`Store`] and read
//! through [`Reader`]s (the HTTP server today; a mirror or an STS verifier tomorrow). Nothing
//! here knows how a reader encodes the documents.
//!
//! A reload builds a whole snapshot off to the side, then swaps it in with one `watch` send, so a
//! reader sees either the old snapshot or the new one, never a mix.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::watch;

use crate::document::{Document, Documents};
use crate::issuer::Publication;
use crate::keys::KeySet;

/// Everything served for one key set. Never mutated after it is built.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every publish, starting at 1.
    pub generation: u64,
    /// The keys.
    pub keys: KeySet,
    /// The discovery document.
    pub discovery: Document,
    /// The JWKS.
    pub jwks: Document,
    /// When this snapshot was published.
    pub published_at: SystemTime,
}

impl Snapshot {
    /// Renders a snapshot for `keys`.
    pub fn build(publication: &Publication, keys: KeySet, generation: u64) -> Self {
        let Documents { discovery, jwks } = Documents::render(publication, &keys);
        Self {
            generation,
            discovery,
            jwks,
            keys,
            published_at: SystemTime::now(),
        }
    }
}

/// How reloads have been going, for `/statusz` and `/readyz`.
#[derive(Clone, Debug, Default)]
pub struct ReloadHealth {
    /// The last reload error, if the last reload failed.
    pub last_error: Option<String>,
    /// When reloads started failing (the first failure after a success).
    pub failing_since: Option<SystemTime>,
    /// When a reload last succeeded (published or found nothing changed).
    pub last_success: Option<SystemTime>,
    /// Successful loads so far, the first one included (published or found nothing changed).
    pub successes: u64,
}

/// The result of [`Store::publish`].
#[derive(Debug, PartialEq, Eq)]
pub enum Publish {
    /// A new snapshot went out.
    Published {
        /// Its generation.
        generation: u64,
        /// Kids that appeared.
        added: Vec<String>,
        /// Kids that disappeared.
        removed: Vec<String>,
    },
    /// The key set is the one already served; nothing was sent.
    Unchanged {
        /// The generation still served.
        generation: u64,
    },
}

/// The write side. Only the loader (start-up and the watcher) holds it.
#[derive(Debug)]
pub struct Store {
    publication: Publication,
    sender: watch::Sender<Arc<Snapshot>>,
    health: Arc<Mutex<ReloadHealth>>,
}

impl Store {
    /// Creates a store that serves `keys` as generation 1.
    pub fn new(publication: Publication, keys: KeySet) -> Self {
        let first = Snapshot::build(&publication, keys, 1);
        let (sender, _) = watch::channel(Arc::new(first));
        let health = ReloadHealth {
            last_success: Some(SystemTime::now()),
            successes: 1,
            ..ReloadHealth::default()
        };
        Self {
            publication,
            sender,
            health: Arc::new(Mutex::new(health)),
        }
    }

    /// The snapshot being served.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.sender.borrow())
    }

    /// A new read handle.
    pub fn reader(&self) -> Reader {
        Reader {
            receiver: self.sender.subscribe(),
            health: Arc::clone(&self.health),
        }
    }

    /// Publishes `keys` as the next generation, unless they are what is already served.
    pub fn publish(&self, keys: KeySet) -> Publish {
        self.record_success();
        let current = self.current();
        if current.keys == keys {
            return Publish::Unchanged {
                generation: current.generation,
            };
        }
        let old: Vec<&str> = current.keys.kids().collect();
        let new: Vec<&str> = keys.kids().collect();
        let added = new
            .iter()
            .filter(|k| !old.contains(k))
            .map(|k| (*k).to_owned())
            .collect();
        let removed = old
            .iter()
            .filter(|k| !new.contains(k))
            .map(|k| (*k).to_owned())
            .collect();
        let generation = current.generation + 1;
        let next = Snapshot::build(&self.publication, keys, generation);
        self.sender.send_replace(Arc::new(next));
        Publish::Published {
            generation,
            added,
            removed,
        }
    }

    /// Records a failed reload; what is served does not change.
    pub fn record_failure(&self, error: String) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if health.last_error.is_none() {
            health.failing_since = Some(SystemTime::now());
        }
        health.last_error = Some(error);
    }

    fn record_success(&self) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.last_error = None;
        health.failing_since = None;
        health.last_success = Some(SystemTime::now());
        health.successes += 1;
    }
}

/// A read handle: cheap to clone, always holds a complete snapshot.
#[derive(Clone, Debug)]
pub struct Reader {
    receiver: watch::Receiver<Arc<Snapshot>>,
    health: Arc<Mutex<ReloadHealth>>,
}

impl Reader {
    /// The snapshot to answer a request with; it stays valid however long the request takes.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.receiver.borrow())
    }

    /// The newest snapshot if one was published since this handle last looked (through
    /// [`Reader::newer`] or [`Reader::changed`]); an atomic load otherwise. For long-lived tasks
    /// (a connection) that want to touch shared state only when something changed.
    pub fn newer(&mut self) -> Option<Arc<Snapshot>> {
        if self.receiver.has_changed().unwrap_or(false) {
            Some(Arc::clone(&self.receiver.borrow_and_update()))
        } else {
            None
        }
    }

    /// Waits until a newer snapshot is published and returns it; `None` once the store is gone.
    pub async fn changed(&mut self) -> Option<Arc<Snapshot>> {
        self.receiver.changed().await.ok()?;
        Some(Arc::clone(&self.receiver.borrow_and_update()))
    }

    /// How reloads have been going.
    pub fn health(&self) -> ReloadHealth {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::{DiscoveryProfile, Issuer};
    use crate::keys::PublicKey;

    const EC256: &str = include_str!("../tests/fixtures/keys/ec256.pub.pem");
    const EC384: &str = include_str!("../tests/fixtures/keys/ec384.pub.pem");

    fn keys(pems: &[&str]) -> KeySet {
        let keys = pems
            .iter()
            .flat_map(|p| PublicKey::from_pem(p.as_bytes()).unwrap())
            .collect();
        KeySet::from_public_keys(keys).unwrap()
    }

    fn store() -> Store {
        let publication = Publication {
            issuer: Issuer::new("https://h.example", None, false).unwrap(),
            profile: DiscoveryProfile::Kubernetes,
            max_age_secs: 3600,
        };
        Store::new(publication, keys(&[EC256]))
    }

    #[test]
    fn a_held_snapshot_outlives_a_publish_unchanged() {
        let store = store();
        let reader = store.reader();
        let in_flight = reader.snapshot();
        let body = in_flight.jwks.body.clone();
        let published = store.publish(keys(&[EC256, EC384]));
        assert!(matches!(
            published,
            Publish::Published { generation: 2, .. }
        ));
        assert_eq!(in_flight.generation, 1);
        assert_eq!(in_flight.jwks.body, body);
        assert_eq!(reader.snapshot().generation, 2);
    }

    #[test]
    fn etags_change_exactly_when_bytes_change() {
        let store = store();
        let reader = store.reader();
        let first = reader.snapshot();
        assert_eq!(
            store.publish(keys(&[EC256])),
            Publish::Unchanged { generation: 1 }
        );
        assert_eq!(
            store.publish(keys(&[EC384])),
            Publish::Published {
                generation: 2,
                added: vec![keys(&[EC384]).keys()[0].kid().to_owned()],
                removed: vec![keys(&[EC256]).keys()[0].kid().to_owned()],
            }
        );
        let second = reader.snapshot();
        assert_ne!(first.jwks.body, second.jwks.body);
        assert_ne!(first.jwks.etag, second.jwks.etag);
        // ES256 -> ES384 changes the discovery document too.
        assert_ne!(first.discovery.body, second.discovery.body);
        store.publish(keys(&[EC256]));
        let third = reader.snapshot();
        assert_eq!(third.jwks.body, first.jwks.body);
        assert_eq!(third.jwks.etag, first.jwks.etag);
    }

    #[tokio::test]
    async fn readers_wake_on_publish() {
        let store = store();
        let mut reader = store.reader();
        let waiting = tokio::spawn(async move { reader.changed().await.map(|s| s.generation) });
        tokio::task::yield_now().await;
        store.publish(keys(&[EC384]));
        assert_eq!(waiting.await.unwrap(), Some(2));
    }

    #[test]
    fn newer_reports_each_publish_once() {
        let store = store();
        let mut reader = store.reader();
        assert!(reader.newer().is_none());
        store.publish(keys(&[EC384]));
        assert_eq!(reader.newer().map(|s| s.generation), Some(2));
        assert!(reader.newer().is_none());
        store.publish(keys(&[EC256]));
        assert_eq!(reader.newer().map(|s| s.generation), Some(3));
    }

    #[test]
    fn failures_are_recorded_and_cleared() {
        let store = store();
        let reader = store.reader();
        store.record_failure("key file x: bad".into());
        let health = reader.health();
        assert_eq!(health.last_error.as_deref(), Some("key file x: bad"));
        let since = health.failing_since.unwrap();
        store.record_failure("key file x: still bad".into());
        assert_eq!(reader.health().failing_since, Some(since));
        store.publish(keys(&[EC256]));
        assert!(reader.health().last_error.is_none());
    }
}
