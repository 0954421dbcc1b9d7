//! The published state: an immutable [`Snapshot`] per key set, written by the [`Store`] and read
//! through [`Reader`]s (the HTTP server today; a mirror or an STS verifier tomorrow). Nothing
//! here knows how a reader encodes the documents.
//!
//! A reload builds a whole snapshot off to the side, then swaps it in with one `watch` send, so a
//! reader sees either the old snapshot or the new one, never a mix.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::document::{Document, Documents};
use crate::issuer::Publication;
use crate::keys::{KeyError, KeySet};

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
    /// For each kid, in key set order: when it was first published. Carried across
    /// generations while the kid stays; a kid that disappears and returns starts again.
    pub first_published: Vec<(String, SystemTime)>,
}

impl Snapshot {
    /// Renders a snapshot for `keys`.
    pub fn build(publication: &Publication, keys: KeySet, generation: u64) -> Self {
        let Documents { discovery, jwks } = Documents::render(publication, &keys);
        let published_at = SystemTime::now();
        let first_published = keys
            .kids()
            .map(|kid| (kid.to_owned(), published_at))
            .collect();
        Self {
            generation,
            discovery,
            jwks,
            keys,
            published_at,
            first_published,
        }
    }

    /// The snapshot after this one, for `keys`: the next generation, each kid that stays
    /// keeping when it was first published.
    pub fn next(&self, publication: &Publication, keys: KeySet) -> Self {
        let mut next = Self::build(publication, keys, self.generation + 1);
        for (kid, at) in &mut next.first_published {
            if let Some(first) = self.first_published(kid) {
                *at = first;
            }
        }
        next
    }

    /// When `kid` was first published, if it is served.
    pub fn first_published(&self, kid: &str) -> Option<SystemTime> {
        self.first_published
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, at)| *at)
    }
}

/// Where a part of the key set comes from. With more than one part, what is served is their
/// union, and each source replaces only its own part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// Key files and directories (`--key-file`, `--dev`'s key).
    Files,
    /// A Kubernetes API server's JWKS (`--from-kube-apiserver`).
    ApiServer,
}

impl Origin {
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Files => "the key files",
            Self::ApiServer => "the API server's JWKS",
        }
    }
}

/// Why a reload failed, as a small fixed set (the `cause` of the reload failure metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// A key source could not be read.
    Read = 0,
    /// A key file (or the API server's JWKS) was read and refused.
    Rejected = 1,
    /// Two different keys carry the same kid.
    KidConflict = 2,
    /// No source held a key.
    NoKeys = 3,
    /// The reload itself failed (its task panicked).
    Internal = 4,
    /// The API server gave no usable answer (connection, TLS, timeout, HTTP status).
    ApiServer = 5,
    /// The API server's issuer is not the one published.
    IssuerMismatch = 6,
}

impl FailureCause {
    /// Every cause, in index order.
    pub const ALL: [Self; 7] = [
        Self::Read,
        Self::Rejected,
        Self::KidConflict,
        Self::NoKeys,
        Self::Internal,
        Self::ApiServer,
        Self::IssuerMismatch,
    ];

