//! `aws plan` and `aws apply`: the map and flags checked before any call, the thumbprint, the
//! account, what IAM holds, the changes printed, and with `apply` made one by one.

use std::collections::BTreeSet;
use std::io::Write as _;

use anyhow::Context as _;
use tracing::warn;

use super::exit::PendingChanges;
use crate::arn::{AccountId, Partition};
use crate::aws::desired::{self, Target};
use crate::aws::iam::{self, Iam};
use crate::aws::{self, Thumbprints, plan};
use crate::cli::{AwsArgs, AwsCommand};
use crate::iam_map::IamMap;
use crate::trust::Trust;

/// `aws plan` (exit [`super::exit::CHANGES`] when there is something to do) or `aws apply`.
pub(super) async fn aws(command: AwsCommand) -> anyhow::Result<()> {
    let (args, apply) = match command {
        AwsCommand::Plan(args) => (args, false),
        AwsCommand::Apply(args) => (args, true),
    };
    // Everything the user gave is checked before the first call.
    let map = IamMap::load(&args.cluster_spec)?;
    desired::provider_url(&args.issuer)?;
    let given = desired::thumbprints(&args.thumbprints)?;
    let account: Option<AccountId> = args.account_id.as_deref().map(str::parse).transpose()?;
    let partition: Option<Partition> = args.partition.as_deref().map(str::parse).transpose()?;
    let trust = Trust::with_ca_files(&args.ca.ca_files)?;
    let mut out = std::io::stdout();

    let thumbprints = match given.is_empty() {
        false => Thumbprints::Listed(given),
        true => live_thumbprint(&args, trust, &mut out).await?,
    };
    let config = iam::sdk_config().await;
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
