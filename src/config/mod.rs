//! Raw inputs (flags, env, TOML file) -> one validated [`Config`], the only config the app sees.
//!
//! Precedence is flags > `ISSUERD_*` env (both resolved by clap) > config file > defaults.
//! Resolving a configuration reads the config file and nothing else: what `--dev` and port 0
//! need (a key generated, a socket bound, a host name resolved) is described here and carried
//! out by `app`.
//!
//! - `file`: the TOML file, one table per feature.
//! - `serve`: `serve`, one function per section.
//! - `acme`, `mirror`: the settings those features share with the other commands.
//! - `kube`: `--from-kube-apiserver` and `[kube]` (the API server as a key source).
//! - `publication`: the issuer and key sources of `serve`, `render` and `publish`.
//! - `workers`: `[server] workers`, how the issuer listener's connections are run.

mod acme;
mod file;
mod kube;
mod mirror;
mod publication;
mod serve;
mod workers;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory as _, Parser as _};

use crate::cli::{
    AwsCommand, CheckArgs, Cli, Command as CliCommand, LogFormat, MintArgs, PodEnvArgs, ProbeArgs,
    StsArgs, ThumbprintArgs, TrustPolicyArgs, VaultConfigArgs, VerifyArgs, WebhookArgs,
};
use crate::issuer::IssuerError;

pub use acme::{
    AcmeConfig, DEFAULT_ACME_DIRECTORY, DEFAULT_ACME_RENEW_BEFORE, MAX_ACME_RENEW_BEFORE,
};
pub use publication::{DEFAULT_MAX_AGE_SECS, IssuerSetting, PublishConfig, RenderConfig};
pub use serve::{
    DEFAULT_BACKLOG, DEFAULT_DEBOUNCE, DEFAULT_LISTEN, DEFAULT_POLL_INTERVAL,
    DEFAULT_SHUTDOWN_GRACE, DEV_LISTEN, Listen, ServeConfig, ShutdownSettings, StsSettings,
    WatchSettings,
};
pub use workers::{MAX_AUTO_WORKERS, MAX_WORKERS, Workers};

/// The longest duration any setting takes: past it, deadlines computed from now would overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

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
    /// `vault-config` (self-contained).
    VaultConfig(VaultConfigArgs),
    /// `webhook` (self-contained).
    Webhook(WebhookArgs),
    /// `aws plan|apply` (self-contained).
    Aws(AwsCommand),
}

impl Config {
    /// Parses process arguments and env, then the config file. `--help` and `--version` exit
    /// through clap.
    pub fn load() -> Result<Self, ConfigError> {
        let args: Vec<OsString> = std::env::args_os().collect();
        match Cli::try_parse_from(&args) {
            Ok(cli) => Self::from_cli(cli).map_err(|e| name_env_source(e, &args)),
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
            .map_err(|e| name_env_source(e, &args))
    }

    /// Merges parsed flags with the config file they name.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let (file, file_dir) = match &cli.config {
            Some(path) => (file::read(path)?, path.parent().map(Path::to_path_buf)),
            None => (file::FileConfig::default(), None),
        };
        let log_format = cli.log_format.or(file.log_format).unwrap_or_default();
        let command = match cli.command {
            CliCommand::Serve(args) => {
                Command::Serve(serve::serve(args, file, file_dir.as_deref())?)
            }
            CliCommand::Render(args) => {
                Command::Render(publication::render(args, file, file_dir.as_deref())?)
            }
            CliCommand::Mint(args) => Command::Mint(args),
            CliCommand::Verify(args) => Command::Verify(args),
            CliCommand::Sts(args) => Command::Sts(args),
            CliCommand::TrustPolicy(args) => Command::TrustPolicy(args),
            CliCommand::PodEnv(args) => Command::PodEnv(args),
            CliCommand::Check(args) => Command::Check(args),
            CliCommand::Publish(args) => {
                Command::Publish(publication::publish(args, file, file_dir.as_deref())?)
            }
            CliCommand::Probe(args) => Command::Probe(args),
            CliCommand::Thumbprint(args) => Command::Thumbprint(args),
            CliCommand::VaultConfig(args) => Command::VaultConfig(args),
            CliCommand::Webhook(args) => Command::Webhook(args),
            CliCommand::Aws(args) => Command::Aws(args),
        };
        Ok(Self {
            log_format,
            command,
        })
    }
}

/// A duration from a flag or the file, else `default`; at most `max`.
fn duration(
    key: &'static str,
    value: Option<Duration>,
    default: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let duration = value.unwrap_or(default);
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

/// [`duration`], and not zero.
fn nonzero_duration(
    key: &'static str,
    value: Option<Duration>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let duration = duration(key, value, default, MAX_DURATION)?;
    if duration.is_zero() {
        return Err(ConfigError::Invalid {
            key,
            reason: "must be greater than zero".into(),
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

/// `path` made absolute (file events name absolute paths, and a long-running process's working
/// directory is nobody's business).
fn absolute(key: &'static str, path: PathBuf) -> Result<PathBuf, ConfigError> {
    std::path::absolute(&path).map_err(|e| ConfigError::Invalid {
        key,
        reason: format!("{}: {e}", path.display()),
    })
}

/// The env variable of flag `--long`, if it has one.
fn env_of(long: &str) -> Option<String> {
    let command = Cli::command();
    command
        .get_subcommands()
        .flat_map(|c| c.get_arguments())
        .chain(command.get_arguments())
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .and_then(|name| name.to_str())
        .map(str::to_owned)
}

/// `--long` (or `--long=...`) is among the arguments.
fn on_command_line(args: &[OsString], long: &str) -> bool {
    args.iter().any(|a| {
        let a = a.to_string_lossy();
        a.strip_prefix("--")
            .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
    })
}

/// A setting refused by configuration, reworded to name the env variable when its value came
/// from one (not from the flag, and env wins over the file).
fn name_env_source(error: ConfigError, args: &[OsString]) -> ConfigError {
    let (long, reason) = match &error {
        ConfigError::Invalid { key, reason } => (key.replace('_', "-"), reason.clone()),
        ConfigError::Issuer(e) => ("issuer".to_owned(), e.to_string()),
        _ => return error,
    };
    match env_of(&long) {
        Some(name)
            if !on_command_line(args, &long)
                && std::env::var_os(&name).is_some_and(|v| !v.is_empty()) =>
        {
            ConfigError::Env { name, reason }
        }
        _ => error,
    }
}

/// What a number means, for flags whose values look like they could take a unit.
fn unit_hint(long: &str) -> Option<&'static str> {
    match long {
        "max-age" => Some("max-age is in seconds, e.g. 3600"),
        "max-connections" | "backlog" => Some("a count, without a unit"),
        _ => None,
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
            .and_then(|a| a.split(['[', '=']).next())
    {
        if let Some(name) = env_of(long)
            && !on_command_line(args, long)
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
            if let Some(hint) = unit_hint(long) {
                reason.push_str(&format!(" ({hint})"));
            }
            return ConfigError::Env { name, reason };
        }
        if let Some(hint) = unit_hint(long) {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            return ConfigError::Usage(format!("{} ({hint})", first.trim_start_matches("error: ")));
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
}
