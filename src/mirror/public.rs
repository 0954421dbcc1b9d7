//! The anonymous read check: fetch both documents the way a relying party (AWS STS) would and
//! compare the bytes, so a bucket that blocks public access shows up here instead of in STS.

use std::time::Duration;

use url::Url;

use super::MirrorError;
use crate::document::Document;
use crate::issuer::{DISCOVERY_SUFFIX, Issuer};
use crate::store::Snapshot;

/// How long one anonymous GET may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The URLs relying parties use, and an HTTP client without credentials.
#[derive(Clone, Debug)]
pub struct PublicCheck {
    client: reqwest::Client,
    discovery: Url,
    jwks: Url,
}

impl PublicCheck {
    /// The issuer's own URLs, or the same paths under `public_url` (which stands for the issuer
    /// URL: a CDN, a custom domain, or a local S3-compatible server).
    pub fn new(issuer: &Issuer, public_url: Option<&Url>) -> Result<Self, MirrorError> {
        let parse = |text: &str| {
            Url::parse(text).map_err(|e| MirrorError::PublicAccess {
                url: text.to_owned(),
                reason: format!("not a URL ({e})"),
            })
        };
        let (discovery, jwks) = match public_url {
            None => (
                parse(&format!(
                    "{}{DISCOVERY_SUFFIX}",
                    issuer.url().trim_end_matches('/')
                ))?,
                parse(issuer.jwks_uri())?,
            ),
            Some(base) => {
                let base = base.as_str().trim_end_matches('/');
                let issuer_path = issuer
                    .discovery_path()
                    .strip_suffix(DISCOVERY_SUFFIX)
                    .unwrap_or_default();
                let jwks = match issuer.jwks_path().strip_prefix(issuer_path) {
                    Some(rest) if rest.starts_with('/') => parse(&format!("{base}{rest}"))?,
                    _ => parse(issuer.jwks_uri())?,
                };
                (parse(&format!("{base}{DISCOVERY_SUFFIX}"))?, jwks)
            }
        };
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(MirrorError::HttpClient)?;
        Ok(Self {
            client,
            discovery,
            jwks,
        })
    }

    /// Both URLs, discovery first.
    pub fn urls(&self) -> [&Url; 2] {
        [&self.discovery, &self.jwks]
    }

    /// Fetches both documents anonymously; an error names the first that is not byte-equal.
    pub async fn check(&self, snapshot: &Snapshot) -> Result<(), MirrorError> {
        self.fetch(&self.jwks, &snapshot.jwks).await?;
        self.fetch(&self.discovery, &snapshot.discovery).await
    }

    async fn fetch(&self, url: &Url, document: &Document) -> Result<(), MirrorError> {
        let failed = |reason: String| MirrorError::PublicAccess {
            url: url.to_string(),
            reason,
        };
        let response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| failed(format!("request failed ({})", crate::log::error_chain(&e))))?;
        let status = response.status();
        if !status.is_success() {
            let hint = if status == reqwest::StatusCode::FORBIDDEN {
                ": the bucket does not allow anonymous reads (Block Public Access, no public \
                 bucket policy or object ACL); relying parties such as AWS STS will fail the same way"
            } else {
                ""
            };
            return Err(failed(format!("HTTP {status}{hint}")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(format!("reading the body failed ({e})")))?;
        if body != document.body {
            return Err(failed(format!(
                "returned {} bytes that differ from the {} bytes served (a stale cache or \
                 another writer?)",
                body.len(),
                document.body.len()
            )));
        }
        Ok(())
    }
}
