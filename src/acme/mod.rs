//! ACME: obtains and renews the serving certificate itself (RFC 8555; tls-alpn-01 answered on
//! the serving listener, or http-01 on a plain one), caching account and certificate so restarts
//! reuse them.
//!
//! The task never drops a working certificate: a certificate is installed only once it is
//! issued, parsed and checked (key matches leaf), and a failed order leaves the current one in
//! place and retries with exponential backoff and jitter. Renewal starts `renew_before` ahead
//! of expiry.

mod cache;
mod certificate;
pub mod challenge;
pub mod http01;
mod order;
mod status;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::log;
use crate::retry::backoff;
use crate::shutdown::Signal;
use crate::tls::{self, Certificates};

pub use cache::{ACCOUNT_FILE, CERTIFICATE_FILE, Cache, KEY_FILE};
pub use certificate::Issued;
pub use http01::Http01Tokens;
pub use status::{AcmeState, AcmeStatus};

/// The longest one order may take, end to end: the HTTP client has no timeout of its own, and a
/// server that accepts connections but never answers must not stall renewal for good.
pub const DEFAULT_ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// First retry delay after a failed order.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// Longest retry delay.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What the ACME task needs (from the validated configuration).
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
    /// The longest one order may take, end to end.
    pub order_timeout: Duration,
}

/// The ACME task: installs the cached certificate at once, then renews until shutdown. It
/// writes into the listener's live [`Certificates`]: the served pair and, during an order, the
/// tls-alpn-01 challenge certificates.
#[derive(Debug)]
pub struct Acme {
    settings: Settings,
    cache: Cache,
    certificates: Certificates,
    status: AcmeStatus,
    /// With a plain listener: http-01 answered there instead of tls-alpn-01.
    http01: Option<Http01Tokens>,
    /// When the next order is due (`None`: now).
    renew_at: Option<SystemTime>,
}

impl Acme {
    /// Opens the cache and, if it holds a usable certificate for the domains, installs it now.
    pub fn new(
        settings: Settings,
        certificates: Certificates,
        status: AcmeStatus,
    ) -> Result<Self, AcmeError> {
        let cache = Cache::open(&settings.cache)?;
        let mut acme = Self {
            settings,
            cache,
            certificates,
            status,
            http01: None,
            renew_at: None,
        };
        match acme.cache.certificate() {
            Ok(Some(cached)) if !cached.covers(&acme.settings.domains) => info!(
                names = crate::log::list(cached.pair.names()),
                domains = crate::log::list(&acme.settings.domains),
                "cached certificate does not name every --acme-domain, ordering a new one"
            ),
            Ok(Some(cached)) => {
                acme.renew_at = Some(cached.renewal_due(acme.settings.renew_before));
                acme.adopt(cached, "cache");
            }
            Ok(None) => info!(
                cache = %acme.settings.cache.display(),
                "no cached certificate, ordering one"
            ),
            Err(error) => warn!(
                cause = %crate::log::error_chain(&error),
                "cached certificate unusable, ordering a new one"
            ),
        }
        Ok(acme)
    }

    /// Answers http-01 through `tokens` (served on a plain listener) instead of tls-alpn-01.
    pub fn with_http01(mut self, tokens: Http01Tokens) -> Self {
        self.http01 = Some(tokens);
        self
    }

