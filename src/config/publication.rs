//! What is published (issuer, document shape, cache lifetime) and from which key sources: shared
//! by `serve`, `render` and `publish`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::file::FileConfig;
use super::{ConfigError, absolute, mirror, relative_to_file};
use crate::bucket::MirrorConfig;
use crate::cli::{PublishArgs, PublishCommandArgs, RenderArgs};
use crate::issuer::{DiscoveryProfile, Issuer, Publication};

/// Default `Cache-Control: max-age`, as kube-apiserver.
pub const DEFAULT_MAX_AGE_SECS: u32 = 3600;

/// The issuer of `serve`: given, or (`--dev` without one) named after the address served.
#[derive(Clone, Debug)]
pub enum IssuerSetting {
    /// Given by flag, env or file.
    Fixed(Publication),
    /// `--dev` without an issuer: `http(s)://<the address listened on>`, known once the socket
    /// is bound (port 0 names the port the kernel chose).
    ListenAddress {
        /// `https` (a certificate is served) rather than `http`.
        https: bool,
        /// `--jwks-uri`, if given.
        jwks_uri: Option<String>,
        /// Document shape.
        profile: DiscoveryProfile,
        /// `Cache-Control: max-age`.
        max_age_secs: u32,
    },
    /// `--from-kube-apiserver` without an issuer: the cluster's, adopted when the API server
    /// first answers.
    FromApiServer {
        /// `--jwks-uri`, if given.
        jwks_uri: Option<String>,
        /// Document shape.
        profile: DiscoveryProfile,
        /// `Cache-Control: max-age`.
        max_age_secs: u32,
        /// `--allow-insecure-issuer`.
        allow_insecure: bool,
    },
}

impl IssuerSetting {
    /// The publication served on a socket bound at `local`.
    pub fn publication(&self, local: SocketAddr) -> Result<Publication, ConfigError> {
        match self {
            Self::Fixed(publication) => Ok(publication.clone()),
            Self::ListenAddress {
                https,
                jwks_uri,
                profile,
                max_age_secs,
            } => {
                let scheme = if *https { "https" } else { "http" };
                let issuer =
                    Issuer::new(&format!("{scheme}://{local}"), jwks_uri.as_deref(), true)?;
                Ok(Publication {
                    issuer,
                    profile: *profile,
                    max_age_secs: *max_age_secs,
                })
            }
            Self::FromApiServer { .. } => Err(ConfigError::Missing {
                what: "an issuer",
                how: "--issuer URL, or the API server's, adopted once it answers",
            }),
        }
    }

    /// The publication with `issuer` (the API server's) when none was given; the one given
    /// otherwise.
    pub fn adopt(&self, issuer: &str, local: SocketAddr) -> Result<Publication, ConfigError> {
        match self {
            Self::FromApiServer {
                jwks_uri,
                profile,
                max_age_secs,
                allow_insecure,
            } => Ok(Publication {
                issuer: Issuer::new(issuer, jwks_uri.as_deref(), *allow_insecure)?,
                profile: *profile,
                max_age_secs: *max_age_secs,
            }),
            other => other.publication(local),
        }
    }

    /// The publication, when it does not depend on the address listened on.
    pub fn fixed(&self) -> Option<&Publication> {
        match self {
            Self::Fixed(publication) => Some(publication),
            Self::ListenAddress { .. } | Self::FromApiServer { .. } => None,
        }
    }
}

/// `render`, validated.
#[derive(Debug)]
pub struct RenderConfig {
    /// What to publish.
    pub publication: Publication,
    /// Key files and directories.
    pub key_files: Vec<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
}

/// `publish`, validated.
#[derive(Debug)]
pub struct PublishConfig {
    /// What to publish.
    pub publication: Publication,
    /// Key files and directories.
    pub key_files: Vec<PathBuf>,
    /// The bucket.
    pub mirror: MirrorConfig,
}

