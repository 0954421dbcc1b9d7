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
use crate::webhook::mapping::{Map, MapSource};
use crate::webhook::service_accounts::{KubeAccess, ServiceAccounts};
use crate::webhook::{Defaults, Webhook, service};

/// Time a client has to send a request head, idle time between requests included (hyper's
/// timer runs while a keep-alive connection waits). Above the 90 s Go's HTTP client (the API
/// server) keeps an idle connection, so it is always the API server that closes one, never a
/// close racing its next admission (a POST it would not retry).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Time a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time in-flight admissions get to finish at shutdown.
const GRACE: Duration = Duration::from_secs(5);
/// The smallest token lifetime Kubernetes accepts for a projected token.
const MIN_TOKEN_EXPIRATION: u32 = 600;
/// The longest `--service-account-lookup-grace-period`: with the 2 s an admission may wait for
/// a slot ([`service::QUEUE_TIMEOUT`]), within the shipped configuration's `timeoutSeconds` (5).
const MAX_LOOKUP_GRACE: Duration = Duration::from_secs(3);

/// `webhook`: checks every input, binds, serves until SIGTERM/SIGINT.
pub(super) async fn webhook(args: WebhookArgs) -> anyhow::Result<()> {
    let signal = shutdown::os_signal().context("cannot install signal handlers")?;
    let source = map_source(&args)?;
    let defaults = defaults(&args)?;
    let watch = watch_config(&args)?;
    if let Ok((before, after)) = crate::listener::raise_fd_limit()
        && before != after
    {
        info!(from = before, to = after, "raised the open-files limit");
    }
    let files = CertificateFiles {
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    };
    // Watch first, then load, as `serve` does: a change between the two waits in the watcher.
    let certificate_watcher = Watcher::start(WatchConfig {
        sources: vec![files.cert.clone(), files.key.clone()],
        ..watch.clone()
    })?;
    let map_watcher = match &source {
        Some(source) => Some(Watcher::start(WatchConfig {
            sources: vec![source.path().to_owned()],
            ..watch
        })?),
        None => None,
    };
    // Every input is read before anything is bound.
    let map_text = source.as_ref().and_then(|s| std::fs::read(s.path()).ok());
    let map = match &source {
        Some(source) => source.load()?,
        None => Map::Empty,
    };
    let service_accounts = if args.service_account_annotations {
        let access = KubeAccess {
            kubeconfig: args.kubeconfig.clone(),
            context: args.kube_context.clone(),
        };
        Some(
            ServiceAccounts::connect(&access, args.service_account_lookup_grace_period)
                .await
                .context("--service-account-annotations")?,
        )
    } else {
        None
    };
    let pair = files.load().context("cannot serve HTTPS")?;
    let listener = super::listen::bind(args.listen, "--listen").await?;
    let admin = match args.admin_listen {
        Some(addr) => Some(super::listen::bind(addr, "--admin-listen").await?),
        None => None,
    };

    if let Some(source) = &source {
        info!(map = %source.path().display(), entries = map.len(), "IAM map loaded");
    }
    tls::log_loaded(&pair, "start");
    let certificates = Certificates::default();
    certificates.install(pair);
    let tls = server::server_config(&TlsSettings {
        certificates: certificates.clone(),
        acme: false,
        h2: false,
    })?;
    let mut webhook = Webhook::new(map, defaults);
    let (trigger, stop) = shutdown::channel();
    let mut tasks = Vec::new();
    let mut watch = None;
    if let Some((accounts, account_watch)) = service_accounts {
        watch = Some((accounts.clone(), account_watch));
        webhook = webhook.with_service_accounts(accounts);
    }
    let webhook = Arc::new(webhook);
    let mut listed = None;
    if let Some((accounts, account_watch)) = watch {
        tasks.push(tokio::spawn(
            account_watch.run(Arc::clone(&webhook), stop.clone()),
        ));
        listed = Some(accounts);
    }
    let readiness = Readiness::default();
    tasks.push(tokio::spawn(certificate_watcher.run(
        CertificateReload {
            files,
            certificates,
        },
        stop.clone(),
    )));
    if let (Some(map_watcher), Some(source)) = (map_watcher, source) {
        tasks.push(tokio::spawn(map_watcher.run(
            MapReload {
                source,
                served_text: map_text,
                webhook: Arc::clone(&webhook),
            },
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(serve(
        listener,
        tls,
        Arc::clone(&webhook),
        readiness.clone(),
        stop.clone(),
        GRACE,
    )));
    if let Some(admin) = admin {
        tasks.push(tokio::spawn(serve_admin(
            admin,
            Arc::clone(&webhook),
            readiness.clone(),
            stop.clone(),
            GRACE,
        )));
    }
    let mut signal = std::pin::pin!(signal);
    if let Some(accounts) = listed {
        // Ready once the cache has every ServiceAccount: until then each admission would be a
        // GET to the API server. Admissions that arrive meanwhile are answered that way.
        info!("listing ServiceAccounts before reporting ready");
        tokio::select! {
            listed = accounts.listed() => listed.context("--service-account-annotations")?,
            name = &mut signal => {
                info!(signal = name, "shutting down before ServiceAccounts were listed");
                trigger.trigger();
                for task in tasks {
                    task.await.context("a webhook task panicked")?;
                }
                return Ok(());
            }
        }
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
            let mut stop = shutdown.clone();
            async move {
                // A handshake in progress gives way to shutdown (and to the listener reclaiming
                // connections at its cap), as the issuer's TLS listener does.
                let handshake = tokio::select! {
                    biased;
                    () = stop.requested() => return,
                    handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => handshake,
                };
                let Ok(Ok(stream)) = handshake else {
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
    let respond = move |request: &_| service::admin(&webhook, &readiness, request);
    listener::serve_admin(listener, HEADER_READ_TIMEOUT, respond, shutdown, grace).await;
}

/// How the certificate and map files are watched: a poll interval above zero (and at most a
/// day), a debounce of at most 10 s, a drain delay of at most 10 min.
fn watch_config(args: &WebhookArgs) -> anyhow::Result<WatchConfig> {
    if args.poll_interval.is_zero() || args.poll_interval > Duration::from_secs(86_400) {
        return Err(usage(format!(
            "--poll-interval {:?}: give a duration above 0 and at most 1 day",
            args.poll_interval
        )));
    }
    if args.watch_debounce > Duration::from_secs(10) {
        return Err(usage("--watch-debounce: at most 10s".into()));
    }
    if args.service_account_lookup_grace_period > MAX_LOOKUP_GRACE {
        return Err(usage(format!(
            "--service-account-lookup-grace-period: at most {MAX_LOOKUP_GRACE:?} (the API server \
             gives the whole admission timeoutSeconds, 5s in deploy/, and it may first wait 2s \
             for a slot)"
        )));
    }
    if args.drain_delay > Duration::from_secs(600) {
        return Err(usage("--drain-delay: at most 10m".into()));
    }
    Ok(WatchConfig {
        sources: Vec::new(),
        debounce: args.watch_debounce,
        poll_interval: args.poll_interval,
    })
}

/// The one map file given, if any (none only with `--service-account-annotations`).
fn map_source(args: &WebhookArgs) -> anyhow::Result<Option<MapSource>> {
    match (&args.cluster_spec, &args.eks_config_map) {
        (None, Some(path)) => Ok(Some(MapSource::EksConfigMap(path.clone()))),
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
            Ok(Some(MapSource::ClusterSpec {
                path: path.clone(),
                account_id: account.to_string(),
                partition: partition.to_string(),
            }))
        }
        (None, None) if args.service_account_annotations => Ok(None),
        (None, None) => Err(usage(
            "the webhook needs a map: --cluster-spec FILE (a kOps Cluster manifest), \
             --eks-config-map FILE (the EKS pod identity webhook's ConfigMap `config`), or \
             --service-account-annotations (each ServiceAccount's eks.amazonaws.com/role-arn)"
                .into(),
        )),
    }
}

fn usage(message: String) -> anyhow::Error {
    UsageError(message).into()
}

/// The flags' defaults for every pod.
fn defaults(args: &WebhookArgs) -> anyhow::Result<Defaults> {
    if let Some(gid) = args.fs_group
        && !(0..=i64::from(i32::MAX)).contains(&gid)
    {
        return Err(usage(format!(
            "--fs-group {gid}: Kubernetes accepts a group ID from 0 to {}",
            i32::MAX
        )));
    }
    // As the EKS webhook does: a lifetime under Kubernetes' minimum is raised to it.
    let token_expiration = if args.token_expiration < MIN_TOKEN_EXPIRATION {
        warn!(
            given = args.token_expiration,
            used = MIN_TOKEN_EXPIRATION,
            "--token-expiration is under Kubernetes' minimum for a projected token; raised"
        );
        MIN_TOKEN_EXPIRATION
    } else {
        args.token_expiration
    };
    Ok(Defaults {
        audience: args.token_audience.clone(),
        token_expiration,
        regional_sts: args.sts_regional_endpoint,
        region: args.aws_default_region.clone(),
        fs_group: args.fs_group,
    })
}

/// The map file and the webhook it feeds: a changed, valid map replaces the one in use; a bad
/// one is logged, naming the file and the entry, and the last good map stays.
struct MapReload {
    source: MapSource,
    /// The file's bytes behind the map in use (a poll that finds them unchanged does nothing).
    served_text: Option<Vec<u8>>,
    webhook: Arc<Webhook>,
}

impl Reload for MapReload {
    async fn reload(&mut self, _sources: &[PathBuf], cause: &'static str) -> bool {
        let source = self.source.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let text = std::fs::read(source.path()).ok();
            (source.load(), text)
        })
        .await;
        match loaded {
            Ok((Ok(_), text)) if text.is_some() && text == self.served_text => true,
            Ok((Ok(map), text)) => {
                info!(cause, map = %self.source.path().display(), entries = map.len(), "IAM map reloaded");
                self.webhook.replace_map(map);
                self.served_text = text;
                true
            }
            Ok((Err(error), _)) => {
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
