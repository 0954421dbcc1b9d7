//! The live serving certificate: one [`CertifiedPair`] that new handshakes use, replaced whole by a
//! reload or ACME (open connections keep the one they started with), the tls-alpn-01 challenge
//! certificates, and the state `/statusz` reports.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::CertifiedPair;

/// The ALPN protocol of ACME's tls-alpn-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The serving certificate, shared by the acceptor (reads) and its writers (file reloads, ACME).
#[derive(Clone, Default)]
pub struct Certificates {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    current: RwLock<Option<Arc<CertifiedPair>>>,
    challenges: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    status: Mutex<Status>,
}

#[derive(Default)]
struct Status {
    loaded_at: Option<SystemTime>,
    successes: u64,
    failures: u64,
    last_error: Option<(String, SystemTime)>,
}

impl Certificates {
    /// Makes `pair` the certificate of every new handshake; clears the last error.
    pub fn install(&self, pair: CertifiedPair) {
        *self.inner.current.write().expect("not poisoned") = Some(Arc::new(pair));
        let mut status = self.inner.status.lock().expect("not poisoned");
        status.loaded_at = Some(SystemTime::now());
        status.successes += 1;
        status.last_error = None;
    }

    /// The certificate new handshakes use.
    pub fn current(&self) -> Option<Arc<CertifiedPair>> {
        self.inner.current.read().expect("not poisoned").clone()
    }

    /// Records a reload that found the served pair again: the files are fine now.
    /// Counted as a successful load, as an unchanged key set counts as a successful reload.
    pub fn record_unchanged(&self) {
        let mut status = self.inner.status.lock().expect("not poisoned");
        status.successes += 1;
        status.last_error = None;
    }

    /// Records a refused reload; the current certificate stays.
    pub fn record_failure(&self, error: String) {
        let mut status = self.inner.status.lock().expect("not poisoned");
        status.failures += 1;
        status.last_error = Some((error, SystemTime::now()));
    }

    /// Sets (or clears, with `None`) the tls-alpn-01 challenge certificate for `domain`.
    pub fn set_challenge(&self, domain: &str, key: Option<Arc<CertifiedKey>>) {
        let mut challenges = self.inner.challenges.write().expect("not poisoned");
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        match key {
            Some(key) => challenges.insert(domain, key),
            None => challenges.remove(&domain),
        };
    }

    /// `/statusz` view: the certificate served, reload counts, the last refused reload.
    pub fn to_json(&self) -> serde_json::Value {
        let status = self.inner.status.lock().expect("not poisoned");
        let certificate = self.current().map(|pair| pair.to_json());
        serde_json::json!({
            "certificate": certificate,
            "loaded_at": status.loaded_at.map(httpdate::fmt_http_date),
            "successful_loads": status.successes,
            "failed_loads": status.failures,
            "last_error": status.last_error.as_ref().map(|(error, at)| serde_json::json!({
                "error": error,
                "at": httpdate::fmt_http_date(*at),
            })),
        })
    }
}

impl Certificates {
    /// Until `shutdown`, warns once a day while the served certificate expires within 14 days
    /// (a reload or renewal that never comes would otherwise be noticed only by clients).
    pub async fn warn_before_expiry(self, mut shutdown: crate::shutdown::Signal) {
        let mut daily = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
        loop {
            tokio::select! {
                () = shutdown.requested() => return,
                _ = daily.tick() => {}
            }
            if let Some(pair) = self.current() {
                super::files::warn_if_expiring(&pair);
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let challenge = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if challenge {
            // Only ever the challenge certificate: a validation must not see the real one.
            let domain = hello.server_name()?.to_ascii_lowercase();
            return self
                .inner
                .challenges
                .read()
                .expect("not poisoned")
                .get(&domain)
                .cloned();
        }
        // Any server name (or none) gets the configured certificate, as one-site servers do.
        self.inner
            .current
            .read()
            .expect("not poisoned")
            .as_ref()
            .map(|pair| Arc::clone(pair.certified_key()))
    }
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("current", &self.current().map(|p| p.describe()))
            .finish_non_exhaustive()
    }
}
