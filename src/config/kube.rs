//! `[kube]` and `--from-kube-apiserver`: the Kubernetes API server as a key source, validated.

use std::path::{Path, PathBuf};

use super::file::KubeSection;
use super::{ConfigError, absolute, nonzero_duration, relative_to_file};
use crate::apiserver::settings::{
    ApiServerSettings, Connection, DEFAULT_MAX_STALE, DEFAULT_POLL, DEFAULT_TIMEOUT,
    IN_CLUSTER_CA_FILE, IN_CLUSTER_TOKEN_FILE, IN_CLUSTER_URL,
};
use crate::cli::KubeArgs;

/// The value of `--from-kube-apiserver` given without a URL.
const INFER: &str = "auto";

/// The settings, or `None` without `--from-kube-apiserver` (then no other `[kube]` setting may
/// be given).
pub(super) fn kube(
    args: KubeArgs,
    file: &KubeSection,
    file_dir: Option<&Path>,
) -> Result<Option<ApiServerSettings>, ConfigError> {
    let from_file = |path: &Option<PathBuf>| path.clone().map(|p| relative_to_file(file_dir, p));
    let kubeconfig = args.kubeconfig.or_else(|| from_file(&file.kubeconfig));
    let context = args.kube_context.or_else(|| file.context.clone());
    let token_file = args.kube_token_file.or_else(|| from_file(&file.token_file));
    let ca_file = args.kube_ca_file.or_else(|| from_file(&file.ca_file));
    let poll = args.kube_poll.or(file.poll);
    let max_stale = args.kube_max_stale.or(file.max_stale);
    let timeout = args.kube_timeout.or(file.timeout);
    let Some(apiserver) = args.from_kube_apiserver.or_else(|| file.apiserver.clone()) else {
        let stray = [
            ("kubeconfig", kubeconfig.is_some()),
            ("kube_context", context.is_some()),
            ("kube_token_file", token_file.is_some()),
            ("kube_ca_file", ca_file.is_some()),
            ("kube_poll", poll.is_some()),
            ("kube_max_stale", max_stale.is_some()),
            ("kube_timeout", timeout.is_some()),
        ];
        return match stray.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(ConfigError::Invalid {
                key,
                reason: "is set but --from-kube-apiserver is not (`apiserver` under `[kube]`)"
                    .into(),
            }),
            None => Ok(None),
        };
    };
    let url = match apiserver.trim() {
        "" | INFER => None,
        text => Some(api_server_url(text)?),
    };
    let kubeconfig = kubeconfig.map(|p| absolute("kubeconfig", p)).transpose()?;
    let in_cluster = token_file.is_some() || ca_file.is_some();
    let connection = match (in_cluster, kubeconfig.is_some() || context.is_some()) {
        (true, true) => {
            return Err(ConfigError::Invalid {
                key: if token_file.is_some() {
                    "kube_token_file"
                } else {
                    "kube_ca_file"
                },
                reason: "cannot be combined with --kubeconfig or --kube-context: the token and \
                         CA come from the pod's files or from the kubeconfig, not both"
                    .into(),
            });
        }
        (true, false) => Connection::InCluster {
            url: url.unwrap_or_else(|| IN_CLUSTER_URL.parse().expect("a valid URL")),
            token_file: absolute(
                "kube_token_file",
                token_file.unwrap_or_else(|| IN_CLUSTER_TOKEN_FILE.into()),
            )?,
            ca_file: absolute(
                "kube_ca_file",
                ca_file.unwrap_or_else(|| IN_CLUSTER_CA_FILE.into()),
            )?,
        },
        (false, true) => Connection::Kubeconfig {
            file: kubeconfig,
            context,
            url,
        },
        (false, false) => Connection::Infer { url },
    };
    Ok(Some(ApiServerSettings {
        connection,
        poll: nonzero_duration("kube_poll", poll, DEFAULT_POLL)?,
        max_stale: nonzero_duration("kube_max_stale", max_stale, DEFAULT_MAX_STALE)?,
        timeout: nonzero_duration("kube_timeout", timeout, DEFAULT_TIMEOUT)?,
    }))
}

/// An absolute https URL without query or fragment (a path is kept: some proxies put the API
/// server under one).
fn api_server_url(text: &str) -> Result<url::Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        key: "from_kube_apiserver",
        reason: format!("{text:?} {reason}"),
    };
    let url = url::Url::parse(text).map_err(|e| invalid(&format!("is not a URL ({e})")))?;
    if url.scheme() != "https" {
        return Err(invalid(
            "is not https: issuerd sends its credentials to the API server over TLS only",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("has a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "carries credentials; give a token file or kubeconfig instead",
        ));
    }
    Ok(url)
}
