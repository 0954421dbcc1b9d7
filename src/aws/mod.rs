//! `issuerd aws plan|apply`: the IAM OIDC provider of the issuer and one role per entry of the
//! IAM map, as kOps makes them, kept in step with the map idempotently.
//!
//! The model is one [`State`] for what the map asks ([`desired`]) and one for what IAM holds
//! ([`iam`] reads it); [`diff`] turns the two into the [`Change`]s that make IAM match, each one
//! IAM write call, in the order they must be made. Policies are compared as JSON values, so key
//! order and whitespace are no change. [`plan`] prints them.
//!
//! # Layout
//! - [`desired`]: map + issuer + account -> the desired provider, roles and policies; pure.
//! - [`iam`]: the AWS SDK calls: read the actual state, make one change.
//! - [`plan`]: the changes as a diff for people.

pub mod desired;
pub mod iam;
pub mod plan;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The tag every resource issuerd manages carries; its value is the cluster's name.
pub const CLUSTER_TAG: &str = "issuerd.io/cluster";

/// An IAM OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Its ARN (`arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST/PATH`).
    pub arn: String,
    /// The issuer URL it was created for (`https://HOST/PATH`).
    pub url: String,
    /// The audiences it accepts.
    pub client_ids: BTreeSet<String>,
    /// The SHA-1 thumbprints of the issuer's top CA; [`Thumbprints::LeftOut`] when AWS does not
    /// use them.
    pub thumbprints: Thumbprints,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// The thumbprints of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thumbprints {
    /// These (lowercase hex), as a set.
    Listed(BTreeSet<String>),
    /// Not given: the issuer's chain ends in a publicly trusted CA, so AWS verifies it with its
    /// own CA library and ignores any thumbprint. Whatever the provider holds is left alone.
    LeftOut,
}

/// An IAM role and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    /// Its name (no path: kOps creates roles at `/`).
    pub name: String,
    /// The trust policy (`AssumeRolePolicyDocument`), decoded.
    pub trust_policy: Value,
    /// The ARNs of the managed policies attached.
    pub attached: BTreeSet<String>,
    /// Inline policies: name -> document.
    pub inline: BTreeMap<String, Value>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// The map entry it comes from (desired roles only): `[index] namespace/name`.
    pub entry: Option<String>,
}

/// The provider and roles of one cluster, as wanted or as found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// The OIDC provider for the issuer, if any.
    pub provider: Option<Provider>,
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
}

/// One IAM write call.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `CreateOpenIDConnectProvider`, tags included.
    CreateProvider(Provider),
    /// `UpdateOpenIDConnectProviderThumbprint`.
    SetThumbprints {
        /// Provider ARN.
        arn: String,
        /// What it holds.
        from: BTreeSet<String>,
        /// What it gets.
        to: BTreeSet<String>,
    },
    /// `AddClientIDToOpenIDConnectProvider`.
    AddClientId {
        /// Provider ARN.
        arn: String,
        /// The audience.
        client_id: String,
    },
    /// `RemoveClientIDFromOpenIDConnectProvider`.
    RemoveClientId {
        /// Provider ARN.
        arn: String,
        /// The audience.
        client_id: String,
    },
    /// `TagOpenIDConnectProvider`.
    TagProvider {
        /// Provider ARN.
        arn: String,
        /// Tags set (added or overwritten).
        tags: BTreeMap<String, String>,
    },
    /// `CreateRole`, with its trust policy and tags.
    CreateRole(Role),
    /// `UpdateAssumeRolePolicy`.
    SetTrustPolicy {
        /// Role name.
        role: String,
        /// What it holds.
        from: Value,
        /// What it gets.
        to: Value,
    },
    /// `TagRole`.
    TagRole {
        /// Role name.
        role: String,
        /// Tags set (added or overwritten).
        tags: BTreeMap<String, String>,
    },
    /// `AttachRolePolicy`.
    Attach {
        /// Role name.
        role: String,
        /// Managed policy ARN.
        policy_arn: String,
    },
    /// `DetachRolePolicy`.
    Detach {
        /// Role name.
        role: String,
        /// Managed policy ARN.
        policy_arn: String,
    },
    /// `PutRolePolicy`.
    PutInline {
        /// Role name.
        role: String,
        /// Policy name.
        name: String,
        /// What it holds, if it exists.
        from: Option<Value>,
        /// What it gets.
        to: Value,
    },
    /// `DeleteRolePolicy`.
    DeleteInline {
        /// Role name.
        role: String,
        /// Policy name.
        name: String,
        /// What it holds.
        from: Value,
    },
    /// `DeleteRole` (after its policies are detached and deleted).
    DeleteRole {
        /// Role name.
        role: String,
    },
}

impl Change {
    /// The IAM action that makes the change.
    pub fn action(&self) -> &'static str {
        match self {
            Self::CreateProvider(_) => "CreateOpenIDConnectProvider",
            Self::SetThumbprints { .. } => "UpdateOpenIDConnectProviderThumbprint",
            Self::AddClientId { .. } => "AddClientIDToOpenIDConnectProvider",
            Self::RemoveClientId { .. } => "RemoveClientIDFromOpenIDConnectProvider",
            Self::TagProvider { .. } => "TagOpenIDConnectProvider",
            Self::CreateRole(_) => "CreateRole",
            Self::SetTrustPolicy { .. } => "UpdateAssumeRolePolicy",
            Self::TagRole { .. } => "TagRole",
            Self::Attach { .. } => "AttachRolePolicy",
            Self::Detach { .. } => "DetachRolePolicy",
            Self::PutInline { .. } => "PutRolePolicy",
            Self::DeleteInline { .. } => "DeleteRolePolicy",
            Self::DeleteRole { .. } => "DeleteRole",
        }
    }
}

