//! Minting: what `issuerd mint` asks for -> the claims of a projected ServiceAccount token ->
//! a signed token, optionally written as a projected token file (mode 0600).

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::claims::{Claims, KubernetesClaim, ObjectRef, Subject, random_uuid, unix};
use super::signing_key::{SigningKey, SigningKeyError};

/// The token to mint.
#[derive(Clone, Debug)]
pub struct MintRequest {
    /// `iss`.
    pub issuer: String,
    /// The ServiceAccount.
    pub subject: Subject,
    /// `aud`.
    pub audiences: Vec<String>,
    /// Lifetime from `nbf` to `exp`.
    pub ttl: Duration,
    /// `nbf`; now when absent. `iat` is `nbf` when that is in the past, else now.
    pub not_before: Option<SystemTime>,
    /// The pod name the token is bound to.
    pub pod: Option<String>,
    /// The ServiceAccount UID (random when absent).
    pub service_account_uid: Option<String>,
}

impl MintRequest {
    /// The claims, as of `now`.
    pub fn claims(&self, now: SystemTime) -> Claims {
        let nbf = self.not_before.unwrap_or(now);
        let iat = nbf.min(now);
        Claims {
            aud: self.audiences.clone(),
            exp: unix(nbf + self.ttl),
            iat: unix(iat),
            iss: self.issuer.clone(),
            jti: random_uuid(),
            kubernetes: KubernetesClaim {
                namespace: self.subject.namespace.clone(),
                pod: self.pod.as_ref().map(|name| ObjectRef {
                    name: name.clone(),
                    uid: random_uuid(),
                }),
                serviceaccount: ObjectRef {
                    name: self.subject.name.clone(),
                    uid: self.service_account_uid.clone().unwrap_or_else(random_uuid),
                },
            },
            nbf: unix(nbf),
            sub: self.subject.claim(),
        }
    }
}

/// Signs the request's claims as of now.
pub fn mint(key: &SigningKey, request: &MintRequest) -> Result<String, SigningKeyError> {
    key.sign(&request.claims(SystemTime::now()), None)
}

/// Writes a token as kubelet writes a projected token: replaced atomically, mode 0600.
pub fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".token-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    temp.write_all(token.as_bytes())?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> MintRequest {
        MintRequest {
            issuer: "https://issuer.example".into(),
            subject: Subject::parse("ns/app").unwrap(),
            audiences: vec!["sts.amazonaws.com".into()],
            ttl: Duration::from_secs(3600),
            not_before: None,
            pod: Some("app-0".into()),
            service_account_uid: None,
        }
    }

    #[test]
    fn claims_are_shaped_like_kube_apiserver_s() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let claims = request().claims(now);
        assert_eq!(
            (claims.iat, claims.nbf, claims.exp),
            (1_000_000, 1_000_000, 1_003_600)
        );
        let json = serde_json::to_string(&claims).unwrap();
        let order = [
            "\"aud\":[",
            "\"exp\"",
            "\"iat\"",
            "\"iss\"",
            "\"jti\"",
            "\"kubernetes.io\"",
            "\"nbf\"",
            "\"sub\"",
        ];
        let positions: Vec<usize> = order.iter().map(|m| json.find(m).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(json.contains("\"sub\":\"system:serviceaccount:ns:app\""));
        assert!(json.contains("\"pod\":{\"name\":\"app-0\""));
    }

    #[test]
    fn not_before_in_the_past_moves_iat_and_exp_with_it() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut r = request();
        r.not_before = Some(now - Duration::from_secs(7200));
        let c = r.claims(now);
        assert_eq!((c.iat, c.nbf, c.exp), (992_800, 992_800, 996_400));
        r.not_before = Some(now + Duration::from_secs(600));
        let c = r.claims(now);
        assert_eq!((c.iat, c.nbf), (1_000_000, 1_000_600));
    }
}
