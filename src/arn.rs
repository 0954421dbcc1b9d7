//! IAM ARNs, parsed once where they enter (`pod-env --role-arn`, `trust-policy --account
//! --partition`, the roles file's `Arn`, the STS `RoleArn` parameter): [`RoleArn`] (IAM's rules
//! for the partition, account, path and name), [`AccountId`], [`Partition`]; and the ARNs built
//! from them (OIDC provider, assumed role).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// The form of a role ARN, as error messages state it.
pub const ROLE_ARN_FORM: &str = "arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME";

/// The form of a partition, as error messages state it.
pub const PARTITION_FORM: &str =
    "aws or aws followed by lowercase letters and hyphens (aws-cn, aws-us-gov, aws-iso-b, ...)";

/// The longest role name IAM allows.
pub const MAX_ROLE_NAME: usize = 64;
/// The longest role path IAM allows (slashes included).
pub const MAX_ROLE_PATH: usize = 512;

/// An AWS partition: the first field of every ARN. `aws`, or `aws` followed by lowercase
/// letters and hyphens, as every partition is named (`aws-cn`, `aws-us-gov`, `aws-iso`,
/// `aws-iso-b`, `aws-eusc`, ...): new ones are taken without a release of issuerd.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Partition(Cow<'static, str>);

impl Partition {
    /// Commercial regions.
    pub const AWS: Self = Self(Cow::Borrowed("aws"));
    /// China (Beijing, Ningxia).
    pub const AWS_CN: Self = Self(Cow::Borrowed("aws-cn"));
    /// AWS GovCloud (US).
    pub const AWS_US_GOV: Self = Self(Cow::Borrowed("aws-us-gov"));

    /// The partition's ID, as written in ARNs.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(text: &str) -> bool {
        text.strip_prefix("aws")
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Partition {
    type Err = ArnError;

    fn from_str(text: &str) -> Result<Self, ArnError> {
        if Self::is_valid(text) {
            Ok(Self(Cow::Owned(text.to_owned())))
        } else {
            Err(ArnError::Partition {
                value: text.to_owned(),
            })
        }
    }
}

/// A 12-digit AWS account ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AccountId(String);

impl AccountId {
    /// The 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(text: &str) -> bool {
        text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AccountId {
    type Err = ArnError;

    fn from_str(text: &str) -> Result<Self, ArnError> {
        if Self::is_valid(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(ArnError::Account {
                value: text.to_owned(),
            })
        }
    }
}

/// An IAM role's ARN, `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`, checked against IAM's
/// rules: a partition (`aws[-a-z]*`), no region, 12 digits of account, a path `/` or `/.../` of printable
/// ASCII (at most 512 characters), a name of 1 to 64 of `[A-Za-z0-9_+=,.@-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleArn {
    text: String,
    partition: Partition,
    account: AccountId,
    /// Byte range of the path (`/` or `/.../`) in `text`; the name follows it.
    path: std::ops::Range<usize>,
}

impl RoleArn {
    /// The ARN as given (and as IAM writes it).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The partition.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// The account that owns the role.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The role's path: `/`, or `/SEGMENTS/`.
    pub fn path(&self) -> &str {
        &self.text[self.path.clone()]
    }

    /// The role's name (what follows the path).
    pub fn name(&self) -> &str {
        &self.text[self.path.end..]
    }

    /// `arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/SESSION`: the ARN of a session of this
    /// role (STS leaves the path out).
    pub fn assumed_role(&self, session_name: &str) -> String {
        format!(
            "arn:{}:sts::{}:assumed-role/{}/{session_name}",
            self.partition,
            self.account,
            self.name()
        )
    }

