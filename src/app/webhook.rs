//! `webhook`: the admission webhook over TLS, its certificate and map files watched and
//! reloaded, and the admin listener.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::exit::UsageError;
use crate::arn::{AccountId, Partition};
use crate::cli::WebhookArgs;
use crate::listener;
use crate::server::{self, TlsSettings};
use crate::shutdown::{self, Readiness};
use crate::tls::{self, CertificateFiles, Certificates};
use crate::watcher::{CertificateReload, Reload, WatchConfig, Watcher};
use crate::webhook::mapping::MapSource;
use crate::webhook::{Defaults, Webhook, service};

/// Time a client has to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time in-flight admissions get to finish at shutdown.
const GRACE: Duration = Duration::from_secs(5);
/// The smallest token lifetime Kubernetes accepts for a projected token.
const MIN_TOKEN_EXPIRATION: u32 = 600;

/// `webhook`: checks every input, binds, serves until SIGTERM/SIGINT.
pub(super) async fn webhook(args: WebhookArgs) -> anyhow::Result<()> {
    let signal = shutdown::os_signal().context("cannot install signal handlers")?;
    let source = map_source(&args)?;
    let defaults = defaults(&args)?;
    // Every input is read before anything is bound.
    let map = source.load()?;
    let files = CertificateFiles {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    };
    let pair = files.load().context("cannot serve HTTPS")?;
    let listener = super::listen::bind(args.listen, "--listen").await?;
    let admin = match args.admin_listen {
        Some(addr) => Some(super::listen::bind(addr, "--admin-listen").await?),
        None => None,
    };

    info!(map = %source.path().display(), entries = map.len(), "IAM map loaded");
    tls::log_loaded(&pair, "start");
    let certificates = Certificates::default();
    certificates.install(pair);
    let tls = server::server_config(&TlsSettings {
        certificates: certificates.clone(),
        acme: false,
        h2: false,
    })?;
    let webhook = Arc::new(Webhook::new(map, defaults));
    let readiness = Readiness::default();
    let (trigger, stop) = shutdown::channel();
    let watch = |sources: Vec<PathBuf>| WatchConfig {
        sources,
        debounce: args.watch_debounce,
        poll_interval: args.poll_interval,
    };
    let certificate_watcher = Watcher::start(watch(vec![files.cert.clone(), files.key.clone()]))?;
    let map_watcher = Watcher::start(watch(vec![source.path().to_owned()]))?;
    let mut tasks = vec![
        tokio::spawn(certificate_watcher.run(
            CertificateReload {
                files,
                certificates,
            },
            stop.clone(),
        )),
        tokio::spawn(map_watcher.run(
            MapReload {
                source,
                webhook: Arc::clone(&webhook),
            },
            stop.clone(),
        )),
        tokio::spawn(serve(
            listener,
            tls,
            Arc::clone(&webhook),
            readiness.clone(),
            stop.clone(),
            GRACE,
        )),
    ];
    if let Some(admin) = admin {
        tasks.push(tokio::spawn(serve_admin(
            admin,
            Arc::clone(&webhook),
            readiness.clone(),
            stop.clone(),
            GRACE,
        )));
    }
    readiness.set_ready();
    let name = signal.await;
    info!(signal = name, "shutting down");
    readiness.set_draining();
    if !args.drain_delay.is_zero() {
        info!(delay = ?args.drain_delay, "not ready; still answering before the drain");
        tokio::time::sleep(args.drain_delay).await;
    }
    trigger.trigger();
    for task in tasks {
        task.await.context("a webhook task panicked")?;
    }
    info!("stopped");
    Ok(())
}

/// Serves the webhook over TLS on `listener` until `shutdown` fires, then lets in-flight
/// requests finish for at most `grace`.
async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    webhook: Arc<Webhook>,
    readiness: Readiness,
    shutdown: shutdown::Signal,
    grace: Duration,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(listen = %addr, "webhook ready");
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    listener::accept_until_shutdown(
        "webhook",
        listener,
        shutdown,
        grace,
        move |stream, shutdown| {
            let acceptor = acceptor.clone();
            let webhook = Arc::clone(&webhook);
            let readiness = readiness.clone();
            async move {
                let Ok(Ok(stream)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                else {
                    return;
                };
                listener::serve_http1(
                    "webhook",
                    stream,
                    HEADER_READ_TIMEOUT,
                    move |request| {
                        let webhook = Arc::clone(&webhook);
                        let readiness = readiness.clone();
                        async move { service::handle(&webhook, &readiness, request).await }
                    },
                    shutdown,
                )
                .await;
            }
        },
    )
    .await;
}

