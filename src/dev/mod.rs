//! What `serve --dev` generates, all of it ephemeral and deleted on exit: the signing key pair
//! ([`key`]) and, with `--sts-listen`, the local IRSA demo: a role, a token and the env an AWS SDK
//! needs ([`irsa`]).

pub mod irsa;
pub mod key;

pub use irsa::{DevIrsa, DevIrsaError};
pub use key::{DevKey, DevKeyError};
