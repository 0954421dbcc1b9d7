//! Raw inputs (flags, env, TOML file) -> one validated [`Config`], the only config the app sees.
//!
//! Precedence is flags > `ISSUERD_*` env (both resolved by clap) > config file > defaults.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory as _, Parser as _};
use serde::Deserialize;

use crate::bucket::{MirrorAcl, MirrorConfig, S3Target};
use crate::cli::{
    CheckArgs, Cli, Command as CliCommand, LogFormat, MintArgs, MirrorArgs, PodEnvArgs, ProbeArgs,
    PublishArgs, PublishCommandArgs, RenderArgs, ServeArgs, StsArgs, ThumbprintArgs,
    TrustPolicyArgs, VerifyArgs,
};
use crate::dev::{DevKey, DevKeyError};
use crate::issuer::{DiscoveryProfile, Issuer, IssuerError, Publication};
use crate::tls::CertificateFiles;

/// Default `--listen`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Default `--listen` with `--dev`.
pub const DEV_LISTEN: &str = "127.0.0.1:8080";
/// Default `Cache-Control: max-age`, as kube-apiserver.
pub const DEFAULT_MAX_AGE_SECS: u32 = 3600;
/// Default debounce.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// Default poll interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(60);
/// Default shutdown grace period.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Default time to finish a request head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default idle keep-alive time (nginx's default).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// Default time to write a response.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default lingering-close time.
pub const DEFAULT_LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// Default listen backlog (the kernel caps it at `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: u32 = 1024;
/// Default time an HTTP/2 client has to send its preface and SETTINGS.
pub const DEFAULT_H2_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The boolean env variable for `--allow-insecure-issuer`.
pub const ENV_ALLOW_INSECURE_ISSUER: &str = "ISSUERD_ALLOW_INSECURE_ISSUER";
/// The boolean env variable for `--allow-issuer-port`.
pub const ENV_ALLOW_ISSUER_PORT: &str = "ISSUERD_ALLOW_ISSUER_PORT";
/// The boolean env variable for `--mirror-required`.
pub const ENV_MIRROR_REQUIRED: &str = "ISSUERD_MIRROR_REQUIRED";
/// The boolean env variable for `--acme-accept-tos`.
pub const ENV_ACME_ACCEPT_TOS: &str = "ISSUERD_ACME_ACCEPT_TOS";
/// Default `--acme-directory`: Let's Encrypt production.
pub const DEFAULT_ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Default `--acme-renew-before`: 30 days, Let's Encrypt's advice for 90-day certificates.
pub const DEFAULT_ACME_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest `--acme-renew-before`.
pub const MAX_ACME_RENEW_BEFORE: Duration = Duration::from_secs(3650 * 24 * 3600);
/// The boolean env variable for `--access-log`.
pub const ENV_ACCESS_LOG: &str = "ISSUERD_ACCESS_LOG";

/// The TOML file, as written. Every key is optional; see `config/issuerd.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    key_files: Option<Vec<PathBuf>>,
    discovery_profile: Option<DiscoveryProfile>,
    allow_insecure_issuer: Option<bool>,
    max_age: Option<u32>,
    listen: Option<String>,
    debounce: Option<String>,
    poll_interval: Option<String>,
    shutdown_grace: Option<String>,
    header_timeout: Option<String>,
    keep_alive_timeout: Option<String>,
    write_timeout: Option<String>,
    linger_timeout: Option<String>,
    max_connections: Option<usize>,
    backlog: Option<u32>,
    h2_handshake_timeout: Option<String>,
    drain_delay: Option<String>,
    log_format: Option<LogFormat>,
    sts_listen: Option<SocketAddr>,
    sts_roles: Option<PathBuf>,
    mirror: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    public_url: Option<String>,
    mirror_acl: Option<MirrorAcl>,
    mirror_required: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    allow_issuer_port: Option<bool>,
    acme_domains: Option<Vec<String>>,
    acme_email: Option<String>,
    acme_accept_tos: Option<bool>,
    acme_directory: Option<String>,
    acme_directory_ca: Option<PathBuf>,
    acme_cache: Option<PathBuf>,
    acme_renew_before: Option<String>,
    acme_http_listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    access_log: Option<bool>,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Log format.
    pub log_format: LogFormat,
    /// What to run.
    pub command: Command,
}

