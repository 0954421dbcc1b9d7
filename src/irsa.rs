//! Generators for the two hand-written steps of self-hosted IRSA (kOps IRSA guide): the IAM
//! role's trust policy, and the pod wiring the EKS pod identity webhook would inject.

use serde_json::json;

use crate::arn::{self, AccountId, Partition, RoleArn};
use crate::token::claims::Subject;
use crate::webhook::mutation::{Injection, env_for, token_mount, token_volume};

// Where the EKS webhook mounts the projected token, its file, its volume: the webhook's own.
pub use crate::webhook::mutation::{TOKEN_DIR, TOKEN_FILE, VOLUME};

/// `https://Host:port/path/` -> `host:port/path`, as IAM names an OIDC provider (ARN suffix and
/// condition key prefix).
pub fn host_path(url: &str) -> String {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    rest.trim_end_matches('/').to_ascii_lowercase()
}

/// Invalid generator input.
#[derive(Debug, thiserror::Error)]
pub enum IrsaError {
    /// A value that does not fit.
    #[error("{what} {value:?}: {reason}")]
    Invalid {
        /// Which input.
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: &'static str,
    },
}

/// The trust policy that lets `service_accounts` (`NS/NAME`) assume a role through the OIDC
/// provider for `issuer` in `account` of `partition`, as IAM JSON (pretty, with a trailing
/// newline).
pub fn trust_policy(
    issuer: &str,
    partition: &Partition,
    account: &AccountId,
    service_accounts: &[String],
    audience: &str,
) -> Result<String, IrsaError> {
    let parsed = url::Url::parse(issuer).ok();
    if !parsed
        .as_ref()
        .is_some_and(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some())
    {
        return Err(IrsaError::Invalid {
            what: "issuer",
            value: issuer.to_owned(),
            reason: "is not an absolute https URL",
        });
    }
    let subjects = service_accounts
        .iter()
        .map(|sa| {
            Subject::parse(sa)
                .map(|s| s.claim())
                .ok_or_else(|| IrsaError::Invalid {
                    what: "service account",
                    value: sa.clone(),
                    reason: "is not NAMESPACE/NAME",
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let provider = host_path(issuer);
    let sub = match subjects.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    let policy = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": arn::oidc_provider(partition, account, &provider)},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    format!("{provider}:sub"): sub,
                    format!("{provider}:aud"): audience,
                }
            }
        }]
    });
    Ok(format!(
        "{}\n",
        serde_json::to_string_pretty(&policy).expect("a JSON value serializes")
    ))
}

/// The pod wiring, as a strategic merge patch for a workload's pod template.
#[derive(Debug)]
pub struct PodEnv<'a> {
    /// `AWS_ROLE_ARN`.
    pub role_arn: &'a RoleArn,
    /// Projected token audience.
    pub audience: &'a str,
    /// `AWS_REGION` and `AWS_DEFAULT_REGION`.
    pub region: Option<&'a str>,
    /// Projected token lifetime.
    pub expiration_seconds: u32,
    /// Container name.
    pub container: &'a str,
}

