//! One entry of the map: a ServiceAccount (its namespace may hold `*`), the permissions its role
//! gets, and what kOps derives from it (role name and ARN, subject claim, trust condition).

use serde_json::{Map, Value};

use super::error::{EntryError, EntryProblem};
use super::pattern::string_like;
use super::policy::{InlinePolicy, check_policy_arn, is_iam_name_byte, kind};
use super::role::role_name;

/// One ServiceAccount (or, with `*` in the namespace, a family of them) and its role's
/// permissions.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    index: usize,
    namespace: String,
    name: String,
    permissions: Permissions,
}

/// What the role of an entry may do: exactly one of kOps's two forms.
#[derive(Debug, Clone, PartialEq)]
pub enum Permissions {
    /// `aws.policyARNs`: managed policies kOps attaches to the role.
    PolicyArns(Vec<String>),
    /// `aws.inlinePolicy`: statements kOps puts on the role as its inline policy.
    Inline(InlinePolicy),
}

/// The IAM condition operator of the role's trust policy, as kOps chooses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The namespace is literal.
    StringEquals,
    /// The namespace holds a `*` (kOps's test is for `*` alone).
    StringLike,
}

impl Condition {
    /// The operator's name in a policy document.
    pub fn operator(self) -> &'static str {
        match self {
            Self::StringEquals => "StringEquals",
            Self::StringLike => "StringLike",
        }
    }
}

