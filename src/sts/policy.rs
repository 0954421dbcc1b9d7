//! IAM role trust policies, evaluated for `sts:AssumeRoleWithWebIdentity` as IAM does for an
//! OIDC provider's keys (`<host/path>:sub`, `:aud`, `:amr`).
//!
//! Supported: `Effect` Allow/Deny, `Principal` `*` or `{"Federated": …}`, `Action` (wildcards),
//! `Condition` with `StringEquals`, `StringNotEquals`, `StringLike`, `StringNotLike`,
//! `StringEqualsIgnoreCase`, `StringNotEqualsIgnoreCase`, each optionally prefixed with
//! `ForAnyValue:`/`ForAllValues:` and suffixed with `IfExists`. Everything else (`NotPrincipal`,
//! `NotAction`, other operators or keys, policy variables) is refused when the policy is loaded:
//! a policy this module cannot evaluate is never treated as allowing anything.

use serde_json::{Map, Value};

/// The action a web identity assumes a role with.
pub const ACTION: &str = "sts:AssumeRoleWithWebIdentity";

/// A parsed trust policy.
#[derive(Clone, Debug)]
pub struct TrustPolicy {
    statements: Vec<Statement>,
}

#[derive(Clone, Debug)]
struct Statement {
    sid: Option<String>,
    allow: bool,
    principal: Principal,
    actions: Vec<String>,
    conditions: Vec<Condition>,
}

#[derive(Clone, Debug)]
enum Principal {
    Anyone,
    Federated(Vec<String>),
    /// `AWS` or `Service` principals: never a web identity.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOp {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compare {
    Equals,
    EqualsIgnoreCase,
    Like,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    Sub,
    Aud,
    Amr,
}

#[derive(Clone, Debug)]
struct Condition {
    operator: String,
    set: SetOp,
    compare: Compare,
    negated: bool,
    if_exists: bool,
    /// `host/path`, lower case.
    provider: String,
    claim: Claim,
    values: Vec<String>,
}

/// What the request presents to the policy.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// `arn:aws:iam::ACCOUNT:oidc-provider/HOST/PATH`.
    pub provider_arn: &'a str,
    /// `HOST/PATH`, the condition key prefix.
    pub provider: &'a str,
    /// The token's `sub`.
    pub sub: &'a str,
    /// The audience that matched the provider's client IDs.
    pub aud: &'a str,
    /// The token's `amr` values.
    pub amr: &'a [String],
}

/// The outcome, as IAM decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An Allow statement matched and no Deny did.
    Allow,
    /// A Deny statement matched.
    ExplicitDeny(Option<String>),
    /// Nothing allowed it.
    ImplicitDeny,
}

/// A trust policy issuerd cannot evaluate.
#[derive(Debug, thiserror::Error)]
#[error("trust policy: {0}")]
pub struct PolicyError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(message.into()))
}

