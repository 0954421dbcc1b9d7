//! AdmissionReview (`admission.k8s.io/v1` and `v1beta1`) bytes -> the request fields the
//! webhook reads, and a decision -> the response bytes; pure.
//!
//! The response envelope echoes the request's `apiVersion` and `kind` (an empty TypeMeta is
//! refused by API servers other than EKS's: "got /, Kind="), copies `request.uid`, and carries
//! `patchType: JSONPatch` with the base64 `patch` only when there is one, and `warnings` only
//! when there are some. Only the `CREATE` of a `v1` Pod (resource `{"", v1, pods}`, no
//! subresource: `pods/eviction` and `pods/binding` are CREATEs of other objects) is for
//! mutation; anything else is allowed unchanged.
//!
//! A body that does not decode is a [`Rejection`]: `allowed: false`, `status {code: 400,
//! message}`. Its envelope uses the body's `apiVersion` when it is one of the two above (else
//! `admission.k8s.io/v1`) and `request.uid` when the body is JSON with a string there (else
//! `""`). An API server only sends well-formed reviews, so a rejection means something else
//! is talking to the webhook, or the webhook has a bug; without the real uid the API server
//! refuses the response itself ("expected response.uid=...") and the webhook's `failurePolicy`
//! decides, which is the honest outcome when the request could not even be read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mutation::Mutation;

/// `apiVersion` of an `admission.k8s.io/v1` review.
pub const V1: &str = "admission.k8s.io/v1";
/// `apiVersion` of an `admission.k8s.io/v1beta1` review (what the EKS webhook's manifests
/// still register).
pub const V1BETA1: &str = "admission.k8s.io/v1beta1";
/// `kind` of a review.
pub const KIND: &str = "AdmissionReview";

/// A resource type, as `request.resource` names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupVersionResource {
    /// API group; `""` for the core group.
    #[serde(default)]
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource (plural, lower case), e.g. `pods`.
    pub resource: String,
}

/// An object type, as `request.kind` names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupVersionKind {
    /// API group; `""` for the core group.
    #[serde(default)]
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
}

/// The fields of `AdmissionReview.request` the webhook reads (the others are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Copied into the response.
    pub uid: String,
    /// The object's type.
    pub kind: GroupVersionKind,
    /// The resource the request is for.
    pub resource: GroupVersionResource,
    /// A subresource (`eviction`, `binding`, `status`, ...), if any.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// The object's name; often empty on CREATE (`generateName`).
    #[serde(default)]
    pub name: Option<String>,
    /// The object's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    /// The object as it will be stored (after earlier mutations).
    #[serde(default)]
    pub object: Option<Value>,
    /// Nothing will be persisted (the mutation is pure either way).
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// A decoded AdmissionReview: its `apiVersion` (echoed in the response) and request.
#[derive(Debug, Clone)]
pub struct Review {
    api_version: &'static str,
    request: AdmissionRequest,
}

/// The pod a review asks to mutate, with what the caller needs to find its ServiceAccount.
#[derive(Debug, Clone, Copy)]
pub struct PodCreate<'a> {
    /// The pod, as JSON (a JSON object).
    pub pod: &'a Value,
    /// `request.namespace`, else the pod's `metadata.namespace`, else `""` (an API server
    /// always sends it for pods).
    pub namespace: &'a str,
    /// The pod's `spec.serviceAccountName`, else the deprecated `spec.serviceAccount`, else
    /// `default` (what the ServiceAccount admission plugin, which runs before webhooks, sets).
    pub service_account: &'a str,
}

impl Review {
    /// Decodes a request body.
    pub fn decode(body: &[u8]) -> Result<Self, Rejection> {
        let mut value: Value = serde_json::from_slice(body).map_err(|error| Rejection {
            api_version: V1,
            uid: String::new(),
            error: ReviewError::NotJson(error),
        })?;
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (api_version, kind, uid) = (text("/apiVersion"), text("/kind"), text("/request/uid"));
        let known = [V1, V1BETA1]
            .into_iter()
            .find(|v| api_version.as_deref() == Some(*v));
        let reject = |error| Rejection {
            api_version: known.unwrap_or(V1),
            uid: uid.clone().unwrap_or_default(),
            error,
        };
        let Some(api_version) = known.filter(|_| kind.as_deref() == Some(KIND)) else {
            return Err(reject(ReviewError::NotAReview { api_version, kind }));
        };
        match value.get_mut("request").map(Value::take) {
            None | Some(Value::Null) => Err(reject(ReviewError::NoRequest)),
            Some(request) => match serde_json::from_value(request) {
                Ok(request) => Ok(Self {
                    api_version,
                    request,
                }),
                Err(error) => Err(reject(ReviewError::BadRequest(error))),
            },
        }
    }

