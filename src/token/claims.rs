//! The claims of a projected ServiceAccount token, in kube-apiserver's member order.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// What kube-apiserver puts into a projected ServiceAccount token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audiences; always an array, as kube-apiserver writes it.
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Issuer URL.
    pub iss: String,
    /// Unique token ID.
    pub jti: String,
    /// Namespace, ServiceAccount and pod.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
    /// Not before.
    pub nbf: i64,
    /// `system:serviceaccount:NAMESPACE:NAME`.
    pub sub: String,
}

/// The `kubernetes.io` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaim {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// The pod the token is bound to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The ServiceAccount.
    pub serviceaccount: ObjectRef,
}

/// A Kubernetes object by name and UID.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

/// A ServiceAccount subject, `system:serviceaccount:NAMESPACE:NAME`, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// Namespace.
    pub namespace: String,
    /// ServiceAccount name.
    pub name: String,
}

impl Subject {
    /// Parses `system:serviceaccount:NS:NAME` (or the short `NS/NAME` and `NS:NAME`).
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("system:serviceaccount:").unwrap_or(text);
        let (namespace, name) = rest.split_once(':').or_else(|| rest.split_once('/'))?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        (valid(namespace) && valid(name)).then(|| Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The `sub` claim.
    pub fn claim(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// Seconds since the epoch.
pub fn unix(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `2026-01-02T03:04:05Z (1767323045)`, for diagnoses.
pub fn describe_time(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(s) => format!(
            "{} ({secs})",
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s))
        ),
        Err(_) => format!("{secs}"),
    }
}

/// A random UUID (version 4), as Kubernetes writes `jti` and UIDs.
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("the system random source works");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_parse_in_three_spellings() {
        for text in ["system:serviceaccount:ns:app", "ns/app", "ns:app"] {
            let s = Subject::parse(text).unwrap();
            assert_eq!(s.claim(), "system:serviceaccount:ns:app");
        }
        for bad in ["", "ns", "system:serviceaccount:ns", "NS/app", "ns/"] {
            assert!(Subject::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn uuids_are_version_4() {
        let u = random_uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, random_uuid());
    }

    #[test]
    fn times_are_described_in_rfc3339_and_unix() {
        assert_eq!(describe_time(0), "1970-01-01T00:00:00Z (0)");
    }
}
