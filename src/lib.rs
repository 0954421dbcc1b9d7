//! issuerd serves a Kubernetes ServiceAccount issuer's OpenID Connect discovery document and JWKS,
//! byte-identical to kube-apiserver's, from memory, with hot key rotation.
//!
//! # Layout
//! The pipeline is keys -> documents -> snapshot -> HTTP; every consumer of the published state
//! (the server today, a mirror or an STS verifier later) is a reader of the same snapshots.
//!
//! - [`cli`]: raw command-line flags and env.
//! - [`config`]: flags + env + TOML file -> validated [`config::Config`].
//! - [`issuer`]: the issuer URL, JWKS URI and the paths they are served at.
//! - [`keys`]: key files -> validated public keys -> [`keys::KeySet`] (kid, PEM, JWKS input).
//! - [`document`]: (issuer, key set) -> discovery and JWKS bytes; pure.
//! - [`store`]: immutable [`store::Snapshot`]s published through a [`store::Store`], read through
//!   [`store::Reader`]s.
//! - [`watcher`]: file events, polling and SIGHUP -> reload -> publish; keeps the last good set.
//! - [`bucket`]: where the mirror publishes (`s3://` target, object keys, ACL, settings); pure.
//! - [`mirror`]: a reader that keeps the documents in an S3 bucket in sync (`serve --mirror`,
//!   `publish`).
//! - [`server`]: accept loop and the hyper service answering from the current snapshot.
//! - [`shutdown`]: signals, the shutdown broadcast, and the readiness latch.
//! - [`dev`]: the ephemeral key of `serve --dev`.
//! - [`app`]: wiring of the above for each subcommand.

pub mod app;
pub mod bucket;
pub mod cli;
pub mod config;
pub mod dev;
pub mod document;
pub mod issuer;
pub mod keys;
pub mod mirror;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod watcher;