/// A validated subcommand.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one Config per process; boxing would only add an indirection"
)]
pub enum Command {
    /// `serve`.
    Serve(ServeConfig),
    /// `render`.
    Render(RenderConfig),
    /// `mint` (self-contained: not read from the config file).
    Mint(MintArgs),
    /// `verify` (self-contained).
    Verify(VerifyArgs),
    /// `sts` (self-contained).
    Sts(StsArgs),
    /// `trust-policy` (self-contained).
    TrustPolicy(TrustPolicyArgs),
    /// `pod-env` (self-contained).
    PodEnv(PodEnvArgs),
    /// `check` (self-contained).
    Check(CheckArgs),
    /// `publish`.
    Publish(PublishConfig),
    /// `probe` (self-contained).
    Probe(ProbeArgs),
    /// `thumbprint` (self-contained).
    Thumbprint(ThumbprintArgs),
}

/// `serve`, validated. With `--dev` it is complete too: the key is generated and listed in
/// `key_files`, and the issuer names the address actually listened on.
#[derive(Debug)]
pub struct ServeConfig {
    /// What to publish.
    pub publication: Publication,
    /// Key files and directories.
    pub key_files: Vec<PathBuf>,
    /// Listen address.
    pub listen: SocketAddr,
    /// The socket, when resolving the configuration had to bind it already (`--dev` on port 0,
    /// whose issuer names the port the kernel chose).
    pub bound: Option<std::net::TcpListener>,
    /// The ephemeral key of `--dev` (deleted when dropped).
    pub dev_key: Option<DevKey>,
    /// Watch debounce.
    pub debounce: Duration,
    /// Poll interval.
    pub poll_interval: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// Time to finish a request head once started.
    pub header_timeout: Duration,
    /// Idle keep-alive time.
    pub keep_alive_timeout: Duration,
    /// Time to write a response.
    pub write_timeout: Duration,
    /// Lingering-close time.
    pub linger_timeout: Duration,
    /// Most connections served at once (`None`: sized from the open-files limit at start).
    pub max_connections: Option<usize>,
    /// Listen backlog.
    pub backlog: u32,
    /// Time an HTTP/2 client has to send its preface and SETTINGS.
    pub h2_handshake_timeout: Duration,
    /// Time to keep serving after SIGTERM with /readyz 503, before draining.
    pub drain_delay: Duration,
    /// Also answer STS AssumeRoleWithWebIdentity on this address.
    pub sts_listen: Option<SocketAddr>,
    /// The STS roles file; with `--dev` and no file, a demo role is generated.
    pub sts_roles: Option<PathBuf>,
    /// `--mirror` and its settings.
    pub mirror: Option<MirrorConfig>,
    /// `--mirror-required`: not ready while the bucket is behind.
    pub mirror_required: bool,
    /// `--tls-cert` and `--tls-key`: serve HTTPS with this pair.
    pub tls: Option<CertificateFiles>,
    /// The admin listener (`/metrics`, `/statusz`), off when `None`.
    pub admin_listen: Option<SocketAddr>,
    /// Log every request.
    pub access_log: bool,
    /// `--acme-domain` and its settings: the certificate obtained with ACME.
    pub acme: Option<AcmeConfig>,
}

/// ACME, validated (`serve --acme-domain ...`).
#[derive(Clone, Debug)]
pub struct AcmeConfig {
    /// The domains ordered (lowercase DNS names, no wildcard).
    pub domains: Vec<String>,
    /// The account's contact address.
    pub email: Option<String>,
    /// The directory URL (https).
    pub directory: String,
    /// A CA to trust for the directory.
    pub directory_ca: Option<PathBuf>,
    /// The cache directory.
    pub cache: PathBuf,
    /// Renew this long before expiry.
    pub renew_before: Duration,
    /// Answer http-01 on this plain listener instead of tls-alpn-01.
    pub http_listen: Option<SocketAddr>,
}