    /// The cause of a failed key load.
    pub fn of(error: &KeyError) -> Self {
        match error {
            KeyError::Read { .. } => Self::Read,
            KeyError::Rejected { .. } => Self::Rejected,
            KeyError::KidConflict { .. } => Self::KidConflict,
            KeyError::NoKeys { .. } => Self::NoKeys,
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Rejected => "rejected",
            Self::KidConflict => "kid_conflict",
            Self::NoKeys => "no_keys",
            Self::Internal => "internal",
            Self::ApiServer => "apiserver",
            Self::IssuerMismatch => "issuer_mismatch",
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
    /// Failed reloads so far, indexed by [`FailureCause`].
    pub failures: [u64; FailureCause::ALL.len()],
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
        /// Kids that disappeared before they were published for the documents' max-age:
        /// relying parties may still hold them, and tokens they signed may fail to verify.
        removed_early: Vec<EarlyRemoval>,
    },
    /// The key set is the one already served; nothing was sent.
    Unchanged {
        /// The generation still served.
        generation: u64,
        /// Reloads had failed since this long: this one recovered (to the set served all along).
        recovered_after: Option<Duration>,
    },
}

impl Publish {
    /// Logs what a publish by `cause` did (a new generation and its kids, a recovery, or
    /// nothing new); warns about keys withdrawn before they were published for max-age.
    pub fn log(self, store: &Store, cause: &str) {
        match self {
            Self::Published {
                generation,
                added,
                removed,
                removed_early,
            } => {
                for early in removed_early {
                    warn!(
                        kid = early.kid,
                        published_secs = early.published_for.as_secs(),
                        max_age_secs = early.max_age.as_secs(),
                        "key withdrawn before it was published for max-age; relying parties may still hold it"
                    );
                }
                let current = store.current();
                let kids: Vec<&str> = current.keys.kids().collect();
                info!(
                    cause,
                    generation,
                    added = crate::log::list(&added),
                    removed = crate::log::list(&removed),
                    kids = crate::log::list(&kids),
                    "published key set"
                );
            }
            Self::Unchanged {
                generation,
                recovered_after: Some(failing_for),
            } => {
                info!(
                    cause,
                    generation,
                    failing_secs = failing_for.as_secs(),
                    "key reload recovered; the key set is the one served all along"
                );
            }
            Self::Unchanged {
                generation,
                recovered_after: None,
            } => {
                debug!(cause, generation, "key set unchanged");
            }
        }
    }
}

/// A kid withdrawn before it was published for a whole max-age.
#[derive(Debug, PartialEq, Eq)]
pub struct EarlyRemoval {
    /// The kid.
    pub kid: String,
    /// How long it was published.
    pub published_for: Duration,
    /// The documents' max-age.
    pub max_age: Duration,
}

/// The write side. Only the loaders (start-up, the watcher, the API server poller) hold it.
#[derive(Debug)]
pub struct Store {
    publication: Publication,
    sender: watch::Sender<Arc<Snapshot>>,
    health: Arc<Mutex<ReloadHealth>>,
    /// Each source's last good set; the snapshot serves their union. Held across a publish, so
    /// two sources publishing at once are serialized.
    parts: Mutex<BTreeMap<Origin, KeySet>>,
}

impl Store {
    /// Creates a store that serves `keys` (the key files' set) as generation 1.
    pub fn new(publication: Publication, keys: KeySet) -> Self {
        Self::with_parts(publication, [(Origin::Files, keys)])
            .expect("a single part has no conflict")
    }

    /// Creates a store that serves the union of `parts` as generation 1; one kid on two
    /// different keys is refused.
    pub fn with_parts(
        publication: Publication,
        parts: impl IntoIterator<Item = (Origin, KeySet)>,
    ) -> Result<Self, KeyError> {
        let parts: BTreeMap<Origin, KeySet> = parts.into_iter().collect();
        let first = Snapshot::build(&publication, union(&parts)?, 1);
        let (sender, _) = watch::channel(Arc::new(first));
        let health = ReloadHealth {
            last_success: Some(SystemTime::now()),
            successes: 1,
            ..ReloadHealth::default()
        };
        Ok(Self {
            publication,
            sender,
            health: Arc::new(Mutex::new(health)),
            parts: Mutex::new(parts),
        })
    }

