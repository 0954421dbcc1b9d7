//! `serve`, validated: one function per section of the file (and group of flags).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{FileConfig, LimitsSection, ServerSection, TimeoutsSection, TlsSection};
use super::publication::{IssuerSetting, sources};
use super::workers::Workers;
use super::{
    AcmeConfig, ConfigError, MAX_DURATION, absolute, acme, duration, mirror, nonzero_duration,
    relative_to_file,
};
use crate::apiserver::settings::ApiServerSettings;
use crate::bucket::MirrorConfig;
use crate::cli::ServeArgs;
use crate::issuer::Issuer;
use crate::server::limits::{DEFAULT_H2_HANDSHAKE, Timeouts};
use crate::tls::CertificateFiles;

/// Default `--listen`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default `--listen` with `--dev`.
pub const DEV_LISTEN: &str = "127.0.0.1:8080";
/// Default debounce.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// Default poll interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Default shutdown grace period.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default listen backlog (the kernel caps it at `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: u32 = 1024;

/// `serve`, validated. Nothing here has been carried out: with `--dev` the app generates the key
/// (`dev`), binds `listen` and names the issuer after the bound address ([`IssuerSetting`]).
#[derive(Debug)]
pub struct ServeConfig {
    /// What to publish, or how to name it once the socket is bound.
    pub issuer: IssuerSetting,
    /// Key files and directories (absolute).
    pub key_files: Vec<PathBuf>,
    /// `--dev`: serve an ephemeral key generated at start (and the STS demo with `sts`).
    pub dev: bool,
    /// Listen address (`[server]`).
    pub listen: Listen,
    /// Log every request (`[server]`).
    pub access_log: bool,
    /// How connections are run: a worker thread per core, or the shared runtime (`[server]`).
    pub workers: Workers,
    /// Per-connection deadlines (`[timeouts]`).
    pub timeouts: Timeouts,
    /// Time an HTTP/2 client has to send its preface and SETTINGS (`[timeouts]`).
    pub h2_handshake: Duration,
    /// Most connections served at once; `None`: sized from the open-files limit at start
    /// (`[limits]`).
    pub max_connections: Option<usize>,
    /// Listen backlog (`[limits]`).
    pub backlog: u32,
    /// How key and certificate files are followed (`[watch]`).
    pub watch: WatchSettings,
    /// What SIGTERM does (`[shutdown]`).
    pub shutdown: ShutdownSettings,
    /// `--tls-cert` and `--tls-key`: serve HTTPS with this pair (`[tls]`).
    pub tls: Option<CertificateFiles>,
    /// `--acme-domain` and its settings: the certificate obtained with ACME (`[acme]`).
    pub acme: Option<AcmeConfig>,
    /// `--mirror` and its settings (`[mirror]`).
    pub mirror: Option<MirrorConfig>,
    /// `--mirror-required`: not ready while the bucket is behind (`[mirror]`).
    pub mirror_required: bool,
    /// The STS beside the issuer (`[sts]`), off when `None`.
    pub sts: Option<StsSettings>,
    /// The admin listener (`/metrics`, `/statusz`; `[admin]`), off when `None`.
    pub admin_listen: Option<SocketAddr>,
    /// `--from-kube-apiserver` and its settings (`[kube]`): the API server as a key source,
    /// off when `None`.
    pub apiserver: Option<ApiServerSettings>,
}

/// A listen address as given: `IP:PORT`, or `HOST:PORT`, resolved when the app binds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A host name and port.
    Host(String),
}

impl Listen {
    /// The address to bind: `IP:PORT` as given, `HOST:PORT` resolved now (the first address
    /// wins).
    pub fn resolve(&self) -> Result<SocketAddr, ConfigError> {
        let host = match self {
            Self::Addr(addr) => return Ok(*addr),
            Self::Host(host) => host,
        };
        let invalid = |reason: String| ConfigError::Invalid {
            key: "listen",
            reason: format!("{host:?} {reason}"),
        };
        match host.to_socket_addrs() {
            Ok(mut addrs) => addrs.next().ok_or_else(|| {
                invalid("resolves to no address; give an IP address and port".into())
            }),
            Err(e) => Err(invalid(format!(
                "is not an IP address and port (e.g. 0.0.0.0:8080), and does not resolve as a \
                 host and port: {e}"
            ))),
        }
    }

    fn parse(text: &str) -> Result<Self, ConfigError> {
        if let Ok(addr) = text.parse() {
            return Ok(Self::Addr(addr));
        }
        match text.rsplit_once(':') {
            Some((host, port))
                if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
            {
                Ok(Self::Host(text.to_owned()))
            }
            _ => Err(ConfigError::Invalid {
                key: "listen",
                reason: format!(
                    "{text:?} is not an IP address and port (e.g. 0.0.0.0:8080), nor a host and \
                     port"
                ),
            }),
        }
    }
}

