//! The permissions of an entry: managed policy ARNs (checked as IAM policy ARNs) or an inline
//! policy, which kOps reads as a JSON array of statements (kOps `pkg/model/iam/types.go`
//! `ParseStatements`) and wraps in a policy document of its own (`Version` 2012-10-17).
//!
//! kOps decodes each statement into its `Statement` type, whose fields are `Effect`,
//! `Principal`, `Action`, `Resource` and `Condition` (`pkg/model/iam/iam_builder.go`), matching
//! keys without regard to case and dropping any other key; `Action` and `Resource` are a string
//! or a list of strings (`pkg/util/stringorset`). A statement is refused here when kOps would
//! refuse it, or when what kOps would send IAM is not what was written or is refused by IAM: a
//! key kOps drops (`Sid` excepted: it changes nothing), a missing `Effect`, `Action` or
//! `Resource`, an `Effect` other than `Allow`/`Deny`, and a `Principal` (IAM refuses one in a
//! role's own policy).

use serde_json::{Map, Value};

// === Policy ARNs ===

/// Why a policy ARN is not one IAM attaches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyArnError {
    /// Not `arn:PARTITION:iam::ACCOUNT:policy/NAME`.
    #[error("is not arn:PARTITION:iam::ACCOUNT:policy/[PATH/]NAME")]
    Shape,
    /// The partition is not `aws` or `aws-...`.
    #[error("partition {0:?} is not aws or aws-...")]
    Partition(String),
    /// The ARN names another service.
    #[error("service {0:?} is not iam")]
    Service(String),
    /// IAM is global: its ARNs have no region.
    #[error("region {0:?} must be empty for IAM")]
    Region(String),
    /// The account is neither 12 digits nor `aws` (AWS managed policies).
    #[error("account {0:?} is not a 12-digit account ID or aws")]
    Account(String),
    /// The resource is not a policy.
    #[error("resource {0:?} is not policy/[PATH/]NAME")]
    Resource(String),
    /// The policy name is empty, too long or has characters IAM refuses.
    #[error("policy name {0:?} is not 1 to 128 of A-Z a-z 0-9 + = , . @ _ -")]
    Name(String),
    /// A path segment is empty or has characters outside printable ASCII.
    #[error("policy path {0:?} is not /SEGMENT/.../ of printable ASCII")]
    Path(String),
}

/// The longest ARN IAM accepts.
const MAX_ARN: usize = 2048;

/// Checks that `arn` is an IAM managed policy ARN:
/// `arn:PARTITION:iam::ACCOUNT:policy/[PATH/]NAME`.
pub fn check_policy_arn(arn: &str) -> Result<(), PolicyArnError> {
    if arn.len() > MAX_ARN {
        return Err(PolicyArnError::Shape);
    }
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(PolicyArnError::Shape);
    };
    if !is_partition(partition) {
        return Err(PolicyArnError::Partition(partition.to_owned()));
    }
    if service != "iam" {
        return Err(PolicyArnError::Service(service.to_owned()));
    }
    if !region.is_empty() {
        return Err(PolicyArnError::Region(region.to_owned()));
    }
    let twelve_digits = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    if !twelve_digits && account != "aws" {
        return Err(PolicyArnError::Account(account.to_owned()));
    }
    let Some(path_and_name) = resource.strip_prefix("policy/") else {
        return Err(PolicyArnError::Resource(resource.to_owned()));
    };
    let (path, name) = path_and_name
        .rsplit_once('/')
        .unwrap_or(("", path_and_name));
    let name_ok = (1..=128).contains(&name.len()) && name.bytes().all(is_iam_name_byte);
    if !name_ok {
        return Err(PolicyArnError::Name(name.to_owned()));
    }
    let path_ok = path.is_empty()
        || path
            .split('/')
            .all(|segment| !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_graphic()));
    if !path_ok {
        return Err(PolicyArnError::Path(format!("/{path}/")));
    }
    Ok(())
}

/// `aws`, or `aws-` and lower-case letters, digits and dashes (`aws-cn`, `aws-us-gov`,
/// `aws-iso-b`, and kOps's test partition `aws-test`).
fn is_partition(partition: &str) -> bool {
    partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// The characters IAM allows in role and policy names: `[\w+=,.@-]`.
pub fn is_iam_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)
}

// === Inline policies ===

/// Why an inline policy is refused.
#[derive(Debug, thiserror::Error)]
pub enum InlinePolicyError {
    /// Not JSON.
    #[error("is not JSON: {0}")]
    Json(String),
    /// JSON, but not an array (a whole policy document, most likely).
    #[error(
        "is a JSON {0}, not the JSON array of statements kOps expects (kOps adds the Version and \
         the Statement key itself)"
    )]
    NotArray(&'static str),
    /// An empty array.
    #[error("has no statements")]
    Empty,
    /// One statement is refused.
    #[error("statement [{index}]: {problem}")]
    Statement {
        /// Its place in the array.
        index: usize,
        /// Why.
        problem: StatementError,
    },
}

