//! The `issuerd` binary: parse config, start logging, run, map the outcome to an exit code.

use std::fmt::Display;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use issuerd::app::exit;
use issuerd::cli::LogFormat;
use issuerd::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = match Config::load() {
        Ok(config) => config,
        Err(error) => {
            report(&format_args!("{:#}", anyhow::Error::from(error)));
            return ExitCode::from(exit::USAGE);
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
            return ExitCode::from(exit::FAILURE);
        }
    };
    let outcome = runtime.block_on(issuerd::app::run(config));
    // Every task was joined before `run` returned; a blocking thread still busy (a DNS lookup of
    // a dropped connection) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // `aws plan` with changes: they are on standard output; no `error:` line.
        Err(error) if error.is::<exit::PendingChanges>() => ExitCode::from(exit::CHANGES),
        Err(error) => {
            report(&format_args!("{error:#}"));
            ExitCode::from(exit::exit_status(&error))
        }
    }
}

/// Prints the one `error:` line. A closed stderr leaves only the exit status to tell; it must
/// not turn into a panic.
fn report(error: &dyn Display) {
    let _ = writeln!(std::io::stderr().lock(), "error: {error}");
}

fn init_tracing(format: LogFormat) {
    // rustls-platform-verifier logs every refused certificate at ERROR, object_store every retry
    // at INFO: issuerd reports the failure itself, once, where it happens (ISSUERD_LOG=debug
    // shows them).
    let filter = EnvFilter::try_from_env("ISSUERD_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rustls_platform_verifier=off,object_store=warn"));
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
