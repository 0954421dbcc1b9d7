//! `serve`: the issuer listener, the key watcher and store, and one function per attached
//! feature (certificate from files or ACME, mirror, STS, admin listener). What the configuration
//! only describes (`--dev`'s key and issuer, the address to bind) is carried out here.

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{acme, irsa};
use crate::apiserver::{ApiServerSettings, ApiServerStatus, ClusterKeys, Endpoint, Poller};
use crate::config::ServeConfig;
use crate::dev::{DevIrsa, DevKey};
use crate::issuer::{Issuer, Publication};
use crate::keys::KeySet;
use crate::mirror::{Mirror, MirrorStatus, S3Sink};
use crate::server::{self, Attached, IssuerService, Limits, Server, TlsSettings};
use crate::shutdown::{self, Readiness};
use crate::store::{Origin, Snapshot, Store};
use crate::tls::{self, CertificateFiles, Certificates, CertifiedPair};
use crate::trust::Pinned;
use crate::watcher::{CertificateReload, WatchConfig, Watcher};

/// `serve`: raises the open-files limit, binds the listen address, serves until SIGTERM/SIGINT.
pub(super) async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let signal = shutdown::os_signal().context("cannot install signal handlers")?;
    // As Go does: the soft open-files limit up to the hard one, so that the connection cap
    // (sized from it) is not needlessly low.
    match crate::listener::raise_fd_limit() {
        Ok((before, after)) if before != after => {
            info!(from = before, to = after, "raised the open-files limit");
        }
        Ok(_) => {}
        Err(error) => warn!(%error, "cannot raise the open-files limit"),
    }
    // Every input is checked before any socket is bound: a bad key file is reported as such,
    // even when the port is taken too.
    preflight(&config)?;
    let addr = config.listen.resolve()?;
    // Each worker accepts on its own socket: all are bound here, before anything starts.
    let bound = match config.workers.threads() {
        Some(workers) => server::workers::bind(addr, config.backlog, workers),
        None => crate::listener::bind(addr, config.backlog).map(|listener| vec![listener]),
    };
    let (listener, siblings) = bound
        .and_then(|mut listeners| {
            let first = listeners.remove(0);
            Ok((TcpListener::from_std(first)?, listeners))
        })
        .map_err(|error| super::listen::cannot_listen(addr, "--listen", &error))?;
    serve_on_workers(listener, siblings, config, async {
        let signal = signal.await;
        info!(signal, "shutting down");
    })
    .await
}

/// Reads every input `serve` will use (keys, certificate pair, STS roles, CAs) once, so that an
/// unusable one stops the start before anything is bound or started.
fn preflight(config: &ServeConfig) -> anyhow::Result<()> {
    if !config.key_files.is_empty() {
        KeySet::load(&config.key_files)?;
    }
    if let Some(files) = &config.tls {
        files.load().context("cannot serve HTTPS")?;
    }
    if let Some(sts) = &config.sts {
        crate::trust::Trust::with_ca_files(&sts.ca_files)?;
        if let Some(roles) = &sts.roles {
            let allow_insecure = config.dev
                || config
                    .issuer
                    .fixed()
                    .is_some_and(|p| p.issuer.url().starts_with("http://"));
            crate::sts::roles::Roles::load(roles, allow_insecure)?;
        }
    }
    Ok(())
}

/// Serves on an already bound listener until `stop` completes (tests pass their own). With
/// `--dev`, the key is generated here and, unless one was given, the issuer names `listener`'s
/// address.
pub async fn serve_on(
    listener: TcpListener,
    config: ServeConfig,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_on_workers(listener, Vec::new(), config, stop).await
}