/// `render`, validated.
#[derive(Debug)]
pub struct RenderConfig {
    /// What to publish.
    pub publication: Publication,
    /// Key files and directories.
    pub key_files: Vec<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
}

impl Config {
    /// Parses process arguments and env, then the config file. `--help` and `--version` exit
    /// through clap.
    pub fn load() -> Result<Self, ConfigError> {
        let args: Vec<OsString> = std::env::args_os().collect();
        match Cli::try_parse_from(&args) {
            Ok(cli) => Self::from_cli(cli),
            // --help, --version, and the help `issuerd` alone prints, as clap prints them.
            Err(error)
                if !error.use_stderr()
                    || error.kind()
                        == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
            {
                error.exit()
            }
            Err(error) => Err(usage_error(&error, &args)),
        }
    }

    /// Parses the given arguments (the first is the program name). The seam tests use.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        Self::from_cli(Cli::try_parse_from(&args).map_err(|e| usage_error(&e, &args))?)
    }

    /// Merges parsed flags with the config file they name.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let (file, file_dir) = match &cli.config {
            Some(path) => (read_file(path)?, path.parent().map(Path::to_path_buf)),
            None => (FileConfig::default(), None),
        };
        let log_format = cli.log_format.or(file.log_format).unwrap_or_default();
        let command = match cli.command {
            CliCommand::Serve(args) => Command::Serve(serve(args, file, file_dir.as_deref())?),
            CliCommand::Render(args) => Command::Render(render(args, file, file_dir.as_deref())?),
            CliCommand::Mint(args) => Command::Mint(args),
            CliCommand::Verify(args) => Command::Verify(args),
            CliCommand::Sts(args) => Command::Sts(args),
            CliCommand::TrustPolicy(args) => Command::TrustPolicy(args),
            CliCommand::PodEnv(args) => Command::PodEnv(args),
            CliCommand::Check(args) => Command::Check(args),
            CliCommand::Publish(args) => {
                Command::Publish(publish(args, file, file_dir.as_deref())?)
            }
            CliCommand::Probe(args) => Command::Probe(args),
            CliCommand::Thumbprint(args) => Command::Thumbprint(args),
        };
        Ok(Self {
            log_format,
            command,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        // One line: `line N: <what>` instead of toml's multi-line snippet.
        let line = e
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1);
        ConfigError::ParseFile {
            path: path.to_owned(),
            message: match line {
                Some(line) => format!("line {line}: {}", e.message().trim()),
                None => e.message().trim().to_owned(),
            },
        }
    })
}