    /// `admission.k8s.io/v1` or `admission.k8s.io/v1beta1`, as the request said.
    pub fn api_version(&self) -> &'static str {
        self.api_version
    }

    /// The request.
    pub fn request(&self) -> &AdmissionRequest {
        &self.request
    }

    /// The pod to mutate: `Some` only for the `CREATE` of a core `v1` pod (no subresource)
    /// whose object is a JSON object.
    pub fn pod_create(&self) -> Option<PodCreate<'_>> {
        let r = &self.request;
        let is_pods = r.resource.group.is_empty()
            && r.resource.version == "v1"
            && r.resource.resource == "pods";
        if r.operation != "CREATE"
            || !is_pods
            || r.sub_resource.as_deref().is_some_and(|s| !s.is_empty())
        {
            return None;
        }
        let pod = r.object.as_ref().filter(|o| o.is_object())?;
        let text = |pointer: &str| {
            pod.pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        Some(PodCreate {
            pod,
            namespace: r
                .namespace
                .as_deref()
                .filter(|s| !s.is_empty())
                .or_else(|| text("/metadata/namespace"))
                .unwrap_or(""),
            service_account: text("/spec/serviceAccountName")
                .or_else(|| text("/spec/serviceAccount"))
                .unwrap_or("default"),
        })
    }

    /// The response that allows the object unchanged.
    pub fn allow(&self) -> Vec<u8> {
        self.respond(&Mutation::default())
    }

    /// The response that refuses the object: `allowed: false`, `status {code, message}` (the
    /// API server shows the message to whoever created the pod).
    pub fn refuse(&self, code: u16, message: String) -> Vec<u8> {
        encode(&Envelope {
            api_version: self.api_version,
            kind: KIND,
            response: Response {
                uid: &self.request.uid,
                allowed: false,
                status: Some(Status { code, message }),
                patch_type: None,
                patch: None,
                warnings: &[],
            },
        })
    }

    /// The response that allows the object with `mutation`'s patch (none when it is empty) and
    /// warnings.
    pub fn respond(&self, mutation: &Mutation) -> Vec<u8> {
        let patch = (!mutation.patch.is_empty()).then(|| STANDARD.encode(mutation.patch_json()));
        encode(&Envelope {
            api_version: self.api_version,
            kind: KIND,
            response: Response {
                uid: &self.request.uid,
                allowed: true,
                status: None,
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch,
                warnings: &mutation.warnings,
            },
        })
    }
}

// === Rejection ===

/// Why a body is not an AdmissionReview the webhook can answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON at all.
    #[error("the body is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// JSON, but not an `admission.k8s.io/v1` or `v1beta1` `AdmissionReview`.
    #[error(
        "the body is not an admission.k8s.io/v1 or v1beta1 AdmissionReview (apiVersion {api_version:?}, kind {kind:?})"
    )]
    NotAReview {
        /// The `apiVersion` found, if a string.
        api_version: Option<String>,
        /// The `kind` found, if a string.
        kind: Option<String>,
    },
    /// A review without a request.
    #[error("the AdmissionReview has no request")]
    NoRequest,
    /// A request that lacks a field, or has one of the wrong type.
    #[error("the AdmissionReview's request does not decode")]
    BadRequest(#[source] serde_json::Error),
}

/// A body that does not decode, with what of its envelope could be read: becomes a response
/// that refuses the object with status 400 ([`Rejection::to_json`]).
#[derive(Debug, thiserror::Error)]
#[error("undecodable AdmissionReview (uid {uid:?})")]
pub struct Rejection {
    api_version: &'static str,
    uid: String,
    #[source]
    error: ReviewError,
}

impl Rejection {
    /// Why.
    pub fn error(&self) -> &ReviewError {
        &self.error
    }

    /// The `request.uid` read from the body, or `""`.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The response: `allowed: false`, `status {code: 400, message}`, where the message is the
    /// error and its causes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut message = self.error.to_string();
        let mut source = std::error::Error::source(&self.error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        encode(&Envelope {
            api_version: self.api_version,
            kind: KIND,
            response: Response {
                uid: &self.uid,
                allowed: false,
                status: Some(Status { code: 400, message }),
                patch_type: None,
                patch: None,
                warnings: &[],
            },
        })
    }
}

// === Encoding ===

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: Response<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

/// `metav1.Status`, as much of it as a refusal needs.
#[derive(Serialize)]
struct Status {
    code: u16,
    message: String,
}

fn encode(envelope: &Envelope<'_>) -> Vec<u8> {
    serde_json::to_vec(envelope).expect("an admission response of strings serializes")
}
