//! The IRSA commands, in one place: `mint`, `verify`, `check`, `sts`, the generators
//! (`trust-policy`, `pod-env`), and the STS beside `serve` with the `--dev` demo.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use tokio::task::JoinHandle;
use tracing::info;

use super::exit::UsageError;
use crate::arn::{AccountId, Partition, RoleArn};
use crate::cli::{CheckArgs, MintArgs, PodEnvArgs, StsArgs, TrustPolicyArgs, VerifyArgs};
use crate::config::StsSettings;
use crate::dev::{self, DevIrsa, DevKey};
use crate::issuer::Issuer;
use crate::keys::PublicKey;
use crate::shutdown;
use crate::sts::key_cache::KeyCache;
use crate::sts::roles::Roles;
use crate::sts::{self, Sts};
use crate::token::claims::{Subject, unix};
use crate::token::fetch::{Fetcher, STS_BUDGET};
use crate::token::mint::{MintRequest, mint as mint_token, write_token_file};
use crate::token::signing_key::SigningKey;
use crate::token::verify::verify_with_issuer;
use crate::trust::{Pinned, Trust};

/// Defaults of the STS started by `serve --sts-listen`.
const SERVE_STS_CACHE_TTL: Duration = Duration::from_secs(300);
const SERVE_STS_REFETCH: Duration = Duration::from_secs(30);

/// `mint`.
pub(super) fn mint(args: &MintArgs) -> anyhow::Result<()> {
    let key = SigningKey::load(&args.key)?;
    let subject = Subject::parse(&args.subject).ok_or_else(|| {
        UsageError(format!(
            "--subject {:?} is not system:serviceaccount:NAMESPACE:NAME (or NAMESPACE/NAME)",
            args.subject
        ))
    })?;
    let not_before = args.not_before.as_deref().map(parse_when).transpose()?;
    let request = MintRequest {
        issuer: args.issuer.clone(),
        subject,
        audiences: args.audiences.clone(),
        ttl: args.ttl,
        not_before,
        pod: args.pod.clone(),
        service_account_uid: None,
    };
    let token = mint_token(&key, &request)?;
    match &args.out {
        Some(path) => {
            write_token_file(path, &token)
                .with_context(|| format!("cannot write {}", path.display()))?;
            info!(path = %path.display(), kid = key.public_key().kid(), alg = key.algorithm().name(), "token written");
        }
        None => println!("{token}"),
    }
    Ok(())
}

/// `--not-before`: RFC 3339, or `+DURATION`/`-DURATION` from now.
fn parse_when(text: &str) -> anyhow::Result<SystemTime> {
    let now = SystemTime::now();
    let offset = |d: &str| {
        humantime::parse_duration(d)
            .map_err(|e| UsageError(format!("--not-before {text:?}: not a duration ({e})")))
    };
    if let Some(rest) = text.strip_prefix('-') {
        Ok(now - offset(rest)?)
    } else if let Some(rest) = text.strip_prefix('+') {
        Ok(now + offset(rest)?)
    } else {
        humantime::parse_rfc3339_weak(text).map_err(|_| {
            UsageError(format!(
                "--not-before {text:?}: not an RFC 3339 time or a +/- offset such as -2h"
            ))
            .into()
        })
    }
}

/// `verify`.
pub(super) async fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let token = match args.token.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token file {path}"))?,
        None => args.token.clone(),
    };
    let local = match &args.key {
        Some(path) => Some(local_key(path)?),
        None => None,
    };
    let trust = Trust::with_ca_files(&args.ca.ca_files)?;
    let fetcher = Fetcher::new(STS_BUDGET, args.allow_insecure, &trust)?;
    let verified = verify_with_issuer(
        &fetcher,
        &token,
        &args.issuer,
        &args.audiences,
        local.as_ref(),
        unix(SystemTime::now()),
    )
    .await?;
    eprintln!(
        "valid: {} token from {}, key {} (published at {}){}",
        verified.jwt.alg,
        args.issuer,
        verified.kid,
        verified.discovery.jwks_uri,
        if args.audiences.is_empty() {
            "; audience not checked (pass --audience)"
        } else {
            ""
        }
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&verified.jwt.raw_claims)?
    );
    Ok(())
}

fn local_key(path: &Path) -> anyhow::Result<PublicKey> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let keys = PublicKey::from_pem(&bytes).with_context(|| format!("{}", path.display()))?;
    match <[PublicKey; 1]>::try_from(keys) {
        Ok([key]) => Ok(key),
        Err(_) => bail!("{}: give a file with exactly one key", path.display()),
    }
}

/// `sts`.
pub(super) async fn sts(args: StsArgs) -> anyhow::Result<()> {
    let signal = shutdown::os_signal().context("cannot install signal handlers")?;
    let roles = match &args.roles {
        Some(path) => Roles::load(path, args.allow_insecure)?,
        None => super::aws::sts_roles(&args.map, args.allow_insecure).await?,
    };
    let trust = Trust::with_ca_files(&args.ca.ca_files)?;
    let listener = super::listen::bind(args.listen, "--listen").await?;
    let fetcher = Fetcher::new(STS_BUDGET, args.allow_insecure, &trust)?;
    let sts = Arc::new(Sts::new(
        roles,
        KeyCache::new(fetcher, args.jwks_cache_ttl, args.refetch_interval),
    ));
    let (trigger, stop) = shutdown::channel();
    let task = tokio::spawn(sts::serve(listener, sts, stop, Duration::from_secs(5)));
    let name = signal.await;
    info!(signal = name, "shutting down");
    trigger.trigger();
    task.await.context("STS task panicked")?;
    Ok(())
}

