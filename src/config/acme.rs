//! `--acme-domain` and its companions (`[acme]`): a certificate obtained with ACME.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::AcmeSection;
use super::{ConfigError, duration, relative_to_file};
use crate::cli::AcmeArgs;

/// Default `--acme-directory`: Let's Encrypt production.
pub const DEFAULT_ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Default `--acme-renew-before`: 30 days, Let's Encrypt's advice for 90-day certificates.
pub const DEFAULT_ACME_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest `--acme-renew-before`.
pub const MAX_ACME_RENEW_BEFORE: Duration = Duration::from_secs(3650 * 24 * 3600);

/// ACME, validated (`serve --acme-domain ...`).
#[derive(Clone, Debug)]
pub struct AcmeConfig {
    /// The domains ordered (lowercase DNS names, no wildcard).
    pub domains: Vec<String>,
    /// The account's contact address.
    pub email: Option<String>,
    /// The directory URL (https).
    pub directory: String,
    /// A CA to trust for the directory.
    pub directory_ca: Option<PathBuf>,
    /// The cache directory.
    pub cache: PathBuf,
    /// Renew this long before expiry.
    pub renew_before: Duration,
    /// Answer http-01 on this plain listener instead of tls-alpn-01.
    pub http_listen: Option<SocketAddr>,
}

/// `--acme-domain` and its companions; `None` without a domain. Relative paths in the file are
/// relative to the file.
pub(super) fn acme(
    args: AcmeArgs,
    file: &AcmeSection,
    file_dir: Option<&Path>,
) -> Result<Option<AcmeConfig>, ConfigError> {
    let relative = |p: &PathBuf| relative_to_file(file_dir, p.clone());
    let domains = if args.acme_domains.is_empty() {
        file.domains.clone().unwrap_or_default()
    } else {
        args.acme_domains
    };
    let email = args.acme_email.or(file.email.clone());
    let accept_tos = args.acme_accept_tos.or(file.accept_tos).unwrap_or(false);
    let directory = args.acme_directory.or(file.directory.clone());
    let directory_ca = args
        .acme_directory_ca
        .or(file.directory_ca.as_ref().map(relative));
    let cache = args.acme_cache.or(file.cache.as_ref().map(relative));
    let renew_before = args.acme_renew_before.or(file.renew_before);
    let http_listen = args.acme_http_listen.or(file.http_listen);
    if domains.is_empty() {
        // Settings without a domain: a mistake, never silently ignored.
        let stray = [
            ("acme_email", email.is_some()),
            ("acme_directory", directory.is_some()),
            ("acme_directory_ca", directory_ca.is_some()),
            ("acme_cache", cache.is_some()),
            ("acme_renew_before", renew_before.is_some()),
            ("acme_http_listen", http_listen.is_some()),
        ];
        return match stray.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(ConfigError::Invalid {
                key,
                reason: "is set but no --acme-domain is; ACME needs at least one domain".into(),
            }),
            None => Ok(None),
        };
    }
    let domains = checked_domains(domains)?;
    if !accept_tos {
        return Err(ConfigError::Missing {
            what: "accepting the ACME server's terms of service",
            how: "--acme-accept-tos (after reading the terms of --acme-directory), \
                  ISSUERD_ACME_ACCEPT_TOS=1 or `accept_tos = true` under `[acme]` in the config file",
        });
    }
    let cache = cache.ok_or(ConfigError::Missing {
        what: "an ACME cache directory (account, certificate and key survive restarts there)",
        how: "--acme-cache DIR, ISSUERD_ACME_CACHE or `cache` under `[acme]` in the config file",
    })?;
    if let Some(email) = &email {
        checked_email(email)?;
    }
    let directory = directory.unwrap_or_else(|| DEFAULT_ACME_DIRECTORY.to_owned());
    checked_directory(&directory)?;
    Ok(Some(AcmeConfig {
        domains,
        email,
        directory,
        directory_ca,
        cache,
        renew_before: checked_renew_before(renew_before)?,
        http_listen,
    }))
}

/// Above zero, at most [`MAX_ACME_RENEW_BEFORE`].
fn checked_renew_before(renew_before: Option<Duration>) -> Result<Duration, ConfigError> {
    let renew_before = duration(
        "acme_renew_before",
        renew_before,
        DEFAULT_ACME_RENEW_BEFORE,
        MAX_ACME_RENEW_BEFORE,
    )?;
    if renew_before.is_zero() {
        return Err(ConfigError::Invalid {
            key: "acme_renew_before",
            reason: "must be greater than zero".into(),
        });
    }
    Ok(renew_before)
}

/// Each domain checked and normalized (trimmed, no trailing dot, lowercase); duplicates dropped.
fn checked_domains(domains: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let mut checked = Vec::with_capacity(domains.len());
    for domain in domains {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        acme_domain(&domain)?;
        if !checked.contains(&domain) {
            checked.push(domain);
        }
    }
    Ok(checked)
}

/// The account's contact: an address, without `mailto:` (the ACME client adds it).
fn checked_email(email: &str) -> Result<(), ConfigError> {
    if !email.contains('@') || email.contains(char::is_whitespace) || email.starts_with("mailto:") {
        return Err(ConfigError::Invalid {
            key: "acme_email",
            reason: format!("{email:?} is not an email address (write it without mailto:)"),
        });
    }
    Ok(())
}

/// RFC 8555 requires an https directory.
fn checked_directory(directory: &str) -> Result<(), ConfigError> {
    let reason = match url::Url::parse(directory) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() => return Ok(()),
        Ok(_) => format!("{directory:?} must be an https:// URL (RFC 8555 requires https)"),
        Err(e) => format!("{directory:?} is not a URL ({e})"),
    };
    Err(ConfigError::Invalid {
        key: "acme_directory",
        reason,
    })
}

/// A DNS name ACME can validate with tls-alpn-01: letters, digits, hyphens, dots; no wildcard,
/// no IP address, no port.
fn acme_domain(domain: &str) -> Result<(), ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid {
        key: "acme_domain",
        reason: format!("{domain:?} {why}"),
    };
    if domain.starts_with("*.") {
        return Err(invalid(
            "is a wildcard; tls-alpn-01 cannot validate wildcards",
        ));
    }
    if domain.parse::<std::net::IpAddr>().is_ok() {
        return Err(invalid("is an IP address; give a DNS name"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(invalid("is not a DNS name (no scheme, port or path)"));
    }
    Ok(())
}