    /// What is published: the issuer, the document shape and cache lifetime.
    pub fn publication(&self) -> &Publication {
        &self.publication
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

    /// Publishes `keys` as the whole key set (every other source's part dropped) as the next
    /// generation, unless they are what is already served.
    pub fn publish(&self, keys: KeySet) -> Publish {
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        *parts = BTreeMap::from([(Origin::Files, keys.clone())]);
        self.publish_set(keys)
    }

    /// Replaces `origin`'s part with `keys` and publishes the union of the parts, unless it is
    /// what is already served. A kid that another source carries on a different key is refused:
    /// nothing changes, and the caller records the failure.
    pub fn publish_part(&self, origin: Origin, keys: KeySet) -> Result<Publish, KeyError> {
        let mut parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = parts.clone();
        next.insert(origin, keys);
        let set = union(&next)?;
        *parts = next;
        Ok(self.publish_set(set))
    }

    fn publish_set(&self, keys: KeySet) -> Publish {
        let failing_since = self.record_success();
        let current = self.current();
        if current.keys == keys {
            return Publish::Unchanged {
                generation: current.generation,
                recovered_after: failing_since.map(|since| since.elapsed().unwrap_or_default()),
            };
        }
        let old: Vec<&str> = current.keys.kids().collect();
        let new: Vec<&str> = keys.kids().collect();
        let added = new
            .iter()
            .filter(|k| !old.contains(k))
            .map(|k| (*k).to_owned())
            .collect();
        let removed: Vec<String> = old
            .iter()
            .filter(|k| !new.contains(k))
            .map(|k| (*k).to_owned())
            .collect();
        let next = current.next(&self.publication, keys);
        let generation = next.generation;
        let max_age = Duration::from_secs(self.publication.max_age_secs.into());
        let removed_early = removed
            .iter()
            .filter_map(|kid| {
                let first = current.first_published(kid)?;
                let published_for = next.published_at.duration_since(first).unwrap_or_default();
                (published_for < max_age).then(|| EarlyRemoval {
                    kid: kid.clone(),
                    published_for,
                    max_age,
                })
            })
            .collect();
        self.sender.send_replace(Arc::new(next));
        Publish::Published {
            generation,
            added,
            removed,
            removed_early,
        }
    }

    /// Records a failed reload; what is served does not change.
    pub fn record_failure(&self, cause: FailureCause, error: String) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if health.last_error.is_none() {
            health.failing_since = Some(SystemTime::now());
        }
        health.last_error = Some(error);
        health.failures[cause as usize] += 1;
    }