fn serve(
    args: ServeArgs,
    mut file: FileConfig,
    file_dir: Option<&Path>,
) -> Result<ServeConfig, ConfigError> {
    let dev = args.dev;
    let listen = match args.listen.or(file.listen.clone()) {
        Some(listen) => resolve_listen(&listen)?,
        None if dev => DEV_LISTEN.parse().expect("valid default"),
        None => DEFAULT_LISTEN.parse().expect("valid default"),
    };
    let debounce = duration(args.debounce, "debounce", &file.debounce, DEFAULT_DEBOUNCE)?;
    let poll_interval = duration(
        args.poll_interval,
        "poll_interval",
        &file.poll_interval,
        DEFAULT_POLL_INTERVAL,
    )?;
    if poll_interval.is_zero() {
        return Err(ConfigError::Invalid {
            key: "poll_interval",
            reason: "must be greater than zero".into(),
        });
    }
    let shutdown_grace = duration(
        args.shutdown_grace,
        "shutdown_grace",
        &file.shutdown_grace,
        DEFAULT_SHUTDOWN_GRACE,
    )?;
    let header_timeout = duration(
        args.header_timeout,
        "header_timeout",
        &file.header_timeout,
        DEFAULT_HEADER_TIMEOUT,
    )?;
    let keep_alive_timeout = duration(
        args.keep_alive_timeout,
        "keep_alive_timeout",
        &file.keep_alive_timeout,
        DEFAULT_KEEP_ALIVE_TIMEOUT,
    )?;
    let write_timeout = duration(
        args.write_timeout,
        "write_timeout",
        &file.write_timeout,
        DEFAULT_WRITE_TIMEOUT,
    )?;
    let linger_timeout = duration(
        args.linger_timeout,
        "linger_timeout",
        &file.linger_timeout,
        DEFAULT_LINGER_TIMEOUT,
    )?;
    let h2_handshake_timeout = duration(
        args.h2_handshake_timeout,
        "h2_handshake_timeout",
        &file.h2_handshake_timeout,
        DEFAULT_H2_HANDSHAKE_TIMEOUT,
    )?;
    let drain_delay = duration(
        args.drain_delay,
        "drain_delay",
        &file.drain_delay,
        Duration::ZERO,
    )?;
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
    for (key, value) in [
        ("h2_handshake_timeout", h2_handshake_timeout),
        ("header_timeout", header_timeout),
        ("keep_alive_timeout", keep_alive_timeout),
        ("write_timeout", write_timeout),
    ] {
        if value.is_zero() {
            return Err(ConfigError::Invalid {
                key,
                reason: "must be greater than zero".into(),
            });
        }
    }

    let sts_listen = args.sts_listen.or(file.sts_listen);
    let sts_roles = args.sts_roles.or_else(|| {
        file.sts_roles
            .clone()
            .map(|p| relative_to_file(file_dir, p))
    });
    if sts_roles.is_some() && sts_listen.is_none() {
        return Err(ConfigError::Invalid {
            key: "sts_roles",
            reason: "is set but sts_listen is not; set --sts-listen ADDR to start the STS".into(),
        });
    }
    if sts_listen.is_some() && sts_roles.is_none() && !dev {
        return Err(ConfigError::Missing {
            what: "an STS roles file",
            how: "--sts-roles FILE, ISSUERD_STS_ROLES or `sts_roles` in the config file (--dev generates one)",
        });
    }
    let mirror = mirror(args.mirror, &mut file)?;
    let acme = acme(args.acme, &mut file, file_dir)?;
    let mirror_required = args.mirror_required
        || env_bool(ENV_MIRROR_REQUIRED)?
            .or(file.mirror_required)
            .unwrap_or(false);
    if mirror_required && mirror.is_none() {
        return Err(ConfigError::Invalid {
            key: "mirror_required",
            reason: "needs --mirror".into(),
        });
    }

    let admin_listen = args.admin_listen.or(file.admin_listen);
    let access_log = args.access_log
        || env_bool(ENV_ACCESS_LOG)?
            .or(file.access_log)
            .unwrap_or(false);

    // `--dev`: an ephemeral key, and unless an issuer is given, an http issuer naming the
    // address served. On port 0 that address is only known once bound, so bind here.
    let mut bound = None;
    let mut listen = listen;
    let tls = tls_files(args.tls_cert, args.tls_key, &file, file_dir)?;
    let dev_issuer = if dev && args.publish.issuer.is_none() && file.issuer.is_none() {
        if listen.port() == 0 {
            let listener = bind(listen, backlog)?;
            listen = listener.local_addr().map_err(|e| ConfigError::Invalid {
                key: "listen",
                reason: format!("{listen}: {e}"),
            })?;
            bound = Some(listener);
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        Some(format!("{scheme}://{listen}"))
    } else {
        None
    };
    let allow_issuer_port = args.allow_issuer_port
        || env_bool(ENV_ALLOW_ISSUER_PORT)?
            .or(file.allow_issuer_port)
            .unwrap_or(false);
    let (publication, mut key_files) = publication(args.publish, file, file_dir, dev, dev_issuer)?;
    if tls.is_some() && acme.is_some() {
        return Err(ConfigError::Invalid {
            key: "acme_domain",
            reason: "cannot be combined with --tls-cert/--tls-key: the certificate comes either \
                     from files or from ACME"
                .into(),
        });
    }
    // `--dev` is local only: no AWS relying party will ever see its issuer.
    if (tls.is_some() || acme.is_some()) && !dev && !allow_issuer_port {
        refuse_issuer_port(&publication.issuer)?;
    }
    let dev_key = if dev {
        let key = DevKey::generate()?;
        key_files.push(key.private_key().to_owned());
        Some(key)
    } else {
        None
    };
    Ok(ServeConfig {
        publication,
        key_files,
        listen,
        bound,
        dev_key,
        debounce,
        poll_interval,
        shutdown_grace,
        header_timeout,
        keep_alive_timeout,
        write_timeout,
        linger_timeout,
        max_connections,
        backlog,
        h2_handshake_timeout,
        drain_delay,
        sts_listen,
        sts_roles,
        mirror,
        mirror_required,
        tls,
        acme,
        admin_listen,
        access_log,
    })
}

/// `--tls-cert` and `--tls-key` (flags, env, or file keys relative to the file), both or neither.
fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    file: &FileConfig,
    file_dir: Option<&Path>,
) -> Result<Option<CertificateFiles>, ConfigError> {
    let from_file = |path: &Option<PathBuf>| path.clone().map(|p| relative_to_file(file_dir, p));
    let cert = cert.or_else(|| from_file(&file.tls_cert));
    let key = key.or_else(|| from_file(&file.tls_key));
    let absolute = |key: &'static str, path: PathBuf| {
        std::path::absolute(&path).map_err(|e| ConfigError::Invalid {
            key,
            reason: format!("{}: {e}", path.display()),
        })
    };
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