impl TrustPolicy {
    /// Parses the IAM JSON (an object, or a string holding one, as the IAM API returns it).
    pub fn parse(document: &Value) -> Result<Self, PolicyError> {
        let parsed;
        let document = match document {
            Value::String(text) => {
                parsed = serde_json::from_str::<Value>(text)
                    .map_err(|e| PolicyError(format!("not JSON ({e})")))?;
                &parsed
            }
            other => other,
        };
        let Some(object) = document.as_object() else {
            return err("not a JSON object");
        };
        for key in object.keys() {
            if !["Version", "Id", "Statement"].contains(&key.as_str()) {
                return err(format!("unsupported top-level member {key:?}"));
            }
        }
        match object.get("Version").and_then(Value::as_str) {
            None | Some("2012-10-17" | "2008-10-17") => {}
            Some(other) => return err(format!("unknown Version {other:?}")),
        }
        let statements = match object.get("Statement") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(item @ Value::Object(_)) => vec![item],
            _ => return err("has no Statement"),
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Statement::parse(s)
                    .map_err(|e| PolicyError(format!("statement #{}: {}", i + 1, e.0)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { statements })
    }

    /// Evaluates the policy for `sts:AssumeRoleWithWebIdentity`: an explicit Deny wins, then
    /// any Allow, else the implicit deny.
    pub fn evaluate(&self, context: &Context<'_>) -> Decision {
        let matching = |s: &&Statement| s.applies(context);
        if let Some(deny) = self.statements.iter().filter(|s| !s.allow).find(matching) {
            return Decision::ExplicitDeny(deny.sid.clone());
        }
        if self
            .statements
            .iter()
            .filter(|s| s.allow)
            .any(|s| matching(&s))
        {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => err(format!("{what} holds a value that is not a string")),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        _ => err(format!("{what} is not a string or an array of strings")),
    }
}

impl Statement {
    fn parse(value: &Value) -> Result<Self, PolicyError> {
        let Some(object) = value.as_object() else {
            return err("is not a JSON object");
        };
        for key in object.keys() {
            match key.as_str() {
                "Sid" | "Effect" | "Principal" | "Action" | "Condition" => {}
                "NotPrincipal" | "NotAction" => {
                    return err(format!(
                        "{key} is not supported here; write the statement with Principal and Action"
                    ));
                }
                "Resource" | "NotResource" => return err(format!("a trust policy has no {key}")),
                other => return err(format!("unsupported member {other:?}")),
            }
        }
        let allow = match object.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            _ => return err("Effect must be \"Allow\" or \"Deny\""),
        };
        let principal = match object.get("Principal") {
            Some(Value::String(s)) if s == "*" => Principal::Anyone,
            Some(Value::Object(map)) => {
                let mut principal = Principal::Other;
                for (kind, value) in map {
                    match kind.as_str() {
                        "Federated" => {
                            principal = Principal::Federated(strings(value, "Principal.Federated")?)
                        }
                        "AWS" if value == "*" => principal = Principal::Anyone,
                        "AWS" | "Service" | "CanonicalUser" => {}
                        other => return err(format!("unknown principal type {other:?}")),
                    }
                }
                principal
            }
            _ => return err("Principal must be \"*\" or an object such as {\"Federated\": ARN}"),
        };
        let actions = strings(
            object
                .get("Action")
                .ok_or_else(|| PolicyError("has no Action".into()))?,
            "Action",
        )?;
        let conditions = match object.get("Condition") {
            None => Vec::new(),
            Some(Value::Object(map)) => parse_conditions(map)?,
            Some(_) => return err("Condition is not an object"),
        };
        Ok(Self {
            sid: object.get("Sid").and_then(Value::as_str).map(str::to_owned),
            allow,
            principal,
            actions,
            conditions,
        })
    }

    fn applies(&self, context: &Context<'_>) -> bool {
        let principal = match &self.principal {
            Principal::Anyone => true,
            Principal::Federated(arns) => arns.iter().any(|arn| arn == context.provider_arn),
            Principal::Other => false,
        };
        principal
            && self
                .actions
                .iter()
                .any(|a| wildcard(&a.to_ascii_lowercase(), &ACTION.to_ascii_lowercase()))
            && self.conditions.iter().all(|c| c.holds(context))
    }
}

fn parse_conditions(map: &Map<String, Value>) -> Result<Vec<Condition>, PolicyError> {
    let mut conditions = Vec::new();
    for (operator, keys) in map {
        let (set, rest) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
            (SetOp::ForAnyValue, rest)
        } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
            (SetOp::ForAllValues, rest)
        } else {
            (SetOp::Single, operator.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let (compare, negated) = match base {
            "StringEquals" => (Compare::Equals, false),
            "StringNotEquals" => (Compare::Equals, true),
            "StringEqualsIgnoreCase" => (Compare::EqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Compare::EqualsIgnoreCase, true),
            "StringLike" => (Compare::Like, false),
            "StringNotLike" => (Compare::Like, true),
            _ => {
                return err(format!(
                    "condition operator {operator:?} is not supported (use StringEquals, \
                     StringLike, their negations and IgnoreCase forms, with optional \
                     ForAnyValue:/ForAllValues: and IfExists)"
                ));
            }
        };
        let Some(keys) = keys.as_object() else {
            return err(format!("condition {operator:?} is not an object of keys"));
        };
        for (key, values) in keys {
            let lower = key.to_ascii_lowercase();
            let (provider, claim) = match lower.rsplit_once(':') {
                Some((provider, "sub")) if !provider.is_empty() => (provider, Claim::Sub),
                Some((provider, "aud")) if !provider.is_empty() => (provider, Claim::Aud),
                Some((provider, "amr")) if !provider.is_empty() => (provider, Claim::Amr),
                _ => {
                    return err(format!(
                        "condition key {key:?} is not supported; only <provider host/path>:sub, \
                         :aud and :amr are evaluated"
                    ));
                }
            };
            if claim == Claim::Amr && set == SetOp::Single {
                return err(format!(
                    "{key:?} is multivalued: use ForAnyValue:{base} or ForAllValues:{base}"
                ));
            }
            let values = strings(values, &format!("condition {operator}/{key}"))?;
            if let Some(v) = values.iter().find(|v| v.contains("${")) {
                return err(format!("policy variables ({v:?}) are not supported"));
            }
            conditions.push(Condition {
                operator: operator.clone(),
                set,
                compare,
                negated,
                if_exists,
                provider: provider.to_owned(),
                claim,
                values,
            });
        }
    }
    Ok(conditions)
}

impl Condition {
    fn holds(&self, context: &Context<'_>) -> bool {
        let present: Option<Vec<&str>> = if self.provider == context.provider.to_ascii_lowercase() {
            match self.claim {
                Claim::Sub => Some(vec![context.sub]),
                Claim::Aud => Some(vec![context.aud]),
                Claim::Amr if context.amr.is_empty() => None,
                Claim::Amr => Some(context.amr.iter().map(String::as_str).collect()),
            }
        } else {
            None
        };
        let one = |value: &str| {
            let matched = self.values.iter().any(|pattern| match self.compare {
                Compare::Equals => pattern == value,
                Compare::EqualsIgnoreCase => pattern.eq_ignore_ascii_case(value),
                Compare::Like => wildcard(pattern, value),
            });
            matched != self.negated
        };
        match (self.set, present) {
            (SetOp::Single, None) => self.negated || self.if_exists,
            (SetOp::Single, Some(values)) => values.iter().all(|v| one(v)),
            (SetOp::ForAnyValue, None) => self.if_exists,
            (SetOp::ForAnyValue, Some(values)) => values.iter().any(|v| one(v)),
            (SetOp::ForAllValues, None) => true,
            (SetOp::ForAllValues, Some(values)) => values.iter().all(|v| one(v)),
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.operator, self.values)
    }
}

/// IAM's `StringLike`: `*` any run of characters, `?` exactly one; everything else literal.
pub fn wildcard(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == v[vi]) {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests;
