//! `--mirror` and its companions (`[mirror]`): the bucket of `serve --mirror` and `publish`.

use super::ConfigError;
use super::file::MirrorSection;
use crate::bucket::{MirrorConfig, S3Target};
use crate::cli::MirrorArgs;

/// The bucket and its settings; `None` without `--mirror` (or `url` under `[mirror]`).
pub(super) fn mirror(
    args: MirrorArgs,
    file: &MirrorSection,
) -> Result<Option<MirrorConfig>, ConfigError> {
    let url = |key: &'static str, text: Option<String>| {
        text.map(|text| {
            url::Url::parse(&text).map_err(|e| ConfigError::Invalid {
                key,
                reason: format!("{text:?} is not an absolute URL ({e})"),
            })
        })
        .transpose()
    };
    let endpoint = url("s3_endpoint", args.s3_endpoint.or(file.endpoint.clone()))?;
    let public_url = url("public_url", args.public_url.or(file.public_url.clone()))?;
    // The AWS variables as the last word, as the AWS SDKs read them (the URL mapping needs it).
    let region = args
        .s3_region
        .or(file.region.clone())
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .filter(|region| !region.is_empty());
    let acl = args.mirror_acl.or(file.acl).unwrap_or_default();
    let Some(target) = args.mirror.or(file.url.clone()) else {
        return Ok(None);
    };
    let target = S3Target::parse(&target).map_err(|e| ConfigError::Invalid {
        key: "mirror",
        reason: e.to_string(),
    })?;
    let mut config = MirrorConfig::new(target);
    config.endpoint = endpoint;
    config.public_url = public_url;
    config.region = region;
    config.acl = acl;
    Ok(Some(config))
}
