//! Wiring: load keys, build the store, spawn the watcher and the server, wait for a signal, drain.

mod acme_cmd;
mod irsa_cmd;

use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::bucket::Layout;
use crate::config::{Command, Config, PublishConfig, RenderConfig, ServeConfig};
use crate::dev::DevKey;
use crate::issuer::Issuer;
use crate::keys::KeySet;
use crate::log;
use crate::mirror::{self, Mirror, MirrorStatus, PublicCheck, S3Sink};
use crate::server::{self, Attached, IssuerService, Limits, Server, Timeouts, TlsSettings};
use crate::shutdown::{self, Readiness};
use crate::store::{Snapshot, Store};
use crate::tls::{self, CertificateFiles, Certificates, CertifiedPair};
use crate::watcher::{CertificateReload, WatchConfig, Watcher};

/// Runs the configured command to completion.
pub async fn run(config: Config) -> anyhow::Result<()> {
    match config.command {
        Command::Serve(mut serve) => {
            let signal = shutdown::os_signal().context("cannot install signal handlers")?;
            // As Go does: the soft open-files limit up to the hard one, so that the connection
            // cap (sized from it) is not needlessly low.
            match crate::listener::raise_fd_limit() {
                Ok((before, after)) if before != after => {
                    info!(from = before, to = after, "raised the open-files limit");
                }
                Ok(_) => {}
                Err(error) => warn!(%error, "cannot raise the open-files limit"),
            }
            let listener = match serve.bound.take() {
                Some(bound) => Ok(bound),
                None => crate::listener::bind(serve.listen, serve.backlog),
            }
            .and_then(TcpListener::from_std)
            .with_context(|| format!("cannot listen on {}", serve.listen))?;
            serve_on(listener, serve, async {
                let signal = signal.await;
                info!(signal, "shutting down");
            })
            .await
        }
        Command::Render(render) => write_documents(&render),
        Command::Mint(args) => irsa_cmd::mint(&args),
        Command::Verify(args) => irsa_cmd::verify(&args).await,
        Command::Sts(args) => irsa_cmd::sts(args).await,
        Command::Check(args) => irsa_cmd::check(&args).await,
        Command::TrustPolicy(args) => {
            print!(
                "{}",
                crate::irsa::trust_policy(
                    &args.issuer,
                    &args.account,
                    &args.service_accounts,
                    &args.audience
                )?
            );
            Ok(())
        }
        Command::PodEnv(args) => {
            let env = crate::irsa::PodEnv {
                role_arn: &args.role_arn,
                audience: &args.audience,
                region: args.region.as_deref(),
                expiration_seconds: args.expiration_seconds,
                container: &args.container,
            };
            print!("{}", env.to_yaml()?);
            Ok(())
        }
        Command::Publish(publish) => publish_once(&publish).await,
        Command::Probe(args) => Ok(crate::probe::probe(&args.url, args.timeout).await?),
        Command::Thumbprint(args) => {
            let report = tokio::task::spawn_blocking(move || {
                crate::thumbprint::thumbprint(&args.source, args.timeout)
                    .map(|report| (report, args.json))
            })
            .await
            .context("thumbprint task panicked")??;
            match report {
                (report, true) => println!("{}", serde_json::to_string_pretty(&report)?),
                (report, false) => print!("{report}"),
            }
            Ok(())
        }
    }
}

