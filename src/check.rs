//! `issuerd check URL`: a doctor for a live issuer, checking what AWS STS, Vault and strict OIDC
//! clients need: https, anonymous reachability, discovery members, `issuer` equal to the URL,
//! `jwks_uri`, Content-Types, cache headers, each key (kid, algorithm, size, no private members)
//! and response time against STS's ~5 s budget.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::keys::{KeyMaterial, PublicKey, kid};
use crate::token::fetch::{FetchError, Fetched, Fetcher, STS_BUDGET};
use crate::token::verify::{DISCOVERY_TYPES, JWKS_TYPES};
use crate::trust::Trust;

/// Longest `max-age` before a rotation takes unreasonably long to reach relying parties.
const LONG_MAX_AGE_SECS: u64 = 86_400;
/// Members that only private or symmetric JWKs carry.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fine.
    Pass,
    /// Works, but is probably wrong or fragile.
    Warn,
    /// Breaks a relying party.
    Fail,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Pass, warn or fail.
    pub level: Level,
    /// A short stable name of the check.
    pub check: &'static str,
    /// What was found.
    pub message: String,
}

/// Everything found about one issuer.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The issuer URL checked.
    pub url: String,
    /// No finding failed.
    pub ok: bool,
    /// The findings, in the order checked.
    pub findings: Vec<Finding>,
}

impl Report {
    fn push(&mut self, level: Level, check: &'static str, message: impl Into<String>) {
        if level == Level::Fail {
            self.ok = false;
        }
        self.findings.push(Finding {
            level,
            check,
            message: message.into(),
        });
    }

    /// Whether a check produced a finding at `level`.
    pub fn has(&self, level: Level, check: &str) -> bool {
        self.findings
            .iter()
            .any(|f| f.level == level && f.check == check)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "issuer {}", self.url)?;
        for finding in &self.findings {
            let mark = match finding.level {
                Level::Pass => "ok  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            writeln!(f, "  {mark} {:<14} {}", finding.check, finding.message)?;
        }
        let (warnings, failures) = self
            .findings
            .iter()
            .fold((0, 0), |(w, e), x| match x.level {
                Level::Warn => (w + 1, e),
                Level::Fail => (w, e + 1),
                Level::Pass => (w, e),
            });
        write!(
            f,
            "{}: {failures} failure(s), {warnings} warning(s)",
            if self.ok { "usable" } else { "NOT usable" }
        )
    }
}

