//! Wiring of ACME beside `serve`: the live certificates fed by the ACME task, the rustls
//! acceptor that answers tls-alpn-01, and the `/statusz` sections.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::acme::{self, Acme, AcmeStatus, Http01Tokens};
use crate::config::AcmeConfig;
use crate::issuer::Issuer;
use crate::server::{self, Attached, TlsSettings};
use crate::shutdown;
use crate::tls::Certificates;

/// The running ACME side of `serve`.
pub(super) struct Started {
    /// The acceptor's configuration (ALPN `acme-tls/1` offered).
    pub(super) tls: Arc<rustls::ServerConfig>,
    /// The certificates the task installs (`serve_on` reports them as `tls` and warns on expiry).
    pub(super) certificates: Certificates,
    status: AcmeStatus,
    tasks: Vec<JoinHandle<()>>,
}

/// Validated configuration -> the task's settings (the default backoff and order timeout).
pub(super) fn settings(config: &AcmeConfig) -> acme::Settings {
    acme::Settings {
        domains: config.domains.clone(),
        email: config.email.clone(),
        directory: config.directory.clone(),
        directory_ca: config.directory_ca.clone(),
        cache: config.cache.clone(),
        renew_before: config.renew_before,
        initial_backoff: acme::DEFAULT_INITIAL_BACKOFF,
        max_backoff: acme::DEFAULT_MAX_BACKOFF,
        order_timeout: acme::DEFAULT_ORDER_TIMEOUT,
    }
}

/// Installs the cached certificate (if usable) at once and starts ordering and renewing; with
/// `--acme-http-listen`, binds that listener and answers http-01 there.
pub(super) async fn start(
    config: &AcmeConfig,
    issuer: &Issuer,
    grace: std::time::Duration,
    signal: shutdown::Signal,
) -> anyhow::Result<Started> {
    if let Some(host) = issuer.host()
        && !config.domains.contains(&host)
    {
        warn!(
            issuer_host = %host,
            acme_domains = crate::log::list(&config.domains),
            "the issuer's host is not among the --acme-domain names; relying parties will refuse the TLS connection"
        );
    }
    let certificates = Certificates::default();
    let status = AcmeStatus::new(config.domains.clone(), config.directory.clone());
    let mut task = Acme::new(settings(config), certificates.clone(), status.clone())
        .context("cannot start ACME")?;
    let mut tasks = Vec::new();
    if let Some(addr) = config.http_listen {
        let listener = super::listen::bind(addr, "--acme-http-listen").await?;
        let tokens = Http01Tokens::default();
        task = task.with_http01(tokens.clone());
        tasks.push(tokio::spawn(acme::http01::serve(
            listener,
            tokens,
            signal.clone(),
            grace,
        )));
    }
    if !task.is_serving() {
        info!(
            directory = %config.directory,
            "no certificate yet: TLS handshakes fail until the first ACME order completes"
        );
    }
    let tls = server::server_config(&TlsSettings {
        certificates: certificates.clone(),
        acme: true,
        h2: true,
    })?;
    tasks.push(tokio::spawn(task.run(signal)));
    Ok(Started {
        tls,
        certificates,
        status,
        tasks,
    })
}

impl Started {
    /// The `/statusz` section `acme` (orders, renewal, last error); `/readyz` is 503 until a
    /// first certificate is served.
    pub(super) fn attached(&self) -> Attached {
        let status = self.status.clone();
        Attached {
            name: "acme",
            status: Arc::new({
                let status = status.clone();
                move || status.get().to_json()
            }),
            not_ready: Arc::new(move || {
                status
                    .get()
                    .serial
                    .is_none()
                    .then_some("not ready: no ACME certificate yet\n")
            }),
        }
    }

    /// Waits for the tasks (after shutdown was triggered).
    pub(super) async fn join(self) -> anyhow::Result<()> {
        for task in self.tasks {
            task.await.context("ACME task panicked")?;
        }
        Ok(())
    }
}
