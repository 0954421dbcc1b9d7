//! `aws plan` and `aws apply`: the map and flags checked before any call, the thumbprint, the
//! account, what IAM holds, the changes printed, and with `apply` made one by one. And the
//! roles of `sts --cluster-spec`: the same provider and roles, derived or read back from IAM.

use std::collections::BTreeSet;
use std::io::Write as _;

use anyhow::Context as _;
use tracing::warn;

use super::exit::{PendingChanges, UsageError};
use crate::arn::{AccountId, Partition};
use crate::aws::desired::{self, Target};
use crate::aws::iam::{self, Iam};
use crate::aws::{self, Thumbprints, plan};
use crate::cli::{AwsArgs, AwsCommand, StsMapArgs};
use crate::iam_map::IamMap;
use crate::sts::roles::{Roles, RolesError};
use crate::trust::Trust;

/// `aws plan` (exit [`super::exit::CHANGES`] when there is something to do) or `aws apply`.
pub(super) async fn aws(command: AwsCommand) -> anyhow::Result<()> {
    let (args, apply) = match command {
        AwsCommand::Plan(args) => (args, false),
        AwsCommand::Apply(args) => (args, true),
    };
    // Everything the user gave is checked before the first call.
    let map = IamMap::load(&args.cluster_spec)?;
    desired::provider_url(&args.issuer, false)?;
    let given = desired::thumbprints(&args.thumbprints)?;
    let account: Option<AccountId> = args.account_id.as_deref().map(str::parse).transpose()?;
    let partition: Option<Partition> = args.partition.as_deref().map(str::parse).transpose()?;
    let trust = Trust::with_ca_files(&args.ca.ca_files)?;
    let mut out = std::io::stdout();

    let thumbprints = match given.is_empty() {
        false => Thumbprints::Listed(given),
        true => live_thumbprint(&args, trust, &mut out).await?,
    };
    let config = iam::sdk_config(None).await;
    let (account, partition) = match account {
        Some(account) => (account, partition.unwrap_or(Partition::AWS)),
        None => {
            let caller = iam::caller(&config)
                .await
                .context("cannot tell the account from the credentials (or pass --account-id)")?;
            let account: AccountId = caller.account.parse()?;
            let partition = match partition {
                Some(partition) => partition,
                None => caller
                    .arn
                    .split(':')
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(Partition::AWS),
            };
            (account, partition)
        }
    };
    let audience = (!args.no_aud_condition).then_some(args.audience.as_str());
    let target = Target {
        issuer: &args.issuer,
        partition: &partition,
        account: &account,
        audience,
        thumbprints,
        allow_http: false,
    };
    let desired = desired::desired(&map, &target)?;
    let cluster = map.cluster_name();
    writeln!(
        out,
        "cluster {cluster} ({} roles in {}), account {account} ({partition})",
        desired.roles.len(),
        map.source().display()
    )?;
    let iam = Iam::new(&config);
    let actual = iam
        .read(&desired, cluster, args.prune)
        .await
        .context("cannot read what IAM holds")?;
    let changes = aws::diff(&desired, &actual, args.prune);
    if !apply {
        write!(out, "{}", plan::render(&changes))?;
        out.flush()?;
        return match changes.len() {
            0 => Ok(()),
            n => Err(PendingChanges(n).into()),
        };
    }
    for (done, change) in changes.iter().enumerate() {
        write!(out, "{}", plan::describe(change))?;
        out.flush()?;
        iam.apply(change).await.with_context(|| {
            format!(
                "{done} of {} changes made; stopped at {} (run `aws plan` to see what is left)",
                changes.len(),
                change.action()
            )
        })?;
    }
    match changes.len() {
        0 => writeln!(out, "{}", plan::summary(&changes))?,
        n => writeln!(
            out,
            "Applied: {n} IAM call{}.",
            if n == 1 { "" } else { "s" }
        )?,
    }
    Ok(())
}

