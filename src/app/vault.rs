//! `vault-config`: what configures HashiCorp Vault's JWT auth method to trust this issuer.

use tracing::warn;

use crate::cli::VaultConfigArgs;
use crate::trust::Trust;
use crate::vault::{Settings, Setup};

/// `vault-config`: the `vault write` commands, or with `--json` the HTTP API requests. The CA
/// files are read (and checked) as every `--ca-file` is; their certificates are what Vault gets.
pub(super) fn vault_config(args: &VaultConfigArgs) -> anyhow::Result<()> {
    let ca = Trust::with_ca_files(&args.ca.ca_files)?;
    let setup = Setup::new(&Settings {
        issuer: &args.issuer,
        allow_insecure_issuer: args.allow_insecure_issuer,
        ca_certificates: ca.extra_roots(),
        mount: &args.mount,
        role: &args.role,
        namespace: &args.namespace,
        service_account: &args.service_account,
        audience: &args.audience,
        policies: &args.policies,
        ttl: args.ttl,
    })?;
    for warning in setup.warnings() {
        warn!("{warning}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&setup.to_json())?);
    } else {
        print!("{}", setup.to_shell());
    }
    Ok(())
}