    /// Records a successful reload; returns since when reloads had been failing, if they had.
    fn record_success(&self) -> Option<SystemTime> {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.last_error = None;
        health.last_success = Some(SystemTime::now());
        health.successes += 1;
        health.failing_since.take()
    }
}

/// The union of the parts, each named after its source.
fn union(parts: &BTreeMap<Origin, KeySet>) -> Result<KeySet, KeyError> {
    match parts.len() {
        1 => Ok(parts.values().next().cloned().expect("one part")),
        _ => KeySet::union(parts.iter().map(|(origin, set)| (origin.describe(), set))),
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
    const RSA2048: &str = include_str!("../tests/fixtures/keys/rsa2048.pub.pem");

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
            Publish::Unchanged {
                generation: 1,
                recovered_after: None
            }
        );
        assert_eq!(
            store.publish(keys(&[EC384])),
            Publish::Published {
                generation: 2,
                added: vec![keys(&[EC384]).keys()[0].kid().to_owned()],
                removed: vec![keys(&[EC256]).keys()[0].kid().to_owned()],
                removed_early: vec![EarlyRemoval {
                    kid: keys(&[EC256]).keys()[0].kid().to_owned(),
                    published_for: store
                        .current()
                        .published_at
                        .duration_since(first.published_at)
                        .unwrap(),
                    max_age: Duration::from_secs(3600),
                }],
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

    #[test]
    fn first_published_is_carried_until_a_kid_leaves() {
        let store = store();
        let ec256 = keys(&[EC256]).keys()[0].kid().to_owned();
        let ec384 = keys(&[EC384]).keys()[0].kid().to_owned();
        let first = store.current().first_published(&ec256).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        store.publish(keys(&[EC256, EC384]));
        let second = store.current();
        assert_eq!(second.first_published(&ec256), Some(first));
        assert_eq!(second.first_published(&ec384), Some(second.published_at));
        store.publish(keys(&[EC384]));
        assert_eq!(store.current().first_published(&ec256), None);
        std::thread::sleep(Duration::from_millis(5));
        store.publish(keys(&[EC256, EC384]));
        let returned = store.current();
        assert_eq!(
            returned.first_published(&ec256),
            Some(returned.published_at)
        );
        assert!(returned.published_at > first);
        assert_eq!(
            returned.first_published(&ec384),
            second.first_published(&ec384)
        );
    }

    #[test]
    fn a_key_published_for_max_age_leaves_quietly() {
        let publication = Publication {
            issuer: Issuer::new("https://h.example", None, false).unwrap(),
            profile: DiscoveryProfile::Kubernetes,
            max_age_secs: 0,
        };
        let store = Store::new(publication, keys(&[EC256]));
        let Publish::Published {
            removed,
            removed_early,
            ..
        } = store.publish(keys(&[EC384]))
        else {
            panic!("not published");
        };
        assert_eq!(removed.len(), 1);
        assert!(removed_early.is_empty());
    }

    #[test]
    fn each_source_replaces_only_its_part_of_the_union() {
        let store = Store::with_parts(
            store().publication().clone(),
            [
                (Origin::Files, keys(&[EC256])),
                (Origin::ApiServer, keys(&[EC384])),
            ],
        )
        .unwrap();
        assert_eq!(store.current().keys, keys(&[EC256, EC384]));
        // The API server rotates: the files' key stays.
        let published = store
            .publish_part(Origin::ApiServer, keys(&[EC384, RSA2048]))
            .unwrap();
        assert!(matches!(
            published,
            Publish::Published { generation: 2, .. }
        ));
        assert_eq!(store.current().keys, keys(&[EC256, EC384, RSA2048]));
        // The files change: the API server's keys stay.
        store.publish_part(Origin::Files, keys(&[RSA2048])).unwrap();
        assert_eq!(store.current().keys, keys(&[EC384, RSA2048]));
        // The same key from both sources is published once; the same answer again is unchanged.
        assert!(matches!(
            store.publish_part(Origin::ApiServer, keys(&[EC384, RSA2048])),
            Ok(Publish::Unchanged { generation: 3, .. })
        ));
    }

    #[test]
    fn a_kid_on_two_different_keys_across_sources_is_refused() {
        let ec256 = keys(&[EC256]).keys()[0].clone();
        // The P-384 key, carrying the P-256 key's kid (a JWKS gives kids as it likes).
        let jwks = Documents::render(store().publication(), &keys(&[EC384]))
            .jwks
            .body;
        let jwks = String::from_utf8(jwks.to_vec())
            .unwrap()
            .replace(keys(&[EC384]).keys()[0].kid(), ec256.kid());
        let impostor =
            KeySet::from_public_keys(PublicKey::from_jwks(jwks.as_bytes()).unwrap()).unwrap();
        let store = store();
        let error = store.publish_part(Origin::ApiServer, impostor).unwrap_err();
        assert!(
            matches!(&error, KeyError::KidConflict { kid, .. } if kid == ec256.kid()),
            "{error}"
        );
        assert!(
            error.to_string().contains("the API server's JWKS"),
            "{error}"
        );
        // Nothing changed, and the files' part was kept.
        assert_eq!(store.current().generation, 1);
        store
            .publish_part(Origin::ApiServer, keys(&[EC384]))
            .unwrap();
        assert_eq!(store.current().keys, keys(&[EC256, EC384]));
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
        store.record_failure(FailureCause::Rejected, "key file x: bad".into());
        let health = reader.health();
        assert_eq!(health.last_error.as_deref(), Some("key file x: bad"));
        let since = health.failing_since.unwrap();
        store.record_failure(FailureCause::NoKeys, "key file x: still bad".into());
        assert_eq!(reader.health().failing_since, Some(since));
        assert_eq!(reader.health().failures, [0, 1, 0, 1, 0, 0, 0]);
        // Recovering to the set served all along says so (the watcher logs it), once.
        assert!(matches!(
            store.publish(keys(&[EC256])),
            Publish::Unchanged {
                generation: 1,
                recovered_after: Some(_)
            }
        ));
        assert!(reader.health().last_error.is_none());
        assert!(reader.health().failing_since.is_none());
        assert_eq!(
            store.publish(keys(&[EC256])),
            Publish::Unchanged {
                generation: 1,
                recovered_after: None
            }
        );
    }
}