/// [`serve_on`], with the sockets bound beside `listener` for the other workers.
async fn serve_on_workers(
    listener: TcpListener,
    siblings: Vec<std::net::TcpListener>,
    config: ServeConfig,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let local = listener.local_addr().context("listener has no address")?;
    // A listener bound elsewhere (tests) gets the configured backlog too.
    if let Err(error) = crate::listener::set_backlog(&listener, config.backlog) {
        warn!(%error, backlog = config.backlog, "cannot set the listen backlog");
    }
    // The API server answers first: without --issuer, its issuer is the one published.
    let cluster = match &config.apiserver {
        Some(settings) => Some(first_answer(settings).await?),
        None => None,
    };
    let publication = match &cluster {
        Some(cluster) => adopt_issuer(&config, &cluster.keys, local)?,
        None => config.issuer.publication(local)?,
    };
    for warning in publication.issuer.warnings() {
        warn!("{warning}");
    }
    let dev_key = match config.dev {
        true => Some(DevKey::generate().context("--dev")?),
        false => None,
    };
    let running = start(
        listener,
        siblings,
        &config,
        publication,
        dev_key.as_ref(),
        cluster,
    )
    .await?;
    stop.await;
    running.stop(&config).await
}

/// Everything `serve` started, to be stopped in order.
struct Running {
    readiness: Readiness,
    trigger: shutdown::Trigger,
    server: JoinHandle<()>,
    watch: Option<JoinHandle<()>>,
    apiserver: Option<JoinHandle<()>>,
    sts: Option<irsa::ServeSts>,
    mirror: Option<JoinHandle<()>>,
    acme: Option<acme::Started>,
    admin: Option<JoinHandle<()>>,
}

/// The composition: keys and store first, then each feature, then the listener.
async fn start(
    listener: TcpListener,
    siblings: Vec<std::net::TcpListener>,
    config: &ServeConfig,
    publication: Publication,
    dev_key: Option<&DevKey>,
    cluster: Option<FirstAnswer>,
) -> anyhow::Result<Running> {
    let local = listener.local_addr().context("listener has no address")?;
    let (watcher, store) = load_keys(config, &publication, dev_key, cluster.as_ref())?;

    let readiness = Readiness::default();
    let (trigger, signal) = shutdown::channel();
    // Bound before anything is spawned: a bind error leaves nothing running.
    let admin_listener = bind_admin(config.admin_listen).await?;
    let certificate = start_certificate(config, &publication.issuer, &signal).await?;
    // Before the server is spawned: on a roles file or bind error, what TLS and ACME started
    // stops with the shutdown trigger, dropped on return.
    let served_certificate = certificate.as_ref().map(Certificate::pinned);
    let sts = irsa::start_sts_beside_serve(
        config.sts.as_ref(),
        &publication.issuer,
        dev_key,
        served_certificate,
        config.shutdown.grace,
        signal.clone(),
    )
    .await?;
    let mut service =
        IssuerService::new(store.reader(), readiness.clone()).with_access_log(config.access_log);
    if admin_listener.is_some() {
        service = service.with_admin_listener();
    }
    let (tls, acme) = match certificate {
        Some(certificate) => {
            service = certificate.attach(service);
            (Some(certificate.tls), certificate.acme)
        }
        None => (None, None),
    };
    let (service, apiserver) = start_apiserver(cluster, &store, service, &signal);
    let (service, mirror) = start_mirror(config, &publication.issuer, &store, service, &signal)?;
    let admin = admin_listener.map(|listener| {
        tokio::spawn(server::admin::serve(
            listener,
            service.clone(),
            signal.clone(),
            config.shutdown.grace,
        ))
    });
    let server = start_server(config, service, listener, siblings, tls, &signal)?;
    let watch = watcher.map(|watcher| tokio::spawn(watcher.run(Arc::clone(&store), signal)));
    readiness.set_ready();
    info!(listen = %local, issuer = publication.issuer.url(), "ready");
    if let Some(key) = dev_key {
        print_dev_banners(config, &publication.issuer, key, local, sts.as_ref());
    }
    Ok(Running {
        readiness,
        trigger,
        server,
        watch,
        apiserver,
        sts,
        mirror,
        acme,
        admin,
    })
}