/// `--acme-domain` and its companions; `None` without a domain. Takes the ACME keys out of
/// `file`; relative paths in the file are relative to the file.
fn acme(
    args: crate::cli::AcmeArgs,
    file: &mut FileConfig,
    file_dir: Option<&Path>,
) -> Result<Option<AcmeConfig>, ConfigError> {
    let relative = |p: PathBuf| relative_to_file(file_dir, p);
    let domains = if args.acme_domains.is_empty() {
        file.acme_domains.take().unwrap_or_default()
    } else {
        args.acme_domains
    };
    let email = args.acme_email.or(file.acme_email.take());
    let accept_tos = args.acme_accept_tos
        || env_bool(ENV_ACME_ACCEPT_TOS)?
            .or(file.acme_accept_tos.take())
            .unwrap_or(false);
    let directory = args.acme_directory.or(file.acme_directory.take());
    let directory_ca = args
        .acme_directory_ca
        .or(file.acme_directory_ca.take().map(relative));
    let cache = args.acme_cache.or(file.acme_cache.take().map(relative));
    let renew_before = args.acme_renew_before;
    let renew_before_text = file.acme_renew_before.take();
    let http_listen = args.acme_http_listen.or(file.acme_http_listen.take());
    if domains.is_empty() {
        let stray = [
            ("acme_email", email.is_some()),
            ("acme_directory", directory.is_some()),
            ("acme_directory_ca", directory_ca.is_some()),
            ("acme_cache", cache.is_some()),
            (
                "acme_renew_before",
                renew_before.is_some() || renew_before_text.is_some(),
            ),
            ("acme_http_listen", http_listen.is_some()),
        ];
        if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(ConfigError::Invalid {
                key,
                reason: "is set but no --acme-domain is; ACME needs at least one domain".into(),
            });
        }
        return Ok(None);
    }
    let mut checked = Vec::with_capacity(domains.len());
    for domain in domains {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        acme_domain(&domain)?;
        if !checked.contains(&domain) {
            checked.push(domain);
        }
    }
    if !accept_tos {
        return Err(ConfigError::Missing {
            what: "accepting the ACME server's terms of service",
            how: "--acme-accept-tos (after reading the terms of --acme-directory), \
                  ISSUERD_ACME_ACCEPT_TOS=1 or `acme_accept_tos = true` in the config file",
        });
    }
    let cache = cache.ok_or(ConfigError::Missing {
        what: "an ACME cache directory (account, certificate and key survive restarts there)",
        how: "--acme-cache DIR, ISSUERD_ACME_CACHE or `acme_cache` in the config file",
    })?;
    if let Some(email) = &email
        && (!email.contains('@')
            || email.contains(char::is_whitespace)
            || email.starts_with("mailto:"))
    {
        return Err(ConfigError::Invalid {
            key: "acme_email",
            reason: format!("{email:?} is not an email address (write it without mailto:)"),
        });
    }
    let directory = directory.unwrap_or_else(|| DEFAULT_ACME_DIRECTORY.to_owned());
    match url::Url::parse(&directory) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() => {}
        Ok(_) => {
            return Err(ConfigError::Invalid {
                key: "acme_directory",
                reason: format!("{directory:?} must be an https:// URL (RFC 8555 requires https)"),
            });
        }
        Err(e) => {
            return Err(ConfigError::Invalid {
                key: "acme_directory",
                reason: format!("{directory:?} is not a URL ({e})"),
            });
        }
    }
    let renew_before = duration_at_most(
        renew_before,
        "acme_renew_before",
        &renew_before_text,
        DEFAULT_ACME_RENEW_BEFORE,
        MAX_ACME_RENEW_BEFORE,
    )?;
    if renew_before.is_zero() {
        return Err(ConfigError::Invalid {
            key: "acme_renew_before",
            reason: "must be greater than zero".into(),
        });
    }
    Ok(Some(AcmeConfig {
        domains: checked,
        email,
        directory,
        directory_ca,
        cache,
        renew_before,
        http_listen,
    }))
}

