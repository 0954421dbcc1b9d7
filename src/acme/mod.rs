//! ACME: obtains and renews the serving certificate itself (RFC 8555, tls-alpn-01 answered on
//! the serving listener), caching account and certificate so restarts reuse them.
//!
//! The task never drops a working certificate: a certificate is installed only once it is
//! issued, parsed and checked (key matches leaf), and a failed order leaves the current one in
//! place and retries with exponential backoff and jitter. Renewal starts `renew_before` ahead
//! of expiry.

mod cache;
mod certificate;
pub mod challenge;
mod order;
mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use crate::shutdown::Signal;

pub use cache::{ACCOUNT_FILE, CERTIFICATE_FILE, Cache, KEY_FILE};
pub use certificate::Issued;
pub use status::{AcmeState, AcmeStatus};

/// Let's Encrypt's production directory, the default `--acme-directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Default `--acme-renew-before`: Let's Encrypt's advice for 90-day certificates.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// First retry delay after a failed order.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// Longest retry delay.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What the ACME task needs (validated by the configuration).
#[derive(Clone, Debug)]
pub struct Settings {
    /// `--acme-domain`: the names ordered, in the certificate's SANs.
    pub domains: Vec<String>,
    /// `--acme-email`: the account's contact.
    pub email: Option<String>,
    /// `--acme-directory`: the ACME directory URL.
    pub directory: String,
    /// `--acme-directory-ca`: a PEM CA to trust for the directory instead of the system roots.
    pub directory_ca: Option<PathBuf>,
    /// `--acme-cache`: account and certificate.
    pub cache: PathBuf,
    /// `--acme-renew-before`: renew this long ahead of expiry.
    pub renew_before: Duration,
    /// First retry delay after a failure (doubled each time, with jitter).
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

/// Where certificates go: the live certificate store of the TLS listener.
pub trait CertificateSink: Send + Sync + 'static {
    /// Serves `issued` for new handshakes from now on (open connections keep theirs).
    fn install(&self, issued: &Issued) -> Result<(), AcmeError>;
    /// While `Some`, answers an `acme-tls/1` handshake for `domain` with `key` (tls-alpn-01).
    fn set_challenge(&self, domain: &str, key: Option<Arc<CertifiedKey>>);
}

/// The ACME task: installs the cached certificate at once, then renews until shutdown.
#[derive(Debug)]
pub struct Acme<S> {
    settings: Settings,
    cache: Cache,
    sink: S,
    status: AcmeStatus,
    current: Option<Issued>,
    /// When the next order is due (`None`: now).
    renew_at: Option<SystemTime>,
}

impl<S: CertificateSink> Acme<S> {
    /// Opens the cache and, if it holds a usable certificate for the domains, installs it now.
    pub fn new(settings: Settings, sink: S, status: AcmeStatus) -> Result<Self, AcmeError> {
        let cache = Cache::open(&settings.cache)?;
        let mut acme = Self {
            settings,
            cache,
            sink,
            status,
            current: None,
            renew_at: None,
        };
        match acme.cache.certificate() {
            Ok(Some(cached)) if !cached.covers(&acme.settings.domains) => info!(
                names = ?cached.names,
                domains = ?acme.settings.domains,
                "cached certificate does not name every --acme-domain, ordering a new one"
            ),
            Ok(Some(cached)) if cached.not_after <= SystemTime::now() => {
                info!(serial = %cached.serial, "cached certificate expired, ordering a new one");
            }
            Ok(Some(cached)) => {
                acme.renew_at = Some(cached.renewal_due(acme.settings.renew_before));
                acme.adopt(cached, "cache")?;
            }
            Ok(None) => {
                info!(cache = %acme.settings.cache.display(), "no cached certificate, ordering one")
            }
            Err(error) => {
                warn!(cause = %chain(&error), "cached certificate unusable, ordering a new one")
            }
        }
        Ok(acme)
    }

    /// A certificate is being served (from the cache or an order).
    pub fn is_serving(&self) -> bool {
        self.current.is_some()
    }

    /// Obtains a certificate now (an order), installs and caches it. Used by [`Self::run`] and
    /// by callers that cannot serve before a first certificate exists.
    pub async fn renew(&mut self) -> Result<(), AcmeError> {
        self.status.update(|s| s.orders += 1);
        let account = order::account(&self.settings, &self.cache).await?;
        let issued = order::issue(&self.settings, &account, &self.sink).await?;
        self.cache.save_certificate(&issued)?;
        let now = SystemTime::now();
        let due = issued.renewal_due(self.settings.renew_before);
        let halfway = now + issued.not_after.duration_since(now).unwrap_or_default() / 2;
        if due < halfway {
            warn!(
                renew_before = %humantime::format_duration(self.settings.renew_before),
                not_after = %humantime::format_rfc3339_seconds(issued.not_after),
                "--acme-renew-before reaches past most of the certificate's lifetime; renewing halfway instead"
            );
        }
        self.renew_at = Some(due.max(halfway));
        self.adopt(issued, "acme")?;
        self.status.update(|s| {
            s.last_success = Some(now);
            s.last_error = None;
            s.failures = 0;
        });
        Ok(())
    }