/// Checks the issuer at `url`. `allow_insecure` turns http from a failure into a warning.
pub async fn check(url: &str, allow_insecure: bool, trust: &Trust) -> Report {
    let mut report = Report {
        url: url.to_owned(),
        ok: true,
        findings: Vec::new(),
    };
    check_url(&mut report, url, allow_insecure);
    if !report.ok && url::Url::parse(url).is_err() {
        return report;
    }
    // Fetch over http too (and report it), with room to measure a slow issuer past STS's budget.
    let fetcher = match Fetcher::new(STS_BUDGET * 2, true, trust) {
        Ok(fetcher) => fetcher,
        Err(error) => {
            report.push(Level::Fail, "client", error.to_string());
            return report;
        }
    };
    let discovery = match fetcher.discovery(url).await {
        Ok(discovery) => discovery,
        Err(error) => {
            fetch_failure(&mut report, "discovery", &error);
            return report;
        }
    };
    report.push(
        Level::Pass,
        "discovery",
        format!("{} answered 200 to an anonymous GET", discovery.fetched.url),
    );
    check_headers(
        &mut report,
        "discovery",
        &discovery.fetched,
        &DISCOVERY_TYPES,
    );
    check_members(&mut report, &discovery.document);
    if discovery.issuer == url {
        report.push(Level::Pass, "issuer", "equals the URL byte for byte");
    } else {
        let slash = if discovery.issuer.trim_end_matches('/') == url.trim_end_matches('/') {
            " (they differ only by a trailing slash)"
        } else {
            ""
        };
        report.push(
            Level::Fail,
            "issuer",
            format!(
                "the document's issuer is {:?}, not {url:?}{slash}; tokens must carry the \
                 document's issuer and relying parties compare byte for byte",
                discovery.issuer
            ),
        );
    }
    match url::Url::parse(&discovery.jwks_uri).map(|u| u.scheme().to_owned()) {
        Ok(scheme) if scheme == "https" => {
            report.push(Level::Pass, "jwks_uri", discovery.jwks_uri.clone());
        }
        Ok(scheme) if scheme == "http" => report.push(
            if allow_insecure {
                Level::Warn
            } else {
                Level::Fail
            },
            "jwks_uri",
            format!(
                "{} uses http; AWS STS only fetches https",
                discovery.jwks_uri
            ),
        ),
        _ => report.push(
            Level::Fail,
            "jwks_uri",
            format!("{:?} is not an absolute https URL", discovery.jwks_uri),
        ),
    }
    let jwks = match fetcher.get("jwks_uri", &discovery.jwks_uri).await {
        Ok(jwks) => jwks,
        Err(error) => {
            fetch_failure(&mut report, "jwks", &error);
            return report;
        }
    };
    report.push(
        Level::Pass,
        "jwks",
        format!("{} answered 200 to an anonymous GET", jwks.url),
    );
    check_headers(&mut report, "jwks", &jwks, &JWKS_TYPES);
    let algorithms = check_keys(&mut report, &jwks.body);
    if let Some(advertised) = discovery
        .document
        .get("id_token_signing_alg_values_supported")
        .and_then(Value::as_array)
    {
        for alg in algorithms {
            if !advertised.iter().any(|a| a == alg) {
                report.push(
                    Level::Warn,
                    "algorithms",
                    format!("a key signs {alg} but id_token_signing_alg_values_supported omits it"),
                );
            }
        }
    }
    let total = discovery.fetched.elapsed + jwks.elapsed;
    let (level, note) = if total > STS_BUDGET {
        (Level::Fail, "over AWS STS's ~5 s budget")
    } else if total > STS_BUDGET / 2 {
        (Level::Warn, "close to AWS STS's ~5 s budget")
    } else {
        (Level::Pass, "within AWS STS's ~5 s budget")
    };
    report.push(
        level,
        "latency",
        format!("discovery + JWKS took {} ms, {note}", total.as_millis()),
    );
    report
}

fn check_url(report: &mut Report, url: &str, allow_insecure: bool) {
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            report.push(Level::Fail, "url", format!("not an absolute URL ({e})"));
            return;
        }
    };
    match parsed.scheme() {
        "https" => report.push(Level::Pass, "https", "the issuer uses https"),
        "http" if allow_insecure => report.push(
            Level::Warn,
            "https",
            "http: accepted for local testing only; AWS, Vault and kube-apiserver require https",
        ),
        "http" => report.push(
            Level::Fail,
            "https",
            "http: AWS IAM and STS require https (pass --allow-insecure to check a local issuer)",
        ),
        other => report.push(Level::Fail, "https", format!("scheme {other} is not https")),
    }
    if parsed.port().is_some() && parsed.scheme() == "https" {
        report.push(
            Level::Warn,
            "url",
            "has a port; AWS IAM refuses OIDC provider URLs with a port",
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        report.push(
            Level::Fail,
            "url",
            "has a query or fragment; an issuer may not",
        );
    }
    if url.ends_with('/') {
        report.push(
            Level::Warn,
            "url",
            "ends with '/': tokens must carry exactly this string as iss",
        );
    }
}

fn fetch_failure(report: &mut Report, check: &'static str, error: &FetchError) {
    let hint = match error {
        FetchError::Status {
            status: 401 | 403, ..
        } => {
            "; relying parties fetch anonymously (kube-apiserver: bind system:service-account-issuer-discovery \
             to system:unauthenticated; S3: the objects must be public)"
        }
        FetchError::Unreachable { reason, .. }
            if reason.contains("certificate") || reason.contains("UnknownIssuer") =>
        {
            "; the certificate chain must end in a publicly trusted CA for AWS STS without thumbprints"
        }
        _ => "",
    };
    report.push(Level::Fail, check, format!("{error}{hint}"));
}