/// A DNS name ACME can validate with tls-alpn-01: letters, digits, hyphens, dots; no wildcard,
/// no IP address, no port.
fn acme_domain(domain: &str) -> Result<(), ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        key: "acme_domain",
        reason: format!("{domain:?} {why}"),
    };
    if domain.starts_with("*.") {
        return Err(invalid(
            "is a wildcard; tls-alpn-01 cannot validate wildcards",
        ));
    }
    if domain.parse::<std::net::IpAddr>().is_ok() {
        return Err(invalid("is an IP address; give a DNS name"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(invalid("is not a DNS name (no scheme, port or path)"));
    }
    Ok(())
}

/// The longest duration any setting takes: past it, deadlines computed from now would overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A duration from a flag (already parsed) or the file (parsed here), else the default; at most
/// [`MAX_DURATION`].
fn duration(
    flag: Option<Duration>,
    key: &'static str,
    value: &Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    duration_at_most(flag, key, value, default, MAX_DURATION)
}

/// [`duration`] with another maximum.
fn duration_at_most(
    flag: Option<Duration>,
    key: &'static str,
    value: &Option<String>,
    default: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let duration = match (flag, value) {
        (Some(d), _) => d,
        (None, Some(text)) => {
            humantime::parse_duration(text).map_err(|e| ConfigError::Invalid {
                key,
                reason: format!("{text:?} is not a duration ({e})"),
            })?
        }
        (None, None) => default,
    };
    if duration > max {
        return Err(ConfigError::Invalid {
            key,
            reason: format!(
                "{} is longer than the maximum of {}",
                humantime::format_duration(duration),
                humantime::format_duration(max)
            ),
        });
    }
    Ok(duration)
}

/// A path from the config file: relative ones are relative to the file.
fn relative_to_file(file_dir: Option<&Path>, path: PathBuf) -> PathBuf {
    match file_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    }
}

/// `IP:PORT`, or `HOST:PORT` resolved now (the first address wins).
fn resolve_listen(text: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let invalid = |reason: String| ConfigError::Invalid {
        key: "listen",
        reason: format!("{text:?} {reason}"),
    };
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| invalid("resolves to no address; give an IP address and port".into())),
        Err(e) => Err(invalid(format!(
            "is not an IP address and port (e.g. 0.0.0.0:8080), and does not resolve as a \
             host and port: {e}"
        ))),
    }
}

