//! ServiceAccount tokens: their claims, minting them as kube-apiserver would, and verifying them
//! as AWS STS and Vault do (discovery, JWKS, kid, algorithm, signature, times, audience).
//!
//! # Layout
//! - [`claims`]: the claims of a projected ServiceAccount token, and the time helpers.
//! - [`jwt`]: compact JWS -> header, claims and signing input (no verification).
//! - [`signing_key`]: a private key file -> the signer for its algorithm, with its published kid.
//! - [`mint`]: claims + signing key -> token.
//! - [`fetch`]: discovery document and JWKS over HTTP(S).
//! - [`verify`]: the checks, each failing with one precise [`verify::VerifyError`].

pub mod claims;
pub mod fetch;
pub mod jwt;
pub mod mint;
pub mod signing_key;
pub mod verify;

pub use self::claims::Claims;
pub use self::jwt::Jwt;
pub use self::signing_key::SigningKey;
pub use self::verify::VerifyError;