fn check_headers(report: &mut Report, what: &'static str, fetched: &Fetched, expected: &[&str]) {
    match fetched.media_type() {
        Some(media) if expected.contains(&media.as_str()) => report.push(
            Level::Pass,
            "content-type",
            format!("{what}: {}", fetched.content_type.as_deref().unwrap_or("")),
        ),
        _ => report.push(
            Level::Fail,
            "content-type",
            format!(
                "{what}: {}; expected {} (strict clients refuse it)",
                fetched.content_type.as_deref().unwrap_or("no Content-Type"),
                expected.join(" or ")
            ),
        ),
    }
    let max_age = fetched.cache_control.as_deref().and_then(|cc| {
        cc.split(',')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    match (fetched.cache_control.as_deref(), max_age) {
        (None, _) => report.push(
            Level::Warn,
            "cache",
            format!("{what}: no Cache-Control; relying parties pick their own cache lifetime"),
        ),
        (Some(cc), _) if cc.contains("no-store") => report.push(
            Level::Warn,
            "cache",
            format!("{what}: Cache-Control {cc:?}: every verification refetches"),
        ),
        (Some(cc), Some(secs)) if secs > LONG_MAX_AGE_SECS => report.push(
            Level::Warn,
            "cache",
            format!(
                "{what}: Cache-Control {cc:?}: a new key takes over {} to reach cached verifiers",
                humantime::format_duration(Duration::from_secs(secs))
            ),
        ),
        (Some(cc), _) => report.push(
            Level::Pass,
            "cache",
            format!("{what}: Cache-Control {cc:?}"),
        ),
    }
}

fn check_members(report: &mut Report, document: &Value) {
    for member in [
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        if document.get(member).is_none() {
            report.push(
                Level::Warn,
                "members",
                format!("discovery has no {member:?} (required by OpenID Connect Discovery)"),
            );
        }
    }
    if !report.has(Level::Warn, "members") {
        report.push(
            Level::Pass,
            "members",
            "issuer, jwks_uri and the required OpenID Connect members are present",
        );
    }
}

/// Checks every JWK; returns the algorithms the keys sign with.
fn check_keys(report: &mut Report, body: &[u8]) -> Vec<&'static str> {
    // Private members first, per key, before the strict parse refuses the whole set.
    if let Ok(document) = serde_json::from_slice::<Value>(body)
        && let Some(keys) = document.get("keys").and_then(Value::as_array)
    {
        for (i, jwk) in keys.iter().enumerate() {
            for member in PRIVATE_MEMBERS {
                if jwk.get(member).is_some() {
                    report.push(
                        Level::Fail,
                        "private",
                        format!(
                            "JWK #{} publishes the private member {member:?}: revoke this key now",
                            i + 1
                        ),
                    );
                }
            }
            if jwk.get("alg").is_none() {
                report.push(
                    Level::Warn,
                    "alg",
                    format!("JWK #{} has no \"alg\"; some clients require it", i + 1),
                );
            }
        }
    }
    let keys = match PublicKey::from_jwks(body) {
        Ok(keys) => keys,
        Err(reason) => {
            report.push(Level::Fail, "keys", format!("JWKS refused: {reason}"));
            return Vec::new();
        }
    };
    report.push(
        Level::Pass,
        "keys",
        format!("{} key(s); no private members", keys.len()),
    );
    let mut algorithms = Vec::new();
    for key in &keys {
        let thumbprint = kid::key_id(key.spki_der());
        let size = match key.material() {
            KeyMaterial::Rsa { n, .. } => format!("RSA {} bits", n.len() * 8),
            KeyMaterial::Ec { curve, .. } => format!("EC {}", curve.name()),
        };
        if key.kid() == thumbprint {
            report.push(
                Level::Pass,
                "kid",
                format!(
                    "{} ({size}, {}) is its SHA-256 thumbprint, as kube-apiserver computes it",
                    key.kid(),
                    key.algorithm().name()
                ),
            );
        } else {
            report.push(
                Level::Warn,
                "kid",
                format!(
                    "{:?} ({size}, {}) is not its SHA-256 thumbprint {thumbprint}; tokens must carry \
                     exactly this kid",
                    key.kid(),
                    key.algorithm().name()
                ),
            );
        }
        if !algorithms.contains(&key.algorithm().name()) {
            algorithms.push(key.algorithm().name());
        }
    }
    algorithms
}
