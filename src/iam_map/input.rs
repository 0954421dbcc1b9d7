//! The two input forms, read down to what the map is made of: the cluster name, the raw
//! `serviceAccountExternalPermissions` entries and the additional audiences.
//!
//! - A kOps manifest: `kops get cluster -o yaml`, or the stream of `kops get all -o yaml`
//!   (Cluster, InstanceGroups, ...). The one `kind: Cluster` document is used, and in it only
//!   `metadata.name`, `spec.iam.serviceAccountExternalPermissions` and
//!   `spec.serviceAccountIssuerDiscovery.additionalAudiences`: every other field of a Cluster,
//!   and every other document, is ignored, whatever it holds.
//! - A standalone map: one document of `clusterName`, `serviceAccountExternalPermissions` and
//!   optional `additionalAudiences`, and nothing else (an unknown key is a typo).
//!
//! A stream in which any document has a `kind` or an `apiVersion` is a kOps manifest.

use serde_json::{Map, Value};

use super::error::DocumentError;
use super::policy::kind;

/// The API versions of kOps's Cluster; the fields read here are the same in both.
const KOPS_API_VERSIONS: [&str; 2] = ["kops.k8s.io/v1alpha2", "kops.k8s.io/v1alpha3"];

/// Which form the map was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A kOps Cluster manifest (alone or in a stream).
    Kops,
    /// A standalone IAM map.
    Standalone,
}

/// What a map is made of, before its entries are checked.
#[derive(Debug)]
pub(super) struct Raw {
    pub(super) form: Form,
    pub(super) cluster: String,
    pub(super) entries: Vec<Value>,
    pub(super) audiences: Vec<String>,
}

/// Why the input could not be read into a [`Raw`].
#[derive(Debug)]
pub(super) enum ReadError {
    Yaml(serde_saphyr::Error),
    Document(DocumentError),
}

impl From<DocumentError> for ReadError {
    fn from(error: DocumentError) -> Self {
        Self::Document(error)
    }
}

/// The parser's settings: its default budget (nesting depth, documents, nodes), duplicate keys
/// refused (its default), compact messages, and aliases held to a small multiple of the input
/// (every document becomes a tree, so an alias is a copy).
fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    options.alias_limits.max_alias_expansions_per_anchor = 64;
    options.alias_limits.max_total_replayed_events = 65_536;
    options.alias_limits.max_replay_stack_depth = 16;
    options
}

/// Reads `text` in whichever form it is written.
pub(super) fn read(text: &str) -> Result<Raw, ReadError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options()).map_err(ReadError::Yaml)?;
    let has_kind = |d: &Value| d.get("kind").is_some() || d.get("apiVersion").is_some();
    if documents.iter().any(has_kind) {
        return Ok(kops(&documents)?);
    }
    match documents.as_slice() {
        [] => Err(DocumentError::Empty.into()),
        [one] => Ok(standalone(one)?),
        many => Err(DocumentError::SeveralMaps(many.len()).into()),
    }
}