impl PodEnv<'_> {
    /// YAML, ready for `kubectl patch deployment NAME --patch-file FILE`.
    pub fn to_yaml(&self) -> Result<String, IrsaError> {
        if self.expiration_seconds < 600 {
            return Err(IrsaError::Invalid {
                what: "expiration seconds",
                value: self.expiration_seconds.to_string(),
                reason: "is under Kubernetes' minimum of 600",
            });
        }
        // JSON strings are YAML strings: every value is quoted exactly.
        let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
        // What the webhook (src/webhook) injects into a Linux pod, rendered as YAML.
        let injection = Injection {
            audience: self.audience.to_owned(),
            expiration_seconds: i64::from(self.expiration_seconds),
            regional_sts: true,
            region: self.region.map(str::to_owned),
            ..Injection::new(self.role_arn.as_str())
        };
        let (mount, volume) = (token_mount(), token_volume(&injection));
        let mut yaml = String::from(
            "# IRSA wiring as the EKS pod identity webhook injects it.\n\
             # Apply to a workload: kubectl patch deployment NAME --patch-file THIS_FILE\n\
             spec:\n  template:\n    spec:\n      containers:\n",
        );
        yaml.push_str(&format!(
            "      - name: {}\n        env:\n",
            q(self.container)
        ));
        for var in env_for(&injection, false) {
            yaml.push_str(&format!(
                "        - name: {}\n          value: {}\n",
                var.name,
                q(&var.value)
            ));
        }
        // defaultMode 420: the API server's default, which it stores for the webhook's volume too.
        yaml.push_str(&format!(
            "        volumeMounts:\n        - name: {}\n          mountPath: {}\n          readOnly: {}\n\
             \x20     volumes:\n      - name: {}\n        projected:\n          defaultMode: 420\n          sources:\n\
             \x20         - serviceAccountToken:\n              audience: {}\n              expirationSeconds: {}\n              path: {}\n",
            mount.name,
            mount.mount_path,
            mount.read_only,
            volume.name,
            q(&volume.audience),
            volume.expiration_seconds,
            volume.path,
        ));
        Ok(yaml)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountId {
        "111122223333".parse().unwrap()
    }

    #[test]
    fn trust_policy_names_provider_sub_and_aud() {
        let text = trust_policy(
            "https://oidc.example.com/cluster/",
            &Partition::AWS,
            &account(),
            &["ns/app".into()],
            "sts.amazonaws.com",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let s = &v["Statement"][0];
        assert_eq!(
            s["Principal"]["Federated"],
            "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/cluster"
        );
        assert_eq!(
            s["Condition"]["StringEquals"]["oidc.example.com/cluster:sub"],
            "system:serviceaccount:ns:app"
        );
        assert_eq!(
            s["Condition"]["StringEquals"]["oidc.example.com/cluster:aud"],
            "sts.amazonaws.com"
        );
    }

    #[test]
    fn trust_policy_names_the_provider_in_the_partition() {
        let text = trust_policy(
            "https://oidc.example.com/cluster",
            &Partition::AWS_CN,
            &account(),
            &["ns/app".into()],
            "sts.amazonaws.com",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["Statement"][0]["Principal"]["Federated"],
            "arn:aws-cn:iam::111122223333:oidc-provider/oidc.example.com/cluster"
        );
    }

    #[test]
    fn trust_policy_refuses_bad_input() {
        let aws = &Partition::AWS;
        assert!(trust_policy("oidc.example.com", aws, &account(), &["a/b".into()], "x").is_err());
        assert!(trust_policy("https://h", aws, &account(), &["ab".into()], "x").is_err());
    }

    #[test]
    fn pod_env_is_the_webhook_s_wiring() {
        let yaml = PodEnv {
            role_arn: &"arn:aws:iam::111122223333:role/app".parse().unwrap(),
            audience: "sts.amazonaws.com",
            region: Some("eu-west-1"),
            expiration_seconds: 86400,
            container: "app",
        }
        .to_yaml()
        .unwrap();
        for needle in [
            "- name: AWS_ROLE_ARN\n          value: \"arn:aws:iam::111122223333:role/app\"",
            "- name: AWS_WEB_IDENTITY_TOKEN_FILE\n          value: \"/var/run/secrets/eks.amazonaws.com/serviceaccount/token\"",
            "- name: AWS_REGION\n          value: \"eu-west-1\"",
            "- name: AWS_STS_REGIONAL_ENDPOINTS\n          value: \"regional\"",
            "mountPath: /var/run/secrets/eks.amazonaws.com/serviceaccount",
            "audience: \"sts.amazonaws.com\"",
            "expirationSeconds: 86400",
            "path: token",
        ] {
            assert!(yaml.contains(needle), "{needle}\n{yaml}");
        }
    }

    #[test]
    fn pod_env_renders_what_the_webhook_injects() {
        let yaml = PodEnv {
            role_arn: &"arn:aws:iam::111122223333:role/app".parse().unwrap(),
            audience: "aud",
            region: Some("eu-west-1"),
            expiration_seconds: 3600,
            container: "app",
        }
        .to_yaml()
        .unwrap();
        let injection = Injection {
            audience: "aud".into(),
            expiration_seconds: 3600,
            regional_sts: true,
            region: Some("eu-west-1".into()),
            ..Injection::new("arn:aws:iam::111122223333:role/app")
        };
        let pod = json!({"spec": {"containers": [{"name": "app"}]}});
        let patch = serde_json::to_value(crate::webhook::mutate(&pod, &injection).patch).unwrap();
        let env: String = patch[1]["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                format!(
                    "        - name: {}\n          value: {}\n",
                    v["name"].as_str().unwrap(),
                    v["value"]
                )
            })
            .collect();
        assert!(yaml.contains(&env), "{env}\n{yaml}");
        let token = &patch[0]["value"][0]["projected"]["sources"][0]["serviceAccountToken"];
        assert!(yaml.contains(&format!(
            "audience: {}\n              expirationSeconds: {}\n              path: {}\n",
            token["audience"],
            token["expirationSeconds"],
            token["path"].as_str().unwrap()
        )));
        assert!(yaml.contains(&format!(
            "mountPath: {TOKEN_DIR}\n          readOnly: true\n"
        )));
    }
}