/// The `sub` claim of a ServiceAccount token.
pub fn subject_claim(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

impl Entry {
    /// Its place in the file's list, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The namespace, as written (may hold `*`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The ServiceAccount name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role's permissions.
    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    /// The trust condition's operator: `StringLike` when the namespace holds `*`, as kOps
    /// writes it (`pkg/model/awsmodel/iam.go`).
    pub fn condition(&self) -> Condition {
        if self.namespace.contains('*') {
            Condition::StringLike
        } else {
            Condition::StringEquals
        }
    }

    /// `system:serviceaccount:<namespace>:<name>`: the value of the trust condition on
    /// `<issuer>:sub` (a pattern when [`Self::condition`] is `StringLike`).
    pub fn subject_claim(&self) -> String {
        subject_claim(&self.namespace, &self.name)
    }

    /// The IAM role name kOps creates for this entry in `cluster`
    /// (see [`super::role`]).
    pub fn role_name(&self, cluster: &str) -> String {
        role_name(&self.name, &self.namespace, cluster)
    }

    /// `arn:<partition>:iam::<account_id>:role/<role name>`: the role's ARN (kOps creates it at
    /// the root path). The arguments are used as given.
    pub fn role_arn(&self, partition: &str, account_id: &str, cluster: &str) -> String {
        format!(
            "arn:{partition}:iam::{account_id}:role/{}",
            self.role_name(cluster)
        )
    }

    /// Whether the trust policy kOps writes for this entry admits a token of ServiceAccount
    /// `service_account` in `namespace`: the subject claim compared as [`Self::condition`]
    /// says, exactly as IAM compares it. No ServiceAccount has an empty name or a `:` in its
    /// namespace or name; such arguments match nothing.
    pub fn matches(&self, namespace: &str, service_account: &str) -> bool {
        let plausible = |s: &str| !s.is_empty() && !s.contains(':');
        if !plausible(namespace) || !plausible(service_account) {
            return false;
        }
        match self.condition() {
            Condition::StringEquals => self.namespace == namespace && self.name == service_account,
            Condition::StringLike => string_like(
                &self.subject_claim(),
                &subject_claim(namespace, service_account),
            ),
        }
    }

    /// Reads entry `index` of `serviceAccountExternalPermissions`: kOps's required fields and
    /// its one-of rule, then what would stop kOps or IAM from making a working role of it.
    /// Every problem of the entry is returned.
    pub(super) fn parse(index: usize, value: &Value) -> Result<Self, Vec<EntryProblem>> {
        let mut problems = Vec::new();
        let mut refuse = |error| problems.push(error);
        let Value::Object(fields) = value else {
            return Err(vec![problem(
                index,
                None,
                None,
                EntryError::NotMapping(kind(value)),
            )]);
        };
        for key in fields.keys() {
            if !["name", "namespace", "aws"].contains(&key.as_str()) {
                refuse(EntryError::UnknownKey {
                    key: key.clone(),
                    expected: "name, namespace and aws",
                });
            }
        }
        let name = string(fields, "name", "name", &mut refuse);
        let namespace = string(fields, "namespace", "namespace", &mut refuse);
        // Missing, null or empty, as kOps sees it (another type has been refused already).
        let mistyped = |key| {
            fields
                .get(key)
                .is_some_and(|v| !v.is_null() && !v.is_string())
        };
        if name.as_deref().is_none_or(str::is_empty) && !mistyped("name") {
            refuse(EntryError::Missing("name"));
        }
        if namespace.as_deref().is_none_or(str::is_empty) && !mistyped("namespace") {
            refuse(EntryError::Missing("namespace"));
        }
        if let Some(name) = name.as_deref() {
            if name.contains('*') {
                refuse(EntryError::WildcardName(name.to_owned()));
            } else if let Some(character) = name.chars().find(|&c| !iam_char(c)) {
                refuse(role_character("name", name, character));
            }
        }
        if let Some(namespace) = namespace.as_deref()
            && let Some(character) = namespace.chars().find(|&c| c != '*' && !iam_char(c))
        {
            refuse(role_character("namespace", namespace, character));
        }
        let permissions = match fields.get("aws") {
            None | Some(Value::Null) => {
                refuse(EntryError::Missing("aws"));
                None
            }
            Some(Value::Object(aws)) => permissions(aws, &mut refuse),
            Some(other) => {
                refuse(EntryError::Type {
                    key: "aws".into(),
                    expected: "a mapping",
                    found: kind(other),
                });
                None
            }
        };
        match (name, namespace, permissions) {
            (Some(name), Some(namespace), Some(permissions)) if problems.is_empty() => Ok(Self {
                index,
                namespace,
                name,
                permissions,
            }),
            (name, namespace, _) => Err(problems
                .into_iter()
                .map(|error| problem(index, namespace.clone(), name.clone(), error))
                .collect()),
        }
    }
}

/// `aws`: exactly one of `policyARNs` (every one an IAM policy ARN) and `inlinePolicy` (kOps's
/// statement array). kOps takes an empty list or string as absent.
fn permissions(
    aws: &Map<String, Value>,
    refuse: &mut impl FnMut(EntryError),
) -> Option<Permissions> {
    for key in aws.keys() {
        if key != "policyARNs" && key != "inlinePolicy" {
            refuse(EntryError::UnknownKey {
                key: format!("aws.{key}"),
                expected: "aws.policyARNs or aws.inlinePolicy",
            });
        }
    }
    let arns = match aws.get("policyARNs") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => {
            let mut arns = Vec::new();
            for (index, item) in items.iter().enumerate() {
                match item {
                    Value::String(arn) => {
                        if let Err(reason) = check_policy_arn(arn) {
                            refuse(EntryError::PolicyArn {
                                index,
                                arn: arn.clone(),
                                reason,
                            });
                        }
                        arns.push(arn.clone());
                    }
                    other => refuse(EntryError::Type {
                        key: format!("aws.policyARNs[{index}]"),
                        expected: "a string",
                        found: kind(other),
                    }),
                }
            }
            Some(arns)
        }
        Some(other) => {
            refuse(EntryError::Type {
                key: "aws.policyARNs".into(),
                expected: "a list of policy ARNs",
                found: kind(other),
            });
            None
        }
    };
    let inline = string(aws, "inlinePolicy", "aws.inlinePolicy", refuse);
    // kOps's one-of rule looks at what is written: a non-empty list, a non-empty string.
    let listed = matches!(aws.get("policyARNs"), Some(Value::Array(items)) if !items.is_empty());
    let inline = inline.filter(|text| !text.is_empty());
    let mistyped = arns.is_none()
        || aws
            .get("inlinePolicy")
            .is_some_and(|v| !v.is_null() && !v.is_string());
    match (listed, inline) {
        (false, None) => {
            // A value of the wrong type has been refused already.
            if !mistyped {
                refuse(EntryError::NoPolicy);
            }
            None
        }
        (true, Some(_)) => {
            refuse(EntryError::BothPolicies);
            None
        }
        (true, None) => arns.map(Permissions::PolicyArns),
        (false, Some(text)) => match InlinePolicy::parse(&text) {
            Ok(policy) => Some(Permissions::Inline(policy)),
            Err(error) => {
                refuse(EntryError::InlinePolicy(error));
                None
            }
        },
    }
}

/// The string at `key` of `fields`; `None`, said through `refuse`, when it is another type;
/// `None` (silently: kOps's zero value) when it is missing or null.
fn string(
    fields: &Map<String, Value>,
    key: &str,
    path: &str,
    refuse: &mut impl FnMut(EntryError),
) -> Option<String> {
    match fields.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            refuse(EntryError::Type {
                key: path.to_owned(),
                expected: "a string",
                found: kind(other),
            });
            None
        }
    }
}

/// A character IAM takes in a role name.
fn iam_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_iam_name_byte)
}

fn role_character(key: &'static str, value: &str, character: char) -> EntryError {
    EntryError::RoleNameCharacter {
        key,
        value: value.to_owned(),
        character,
    }
}

pub(super) fn problem(
    index: usize,
    namespace: Option<String>,
    name: Option<String>,
    error: EntryError,
) -> EntryProblem {
    EntryProblem {
        index,
        namespace,
        name,
        error,
    }
}
