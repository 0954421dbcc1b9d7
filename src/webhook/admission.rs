//! One admission: the review decoded, the pod's ServiceAccount looked up (its annotations
//! through the API server when asked, then the map), the wiring resolved from what was found
//! and the flags, the mutation answered.

use serde_json::Value;
use tracing::{debug, warn};

use super::annotations::{self, Annotated};
use super::metrics::Outcome;
use super::mutation::{self, Injection, Mutation};
use super::review::Review;
use super::service_accounts::Lookup;
use super::{Admitted, Webhook};

/// The prefix of the EKS webhook's annotations: a pod that carries one expects credentials.
const EKS_ANNOTATION_PREFIX: &str = "eks.amazonaws.com/";

impl Webhook {
    /// Answers one AdmissionReview body (JSON). Waits only for a ServiceAccount the cache of
    /// `--service-account-annotations` does not have (at most its grace period).
    pub async fn admit(&self, body: &[u8]) -> Admitted {
        let review = match Review::decode(body) {
            Ok(review) => review,
            Err(rejection) => {
                warn!(uid = rejection.uid(), error = %rejection.error(), "refused an undecodable AdmissionReview");
                return Admitted {
                    body: rejection.to_json(),
                    outcome: Outcome::BadRequest,
                };
            }
        };
        let Some(create) = review.pod_create() else {
            return Admitted {
                body: review.allow(),
                outcome: Outcome::Ignored,
            };
        };
        let (namespace, service_account) = (create.namespace, create.service_account);
        if !is_dns_label(namespace) || !is_dns_subdomain(service_account) {
            // The API server only sends valid names: this request was made by hand. The lookup
            // (glob matching per entry) is not run on names of any length.
            warn!(
                namespace_len = namespace.len(),
                service_account_len = service_account.len(),
                "AdmissionReview with an invalid namespace or ServiceAccount name; allowed unchanged"
            );
            return Admitted {
                body: review.allow(),
                outcome: Outcome::Ignored,
            };
        }
        let mut warnings = Vec::new();
        let annotated = match self.service_accounts() {
            None => None,
            Some(accounts) => {
                let lookup = accounts.lookup(namespace, service_account).await;
                self.metrics.looked_up(lookup.label());
                match lookup {
                    Lookup::Cached(found) | Lookup::Fetched(found) => {
                        match annotations::read(namespace, service_account, &found) {
                            Annotated::Role(mapped) => Some(mapped),
                            Annotated::Nothing => None,
                            Annotated::Unusable(warning) => {
                                warnings.push(warning);
                                None
                            }
                        }
                    }
                    Lookup::Missing | Lookup::Uncached => None,
                    Lookup::Failed(reason) => {
                        // Admitting the pod without credentials would leave it broken for its
                        // life; refused, its controller retries (the API server shows this).
                        warn!(namespace, service_account, %reason, "cannot read the pod's ServiceAccount; refused");
                        return Admitted {
                            body: review.refuse(
                                503,
                                format!(
                                    "issuerd webhook: cannot read ServiceAccount \
                                     {namespace}/{service_account} for its IRSA annotations \
                                     ({reason}); retry"
                                ),
                            ),
                            outcome: Outcome::LookupFailed,
                        };
                    }
                }
            }
        };
        let Some(mapped) = annotated.or_else(|| self.map().lookup(namespace, service_account))
        else {
            let mut answer = Mutation::default();
            // A refused role annotation already said why there is no role.
            if warnings.is_empty() && asks_for_credentials(create.pod) {
                let where_ = if self.service_accounts().is_some() {
                    "no eks.amazonaws.com/role-arn annotation and no entry in the IAM map"
                } else {
                    "no entry in the IAM map"
                };
                answer.warn(format!(
                    "issuerd webhook: ServiceAccount {namespace}/{service_account} has no role \
                     ({where_}); this pod gets no AWS credentials"
                ));
            }
            for warning in warnings {
                answer.warn(warning);
            }
            debug!(namespace, service_account, "no role in the map");
            return Admitted {
                body: review.respond(&answer),
                outcome: Outcome::NotMapped,
            };
        };
        let defaults = self.defaults();
        let injection = Injection {
            role_arn: mapped.role_arn,
            audience: mapped.audience.unwrap_or_else(|| defaults.audience.clone()),
            expiration_seconds: i64::from(
                mapped.token_expiration.unwrap_or(defaults.token_expiration),
            ),
            regional_sts: mapped.regional_sts.unwrap_or(defaults.regional_sts),
            region: defaults.region.clone(),
            set_fs_group: defaults.fs_group,
        };
        let mut answer = mutation::mutate(create.pod, &injection);
        let outcome = if !answer.patch.is_empty() {
            Outcome::Mutated
        } else if !answer.warnings.is_empty() {
            Outcome::Conflict
        } else {
            Outcome::Unchanged
        };
        for warning in warnings {
            answer.warn(warning);
        }
        for warning in &answer.warnings {
            warn!(namespace, service_account, %warning, "pod admitted with a warning");
        }
        debug!(namespace, service_account, role = %injection.role_arn, outcome = outcome.label(), "admitted");
        Admitted {
            body: review.respond(&answer),
            outcome,
        }
    }
}

/// Whether the pod carries one of the EKS webhook's annotations (it expects credentials).
fn asks_for_credentials(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|annotations| {
            annotations
                .keys()
                .any(|k| k.starts_with(EKS_ANNOTATION_PREFIX))
        })
}

/// A namespace name: an RFC 1123 label (lowercase alphanumerics and `-`, at most 63).
fn is_dns_label(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A ServiceAccount name: an RFC 1123 subdomain (labels joined by `.`, at most 253).
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names() {
        assert!(is_dns_label("default") && is_dns_label("team-a1"));
        assert!(!is_dns_label("") && !is_dns_label("-a") && !is_dns_label("A"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("app.v1") && !is_dns_subdomain("app..v1"));
        assert!(!is_dns_subdomain(&format!("{}.a", "a".repeat(252))));
    }
}
