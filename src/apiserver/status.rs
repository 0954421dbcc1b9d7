//! How the API server source is going, for the `kube` section of `/statusz` and for `/readyz`
//! (not ready once the last good answer is older than `--kube-max-stale`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

/// Shared between the poller (writes) and the service (reads).
#[derive(Clone, Debug)]
pub struct ApiServerStatus {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    url: String,
    origin: String,
    issuer: String,
    max_stale: Duration,
    last_success: SystemTime,
    kids: Vec<String>,
    polls: u64,
    failures: u64,
    not_modified: u64,
    /// The last poll's error and its kind, while polls fail.
    last_error: Option<(&'static str, String)>,
    failing_since: Option<SystemTime>,
}

/// The `/readyz` body while stale.
const STALE: &str = "not ready: the API server's keys have not been confirmed for longer than \
                     --kube-max-stale\n";

impl ApiServerStatus {
    /// The status after the first good answer.
    pub fn new(
        url: String,
        origin: String,
        issuer: String,
        kids: Vec<String>,
        max_stale: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                url,
                origin,
                issuer,
                max_stale,
                last_success: SystemTime::now(),
                kids,
                polls: 1,
                failures: 0,
                not_modified: 0,
                last_error: None,
                failing_since: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A poll that confirmed (or replaced) the keys.
    pub(super) fn succeeded(&self, kids: Vec<String>, not_modified: bool) {
        let mut state = self.lock();
        state.polls += 1;
        state.not_modified += u64::from(not_modified);
        state.last_success = SystemTime::now();
        state.kids = kids;
        state.last_error = None;
        state.failing_since = None;
    }

    /// A poll that failed; the last good keys stay published.
    pub(super) fn failed(&self, kind: &'static str, error: String) {
        let mut state = self.lock();
        state.polls += 1;
        state.failures += 1;
        if state.last_error.is_none() {
            state.failing_since = Some(SystemTime::now());
        }
        state.last_error = Some((kind, error));
    }

    /// The last error and its kind, while polls fail.
    pub fn last_error(&self) -> Option<(&'static str, String)> {
        self.lock().last_error.clone()
    }

    /// Whether the keys served are older than `--kube-max-stale`.
    pub fn stale(&self) -> bool {
        let state = self.lock();
        state.last_success.elapsed().unwrap_or_default() > state.max_stale
    }

    /// The `/readyz` answer while stale.
    pub fn not_ready(&self) -> Option<&'static str> {
        self.stale().then_some(STALE)
    }

    /// The `kube` object of `/statusz`.
    pub fn to_json(&self) -> serde_json::Value {
        let unix = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let state = self.lock();
        let age = state.last_success.elapsed().unwrap_or_default();
        json!({
            "url": state.url,
            "origin": state.origin,
            "issuer": state.issuer,
            "kids": state.kids,
            "last_success": unix(state.last_success),
            "age_secs": age.as_secs(),
            "max_stale_secs": state.max_stale.as_secs(),
            "stale": age > state.max_stale,
            "polls": state.polls,
            "failed_polls": state.failures,
            "not_modified": state.not_modified,
            "error": state.last_error.as_ref().map(|(kind, _)| *kind),
            "last_error": state.last_error.as_ref().map(|(_, message)| message),
            "failing_since": state.failing_since.map(unix),
        })
    }
}
