//! AWS-shaped Query API responses: the `AssumeRoleWithWebIdentity` result, `ErrorResponse`
//! documents with AWS's codes and HTTP statuses, and temporary credentials shaped like AWS's.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;

/// The STS XML namespace.
pub const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// An STS error, as AWS names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StsError {
    /// AWS error code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
}

/// The error codes the STS endpoint answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The token is not valid: signature, kid, audience, issuer, format.
    InvalidIdentityToken,
    /// The token has expired.
    ExpiredTokenException,
    /// The identity provider rejected the claims.
    IdpRejectedClaim,
    /// The issuer's discovery document or JWKS could not be fetched.
    IdpCommunicationError,
    /// The trust policy does not allow the call (or the role does not exist).
    AccessDenied,
    /// A parameter is missing or out of range.
    ValidationError,
    /// The session policy is not a valid policy document.
    MalformedPolicyDocument,
    /// An action this endpoint does not implement.
    InvalidAction,
    /// Credentials this endpoint did not issue.
    InvalidClientTokenId,
}

impl ErrorCode {
    /// The `Code` element.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidIdentityToken => "InvalidIdentityToken",
            Self::ExpiredTokenException => "ExpiredTokenException",
            Self::IdpRejectedClaim => "IDPRejectedClaim",
            Self::IdpCommunicationError => "IDPCommunicationError",
            Self::AccessDenied => "AccessDenied",
            Self::ValidationError => "ValidationError",
            Self::MalformedPolicyDocument => "MalformedPolicyDocument",
            Self::InvalidAction => "InvalidAction",
            Self::InvalidClientTokenId => "InvalidClientTokenId",
        }
    }

    /// The HTTP status AWS sends with it.
    pub fn status(self) -> StatusCode {
        match self {
            Self::AccessDenied | Self::IdpRejectedClaim | Self::InvalidClientTokenId => {
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl StsError {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `<ErrorResponse>` with `RequestId`.
    pub fn to_xml(&self, request_id: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>Sender</Type>\n    \
             <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
             <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
            self.code.as_str(),
            escape(&self.message)
        )
    }
}

/// Temporary credentials, random, shaped like AWS's.
#[derive(Clone)]
pub struct Credentials {
    /// `ASIA` + 16 characters.
    pub access_key_id: String,
    /// 40 characters.
    pub secret_access_key: String,
    /// Opaque session token.
    pub session_token: String,
    /// Expiry.
    pub expiration: SystemTime,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Fresh random credentials valid for `duration`.
    pub fn generate(duration: Duration) -> Self {
        Self {
            access_key_id: format!("ASIA{}", base32_upper(&random::<10>())),
            secret_access_key: STANDARD.encode(random::<30>()),
            session_token: STANDARD.encode(random::<120>()),
            expiration: SystemTime::now() + duration,
        }
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source works");
    bytes
}

/// RFC 4648 base32 without padding (AWS key IDs use this alphabet).
pub fn base32_upper(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A successful `AssumeRoleWithWebIdentity`.
#[derive(Debug)]
pub struct Assumed {
    /// The credentials.
    pub credentials: Credentials,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub assumed_role_arn: String,
    /// `AROA…:SESSION`.
    pub assumed_role_id: String,
    /// The token's `sub`.
    pub subject: String,
    /// The audience matched.
    pub audience: String,
    /// The token's `iss`.
    pub provider: String,
}

impl Assumed {
    /// `<AssumeRoleWithWebIdentityResponse>`.
    pub fn to_xml(&self, request_id: &str) -> String {
        let c = &self.credentials;
        let mut xml = String::new();
        let _ = write!(
            xml,
            "<AssumeRoleWithWebIdentityResponse xmlns=\"{XMLNS}\">\n  \
             <AssumeRoleWithWebIdentityResult>\n    \
             <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n    \
             <Audience>{}</Audience>\n    \
             <AssumedRoleUser>\n      <Arn>{}</Arn>\n      <AssumedRoleId>{}</AssumedRoleId>\n    </AssumedRoleUser>\n    \
             <Credentials>\n      <SessionToken>{}</SessionToken>\n      <SecretAccessKey>{}</SecretAccessKey>\n      \
             <Expiration>{}</Expiration>\n      <AccessKeyId>{}</AccessKeyId>\n    </Credentials>\n    \
             <Provider>{}</Provider>\n  </AssumeRoleWithWebIdentityResult>\n  \
             <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
             </AssumeRoleWithWebIdentityResponse>\n",
            escape(&self.subject),
            escape(&self.audience),
            escape(&self.assumed_role_arn),
            escape(&self.assumed_role_id),
            c.session_token,
            c.secret_access_key,
            humantime::format_rfc3339_seconds(c.expiration),
            c.access_key_id,
            escape(&self.provider),
        );
        xml
    }
}

/// `<GetCallerIdentityResponse>` for credentials this endpoint issued.
pub fn caller_identity_xml(arn: &str, user_id: &str, account: &str, request_id: &str) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"{XMLNS}\">\n  <GetCallerIdentityResult>\n    \
         <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{account}</Account>\n  \
         </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  \
         </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
        escape(arn),
        escape(user_id)
    )
}

/// Escapes text for an XML element.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_look_like_aws_ones() {
        let c = Credentials::generate(Duration::from_secs(900));
        assert_eq!(c.access_key_id.len(), 20);
        assert!(c.access_key_id.starts_with("ASIA"));
        assert!(
            c.access_key_id[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert_eq!(c.secret_access_key.len(), 40);
    }

    #[test]
    fn errors_escape_their_message() {
        let xml = StsError::new(ErrorCode::AccessDenied, "a<b & \"c\"").to_xml("rid");
        assert!(xml.contains("<Code>AccessDenied</Code>"));
        assert!(xml.contains("<Message>a&lt;b &amp; &quot;c&quot;</Message>"));
        assert!(xml.contains("<RequestId>rid</RequestId>"));
        assert_eq!(ErrorCode::AccessDenied.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            ErrorCode::ExpiredTokenException.status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn base32_is_rfc4648() {
        assert_eq!(base32_upper(b"foobar"), "MZXW6YTBOI");
    }
}
