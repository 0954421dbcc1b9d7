//! The AWS SDK calls of `aws plan|apply`: who the credentials belong to (STS), what IAM holds
//! for the cluster (reads only), and one [`Change`] made (one write call each).
//!
//! The SDK is configured by `aws-config`'s standard chain: credentials from the environment,
//! profile, web identity or IMDS; endpoints from `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_IAM` and
//! `AWS_ENDPOINT_URL_STS` (or the profile's `endpoint_url`).

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;

use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::Tag;

use super::{AwsError, CLUSTER_TAG, Change, Provider, Role, State, Thumbprints, decode_policy};

/// The region the SDK signs IAM and STS requests for when none is configured: IAM is global,
/// and its commercial endpoint signs for us-east-1.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Loads the SDK configuration from the standard chain (region defaulting to
/// [`DEFAULT_REGION`]); `endpoint`, when given, is every service's endpoint (as
/// `AWS_ENDPOINT_URL`, over it).
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let region = aws_config::meta::region::RegionProviderChain::default_provider()
        .or_else(aws_config::Region::from_static(DEFAULT_REGION));
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region);
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// The account and partition the credentials belong to (`GetCallerIdentity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account ID.
    pub account: String,
    /// The caller's ARN (its first field is the partition).
    pub arn: String,
}

/// Asks STS who the credentials are.
pub async fn caller(config: &aws_config::SdkConfig) -> Result<Caller, AwsError> {
    let sts = aws_sdk_sts::Client::new(config);
    let identity = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| call_error("STS", "GetCallerIdentity", "", e))?;
    Ok(Caller {
        account: identity.account().ok_or(AwsError::NoAccount)?.to_owned(),
        arn: identity.arn().unwrap_or_default().to_owned(),
    })
}

/// An IAM client.
#[derive(Debug, Clone)]
pub struct Iam {
    client: aws_sdk_iam::Client,
}

