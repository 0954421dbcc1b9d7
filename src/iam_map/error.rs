//! Why an IAM map is refused: every message names the file, and, for an entry, its place and
//! ServiceAccount (`serviceAccountExternalPermissions[2] (default/app)`), then the reason.

use std::fmt;
use std::path::PathBuf;

use super::policy::{InlinePolicyError, PolicyArnError};

/// An IAM map that cannot be read or is refused.
#[derive(Debug, thiserror::Error)]
pub enum IamMapError {
    /// The file could not be read.
    #[error("cannot read IAM map {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is larger than any Cluster manifest.
    #[error("{}: IAM maps over {} bytes are refused", file.display(), super::MAX_BYTES)]
    TooLarge {
        /// The file.
        file: PathBuf,
    },
    /// Not YAML (or over the parser's budget: nesting, aliases, documents).
    #[error("{}: not valid YAML", file.display())]
    Yaml {
        /// The file.
        file: PathBuf,
        /// The parser's error, with its line and column (boxed: it is large).
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// YAML, but not a kOps Cluster manifest or a standalone map.
    #[error("{}: {problem}", file.display())]
    Document {
        /// The file.
        file: PathBuf,
        /// Why.
        problem: DocumentError,
    },
    /// Entries are refused: every refusal, one a line, in file order.
    #[error("{}", EntryLines { file, problems })]
    Entries {
        /// The file.
        file: PathBuf,
        /// Each refused entry and why.
        problems: Vec<EntryProblem>,
    },
}

/// One line per problem, each naming the file.
struct EntryLines<'a> {
    file: &'a PathBuf,
    problems: &'a [EntryProblem],
}

impl fmt::Display for EntryLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {problem}", self.file.display())?;
        }
        Ok(())
    }
}

/// Why the document as a whole is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// No YAML document at all.
    #[error("is empty: expected a kOps Cluster manifest or a standalone IAM map")]
    Empty,
    /// A kOps stream without a Cluster.
    #[error("has no kind: Cluster document (found kinds: {})", kinds.join(", "))]
    NoCluster {
        /// The kinds found, in order.
        kinds: Vec<String>,
    },
    /// More than one Cluster.
    #[error("has {count} kind: Cluster documents ({}); give one cluster's manifest", names.join(", "))]
    SeveralClusters {
        /// How many.
        count: usize,
        /// Their `metadata.name`s, as far as they have one.
        names: Vec<String>,
    },
    /// A Cluster of another API (Cluster API's, for one).
    #[error(
        "kind: Cluster has apiVersion {found:?}, not kops.k8s.io/v1alpha2 (or kops.k8s.io/v1alpha3)"
    )]
    ApiVersion {
        /// The apiVersion found (empty when missing).
        found: String,
    },
    /// Several documents, none of them with a kind.
    #[error("has {0} YAML documents and none has a kind: a standalone IAM map is one document")]
    SeveralMaps(usize),
    /// A value of the wrong type.
    #[error("{key}: expected {expected}, found {found}")]
    Type {
        /// Where (`spec.iam.serviceAccountExternalPermissions`).
        key: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// A required key is missing.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A standalone map's key that is not one of its three.
    #[error(
        "unknown key {0:?} (a standalone IAM map has clusterName, \
         serviceAccountExternalPermissions and additionalAudiences)"
    )]
    UnknownKey(String),
    /// The cluster name is not a DNS subdomain, as kOps requires.
    #[error(
        "{key} {name:?} is not a DNS name as kOps requires (lower-case letters, digits, '-' and \
         '.', labels starting and ending with a letter or digit, at most 253 characters)"
    )]
    ClusterName {
        /// Where (`metadata.name` or `clusterName`).
        key: &'static str,
        /// The name.
        name: String,
    },
    /// An audience is empty.
    #[error("{key}[{index}] is empty")]
    Audience {
        /// Where.
        key: &'static str,
        /// Which.
        index: usize,
    },
}

/// One refused entry of `serviceAccountExternalPermissions`.
#[derive(Debug, thiserror::Error)]
#[error(
    "serviceAccountExternalPermissions[{index}]{}: {error}",
    label(namespace, name)
)]
pub struct EntryProblem {
    /// Its place in the list, from 0.
    pub index: usize,
    /// Its namespace, when it has one that is a string.
    pub namespace: Option<String>,
    /// Its ServiceAccount name, when it has one that is a string.
    pub name: Option<String>,
    /// Why.
    pub error: EntryError,
}

/// ` (namespace/name)`, as far as they are known.
fn label(namespace: &Option<String>, name: &Option<String>) -> String {
    match (namespace, name) {
        (None, None) => String::new(),
        (ns, name) => format!(
            " ({}/{})",
            ns.as_deref().unwrap_or_default(),
            name.as_deref().unwrap_or_default()
        ),
    }
}

/// Why one entry is refused.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The entry is not a mapping.
    #[error("expected a mapping, found {0}")]
    NotMapping(&'static str),
    /// A key the entry (or its `aws`) does not have.
    #[error("unknown key {key:?} (expected {expected})")]
    UnknownKey {
        /// The key (`aws.policyArns`).
        key: String,
        /// The keys there are.
        expected: &'static str,
    },
    /// A value of the wrong type.
    #[error("{key}: expected {expected}, found {found}")]
    Type {
        /// Where (`aws.policyARNs[1]`).
        key: String,
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// `name` or `namespace` missing or empty, or `aws` missing (kOps's required fields).
    #[error("{0} is required")]
    Missing(&'static str),
    /// Neither `policyARNs` nor `inlinePolicy` (kOps's rule).
    #[error("aws: either inlinePolicy or policyARNs must be set")]
    NoPolicy,
    /// Both `policyARNs` and `inlinePolicy` (kOps's rule).
    #[error("aws: cannot set both inlinePolicy and policyARNs")]
    BothPolicies,
    /// The same (namespace, name) as an earlier entry (kOps's rule).
    #[error("duplicate of serviceAccountExternalPermissions[{first}]")]
    Duplicate {
        /// The earlier entry.
        first: usize,
    },
    /// A `*` in the ServiceAccount name: kOps refuses to build its trust policy.
    #[error("name {0:?} has a wildcard; kOps allows one in the namespace only")]
    WildcardName(String),
    /// A character IAM refuses in the role name kOps derives from the entry.
    #[error(
        "{key} {value:?} has {character:?}, which IAM refuses in the role name kOps makes of it \
         (A-Z a-z 0-9 + = , . @ _ -, and * in a namespace)"
    )]
    RoleNameCharacter {
        /// `name` or `namespace`.
        key: &'static str,
        /// The value.
        value: String,
        /// The first character refused.
        character: char,
    },
    /// Two entries would get the same IAM role.
    #[error("its role name {role} is also serviceAccountExternalPermissions[{other}]'s")]
    SameRole {
        /// The role name.
        role: String,
        /// The earlier entry with it.
        other: usize,
    },
    /// A policy ARN IAM would not attach.
    #[error("aws.policyARNs[{index}] {arn:?} {reason}")]
    PolicyArn {
        /// Its place in the list.
        index: usize,
        /// The ARN.
        arn: String,
        /// Why.
        reason: PolicyArnError,
    },
    /// An inline policy kOps or IAM would refuse.
    #[error("aws.inlinePolicy {0}")]
    InlinePolicy(InlinePolicyError),
}