/// Binds `addr` now with the listen backlog, for a configuration that needs the bound address.
fn bind(addr: SocketAddr, backlog: u32) -> Result<std::net::TcpListener, ConfigError> {
    crate::listener::bind(addr, backlog).map_err(|e| ConfigError::Invalid {
        key: "listen",
        reason: format!("cannot listen on {addr}: {e}"),
    })
}

fn render(
    args: RenderArgs,
    file: FileConfig,
    file_dir: Option<&Path>,
) -> Result<RenderConfig, ConfigError> {
    let (publication, key_files) = publication(args.publish, file, file_dir, false, None)?;
    Ok(RenderConfig {
        publication,
        key_files,
        out: args.out,
    })
}

fn publish(
    args: PublishCommandArgs,
    mut file: FileConfig,
    file_dir: Option<&Path>,
) -> Result<PublishConfig, ConfigError> {
    let mirror = mirror(args.mirror, &mut file)?.ok_or(ConfigError::Missing {
        what: "a bucket",
        how: "--mirror s3://BUCKET/PREFIX, ISSUERD_MIRROR or `mirror` in the config file",
    })?;
    let (publication, key_files) = publication(args.publish, file, file_dir, false, None)?;
    Ok(PublishConfig {
        publication,
        key_files,
        mirror,
    })
}

/// `--mirror` and its companions; `None` without `--mirror`. Takes the mirror keys out of `file`.
fn mirror(args: MirrorArgs, file: &mut FileConfig) -> Result<Option<MirrorConfig>, ConfigError> {
    let url = |key: &'static str, text: Option<String>| {
        text.map(|text| {
            url::Url::parse(&text).map_err(|e| ConfigError::Invalid {
                key,
                reason: format!("{text:?} is not an absolute URL ({e})"),
            })
        })
        .transpose()
    };
    let endpoint = url("s3_endpoint", args.s3_endpoint.or(file.s3_endpoint.take()))?;
    let public_url = url("public_url", args.public_url.or(file.public_url.take()))?;
    // The AWS variables as the last word, as the AWS SDKs read them (the URL mapping needs it).
    let region = args
        .s3_region
        .or(file.s3_region.take())
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|region| !region.is_empty());
    let acl = args
        .mirror_acl
        .or(file.mirror_acl.take())
        .unwrap_or_default();
    let Some(target) = args.mirror.or(file.mirror.take()) else {
        return Ok(None);
    };
    let target = S3Target::parse(&target).map_err(|e| ConfigError::Invalid {
        key: "mirror",
        reason: e.to_string(),
    })?;
    let mut config = MirrorConfig::new(target);
    config.endpoint = endpoint;
    config.public_url = public_url;
    config.region = region;
    config.acl = acl;
    Ok(Some(config))
}