impl Listen {
    /// The address, when it is one already (not a host name).
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Addr(addr) => Some(*addr),
            Self::Host(_) => None,
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Addr(addr) => addr.fmt(f),
            Self::Host(host) => f.write_str(host),
        }
    }
}

/// `[watch]`: how key and certificate files are followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchSettings {
    /// Quiet time after a change before reloading.
    pub debounce: Duration,
    /// Re-read this often even without change events.
    pub poll_interval: Duration,
}

/// `[shutdown]`: what SIGTERM does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownSettings {
    /// How long in-flight requests may take to finish.
    pub grace: Duration,
    /// How long to keep serving with /readyz 503 before draining.
    pub drain_delay: Duration,
}

/// `[sts]`: the local STS beside the issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsSettings {
    /// Its address.
    pub listen: SocketAddr,
    /// The roles file; `None` with `cluster_spec`, or with `--dev`, which generates a demo
    /// role.
    pub roles: Option<PathBuf>,
    /// The IAM map whose roles the STS gets (as `aws apply` makes them), and their account (12
    /// digits, checked).
    pub cluster_spec: Option<(PathBuf, String)>,
    /// CAs trusted besides the public roots when the STS fetches an issuer's documents.
    pub ca_files: Vec<PathBuf>,
}

pub(super) fn serve(
    args: ServeArgs,
    file: FileConfig,
    file_dir: Option<&Path>,
) -> Result<ServeConfig, ConfigError> {
    let dev = args.dev;
    let (watch, shutdown) = (watch(&args, &file)?, shutdown(&args, &file)?);
    let tls = tls_files(args.tls_cert, args.tls_key, &file.tls, file_dir)?;
    let acme = acme::acme(args.acme, &file.acme, file_dir)?;
    if tls.is_some() && acme.is_some() {
        return Err(ConfigError::Invalid {
            key: "acme_domain",
            reason: "cannot be combined with --tls-cert/--tls-key: the certificate comes either \
                     from files or from ACME"
                .into(),
        });
    }
    let apiserver = super::kube::kube(args.kube, &file.kube, file_dir)?;
    let (issuer, key_files) = sources(
        args.publish,
        &file,
        file_dir,
        dev.then_some(tls.is_some()),
        apiserver.is_some(),
    )?;
    let allow_issuer_port = args.allow_issuer_port.or(file.tls.allow_issuer_port);
    // `--dev` is local only: no AWS relying party will ever see its issuer.
    if let Some(publication) = issuer.fixed()
        && (tls.is_some() || acme.is_some())
        && !dev
        && !allow_issuer_port.unwrap_or(false)
    {
        refuse_issuer_port(&publication.issuer)?;
    }
    let mirror = mirror::mirror(args.mirror, &file.mirror)?;
    let mirror_required = args.mirror_required.or(file.mirror.required);
    if mirror_required == Some(true) && mirror.is_none() {
        return Err(ConfigError::Invalid {
            key: "mirror_required",
            reason: "needs --mirror".into(),
        });
    }
    let (timeouts, h2_handshake) = timeouts(&args.timeouts, &file.timeouts)?;
    let (max_connections, backlog) = limits(&args.limits, &file.limits)?;
    let listen = listen(args.listen, &file.server, dev)?;
    let admin_listen = args.admin_listen.or(file.admin.listen);
    let sts = sts(
        args.sts_listen,
        args.sts_roles,
        (args.sts_cluster_spec, args.sts_account_id),
        args.ca.ca_files,
        &file,
        file_dir,
        dev,
    )?;
    refuse_clashes(&[
        ("listen", listen.addr()),
        ("admin_listen", admin_listen),
        ("sts_listen", sts.as_ref().map(|sts| sts.listen)),
        (
            "acme_http_listen",
            acme.as_ref().and_then(|acme| acme.http_listen),
        ),
    ])?;
    let workers = match (&args.workers, &file.server.workers) {
        (Some(given), _) => given.clone(),
        (None, Some(value)) => value.text(),
        (None, None) => "auto".to_owned(),
    };
    let workers: Workers = workers.parse().map_err(|reason| ConfigError::Invalid {
        key: "workers",
        reason,
    })?;
    Ok(ServeConfig {
        issuer,
        key_files,
        dev,
        listen,
        access_log: args.access_log.or(file.server.access_log).unwrap_or(false),
        workers,
        timeouts,
        h2_handshake,
        max_connections,
        backlog,
        watch,
        shutdown,
        tls,
        acme,
        mirror,
        mirror_required: mirror_required.unwrap_or(false),
        sts,
        admin_listen,
        apiserver,
    })
}

