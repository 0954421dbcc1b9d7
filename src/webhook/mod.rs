//! The pure core of the IRSA mutating admission webhook: AdmissionReview bytes in
//! ([`review`]), the pod's JSON Patch computed ([`mutation`]), response bytes out. No IO: the
//! HTTPS server, the ServiceAccount -> [`Injection`] maps and the CLI live elsewhere and call
//! this.
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

pub mod mutation;
pub mod review;

#[cfg(test)]
mod tests;

pub use mutation::{Injection, Mutation, PatchOp, mutate};
pub use review::{PodCreate, Rejection, Review, ReviewError};
