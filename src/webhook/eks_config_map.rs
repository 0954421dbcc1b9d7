//! The EKS pod identity webhook's ConfigMap format (`--eks-config-map`): the ConfigMap's
//! `config` value, `{"NS/SA": {"RoleARN": ..., "Audience": ..., "UseRegionalSTS": ...,
//! "TokenExpiration": ...}}`, as kOps writes it for that webhook (`--watch-config-map`).
//!
//! Read as that webhook reads it (Go's `encoding/json`): field names match case-insensitively,
//! `TokenExpiration` 0 means the default. Unlike it, a field it would silently ignore (a typo) is
//! refused, naming the entry; and a namespace may be a glob (`test-*/app`, which kOps writes and
//! the EKS webhook never matches) as well as the literal `*` it matches.

use std::path::Path;

use serde_json::Value;

use crate::arn::RoleArn;
use crate::iam_map::pattern::string_like;

/// One `NS/SA` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EksEntry {
    /// The namespace, or a glob.
    pub namespace: String,
    /// The ServiceAccount's name, or a glob.
    pub service_account: String,
    /// `RoleARN`.
    pub role_arn: String,
    /// `Audience`, when set.
    pub audience: Option<String>,
    /// `UseRegionalSTS`, when set.
    pub regional_sts: Option<bool>,
    /// `TokenExpiration` in seconds, when set and not 0.
    pub token_expiration: Option<u32>,
}

/// The parsed `config` value: entries in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EksConfigMap {
    entries: Vec<EksEntry>,
}

/// Why an EKS ConfigMap `config` value was refused; names the file and the entry.
#[derive(Debug, thiserror::Error)]
pub enum EksConfigMapError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not a JSON object of objects.
    #[error("{}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// One entry is wrong.
    #[error("{}: entry {key:?}: {reason}", path.display())]
    Entry {
        /// The file.
        path: std::path::PathBuf,
        /// The entry's key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl EksConfigMap {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, EksConfigMapError> {
        let text = std::fs::read_to_string(path).map_err(|source| EksConfigMapError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses a `config` value; `path` names it in errors. An empty map is `{}` (what kOps
    /// writes when no entry asks for the webhook); an empty file is refused, as a file caught
    /// mid-write would otherwise remove every role.
    pub fn parse(text: &str, path: &Path) -> Result<Self, EksConfigMapError> {
        let syntax = |reason: String| EksConfigMapError::Syntax {
            path: path.to_owned(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(syntax("is empty (a map without entries is {})".into()));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(syntax(
                "is not a JSON object of \"NAMESPACE/SERVICEACCOUNT\": {...} entries".into(),
            ));
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            let entry_error = |reason: String| EksConfigMapError::Entry {
                path: path.to_owned(),
                key: key.clone(),
                reason,
            };
            entries.push(parse_entry(&key, value).map_err(entry_error)?);
        }
        Ok(Self { entries })
    }

    /// The entries, in key order.
    pub fn entries(&self) -> &[EksEntry] {
        &self.entries
    }

    /// The entry for `namespace`/`service_account`: an exact key first, then the glob keys that
    /// match, the one with the most literal characters first (ties: key order).
    pub fn lookup(&self, namespace: &str, service_account: &str) -> Option<&EksEntry> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                string_like(&e.namespace, namespace)
                    && string_like(&e.service_account, service_account)
            })
            .max_by_key(|(index, e)| {
                let exact = !has_wildcard(&e.namespace) && !has_wildcard(&e.service_account);
                let literal = literal_len(&e.namespace) + literal_len(&e.service_account);
                // max_by_key keeps the last maximum: the reversed index makes it the first.
                (exact, literal, std::cmp::Reverse(*index))
            })
            .map(|(_, e)| e)
    }
}

/// Whether `pattern` has a wildcard of IAM's `StringLike`.
fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// The characters of `pattern` that must match literally.
fn literal_len(pattern: &str) -> usize {
    pattern.chars().filter(|c| !matches!(c, '*' | '?')).count()
}