/// The issuer and key sources. `dev` allows http and an empty key list (the caller adds the dev
/// key); `dev_issuer` is then the issuer unless one is given.
fn publication(
    args: PublishArgs,
    file: FileConfig,
    file_dir: Option<&Path>,
    dev: bool,
    dev_issuer: Option<String>,
) -> Result<(Publication, Vec<PathBuf>), ConfigError> {
    let issuer = args
        .issuer
        .or(file.issuer)
        .or(dev_issuer)
        .ok_or(ConfigError::Missing {
            what: "an issuer",
            how: "--issuer URL, ISSUERD_ISSUER or `issuer` in the config file",
        })?;
    let jwks_uri = args.jwks_uri.or(file.jwks_uri);
    let allow_insecure = dev
        || args.allow_insecure_issuer
        || env_bool(ENV_ALLOW_INSECURE_ISSUER)?
            .or(file.allow_insecure_issuer)
            .unwrap_or(false);
    let issuer = Issuer::new(&issuer, jwks_uri.as_deref(), allow_insecure)?;

    let key_files = if args.key_files.is_empty() {
        // Relative paths in the file are relative to the file.
        file.key_files
            .unwrap_or_default()
            .into_iter()
            .map(|p| relative_to_file(file_dir, p))
            .collect()
    } else {
        args.key_files
    };
    // Absolute from here on: file events name absolute paths, and the working directory of a
    // long-running process is nobody's business.
    let key_files = key_files
        .into_iter()
        .map(|path| {
            std::path::absolute(&path).map_err(|e| ConfigError::Invalid {
                key: "key_files",
                reason: format!("{}: {e}", path.display()),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if key_files.is_empty() && !dev {
        return Err(ConfigError::Missing {
            what: "a key source",
            how: "--key-file PATH, ISSUERD_KEY_FILE or `key_files` in the config file",
        });
    }
    let publication = Publication {
        issuer,
        profile: args
            .discovery_profile
            .or(file.discovery_profile)
            .unwrap_or_default(),
        max_age_secs: args
            .max_age
            .or(file.max_age)
            .unwrap_or(DEFAULT_MAX_AGE_SECS),
    };
    Ok((publication, key_files))
}

/// `publish`, validated.
#[derive(Debug)]
pub struct PublishConfig {
    /// What to publish.
    pub publication: Publication,
    /// Key files and directories.
    pub key_files: Vec<PathBuf>,
    /// The bucket.
    pub mirror: MirrorConfig,
}

/// A boolean env variable: `1/0`, `yes/no`, `true/false` (any case); unset or empty is `None`.
fn env_bool(name: &'static str) -> Result<Option<bool>, ConfigError> {
    let Some(value) = std::env::var_os(name) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    match text.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        // on/off and y/n as well: clap's flag parsing accepted them before.
        "1" | "yes" | "true" | "on" | "y" => Ok(Some(true)),
        "0" | "no" | "false" | "off" | "n" => Ok(Some(false)),
        _ => Err(ConfigError::Env {
            name: name.to_owned(),
            reason: format!("{text:?} is not a boolean (use 1/0, yes/no, true/false or on/off)"),
        }),
    }
}

/// A clap error, reworded to name the env variable when the bad value came from one rather than
/// from the flag.
fn usage_error(error: &clap::Error, args: &[OsString]) -> ConfigError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) && let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg)
        && let Some(long) = arg
            .split_whitespace()
            .next()
            .and_then(|a| a.strip_prefix("--"))
    {
        let on_command_line = args.iter().any(|a| {
            let a = a.to_string_lossy();
            a.strip_prefix("--")
                .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
        });
        let command = Cli::command();
        let env = command
            .get_subcommands()
            .flat_map(|c| c.get_arguments())
            .chain(command.get_arguments())
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
            .and_then(|name| name.to_str())
            .map(str::to_owned);
        if let Some(name) = env
            && !on_command_line
            && let Some(value) = std::env::var_os(&name)
        {
            let value = value.to_string_lossy().into_owned();
            let mut reason = match std::error::Error::source(error) {
                Some(cause) => format!("{value:?} is not valid: {cause}"),
                None => format!("{value:?} is not valid"),
            };
            if let Some(ContextValue::Strings(valid)) = error.get(ContextKind::ValidValue) {
                reason.push_str(&format!(" (possible values: {})", valid.join(", ")));
            }
            return ConfigError::Env { name, reason };
        }
    }
    // clap's own rendering (with its tip and usage), less the `error: ` prefix main adds.
    let rendered = error.render().to_string();
    ConfigError::Usage(rendered.trim_end().trim_start_matches("error: ").to_owned())
}

/// Configuration that cannot be used. Exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad flags.
    #[error("{0}")]
    Usage(String),
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    ReadFile {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("config file {}: {message}", path.display())]
    ParseFile {
        /// Path.
        path: PathBuf,
        /// Parser message (names the key and line).
        message: String,
    },
    /// A required setting is absent.
    #[error("{what} is required: set {how}")]
    Missing {
        /// What.
        what: &'static str,
        /// Where it can be set.
        how: &'static str,
    },
    /// A setting has an invalid value.
    #[error("{key}: {reason}")]
    Invalid {
        /// Setting name.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// An env variable has an invalid value.
    #[error("{name}: {reason}")]
    Env {
        /// Variable name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The issuer or JWKS URI is invalid.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// The `--dev` key could not be made.
    #[error(transparent)]
    DevKey(#[from] DevKeyError),
}