/// Serves on an already bound listener until `stop` completes (tests pass their own).
pub async fn serve_on(
    listener: TcpListener,
    config: ServeConfig,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let local = listener.local_addr().context("listener has no address")?;
    // A listener bound elsewhere (tests, `--dev` on port 0) gets the configured backlog too.
    if let Err(error) = crate::listener::set_backlog(&listener, config.backlog) {
        warn!(%error, backlog = config.backlog, "cannot set the listen backlog");
    }
    // A configuration that bound its own socket (--dev on port 0) names that socket's address
    // in the issuer; serving another one would publish a wrong issuer.
    anyhow::ensure!(
        config.bound.is_none(),
        "the configuration already bound {}; serve that listener",
        config.listen
    );
    for warning in config.publication.issuer.warnings() {
        warn!("{warning}");
    }

    // Watch first, then load: a change in between waits as an event instead of being missed.
    let watcher = Watcher::start(WatchConfig {
        sources: config.key_files.clone(),
        debounce: config.debounce,
        poll_interval: config.poll_interval,
    })?;
    let keys = KeySet::load(&config.key_files)?;
    let store = Store::new(config.publication.clone(), keys);
    let reader = store.reader();
    log_first_snapshot(&reader.snapshot());

    let readiness = Readiness::default();
    let (trigger, signal) = shutdown::channel();
    // Bound before anything is spawned: a bind error leaves nothing running.
    let admin_listener = match config.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (--admin-listen)"))?,
        ),
        None => None,
    };
    let (tls, certificates) = match &config.tls {
        Some(files) => {
            let (tls, certificates) = start_tls(&config, files, signal.clone())?;
            (Some(tls), Some(certificates))
        }
        None => (None, None),
    };
    // ACME (never with --tls-cert): the cached certificate at once, then orders and renewals.
    let (tls, certificates, acme) = match &config.acme {
        Some(acme_config) => {
            let started = acme_cmd::start(
                acme_config,
                &config.publication.issuer,
                config.shutdown_grace,
                signal.clone(),
            )
            .await?;
            let certificates = started.certificates.clone();
            (
                Some(Arc::clone(&started.tls)),
                Some(certificates),
                Some(started),
            )
        }
        None => (tls, certificates, None),
    };
    if let Some(certificates) = &certificates {
        tokio::spawn(certificates.clone().warn_before_expiry(signal.clone()));
    }
    // Before the server is spawned: on a roles file or bind error, what TLS and ACME started
    // stops with the shutdown trigger, dropped on return.
    let sts = irsa_cmd::start_sts_beside_serve(&config, signal.clone()).await?;
    let mut service =
        IssuerService::new(reader, readiness.clone()).with_access_log(config.access_log);
    if admin_listener.is_some() {
        service = service.with_admin_listener();
    }
    if let Some(certificates) = certificates {
        service = service.with_attached(Attached {
            name: "tls",
            status: Arc::new(move || certificates.to_json()),
            not_ready: Arc::new(|| None),
        });
    }
    if let Some(acme) = &acme {
        service = service.with_attached(acme.attached());
    }
    // The mirror is one more reader: serving never waits for it.
    let mirror = match &config.mirror {
        Some(mirror_config) => {
            let issuer = &config.publication.issuer;
            for warning in mirror_config.warnings(issuer) {
                warn!("{warning}");
            }
            let status = MirrorStatus::new(mirror_config.target.to_string());
            let sink = S3Sink::new(mirror_config)?;
            let task = Mirror::new(sink, mirror_config, issuer, status.clone())?;
            let required = config.mirror_required;
            service = service.with_attached(Attached {
                name: "mirror",
                status: Arc::new({
                    let status = status.clone();
                    move || status.get().to_json()
                }),
                not_ready: Arc::new(move || {
                    (required && !status.get().in_sync()).then_some("not ready: mirror behind\n")
                }),
            });
            info!(target = %mirror_config.target, "mirroring to bucket");
            Some(tokio::spawn(task.run(store.reader(), signal.clone())))
        }
        None => None,
    };
    let timeouts = Timeouts {
        header_read: config.header_timeout,
        keep_alive: config.keep_alive_timeout,
        write: config.write_timeout,
        linger: config.linger_timeout,
    };
    let limits = Limits {
        max_connections: config
            .max_connections
            .unwrap_or_else(crate::listener::default_max_connections),
        h2_handshake: config.h2_handshake_timeout,
    };
    info!(max_connections = limits.max_connections, "connection limit");
    let admin = admin_listener.map(|listener| {
        tokio::spawn(crate::server::admin::serve(
            listener,
            service.clone(),
            signal.clone(),
            config.shutdown_grace,
        ))
    });
    let server = Arc::new(Server::new(service, timeouts).with_limits(limits));
    let server = match tls {
        Some(tls) => {
            tokio::spawn(server.serve_tls(listener, tls, signal.clone(), config.shutdown_grace))
        }
        None => tokio::spawn(server.serve(listener, signal.clone(), config.shutdown_grace)),
    };
    let watch = tokio::spawn(watcher.run(store, signal));
    readiness.set_ready();
    info!(listen = %local, issuer = config.publication.issuer.url(), "ready");
    if let Some(key) = &config.dev_key {
        print_dev_banner(&config, key, local);
    }
    if let (Some((_, Some(demo), addr)), Some(key)) = (&sts, &config.dev_key) {
        print_irsa_banner(&config, key, demo, *addr);
    }

    stop.await;
    readiness.set_draining();
    // Load balancers see /readyz fail and move traffic away while it is still served.
    if !config.drain_delay.is_zero() {
        info!(
            delay_secs = config.drain_delay.as_secs_f64(),
            "not ready; serving on for the drain delay"
        );
        tokio::time::sleep(config.drain_delay).await;
    }
    trigger.trigger();
    server.await.context("server task panicked")?;
    watch.await.context("watcher task panicked")?;
    if let Some((task, _demo, _)) = sts {
        task.await.context("STS task panicked")?;
    }
    if let Some(mirror) = mirror {
        mirror.await.context("mirror task panicked")?;
    }
    if let Some(acme) = acme {
        acme.join().await?;
    }
    if let Some(admin) = admin {
        admin.await.context("admin listener task panicked")?;
    }
    info!("stopped");
    Ok(())
}