/// The one Cluster of a kOps stream.
fn kops(documents: &[Value]) -> Result<Raw, DocumentError> {
    let kind_of = |d: &Value| d.get("kind").and_then(Value::as_str).map(str::to_owned);
    let clusters: Vec<&Value> = documents
        .iter()
        .filter(|d| kind_of(d).as_deref() == Some("Cluster"))
        .collect();
    let cluster = match clusters.as_slice() {
        [] => {
            return Err(DocumentError::NoCluster {
                kinds: documents
                    .iter()
                    .map(|d| kind_of(d).unwrap_or_else(|| "(none)".into()))
                    .collect(),
            });
        }
        [one] => *one,
        several => {
            return Err(DocumentError::SeveralClusters {
                count: several.len(),
                names: several
                    .iter()
                    .filter_map(|d| d.pointer("/metadata/name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect(),
            });
        }
    };
    let api_version = cluster.get("apiVersion").and_then(Value::as_str);
    if !api_version.is_some_and(|v| KOPS_API_VERSIONS.contains(&v)) {
        return Err(DocumentError::ApiVersion {
            found: api_version.unwrap_or_default().to_owned(),
        });
    }
    let name = at(cluster, &["metadata", "name"])?;
    let name = match name {
        None => return Err(DocumentError::Missing("metadata.name")),
        Some(value) => as_string(value, "metadata.name")?,
    };
    let cluster_name = checked_cluster_name(name, "metadata.name")?;
    let entries = match at(
        cluster,
        &["spec", "iam", "serviceAccountExternalPermissions"],
    )? {
        None => Vec::new(),
        Some(value) => as_list(value, "spec.iam.serviceAccountExternalPermissions")?,
    };
    let audiences = match at(
        cluster,
        &[
            "spec",
            "serviceAccountIssuerDiscovery",
            "additionalAudiences",
        ],
    )? {
        None => Vec::new(),
        Some(value) => audiences(
            value,
            "spec.serviceAccountIssuerDiscovery.additionalAudiences",
        )?,
    };
    Ok(Raw {
        form: Form::Kops,
        cluster: cluster_name,
        entries,
        audiences,
    })
}

/// A standalone map: its three keys and nothing else.
fn standalone(document: &Value) -> Result<Raw, DocumentError> {
    let Value::Object(fields) = document else {
        return Err(DocumentError::Type {
            key: "the document".into(),
            expected: "a mapping",
            found: kind(document),
        });
    };
    if let Some(key) = fields.keys().find(|k| {
        ![
            "clusterName",
            "serviceAccountExternalPermissions",
            "additionalAudiences",
        ]
        .contains(&k.as_str())
    }) {
        return Err(DocumentError::UnknownKey(key.clone()));
    }
    let name = match present(fields, "clusterName") {
        None => return Err(DocumentError::Missing("clusterName")),
        Some(value) => as_string(value, "clusterName")?,
    };
    let cluster = checked_cluster_name(name, "clusterName")?;
    let entries = match present(fields, "serviceAccountExternalPermissions") {
        None => return Err(DocumentError::Missing("serviceAccountExternalPermissions")),
        Some(value) => as_list(value, "serviceAccountExternalPermissions")?,
    };
    let audiences = match present(fields, "additionalAudiences") {
        None => Vec::new(),
        Some(value) => audiences(value, "additionalAudiences")?,
    };
    Ok(Raw {
        form: Form::Standalone,
        cluster,
        entries,
        audiences,
    })
}

/// The value at `path` below `value`; `None` when a step is missing or null (Go's zero
/// value), an error when a step is not a mapping.
fn at<'a>(value: &'a Value, path: &[&str]) -> Result<Option<&'a Value>, DocumentError> {
    let mut here = value;
    for (depth, key) in path.iter().enumerate() {
        let Value::Object(fields) = here else {
            return Err(DocumentError::Type {
                key: path[..depth].join("."),
                expected: "a mapping",
                found: kind(here),
            });
        };
        match present(fields, key) {
            None => return Ok(None),
            Some(next) => here = next,
        }
    }
    Ok(Some(here))
}

/// `fields[key]`, unless missing or null.
fn present<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    fields.get(key).filter(|v| !v.is_null())
}

fn as_string<'a>(value: &'a Value, key: &str) -> Result<&'a str, DocumentError> {
    value.as_str().ok_or_else(|| DocumentError::Type {
        key: key.to_owned(),
        expected: "a string",
        found: kind(value),
    })
}

fn as_list(value: &Value, key: &str) -> Result<Vec<Value>, DocumentError> {
    match value {
        Value::Array(items) => Ok(items.clone()),
        other => Err(DocumentError::Type {
            key: key.to_owned(),
            expected: "a list",
            found: kind(other),
        }),
    }
}

/// A list of non-empty strings.
fn audiences(value: &Value, key: &'static str) -> Result<Vec<String>, DocumentError> {
    as_list(value, key)?
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::String(s) if s.is_empty() => Err(DocumentError::Audience { key, index }),
            Value::String(s) => Ok(s),
            other => Err(DocumentError::Type {
                key: format!("{key}[{index}]"),
                expected: "a string",
                found: kind(&other),
            }),
        })
        .collect()
}

/// `name`, if it is a DNS-1123 subdomain, as kOps requires of a cluster's name.
fn checked_cluster_name(name: &str, key: &'static str) -> Result<String, DocumentError> {
    if is_dns_subdomain(name) {
        Ok(name.to_owned())
    } else {
        Err(DocumentError::ClusterName {
            key,
            name: name.to_owned(),
        })
    }
}

/// Kubernetes' `IsDNS1123Subdomain`: at most 253 characters, dot-separated labels of lower-case
/// letters, digits and `-`, each starting and ending with a letter or digit.
pub(super) fn is_dns_subdomain(name: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let bytes = label.as_bytes();
            bytes.first().is_some_and(|&b| alnum(b))
                && bytes.last().is_some_and(|&b| alnum(b))
                && bytes.iter().all(|&b| alnum(b) || b == b'-')
        })
}
