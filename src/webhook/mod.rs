//! `issuerd webhook`: the IRSA mutating admission webhook. AdmissionReview bytes in
//! ([`review`]), the pod's ServiceAccount looked up in the IAM map ([`mapping`]), the pod's JSON
//! Patch computed ([`mutation`]), response bytes out; no IO here but reading the map file and,
//! with `--service-account-annotations`, [`service_accounts`]: the sockets, TLS and the watcher
//! are wired in `app`.
//!
//! - [`review`]: AdmissionReview v1/v1beta1 decoding and responses.
//! - [`mutation`]: the EKS webhook's wiring, idempotent, conflicts found by path.
//! - [`mapping`]: the map file (kOps Cluster manifest, standalone map, EKS webhook ConfigMap)
//!   -> the role and token settings of a ServiceAccount.
//! - [`eks_config_map`]: the EKS pod identity webhook's ConfigMap format.
//! - [`annotations`]: a ServiceAccount's own `eks.amazonaws.com/*` annotations -> its role.
//! - [`service_accounts`]: those annotations read through the Kubernetes API (kube's
//!   reflector, and a GET within a grace period on a cache miss).
//! - `admission`: one review answered from the map and the flags ([`Webhook::admit`]).
//! - [`metrics`]: admissions by outcome, latency, the map's state.
//! - [`service`]: HTTP requests -> responses (`POST /mutate`, health, `/metrics`).
//!
//! A server answers one request body like this:
//!
//! ```
//! use issuerd::webhook::{Injection, Review, mutate};
//!
//! fn answer(body: &[u8], lookup: impl Fn(&str, &str) -> Option<Injection>) -> Vec<u8> {
//!     let review = match Review::decode(body) {
//!         Ok(review) => review,
//!         Err(rejection) => return rejection.to_json(),
//!     };
//!     match review.pod_create() {
//!         Some(pod) => match lookup(pod.namespace, pod.service_account) {
//!             Some(injection) => review.respond(&mutate(pod.pod, &injection)),
//!             None => review.allow(),
//!         },
//!         None => review.allow(),
//!     }
//! }
//! # let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
//! #   "uid":"u","kind":{"group":"","version":"v1","kind":"Pod"},
//! #   "resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE",
//! #   "object":{"spec":{"containers":[{"name":"app"}]}}}}"#;
//! # let out = answer(body, |_, _| Some(Injection::new("arn:aws:iam::111122223333:role/app")));
//! # assert!(String::from_utf8(out).unwrap().contains(r#""patchType":"JSONPatch""#));
//! ```

mod admission;
pub mod annotations;
pub mod eks_config_map;
pub mod mapping;
pub mod metrics;
pub mod mutation;
pub mod review;
pub mod service;
pub mod service_accounts;

#[cfg(test)]
mod tests;

pub use mutation::{Injection, Mutation, PatchOp, mutate};
pub use review::{PodCreate, Rejection, Review, ReviewError};

use std::sync::{Arc, PoisonError, RwLock};

use self::mapping::Map;
use self::metrics::{Outcome, WebhookMetrics};
use self::service_accounts::ServiceAccounts;

/// What the flags set for every pod, unless the map entry or the pod says otherwise.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// `--token-audience`.
    pub audience: String,
    /// `--token-expiration`, in seconds.
    pub token_expiration: u32,
    /// `--sts-regional-endpoint`.
    pub regional_sts: bool,
    /// `--aws-default-region`.
    pub region: Option<String>,
    /// `--fs-group`.
    pub fs_group: Option<i64>,
}

/// The webhook's state: the map in use (replaced whole on a good reload), the defaults, and
/// the metrics.
#[derive(Debug)]
pub struct Webhook {
    map: RwLock<Arc<Map>>,
    defaults: Defaults,
    /// `--service-account-annotations`: the ServiceAccounts' cache and client.
    service_accounts: Option<ServiceAccounts>,
    /// The admissions read and answered at once ([`service::IN_FLIGHT`]).
    in_flight: tokio::sync::Semaphore,
    /// Admissions and the map's state.
    pub metrics: WebhookMetrics,
}

/// One answered admission: the response body and what happened.
#[derive(Debug)]
pub struct Admitted {
    /// The AdmissionReview response, JSON.
    pub body: Vec<u8>,
    /// For the metrics.
    pub outcome: Outcome,
}

impl Webhook {
    /// A webhook answering from `map`.
    pub fn new(map: Map, defaults: Defaults) -> Self {
        let metrics = WebhookMetrics::default();
        metrics.map_loaded(Some(map.len()));
        Self {
            map: RwLock::new(Arc::new(map)),
            defaults,
            service_accounts: None,
            in_flight: tokio::sync::Semaphore::new(service::IN_FLIGHT),
            metrics,
        }
    }

    /// Reads each pod's ServiceAccount annotations through `accounts` too (they win over the
    /// map).
    #[must_use]
    pub fn with_service_accounts(mut self, accounts: ServiceAccounts) -> Self {
        self.service_accounts = Some(accounts);
        self
    }

    /// The ServiceAccounts read through the API server, if asked.
    pub fn service_accounts(&self) -> Option<&ServiceAccounts> {
        self.service_accounts.as_ref()
    }

    /// The map in use.
    pub fn map(&self) -> Arc<Map> {
        Arc::clone(&self.map.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts a newly loaded map in use.
    pub fn replace_map(&self, map: Map) {
        self.metrics.map_loaded(Some(map.len()));
        *self.map.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
    }

    /// The defaults.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }
}
