//! Where the mirror publishes: the `s3://` bucket and prefix, the object keys of both documents,
//! the ACL and the other `--mirror` settings. Pure description, no I/O, so configuration can build
//! it; the `mirror` module does the work.

use std::time::Duration;

use url::Url;

use crate::issuer::{DISCOVERY_SUFFIX, Issuer};

/// Default first retry delay after a failed sync.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Default longest retry delay.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Default interval between checks of an in-sync bucket (repairs drift made by others).
pub const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(300);

/// Canned object ACL to set after each write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MirrorAcl {
    /// Leave ACLs alone: the bucket policy decides (the recommended setup).
    #[default]
    Default,
    /// `public-read`, for buckets that still allow ACLs.
    PublicRead,
}

/// The bucket keys of both documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Key of the discovery document.
    pub discovery_key: String,
    /// Key of the JWKS.
    pub jwks_key: String,
}

impl Layout {
    /// Keys under `prefix`: the documents' paths relative to the issuer's path, so
    /// `s3://b/p` holds `p/.well-known/openid-configuration` and `p/openid/v1/jwks`. A JWKS URI
    /// outside the issuer's path keeps its whole path under the prefix (and a warning says so).
    pub fn new(issuer: &Issuer, prefix: &str) -> (Self, Vec<String>) {
        let base = issuer_path(issuer);
        let join = |rest: &str| {
            let rest = rest.trim_start_matches('/');
            if prefix.is_empty() {
                rest.to_owned()
            } else {
                format!("{prefix}/{rest}")
            }
        };
        let mut warnings = Vec::new();
        let jwks_rest = match issuer.jwks_path().strip_prefix(base.as_str()) {
            Some(rest) if base.is_empty() || rest.starts_with('/') => rest.to_owned(),
            _ => {
                warnings.push(format!(
                    "the JWKS path {} is not under the issuer path {base:?}: its object key keeps \
                     the whole path under the mirror prefix, and relying parties fetch it from \
                     jwks_uri {}, which must serve that object",
                    issuer.jwks_path(),
                    issuer.jwks_uri()
                ));
                issuer.jwks_path().to_owned()
            }
        };
        let layout = Self {
            discovery_key: join(DISCOVERY_SUFFIX),
            jwks_key: join(&jwks_rest),
        };
        (layout, warnings)
    }
}

/// The issuer URL's path without its trailing `/` (empty for a bare host).
fn issuer_path(issuer: &Issuer) -> String {
    issuer
        .discovery_path()
        .strip_suffix(DISCOVERY_SUFFIX)
        .unwrap_or_default()
        .to_owned()
}

/// `--mirror` and its companions, validated.
#[derive(Clone, Debug)]
pub struct MirrorConfig {
    /// The bucket and prefix.
    pub target: S3Target,
    /// `--s3-endpoint`: an S3-compatible endpoint, addressed path-style.
    pub endpoint: Option<Url>,
    /// `--s3-region` (else `AWS_REGION` / `AWS_DEFAULT_REGION`).
    pub region: Option<String>,
    /// `--public-url`: where relying parties read the documents, if not at the issuer URL.
    pub public_url: Option<Url>,
    /// `--mirror-acl`.
    pub acl: MirrorAcl,
    /// Fixed credentials instead of the AWS chain (library users and tests; never a flag).
    pub credentials: Option<StaticCredentials>,
    /// First retry delay.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How often an in-sync bucket is checked again.
    pub resync_interval: Duration,
}

impl MirrorConfig {
    /// A config for `target` with every other setting at its default.
    pub fn new(target: S3Target) -> Self {
        Self {
            target,
            endpoint: None,
            region: None,
            public_url: None,
            acl: MirrorAcl::Default,
            credentials: None,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            resync_interval: DEFAULT_RESYNC_INTERVAL,
        }
    }

