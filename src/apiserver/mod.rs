//! The Kubernetes API server as a key source (`serve --from-kube-apiserver`): its
//! `/.well-known/openid-configuration` and `/openid/v1/jwks`, read with issuerd's own
//! ServiceAccount token, checked, and published through the store as one part of the key set;
//! polled, so the cluster's key rotations are followed while the API server stays private.
//!
//! # Layout
//! - [`settings`]: what the configuration describes (in-cluster, kubeconfig, poll, staleness).
//! - `endpoint`: settings -> the API server's URL, the CA its certificate chains to, the
//!   credentials (kubeconfig contexts through the `kube` crate's loader).
//! - `client`: one poll's two GETs: bearer token re-read from its file, conditional requests,
//!   bounded bodies, a deadline.
//! - `answer`: the two documents -> the cluster's issuer and validated keys; pure.
//! - `poller`: the task: poll, check the issuer, publish the keys' part, keep the last good set.
//! - `status`: what `/statusz` and `/readyz` say about it.

mod answer;
mod client;
mod endpoint;
mod poller;
pub mod settings;
mod status;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use self::answer::ClusterKeys;
pub use self::endpoint::Endpoint;
pub use self::poller::Poller;
pub use self::settings::{ApiServerSettings, Connection};
pub use self::status::ApiServerStatus;

use crate::keys::{KeyError, Reason};
use crate::store::FailureCause;

/// The path kube-apiserver serves the discovery document at.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The path kube-apiserver serves the JWKS at.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// The largest answer read (kube's documents are a few KiB).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Why the API server's keys could not be had. Messages name the input (file, URL) and the
/// reason, never a token or key material.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The kubeconfig could not be loaded (kube's loader said why).
    #[error("kubeconfig: {reason}")]
    Kubeconfig {
        /// Why, with its chain.
        reason: String,
    },
    /// The kubeconfig asks for something issuerd does not do.
    #[error("kubeconfig: {what} is not supported by --from-kube-apiserver; {hint}")]
    Unsupported {
        /// What.
        what: &'static str,
        /// What to do instead.
        hint: &'static str,
    },
    /// A file (token, CA bundle, client certificate) could not be read.
    #[error("cannot read the {what} {}", path.display())]
    ReadFile {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A file (or kubeconfig data) was read and is unusable.
    #[error("the {what} {origin}: {reason}")]
    InvalidFile {
        /// What the file is.
        what: &'static str,
        /// The file, or where in the kubeconfig the data was.
        origin: String,
        /// Why.
        reason: String,
    },
    /// The API server URL cannot be used.
    #[error("API server URL {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for the API server: {0}")]
    Client(String),
    /// Connection or TLS failure.
    #[error("cannot reach the API server at {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The cause, with its chain.
        reason: String,
    },
    /// No whole answer within the deadline.
    #[error("the API server did not answer {url} within {}", humantime::format_duration(*timeout))]
    Timeout {
        /// The URL asked.
        url: String,
        /// The deadline (`--kube-timeout`).
        timeout: Duration,
    },
    /// 401: the token is not accepted.
    #[error(
        "the API server refused issuerd's credentials for {url} (HTTP 401 Unauthorized): the \
         token is expired, revoked, or not one of this cluster"
    )]
    Unauthorized {
        /// The URL asked.
        url: String,
    },
    /// 403: authenticated, but not allowed to read the documents.
    #[error(
        "the API server forbids {url} to issuerd (HTTP 403 Forbidden): bind the ClusterRole \
         system:service-account-issuer-discovery to issuerd's ServiceAccount"
    )]
    Forbidden {
        /// The URL asked.
        url: String,
    },
    /// 404: the API server does not serve the documents.
    #[error(
        "the API server answered {url} with HTTP 404: it serves no OpenID discovery (kube-apiserver \
         does only when its --service-account-issuer is an https URL), or the URL is not the API \
         server's"
    )]
    NotFound {
        /// The URL asked.
        url: String,
    },
    /// Any other status but 200 (and 304 to a conditional request).
    #[error("the API server answered {url} with HTTP {status}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status.
        status: u16,
    },
    /// An answer over [`MAX_DOCUMENT_BYTES`].
    #[error("the API server's answer to {url} is larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge {
        /// The URL asked.
        url: String,
    },
    /// The discovery document is not one.
    #[error("the API server's {url}: {reason}")]
    Invalid {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
    /// The JWKS (or one of its keys) is refused, as a key file would be.
    #[error("the API server's {url}: {}{reason}", location.as_ref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Key {
        /// The URL asked.
        url: String,
        /// The JWK, when the problem is one of them (`JWK #2`).
        location: Option<String>,
        /// Why.
        reason: Reason,
    },
    /// The cluster signs tokens with another issuer than the one published.
    #[error(
        "the API server's issuer is {cluster:?}, not {published:?} (--issuer): the cluster's \
         tokens carry its issuer, so relying parties would refuse them; set the API server's \
         --service-account-issuer to the published issuer, or omit --issuer to adopt the cluster's"
    )]
    IssuerMismatch {
        /// The API server's.
        cluster: String,
        /// The one served.
        published: String,
    },
    /// The keys clash with the key files' (one kid on two different keys).
    #[error(transparent)]
    Conflict(#[from] KeyError),
}

impl ApiServerError {
    /// The `cause` this failure is counted under.
    pub fn cause(&self) -> FailureCause {
        match self {
            Self::Kubeconfig { .. }
            | Self::Unsupported { .. }
            | Self::ReadFile { .. }
            | Self::InvalidFile { .. } => FailureCause::Read,
            Self::Url { .. }
            | Self::Client(_)
            | Self::Unreachable { .. }
            | Self::Timeout { .. }
            | Self::Unauthorized { .. }
            | Self::Forbidden { .. }
            | Self::NotFound { .. }
            | Self::Status { .. }
            | Self::TooLarge { .. } => FailureCause::ApiServer,
            Self::Invalid { .. } => FailureCause::Rejected,
            Self::Key {
                reason: Reason::EmptyJwks,
                ..
            } => FailureCause::NoKeys,
            Self::Key { .. } => FailureCause::Rejected,
            Self::IssuerMismatch { .. } => FailureCause::IssuerMismatch,
            Self::Conflict(error) => FailureCause::of(error),
        }
    }

    /// Whether the error is about what the user gave (kubeconfig, files, URL, `--issuer`), not
    /// about what the API server did: the exit status tells them apart.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Self::Kubeconfig { .. }
                | Self::Unsupported { .. }
                | Self::ReadFile { .. }
                | Self::InvalidFile { .. }
                | Self::Url { .. }
                | Self::IssuerMismatch { .. }
        )
    }

    /// A short, fixed name of the error's kind (the `error` field of `/statusz`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kubeconfig { .. } | Self::Unsupported { .. } => "kubeconfig",
            Self::ReadFile { .. } | Self::InvalidFile { .. } => "file",
            Self::Url { .. } | Self::Client(_) => "client",
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::Status { .. } => "status",
            Self::TooLarge { .. } => "too_large",
            Self::Invalid { .. } => "invalid_discovery",
            Self::Key {
                reason: Reason::PrivateJwk(_),
                ..
            } => "private_key",
            Self::Key { .. } => "invalid_jwks",
            Self::IssuerMismatch { .. } => "issuer_mismatch",
            Self::Conflict(_) => "kid_conflict",
        }
    }
}
