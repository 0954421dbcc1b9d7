//! The bucket mirror: one more [`Reader`] of the store that keeps the two documents in an object
//! store byte-equal to what is served, JWKS first, and reports how far behind it is.
//!
//! Serving never waits for the mirror: the mirror task only reads snapshots. Each attempt syncs
//! the newest snapshot, so rapid rotations coalesce and an older snapshot is never written after a
//! newer one. A sync compares what the bucket holds (bytes, `Content-Type`, `Cache-Control`) with
//! the snapshot, writes only what differs, and reads every write back; restarts and replicas that
//! agree with the bucket write nothing.

mod public;
pub mod s3;
mod status;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::{info, warn};

use crate::bucket::{Layout, MirrorAcl, MirrorConfig};
use crate::document::Document;
use crate::issuer::Issuer;
use crate::log;
use crate::retry::backoff;
use crate::shutdown::Signal;
use crate::store::{Reader, Snapshot};

pub use public::PublicCheck;
pub use s3::S3Sink;
pub use status::{MirrorState, MirrorStatus, PublicAccess};

/// One object as it must be stored: the served bytes and headers.
#[derive(Clone, PartialEq, Eq)]
pub struct Object {
    /// Body bytes.
    pub body: Bytes,
    /// `Content-Type`.
    pub content_type: String,
    /// `Cache-Control`.
    pub cache_control: String,
}

impl Object {
    /// The object for a served document.
    pub fn from_document(document: &Document) -> Self {
        Self {
            body: document.body.clone(),
            content_type: document.content_type.to_owned(),
            cache_control: document.cache_control.clone(),
        }
    }

    /// What differs from `other`, for logs ("body", "content-type", "cache-control").
    fn differences(&self, other: &Self) -> String {
        let mut what = Vec::new();
        if self.body != other.body {
            what.push("body");
        }
        if self.content_type != other.content_type {
            what.push("content-type");
        }
        if self.cache_control != other.cache_control {
            what.push("cache-control");
        }
        what.join(", ")
    }
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("len", &self.body.len())
            .field("content_type", &self.content_type)
            .field("cache_control", &self.cache_control)
            .finish()
    }
}

/// Where documents go: a bucket seen through its keys. S3 in production; tests may add others.
pub trait ObjectSink: Send + Sync + 'static {
    /// The object at `key`, or `None` when there is none.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Object>, MirrorError>> + Send;
    /// Writes `object` at `key`.
    fn put(
        &self,
        key: &str,
        object: &Object,
    ) -> impl Future<Output = Result<(), MirrorError>> + Send;
    /// Sets the `public-read` canned ACL on `key`.
    fn set_public_read(&self, key: &str) -> impl Future<Output = Result<(), MirrorError>> + Send;
}

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Keys written (in order).
    pub written: Vec<String>,
    /// Keys that already held the right bytes and headers.
    pub unchanged: Vec<String>,
    /// Keys whose canned ACL was set without rewriting them (`public-read` on unchanged objects).
    pub acl_set: Vec<String>,
}

/// Brings both objects in line with `snapshot`: JWKS first (so a discovery document never points
/// at a key set the bucket does not hold yet), each one read first and written only if it differs,
/// then read back. The ACL is set on every write, and with `acl_on_unchanged` on unchanged
/// objects too (the first sync after start, and `publish`, so adding `--mirror-acl` takes effect).
pub async fn sync<S: ObjectSink>(
    sink: &S,
    layout: &Layout,
    snapshot: &Snapshot,
    acl: MirrorAcl,
    acl_on_unchanged: bool,
) -> Result<SyncOutcome, MirrorError> {
    let mut outcome = SyncOutcome::default();
    for (key, document) in [
        (&layout.jwks_key, &snapshot.jwks),
        (&layout.discovery_key, &snapshot.discovery),
    ] {
        let wanted = Object::from_document(document);
        match sink.get(key).await? {
            Some(remote) if remote == wanted => {
                if acl == MirrorAcl::PublicRead && acl_on_unchanged {
                    sink.set_public_read(key).await?;
                    outcome.acl_set.push(key.clone());
                } else {
                    outcome.unchanged.push(key.clone());
                }
                continue;
            }
            Some(remote) => info!(
                key = %key,
                differs = %remote.differences(&wanted),
                generation = snapshot.generation,
                "bucket object differs, rewriting"
            ),
            None => {
                info!(key = %key, generation = snapshot.generation, "bucket object missing, writing")
            }
        }
        sink.put(key, &wanted).await?;
        if acl == MirrorAcl::PublicRead {
            sink.set_public_read(key).await?;
        }
        match sink.get(key).await? {
            Some(back) if back == wanted => {}
            Some(back) => {
                return Err(MirrorError::ReadBack {
                    key: key.clone(),
                    what: format!("{} differ", back.differences(&wanted)),
                });
            }
            None => {
                return Err(MirrorError::ReadBack {
                    key: key.clone(),
                    what: "the object is missing".into(),
                });
            }
        }
        outcome.written.push(key.clone());
    }
    Ok(outcome)
}

