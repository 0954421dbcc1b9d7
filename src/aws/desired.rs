//! The IAM map of a cluster -> the provider and roles `aws apply` makes: kOps's role names and
//! trust policies (`pkg/model/awsmodel/iam.go`, `oidc_provider.go`), plus the `:aud` condition
//! AWS recommends unless it is turned off, and issuerd's tag on each. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{CLUSTER_TAG, Provider, Role, State, Thumbprints};
use crate::arn::{self, AccountId, Partition};
use crate::iam_map::{Condition, IamMap, Permissions};

/// The audience the EKS pod identity webhook (and `issuerd webhook`) puts in projected tokens by
/// default; a client ID of every provider `aws apply` makes.
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// What the desired state is built from, besides the map.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The issuer URL (`https://HOST/PATH`), as in the tokens' `iss`.
    pub issuer: &'a str,
    /// The account's partition.
    pub partition: &'a Partition,
    /// The account that owns the provider and the roles.
    pub account: &'a AccountId,
    /// The audience the trust policies require (`:aud`), or `None` for kOps's policy, which
    /// checks only `:sub`.
    pub audience: Option<&'a str>,
    /// The provider's thumbprints.
    pub thumbprints: Thumbprints,
    /// Take an `http://` issuer (the local STS, for testing; IAM refuses one).
    pub allow_http: bool,
}

/// Why the desired state cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    /// The issuer is not a URL IAM takes for a provider.
    #[error("--issuer {url:?}: {reason}")]
    Issuer {
        /// As given.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// A thumbprint that is not 40 hex digits.
    #[error("--thumbprint {value:?}: not a SHA-1 thumbprint (40 hex digits)")]
    Thumbprint {
        /// As given.
        value: String,
    },
    /// More thumbprints than IAM holds.
    #[error("{count} thumbprints given; IAM holds at most 5 per provider")]
    TooManyThumbprints {
        /// How many.
        count: usize,
    },
}

/// `https://HOST[:PORT]/PATH` without a trailing `/`: the provider URL IAM is given. Refuses
/// what IAM refuses (not https, unless `allow_http`; a query, a fragment, user info).
pub fn provider_url(issuer: &str, allow_http: bool) -> Result<String, DesiredError> {
    let refuse = |reason| DesiredError::Issuer {
        url: issuer.to_owned(),
        reason,
    };
    let url = url::Url::parse(issuer).map_err(|_| refuse("not an absolute URL"))?;
    if url.scheme() != "https" && !(allow_http && url.scheme() == "http") {
        return Err(refuse("IAM OIDC providers are https:// URLs"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(refuse("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("IAM refuses a query or fragment in a provider URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("has user info"));
    }
    Ok(issuer.trim_end_matches('/').to_owned())
}

/// Checks and normalizes `--thumbprint` values: 40 hex digits (colons allowed, as
/// `openssl -fingerprint` prints them), lower-cased.
pub fn thumbprints(values: &[String]) -> Result<BTreeSet<String>, DesiredError> {
    if values.len() > 5 {
        return Err(DesiredError::TooManyThumbprints {
            count: values.len(),
        });
    }
    values
        .iter()
        .map(|value| {
            let hex: String = value.chars().filter(|&c| c != ':').collect();
            if hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(hex.to_ascii_lowercase())
            } else {
                Err(DesiredError::Thumbprint {
                    value: value.clone(),
                })
            }
        })
        .collect()
}

/// The client IDs of the provider: [`STS_AUDIENCE`], the trust policies' audience, then kOps's
/// (`amazonaws.com` and `additionalAudiences`).
pub fn client_ids(map: &IamMap, audience: Option<&str>) -> BTreeSet<String> {
    std::iter::once(STS_AUDIENCE)
        .chain(audience)
        .chain(map.client_ids())
        .map(str::to_owned)
        .collect()
}

/// The tags issuerd puts on everything it manages for `cluster`.
pub fn tags(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(CLUSTER_TAG.to_owned(), cluster.to_owned())])
}

/// The provider and roles for `map` at `target`.
pub fn desired(map: &IamMap, target: &Target<'_>) -> Result<State, DesiredError> {
    let url = provider_url(target.issuer, target.allow_http)?;
    let host_path = crate::irsa::host_path(&url);
    let provider_arn = arn::oidc_provider(target.partition, target.account, &host_path);
    let cluster = map.cluster_name();
    let provider = Provider {
        arn: provider_arn.clone(),
        url,
        client_ids: client_ids(map, target.audience),
        thumbprints: target.thumbprints.clone(),
        tags: tags(cluster),
    };
    let roles = map
        .entries()
        .iter()
        .map(|entry| {
            let name = entry.role_name(cluster);
            let (attached, inline) = match entry.permissions() {
                Permissions::PolicyArns(arns) => (arns.iter().cloned().collect(), BTreeMap::new()),
                // kOps names the inline policy after the role.
                Permissions::Inline(policy) => (
                    BTreeSet::new(),
                    BTreeMap::from([(name.clone(), policy.document())]),
                ),
            };
            let role = Role {
                name: name.clone(),
                trust_policy: trust_policy(
                    &provider_arn,
                    &host_path,
                    entry.condition(),
                    &entry.subject_claim(),
                    target.audience,
                ),
                attached,
                inline,
                tags: tags(cluster),
                entry: Some(format!(
                    "[{}] {}/{}",
                    entry.index(),
                    entry.namespace(),
                    entry.name()
                )),
            };
            (name, role)
        })
        .collect();
    Ok(State {
        provider: Some(provider),
        roles,
    })
}

/// kOps's trust policy for one ServiceAccount (or a namespace glob), with the `:aud` condition
/// on `audience` when there is one (under `StringEquals`, beside a `StringLike` `:sub`).
pub fn trust_policy(
    provider_arn: &str,
    host_path: &str,
    condition: Condition,
    subject: &str,
    audience: Option<&str>,
) -> Value {
    let mut conditions = Map::new();
    conditions.insert(
        condition.operator().to_owned(),
        json!({ format!("{host_path}:sub"): subject }),
    );
    if let Some(audience) = audience {
        let equals = conditions
            .entry(Condition::StringEquals.operator())
            .or_insert_with(|| json!({}));
        equals[format!("{host_path}:aud")] = json!(audience);
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": conditions,
        }]
    })
}

/// `state` as the local STS's roles file (`sts::roles`): the provider's URL and client IDs, and
/// each role's ARN in `account` of `partition` with its trust policy.
pub fn roles_file(state: &State, partition: &Partition, account: &AccountId) -> Value {
    let providers: Vec<Value> = state
        .provider
        .iter()
        .map(|p| json!({"Url": p.url, "ClientIDList": p.client_ids}))
        .collect();
    let roles: Vec<Value> = state
        .roles
        .values()
        .map(|role| {
            json!({
                "Arn": format!("arn:{partition}:iam::{account}:role/{}", role.name),
                "AssumeRolePolicyDocument": role.trust_policy,
            })
        })
        .collect();
    json!({"OpenIDConnectProviders": providers, "Roles": roles})
}