/// Serves `/metrics`, `/healthz` and `/readyz` in plain HTTP on `listener` (the admin listener).
async fn serve_admin(
    listener: TcpListener,
    webhook: Arc<Webhook>,
    readiness: Readiness,
    shutdown: shutdown::Signal,
    grace: Duration,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(listen = %addr, "admin listener ready");
    }
    listener::accept_until_shutdown(
        "admin",
        listener,
        shutdown,
        grace,
        move |stream, shutdown| {
            let webhook = Arc::clone(&webhook);
            let readiness = readiness.clone();
            listener::serve_http1(
                "admin",
                stream,
                HEADER_READ_TIMEOUT,
                move |request| std::future::ready(service::admin(&webhook, &readiness, &request)),
                shutdown,
            )
        },
    )
    .await;
}

/// The one map file given.
fn map_source(args: &WebhookArgs) -> anyhow::Result<MapSource> {
    match (&args.cluster_spec, &args.eks_config_map) {
        (None, Some(path)) => Ok(MapSource::EksConfigMap(path.clone())),
        (Some(_), Some(_)) => Err(usage(
            "give one map: --cluster-spec or --eks-config-map, not both".into(),
        )),
        (Some(path), None) => {
            let account_id = args.account_id.clone().ok_or_else(|| {
                usage(
                    "--cluster-spec needs --account-id: the AWS account of the roles kOps names"
                        .into(),
                )
            })?;
            let account: AccountId = account_id
                .parse()
                .map_err(|e| usage(format!("--account-id: {e}")))?;
            let partition: Partition = args
                .partition
                .parse()
                .map_err(|e| usage(format!("--partition: {e}")))?;
            Ok(MapSource::ClusterSpec {
                path: path.clone(),
                account_id: account.to_string(),
                partition: partition.to_string(),
            })
        }
        (None, None) => Err(usage(
            "the webhook needs a map: --cluster-spec FILE (a kOps Cluster manifest) or \
             --eks-config-map FILE (the EKS pod identity webhook's ConfigMap `config`)"
                .into(),
        )),
    }
}

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// The flags' defaults for every pod.
fn defaults(args: &WebhookArgs) -> anyhow::Result<Defaults> {
    if args.token_expiration < MIN_TOKEN_EXPIRATION {
        return Err(usage(format!(
            "--token-expiration {}: Kubernetes' minimum for a projected token is \
             {MIN_TOKEN_EXPIRATION} seconds",
            args.token_expiration
        )));
    }
    Ok(Defaults {
        audience: args.token_audience.clone(),
        token_expiration: args.token_expiration,
        regional_sts: args.sts_regional_endpoint,
        region: args.aws_default_region.clone(),
        fs_group: args.fs_group,
    })
}

/// The map file and the webhook it feeds: a changed, valid map replaces the one in use; a bad
/// one is logged, naming the file and the entry, and the last good map stays.
struct MapReload {
    source: MapSource,
    webhook: Arc<Webhook>,
}

impl Reload for MapReload {
    async fn reload(&mut self, _sources: &[PathBuf], cause: &'static str) -> bool {
        let source = self.source.clone();
        match tokio::task::spawn_blocking(move || source.load()).await {
            Ok(Ok(map)) => {
                info!(cause, map = %self.source.path().display(), entries = map.len(), "IAM map reloaded");
                self.webhook.replace_map(map);
                true
            }
            Ok(Err(error)) => {
                warn!(cause, %error, "IAM map reload failed; still using the last good map");
                self.webhook.metrics.map_loaded(None);
                false
            }
            Err(error) => {
                warn!(cause, %error, "IAM map reload task failed");
                self.webhook.metrics.map_loaded(None);
                false
            }
        }
    }
}