/// The STS started by `serve --sts-listen`: its task, the demo of `--dev`, and its address.
pub(super) type ServeSts = (JoinHandle<()>, Option<DevIrsa>, SocketAddr);

/// Starts the STS beside the issuer when `sts` is set. In `--dev` without a roles file, a demo
/// role and token are generated for the dev issuer, signed with the dev key.
pub(super) async fn start_sts_beside_serve(
    settings: Option<&StsSettings>,
    issuer: &Issuer,
    dev_key: Option<&DevKey>,
    served_certificate: Option<Pinned>,
    grace: Duration,
    stop: shutdown::Signal,
) -> anyhow::Result<Option<ServeSts>> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    // Its own issuer's certificate is trusted as served, whoever signed it: `serve --tls-cert
    // ... --sts-listen` works with a private CA or a self-signed certificate, without a flag.
    let mut trust = Trust::with_ca_files(&settings.ca_files)?;
    if let Some(pinned) = served_certificate {
        trust = trust.with_pinned(pinned);
    }
    // An http issuer was allowed explicitly (--dev or --allow-insecure-issuer): so are http
    // providers, which is what the STS beside it is for.
    let allow_insecure = dev_key.is_some() || issuer.url().starts_with("http://");
    let (roles, demo) = match (&settings.roles, dev_key) {
        (Some(path), _) => (Roles::load(path, allow_insecure)?, None),
        (None, _) if let Some((spec, account)) = &settings.cluster_spec => {
            let map = crate::cli::StsMapArgs {
                cluster_spec: Some(spec.clone()),
                issuer: Some(issuer.url().to_owned()),
                account_id: Some(account.clone()),
                partition: "aws".into(),
                audience: crate::aws::desired::STS_AUDIENCE.into(),
                no_aud_condition: false,
                roles_from_iam: false,
                iam_endpoint: None,
            };
            (super::aws::sts_roles(&map, allow_insecure).await?, None)
        }
        (None, Some(key)) => {
            let demo = DevIrsa::create(issuer.url(), key.private_key())?;
            (Roles::load(&demo.roles_file, true)?, Some(demo))
        }
        (None, None) => bail!("--sts-listen needs --sts-roles FILE (or --dev)"),
    };
    let listen = settings.listen;
    let listener = super::listen::bind(listen, "--sts-listen").await?;
    let addr = listener
        .local_addr()
        .context("STS listener has no address")?;
    let fetcher = Fetcher::new(STS_BUDGET, allow_insecure, &trust)?;
    let sts = Arc::new(Sts::new(
        roles,
        KeyCache::new(fetcher, SERVE_STS_CACHE_TTL, SERVE_STS_REFETCH),
    ));
    let task = tokio::spawn(sts::serve(listener, sts, stop, grace));
    Ok(Some((task, demo, addr)))
}

/// Prints the local IRSA demo of `--dev --sts-listen`: the role, the env an AWS SDK needs, and
/// how to mint other tokens. A closed stdout is logged, never fatal.
pub(super) fn print_demo_banner(issuer: &Issuer, key: &DevKey, demo: &DevIrsa, sts: SocketAddr) {
    let printed = writeln!(
        std::io::stdout().lock(),
        "local IRSA: STS on http://{sts}\n  \
         role:         {} (trust policy from `issuerd trust-policy`, in {})\n  \
         token:        ServiceAccount {}, audience {}\n\n{}\ntry:\n  \
         python3 -c 'import boto3; print(boto3.client(\"sts\").get_caller_identity()[\"Arn\"])'\n\n\
         mint other tokens (another --subject, --audience, --not-before -2h) into the same file:\n  \
         issuerd mint --key \"$KEY\" --issuer {} --subject system:serviceaccount:default:demo --out \"$AWS_WEB_IDENTITY_TOKEN_FILE\"\n",
        dev::irsa::ROLE_ARN,
        demo.roles_file.display(),
        dev::irsa::SERVICE_ACCOUNT,
        dev::irsa::AUDIENCE,
        demo.env(sts, key.private_key()),
        issuer.url(),
    );
    if let Err(error) = printed {
        tracing::warn!(%error, "cannot print the local IRSA banner to stdout");
    }
}

/// `trust-policy`.
pub(super) fn trust_policy(args: &TrustPolicyArgs) -> anyhow::Result<()> {
    let partition: Partition = args.partition.parse().context("--partition")?;
    let account: AccountId = args.account.parse().context("--account")?;
    print!(
        "{}",
        crate::irsa::trust_policy(
            &args.issuer,
            &partition,
            &account,
            &args.service_accounts,
            &args.audience
        )?
    );
    Ok(())
}

/// `pod-env`.
pub(super) fn pod_env(args: &PodEnvArgs) -> anyhow::Result<()> {
    let role_arn: RoleArn = args.role_arn.parse().context("--role-arn")?;
    let env = crate::irsa::PodEnv {
        role_arn: &role_arn,
        audience: &args.audience,
        region: args.region.as_deref(),
        expiration_seconds: args.expiration_seconds,
        container: &args.container,
    };
    print!("{}", env.to_yaml()?);
    Ok(())
}

/// `check`: prints the report; fails (exit 1) when any check failed.
pub(super) async fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let trust = Trust::with_ca_files(&args.ca.ca_files)?;
    let report = crate::check::check(&args.url, args.allow_insecure, &trust).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    if !report.ok {
        bail!(
            "{} is not usable as an OIDC issuer (see the report)",
            args.url
        );
    }
    Ok(())
}
