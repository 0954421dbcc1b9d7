//! Mirror state shared with `/statusz` and `/readyz`: in sync or behind since when, last error.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Whether relying parties can read the documents anonymously.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicAccess {
    /// Both documents came back byte-equal.
    Readable,
    /// Why they did not.
    Failed(String),
}

/// A copy of the mirror state at one moment.
#[derive(Clone, Debug, Default)]
pub struct MirrorState {
    /// `s3://bucket/prefix`.
    pub target: String,
    /// The newest generation the bucket is known to hold.
    pub synced_generation: Option<u64>,
    /// The newest generation published (the one being mirrored).
    pub wanted_generation: u64,
    /// Since when the bucket has been behind what is served.
    pub behind_since: Option<SystemTime>,
    /// The last sync error, cleared by a successful sync.
    pub last_error: Option<String>,
    /// When a sync last succeeded.
    pub last_sync: Option<SystemTime>,
    /// Objects written since start.
    pub writes: u64,
    /// The last anonymous read check.
    pub public_access: Option<PublicAccess>,
}

impl MirrorState {
    /// The bucket holds the generation being served.
    pub fn in_sync(&self) -> bool {
        self.synced_generation == Some(self.wanted_generation)
    }

    /// Why relying parties cannot use the bucket now, if they cannot: it is behind what is
    /// served, or its documents fail the anonymous read check (`--mirror-required` holds
    /// `/readyz` on it).
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.in_sync() {
            return Some("not ready: mirror behind\n");
        }
        match self.public_access {
            Some(PublicAccess::Failed(_)) => {
                Some("not ready: the mirrored documents cannot be read anonymously\n")
            }
            _ => None,
        }
    }

    /// The `/statusz` object.
    pub fn to_json(&self) -> serde_json::Value {
        let unix = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        serde_json::json!({
            "target": self.target,
            "state": if self.in_sync() { "in_sync" } else { "behind" },
            "synced_generation": self.synced_generation,
            "behind_since": unix(self.behind_since),
            "last_error": self.last_error,
            "last_sync": unix(self.last_sync),
            "writes": self.writes,
            "public_access": match &self.public_access {
                None => serde_json::Value::Null,
                Some(PublicAccess::Readable) => "readable".into(),
                Some(PublicAccess::Failed(reason)) => reason.clone().into(),
            },
        })
    }
}

/// The shared handle: the mirror writes it, the HTTP service reads it.
#[derive(Clone, Debug, Default)]
pub struct MirrorStatus {
    state: Arc<Mutex<MirrorState>>,
}

impl MirrorStatus {
    /// A status for `target`, behind from now.
    pub fn new(target: String) -> Self {
        let state = MirrorState {
            target,
            behind_since: Some(SystemTime::now()),
            ..MirrorState::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// A copy of the current state.
    pub fn get(&self) -> MirrorState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MirrorState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn pending(&self, generation: u64) {
        let mut state = self.lock();
        state.wanted_generation = generation;
        if state.synced_generation != Some(generation) && state.behind_since.is_none() {
            state.behind_since = Some(SystemTime::now());
        }
    }

    pub(super) fn synced(&self, generation: u64, writes: usize) {
        let mut state = self.lock();
        state.synced_generation = Some(generation);
        state.behind_since = None;
        state.last_error = None;
        state.last_sync = Some(SystemTime::now());
        state.writes += writes as u64;
    }

    pub(super) fn failed(&self, error: String) {
        self.lock().last_error = Some(error);
    }

    pub(super) fn public_access(&self, access: PublicAccess) {
        self.lock().public_access = Some(access);
    }
}
