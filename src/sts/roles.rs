//! The `--roles` file: the account's IAM OIDC providers and roles, in the IAM API's own names,
//! with each role's trust policy as the very JSON attached to it in IAM.
//!
//! ```json
//! {
//!   "OpenIDConnectProviders": [
//!     {"Url": "https://oidc.example.com/cluster", "ClientIDList": ["sts.amazonaws.com"]}
//!   ],
//!   "Roles": [
//!     {"Arn": "arn:aws:iam::111122223333:role/app", "MaxSessionDuration": 3600,
//!      "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [...]}}
//!   ]
//! }
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::policy::{PolicyError, TrustPolicy};
use crate::arn::{self, RoleArn};
use crate::irsa::host_path;

/// IAM's default `MaxSessionDuration`.
pub const DEFAULT_MAX_SESSION_SECS: u32 = 3600;
/// The least `DurationSeconds`.
pub const MIN_SESSION_SECS: u32 = 900;
/// The most `MaxSessionDuration` IAM allows.
pub const MAX_SESSION_SECS: u32 = 43_200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(rename = "OpenIDConnectProviders")]
    providers: Vec<RawProvider>,
    #[serde(rename = "Roles")]
    roles: Vec<RawRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    #[serde(rename = "Url")]
    url: String,
    #[serde(rename = "ClientIDList")]
    client_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    #[serde(rename = "Arn")]
    arn: String,
    #[serde(rename = "MaxSessionDuration", default)]
    max_session_duration: Option<u32>,
    #[serde(rename = "AssumeRolePolicyDocument")]
    trust_policy: Value,
}

/// An IAM OIDC identity provider.
#[derive(Clone, Debug)]
pub struct Provider {
    /// The issuer URL, compared byte for byte with `iss`.
    pub url: String,
    /// `HOST/PATH`: the ARN suffix and condition key prefix.
    pub host_path: String,
    /// Accepted audiences.
    pub client_ids: Vec<String>,
}

impl Provider {
    /// `arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST/PATH`: its ARN in the account (and
    /// partition) of a role.
    pub fn arn(&self, role: &RoleArn) -> String {
        arn::oidc_provider(role.partition(), role.account(), &self.host_path)
    }
}

/// A role that web identities may assume.
#[derive(Clone, Debug)]
pub struct Role {
    /// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
    pub arn: RoleArn,
    /// Most `DurationSeconds`.
    pub max_session_secs: u32,
    /// The trust policy.
    pub trust_policy: TrustPolicy,
    /// A stable `AROA…` role ID derived from the ARN.
    pub role_id: String,
}

/// Providers and roles.
#[derive(Clone, Debug)]
pub struct Roles {
    /// The providers.
    pub providers: Vec<Provider>,
    /// The roles.
    pub roles: Vec<Role>,
}

/// Why the roles file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    /// Unreadable.
    #[error("cannot read roles file {}", path.display())]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Invalid.
    #[error("roles file {}: {reason}", path.display())]
    Invalid {
        /// Path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Roles {
    /// Reads and validates the file. `allow_insecure` permits http provider URLs.
    pub fn load(path: &Path, allow_insecure: bool) -> Result<Self, RolesError> {
        let text = std::fs::read(path).map_err(|source| RolesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, allow_insecure).map_err(|reason| RolesError::Invalid {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses the JSON text.
    pub fn parse(text: &[u8], allow_insecure: bool) -> Result<Self, String> {
        let raw: RawFile = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let providers = raw
            .providers
            .into_iter()
            .map(|p| provider(p, allow_insecure))
            .collect::<Result<Vec<_>, _>>()?;
        let roles = raw
            .roles
            .into_iter()
            .enumerate()
            .map(|(i, raw)| role(i, raw))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { providers, roles })
    }

    /// The provider whose URL is exactly `iss`.
    pub fn provider(&self, iss: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.url == iss)
    }

    /// The role with this ARN.
    pub fn role(&self, arn: &RoleArn) -> Option<&Role> {
        self.roles.iter().find(|r| &r.arn == arn)
    }
}

fn provider(raw: RawProvider, allow_insecure: bool) -> Result<Provider, String> {
    let url = url::Url::parse(&raw.url).map_err(|e| format!("provider Url {:?}: {e}", raw.url))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(format!(
                "provider Url {:?} uses http; AWS requires https (pass --allow-insecure for local testing)",
                raw.url
            ));
        }
        other => {
            return Err(format!(
                "provider Url {:?}: scheme {other} is not https",
                raw.url
            ));
        }
    }
    if raw.client_ids.is_empty() {
        return Err(format!("provider {:?} has an empty ClientIDList", raw.url));
    }
    Ok(Provider {
        host_path: host_path(&raw.url),
        url: raw.url,
        client_ids: raw.client_ids,
    })
}

fn role(index: usize, raw: RawRole) -> Result<Role, String> {
    let arn: RoleArn = raw
        .arn
        .parse()
        .map_err(|e| format!("Roles[{index}]: {e}"))?;
    let max_session_secs = raw.max_session_duration.unwrap_or(DEFAULT_MAX_SESSION_SECS);
    if !(DEFAULT_MAX_SESSION_SECS..=MAX_SESSION_SECS).contains(&max_session_secs) {
        return Err(format!(
            "role {:?}: MaxSessionDuration {max_session_secs} is outside 3600..=43200",
            raw.arn
        ));
    }
    let trust_policy = TrustPolicy::parse(&raw.trust_policy)
        .map_err(|PolicyError(e)| format!("role {:?}: trust policy: {e}", raw.arn))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, raw.arn.as_bytes());
    Ok(Role {
        max_session_secs,
        trust_policy,
        role_id: format!(
            "AROA{}",
            super::response::base32_upper(&digest.as_ref()[..10])
        ),
        arn,
    })
}
