//! `serve --dev --sts-listen`: a demo role whose trust policy is the one `trust-policy`
//! generates, a token for its ServiceAccount minted with the dev key, and the env an AWS SDK
//! needs, all in a private temporary directory deleted on exit.

use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::arn::RoleArn;
use crate::irsa;
use crate::token::claims::Subject;
use crate::token::mint::{MintRequest, mint, write_token_file};
use crate::token::signing_key::SigningKey;

/// The demo account.
pub const ACCOUNT: &str = "111122223333";
/// The demo role.
pub const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/issuerd-dev";
/// The demo ServiceAccount.
pub const SERVICE_ACCOUNT: &str = "default/demo";
/// The demo audience (IRSA's).
pub const AUDIENCE: &str = "sts.amazonaws.com";
/// Lifetime of the demo token (IRSA's projected token default).
pub const TOKEN_TTL: Duration = Duration::from_secs(86_400);

/// The files of the demo; deleted when dropped.
#[derive(Debug)]
pub struct DevIrsa {
    _dir: tempfile::TempDir,
    /// The roles file.
    pub roles_file: PathBuf,
    /// The token file.
    pub token_file: PathBuf,
}

/// Why the demo could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DevIrsaError {
    /// Writing a file failed.
    #[error("cannot write the local IRSA files")]
    Write(#[source] std::io::Error),
    /// The dev key cannot sign.
    #[error(transparent)]
    Key(#[from] crate::token::signing_key::SigningKeyError),
    /// The generator refused its input.
    #[error(transparent)]
    Generate(#[from] irsa::IrsaError),
}

impl DevIrsa {
    /// Writes the roles file (one provider for `issuer`, one role) and a token signed by `key`.
    pub fn create(issuer: &str, key: &Path) -> Result<Self, DevIrsaError> {
        let dir = tempfile::Builder::new()
            .prefix("issuerd-irsa-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(DevIrsaError::Write)?;
        let role: RoleArn = ROLE_ARN.parse().expect("the demo role ARN is valid");
        let policy = irsa::trust_policy(
            issuer,
            role.partition(),
            role.account(),
            &[SERVICE_ACCOUNT.into()],
            AUDIENCE,
        )?;
        let policy: serde_json::Value =
            serde_json::from_str(&policy).expect("the generator writes JSON");
        let roles = serde_json::json!({
            "OpenIDConnectProviders": [{"Url": issuer, "ClientIDList": [AUDIENCE]}],
            "Roles": [{"Arn": ROLE_ARN, "MaxSessionDuration": 3600, "AssumeRolePolicyDocument": policy}],
        });
        let roles_file = dir.path().join("roles.json");
        std::fs::File::create(&roles_file)
            .and_then(|mut f| {
                f.write_all(
                    serde_json::to_string_pretty(&roles)
                        .expect("JSON serializes")
                        .as_bytes(),
                )
            })
            .map_err(DevIrsaError::Write)?;
        let signing_key = SigningKey::load(key)?;
        let token = mint(
            &signing_key,
            &MintRequest {
                issuer: issuer.to_owned(),
                subject: Subject::parse(SERVICE_ACCOUNT).expect("valid demo subject"),
                audiences: vec![AUDIENCE.to_owned()],
                ttl: TOKEN_TTL,
                not_before: None,
                pod: Some("demo".into()),
                service_account_uid: None,
            },
        )?;
        let token_file = dir.path().join("token");
        write_token_file(&token_file, &token).map_err(DevIrsaError::Write)?;
        Ok(Self {
            _dir: dir,
            roles_file,
            token_file,
        })
    }

    /// The shell lines that point an AWS SDK at the local STS, and `KEY`, the dev key the
    /// guide's `mint` examples sign with. Credentials already in the environment would win over
    /// web identity in the SDKs' chains, so they are unset.
    pub fn env(&self, sts: SocketAddr, key: &Path) -> String {
        format!(
            "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE\n\
             export AWS_ROLE_ARN={ROLE_ARN}\n\
             export AWS_WEB_IDENTITY_TOKEN_FILE={}\n\
             export AWS_ENDPOINT_URL_STS=http://{sts}\n\
             export AWS_REGION=us-east-1\n\
             export AWS_DEFAULT_REGION=us-east-1\n\
             export KEY={}\n",
            self.token_file.display(),
            key.display()
        )
    }
}
