//! ACME state shared with `/statusz`: the certificate served, last success, next renewal, last
//! error.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// A copy of the ACME state at one moment.
#[derive(Clone, Debug, Default)]
pub struct AcmeState {
    /// The domains ordered.
    pub domains: Vec<String>,
    /// The ACME directory URL.
    pub directory: String,
    /// Serial (hex) of the certificate served, if any.
    pub serial: Option<String>,
    /// Its expiry.
    pub not_after: Option<SystemTime>,
    /// `"cache"` or `"acme"`: where the certificate served came from.
    pub source: Option<&'static str>,
    /// When a certificate was last obtained.
    pub last_success: Option<SystemTime>,
    /// When the next order (renewal or retry) is due.
    pub next_attempt: Option<SystemTime>,
    /// The last error, cleared by a success.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<SystemTime>,
    /// Orders placed since start.
    pub orders: u64,
    /// Failed attempts in a row.
    pub failures: u32,
}

impl AcmeState {
    /// The `/statusz` object.
    pub fn to_json(&self) -> serde_json::Value {
        let unix = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        serde_json::json!({
            "domains": self.domains,
            "directory": self.directory,
            "serial": self.serial,
            "not_after": unix(self.not_after),
            "source": self.source,
            "last_success": unix(self.last_success),
            "next_attempt": unix(self.next_attempt),
            "last_error": self.last_error,
            "last_error_at": unix(self.last_error_at),
            "orders": self.orders,
            "failures": self.failures,
        })
    }
}

/// The shared handle: the ACME task writes it, the HTTP service reads it.
#[derive(Clone, Debug, Default)]
pub struct AcmeStatus {
    state: Arc<Mutex<AcmeState>>,
}

impl AcmeStatus {
    /// A status for `domains` on `directory`.
    pub fn new(domains: Vec<String>, directory: String) -> Self {
        let state = AcmeState {
            domains,
            directory,
            ..AcmeState::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// A copy of the current state.
    pub fn get(&self) -> AcmeState {
        self.lock().clone()
    }

    pub(super) fn update(&self, change: impl FnOnce(&mut AcmeState)) {
        change(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AcmeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