pub(super) fn render(
    args: RenderArgs,
    file: FileConfig,
    file_dir: Option<&Path>,
) -> Result<RenderConfig, ConfigError> {
    let (issuer, key_files) = sources(args.publish, &file, file_dir, None, false)?;
    Ok(RenderConfig {
        publication: fixed(issuer),
        key_files,
        out: args.out,
    })
}

pub(super) fn publish(
    args: PublishCommandArgs,
    file: FileConfig,
    file_dir: Option<&Path>,
) -> Result<PublishConfig, ConfigError> {
    let mirror = mirror::mirror(args.mirror, &file.mirror)?.ok_or(ConfigError::Missing {
        what: "a bucket",
        how: "--mirror s3://BUCKET/PREFIX, ISSUERD_MIRROR or `url` under `[mirror]` in the config file",
    })?;
    let (issuer, key_files) = sources(args.publish, &file, file_dir, None, false)?;
    Ok(PublishConfig {
        publication: fixed(issuer),
        key_files,
        mirror,
    })
}

fn fixed(issuer: IssuerSetting) -> Publication {
    match issuer {
        IssuerSetting::Fixed(publication) => publication,
        IssuerSetting::ListenAddress { .. } | IssuerSetting::FromApiServer { .. } => {
            unreachable!("only serve names the listen address or adopts an issuer")
        }
    }
}

/// The issuer and key sources. With `dev` (`--dev`: `Some(https)`), http is allowed, the key list may be
/// empty (the app adds the dev key), and without an issuer the listen address names it. With
/// `apiserver` (`--from-kube-apiserver`), the key list may be empty and without an issuer the
/// cluster's is adopted.
pub(super) fn sources(
    args: PublishArgs,
    file: &FileConfig,
    file_dir: Option<&Path>,
    dev: Option<bool>,
    apiserver: bool,
) -> Result<(IssuerSetting, Vec<PathBuf>), ConfigError> {
    let jwks_uri = args.jwks_uri.or(file.jwks_uri.clone());
    let profile = args
        .discovery_profile
        .or(file.discovery_profile)
        .unwrap_or_default();
    let max_age_secs = args
        .max_age
        .or(file.max_age)
        .unwrap_or(DEFAULT_MAX_AGE_SECS);
    let allow_insecure = dev.is_some()
        || args
            .allow_insecure_issuer
            .or(file.allow_insecure_issuer)
            .unwrap_or(false);
    let issuer = match (args.issuer.or(file.issuer.clone()), dev) {
        (Some(issuer), _) => IssuerSetting::Fixed(Publication {
            issuer: Issuer::new(&issuer, jwks_uri.as_deref(), allow_insecure)?,
            profile,
            max_age_secs,
        }),
        (None, Some(https)) => IssuerSetting::ListenAddress {
            https,
            jwks_uri,
            profile,
            max_age_secs,
        },
        (None, None) if apiserver => IssuerSetting::FromApiServer {
            jwks_uri,
            profile,
            max_age_secs,
            allow_insecure,
        },
        (None, _) => {
            return Err(ConfigError::Missing {
                what: "an issuer",
                how: "--issuer URL, ISSUERD_ISSUER or `issuer` in the config file",
            });
        }
    };

    let key_files = key_files(args.key_files, file, file_dir)?;
    if key_files.is_empty() && dev.is_none() && !apiserver {
        return Err(ConfigError::Missing {
            what: "a key source",
            how: "--key-file PATH, ISSUERD_KEY_FILE or `key_files` in the config file (or \
                  --from-kube-apiserver)",
        });
    }
    Ok((issuer, key_files))
}

/// The key sources from flags or env, else from the file (relative to it); absolute.
fn key_files(
    flags: Vec<PathBuf>,
    file: &FileConfig,
    file_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, ConfigError> {
    let key_files = if flags.is_empty() {
        file.key_files
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| relative_to_file(file_dir, p))
            .collect()
    } else {
        flags
    };
    key_files
        .into_iter()
        .map(|path| absolute("key_files", path))
        .collect()
}