    fn responder(&self) -> order::Responder<'_> {
        match &self.http01 {
            Some(tokens) => order::Responder::Http(tokens),
            None => order::Responder::TlsAlpn(&self.certificates),
        }
    }

    /// A certificate is being served (from the cache or an order).
    pub fn is_serving(&self) -> bool {
        self.certificates.current().is_some()
    }

    /// Orders a certificate now, caches and installs it. The current certificate stays until a
    /// new one is issued and checked.
    pub async fn renew(&mut self) -> Result<(), AcmeError> {
        self.status.update(|s| s.orders += 1);
        let account = order::account(&self.settings, &self.cache).await?;
        let issued = match order::issue(&self.settings, &account, self.responder()).await {
            // The server forgot the cached account (a reset staging or test CA): a new one.
            Err(error) if error.is_unknown_account() => {
                warn!(cause = %crate::log::error_chain(&error), "the ACME server does not know the cached account, creating a new one");
                self.cache.forget_account()?;
                let account = order::account(&self.settings, &self.cache).await?;
                order::issue(&self.settings, &account, self.responder()).await?
            }
            result => result?,
        };
        self.cache.save_certificate(&issued)?;
        let now = SystemTime::now();
        let not_after = issued.pair.not_after();
        let due = issued.renewal_due(self.settings.renew_before);
        let halfway = now + not_after.duration_since(now).unwrap_or_default() / 2;
        if due < halfway {
            warn!(
                renew_before = %humantime::format_duration(self.settings.renew_before),
                not_after = %humantime::format_rfc3339_seconds(not_after),
                "--acme-renew-before exceeds half the certificate's remaining lifetime; next renewal halfway instead"
            );
        }
        self.renew_at = Some(due.max(halfway));
        self.adopt(issued, "acme");
        self.status.update(|s| {
            s.last_success = Some(now);
            s.last_error = None;
            s.failures = 0;
        });
        Ok(())
    }

    fn adopt(&mut self, issued: Issued, source: &'static str) {
        let pair = issued.pair;
        tls::log_loaded(&pair, source);
        info!(
            renew_at = %self
                .renew_at
                .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                .unwrap_or_else(|| "now".into()),
            "next ACME renewal"
        );
        self.status.update(|s| {
            s.serial = Some(pair.serial().to_owned());
            s.not_after = Some(pair.not_after());
            s.source = Some(source);
            s.next_attempt = self.renew_at;
        });
        self.certificates.install(pair);
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
                result = tokio::time::timeout(self.settings.order_timeout, self.renew()) => result,
                () = signal.requested() => return,
            };
            let result = result.unwrap_or_else(|_| {
                // The abandoned order may have left challenge answers behind.
                for domain in &self.settings.domains {
                    self.certificates.set_challenge(domain, None);
                }
                if let Some(tokens) = &self.http01 {
                    tokens.clear();
                }
                Err(AcmeError::Timeout {
                    directory: self.settings.directory.clone(),
                    after: self.settings.order_timeout,
                })
            });
            match result {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let message = log::error_chain(&error);
                    match self.certificates.current() {
                        Some(serving) => warn!(
                            attempt = failures,
                            cause = %message,
                            serving = serving.serial(),
                            "ACME order failed; still serving the current certificate, retrying"
                        ),
                        None => warn!(
                            attempt = failures,
                            cause = %message,
                            "ACME order failed; no certificate to serve yet, retrying"
                        ),
                    }
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
    #[error("unusable certificate")]
    Certificate(#[source] tls::TlsError),
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
    /// An order took longer than [`Settings::order_timeout`].
    #[error("the order at {directory} took longer than {}", humantime::format_duration(*after))]
    Timeout {
        /// The directory URL.
        directory: String,
        /// The limit.
        after: Duration,
    },
    /// The server does not offer the challenge type issuerd answers for a domain.
    #[error("the ACME server offers no {kind} challenge for {domain}")]
    NoChallenge {
        /// The domain.
        domain: String,
        /// `TlsAlpn01` or `Http01`.
        kind: String,
    },
    /// The server did not validate or issue.
    #[error("the ACME server refused: {reason}")]
    Rejected {
        /// Why (the server's problem documents).
        reason: String,
    },
}

impl AcmeError {
    /// The server answered `accountDoesNotExist` (RFC 8555 §6.7).
    fn is_unknown_account(&self) -> bool {
        matches!(
            self,
            Self::Protocol { source: instant_acme::Error::Api(problem), .. }
                if problem.r#type.as_deref() == Some("urn:ietf:params:acme:error:accountDoesNotExist")
        )
    }
}

#[cfg(test)]
mod tests;