impl Running {
    /// Not ready, the drain delay, then shutdown: every task joined.
    async fn stop(self, config: &ServeConfig) -> anyhow::Result<()> {
        self.readiness.set_draining();
        // Load balancers see /readyz fail and move traffic away while it is still served.
        let delay = config.shutdown.drain_delay;
        if !delay.is_zero() {
            info!(
                delay_secs = delay.as_secs_f64(),
                "not ready; serving on for the drain delay"
            );
            tokio::time::sleep(delay).await;
        }
        self.trigger.trigger();
        self.server.await.context("server task panicked")?;
        if let Some(watch) = self.watch {
            watch.await.context("watcher task panicked")?;
        }
        if let Some(apiserver) = self.apiserver {
            apiserver.await.context("API server poller panicked")?;
        }
        // The demo's files live until its STS has stopped.
        let _demo: Option<DevIrsa> = match self.sts {
            Some((task, demo, _)) => {
                task.await.context("STS task panicked")?;
                demo
            }
            None => None,
        };
        if let Some(mirror) = self.mirror {
            mirror.await.context("mirror task panicked")?;
        }
        if let Some(acme) = self.acme {
            acme.join().await?;
        }
        if let Some(admin) = self.admin {
            admin.await.context("admin listener task panicked")?;
        }
        info!("stopped");
        Ok(())
    }
}

/// The key sources (and the dev key) watched, loaded and published as the first snapshot,
/// with the API server's first keys beside them.
fn load_keys(
    config: &ServeConfig,
    publication: &Publication,
    dev_key: Option<&DevKey>,
    cluster: Option<&FirstAnswer>,
) -> anyhow::Result<(Option<Watcher>, Arc<Store>)> {
    let mut key_files = config.key_files.clone();
    key_files.extend(dev_key.map(|key| key.private_key().to_owned()));
    let mut parts = Vec::new();
    let watcher = match key_files.is_empty() {
        true => None,
        false => {
            // Watch first, then load: a change in between waits as an event instead of being
            // missed.
            let watcher = Watcher::start(watch_config(config, key_files.clone()))?;
            parts.push((Origin::Files, KeySet::load(&key_files)?));
            Some(watcher)
        }
    };
    if let Some(cluster) = cluster {
        parts.push((Origin::ApiServer, cluster.keys.keys.clone()));
    }
    let store = Store::with_parts(publication.clone(), parts)
        .context("the key files and the API server's JWKS cannot be published together")?;
    log_first_snapshot(&store.reader().snapshot());
    Ok((watcher, Arc::new(store)))
}

/// The API server's first answer, and the poller that asks again.
struct FirstAnswer {
    poller: Poller,
    keys: ClusterKeys,
    status: ApiServerStatus,
}

/// Resolves the API server (pod files or kubeconfig) and asks it once: a start without its
/// keys would publish a partial set, so an error here stops the start.
async fn first_answer(settings: &ApiServerSettings) -> anyhow::Result<FirstAnswer> {
    let endpoint = Endpoint::resolve(&settings.connection)
        .await
        .context("--from-kube-apiserver")?;
    let mut poller =
        Poller::new(&endpoint, settings.poll, settings.timeout).context("--from-kube-apiserver")?;
    let (keys, _) = poller
        .fetch()
        .await
        .context("--from-kube-apiserver: the API server's keys are needed to start")?;
    info!(
        url = %endpoint.url,
        origin = endpoint.origin,
        issuer = keys.issuer,
        cluster_jwks_uri = keys.jwks_uri.as_deref().unwrap_or("-"),
        kids = crate::log::list(&keys.keys.kids().collect::<Vec<_>>()),
        poll_secs = settings.poll.as_secs_f64(),
        "reading keys from the Kubernetes API server"
    );
    let status = ApiServerStatus::new(
        poller.jwks_url().to_owned(),
        endpoint.origin.clone(),
        keys.issuer.clone(),
        keys.keys.kids().map(str::to_owned).collect(),
        settings.max_stale,
    );
    Ok(FirstAnswer {
        poller,
        keys,
        status,
    })
}

