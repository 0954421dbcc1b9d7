//! The TOML file, as written: the publication at the top level, one table per feature. Every key
//! is optional and every table refuses keys it does not know; see `config/issuerd.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::bucket::MirrorAcl;
use crate::cli::LogFormat;
use crate::issuer::DiscoveryProfile;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct FileConfig {
    pub issuer: Option<String>,
    pub jwks_uri: Option<String>,
    pub key_files: Option<Vec<PathBuf>>,
    pub discovery_profile: Option<DiscoveryProfile>,
    pub allow_insecure_issuer: Option<bool>,
    pub max_age: Option<u32>,
    pub log_format: Option<LogFormat>,
    pub server: ServerSection,
    pub timeouts: TimeoutsSection,
    pub limits: LimitsSection,
    pub watch: WatchSection,
    pub shutdown: ShutdownSection,
    pub tls: TlsSection,
    pub acme: AcmeSection,
    pub mirror: MirrorSection,
    pub sts: StsSection,
    pub admin: AdminSection,
    pub kube: KubeSection,
}

/// `[server]`: the issuer listener.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ServerSection {
    pub listen: Option<String>,
    pub access_log: Option<bool>,
    /// `auto`, `shared`, or a count (a TOML string or integer).
    pub workers: Option<WorkersValue>,
}

/// `[server] workers`: `"auto"`, `"shared"` or a number, as TOML writes either.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum WorkersValue {
    Count(i64),
    Word(String),
}

impl WorkersValue {
    pub(super) fn text(&self) -> String {
        match self {
            Self::Count(n) => n.to_string(),
            Self::Word(word) => word.clone(),
        }
    }
}

/// `[timeouts]`: per-connection deadlines.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct TimeoutsSection {
    #[serde(with = "humantime_serde")]
    pub header: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub keep_alive: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub write: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub linger: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub h2_handshake: Option<Duration>,
}

/// `[limits]`: how many connections, how deep a backlog.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct LimitsSection {
    pub max_connections: Option<usize>,
    pub backlog: Option<u32>,
}

/// `[watch]`: how key (and certificate) files are followed.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct WatchSection {
    #[serde(with = "humantime_serde")]
    pub debounce: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
}

/// `[shutdown]`: what SIGTERM does.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ShutdownSection {
    #[serde(with = "humantime_serde")]
    pub grace: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub drain_delay: Option<Duration>,
}

/// `[tls]`: a certificate from files.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct TlsSection {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub allow_issuer_port: Option<bool>,
}

/// `[acme]`: a certificate from an ACME server.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct AcmeSection {
    pub domains: Option<Vec<String>>,
    pub email: Option<String>,
    pub accept_tos: Option<bool>,
    pub directory: Option<String>,
    pub directory_ca: Option<PathBuf>,
    pub cache: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub renew_before: Option<Duration>,
    pub http_listen: Option<SocketAddr>,
}

/// `[mirror]`: the bucket the documents are kept in.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct MirrorSection {
    pub url: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub public_url: Option<String>,
    pub acl: Option<MirrorAcl>,
    pub required: Option<bool>,
}

/// `[sts]`: the local STS beside the issuer.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct StsSection {
    pub listen: Option<SocketAddr>,
    pub roles: Option<PathBuf>,
    pub cluster_spec: Option<PathBuf>,
    pub account_id: Option<String>,
    pub ca_files: Option<Vec<PathBuf>>,
}

/// `[admin]`: the admin listener.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct AdminSection {
    pub listen: Option<SocketAddr>,
}

/// `[kube]`: the Kubernetes API server as a key source.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct KubeSection {
    pub apiserver: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub poll: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub max_stale: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

