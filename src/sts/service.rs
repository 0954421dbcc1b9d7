//! The Query API: request parameters -> `AssumeRoleWithWebIdentity` (token verified, trust
//! policy evaluated) or `GetCallerIdentity` (for credentials issued here) -> XML.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use moka::future::Cache;
use tracing::info;

use super::key_cache::KeyCache;
use super::policy::{Context, Decision};
use super::response::{Assumed, Credentials, ErrorCode, StsError, caller_identity_xml};
use super::roles::{MAX_SESSION_SECS, MIN_SESSION_SECS, Provider, Role, Roles};
use crate::arn::{self, ArnError, ROLE_ARN_FORM, RoleArn};
use crate::token::claims::unix;
use crate::token::jwt::Jwt;
use crate::token::verify::{self, VerifyError};

/// Default `DurationSeconds`.
pub const DEFAULT_DURATION_SECS: u32 = 3600;

/// The `roleArn` member's pattern and length bounds in STS's API model (`arnType`), as AWS
/// prints them in a `ValidationError`.
const ROLE_ARN_PATTERN: &str =
    r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD\u10000-\u10FFFF]+";
const MIN_ROLE_ARN: usize = 20;
const MAX_ROLE_ARN: usize = 2048;

/// AWS's message for `AccessDenied`.
const NOT_AUTHORIZED: &str = "Not authorized to perform sts:AssumeRoleWithWebIdentity";

/// Sessions remembered for `GetCallerIdentity`.
const MAX_SESSIONS: u64 = 10_000;

/// What an answered request produced: a status and an XML body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: http::StatusCode,
    /// XML body.
    pub body: String,
}

#[derive(Debug)]
struct Session {
    arn: String,
    user_id: String,
    account: String,
}

/// The STS endpoint's state.
#[derive(Debug)]
pub struct Sts {
    roles: Roles,
    keys: KeyCache,
    sessions: Cache<String, Arc<Session>>,
}

impl Sts {
    /// An endpoint for these roles, fetching keys through `keys`.
    pub fn new(roles: Roles, keys: KeyCache) -> Self {
        Self {
            roles,
            keys,
            sessions: Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_live(Duration::from_secs(u64::from(MAX_SESSION_SECS)))
                .build(),
        }
    }

    /// Answers one request given its parameters (query string and form body merged) and its
    /// `Authorization` header.
    pub async fn answer(
        &self,
        params: &HashMap<String, String>,
        authorization: Option<&str>,
    ) -> Answer {
        let request_id = crate::token::claims::random_uuid();
        let result = match params.get("Action").map(String::as_str) {
            Some("AssumeRoleWithWebIdentity") => self
                .assume_role_with_web_identity(params)
                .await
                .map(|assumed| assumed.to_xml(&request_id)),
            Some("GetCallerIdentity") => self.caller_identity(authorization, &request_id).await,
            Some(other) => Err(StsError::new(
                ErrorCode::InvalidAction,
                format!("Could not find operation {other} for version 2011-06-15"),
            )),
            None => Err(StsError::new(
                ErrorCode::ValidationError,
                "1 validation error detected: Value null at 'action' failed to satisfy constraint: Member must not be null",
            )),
        };
        match result {
            Ok(body) => Answer {
                status: http::StatusCode::OK,
                body,
            },
            Err(error) => {
                info!(code = error.code.as_str(), message = %error.message, request_id, "STS request refused");
                Answer {
                    status: error.code.status(),
                    body: error.to_xml(&request_id),
                }
            }
        }
    }