/// The issuer published: `--issuer`, which must be the cluster's, or the cluster's adopted.
fn adopt_issuer(
    config: &ServeConfig,
    cluster: &ClusterKeys,
    local: SocketAddr,
) -> anyhow::Result<Publication> {
    let publication = config.issuer.adopt(&cluster.issuer, local)?;
    if config.issuer.fixed().is_none() {
        info!(
            issuer = cluster.issuer,
            "no --issuer given: publishing the API server's issuer"
        );
        if let Some(host) = publication.issuer.host()
            && (host.ends_with(".svc") || host.ends_with(".cluster.local") || host == "kubernetes")
        {
            warn!(
                issuer = cluster.issuer,
                "the cluster's issuer names an address inside the cluster: relying parties outside \
                 it cannot fetch its discovery document; set the API server's \
                 --service-account-issuer to the URL issuerd (or the bucket) is reached at"
            );
        }
    } else if publication.issuer.url() != cluster.issuer {
        return Err(crate::apiserver::ApiServerError::IssuerMismatch {
            cluster: cluster.issuer.clone(),
            published: publication.issuer.url().to_owned(),
        })
        .context("--from-kube-apiserver");
    }
    Ok(publication)
}

/// The API server poller: follows the cluster's rotations; reports in `/statusz` (`kube`) and
/// holds `/readyz` once its keys are older than `--kube-max-stale`.
fn start_apiserver(
    cluster: Option<FirstAnswer>,
    store: &Arc<Store>,
    service: IssuerService,
    signal: &shutdown::Signal,
) -> (IssuerService, Option<JoinHandle<()>>) {
    let Some(cluster) = cluster else {
        return (service, None);
    };
    let status = cluster.status.clone();
    let service = service.with_attached(Attached {
        name: "kube",
        status: Arc::new({
            let status = status.clone();
            move || status.to_json()
        }),
        not_ready: Arc::new(move || status.not_ready()),
    });
    let task = tokio::spawn(
        cluster
            .poller
            .run(Arc::clone(store), cluster.status, signal.clone()),
    );
    (service, Some(task))
}

fn watch_config(config: &ServeConfig, sources: Vec<std::path::PathBuf>) -> WatchConfig {
    WatchConfig {
        sources,
        debounce: config.watch.debounce,
        poll_interval: config.watch.poll_interval,
    }
}

/// The admin listener (`/metrics`, `/statusz`), bound now so that an error stops the start.
async fn bind_admin(addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    Ok(Some(super::listen::bind(addr, "--admin-listen").await?))
}

/// The issuer listener, plain or TLS, with its timeouts and connection cap: on worker threads
/// of their own, one per socket (`listener` and its `siblings`), or on this runtime.
fn start_server(
    config: &ServeConfig,
    service: IssuerService,
    listener: TcpListener,
    siblings: Vec<std::net::TcpListener>,
    tls: Option<Arc<rustls::ServerConfig>>,
    signal: &shutdown::Signal,
) -> anyhow::Result<JoinHandle<()>> {
    let grace = config.shutdown.grace;
    let workers = config.workers.threads().map(|_| 1 + siblings.len());
    let max_connections = config.max_connections.unwrap_or_else(|| {
        crate::listener::default_max_connections_with_workers(workers.unwrap_or(0))
    });
    let limits = Limits {
        max_connections,
        h2_handshake: config.h2_handshake,
    };
    let server = Arc::new(Server::new(service, config.timeouts).with_limits(limits));
    let Some(workers) = workers else {
        info!(max_connections, workers = "shared", "connection limit");
        return Ok(match tls {
            Some(tls) => tokio::spawn(server.serve_tls(listener, tls, signal.clone(), grace)),
            None => tokio::spawn(server.serve(listener, signal.clone(), grace)),
        });
    };
    info!(
        max_connections,
        workers, "connection limit (one, for every worker)"
    );
    let mut listeners = vec![
        listener
            .into_std()
            .context("cannot hand the listener over")?,
    ];
    listeners.extend(siblings);
    let signal = signal.clone();
    server::workers::spawn(listeners, move |listener| {
        let server = Arc::clone(&server);
        let signal = signal.clone();
        let tls = tls.clone();
        async move {
            match tls {
                Some(tls) => server.serve_tls(listener, tls, signal, grace).await,
                None => server.serve(listener, signal, grace).await,
            }
        }
    })
    .context("cannot start the worker threads")
}

