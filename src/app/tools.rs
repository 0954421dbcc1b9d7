//! The one-shot tools: `render`, `publish`, `probe`, `thumbprint`.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use tracing::warn;

use crate::bucket::Layout;
use crate::cli::{ProbeArgs, ThumbprintArgs};
use crate::config::{PublishConfig, RenderConfig};
use crate::keys::KeySet;
use crate::mirror::{self, PublicCheck, S3Sink};
use crate::store::Snapshot;
use crate::trust::Trust;

/// `render`: writes both documents under `out`, at the object keys a bucket would serve them from.
pub(super) fn render(config: &RenderConfig) -> anyhow::Result<()> {
    let keys = KeySet::load(&config.key_files)?;
    for warning in config.publication.issuer.warnings() {
        warn!("{warning}");
    }
    let snapshot = Snapshot::build(&config.publication, keys, 1);
    for document in [&snapshot.discovery, &snapshot.jwks] {
        let path = config.out.join(document.object_key());
        write_atomically(&path, &document.body)
            .with_context(|| format!("cannot write {}", path.display()))?;
        // The files are written either way; a closed stdout only loses this listing.
        if let Err(error) = writeln!(std::io::stdout().lock(), "{}", path.display()) {
            warn!(%error, path = %path.display(), "cannot print to stdout");
        }
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut temp, bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// `publish`: one render, one sync (JWKS first, skip what is already there, read back), then the
/// anonymous read check. Any failure is a [`mirror::MirrorError`] in the chain.
pub(super) async fn publish(config: &PublishConfig) -> anyhow::Result<()> {
    let keys = KeySet::load(&config.key_files)?;
    let issuer = &config.publication.issuer;
    for warning in issuer
        .warnings()
        .iter()
        .cloned()
        .chain(config.mirror.warnings(issuer))
    {
        warn!("{warning}");
    }
    let snapshot = Snapshot::build(&config.publication, keys, 1);
    let (layout, _) = Layout::new(issuer, &config.mirror.target.prefix);
    let sink = S3Sink::new(&config.mirror)?;
    let check = PublicCheck::new(issuer, config.mirror.public_url.as_ref())?;
    let outcome = mirror::sync(&sink, &layout, &snapshot, config.mirror.acl, true)
        .await
        .with_context(|| format!("cannot publish to {}", config.mirror.target))?;
    let bucket = &config.mirror.target.bucket;
    let acl = match config.mirror.acl {
        crate::bucket::MirrorAcl::PublicRead => " (ACL public-read)",
        crate::bucket::MirrorAcl::Default => "",
    };
    for key in &outcome.written {
        println!("written   s3://{bucket}/{key}{acl}");
    }
    for key in &outcome.acl_set {
        println!("acl       s3://{bucket}/{key} (unchanged; ACL public-read set)");
    }
    for key in &outcome.unchanged {
        println!("unchanged s3://{bucket}/{key}");
    }
    check
        .check(&snapshot)
        .await
        .context("the bucket holds the documents, but relying parties cannot read them")?;
    for url in check.urls() {
        println!("readable  {url}");
    }
    Ok(())
}

/// `probe`: exit 0 on a 200. An https URL's certificate is verified only with `--ca-file`.
pub(super) async fn probe(args: &ProbeArgs) -> anyhow::Result<()> {
    let trust = match args.ca.ca_files.is_empty() {
        true => None,
        false => Some(Trust::with_ca_files(&args.ca.ca_files)?),
    };
    Ok(crate::probe::probe(&args.url, args.timeout, trust.as_ref()).await?)
}

/// `thumbprint`: the report as text, or JSON.
pub(super) async fn thumbprint(args: ThumbprintArgs) -> anyhow::Result<()> {
    let ca = Trust::with_ca_files(&args.ca.ca_files)?;
    let report = tokio::task::spawn_blocking(move || {
        crate::thumbprint::thumbprint(&args.source, args.timeout, &ca)
            .map(|report| (report, args.json))
    })
    .await
    .context("thumbprint task panicked")??;
    match report {
        (report, true) => println!("{}", serde_json::to_string_pretty(&report)?),
        (report, false) => print!("{report}"),
    }
    Ok(())
}
