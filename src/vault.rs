//! What configures HashiCorp Vault's JWT auth method to trust this issuer's ServiceAccount
//! tokens (`vault-config`): the two request bodies (`auth/<mount>/config`,
//! `auth/<mount>/role/<name>`) and the `vault write` commands that send them; pure.
//!
//! Parameter names and forms follow Vault's JWT/OIDC auth method API documentation
//! (developer.hashicorp.com/vault/api-docs/auth/jwt) and its CLI's `key=value` rules
//! (`internalshared/kv-builder`): a value starting with `@` names a file unless written `\@`, a
//! value `-` is read from standard input, and a map (`bound_claims`) can only be given as JSON,
//! so a glob role is written as one JSON document on standard input.

use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde_json::{Map, Value, json};

use crate::issuer::{Issuer, IssuerError};

/// The claim that names the ServiceAccount, and Vault's entity alias.
const USER_CLAIM: &str = "sub";

/// The inputs of `vault-config`, as given.
#[derive(Debug)]
pub struct Settings<'a> {
    /// The issuer URL, exactly as in the tokens' `iss`.
    pub issuer: &'a str,
    /// Allow an `http://` issuer (local testing).
    pub allow_insecure_issuer: bool,
    /// The CAs Vault must trust to fetch the discovery document (`oidc_discovery_ca_pem`).
    pub ca_certificates: &'a [CertificateDer<'static>],
    /// Where the JWT auth method is mounted (`jwt` for `auth/jwt`).
    pub mount: &'a str,
    /// The Vault role's name.
    pub role: &'a str,
    /// The ServiceAccount's namespace, or a glob (`*`).
    pub namespace: &'a str,
    /// The ServiceAccount's name, or a glob (`*`).
    pub service_account: &'a str,
    /// The audience the projected token carries.
    pub audience: &'a str,
    /// The policies of the tokens Vault issues.
    pub policies: &'a [String],
    /// The lifetime of the tokens Vault issues (`token_ttl`).
    pub ttl: Option<Duration>,
}