/// The thumbprint of the issuer's live chain, or [`Thumbprints::LeftOut`] when the chain ends
/// in a publicly trusted CA; says which on `out`.
async fn live_thumbprint(
    args: &AwsArgs,
    trust: Trust,
    out: &mut impl std::io::Write,
) -> anyhow::Result<Thumbprints> {
    let (issuer, timeout) = (args.issuer.clone(), args.timeout);
    let report = tokio::task::spawn_blocking(move || {
        crate::thumbprint::thumbprint(&issuer, timeout, &trust)
    })
    .await
    .context("thumbprint task panicked")?
    .with_context(|| {
        format!(
            "cannot compute the thumbprint of {} (or pass --thumbprint)",
            args.issuer
        )
    })?;
    if let Some(verdict) = &report.trust.ca_file
        && !verdict.trusted
    {
        warn!(
            reason = verdict.reason.as_deref().unwrap_or("not verified"),
            "the issuer's chain does not verify to any --ca-file CA"
        );
    }
    if report.trust.publicly_trusted {
        writeln!(
            out,
            "note: {}'s chain ends in a publicly trusted CA: AWS verifies it with its own CAs and \
             ignores thumbprints, so none is set",
            args.issuer
        )?;
        return Ok(Thumbprints::LeftOut);
    }
    writeln!(
        out,
        "note: thumbprint {} of {}'s chain ({:?}; pinned by AWS: update it when that \
         certificate changes)",
        report.thumbprint, args.issuer, report.role
    )?;
    Ok(Thumbprints::Listed(BTreeSet::from([report.thumbprint])))
}

/// The providers and roles of `sts --cluster-spec`: what `aws apply` makes from the map for
/// `--issuer` (`--account-id`, `--partition`, `--audience`, `--no-aud-condition`), or with
/// `--roles-from-iam` what IAM holds of it: the provider's client IDs and the roles' trust
/// policies as they are there (the roles IAM lacks are left out).
pub(super) async fn sts_roles(args: &StsMapArgs, allow_insecure: bool) -> anyhow::Result<Roles> {
    let (Some(spec), Some(issuer)) = (&args.cluster_spec, &args.issuer) else {
        return Err(UsageError(
            "give --roles FILE, or --cluster-spec FILE with --issuer URL".into(),
        )
        .into());
    };
    let map = IamMap::load(spec)?;
    let partition: Partition = args.partition.parse()?;
    let account: Option<AccountId> = args.account_id.as_deref().map(str::parse).transpose()?;
    desired::provider_url(issuer, allow_insecure)?;
    let config = match args.roles_from_iam {
        true => Some(iam::sdk_config(args.iam_endpoint.as_deref()).await),
        false => None,
    };
    let account = match (account, &config) {
        (Some(account), _) => account,
        (None, Some(config)) => iam::caller(config)
            .await
            .context("cannot tell the account from the credentials (or pass --account-id)")?
            .account
            .parse()?,
        (None, None) => {
            return Err(UsageError(
                "--cluster-spec needs --account-id (the account of the roles), or --roles-from-iam"
                    .into(),
            )
            .into());
        }
    };
    let target = Target {
        issuer,
        partition: &partition,
        account: &account,
        audience: (!args.no_aud_condition).then_some(args.audience.as_str()),
        thumbprints: Thumbprints::LeftOut,
        allow_http: allow_insecure,
    };
    let desired = desired::desired(&map, &target)?;
    let state = match &config {
        None => desired,
        Some(config) => {
            let mut found = Iam::new(config)
                .read(&desired, map.cluster_name(), false)
                .await
                .context("cannot read the roles from IAM")?;
            let want = desired.provider.as_ref().expect("desired has a provider");
            let Some(provider) = found.provider.as_mut() else {
                anyhow::bail!(
                    "IAM has no OIDC provider {} (run `issuerd aws apply` first)",
                    want.arn
                );
            };
            // IAM keeps the URL without its scheme; the STS compares `iss` with the issuer.
            provider.url.clone_from(&want.url);
            for name in desired
                .roles
                .keys()
                .filter(|n| !found.roles.contains_key(*n))
            {
                warn!(role = %name, "not in IAM: left out (run `issuerd aws apply`)");
            }
            found
        }
    };
    let text = serde_json::to_vec(&desired::roles_file(&state, &partition, &account))?;
    let roles = Roles::parse(&text, allow_insecure).map_err(|reason| RolesError::Invalid {
        path: spec.clone(),
        reason,
    })?;
    tracing::info!(
        roles = roles.roles.len(),
        source = if args.roles_from_iam { "iam" } else { "map" },
        cluster = map.cluster_name(),
        "STS roles from the IAM map"
    );
    Ok(roles)
}