    async fn assume_role_with_web_identity(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<Assumed, StsError> {
        let request = AssumeRequest::from_params(params)?;
        let identity = self.verify_token(request.token).await?;
        let role = self.authorize(&request.role_arn, &identity)?;
        let duration = request.duration.unwrap_or(DEFAULT_DURATION_SECS);
        if duration > role.max_session_secs {
            return Err(StsError::new(
                ErrorCode::ValidationError,
                format!(
                    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role ({duration} > {}).",
                    role.max_session_secs
                ),
            ));
        }

        let session_name = request.session_name;
        let credentials = Credentials::generate(Duration::from_secs(u64::from(duration)));
        let assumed_role_arn = role.arn.assumed_role(session_name);
        let assumed_role_id = format!("{}:{session_name}", role.role_id);
        self.sessions
            .insert(
                credentials.access_key_id.clone(),
                Arc::new(Session {
                    arn: assumed_role_arn.clone(),
                    user_id: assumed_role_id.clone(),
                    account: role.arn.account().to_string(),
                }),
            )
            .await;
        info!(role = %role.arn, sub = %identity.subject, access_key_id = %credentials.access_key_id, duration, "assumed role");
        Ok(Assumed {
            credentials,
            assumed_role_arn,
            assumed_role_id,
            subject: identity.subject,
            audience: identity.audience,
            provider: identity.issuer,
        })
    }

    /// Verifies the token as STS does: provider by `iss`, audience among its client IDs, times,
    /// then the signature with the issuer's published key.
    async fn verify_token(&self, token: &str) -> Result<Identity<'_>, StsError> {
        let invalid = |message: String| StsError::new(ErrorCode::InvalidIdentityToken, message);
        let jwt = Jwt::parse(token)
            .map_err(|e| invalid(format!("The ID Token provided is not a valid JWT: {e}")))?;
        let iss = jwt
            .claims
            .iss
            .clone()
            .ok_or_else(|| invalid("The ID Token has no iss claim".into()))?;
        let provider = self.roles.provider(&iss).ok_or_else(|| {
            let near = self
                .roles
                .providers
                .iter()
                .find(|p| p.url.trim_end_matches('/') == iss.trim_end_matches('/'))
                .map(|p| {
                    format!(
                        " (there is one for {:?}: the iss differs by a trailing slash)",
                        p.url
                    )
                })
                .unwrap_or_default();
            invalid(format!(
                "No OpenIDConnect provider found in your account for {iss}{near}"
            ))
        })?;
        let audience = verify::check_audience(&jwt, &provider.client_ids)
            .map_err(|_| {
                invalid(format!(
                    "Incorrect token audience: the token's aud is {:?}; the provider's client IDs are {:?}",
                    jwt.claims.aud, provider.client_ids
                ))
            })?
            .to_owned();
        let now = unix(SystemTime::now());
        verify::check_times(&jwt, now).map_err(|e| match e {
            VerifyError::Expired { exp, now } => StsError::new(
                ErrorCode::ExpiredTokenException,
                format!("Token expired: current date/time {now} must be before the expiration date/time {exp}"),
            ),
            other => invalid(other.to_string()),
        })?;
        let keys = self
            .keys
            .keys_for(&iss, jwt.kid.as_deref())
            .await
            .map_err(|reason| {
                StsError::new(
                    ErrorCode::IdpCommunicationError,
                    format!(
                        "Couldn't retrieve verification key from your identity provider: {reason}"
                    ),
                )
            })?;
        verify::check_signature(&jwt, &keys.keys, &keys.jwks_uri, None)
            .map_err(|e| invalid(e.to_string()))?;
        let subject = jwt
            .claims
            .sub
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                StsError::new(ErrorCode::IdpRejectedClaim, "The ID Token has no sub claim")
            })?;
        Ok(Identity {
            provider,
            issuer: iss,
            subject,
            audience,
            amr: jwt.claims.amr,
        })
    }

    /// The role, if its trust policy lets this identity assume it.
    fn authorize(
        &self,
        role_arn: &Result<RoleArn, ArnError>,
        identity: &Identity<'_>,
    ) -> Result<&Role, StsError> {
        let denied = |why: String| {
            StsError::new(ErrorCode::AccessDenied, format!("{NOT_AUTHORIZED}: {why}"))
        };
        let role = match role_arn {
            Ok(arn) => self.roles.role(arn).ok_or_else(|| {
                unknown_role(format!(
                    "no role {arn} in the roles file, which defines {}",
                    self.defined_roles()
                ))
            })?,
            // An ARN, but no role's: to AWS, a role it does not have.
            Err(error) => {
                return Err(unknown_role(format!(
                    "{error}; the roles file defines {}",
                    self.defined_roles()
                )));
            }
        };
        let role_arn = &role.arn;
        let provider_arn = identity.provider.arn(&role.arn);
        let (subject, audience) = (&identity.subject, &identity.audience);
        let context = Context {
            provider_arn: &provider_arn,
            provider: &identity.provider.host_path,
            sub: subject,
            aud: audience,
            amr: &identity.amr,
        };
        match role.trust_policy.evaluate(&context) {
            Decision::Allow => Ok(role),
            Decision::ExplicitDeny(sid) => Err(denied(format!(
                "explicitly denied by the trust policy of {role_arn}{} for sub {subject:?}, aud {audience:?}",
                sid.map(|s| format!(" (statement {s:?})"))
                    .unwrap_or_default()
            ))),
            Decision::ImplicitDeny => Err(denied(format!(
                "no statement of the trust policy of {role_arn} allows principal {provider_arn} with sub {subject:?}, aud {audience:?}"
            ))),
        }
    }

    /// The roles the roles file defines, for hints: the first ten ARNs, and how many more.
    fn defined_roles(&self) -> String {
        const SHOWN: usize = 10;
        let defined = &self.roles.roles;
        if defined.is_empty() {
            return "none".to_owned();
        }
        let mut known = defined
            .iter()
            .take(SHOWN)
            .map(|r| r.arn.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        if defined.len() > SHOWN {
            known.push_str(&format!(" and {} more", defined.len() - SHOWN));
        }
        known
    }

    /// Answers for credentials issued here. The SigV4 signature is not checked: this endpoint
    /// is for local testing and its credentials grant nothing.
    async fn caller_identity(
        &self,
        authorization: Option<&str>,
        request_id: &str,
    ) -> Result<String, StsError> {
        let unknown = || {
            StsError::new(
                ErrorCode::InvalidClientTokenId,
                "The security token included in the request is invalid.",
            )
        };
        let access_key_id = authorization
            .and_then(|h| h.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .ok_or_else(unknown)?;
        let session = self.sessions.get(access_key_id).await.ok_or_else(unknown)?;
        Ok(caller_identity_xml(
            &session.arn,
            &session.user_id,
            &session.account,
            request_id,
        ))
    }
}

/// AWS's answer for a role it does not know (the same as for one whose trust policy denies),
/// with a hint only this endpoint gives, after `(issuerd: `.
fn unknown_role(hint: String) -> StsError {
    StsError::new(
        ErrorCode::AccessDenied,
        format!("{NOT_AUTHORIZED} (issuerd: {hint})"),
    )
}

/// The parameters of `AssumeRoleWithWebIdentity`, validated as STS validates them.
struct AssumeRequest<'a> {
    /// The role, or why `RoleArn`, an ARN, names none.
    role_arn: Result<RoleArn, ArnError>,
    session_name: &'a str,
    token: &'a str,
    duration: Option<u32>,
}

