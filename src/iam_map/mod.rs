//! The IRSA map: which Kubernetes ServiceAccount may assume which AWS IAM role, as kOps writes
//! it in a Cluster's `spec.iam.serviceAccountExternalPermissions`. One parser and model for
//! everything that reads it (the admission webhook, `aws plan`/`apply`, the local STS).
//!
//! # Layout
//! - [`policy`]: policy ARNs and inline policies, checked.
//! - [`role`]: the name kOps gives a role, with its cut and hash.
//! - [`pattern`]: IAM's `StringLike`.

pub mod pattern;
pub mod policy;
pub mod role;

pub use policy::{InlinePolicy, InlinePolicyError, PolicyArnError, StatementError};
pub use role::{MAX_ROLE_NAME, role_name};