/// An input `vault-config` refuses.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A flag's value that does not fit.
    #[error("{flag} {value:?}: {reason}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why.
        reason: String,
    },
}

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> VaultError {
    VaultError::Invalid {
        flag,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// The Vault configuration for one issuer and one role, validated.
#[derive(Debug)]
pub struct Setup {
    mount: String,
    role: String,
    /// `auth/<mount>/config`, in the order the command lists them.
    config: Vec<(&'static str, Value)>,
    /// `auth/<mount>/role/<role>`, in the order the command lists them.
    role_body: Vec<(&'static str, Value)>,
    /// The subject is a glob: the role binds `bound_claims`, which only JSON can carry.
    glob: bool,
    warnings: Vec<String>,
}

impl Setup {
    /// Validates `settings` into the two request bodies. Every error names its flag.
    pub fn new(settings: &Settings<'_>) -> Result<Self, VaultError> {
        // Before parsing: a URL parser drops tabs and newlines, the tokens' `iss` would not.
        if settings
            .issuer
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "--issuer",
                settings.issuer,
                "contains whitespace or a control character",
            ));
        }
        let issuer = Issuer::new(settings.issuer, None, settings.allow_insecure_issuer).map_err(
            |IssuerError::Invalid { reason, .. }| invalid("--issuer", settings.issuer, reason),
        )?;
        let mount = mount(settings.mount)?;
        role_name(settings.role)?;
        name_or_glob("--namespace", settings.namespace, dns1123_label)?;
        name_or_glob(
            "--service-account",
            settings.service_account,
            dns1123_subdomain,
        )?;
        list_value("--audience", settings.audience)?;
        for policy in settings.policies {
            list_value("--policies", policy)?;
        }
        let ttl = settings.ttl.map(go_duration).transpose()?;

        let mut warnings: Vec<String> = issuer.warnings().to_vec();
        let subject = format!(
            "system:serviceaccount:{}:{}",
            settings.namespace, settings.service_account
        );
        let glob = subject.contains('*');
        if settings.namespace == "*" {
            warnings.push(match settings.service_account {
                "*" => "--namespace \"*\" --service-account \"*\": every ServiceAccount of the \
                        cluster may log in"
                    .to_owned(),
                name => format!(
                    "--namespace \"*\": a ServiceAccount named {name:?} in any namespace may log in"
                ),
            });
        }

        let mut config = vec![
            ("oidc_discovery_url", json!(settings.issuer)),
            ("bound_issuer", json!(settings.issuer)),
        ];
        if !settings.ca_certificates.is_empty() {
            config.push((
                "oidc_discovery_ca_pem",
                json!(pem_bundle(settings.ca_certificates)),
            ));
        }

        let mut role_body = vec![
            ("role_type", json!("jwt")),
            ("bound_audiences", json!([settings.audience])),
            ("user_claim", json!(USER_CLAIM)),
        ];
        if glob {
            role_body.push(("bound_claims_type", json!("glob")));
            role_body.push(("bound_claims", json!({ USER_CLAIM: subject })));
        } else {
            role_body.push(("bound_subject", json!(subject)));
        }
        if !settings.policies.is_empty() {
            role_body.push(("token_policies", json!(settings.policies)));
        }
        if let Some(ttl) = ttl {
            role_body.push(("token_ttl", json!(ttl)));
        }
        Ok(Self {
            mount,
            role: settings.role.to_owned(),
            config,
            role_body,
            glob,
            warnings,
        })
    }

    /// Things that are allowed but probably wrong, for the caller to log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The Vault path of the method's configuration: `auth/<mount>/config`.
    pub fn config_path(&self) -> String {
        format!("auth/{}/config", self.mount)
    }

    /// The Vault path of the role: `auth/<mount>/role/<name>`.
    pub fn role_path(&self) -> String {
        format!("auth/{}/role/{}", self.mount, self.role)
    }

    /// The body of `POST /v1/auth/<mount>/config`.
    pub fn config_body(&self) -> Value {
        object(&self.config)
    }

    /// The body of `POST /v1/auth/<mount>/role/<name>`.
    pub fn role_body(&self) -> Value {
        object(&self.role_body)
    }

    /// Both HTTP API requests: `{"config": {method, path, body}, "role": {...}}`.
    pub fn to_json(&self) -> Value {
        let request = |path: String, body: Value| json!({ "method": "POST", "path": format!("/v1/{path}"), "body": body });
        json!({
            "config": request(self.config_path(), self.config_body()),
            "role": request(self.role_path(), self.role_body()),
        })
    }

    /// The `vault write` commands, for a POSIX shell: every argument quoted as the shell needs,
    /// every value written so Vault's CLI takes it literally. The CA bundle is inline (the
    /// command works wherever it is run); a glob role is one JSON document on standard input,
    /// as Vault's CLI takes a map in no other form.
    pub fn to_shell(&self) -> String {
        let mut out = format!(
            "# HashiCorp Vault JWT auth, generated by issuerd vault-config. Enable the method once:\n\
             #   vault auth enable -path={} jwt\n",
            shell_word(&self.mount)
        );
        out.push_str(&write_command(&self.config_path(), &self.config));
        if self.glob {
            out.push_str(
                "# bound_claims is a map, which Vault's CLI takes only as JSON (here on stdin).\n\
                 # bound_claims_type=glob: '*' matches any run of characters, ':' included.\n",
            );
            let body =
                serde_json::to_string_pretty(&self.role_body()).expect("a JSON value serializes");
            debug_assert!(body.lines().all(|l| l != HEREDOC));
            out.push_str(&format!(
                "vault write {} - <<'{HEREDOC}'\n{body}\n{HEREDOC}\n",
                shell_word(&self.role_path())
            ));
        } else {
            out.push_str(&write_command(&self.role_path(), &self.role_body));
        }
        out
    }
}

/// The here-document delimiter of a glob role. Pretty-printed JSON never has a line that is
/// exactly this (its lines are `{`, `}` or indented).
const HEREDOC: &str = "EOF";

fn object(pairs: &[(&'static str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<Map<_, _>>(),
    )
}

/// `vault write PATH key=value...`, one argument a line.
fn write_command(path: &str, pairs: &[(&'static str, Value)]) -> String {
    let mut out = format!("vault write {}", shell_word(path));
    for (key, value) in pairs {
        let text = match value {
            Value::String(s) => cli_value(s),
            // Vault takes these lists (bound_audiences, token_policies) comma-separated.
            Value::Array(items) => cli_value(
                &items
                    .iter()
                    .map(|i| i.as_str().expect("lists hold strings"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            other => unreachable!("no {other} in a key=value command"),
        };
        out.push_str(" \\\n    ");
        out.push_str(&shell_word(&format!("{key}={text}")));
    }
    out.push('\n');
    out
}

/// A value as Vault's CLI takes it literally: a leading `@` (read a file) escaped as `\@`.
/// Values Vault's CLI cannot take literally (`-`, a leading `\@`) are refused by validation.
fn cli_value(value: &str) -> String {
    match value.starts_with('@') {
        true => format!("\\{value}"),
        false => value.to_owned(),
    }
}

/// `word` as one POSIX shell word: as is when every character is inert, else single-quoted
/// (a `'` inside written `'\''`).
pub fn shell_word(word: &str) -> String {
    let inert = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(inert) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The certificates as one PEM bundle (`\n` line endings), in order.
pub fn pem_bundle(certificates: &[CertificateDer<'_>]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    certificates
        .iter()
        .map(|c| pem::encode_config(&pem::Pem::new("CERTIFICATE", c.as_ref()), config))
        .collect()
}

/// The mount path, without surrounding `/`: segments of letters, digits, `_`, `-`, `.`.
fn mount(value: &str) -> Result<String, VaultError> {
    let trimmed = value.trim_matches('/');
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    };
    if trimmed.is_empty() || !trimmed.split('/').all(segment_ok) {
        return Err(invalid(
            "--mount",
            value,
            "is not a Vault mount path (segments of letters, digits, '_', '-', '.', joined by '/')",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A role name Vault's role path takes (`framework.GenericNameRegex`: `\w(([\w-.]+)?\w)?`).
fn role_name(value: &str) -> Result<(), VaultError> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let ok = match (value.chars().next(), value.chars().last()) {
        (Some(first), Some(last)) => {
            word(first) && word(last) && value.chars().all(|c| word(c) || c == '-' || c == '.')
        }
        _ => false,
    };
    match ok {
        true => Ok(()),
        false => Err(invalid(
            "--role",
            value,
            "is not a Vault role name (letters, digits, '_', '-', '.'; starting and ending with \
             a letter, digit or '_')",
        )),
    }
}

/// A Kubernetes name, or a glob that can match one: `*` matches any run of characters.
fn name_or_glob(
    flag: &'static str,
    value: &str,
    valid: fn(&str) -> bool,
) -> Result<(), VaultError> {
    let what = match flag {
        "--namespace" => "a DNS-1123 label (lower-case letters, digits, '-'; at most 63)",
        _ => "a DNS-1123 subdomain (lower-case letters, digits, '-', '.'; at most 253)",
    };
    if !value.contains('*') {
        return match valid(value) {
            true => Ok(()),
            false => Err(invalid(flag, value, format!("is not {what}"))),
        };
    }
    // A glob can match some name when `*` standing for nothing, or for one letter, gives one.
    match valid(&value.replace('*', "")) || valid(&value.replace('*', "a")) {
        true => Ok(()),
        false => Err(invalid(
            flag,
            value,
            format!("is a glob that matches no name: names are {what}"),
        )),
    }
}

/// Kubernetes' DNS-1123 label: namespaces.
fn dns1123_label(value: &str) -> bool {
    let b = value.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Kubernetes' DNS-1123 subdomain: ServiceAccount names.
fn dns1123_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(dns1123_label)
}

/// A member of a list Vault takes comma-separated (`bound_audiences`, `token_policies`), which
/// Vault's CLI passes on literally.
fn list_value(flag: &'static str, value: &str) -> Result<(), VaultError> {
    let reason = if value.is_empty() {
        "is empty"
    } else if value.contains(',') {
        "contains ',', which Vault reads as a list separator"
    } else if value.trim() != value {
        "starts or ends with whitespace, which Vault trims"
    } else if value.chars().any(char::is_control) {
        "contains a control character"
    } else if value == "-" {
        "is read by Vault's CLI as standard input"
    } else if value.starts_with("\\@") {
        "starts with \\@, which Vault's CLI reads as an escaped @"
    } else {
        return Ok(());
    };
    Err(invalid(flag, value, reason))
}

/// A TTL as a Go duration string (`1h30m`), as Vault parses it; whole seconds, not zero.
fn go_duration(ttl: Duration) -> Result<String, VaultError> {
    let shown = humantime::format_duration(ttl).to_string();
    if ttl.is_zero() {
        return Err(invalid(
            "--ttl",
            &shown,
            "must be greater than zero (leave it out for the mount's default)",
        ));
    }
    if ttl.subsec_nanos() != 0 {
        return Err(invalid("--ttl", &shown, "must be whole seconds"));
    }
    let secs = ttl.as_secs();
    let mut out = String::new();
    for (amount, unit) in [(secs / 3600, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")] {
        if amount > 0 {
            out.push_str(&format!("{amount}{unit}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(namespace: &'a str, service_account: &'a str) -> Settings<'a> {
        Settings {
            issuer: "https://oidc.example.com/prod",
            allow_insecure_issuer: false,
            ca_certificates: &[],
            mount: "jwt",
            role: "app",
            namespace,
            service_account,
            audience: "vault",
            policies: &[],
            ttl: None,
        }
    }

    #[test]
    fn exact_names_bind_the_subject_and_globs_bind_claims() {
        let exact = Setup::new(&settings("ns", "app")).unwrap();
        let role = exact.role_body();
        assert_eq!(role["bound_subject"], "system:serviceaccount:ns:app");
        assert!(role.get("bound_claims").is_none());

        let glob = Setup::new(&settings("team-*", "app")).unwrap();
        let role = glob.role_body();
        assert!(role.get("bound_subject").is_none());
        assert_eq!(role["bound_claims_type"], "glob");
        assert_eq!(
            role["bound_claims"],
            json!({"sub": "system:serviceaccount:team-*:app"})
        );
    }

    #[test]
    fn names_and_globs_are_checked() {
        for (ns, sa) in [
            ("Bad", "app"),
            ("ns", "-x"),
            ("-*", "app"),
            ("ns", "*."),
            ("", "a"),
        ] {
            assert!(Setup::new(&settings(ns, sa)).is_err(), "{ns}/{sa}");
        }
        for (ns, sa) in [
            ("*", "app"),
            ("ns", "*"),
            ("a-b", "my.app"),
            ("*-prod", "*-sa"),
        ] {
            assert!(Setup::new(&settings(ns, sa)).is_ok(), "{ns}/{sa}");
        }
    }

    #[test]
    fn role_names_follow_vaults_path_pattern() {
        for good in ["a", "app", "my-role.v2", "_x_", "A9"] {
            assert!(role_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a/b", "a b", "é", "a."] {
            assert!(role_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ttls_are_go_durations() {
        let d = |s| go_duration(Duration::from_secs(s)).unwrap();
        assert_eq!(d(3600), "1h");
        assert_eq!(d(5400), "1h30m");
        assert_eq!(d(90), "1m30s");
        assert_eq!(d(86400 + 1), "24h1s");
        assert!(go_duration(Duration::ZERO).is_err());
        assert!(go_duration(Duration::from_millis(1500)).is_err());
    }

    #[test]
    fn shell_words_quote_what_the_shell_would_read() {
        assert_eq!(shell_word("role_type=jwt"), "role_type=jwt");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("x=$HOME"), "'x=$HOME'");
        assert_eq!(shell_word("*"), "'*'");
    }

    #[test]
    fn the_mount_is_trimmed_and_checked() {
        assert_eq!(mount("/jwt/").unwrap(), "jwt");
        assert_eq!(mount("k8s/prod").unwrap(), "k8s/prod");
        for bad in ["", "/", "a//b", "a b", "../x", "a;b"] {
            assert!(mount(bad).is_err(), "{bad:?}");
        }
    }
}
