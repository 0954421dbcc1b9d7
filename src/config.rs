//! Raw inputs (flags, env, TOML file) -> one validated [`Config`], the only config the app sees.
//!
//! Precedence is flags > `ISSUERD_*` env (both resolved by clap) > config file > defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser as _;
use serde::Deserialize;

use crate::cli::{
    Cli, Command as CliCommand, LogFormat, MirrorArgs, PublishArgs, PublishCommandArgs, RenderArgs,
    ServeArgs,
};
use crate::document::DiscoveryProfile;
use crate::issuer::{Issuer, IssuerError};
use crate::mirror::{MirrorAcl, MirrorConfig, S3Target};
use crate::store::Publication;

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
    listen: Option<SocketAddr>,
    debounce: Option<String>,
    poll_interval: Option<String>,
    shutdown_grace: Option<String>,
    log_format: Option<LogFormat>,
    mirror: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    public_url: Option<String>,
    mirror_acl: Option<MirrorAcl>,
    mirror_required: Option<bool>,
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
pub enum Command {
    /// `serve`.
    Serve(ServeConfig),
    /// `render`.
    Render(RenderConfig),
    /// `publish`.
    Publish(PublishConfig),
}

/// `serve`, validated.
#[derive(Debug)]
pub struct ServeConfig {
    /// What to publish.
    pub publication: Publication,
    /// Key files and directories; empty with `--dev` until the dev key is generated.
    pub key_files: Vec<PathBuf>,
    /// Listen address.
    pub listen: SocketAddr,
    /// `--dev` mode.
    pub dev: bool,
    /// In `--dev` without `--issuer`, the issuer follows the bound address (so port 0 works).
    pub issuer_follows_listen: bool,
    /// Watch debounce.
    pub debounce: Duration,
    /// Poll interval.
    pub poll_interval: Duration,
    /// Shutdown grace period.
    pub shutdown_grace: Duration,
    /// `--mirror` and its settings.
    pub mirror: Option<MirrorConfig>,
    /// `--mirror-required`: not ready while the bucket is behind.
    pub mirror_required: bool,
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
    /// Parses process arguments and env, then the config file. Usage errors exit through clap.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_cli(Cli::parse())
    }

    /// Parses the given arguments (the first is the program name). The seam tests use.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Self::from_cli(Cli::try_parse_from(args).map_err(|e| ConfigError::Usage(e.to_string()))?)
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
            CliCommand::Publish(args) => {
                Command::Publish(publish(args, file, file_dir.as_deref())?)
            }
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
    let listen = match (args.listen.or(file.listen), args.dev) {
        (Some(listen), _) => listen,
        (None, true) => DEV_LISTEN.parse().expect("valid default"),
        (None, false) => DEFAULT_LISTEN.parse().expect("valid default"),
    };
    let duration =
        |flag: Option<Duration>, key: &'static str, value: &Option<String>, default| match (
            flag, value,
        ) {
            (Some(d), _) => Ok(d),
            (None, Some(text)) => {
                humantime::parse_duration(text).map_err(|e| ConfigError::Invalid {
                    key,
                    reason: format!("{text:?} is not a duration ({e})"),
                })
            }
            (None, None) => Ok(default),
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
    let mirror = mirror(args.mirror, &mut file)?;
    let mirror_required = args.mirror_required || file.mirror_required.unwrap_or(false);
    if mirror_required && mirror.is_none() {
        return Err(ConfigError::Invalid {
            key: "mirror_required",
            reason: "needs --mirror".into(),
        });
    }
    let dev = args.dev;
    let issuer_follows_listen = dev && args.publish.issuer.is_none() && file.issuer.is_none();
    let dev_issuer = dev.then(|| format!("http://{listen}"));
    let (publication, key_files) = publication(args.publish, file, file_dir, dev_issuer)?;
    Ok(ServeConfig {
        publication,
        key_files,
        listen,
        dev,
        issuer_follows_listen,
        debounce,
        poll_interval,
        shutdown_grace,
        mirror,
        mirror_required,
    })
}

fn render(
    args: RenderArgs,
    file: FileConfig,
    file_dir: Option<&Path>,
) -> Result<RenderConfig, ConfigError> {
    let (publication, key_files) = publication(args.publish, file, file_dir, None)?;
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
    let (publication, key_files) = publication(args.publish, file, file_dir, None)?;
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
    let region = args.s3_region.or(file.s3_region.take());
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

/// The issuer and key sources. `dev_issuer` is the fallback issuer in `--dev` mode, which also
/// allows http and generates its own key.
fn publication(
    args: PublishArgs,
    file: FileConfig,
    file_dir: Option<&Path>,
    dev_issuer: Option<String>,
) -> Result<(Publication, Vec<PathBuf>), ConfigError> {
    let dev = dev_issuer.is_some();
    let issuer = args
        .issuer
        .or(file.issuer)
        .or(dev_issuer)
        .ok_or(ConfigError::Missing {
            what: "an issuer",
            how: "--issuer URL, ISSUERD_ISSUER or `issuer` in the config file",
        })?;
    let jwks_uri = args.jwks_uri.or(file.jwks_uri);
    let allow_insecure =
        dev || args.allow_insecure_issuer || file.allow_insecure_issuer.unwrap_or(false);
    let issuer = Issuer::new(&issuer, jwks_uri.as_deref(), allow_insecure)?;

    let key_files = if args.key_files.is_empty() {
        // Relative paths in the file are relative to the file.
        file.key_files
            .unwrap_or_default()
            .into_iter()
            .map(|p| match file_dir {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p,
            })
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
    /// The issuer or JWKS URI is invalid.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
}