    fn adopt(&mut self, issued: Issued, source: &'static str) -> Result<(), AcmeError> {
        self.sink.install(&issued)?;
        info!(
            source,
            serial = %issued.serial,
            names = ?issued.names,
            not_after = %humantime::format_rfc3339_seconds(issued.not_after),
            renew_at = ?self.renew_at.map(humantime::format_rfc3339_seconds),
            "serving ACME certificate"
        );
        self.status.update(|s| {
            s.serial = Some(issued.serial.clone());
            s.not_after = Some(issued.not_after);
            s.source = Some(source);
            s.next_attempt = self.renew_at;
        });
        self.current = Some(issued);
        Ok(())
    }

    /// Renews when due until `signal` fires; failures keep the current certificate and retry.
    pub async fn run(mut self, mut signal: Signal) {
        let mut failures: u32 = 0;
        loop {
            let now = SystemTime::now();
            let wait = match failures {
                0 => self
                    .renew_at
                    .and_then(|at| at.duration_since(now).ok())
                    .unwrap_or_default(),
                n => backoff(self.settings.initial_backoff, self.settings.max_backoff, n),
            };
            self.status.update(|s| s.next_attempt = Some(now + wait));
            tokio::select! {
                () = sleep_long(wait) => {}
                () = signal.requested() => return,
            }
            let result = tokio::select! {
                result = self.renew() => result,
                () = signal.requested() => return,
            };
            match result {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let message = chain(&error);
                    warn!(
                        attempt = failures,
                        cause = %message,
                        serving = self.current.as_ref().map(|c| c.serial.as_str()),
                        "ACME order failed; serving the current certificate, retrying"
                    );
                    self.status.update(|s| {
                        s.last_error = Some(message);
                        s.last_error_at = Some(SystemTime::now());
                        s.failures = failures;
                    });
                }
            }
        }
    }
}

/// Sleeps `wait`, in steps a suspended machine's clock cannot stretch by much (renewal dates
/// are wall-clock; tokio's timer is monotonic).
async fn sleep_long(wait: Duration) {
    let until = SystemTime::now() + wait;
    while let Ok(left) = until.duration_since(SystemTime::now()) {
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_secs(600))).await;
    }
}

/// Exponential backoff with jitter: between half and all of `initial * 2^(attempt-1)`, capped.
fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    ceiling / 2 + ceiling.mul_f64(rand::random::<f64>() / 2.0)
}

/// `error: cause: cause` on one line, for logs and `/statusz`.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(error.source(), |e| e.source()).fold(error.to_string(), |text, cause| {
        let cause = cause.to_string();
        if text.contains(&cause) {
            text
        } else {
            format!("{text}: {cause}")
        }
    })
}

/// Everything that can go wrong obtaining a certificate.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// A cache file or the directory could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// `read`, `write`, `create`.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A cache file holds something unusable.
    #[error("{}: {reason}", path.display())]
    CacheContent {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A certificate (issued or cached) failed its checks.
    #[error("certificate from {origin}: {reason}")]
    InvalidCertificate {
        /// Where it came from (directory URL or cache file).
        origin: String,
        /// Why.
        reason: String,
    },
    /// The live certificate store refused the certificate.
    #[error("cannot install the certificate: {reason}")]
    Install {
        /// Why.
        reason: String,
    },
    /// The tls-alpn-01 certificate could not be made.
    #[error("cannot make the tls-alpn-01 certificate for {domain}: {reason}")]
    Challenge {
        /// The domain.
        domain: String,
        /// Why.
        reason: String,
    },
    /// The certificate key or CSR could not be made.
    #[error("cannot make the certificate signing request")]
    Csr(#[source] rcgen::Error),
    /// The HTTP client for the directory could not be built (e.g. a bad `--acme-directory-ca`).
    #[error("cannot set up the ACME client{}", ca.as_ref().map(|p| format!(" with --acme-directory-ca {}", p.display())).unwrap_or_default())]
    Client {
        /// `--acme-directory-ca`.
        ca: Option<PathBuf>,
        /// instant-acme's error.
        #[source]
        source: instant_acme::Error,
    },
    /// A step of the protocol failed (network, or the server's problem document).
    #[error("{step} at {directory} failed")]
    Protocol {
        /// The directory URL.
        directory: String,
        /// What was being done.
        step: &'static str,
        /// instant-acme's error.
        #[source]
        source: instant_acme::Error,
    },
    /// The server offers no tls-alpn-01 challenge for a domain.
    #[error("the ACME server offers no tls-alpn-01 challenge for {domain}")]
    NoTlsAlpn {
        /// The domain.
        domain: String,
    },
    /// The server did not validate or issue.
    #[error("the ACME server refused: {reason}")]
    Rejected {
        /// Why (the server's problem documents).
        reason: String,
    },
}

#[cfg(test)]
mod tests;
