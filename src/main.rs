//! The `issuerd` binary: parse config, start logging, run, map the outcome to an exit code.

use std::fmt::Display;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use issuerd::cli::LogFormat;
use issuerd::config::{Config, ConfigError};
use issuerd::irsa::IrsaError;
use issuerd::issuer::IssuerError;
use issuerd::keys::KeyError;
use issuerd::mirror::MirrorError;
use issuerd::sts::roles::RolesError;
use issuerd::token::signing_key::SigningKeyError;
use issuerd::trust::TrustError;
use tracing_subscriber::EnvFilter;

/// Exit status for usage, configuration and key errors.
const EXIT_USAGE: u8 = 2;
/// Exit status of `publish` when the bucket could not be written, read or verified.
const EXIT_BUCKET: u8 = 3;
/// Exit status of `publish` when the bucket holds the documents but anonymous reads fail.
const EXIT_NOT_PUBLIC: u8 = 4;

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(error) => {
            report(&format_args!("{:#}", anyhow::Error::from(error)));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_tracing(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            report(&format_args!("cannot start the async runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(issuerd::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(&format_args!("{error:#}"));
            let usage = error.chain().any(|cause| {
                cause.is::<KeyError>()
                    || cause.is::<ConfigError>()
                    || cause.is::<IssuerError>()
                    || cause.is::<SigningKeyError>()
                    || cause.is::<RolesError>()
                    || cause.is::<IrsaError>()
                    || cause.is::<TrustError>()
            });
            let mirror = error
                .chain()
                .find_map(|cause| cause.downcast_ref::<MirrorError>());
            if usage {
                ExitCode::from(EXIT_USAGE)
            } else if let Some(mirror) = mirror {
                match mirror {
                    MirrorError::PublicAccess { .. } => ExitCode::from(EXIT_NOT_PUBLIC),
                    _ => ExitCode::from(EXIT_BUCKET),
                }
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Prints the one `error:` line. A closed stderr leaves only the exit status to tell; it must
/// not turn into a panic.
fn report(error: &dyn Display) {
    let _ = writeln!(std::io::stderr().lock(), "error: {error}");
}

fn init_tracing(format: LogFormat) {
    // rustls-platform-verifier logs every refused certificate at ERROR; issuerd reports the
    // failure itself, with a hint, where it happens.
    let filter = EnvFilter::try_from_env("ISSUERD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rustls_platform_verifier=off"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // A closed stderr (a log collector gone) must not take the server down: tracing-subscriber
    // would otherwise report the failed write with eprintln!, which panics on EPIPE.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