/// Why one statement of an inline policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// Not a JSON object.
    #[error("is a JSON {0}, not an object")]
    NotObject(&'static str),
    /// A required key is missing.
    #[error("has no {0}")]
    Missing(&'static str),
    /// A key kOps's statement does not have: kOps would drop it.
    #[error(
        "has {0:?}, which kOps drops (its statements carry Effect, Action, Resource and Condition)"
    )]
    Dropped(String),
    /// The same key twice, in different cases (kOps matches keys without regard to case).
    #[error("has {0} twice (kOps reads keys without regard to case)")]
    Twice(&'static str),
    /// `Effect` is not `Allow` or `Deny`.
    #[error("Effect {0} is not \"Allow\" or \"Deny\"")]
    Effect(String),
    /// `Action` or `Resource` is not a string or a non-empty list of strings.
    #[error("{0} is not a string or a non-empty list of strings")]
    StringOrList(&'static str),
    /// `Condition` is not an object.
    #[error("Condition is not an object")]
    Condition,
    /// A `Principal`: IAM refuses one in an identity policy.
    #[error("has a Principal, which IAM refuses in a role's own policy")]
    Principal,
}

/// An inline policy: kOps's statements, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct InlinePolicy {
    text: String,
    statements: Vec<Value>,
}

/// The keys a statement may have, as kOps spells them.
const KEYS: [&str; 6] = [
    "Sid",
    "Effect",
    "Principal",
    "Action",
    "Resource",
    "Condition",
];

impl InlinePolicy {
    /// Parses kOps's `inlinePolicy` text: a JSON array of IAM statements.
    pub fn parse(text: &str) -> Result<Self, InlinePolicyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| InlinePolicyError::Json(e.to_string()))?;
        let Value::Array(statements) = value else {
            return Err(InlinePolicyError::NotArray(kind(&value)));
        };
        if statements.is_empty() {
            return Err(InlinePolicyError::Empty);
        }
        for (index, statement) in statements.iter().enumerate() {
            check_statement(statement)
                .map_err(|problem| InlinePolicyError::Statement { index, problem })?;
        }
        Ok(Self {
            text: text.to_owned(),
            statements,
        })
    }

    /// The text as written in the manifest.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The statements, as written.
    pub fn statements(&self) -> &[Value] {
        &self.statements
    }

    /// The policy document kOps puts on the role: `{"Version": "2012-10-17", "Statement": [..]}`
    /// (the statements as written; kOps also normalizes key case and sorts string lists).
    pub fn document(&self) -> Value {
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": self.statements,
        })
    }
}

fn check_statement(statement: &Value) -> Result<(), StatementError> {
    let Value::Object(fields) = statement else {
        return Err(StatementError::NotObject(kind(statement)));
    };
    let field = |wanted: &'static str| find(fields, wanted);
    for key in fields.keys() {
        if !KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(StatementError::Dropped(key.clone()));
        }
    }
    for key in KEYS {
        if fields
            .keys()
            .filter(|k| k.eq_ignore_ascii_case(key))
            .count()
            > 1
        {
            return Err(StatementError::Twice(key));
        }
    }
    match field("Effect") {
        None => return Err(StatementError::Missing("Effect")),
        Some(Value::String(effect)) if effect == "Allow" || effect == "Deny" => {}
        Some(other) => return Err(StatementError::Effect(other.to_string())),
    }
    if field("Principal").is_some() {
        return Err(StatementError::Principal);
    }
    for key in ["Action", "Resource"] {
        match field(key) {
            None => return Err(StatementError::Missing(key)),
            Some(Value::String(_)) => {}
            Some(Value::Array(items))
                if !items.is_empty() && items.iter().all(Value::is_string) => {}
            Some(_) => return Err(StatementError::StringOrList(key)),
        }
    }
    match field("Condition") {
        None | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(StatementError::Condition),
    }
}