/// `[watch]`: a debounce (zero reloads at once) and a poll interval above zero.
fn watch(args: &ServeArgs, file: &FileConfig) -> Result<WatchSettings, ConfigError> {
    Ok(WatchSettings {
        debounce: duration(
            "debounce",
            args.debounce.or(file.watch.debounce),
            DEFAULT_DEBOUNCE,
            MAX_DURATION,
        )?,
        poll_interval: nonzero_duration(
            "poll_interval",
            args.poll_interval.or(file.watch.poll_interval),
            DEFAULT_POLL_INTERVAL,
        )?,
    })
}

/// `[shutdown]`: the grace period and the drain delay (none by default).
fn shutdown(args: &ServeArgs, file: &FileConfig) -> Result<ShutdownSettings, ConfigError> {
    Ok(ShutdownSettings {
        grace: duration(
            "shutdown_grace",
            args.shutdown_grace.or(file.shutdown.grace),
            DEFAULT_SHUTDOWN_GRACE,
            MAX_DURATION,
        )?,
        drain_delay: duration(
            "drain_delay",
            args.drain_delay.or(file.shutdown.drain_delay),
            Duration::ZERO,
            MAX_DURATION,
        )?,
    })
}

/// Two listeners cannot share a port (the same address, or one of them on all interfaces);
/// port 0 never clashes.
fn refuse_clashes(listeners: &[(&'static str, Option<SocketAddr>)]) -> Result<(), ConfigError> {
    let set: Vec<_> = listeners
        .iter()
        .filter_map(|(key, addr)| addr.map(|addr| (*key, addr)))
        .filter(|(_, addr)| addr.port() != 0)
        .collect();
    for (i, (key, addr)) in set.iter().enumerate() {
        for (other_key, other) in &set[..i] {
            let overlap = addr.ip() == other.ip()
                || addr.ip().is_unspecified()
                || other.ip().is_unspecified();
            if addr.port() == other.port() && overlap {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!(
                        "{addr} clashes with {other_key} {other}: each listener needs its own \
                         port"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// `[server] listen`: flags and env, the file, then the default (loopback with `--dev`).
fn listen(flag: Option<String>, file: &ServerSection, dev: bool) -> Result<Listen, ConfigError> {
    match flag.or(file.listen.clone()) {
        Some(text) => Listen::parse(&text),
        None if dev => Ok(Listen::Addr(DEV_LISTEN.parse().expect("valid default"))),
        None => Ok(Listen::Addr(DEFAULT_LISTEN.parse().expect("valid default"))),
    }
}

/// `[timeouts]`: each one above zero; the engines' own defaults otherwise.
fn timeouts(
    args: &crate::cli::TimeoutArgs,
    file: &TimeoutsSection,
) -> Result<(Timeouts, Duration), ConfigError> {
    let defaults = Timeouts::DEFAULT;
    let timeouts = Timeouts {
        header_read: nonzero_duration(
            "header_timeout",
            args.header_timeout.or(file.header),
            defaults.header_read,
        )?,
        keep_alive: nonzero_duration(
            "keep_alive_timeout",
            args.keep_alive_timeout.or(file.keep_alive),
            defaults.keep_alive,
        )?,
        write: nonzero_duration(
            "write_timeout",
            args.write_timeout.or(file.write),
            defaults.write,
        )?,
        // Zero closes at once, without lingering.
        linger: duration(
            "linger_timeout",
            args.linger_timeout.or(file.linger),
            defaults.linger,
            MAX_DURATION,
        )?,
    };
    let h2_handshake = nonzero_duration(
        "h2_handshake_timeout",
        args.h2_handshake_timeout.or(file.h2_handshake),
        DEFAULT_H2_HANDSHAKE,
    )?;
    Ok((timeouts, h2_handshake))
}

/// `[limits]`: the connection cap (`None`: from the open-files limit) and the backlog.
fn limits(
    args: &crate::cli::LimitArgs,
    file: &LimitsSection,
) -> Result<(Option<usize>, u32), ConfigError> {
    let max_connections = args.max_connections.or(file.max_connections);
    if max_connections == Some(0) {
        return Err(ConfigError::Invalid {
            key: "max_connections",
            reason: "must be greater than zero".into(),
        });
    }
    let backlog = args.backlog.or(file.backlog).unwrap_or(DEFAULT_BACKLOG);
    if backlog == 0 || backlog > i32::MAX as u32 {
        return Err(ConfigError::Invalid {
            key: "backlog",
            reason: format!("{backlog} is not between 1 and {}", i32::MAX),
        });
    }
    Ok((max_connections, backlog))
}

/// `[sts]`: a listener needs a roles file, except with `--dev` (a demo role is generated).
fn sts(
    listen: Option<SocketAddr>,
    roles: Option<PathBuf>,
    (cluster_spec, account_id): (Option<PathBuf>, Option<String>),
    ca_files: Vec<PathBuf>,
    file: &FileConfig,
    file_dir: Option<&Path>,
    dev: bool,
) -> Result<Option<StsSettings>, ConfigError> {
    let listen = listen.or(file.sts.listen);
    let relative = |p: &PathBuf| relative_to_file(file_dir, p.clone());
    let roles = roles.or_else(|| file.sts.roles.as_ref().map(relative));
    let cluster_spec = cluster_spec.or_else(|| file.sts.cluster_spec.as_ref().map(relative));
    let account_id = account_id.or_else(|| file.sts.account_id.clone());
    let ca_files = match (ca_files.is_empty(), &file.sts.ca_files) {
        (true, Some(files)) => files.iter().map(relative).collect(),
        _ => ca_files,
    };
    let Some(listen) = listen else {
        let stray = [
            ("sts_roles", roles.is_some()),
            ("sts_cluster_spec", cluster_spec.is_some()),
            ("sts_account_id", account_id.is_some()),
            ("ca_file", !ca_files.is_empty()),
        ];
        return match stray.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(ConfigError::Invalid {
                key,
                reason: "is set but sts_listen is not; set --sts-listen ADDR to start the STS"
                    .into(),
            }),
            None => Ok(None),
        };
    };
    let cluster_spec = match (cluster_spec, account_id) {
        (Some(_), _) if roles.is_some() => {
            return Err(ConfigError::Invalid {
                key: "sts_cluster_spec",
                reason: "is set with sts_roles; give one of them".into(),
            });
        }
        (Some(spec), Some(account)) => {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ConfigError::Invalid {
                    key: "sts_account_id",
                    reason: format!("{account:?} is not a 12-digit AWS account ID"),
                });
            }
            Some((spec, account))
        }
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                what: "the account of the STS roles of sts_cluster_spec",
                how: "--sts-account-id ID, ISSUERD_STS_ACCOUNT_ID or `account_id` under `[sts]`",
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Invalid {
                key: "sts_account_id",
                reason: "is set but sts_cluster_spec is not".into(),
            });
        }
        (None, None) => None,
    };
    if roles.is_none() && cluster_spec.is_none() && !dev {
        return Err(ConfigError::Missing {
            what: "an STS roles file",
            how: "--sts-roles FILE, ISSUERD_STS_ROLES or `roles` under `[sts]` in the config \
                  file (or --sts-cluster-spec; --dev generates one)",
        });
    }
    Ok(Some(StsSettings {
        listen,
        roles,
        cluster_spec,
        ca_files,
    }))
}

/// `--tls-cert` and `--tls-key` (flags, env, or `[tls]` relative to the file), both or neither.
fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    file: &TlsSection,
    file_dir: Option<&Path>,
) -> Result<Option<CertificateFiles>, ConfigError> {
    let from_file = |path: &Option<PathBuf>| path.clone().map(|p| relative_to_file(file_dir, p));
    let cert = cert.or_else(|| from_file(&file.cert));
    let key = key.or_else(|| from_file(&file.key));
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(CertificateFiles {
            cert: absolute("tls_cert", cert)?,
            key: absolute("tls_key", key)?,
        })),
        (Some(_), None) => Err(ConfigError::Invalid {
            key: "tls_cert",
            reason: "is set but tls_key is not; HTTPS needs both --tls-cert and --tls-key".into(),
        }),
        (None, Some(_)) => Err(ConfigError::Invalid {
            key: "tls_key",
            reason: "is set but tls_cert is not; HTTPS needs both --tls-cert and --tls-key".into(),
        }),
    }
}

/// AWS IAM takes an OIDC provider URL as `https://HOST[/PATH]`: with a port in the issuer, no IAM
/// OIDC provider can match the tokens' `iss`, so STS never trusts them.
fn refuse_issuer_port(issuer: &Issuer) -> Result<(), ConfigError> {
    let Ok(url) = url::Url::parse(issuer.url()) else {
        return Ok(());
    };
    match url.port() {
        Some(port) if url.scheme() == "https" => Err(ConfigError::Invalid {
            key: "issuer",
            reason: format!(
                "{} names port {port}; AWS IAM registers an OIDC provider as https://HOST[/PATH] \
                 with no port, so AWS STS could never trust tokens with this issuer. Serve it on \
                 443 (a load balancer or port forward in front is fine), or pass \
                 --allow-issuer-port (ISSUERD_ALLOW_ISSUER_PORT) when no AWS relying party needs it",
                issuer.url()
            ),
        }),
        _ => Ok(()),
    }
}