fn parse_entry(key: &str, value: Value) -> Result<EksEntry, String> {
    let (namespace, service_account) = key
        .split_once('/')
        .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains('/'))
        .ok_or("the key is not NAMESPACE/SERVICEACCOUNT")?;
    let Value::Object(fields) = value else {
        return Err("is not an object".into());
    };
    let mut entry = EksEntry {
        namespace: namespace.to_owned(),
        service_account: service_account.to_owned(),
        role_arn: String::new(),
        audience: None,
        regional_sts: None,
        token_expiration: None,
    };
    for (name, value) in fields {
        // Go's encoding/json matches field names case-insensitively; so does this.
        match name.to_ascii_lowercase().as_str() {
            "rolearn" => entry.role_arn = string(&name, value)?,
            "audience" => entry.audience = Some(string(&name, value)?).filter(|a| !a.is_empty()),
            "useregionalsts" => {
                entry.regional_sts = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| format!("{name} is not true or false"))?,
                );
            }
            "tokenexpiration" => {
                let seconds = value
                    .as_i64()
                    .filter(|s| *s >= 0)
                    .ok_or_else(|| format!("{name} is not a number of seconds"))?;
                entry.token_expiration = match seconds {
                    0 => None,
                    s => Some(u32::try_from(s).map_err(|_| format!("{name} is too large"))?),
                };
            }
            _ => {
                return Err(format!(
                    "unknown field {name:?} (expected RoleARN, Audience, UseRegionalSTS, TokenExpiration)"
                ));
            }
        }
    }
    if entry.role_arn.is_empty() {
        return Err("RoleARN is missing".into());
    }
    entry
        .role_arn
        .parse::<RoleArn>()
        .map_err(|e| format!("RoleARN: {e}"))?;
    Ok(entry)
}

fn string(name: &str, value: Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(format!("{name} is not a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EksConfigMap, EksConfigMapError> {
        EksConfigMap::parse(text, Path::new("config"))
    }

    #[test]
    fn reads_the_format_kops_writes() {
        let map = parse(
            r#"{"default/app":{"RoleARN":"arn:aws:iam::111122223333:role/app.default.sa.c","Audience":"amazonaws.com","UseRegionalSTS":true,"TokenExpiration":0}}"#,
        )
        .unwrap();
        let entry = map.lookup("default", "app").unwrap();
        assert_eq!(
            entry.role_arn,
            "arn:aws:iam::111122223333:role/app.default.sa.c"
        );
        assert_eq!(entry.audience.as_deref(), Some("amazonaws.com"));
        assert_eq!(entry.regional_sts, Some(true));
        assert_eq!(entry.token_expiration, None);
        assert!(map.lookup("default", "other").is_none());
        assert!(map.lookup("other", "app").is_none());
    }

    #[test]
    fn field_names_match_as_go_matches_them() {
        let map = parse(
            r#"{"ns/sa":{"roleArn":"arn:aws:iam::111122223333:role/r","tokenexpiration":3600}}"#,
        )
        .unwrap();
        let entry = map.lookup("ns", "sa").unwrap();
        assert_eq!(entry.role_arn, "arn:aws:iam::111122223333:role/r");
        assert_eq!(entry.token_expiration, Some(3600));
    }

    #[test]
    fn exact_beats_glob_and_kops_globs_match() {
        let map = parse(
            r#"{"*/sa":{"RoleARN":"arn:aws:iam::111122223333:role/any"},"test-*/sa":{"RoleARN":"arn:aws:iam::111122223333:role/test"},"test-a/sa":{"RoleARN":"arn:aws:iam::111122223333:role/exact"}}"#,
        )
        .unwrap();
        let role = |ns| {
            map.lookup(ns, "sa")
                .unwrap()
                .role_arn
                .rsplit('/')
                .next()
                .unwrap()
        };
        assert_eq!(role("test-a"), "exact");
        assert_eq!(role("test-b"), "test");
        assert_eq!(role("prod"), "any");
        assert!(map.lookup("prod", "other").is_none());
    }

    #[test]
    fn refusals_name_the_entry_and_the_reason() {
        for (text, needle) in [
            (
                r#"{"ns/sa":{"RoleArm":"x"}}"#,
                r#"entry "ns/sa": unknown field "RoleArm""#,
            ),
            (
                r#"{"ns/sa":{"Audience":"x"}}"#,
                r#"entry "ns/sa": RoleARN is missing"#,
            ),
            (
                r#"{"nssa":{"RoleARN":"x"}}"#,
                r#"entry "nssa": the key is not NAMESPACE/SERVICEACCOUNT"#,
            ),
            (
                r#"{"ns/sa":{"RoleARN":"x","TokenExpiration":"1h"}}"#,
                "TokenExpiration is not a number",
            ),
            (
                r#"{"ns/sa":{"RoleARN":"x","UseRegionalSTS":"yes"}}"#,
                "UseRegionalSTS is not true or false",
            ),
            (r#"["ns/sa"]"#, "config: is not a JSON object"),
            (r#"{"ns/sa":"#, "config: EOF"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }

    #[test]
    fn an_empty_map_is_written_and_an_empty_file_is_refused() {
        assert!(parse("{}").unwrap().entries().is_empty());
        for text in ["", " \n"] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains("config: is empty"), "{error}");
        }
    }
}