    /// Things that are allowed but probably wrong, for the caller to log: chiefly an issuer URL
    /// that is not the bucket's own URL while nothing says where the bucket is published.
    pub fn warnings(&self, issuer: &Issuer) -> Vec<String> {
        let (_, mut warnings) = Layout::new(issuer, &self.target.prefix);
        if self.public_url.is_none() && !self.target.serves(issuer, self.endpoint.as_ref()) {
            warnings.push(format!(
                "issuer {} is not the bucket's own URL ({}): relying parties will read the \
                 documents from the issuer URL, so something (a CDN, a custom domain) must serve \
                 {} there; pass --public-url to check the URL that serves the bucket",
                issuer.url(),
                self.target
                    .bucket_url(self.endpoint.as_ref(), self.region.as_deref()),
                self.target
            ));
        }
        warnings
    }
}

/// An access key pair.
#[derive(Clone)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// `s3://BUCKET/PREFIX`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Target {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Target {
    /// Parses `s3://bucket[/prefix]`. `gs://` and `az://` are refused with the reason.
    pub fn parse(text: &str) -> Result<Self, BucketError> {
        let invalid = |reason: &str| BucketError::Target {
            url: text.to_owned(),
            reason: reason.to_owned(),
        };
        let url = Url::parse(text).map_err(|e| invalid(&format!("not a URL ({e})")))?;
        match url.scheme() {
            "s3" => {}
            "gs" | "az" | "abfs" | "abfss" => {
                return Err(invalid(
                    "only s3:// is supported: the public-read check, ACLs and URL mapping are \
                     S3's; serve the documents from issuerd or render them for other stores",
                ));
            }
            other => {
                return Err(invalid(&format!(
                    "unknown scheme {other:?}, expected s3://"
                )));
            }
        }
        let bucket = url.host_str().unwrap_or_default().to_owned();
        if bucket.is_empty() {
            return Err(invalid("no bucket name"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("no query or fragment allowed"));
        }
        Ok(Self {
            bucket,
            prefix: url.path().trim_matches('/').to_owned(),
        })
    }

    /// The URL at which the bucket serves the prefix: path-style under `endpoint`, else
    /// `https://BUCKET.s3.REGION.amazonaws.com/PREFIX`.
    pub fn bucket_url(&self, endpoint: Option<&Url>, region: Option<&str>) -> String {
        let path = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("/{}", self.prefix)
        };
        match endpoint {
            Some(endpoint) => format!(
                "{}/{}{path}",
                endpoint.as_str().trim_end_matches('/'),
                self.bucket
            ),
            None => format!(
                "https://{}.s3.{}.amazonaws.com{path}",
                self.bucket,
                region.unwrap_or("<region>")
            ),
        }
    }

    /// Whether `issuer` is a URL the bucket itself serves the prefix at (virtual-hosted or
    /// path-style on AWS, or path-style under `endpoint`).
    pub fn serves(&self, issuer: &Issuer, endpoint: Option<&Url>) -> bool {
        let Ok(url) = Url::parse(issuer.url()) else {
            return false;
        };
        let path = url.path().trim_matches('/');
        if let Some(endpoint) = endpoint {
            let path_style = format!("{}/{}", self.bucket, self.prefix);
            return url.host_str() == endpoint.host_str()
                && url.port_or_known_default() == endpoint.port_or_known_default()
                && path == path_style.trim_matches('/');
        }
        let host = url.host_str().unwrap_or_default();
        let aws = host.ends_with(".amazonaws.com");
        let virtual_hosted = host.starts_with(&format!("{}.s3.", self.bucket))
            || host.starts_with(&format!("{}.s3-", self.bucket));
        let path_style = (host.starts_with("s3.") || host.starts_with("s3-"))
            && path
                .strip_prefix(self.bucket.as_str())
                .map(|p| p.trim_matches('/'))
                == Some(self.prefix.as_str());
        url.scheme() == "https" && aws && ((virtual_hosted && path == self.prefix) || path_style)
    }
}