impl Iam {
    /// An IAM client with `config`.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: aws_sdk_iam::Client::new(config),
        }
    }

    /// What IAM holds of `desired`: its provider, its roles, and, with `prune`, every other
    /// role tagged [`CLUSTER_TAG`]`=cluster`. Reads only.
    pub async fn read(
        &self,
        desired: &State,
        cluster: &str,
        prune: bool,
    ) -> Result<State, AwsError> {
        let provider = match &desired.provider {
            Some(provider) => self.provider(&provider.arn).await?,
            None => None,
        };
        let mut roles = BTreeMap::new();
        for name in desired.roles.keys() {
            if let Some(role) = self.role(name).await? {
                roles.insert(name.clone(), role);
            }
        }
        if prune {
            for name in self.role_names().await? {
                if roles.contains_key(&name) || desired.roles.contains_key(&name) {
                    continue;
                }
                let tags = self.role_tags(&name).await?;
                if tags.get(CLUSTER_TAG).map(String::as_str) == Some(cluster)
                    && let Some(role) = self.role(&name).await?
                {
                    roles.insert(name, role);
                }
            }
        }
        Ok(State { provider, roles })
    }

    async fn provider(&self, arn: &str) -> Result<Option<Provider>, AwsError> {
        let found = self
            .client
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await;
        let found = match found {
            Ok(found) => found,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(call_error("IAM", "GetOpenIDConnectProvider", arn, e)),
        };
        Ok(Some(Provider {
            arn: arn.to_owned(),
            url: found.url().unwrap_or_default().to_owned(),
            client_ids: found.client_id_list().iter().cloned().collect(),
            thumbprints: Thumbprints::Listed(
                found
                    .thumbprint_list()
                    .iter()
                    .map(|t| t.to_ascii_lowercase())
                    .collect(),
            ),
            tags: tag_map(found.tags()),
        }))
    }

    /// The role `name` with its trust policy, tags, attachments and inline policies; `None`
    /// when there is none.
    async fn role(&self, name: &str) -> Result<Option<Role>, AwsError> {
        let found = self.client.get_role().role_name(name).send().await;
        let found = match found {
            Ok(found) => found,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_entity_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(call_error("IAM", "GetRole", name, e)),
        };
        let trust = found
            .role()
            .and_then(|r| r.assume_role_policy_document())
            .unwrap_or("{}");
        let trust_policy = decode_policy(trust).map_err(|source| AwsError::Policy {
            what: "the trust policy".into(),
            role: name.to_owned(),
            source,
        })?;
        let attached = self
            .client
            .list_attached_role_policies()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| call_error("IAM", "ListAttachedRolePolicies", name, e))?
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_owned))
            .collect::<BTreeSet<_>>();
        let policy_names = self
            .client
            .list_role_policies()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| call_error("IAM", "ListRolePolicies", name, e))?;
        let mut inline = BTreeMap::new();
        for policy in policy_names {
            let document = self
                .client
                .get_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .send()
                .await
                .map_err(|e| call_error("IAM", "GetRolePolicy", format!("{name} {policy}"), e))?;
            let value =
                decode_policy(document.policy_document()).map_err(|source| AwsError::Policy {
                    what: format!("inline policy {policy}"),
                    role: name.to_owned(),
                    source,
                })?;
            inline.insert(policy, value);
        }
        Ok(Some(Role {
            name: name.to_owned(),
            trust_policy,
            attached,
            inline,
            tags: self.role_tags(name).await?,
            entry: None,
        }))
    }

    async fn role_tags(&self, name: &str) -> Result<BTreeMap<String, String>, AwsError> {
        let tags = self
            .client
            .list_role_tags()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| call_error("IAM", "ListRoleTags", name, e))?;
        Ok(tag_map(&tags))
    }

    async fn role_names(&self) -> Result<Vec<String>, AwsError> {
        let roles = self
            .client
            .list_roles()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| call_error("IAM", "ListRoles", "", e))?;
        Ok(roles.iter().map(|r| r.role_name().to_owned()).collect())
    }

    /// Makes `change`: one IAM write call.
    pub async fn apply(&self, change: &Change) -> Result<(), AwsError> {
        let c = &self.client;
        let action = change.action();
        match change {
            Change::CreateProvider(p) => {
                let thumbprints = match &p.thumbprints {
                    Thumbprints::Listed(t) => Some(t.iter().cloned().collect()),
                    Thumbprints::LeftOut => None,
                };
                c.create_open_id_connect_provider()
                    .url(&p.url)
                    .set_client_id_list(Some(p.client_ids.iter().cloned().collect()))
                    .set_thumbprint_list(thumbprints)
                    .set_tags(Some(tags(&p.tags)))
                    .send()
                    .await
                    .map(drop)
                    .map_err(failed(action, &p.url))
            }
            Change::SetThumbprints { arn, to, .. } => c
                .update_open_id_connect_provider_thumbprint()
                .open_id_connect_provider_arn(arn)
                .set_thumbprint_list(Some(to.iter().cloned().collect()))
                .send()
                .await
                .map(drop)
                .map_err(failed(action, arn)),
            Change::AddClientId { arn, client_id } => c
                .add_client_id_to_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .client_id(client_id)
                .send()
                .await
                .map(drop)
                .map_err(failed(action, arn)),
            Change::RemoveClientId { arn, client_id } => c
                .remove_client_id_from_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .client_id(client_id)
                .send()
                .await
                .map(drop)
                .map_err(failed(action, arn)),
            Change::TagProvider { arn, tags: set } => c
                .tag_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .set_tags(Some(tags(set)))
                .send()
                .await
                .map(drop)
                .map_err(failed(action, arn)),
            Change::CreateRole(role) => c
                .create_role()
                .role_name(&role.name)
                .assume_role_policy_document(role.trust_policy.to_string())
                .set_tags(Some(tags(&role.tags)))
                .send()
                .await
                .map(drop)
                .map_err(failed(action, &role.name)),
            Change::SetTrustPolicy { role, to, .. } => c
                .update_assume_role_policy()
                .role_name(role)
                .policy_document(to.to_string())
                .send()
                .await
                .map(drop)
                .map_err(failed(action, role)),
            Change::TagRole { role, tags: set } => c
                .tag_role()
                .role_name(role)
                .set_tags(Some(tags(set)))
                .send()
                .await
                .map(drop)
                .map_err(failed(action, role)),
            Change::Attach { role, policy_arn } => c
                .attach_role_policy()
                .role_name(role)
                .policy_arn(policy_arn)
                .send()
                .await
                .map(drop)
                .map_err(failed(action, &format!("{role} {policy_arn}"))),
            Change::Detach { role, policy_arn } => c
                .detach_role_policy()
                .role_name(role)
                .policy_arn(policy_arn)
                .send()
                .await
                .map(drop)
                .map_err(failed(action, &format!("{role} {policy_arn}"))),
            Change::PutInline { role, name, to, .. } => c
                .put_role_policy()
                .role_name(role)
                .policy_name(name)
                .policy_document(to.to_string())
                .send()
                .await
                .map(drop)
                .map_err(failed(action, &format!("{role} {name}"))),
            Change::DeleteInline { role, name, .. } => c
                .delete_role_policy()
                .role_name(role)
                .policy_name(name)
                .send()
                .await
                .map(drop)
                .map_err(failed(action, &format!("{role} {name}"))),
            Change::DeleteRole { role } => c
                .delete_role()
                .role_name(role)
                .send()
                .await
                .map(drop)
                .map_err(failed(action, role)),
        }
    }
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