/// The serving certificate, from files (`--tls-cert`) or ACME, and what reports on it.
struct Certificate {
    tls: Arc<rustls::ServerConfig>,
    certificates: Certificates,
    acme: Option<acme::Started>,
}

impl Certificate {
    /// The leaf served now (it follows reloads and renewals), for a client of this server.
    fn pinned(&self) -> Pinned {
        let certificates = self.certificates.clone();
        Arc::new(move || {
            let pair = certificates.current()?;
            pair.certified_key().cert.first().cloned()
        })
    }

    /// The `/statusz` sections `tls` (and `acme`).
    fn attach(&self, mut service: IssuerService) -> IssuerService {
        let certificates = self.certificates.clone();
        service = service.with_attached(Attached {
            name: "tls",
            status: Arc::new(move || certificates.to_json()),
            not_ready: Arc::new(|| None),
        });
        match &self.acme {
            Some(acme) => service.with_attached(acme.attached()),
            None => service,
        }
    }
}

/// HTTPS: the pair from files (reloaded on change), or ACME's (never both); warns before expiry.
async fn start_certificate(
    config: &ServeConfig,
    issuer: &Issuer,
    signal: &shutdown::Signal,
) -> anyhow::Result<Option<Certificate>> {
    let certificate = match (&config.tls, &config.acme) {
        (Some(files), _) => {
            let (tls, certificates) = start_tls(config, files, issuer, signal.clone())?;
            Certificate {
                tls,
                certificates,
                acme: None,
            }
        }
        // The cached certificate at once, then orders and renewals.
        (None, Some(acme_config)) => {
            let grace = config.shutdown.grace;
            let started = acme::start(acme_config, issuer, grace, signal.clone()).await?;
            Certificate {
                tls: Arc::clone(&started.tls),
                certificates: started.certificates.clone(),
                acme: Some(started),
            }
        }
        (None, None) => return Ok(None),
    };
    tokio::spawn(
        certificate
            .certificates
            .clone()
            .warn_before_expiry(signal.clone()),
    );
    Ok(Some(certificate))
}

/// HTTPS from `--tls-cert`/`--tls-key`: loads the pair (a bad pair stops the start, naming the
/// file), checks the issuer's host against it, and starts reloading it on change.
fn start_tls(
    config: &ServeConfig,
    files: &CertificateFiles,
    issuer: &Issuer,
    signal: shutdown::Signal,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Certificates)> {
    // Watch first, then load, as for the signing keys.
    let watcher = Watcher::start(watch_config(
        config,
        vec![files.cert.clone(), files.key.clone()],
    ))?;
    let pair = files.load().context("cannot serve HTTPS")?;
    tls::log_loaded(&pair, "start");
    warn_unless_certificate_names_issuer(issuer, &pair);
    let certificates = Certificates::default();
    certificates.install(pair);
    let tls = server::server_config(&TlsSettings {
        certificates: certificates.clone(),
        acme: false,
        h2: true,
    })?;
    tokio::spawn(watcher.run(
        CertificateReload {
            files: files.clone(),
            certificates: certificates.clone(),
        },
        signal,
    ));
    Ok((tls, certificates))
}