    fn parse(text: &str) -> Result<Self, Problem> {
        let Some(rest) = text.strip_prefix("arn:") else {
            return Err(Problem::NotArn);
        };
        // The resource (path included) may itself hold colons: it is all after the fifth.
        let fields: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, region, account, resource] = fields[..] else {
            // `arn:aws:iam:111122223333:role/app`: the account landed in the region field.
            if fields.len() == 4 && AccountId::is_valid(fields[2]) {
                return Err(Problem::MissingColon);
            }
            return Err(Problem::Fields(fields.len() + 1));
        };
        if !region.is_empty() && AccountId::is_valid(region) && !AccountId::is_valid(account) {
            return Err(Problem::MissingColon);
        }
        let partition: Partition = partition
            .parse()
            .map_err(|_| Problem::Partition(partition.to_owned()))?;
        if service != "iam" {
            return Err(Problem::Service(service.to_owned()));
        }
        if !region.is_empty() {
            return Err(Problem::Region(region.to_owned()));
        }
        let account: AccountId = account
            .parse()
            .map_err(|_| Problem::Account(account.to_owned()))?;
        let Some(path_and_name) = resource.strip_prefix("role").filter(|r| r.starts_with('/'))
        else {
            return Err(Problem::NotRole(resource.to_owned()));
        };
        let name_start = path_and_name.rfind('/').map_or(0, |i| i + 1);
        let (path, name) = path_and_name.split_at(name_start);
        let valid_path = path == "/"
            || (path.len() >= 3
                && path.len() <= MAX_ROLE_PATH
                && path.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        if !valid_path {
            return Err(Problem::Path(path.to_owned()));
        }
        let valid_name = (1..=MAX_ROLE_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
        if !valid_name {
            return Err(Problem::Name(name.to_owned()));
        }
        let path_start = text.len() - path_and_name.len();
        Ok(Self {
            text: text.to_owned(),
            partition,
            account,
            path: path_start..path_start + path.len(),
        })
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for RoleArn {
    type Err = ArnError;

    fn from_str(text: &str) -> Result<Self, ArnError> {
        Self::parse(text).map_err(|problem| ArnError::Role {
            value: text.to_owned(),
            problem,
        })
    }
}

/// `arn:PARTITION:iam::ACCOUNT:oidc-provider/HOST/PATH`: the ARN IAM gives the OIDC provider
/// for an issuer (`host_path` as [`crate::irsa::host_path`] writes it).
pub fn oidc_provider(partition: &Partition, account: &AccountId, host_path: &str) -> String {
    format!("arn:{partition}:iam::{account}:oidc-provider/{host_path}")
}

/// Whether `text` has an ARN's shape at all: `arn:` then partition, service, region, account
/// and resource, colon-separated, the partition, service and resource not empty (the region and
/// account may be). It is what STS checks a `RoleArn` against before looking a role up: one
/// without it is answered `ValidationError`, one with it that names no role `AccessDenied`.
pub fn has_arn_shape(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("arn:") else {
        return false;
    };
    let fields: Vec<&str> = rest.splitn(5, ':').collect();
    matches!(
        fields[..],
        [partition, service, _, _, resource]
            if !partition.is_empty() && !service.is_empty() && !resource.is_empty()
    )
}

/// An ARN, account ID or partition that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// Not a role ARN.
    #[error("role ARN {value:?}: {problem}; expected {ROLE_ARN_FORM}")]
    Role {
        /// The text given.
        value: String,
        /// What is wrong with it.
        problem: Problem,
    },
    /// Not 12 digits.
    #[error("account {value:?} is not a 12-digit AWS account ID")]
    Account {
        /// The text given.
        value: String,
    },
    /// Not a partition.
    #[error("partition {value:?} is not {PARTITION_FORM}")]
    Partition {
        /// The text given.
        value: String,
    },
}

/// What makes a text not a role ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// It does not start with `arn:`.
    NotArn,
    /// The account sits in the region field: the empty region's colon is missing.
    MissingColon,
    /// Too few colon-separated fields.
    Fields(usize),
    /// An unknown partition.
    Partition(String),
    /// A service other than `iam`.
    Service(String),
    /// A region (IAM is global: its ARNs have none).
    Region(String),
    /// An account that is not 12 digits.
    Account(String),
    /// A resource other than `role/...`.
    NotRole(String),
    /// A path that breaks IAM's rules.
    Path(String),
    /// A name that breaks IAM's rules.
    Name(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotArn => f.write_str("it does not start with arn:"),
            Self::MissingColon => f.write_str(
                "a colon is missing before the account (IAM ARNs have an empty region: iam::ACCOUNT)",
            ),
            Self::Fields(n) => write!(f, "it has {n} colon-separated fields, not 6"),
            Self::Partition(p) => write!(f, "partition {p:?} is not {PARTITION_FORM}"),
            Self::Service(s) => write!(f, "service {s:?} is not iam"),
            Self::Region(r) => write!(f, "region {r:?} is set; IAM ARNs have none (iam::ACCOUNT)"),
            Self::Account(a) => write!(f, "account {a:?} is not 12 digits"),
            Self::NotRole(r) => write!(f, "resource {r:?} is not role/[PATH/]NAME"),
            Self::Path(p) => write!(
                f,
                "path {p:?} is not / or /PATH/ of printable ASCII (! to ~), at most {MAX_ROLE_PATH} characters"
            ),
            Self::Name(n) => write!(
                f,
                "role name {n:?} is not 1 to {MAX_ROLE_NAME} of letters, digits and _+=,.@-"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
