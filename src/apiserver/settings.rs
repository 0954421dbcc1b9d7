//! `--from-kube-apiserver` as configured: where the API server is, how issuerd authenticates to
//! it and how often it asks. A description: nothing is read here ([`super::Endpoint::resolve`]
//! reads the files it names).

use std::path::PathBuf;
use std::time::Duration;

/// The API server as a pod reaches it.
pub const IN_CLUSTER_URL: &str = "https://kubernetes.default.svc";
/// The pod's bound ServiceAccount token (kubelet rotates it).
pub const IN_CLUSTER_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The cluster CA bundle mounted beside the token.
pub const IN_CLUSTER_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// Default `--kube-poll`.
pub const DEFAULT_POLL: Duration = Duration::from_secs(60);
/// Default `--kube-max-stale`.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(60 * 60);
/// Default `--kube-timeout`: one whole request, body included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the API server is found and authenticated to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// In a pod (or told so with `--kube-token-file`): a URL, the bound token re-read from its
    /// file on every poll, the cluster CA.
    InCluster {
        /// `--from-kube-apiserver URL`, else [`IN_CLUSTER_URL`].
        url: url::Url,
        /// The token file.
        token_file: PathBuf,
        /// The CA bundle the API server's certificate must chain to.
        ca_file: PathBuf,
    },
    /// A kubeconfig context, read with the `kube` crate's loader.
    Kubeconfig {
        /// `--kubeconfig`; `None`: `$KUBECONFIG` or `~/.kube/config`.
        file: Option<PathBuf>,
        /// `--kube-context`; `None`: the current context.
        context: Option<String>,
        /// `--from-kube-apiserver URL`: used instead of the cluster's `server`.
        url: Option<url::Url>,
    },
    /// Neither was asked for: in a pod when [`IN_CLUSTER_TOKEN_FILE`] exists, the default
    /// kubeconfig otherwise (decided when resolved, as that looks at the filesystem).
    Infer {
        /// `--from-kube-apiserver URL`, if given.
        url: Option<url::Url>,
    },
}

/// `--from-kube-apiserver` and its settings (`[kube]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiServerSettings {
    /// Where the API server is and how to authenticate.
    pub connection: Connection,
    /// How often the documents are asked for.
    pub poll: Duration,
    /// After this long without a good answer, `/readyz` answers 503.
    pub max_stale: Duration,
    /// The most one request may take, body included.
    pub timeout: Duration,
}