/// The value of `key` in `fields`, matched without regard to case as Go's `encoding/json` does.
fn find<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// What kind of JSON value this is, for messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_arns_iam_attaches_are_accepted() {
        for arn in [
            "arn:aws:iam::123456789012:policy/UsersManageOwnCredentials",
            "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
            "arn:aws:iam::aws:policy/service-role/AmazonEC2RoleforSSM",
            "arn:aws-cn:iam::123456789012:policy/a/b/c+=,.@_-",
            "arn:aws-us-gov:iam::123456789012:policy/x",
            "arn:aws-test:iam::123456789012:policy/UsersManageOwnCredentials",
        ] {
            assert_eq!(check_policy_arn(arn), Ok(()), "{arn}");
        }
    }

    #[test]
    fn other_arns_are_refused_with_their_reason() {
        use PolicyArnError as E;
        let cases = [
            ("UsersManageOwnCredentials", E::Shape),
            ("arn:aws:iam::123456789012", E::Shape),
            (
                "arn:azure:iam::123456789012:policy/x",
                E::Partition("azure".into()),
            ),
            (
                "arn::iam::123456789012:policy/x",
                E::Partition(String::new()),
            ),
            ("arn:aws:s3:::bucket", E::Service("s3".into())),
            (
                "arn:aws:iam:us-east-1:123456789012:policy/x",
                E::Region("us-east-1".into()),
            ),
            ("arn:aws:iam::12345:policy/x", E::Account("12345".into())),
            (
                "arn:aws:iam::123456789012:role/x",
                E::Resource("role/x".into()),
            ),
            ("arn:aws:iam::123456789012:policy/", E::Name(String::new())),
            (
                "arn:aws:iam::123456789012:policy/a b",
                E::Name("a b".into()),
            ),
            ("arn:aws:iam::123456789012:policy/x*", E::Name("x*".into())),
            (
                &format!("arn:aws:iam::123456789012:policy/{}", "n".repeat(129)),
                E::Name("n".repeat(129)),
            ),
            (
                "arn:aws:iam::123456789012:policy/a//x",
                E::Path("/a//".into()),
            ),
            (
                "arn:aws:iam::123456789012:policy/ä/x",
                E::Path("/ä/".into()),
            ),
            (
                &format!("arn:aws:iam::aws:policy/{}", "p/".repeat(1100)),
                E::Shape,
            ),
        ];
        for (arn, expected) in cases {
            assert_eq!(check_policy_arn(arn), Err(expected), "{arn}");
        }
    }

    #[test]
    fn kops_inline_policy_shape_is_accepted() {
        // The shape of kOps's irsa integration test: statements with list values.
        let text = r#"[
            {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": ["*"]},
            {"Sid": "Es", "effect": "Deny", "action": "es:*", "resource": "*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
        ]"#;
        let policy = InlinePolicy::parse(text).unwrap();
        assert_eq!(policy.statements().len(), 2);
        assert_eq!(policy.text(), text);
        let document = policy.document();
        assert_eq!(document["Version"], "2012-10-17");
        assert_eq!(document["Statement"][0]["Action"][0], "dynamodb:*");
    }

    #[test]
    fn inline_policies_kops_or_iam_would_refuse_are_refused() {
        use StatementError as S;
        let statement = |problem: S| Some((0, problem));
        let cases: [(&str, Option<(usize, S)>); 16] = [
            (r#"{"Version": "2012-10-17", "Statement": []}"#, None),
            ("[]", None),
            ("not json", None),
            (r#"["Allow"]"#, statement(S::NotObject("string"))),
            (
                r#"[{"Action": "s3:*", "Resource": "*"}]"#,
                statement(S::Missing("Effect")),
            ),
            (
                r#"[{"Effect": "Allow", "Resource": "*"}]"#,
                statement(S::Missing("Action")),
            ),
            (
                r#"[{"Effect": "Allow", "Action": "s3:*"}]"#,
                statement(S::Missing("Resource")),
            ),
            (
                r#"[{"Effect": "allow", "Action": "s3:*", "Resource": "*"}]"#,
                statement(S::Effect("\"allow\"".into())),
            ),
            (
                r#"[{"Effect": "Allow", "Action": [], "Resource": "*"}]"#,
                statement(S::StringOrList("Action")),
            ),
            (
                r#"[{"Effect": "Allow", "Action": "s3:*", "Resource": [1]}]"#,
                statement(S::StringOrList("Resource")),
            ),
            (
                r#"[{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]"#,
                statement(S::Dropped("NotAction".into())),
            ),
            (
                r#"[{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Conditions": {}}]"#,
                statement(S::Dropped("Conditions".into())),
            ),
            (
                r#"[{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": []}]"#,
                statement(S::Condition),
            ),
            (
                r#"[{"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "*"}]"#,
                statement(S::Principal),
            ),
            (
                r#"[{"Effect": "Allow", "effect": "Deny", "Action": "s3:*", "Resource": "*"}]"#,
                statement(S::Twice("Effect")),
            ),
            (
                r#"[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}, 3]"#,
                Some((1, S::NotObject("number"))),
            ),
        ];
        for (text, expected) in cases {
            let error = InlinePolicy::parse(text).unwrap_err();
            match (&error, expected) {
                (InlinePolicyError::Statement { index, problem }, Some((i, p))) => {
                    assert_eq!((*index, problem), (i, &p), "{text}");
                }
                (InlinePolicyError::NotArray("object"), None) if text.starts_with('{') => {}
                (InlinePolicyError::Empty, None) if text == "[]" => {}
                (InlinePolicyError::Json(_), None) if text == "not json" => {}
                _ => panic!("{text}: {error:?}"),
            }
        }
    }

    #[test]
    fn messages_say_what_kops_expects() {
        let error = InlinePolicy::parse(r#"{"Statement": []}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "is a JSON object, not the JSON array of statements kOps expects (kOps adds the \
             Version and the Statement key itself)"
        );
        let error = InlinePolicy::parse(r#"[{"Effect": "Allow"}]"#).unwrap_err();
        assert_eq!(error.to_string(), "statement [0]: has no Action");
    }
}
