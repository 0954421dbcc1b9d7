//! issuerd serves a Kubernetes ServiceAccount issuer's OpenID Connect discovery document and JWKS,
//! byte-identical to kube-apiserver's, from memory, with hot key rotation.
//!
//! # Layout
//! The pipeline is keys -> documents -> snapshot -> HTTP; every consumer of the published state
//! (the server, the bucket mirror, `/statusz` and metrics) is a reader of the same snapshots.
//! Data and imports flow one way: keys -> document/bucket -> store -> server/watcher/mirror -> app
//! (`tests/it/layers.rs` holds the code to it). The IRSA tools sit beside that pipeline: they read
//! issuers over HTTP, as relying parties do (token -> irsa/check -> sts).
//!
//! - [`cli`]: raw command-line flags and env.
//! - [`config`]: flags + env + sectioned TOML file -> validated [`config::Config`]; pure: it
//!   reads the file and nothing else (`--dev`'s key and issuer, binding, name resolution are
//!   described there and carried out by `app`).
//! - [`issuer`]: the issuer URL, JWKS URI, the paths they are served at, and the
//!   [`issuer::Publication`] (issuer, document shape, cache lifetime).
//! - [`keys`]: key files -> validated public keys -> [`keys::KeySet`] (kid, PEM, JWKS input).
//! - [`document`]: (publication, key set) -> protocol-neutral [`document::Document`]s: bytes,
//!   content type, ETag, cache control; pure.
//! - [`store`]: immutable [`store::Snapshot`]s published through a [`store::Store`], read through
//!   [`store::Reader`]s; knows nothing of HTTP.
//! - [`watcher`]: file events, polling and SIGHUP -> reload -> publish; keeps the last good set.
//! - [`apiserver`]: the Kubernetes API server as a key source (`--from-kube-apiserver`): its
//!   discovery document and JWKS, read with issuerd's own token, checked, polled, published as
//!   one part of the key set (the key files' keys may be the other); keeps the last good set.
//! - [`bucket`]: where the mirror publishes (`s3://` target, object keys, ACL, settings); pure.
//! - [`mirror`]: a reader that keeps the documents in an S3 bucket in sync (`serve --mirror`,
//!   `publish`).
//! - [`retry`]: backoff with jitter for background tasks that retry (mirror, ACME).
//! - [`server`]: the accept loop, per-generation HTTP encodings of the documents, issuerd's own
//!   HTTP/1.1 loop and HTTP/2 engine over any [`server::Transport`] (every frame budgeted or
//!   bounded); request metrics ([`server::metrics`]) and the admin listener ([`server::admin`]:
//!   `/metrics`, `/statusz`).
//! - [`shutdown`]: signals, the shutdown broadcast (and each connection's own stop request, by
//!   which a listener at its cap reclaims connections that wait for their client), and the
//!   readiness latch.
//! - [`dev`]: what `serve --dev` generates: the ephemeral key pair and the local IRSA demo.
//! - [`log`]: logging conventions (list fields).
//! - [`listener`]: bind with a backlog, accept until shutdown under a connection cap (EMFILE
//!   backs off), graceful connection drain; shared by every listener.
//! - [`tls`]: the serving certificate: PEM chain + key -> a checked pair, kept live in the rustls
//!   resolver, reloaded from files (or installed by ACME).
//! - [`trust`]: what issuerd's HTTPS clients trust: public roots, `--ca-file` CAs, the
//!   certificate `serve` itself presents (for the STS beside it).
//! - [`arn`]: IAM ARNs parsed where they enter (role ARN, account ID, partition), and the ARNs
//!   built from them (OIDC provider, assumed role); a leaf.
//! - [`token`]: ServiceAccount tokens minted and verified (`mint`, `verify`).
//! - [`sts`]: a verifying AWS STS endpoint (`sts`, `serve --sts-listen`).
//! - [`webhook`]: the IRSA mutating admission webhook (`webhook`): AdmissionReview in, the
//!   pod's role from its ServiceAccount's annotations (read with kube's reflector) or the IAM map,
//!   its JSON Patch (EKS webhook env, token volume and mount; idempotent) and response out; the
//!   pieces `pod-env` renders too.
//! - [`irsa`]: the IRSA generators (`trust-policy`, `pod-env`).
//! - [`iam_map`]: which ServiceAccount may assume which IAM role (kOps's
//!   `serviceAccountExternalPermissions`): parsed, checked, kOps's role names, lookup.
//! - [`aws`]: `aws plan|apply`: the IAM OIDC provider and the map's roles, desired (pure) vs
//!   actual (the AWS SDK), and the changes between them.
//! - [`check`]: the live issuer doctor (`check`).
//! - [`vault`]: the HashiCorp Vault JWT auth generator (`vault-config`): the config and role
//!   request bodies, and the `vault write` commands that send them.
//! - [`probe`]: one HTTP GET for container health checks (`probe`).
//! - [`thumbprint`]: the SHA-1 thumbprint AWS IAM pins for an OIDC provider (`thumbprint`).
//! - [`acme`]: obtains and renews the serving certificate (RFC 8555; tls-alpn-01, or http-01 on
//!   a plain listener), cached in `--acme-cache`; writes into the live certificate store.
//! - [`app`]: wiring of the above for each subcommand: dispatch, the `serve` composition (one
//!   function per attached feature), the IRSA commands, the one-shot tools.

pub mod acme;
pub mod apiserver;
pub mod app;
pub mod arn;
pub mod aws;
pub mod bucket;
pub mod check;
pub mod cli;
pub mod config;
pub mod dev;
pub mod document;
pub mod iam_map;
pub mod irsa;
pub mod issuer;
pub mod keys;
pub mod listener;
pub mod log;
pub mod mirror;
pub mod probe;
pub mod retry;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod sts;
pub mod thumbprint;
pub mod tls;
pub mod token;
pub mod trust;
pub mod vault;
pub mod watcher;
pub mod webhook;
