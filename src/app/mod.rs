//! The wiring of everything, per subcommand: [`run`] dispatches; `serve` composes the server
//! with its attached features (`serve`); the IRSA commands have one home (`irsa`), `aws plan|apply` another (`aws`); the
//! one-shot tools another (`tools`); [`exit`] maps the error that ended a command to its exit
//! status.

mod acme;
mod aws;
pub mod exit;
mod irsa;
mod listen;
mod serve;
mod tools;
mod vault;
mod webhook;

use crate::config::{Command, Config};

pub use serve::serve_on;

/// Runs the configured command to completion.
pub async fn run(config: Config) -> anyhow::Result<()> {
    match config.command {
        Command::Serve(serve) => serve::serve(serve).await,
        Command::Render(render) => tools::render(&render),
        Command::Publish(publish) => tools::publish(&publish).await,
        Command::Probe(args) => tools::probe(&args).await,
        Command::Thumbprint(args) => tools::thumbprint(args).await,
        Command::Mint(args) => irsa::mint(&args),
        Command::Verify(args) => irsa::verify(&args).await,
        Command::Sts(args) => irsa::sts(args).await,
        Command::Check(args) => irsa::check(&args).await,
        Command::TrustPolicy(args) => irsa::trust_policy(&args),
        Command::PodEnv(args) => irsa::pod_env(&args),
        Command::VaultConfig(args) => vault::vault_config(&args),
        Command::Webhook(args) => webhook::webhook(args).await,
        Command::Aws(command) => aws::aws(command).await,
    }
}
