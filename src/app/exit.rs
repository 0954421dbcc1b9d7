//! The exit status of every command, from the error that ended it (README, "Exit status"):
//! 2 for what the user gave (flags, env, files, arguments), 1 for what happened at run time,
//! and `publish`'s own 3 and 4. `aws plan` exits 2 when it has changes to show ([`CHANGES`]).

use crate::apiserver::ApiServerError;
use crate::arn::ArnError;
use crate::aws::desired::DesiredError;
use crate::config::ConfigError;
use crate::iam_map::IamMapError;
use crate::irsa::IrsaError;
use crate::issuer::IssuerError;
use crate::keys::KeyError;
use crate::mirror::MirrorError;
use crate::probe::ProbeError;
use crate::sts::roles::RolesError;
use crate::thumbprint::ThumbprintError;
use crate::tls::TlsError;
use crate::token::signing_key::SigningKeyError;
use crate::trust::TrustError;
use crate::vault::VaultError;
use crate::webhook::mapping::MapError;
use crate::webhook::service_accounts::ServiceAccountsError;

/// A runtime failure: a socket, a peer, a verification that failed.
pub const FAILURE: u8 = 1;
/// A usage, configuration or input error: flags, env, config file, key, certificate, CA or
/// roles file, a malformed argument (an ARN, an account ID).
pub const USAGE: u8 = 2;
/// `aws plan`: the plan has changes (as `terraform plan -detailed-exitcode`). It is
/// [`USAGE`]'s number: a script that runs `aws plan` tells the two apart by `error:` on
/// standard error, which only a usage error prints.
pub const CHANGES: u8 = 2;
/// `publish`: the bucket could not be read, written or verified.
pub const BUCKET: u8 = 3;
/// `publish`: the bucket holds the documents, but anonymous reads fail.
pub const NOT_PUBLIC: u8 = 4;

/// An argument the command refuses (the message names it and the expected form).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// `aws plan` found changes: not a failure, but [`CHANGES`], with nothing printed to standard
/// error.
#[derive(Debug, thiserror::Error)]
#[error("the plan has {0} change(s)")]
pub struct PendingChanges(pub usize);

/// The exit status for `error`: the first cause in its chain that says.
pub fn exit_status(error: &anyhow::Error) -> u8 {
    if error.is::<PendingChanges>() {
        return CHANGES;
    }
    for cause in error.chain() {
        if is_usage(cause) {
            return USAGE;
        }
        if let Some(mirror) = cause.downcast_ref::<MirrorError>() {
            return match mirror {
                MirrorError::PublicAccess { .. } => NOT_PUBLIC,
                _ => BUCKET,
            };
        }
    }
    FAILURE
}

fn is_usage(cause: &(dyn std::error::Error + 'static)) -> bool {
    let input_thumbprint = cause.downcast_ref::<ThumbprintError>().is_some_and(|e| {
        !matches!(
            e,
            ThumbprintError::Connect { .. } | ThumbprintError::Tls { .. }
        )
    });
    let input_probe = matches!(
        cause.downcast_ref::<ProbeError>(),
        Some(ProbeError::Url { .. })
    );
    let input_apiserver = cause
        .downcast_ref::<ApiServerError>()
        .is_some_and(ApiServerError::is_input);
    input_thumbprint
        || input_probe
        || input_apiserver
        || cause.is::<UsageError>()
        || cause.is::<ConfigError>()
        || cause.is::<KeyError>()
        || cause.is::<IssuerError>()
        || cause.is::<SigningKeyError>()
        || cause.is::<RolesError>()
        || cause.is::<IrsaError>()
        || cause.is::<ArnError>()
        || cause.is::<TrustError>()
        || cause.is::<TlsError>()
        || cause.is::<VaultError>()
        || cause.is::<MapError>()
        || cause.is::<IamMapError>()
        || cause.is::<DesiredError>()
        || cause.is::<ServiceAccountsError>()
}