impl<'a> AssumeRequest<'a> {
    fn from_params(params: &'a HashMap<String, String>) -> Result<Self, StsError> {
        let validation = |message: String| StsError::new(ErrorCode::ValidationError, message);
        let required = |name: &str, field: &str| {
            params
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    validation(format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"))
                })
        };
        let role_arn = required("RoleArn", "roleArn")?;
        let session_name = required("RoleSessionName", "roleSessionName")?;
        let token = required("WebIdentityToken", "webIdentityToken")?;
        let constraints = role_arn_constraints(role_arn);
        if !constraints.is_empty() {
            let n = constraints.len();
            let violations = constraints
                .iter()
                .map(|c| {
                    format!("Value '{role_arn}' at 'roleArn' failed to satisfy constraint: {c}")
                })
                .collect::<Vec<_>>()
                .join("; ");
            return Err(validation(format!(
                "{n} validation error{} detected: {violations}",
                if n == 1 { "" } else { "s" }
            )));
        }
        let valid_session = (2..=64).contains(&session_name.len())
            && session_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
        if !valid_session {
            return Err(validation(format!(
                "1 validation error detected: Value '{session_name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and length 2..64"
            )));
        }
        let duration = match params.get("DurationSeconds") {
            None => None,
            Some(text) => {
                let d = text.parse::<u32>().map_err(|_| {
                    validation(format!(
                        "Value '{text}' at 'durationSeconds' is not an integer"
                    ))
                })?;
                if d < MIN_SESSION_SECS {
                    return Err(validation(format!(
                        "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to {MIN_SESSION_SECS}"
                    )));
                }
                if d > MAX_SESSION_SECS {
                    return Err(validation(format!(
                        "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to {MAX_SESSION_SECS}"
                    )));
                }
                Some(d)
            }
        };
        // A string of the right length, then an ARN: STS refuses what is not one as invalid
        // before it looks at the token. Whether the ARN is a role's matters only when the role
        // is looked up (AccessDenied, as for a role that does not exist).
        let parsed = role_arn.parse::<RoleArn>();
        if !arn::has_arn_shape(role_arn) {
            let why = match &parsed {
                Err(ArnError::Role { problem, .. }) => format!("{problem}; "),
                _ => String::new(),
            };
            return Err(validation(format!(
                "{role_arn} is invalid (issuerd: {why}expected {ROLE_ARN_FORM})"
            )));
        }
        if let Some(policy) = params.get("Policy") {
            // Session policies only narrow the credentials, which grant nothing here; they must
            // still be policies.
            let malformed = |m: String| StsError::new(ErrorCode::MalformedPolicyDocument, m);
            let value: serde_json::Value = serde_json::from_str(policy)
                .map_err(|e| malformed(format!("Syntax errors in policy: {e}")))?;
            if !value
                .get("Statement")
                .is_some_and(|s| s.is_object() || s.is_array())
            {
                return Err(malformed("Policy has no Statement".into()));
            }
        }
        Ok(Self {
            role_arn: parsed,
            session_name,
            token,
            duration,
        })
    }
}

/// The constraints of the `roleArn` member (STS's API model) that `value` breaks, in AWS's
/// words: its pattern (no control characters but tab, LF and CR), then its length.
fn role_arn_constraints(value: &str) -> Vec<String> {
    let mut broken = Vec::new();
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..);
    if !value.chars().all(allowed) {
        broken.push(format!(
            "Member must satisfy regular expression pattern: {ROLE_ARN_PATTERN}"
        ));
    }
    let length = value.chars().count();
    if length < MIN_ROLE_ARN {
        broken.push(format!(
            "Member must have length greater than or equal to {MIN_ROLE_ARN}"
        ));
    }
    if length > MAX_ROLE_ARN {
        broken.push(format!(
            "Member must have length less than or equal to {MAX_ROLE_ARN}"
        ));
    }
    broken
}

/// A verified web identity.
struct Identity<'a> {
    provider: &'a Provider,
    issuer: String,
    subject: String,
    audience: String,
    amr: Vec<String>,
}
