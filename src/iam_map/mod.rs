//! The IRSA map: which Kubernetes ServiceAccount may assume which AWS IAM role, as kOps writes
//! it in a Cluster's `spec.iam.serviceAccountExternalPermissions`. One parser and model for
//! everything that reads it (the admission webhook, `aws plan`/`apply`, the local STS).
//!
//! [`IamMap::parse`] reads a kOps Cluster manifest (also inside `kops get all -o yaml`'s stream)
//! or a standalone map (`clusterName`, `serviceAccountExternalPermissions`, optional
//! `additionalAudiences`); see [`input`].
//!
//! # What is refused
//! An entry is refused when kOps refuses it, or when kOps would not turn it into a working role:
//! - kOps's validation (`pkg/apis/kops/validation/validation.go`): `name`, `namespace` and `aws`
//!   required; exactly one of `policyARNs` and `inlinePolicy`; one entry per (namespace, name).
//! - kOps's IAM model (`pkg/model/awsmodel/iam.go`): no `*` in the ServiceAccount name; an
//!   `inlinePolicy` that is a JSON array of statements ([`policy`]).
//! - IAM, when kOps applies it: a character IAM refuses in the role name kOps derives, a policy
//!   ARN that is not an IAM policy ARN, a statement IAM refuses; two entries with one role name
//!   (`*` and a namespace literally named `wildcard`, say).
//!
//! An entry that kOps deploys but no ServiceAccount can match (an upper-case namespace) is kept.
//! Every refusal is reported at once, one a line ([`IamMapError::Entries`]).
//!
//! # Matching
//! [`IamMap::lookup`] answers as the roles' trust policies would: an entry matches when the
//! condition kOps writes for it admits the ServiceAccount's subject claim. A namespace with `*`
//! gets `StringLike` ([`pattern`]: `*` any run, the empty one too; `?` one character, though
//! IAM's role names leave no room for a `?`); any other is compared exactly. When several entries
//! match, the exact one wins (there is at most one); then the first glob in file order.
//!
//! # Layout
//! - [`input`]: the two input forms -> cluster name, raw entries, audiences.
//! - [`entry`]: one entry, checked; what kOps derives from it.
//! - [`policy`]: policy ARNs and inline policies, checked.
//! - [`role`]: the name kOps gives a role, with its cut and hash.
//! - [`pattern`]: IAM's `StringLike`.
//! - [`error`]: why a map is refused.

pub mod entry;
pub mod error;
pub mod input;
pub mod pattern;
pub mod policy;
pub mod role;

#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use entry::{Condition, Entry, Permissions, subject_claim};
pub use error::{DocumentError, EntryError, EntryProblem, IamMapError};
pub use input::Form;
pub use policy::{InlinePolicy, InlinePolicyError, PolicyArnError, StatementError};
pub use role::{MAX_ROLE_NAME, role_name};

/// The largest map read: far above any Cluster manifest (kOps's own are a few KiB).
pub const MAX_BYTES: usize = 1024 * 1024;

/// The audience kOps always gives the IAM OIDC provider, before `additionalAudiences`.
pub const DEFAULT_AUDIENCE: &str = "amazonaws.com";

/// The checked map of one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct IamMap {
    source: PathBuf,
    form: Form,
    cluster: String,
    entries: Vec<Entry>,
    additional_audiences: Vec<String>,
}

impl IamMap {
    /// Reads and checks the map in `path`.
    pub fn load(path: &Path) -> Result<Self, IamMapError> {
        let read = |source| IamMapError::Read {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_BYTES as u64 + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text`, read from `source` (named in every error).
    pub fn parse(text: &str, source: &Path) -> Result<Self, IamMapError> {
        let file = || source.to_owned();
        if text.len() > MAX_BYTES {
            return Err(IamMapError::TooLarge { file: file() });
        }
        let raw = input::read(text).map_err(|error| match error {
            input::ReadError::Yaml(source) => IamMapError::Yaml {
                file: file(),
                source: Box::new(source),
            },
            input::ReadError::Document(problem) => IamMapError::Document {
                file: file(),
                problem,
            },
        })?;
        let mut problems = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        for (index, value) in raw.entries.iter().enumerate() {
            let entry = match Entry::parse(index, value) {
                Ok(entry) => entry,
                Err(refused) => {
                    problems.extend(refused);
                    continue;
                }
            };
            if let Some(error) = clash(&entries, &entry, &raw.cluster) {
                problems.push(entry::problem(
                    index,
                    Some(entry.namespace().to_owned()),
                    Some(entry.name().to_owned()),
                    error,
                ));
                continue;
            }
            entries.push(entry);
        }
        if !problems.is_empty() {
            return Err(IamMapError::Entries {
                file: file(),
                problems,
            });
        }
        Ok(Self {
            source: file(),
            form: raw.form,
            cluster: raw.cluster,
            entries,
            additional_audiences: raw.audiences,
        })
    }

    /// The file the map was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The form it was written in.
    pub fn form(&self) -> Form {
        self.form
    }

    /// The cluster's name (`metadata.name`, or `clusterName`): part of every role name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// `additionalAudiences`, as written.
    pub fn additional_audiences(&self) -> &[String] {
        &self.additional_audiences
    }

    /// The client IDs kOps gives the IAM OIDC provider: [`DEFAULT_AUDIENCE`], then the
    /// additional audiences (`pkg/model/awsmodel/oidc_provider.go`).
    pub fn client_ids(&self) -> Vec<&str> {
        std::iter::once(DEFAULT_AUDIENCE)
            .chain(self.additional_audiences.iter().map(String::as_str))
            .collect()
    }

    /// The entry whose role ServiceAccount `service_account` in `namespace` may assume: the
    /// exact entry if there is one, else the first matching glob in file order (see the module
    /// documentation).
    pub fn lookup(&self, namespace: &str, service_account: &str) -> Option<&Entry> {
        self.lookup_all(namespace, service_account).next()
    }

    /// Every entry whose role `service_account` in `namespace` may assume, in [`Self::lookup`]'s
    /// order of preference.
    pub fn lookup_all<'a, 'q>(
        &'a self,
        namespace: &'q str,
        service_account: &'q str,
    ) -> impl Iterator<Item = &'a Entry> + use<'a, 'q> {
        let matching = move |condition| {
            self.entries.iter().filter(move |e| {
                e.condition() == condition && e.matches(namespace, service_account)
            })
        };
        matching(Condition::StringEquals).chain(matching(Condition::StringLike))
    }
}

/// Why `entry` cannot join `entries`: the same ServiceAccount, or the same role name.
fn clash(entries: &[Entry], entry: &Entry, cluster: &str) -> Option<EntryError> {
    if let Some(first) = entries
        .iter()
        .find(|e| e.namespace() == entry.namespace() && e.name() == entry.name())
    {
        return Some(EntryError::Duplicate {
            first: first.index(),
        });
    }
    let role = entry.role_name(cluster);
    entries
        .iter()
        .find(|e| e.role_name(cluster) == role)
        .map(|other| EntryError::SameRole {
            role,
            other: other.index(),
        })
}