fn tags(map: &BTreeMap<String, String>) -> Vec<Tag> {
    map.iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(key)
                .value(value)
                .build()
                .expect("key and value are set")
        })
        .collect()
}

/// [`call_error`] for IAM's `action` on `target`, as a `map_err` argument.
fn failed<E>(
    action: &'static str,
    target: impl Into<String>,
) -> impl FnOnce(SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let target = target.into();
    move |e| call_error("IAM", action, target, e)
}

/// An SDK error as one line: the service's code and message; for an answer the SDK could not
/// read, the code and message found in it, or its status and start; else the SDK's own chain of
/// causes (no connection, a timeout, no credentials).
fn call_error<E>(
    service: &'static str,
    operation: &'static str,
    target: impl Into<String>,
    error: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + Error + 'static,
{
    let coded = error.as_service_error().and_then(|e| {
        e.code()
            .map(|code| format!("{code}: {}", e.message().unwrap_or("(no message)")))
    });
    let message = match (coded, error.raw_response()) {
        (Some(message), _) => message,
        (None, Some(response)) => unreadable_answer(response),
        (None, None) => causes(&error),
    };
    AwsError::Call {
        service,
        operation,
        target: target.into(),
        message,
    }
}

/// `Code: Message (HTTP status)` from an error body the SDK could not parse (moto's
/// `<ErrorResponse><Errors><Error>`, a proxy's page), or `HTTP status: <body start>`.
fn unreadable_answer(response: &HttpResponse) -> String {
    let status = response.status().as_u16();
    let body = String::from_utf8_lossy(response.body().bytes().unwrap_or_default());
    let element = |name: &str| {
        let start = body.find(&format!("<{name}>"))? + name.len() + 2;
        let end = body[start..].find(&format!("</{name}>"))?;
        Some(body[start..start + end].trim().to_owned())
    };
    match (element("Code"), element("Message")) {
        (Some(code), message) => format!(
            "{code}: {} (HTTP {status})",
            message.as_deref().unwrap_or("(no message)")
        ),
        (None, _) => {
            let start: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
            let start: String = start.chars().take(200).collect();
            format!("HTTP {status}: {start}")
        }
    }
}

/// `error: its source: ...`, each message once (a wrapper may repeat its source's).
fn causes(error: &(dyn Error + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let message = cause.to_string();
        if !messages.last().is_some_and(|last| last.contains(&message)) {
            messages.push(message);
        }
        next = cause.source();
    }
    messages.join(": ")
}