/// Relying parties check the issuer's host against the certificate: a name it does not cover
/// fails every discovery fetch.
fn warn_unless_certificate_names_issuer(issuer: &Issuer, pair: &CertifiedPair) {
    if let Some(host) = issuer.host()
        && issuer.url().starts_with("https://")
        && !pair.covers(&host)
    {
        warn!(
            issuer_host = %host,
            certificate_names = crate::log::list(pair.names()),
            "the issuer's host is not among the certificate's names; relying parties will refuse the TLS connection"
        );
    }
}

/// The mirror: one more reader of the store; serving never waits for it. Reports on `/statusz`
/// and, with `--mirror-required`, holds `/readyz` while the bucket is behind.
fn start_mirror(
    config: &ServeConfig,
    issuer: &Issuer,
    store: &Store,
    service: IssuerService,
    signal: &shutdown::Signal,
) -> anyhow::Result<(IssuerService, Option<JoinHandle<()>>)> {
    let Some(mirror_config) = &config.mirror else {
        return Ok((service, None));
    };
    for warning in mirror_config.warnings(issuer) {
        warn!("{warning}");
    }
    let status = MirrorStatus::new(mirror_config.target.to_string());
    let sink = S3Sink::new(mirror_config)?;
    let task = Mirror::new(sink, mirror_config, issuer, status.clone())?;
    let required = config.mirror_required;
    let service = service.with_attached(Attached {
        name: "mirror",
        status: Arc::new({
            let status = status.clone();
            move || status.get().to_json()
        }),
        not_ready: Arc::new(move || match required {
            true => status.get().not_ready(),
            false => None,
        }),
    });
    info!(target = %mirror_config.target, "mirroring to bucket");
    Ok((
        service,
        Some(tokio::spawn(task.run(store.reader(), signal.clone()))),
    ))
}

fn log_first_snapshot(snapshot: &Snapshot) {
    for key in snapshot.keys.keys() {
        info!(kid = key.kid(), key = %key.describe(), alg = key.algorithm().name(), "loaded key");
    }
    info!(
        generation = snapshot.generation,
        kids = crate::log::list(&snapshot.keys.kids().collect::<Vec<_>>()),
        discovery = %snapshot.discovery.path,
        jwks = %snapshot.jwks.path,
        "published key set"
    );
}

/// `--dev`: what is served and how to try it, and the local IRSA demo with `--sts-listen`.
fn print_dev_banners(
    config: &ServeConfig,
    issuer: &Issuer,
    key: &DevKey,
    local: SocketAddr,
    sts: Option<&irsa::ServeSts>,
) {
    print_dev_banner(config, issuer, key, local);
    if let Some((_, Some(demo), addr)) = sts {
        irsa::print_demo_banner(issuer, key, demo, *addr);
    }
}

/// Prints what `--dev` serves and how to try it. Stdout may be closed (`issuerd serve --dev |
/// true`): that is logged, never fatal.
fn print_dev_banner(config: &ServeConfig, issuer: &Issuer, key: &DevKey, local: SocketAddr) {
    let tls = config.tls.is_some();
    let (scheme, k) = if tls { ("https", "k") } else { ("http", "") };
    let printed = writeln!(
        std::io::stdout().lock(),
        "issuerd --dev: NOT FOR PRODUCTION (ephemeral key{})\n\
         \n  issuer:       {}\n  signing key:  {} (private, deleted on exit)\n  listening on: {local}\n\
         \ntry:\n  curl -s{k} {scheme}://{local}{}\n  curl -s{k} {scheme}://{local}{}\n  curl -s{k} {scheme}://{local}/statusz\n",
        if tls { "" } else { ", plain http" },
        issuer.url(),
        key.private_key().display(),
        issuer.discovery_path(),
        issuer.jwks_path(),
    );
    if let Err(error) = printed {
        warn!(%error, "cannot print the --dev banner to stdout");
    }
}