impl std::fmt::Display for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A `--mirror` value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// Not an `s3://BUCKET[/PREFIX]` URL.
    #[error("mirror target {url:?}: {reason}")]
    Target {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(url: &str, jwks: Option<&str>) -> Issuer {
        Issuer::new(url, jwks, false).unwrap()
    }

    #[test]
    fn keys_follow_the_issuer_paths_under_the_prefix() {
        let (layout, warnings) = Layout::new(&issuer("https://h.example/clusters/prod", None), "p");
        assert_eq!(layout.discovery_key, "p/.well-known/openid-configuration");
        assert_eq!(layout.jwks_key, "p/openid/v1/jwks");
        assert!(warnings.is_empty());

        let (layout, _) = Layout::new(&issuer("https://h.example", None), "");
        assert_eq!(layout.discovery_key, ".well-known/openid-configuration");
        assert_eq!(layout.jwks_key, "openid/v1/jwks");

        let custom = issuer("https://h.example/a", Some("https://h.example/a/keys.json"));
        assert_eq!(Layout::new(&custom, "x").0.jwks_key, "x/keys.json");

        let outside = issuer("https://h.example/a", Some("https://cdn.example/k/jwks"));
        let (layout, warnings) = Layout::new(&outside, "x");
        assert_eq!(layout.jwks_key, "x/k/jwks");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn targets_parse_and_other_schemes_are_refused_with_a_reason() {
        let target = S3Target::parse("s3://bucket/some/prefix/").unwrap();
        assert_eq!(target.bucket, "bucket");
        assert_eq!(target.prefix, "some/prefix");
        assert_eq!(target.to_string(), "s3://bucket/some/prefix");
        assert_eq!(S3Target::parse("s3://bucket").unwrap().prefix, "");
        for bad in [
            "gs://b/p",
            "az://b/p",
            "https://b/p",
            "s3:///p",
            "not a url",
        ] {
            assert!(S3Target::parse(bad).is_err(), "{bad}");
        }
        let message = S3Target::parse("gs://b/p").unwrap_err().to_string();
        assert!(message.contains("only s3://"), "{message}");
    }

    #[test]
    fn the_bucket_url_mapping() {
        let target = S3Target::parse("s3://b/p").unwrap();
        for (url, serves) in [
            ("https://b.s3.eu-west-1.amazonaws.com/p", true),
            ("https://b.s3.amazonaws.com/p", true),
            ("https://s3.eu-west-1.amazonaws.com/b/p", true),
            ("https://b.s3.eu-west-1.amazonaws.com/other", false),
            ("https://c.s3.eu-west-1.amazonaws.com/p", false),
            ("https://oidc.example.com/p", false),
        ] {
            assert_eq!(target.serves(&issuer(url, None), None), serves, "{url}");
        }
        assert_eq!(
            target.bucket_url(None, Some("eu-west-1")),
            "https://b.s3.eu-west-1.amazonaws.com/p"
        );
        let endpoint = Url::parse("http://127.0.0.1:9000").unwrap();
        let local = Issuer::new("http://127.0.0.1:9000/b/p", None, true).unwrap();
        assert!(target.serves(&local, Some(&endpoint)));
        assert_eq!(
            target.bucket_url(Some(&endpoint), None),
            "http://127.0.0.1:9000/b/p"
        );

        let mut config = MirrorConfig::new(target);
        assert!(
            config
                .warnings(&issuer("https://b.s3.eu-west-1.amazonaws.com/p", None))
                .is_empty()
        );
        let warnings = config.warnings(&issuer("https://oidc.example.com/p", None));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("--public-url"), "{warnings:?}");
        config.public_url = Some(Url::parse("https://oidc.example.com/p").unwrap());
        assert!(
            config
                .warnings(&issuer("https://oidc.example.com/p", None))
                .is_empty()
        );
    }
}