/// The changes that make `actual` what `desired` asks, in the order IAM needs them: the
/// provider, then each desired role (created, or its trust policy, tags, attachments and inline
/// policies brought in line); with `prune`, the roles of `actual` that `desired` lacks are
/// emptied and deleted (`actual` holds only roles tagged for this cluster besides the desired
/// ones: [`iam::Iam::read`]).
pub fn diff(desired: &State, actual: &State, prune: bool) -> Vec<Change> {
    let mut changes = Vec::new();
    if let Some(want) = &desired.provider {
        provider_changes(want, actual.provider.as_ref(), &mut changes);
    }
    for (name, want) in &desired.roles {
        match actual.roles.get(name) {
            None => {
                changes.push(Change::CreateRole(Role {
                    attached: BTreeSet::new(),
                    inline: BTreeMap::new(),
                    ..want.clone()
                }));
                role_changes(want, None, &mut changes);
            }
            Some(have) => role_changes(want, Some(have), &mut changes),
        }
    }
    if prune {
        for (name, have) in &actual.roles {
            if desired.roles.contains_key(name) {
                continue;
            }
            for policy_arn in &have.attached {
                changes.push(Change::Detach {
                    role: name.clone(),
                    policy_arn: policy_arn.clone(),
                });
            }
            for (policy, document) in &have.inline {
                changes.push(Change::DeleteInline {
                    role: name.clone(),
                    name: policy.clone(),
                    from: document.clone(),
                });
            }
            changes.push(Change::DeleteRole { role: name.clone() });
        }
    }
    changes
}

fn provider_changes(want: &Provider, have: Option<&Provider>, changes: &mut Vec<Change>) {
    let Some(have) = have else {
        changes.push(Change::CreateProvider(want.clone()));
        return;
    };
    let arn = &want.arn;
    if let (Thumbprints::Listed(to), from) = (&want.thumbprints, &have.thumbprints) {
        let from = match from {
            Thumbprints::Listed(from) => from.clone(),
            Thumbprints::LeftOut => BTreeSet::new(),
        };
        if &from != to {
            changes.push(Change::SetThumbprints {
                arn: arn.clone(),
                from,
                to: to.clone(),
            });
        }
    }
    for client_id in want.client_ids.difference(&have.client_ids) {
        changes.push(Change::AddClientId {
            arn: arn.clone(),
            client_id: client_id.clone(),
        });
    }
    for client_id in have.client_ids.difference(&want.client_ids) {
        changes.push(Change::RemoveClientId {
            arn: arn.clone(),
            client_id: client_id.clone(),
        });
    }
    let tags = missing_tags(&want.tags, &have.tags);
    if !tags.is_empty() {
        changes.push(Change::TagProvider {
            arn: arn.clone(),
            tags,
        });
    }
}

/// The changes to a role that exists (`have`), or that [`Change::CreateRole`] has just created
/// with its trust policy and tags (`None`).
fn role_changes(want: &Role, have: Option<&Role>, changes: &mut Vec<Change>) {
    let role = || want.name.clone();
    let empty = BTreeMap::new();
    let no_policies = BTreeSet::new();
    let (attached, inline) = match have {
        Some(have) => {
            if have.trust_policy != want.trust_policy {
                changes.push(Change::SetTrustPolicy {
                    role: role(),
                    from: have.trust_policy.clone(),
                    to: want.trust_policy.clone(),
                });
            }
            let tags = missing_tags(&want.tags, &have.tags);
            if !tags.is_empty() {
                changes.push(Change::TagRole { role: role(), tags });
            }
            (&have.attached, &have.inline)
        }
        None => (&no_policies, &empty),
    };
    for policy_arn in want.attached.difference(attached) {
        changes.push(Change::Attach {
            role: role(),
            policy_arn: policy_arn.clone(),
        });
    }
    for policy_arn in attached.difference(&want.attached) {
        changes.push(Change::Detach {
            role: role(),
            policy_arn: policy_arn.clone(),
        });
    }
    for (name, document) in &want.inline {
        let from = inline.get(name);
        if from != Some(document) {
            changes.push(Change::PutInline {
                role: role(),
                name: name.clone(),
                from: from.cloned(),
                to: document.clone(),
            });
        }
    }
    for (name, document) in inline {
        if !want.inline.contains_key(name) {
            changes.push(Change::DeleteInline {
                role: role(),
                name: name.clone(),
                from: document.clone(),
            });
        }
    }
}

/// The tags of `want` that `have` lacks or holds with another value.
fn missing_tags(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    want.iter()
        .filter(|(key, value)| have.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// A policy document as IAM returns it: URL-encoded (RFC 3986) JSON, or plain JSON.
pub fn decode_policy(text: &str) -> Result<Value, serde_json::Error> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed);
    }
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    serde_json::from_str(&decoded)
}

/// ` target`, or nothing for no target.
fn spaced(target: &str) -> String {
    match target {
        "" => String::new(),
        target => format!(" {target}"),
    }
}

/// Why `aws plan` or `aws apply` failed against AWS.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// An AWS API call failed.
    #[error("{service} {operation}{}: {message}", spaced(target))]
    Call {
        /// `IAM` or `STS`.
        service: &'static str,
        /// The API action.
        operation: &'static str,
        /// What it was called on (a role, a provider ARN), or empty.
        target: String,
        /// The SDK's error, with its causes (`DisplayErrorContext`).
        message: String,
    },
    /// IAM returned a policy document that is not JSON.
    #[error("IAM returned {what} of role {role} that is not JSON: {source}")]
    Policy {
        /// Which document.
        what: String,
        /// The role.
        role: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// STS answered without an account.
    #[error("STS GetCallerIdentity returned no account; pass --account-id")]
    NoAccount,
}