/// HTTPS from `--tls-cert`/`--tls-key`: loads the pair (a bad pair stops the start, naming the
/// file), checks the issuer's host against it, and starts reloading it on change.
fn start_tls(
    config: &ServeConfig,
    files: &CertificateFiles,
    signal: shutdown::Signal,
) -> anyhow::Result<(Arc<rustls::ServerConfig>, Certificates)> {
    // Watch first, then load, as for the signing keys.
    let watcher = Watcher::start(WatchConfig {
        sources: vec![files.cert.clone(), files.key.clone()],
        debounce: config.debounce,
        poll_interval: config.poll_interval,
    })?;
    let pair = files.load().context("cannot serve HTTPS")?;
    tls::log_loaded(&pair, "start");
    warn_unless_certificate_names_issuer(&config.publication.issuer, &pair);
    let certificates = Certificates::default();
    certificates.install(pair);
    let tls = server::server_config(&TlsSettings {
        certificates: certificates.clone(),
        acme: false,
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
            certificate_names = log::list(pair.names()),
            "the issuer's host is not among the certificate's names; relying parties will refuse the TLS connection"
        );
    }
}

fn log_first_snapshot(snapshot: &Snapshot) {
    for key in snapshot.keys.keys() {
        info!(kid = key.kid(), key = %key.describe(), alg = key.algorithm().name(), "loaded key");
    }
    info!(
        generation = snapshot.generation,
        kids = log::list(&snapshot.keys.kids().collect::<Vec<_>>()),
        discovery = %snapshot.discovery.path,
        jwks = %snapshot.jwks.path,
        "published key set"
    );
}

/// Prints what `--dev` serves and how to try it. Stdout may be closed (`issuerd serve --dev |
/// true`): that is logged, never fatal.
fn print_dev_banner(config: &ServeConfig, key: &DevKey, local: std::net::SocketAddr) {
    let issuer = &config.publication.issuer;
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

/// Prints the local IRSA demo of `--dev --sts-listen`: the role, the env an AWS SDK needs, and
/// how to mint other tokens. A closed stdout is logged, never fatal.
fn print_irsa_banner(
    config: &ServeConfig,
    key: &DevKey,
    demo: &crate::sts::dev::DevIrsa,
    sts: std::net::SocketAddr,
) {
    let printed = writeln!(
        std::io::stdout().lock(),
        "local IRSA: STS on http://{sts}\n  \
         role:         {} (trust policy from `issuerd trust-policy`, in {})\n  \
         token:        ServiceAccount {}, audience {}\n\n{}\ntry:\n  \
         python3 -c 'import boto3; print(boto3.client(\"sts\").get_caller_identity()[\"Arn\"])'\n\n\
         mint other tokens (another --subject, --audience, --not-before -2h) into the same file:\n  \
         issuerd mint --key {} --issuer {} --subject system:serviceaccount:default:demo --out \"$AWS_WEB_IDENTITY_TOKEN_FILE\"\n",
        crate::sts::dev::ROLE_ARN,
        demo.roles_file.display(),
        crate::sts::dev::SERVICE_ACCOUNT,
        crate::sts::dev::AUDIENCE,
        demo.env(sts),
        key.private_key().display(),
        config.publication.issuer.url(),
    );
    if let Err(error) = printed {
        warn!(%error, "cannot print the local IRSA banner to stdout");
    }
}

/// `render`: writes both documents under `out`, at the object keys a bucket would serve them from.
fn write_documents(config: &RenderConfig) -> anyhow::Result<()> {
    let keys = KeySet::load(&config.key_files)?;
    for warning in config.publication.issuer.warnings() {
        warn!("{warning}");
    }
    let snapshot = Snapshot::build(&config.publication, keys, 1);
    for document in [&snapshot.discovery, &snapshot.jwks] {
        let path = config.out.join(document.object_key());
        write_atomically(&path, &document.body)
            .with_context(|| format!("cannot write {}", path.display()))?;
        // The files are written either way; a closed stdout only loses this listing.
        if let Err(error) = writeln!(std::io::stdout().lock(), "{}", path.display()) {
            warn!(%error, path = %path.display(), "cannot print to stdout");
        }
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `publish`: one render, one sync (JWKS first, skip what is already there, read back), then the
/// anonymous read check. Any failure is a [`mirror::MirrorError`] in the chain.
async fn publish_once(config: &PublishConfig) -> anyhow::Result<()> {
    let keys = KeySet::load(&config.key_files)?;
    let issuer = &config.publication.issuer;
    for warning in issuer
        .warnings()
        .iter()
        .cloned()
        .chain(config.mirror.warnings(issuer))
    {
        warn!("{warning}");
    }
    let snapshot = Snapshot::build(&config.publication, keys, 1);
    let (layout, _) = Layout::new(issuer, &config.mirror.target.prefix);
    let sink = S3Sink::new(&config.mirror)?;
    let check = PublicCheck::new(issuer, config.mirror.public_url.as_ref())?;
    let outcome = mirror::sync(&sink, &layout, &snapshot, config.mirror.acl, true)
        .await
        .with_context(|| format!("cannot publish to {}", config.mirror.target))?;
    let bucket = &config.mirror.target.bucket;
    for key in &outcome.written {
        println!("written   s3://{bucket}/{key}");
    }
    for key in &outcome.unchanged {
        println!("unchanged s3://{bucket}/{key}");
    }
    check
        .check(&snapshot)
        .await
        .context("the bucket holds the documents, but relying parties cannot read them")?;
    for url in check.urls() {
        println!("readable  {url}");
    }
    Ok(())
}