/// The flat keys of issuerd before the file had tables: `(old key, table, new key)`.
const MOVED: &[(&str, &str, &str)] = &[
    ("listen", "server", "listen"),
    ("access_log", "server", "access_log"),
    ("header_timeout", "timeouts", "header"),
    ("keep_alive_timeout", "timeouts", "keep_alive"),
    ("write_timeout", "timeouts", "write"),
    ("linger_timeout", "timeouts", "linger"),
    ("h2_handshake_timeout", "timeouts", "h2_handshake"),
    ("max_connections", "limits", "max_connections"),
    ("backlog", "limits", "backlog"),
    ("debounce", "watch", "debounce"),
    ("poll_interval", "watch", "poll_interval"),
    ("shutdown_grace", "shutdown", "grace"),
    ("drain_delay", "shutdown", "drain_delay"),
    ("tls_cert", "tls", "cert"),
    ("tls_key", "tls", "key"),
    ("allow_issuer_port", "tls", "allow_issuer_port"),
    ("acme_domains", "acme", "domains"),
    ("acme_email", "acme", "email"),
    ("acme_accept_tos", "acme", "accept_tos"),
    ("acme_directory", "acme", "directory"),
    ("acme_directory_ca", "acme", "directory_ca"),
    ("acme_cache", "acme", "cache"),
    ("acme_renew_before", "acme", "renew_before"),
    ("acme_http_listen", "acme", "http_listen"),
    ("s3_endpoint", "mirror", "endpoint"),
    ("s3_region", "mirror", "region"),
    ("public_url", "mirror", "public_url"),
    ("mirror_acl", "mirror", "acl"),
    ("mirror_required", "mirror", "required"),
    ("sts_listen", "sts", "listen"),
    ("sts_roles", "sts", "roles"),
    ("admin_listen", "admin", "listen"),
];

/// Reads and parses `path`. A key of the old flat form gets an error naming its new table.
pub(super) fn read(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|message| ConfigError::ParseFile {
        path: path.to_owned(),
        message,
    })
}

/// Parses the file's text; the error is one line, `line N: <what>`.
pub(super) fn parse(text: &str) -> Result<FileConfig, String> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
    };
    let with_line = |line: Option<usize>, message: &str| match line {
        Some(line) => format!("line {line}: {}", message.trim()),
        None => message.trim().to_owned(),
    };
    // Old flat keys first: read as the new schema, they would only be "unknown field".
    let document =
        toml::de::DeTable::parse(text).map_err(|e| with_line(line_of(e.span()), e.message()))?;
    for (key, value) in document.get_ref() {
        let name = key.get_ref().as_ref();
        let moved = MOVED.iter().find(|(old, _, _)| *old == name);
        // `mirror = "s3://..."` was the bucket; `[mirror]` is a table now.
        let moved = moved.or(match (name, value.get_ref()) {
            ("mirror", toml::de::DeValue::String(_)) => Some(&("mirror", "mirror", "url")),
            _ => None,
        });
        if let Some((old, table, new)) = moved {
            return Err(with_line(
                line_of(Some(key.span())),
                &format!("`{old}` has moved: write `{new} = ...` under `[{table}]`"),
            ));
        }
    }
    toml::from_str(text).map_err(|e| with_line(line_of(e.span()), e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_read() {
        let file = parse(
            "issuer = \"https://i\"\n[timeouts]\nheader = \"5s\"\n[mirror]\nurl = \"s3://b/p\"\n\
             [limits]\nbacklog = 7\n",
        )
        .unwrap();
        assert_eq!(file.issuer.as_deref(), Some("https://i"));
        assert_eq!(file.timeouts.header, Some(Duration::from_secs(5)));
        assert_eq!(file.mirror.url.as_deref(), Some("s3://b/p"));
        assert_eq!(file.limits.backlog, Some(7));
        assert_eq!(file.timeouts.write, None);
    }

    #[test]
    fn an_old_flat_key_names_its_new_table_and_line() {
        let error = parse("issuer = \"https://i\"\nheader_timeout = \"5s\"\n").unwrap_err();
        assert_eq!(
            error,
            "line 2: `header_timeout` has moved: write `header = ...` under `[timeouts]`"
        );
        let error = parse("mirror = \"s3://b\"\n").unwrap_err();
        assert!(
            error.contains("under `[mirror]`") && error.contains("`url = ...`"),
            "{error}"
        );
        // Every moved key is refused, and none of them is a key of the new top level.
        for (old, table, _) in MOVED {
            let error = parse(&format!("{old} = 1\n")).unwrap_err();
            assert!(error.contains(&format!("[{table}]")), "{old}: {error}");
        }
    }

    #[test]
    fn unknown_keys_in_a_table_are_refused_with_their_line() {
        let error = parse("[timeouts]\nheader = \"5s\"\nheaders = \"5s\"\n").unwrap_err();
        assert!(
            error.starts_with("line 3: unknown field `headers`"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_duration_is_refused_with_its_line() {
        let error = parse("[watch]\ndebounce = \"soon\"\n").unwrap_err();
        assert!(error.starts_with("line 2: "), "{error}");
    }
}