/// The mirror task: follows a [`Reader`] and keeps the bucket in sync until shutdown.
#[derive(Debug)]
pub struct Mirror<S> {
    sink: Arc<S>,
    layout: Layout,
    acl: MirrorAcl,
    public: PublicCheck,
    status: MirrorStatus,
    initial_backoff: Duration,
    max_backoff: Duration,
    resync_interval: Duration,
}

impl<S: ObjectSink> Mirror<S> {
    /// A mirror writing through `sink`, reporting into `status`.
    pub fn new(
        sink: S,
        config: &MirrorConfig,
        issuer: &Issuer,
        status: MirrorStatus,
    ) -> Result<Self, MirrorError> {
        let (layout, _) = Layout::new(issuer, &config.target.prefix);
        Ok(Self {
            sink: Arc::new(sink),
            layout,
            acl: config.acl,
            public: PublicCheck::new(issuer, config.public_url.as_ref())?,
            status,
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
            resync_interval: config.resync_interval,
        })
    }

    /// Runs until `signal` fires or the store is gone.
    pub async fn run(self, mut reader: Reader, mut signal: Signal) {
        let mut failures: u32 = 0;
        loop {
            // Always the newest snapshot: whatever was published meanwhile is coalesced into it.
            let snapshot = reader.newer().unwrap_or_else(|| reader.snapshot());
            self.status.pending(snapshot.generation);
            let first = self.status.get().synced_generation.is_none();
            let sync = sync(&*self.sink, &self.layout, &snapshot, self.acl, first);
            tokio::pin!(sync);
            let result = loop {
                tokio::select! {
                    result = &mut sync => break Some(result),
                    changed = reader.changed() => match changed {
                        // Published before this sync began: not newer.
                        Some(newer) if newer.generation == snapshot.generation => {}
                        // Newer: drop this sync (its requests went out before any of the next
                        // sync's) and start over with the newest, skipping what is stale.
                        Some(newer) => {
                            info!(
                                generation = snapshot.generation,
                                newer = newer.generation,
                                "newer snapshot published, restarting the bucket sync with it"
                            );
                            break None;
                        }
                        None => return,
                    },
                    () = signal.requested() => return,
                }
            };
            let Some(result) = result else { continue };
            let wait = match result {
                Ok(outcome) => {
                    failures = 0;
                    self.synced(&snapshot, &outcome).await;
                    self.resync_interval
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let message = log::error_chain(&error);
                    warn!(
                        generation = snapshot.generation,
                        attempt = failures,
                        cause = %message,
                        "mirror sync failed; serving is unaffected, retrying"
                    );
                    self.status.failed(message);
                    backoff(self.initial_backoff, self.max_backoff, failures)
                }
            };
            if failures > 0 {
                // Retry after the backoff whatever happens; a newer snapshot is picked up then.
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = signal.requested() => return,
                }
                continue;
            }
            tokio::select! {
                changed = reader.changed() => if changed.is_none() { return },
                () = tokio::time::sleep(wait) => {}
                () = signal.requested() => return,
            }
        }
    }

    async fn synced(&self, snapshot: &Snapshot, outcome: &SyncOutcome) {
        let first = self.status.get().synced_generation.is_none();
        self.status
            .synced(snapshot.generation, outcome.written.len());
        if outcome.written.is_empty() {
            if first {
                info!(generation = snapshot.generation, "bucket already in sync");
            }
        } else {
            info!(
                generation = snapshot.generation,
                written = crate::log::list(&outcome.written),
                "bucket in sync"
            );
        }
        // Check public reads after every write, and once at start.
        if first || !outcome.written.is_empty() {
            let access = match self.public.check(snapshot).await {
                Ok(()) => PublicAccess::Readable,
                Err(error) => {
                    let message = log::error_chain(&error);
                    warn!(cause = %message, "documents in the bucket are not publicly readable");
                    PublicAccess::Failed(message)
                }
            };
            self.status.public_access(access);
        }
    }
}

/// Everything that can go wrong between issuerd and the bucket.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The object store client could not be built.
    #[error("cannot set up the object store client")]
    Client(#[source] object_store::Error),
    /// The HTTP client (ACL requests, anonymous reads) could not be built.
    #[error("cannot set up an HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// Reading an object failed.
    #[error("cannot read {key} from the bucket: {reason}")]
    Read {
        /// Object key.
        key: String,
        /// The store's answer in one line (see [`s3::summarize`]).
        reason: String,
    },
    /// Writing an object failed.
    #[error("cannot write {key} to the bucket: {reason}")]
    Write {
        /// Object key.
        key: String,
        /// The store's answer in one line (see [`s3::summarize`]).
        reason: String,
    },
    /// The bucket refused the `public-read` ACL.
    #[error("cannot set the public-read ACL on {key}: {reason}")]
    Acl {
        /// Object key.
        key: String,
        /// Why (the bucket's answer).
        reason: String,
    },
    /// The object read back is not what was written.
    #[error("read-back of {key} does not match what was written: {what}")]
    ReadBack {
        /// Object key.
        key: String,
        /// What differs.
        what: String,
    },
    /// An anonymous read of a published document failed or returned other bytes.
    #[error("anonymous GET {url}: {reason}")]
    PublicAccess {
        /// The URL relying parties use.
        url: String,
        /// Why it is not usable.
        reason: String,
    },
}

#[cfg(test)]
mod tests;
