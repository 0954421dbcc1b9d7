//! The integration tests, as one crate: one module per area (the binary as users run it, the
//! HTTP engines against hyper, TLS, rotation, limits, the mirror, IRSA, ...), with the shared
//! support in `common`. One test binary links issuerd and its dependencies (aws-lc-rs,
//! object_store, reqwest, s3s) once, instead of once per file.
//!
//! The tests share one process: none may change process-wide state (environment variables, the
//! working directory, resource limits, a global tracing subscriber, signal dispositions). What
//! needs its own process runs `issuerd` as a child (`env!("CARGO_BIN_EXE_issuerd")`) and gives
//! the child its environment.
//!
//! Run one area with a filter: `cargo test --test it -- rotation::`.

#[macro_use]
mod common;

mod acme;
mod arn;
mod aws;
mod cli;
mod deploy;
mod differential;
mod differential_h2;
mod exit_status;
mod fuzz_replay;
mod golden;
mod http;
mod http1_wire;
mod irsa_check;
mod irsa_sts;
mod irsa_tls;
mod irsa_verify;
mod keys;
mod kube_source;
mod layers;
mod limits;
mod metrics;
mod mirror;
mod parity;
mod private_ca;
mod readme;
mod rotation;
mod rotation_under_load;
mod systemd;
mod test_deps;
mod thumbprint;
mod timeouts;
mod tls;
mod vault;
mod webhook;
mod webhook_annotations;
mod workers;
