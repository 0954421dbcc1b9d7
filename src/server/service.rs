//! The request handler: path -> precomputed snapshot bytes and headers. No JSON work per request.
//! Protocol-neutral: HTTP/1.1 and HTTP/2 write an `Answer` themselves; `respond` builds an
//! `http::Response` (for hyper, the reference server of the differential tests).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::encoded::{Encoded, EncodedDocument, Encoder, View};
use super::metrics::{self, ConnectionInfo, Metrics, Protocol, Route};
use crate::shutdown::Readiness;
use crate::store::Reader;

/// The body type every response uses.
pub type Body = Full<Bytes>;

const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// Answers requests from the current snapshot of a [`Reader`].
#[derive(Clone, Debug)]
pub struct IssuerService {
    reader: Reader,
    encoder: Arc<Encoder>,
    readiness: Readiness,
    /// Shared: a clone of the service (per h2 and admin connection) copies no list.
    attached: Arc<[Attached]>,
    metrics: Arc<Metrics>,
    /// `/statusz` is served by the admin listener, not here.
    admin_listener: bool,
    access_log: bool,
    /// The last `/statusz` body, reused within the same second and generation.
    status_body: Arc<Mutex<Option<StatusBody>>>,
}

/// A rendered `/statusz` body: every response within its second shares these bytes (an HTTP/2
/// response that flow control holds keeps a reference, not a copy).
#[derive(Debug)]
struct StatusBody {
    generation: u64,
    /// Unix seconds when it was rendered (its fields have a resolution of one second).
    second: u64,
    body: Bytes,
}

/// Another task's state, reported by the service without the server knowing the task (the app
/// attaches the bucket mirror this way).
#[derive(Clone)]
pub struct Attached {
    /// The key in `/statusz`.
    pub name: &'static str,
    /// Its current `/statusz` object.
    pub status: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
    /// While it holds `/readyz` at 503, the body to answer with (`not ready: ...\n`); asked on
    /// every `/readyz`, so it builds no JSON.
    pub not_ready: Arc<dyn Fn() -> Option<&'static str> + Send + Sync>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl IssuerService {
    /// A service over `reader`; `/readyz` follows `readiness`.
    pub fn new(reader: Reader, readiness: Readiness) -> Self {
        Self {
            encoder: Arc::new(Encoder::new(reader.clone())),
            reader,
            readiness,
            attached: Arc::new([]),
            metrics: Arc::default(),
            admin_listener: false,
            access_log: false,
            status_body: Arc::default(),
        }
    }

    /// Moves `/statusz` to the admin listener ([`IssuerService::respond_admin`]): the issuer
    /// listener then serves only the documents, `/healthz` and `/readyz`.
    pub fn with_admin_listener(mut self) -> Self {
        self.admin_listener = true;
        self
    }

    /// Logs every request (target `issuerd::access`) when `on`.
    pub fn with_access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// The request counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether requests are logged.
    #[inline]
    pub(crate) fn access_log(&self) -> bool {
        self.access_log
    }

    /// Logs one request to the access log (target `issuerd::access`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn log_access(
        &self,
        info: &ConnectionInfo,
        protocol: Protocol,
        method: &str,
        path: &str,
        status: StatusCode,
        bytes: usize,
        elapsed: Duration,
    ) {
        let peer = info.peer.as_ref().map(|p| p.to_string());
        tracing::info!(
            target: "issuerd::access",
            method,
            path,
            status = status.as_u16(),
            bytes,
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            protocol = protocol.label(),
            tls = info.tls,
            peer = peer.as_deref().unwrap_or("-"),
            "request"
        );
    }

    /// The answer of the admin listener: `/metrics`, `/statusz`, `/healthz` and `/readyz`.
    pub fn respond_admin<B>(&self, request: &Request<B>) -> Response<Body> {
        let encoded = self.encoder.current();
        let path = request.uri().path();
        let method = request.method();
        let response = match path {
            "/metrics" | "/statusz" | "/healthz" | "/readyz"
                if method != Method::GET && method != Method::HEAD =>
            {
                method_not_allowed()
            }
            "/metrics" => {
                let body = metrics::render(
                    &self.metrics,
                    Arc::clone(&encoded.snapshot),
                    self.reader.health(),
                );
                let mut response = Response::new(Bytes::from(body));
                let headers = response.headers_mut();
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                headers.insert(CACHE_CONTROL, NO_STORE);
                response
            }
            "/statusz" => self.status(&encoded),
            "/healthz" | "/readyz" => self.respond_internal(&encoded, method, path),
            _ => not_found(),
        };
        let head = method == Method::HEAD;
        let (mut parts, body) = response.into_parts();
        parts
            .headers
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(body.len()));
        Response::from_parts(parts, Full::new(if head { Bytes::new() } else { body }))
    }

    /// Reports `attached` in `/statusz` (beside any attached before) and lets it hold `/readyz`
    /// at 503.
    pub fn with_attached(mut self, attached: Attached) -> Self {
        self.attached = self.attached.iter().cloned().chain([attached]).collect();
        self
    }

    /// Builds the response for a request. The body of the request is never read.
    pub fn respond<B>(&self, request: &Request<B>) -> Response<Body> {
        self.respond_from(&self.encoder.current(), request)
    }

    /// Builds the response for a request from `encoded`.
    fn respond_from<B>(&self, encoded: &Encoded, request: &Request<B>) -> Response<Body> {
        // Repeated If-None-Match lines are one comma-separated list (RFC 9110 section 5.3).
        let if_none_match = request
            .headers()
            .get_all(IF_NONE_MATCH)
            .iter()
            .map(HeaderValue::as_bytes);
        let answer = self.answer(
            encoded,
            request.method(),
            request.uri().path(),
            if_none_match,
        );
        match answer {
            // A HEAD answer carries the GET answer's length and no body, on every route.
            Answer::Other { response, .. } if request.method() == Method::HEAD => {
                let (mut parts, body) = response.into_parts();
                parts
                    .headers
                    .entry(CONTENT_LENGTH)
                    .or_insert_with(|| HeaderValue::from(body.len()));
                Response::from_parts(parts, Full::new(Bytes::new()))
            }
            answer => answer.into_response(),
        }
    }

    /// A per-connection view of the published snapshot, encoded.
    pub(crate) fn view(&self) -> View {
        self.encoder.view()
    }

    /// The encoder views are read through.
    pub(crate) fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Routes a request. Documents come back as [`Answer::Document`] so a protocol can write its
    /// precomputed header block; everything else as a ready response. `if_none_match` yields
    /// the value of every `If-None-Match` line, in order.
    pub(crate) fn answer<'a, 'h>(
        &self,
        encoded: &'a Encoded,
        method: &Method,
        path: &str,
        if_none_match: impl IntoIterator<Item = &'h [u8]>,
    ) -> Answer<'a> {
        let (document, route) = if path == encoded.discovery.path {
            (&encoded.discovery, Route::Discovery)
        } else if path == encoded.jwks.path {
            (&encoded.jwks, Route::Jwks)
        } else {
            let route = if path == "/healthz" || path == "/readyz" {
                Route::Health
            } else {
                Route::Other
            };
            let response = self.respond_internal(encoded, method, path);
            return Answer::Other { response, route };
        };
        let head = match *method {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let response = method_not_allowed();
                return Answer::Other { response, route };
            }
        };
        let not_modified = if_none_match
            .into_iter()
            .any(|condition| etag_matches(condition, document.etag.as_bytes()));
        Answer::Document {
            document,
            route,
            not_modified,
            head,
        }
    }

    fn respond_internal(&self, encoded: &Encoded, method: &Method, path: &str) -> Response<Bytes> {
        let known = match path {
            "/healthz" | "/readyz" => true,
            "/statusz" => !self.admin_listener,
            _ => false,
        };
        if !known {
            return not_found();
        }
        if method != Method::GET && method != Method::HEAD {
            return method_not_allowed();
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.readiness.is_ready() => {
                match self.attached.iter().find_map(|a| (a.not_ready)()) {
                    Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, reason),
                    None => text(StatusCode::OK, "ready\n"),
                }
            }
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            _ => self.status(encoded),
        }
    }

    /// `/statusz`: the generation served, its kids and how reloads are going. Rendered at most
    /// once per second and generation; within the second, responses share the bytes.
    fn status(&self, encoded: &Encoded) -> Response<Bytes> {
        let generation = encoded.snapshot.generation;
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let body = {
            let mut cached = self
                .status_body
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &*cached {
                Some(c) if c.generation == generation && c.second == second => c.body.clone(),
                _ => {
                    let body = self.render_status(encoded);
                    *cached = Some(StatusBody {
                        generation,
                        second,
                        body: body.clone(),
                    });
                    body
                }
            }
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, NO_STORE);
        response
    }

    /// The `/statusz` JSON.
    fn render_status(&self, encoded: &Encoded) -> Bytes {
        let snapshot = &encoded.snapshot;
        let health = self.reader.health();
        let unix = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        let mut body = serde_json::json!({
            "ready": self.readiness.is_ready(),
            "generation": snapshot.generation,
            "kids": snapshot.keys.kids().collect::<Vec<_>>(),
            // Rotation safety: a key is safe to sign with once it has been published for the
            // documents' max-age (relying parties refetch only as their cache expires).
            "keys": snapshot.first_published.iter().map(|(kid, at)| serde_json::json!({
                "kid": kid,
                "first_published": unix(Some(*at)),
                "published_for_secs": SystemTime::now().duration_since(*at).map_or(0, |d| d.as_secs()),
            })).collect::<Vec<_>>(),
            "published_at": unix(Some(snapshot.published_at)),
            "discovery_etag": snapshot.discovery.etag,
            "jwks_etag": snapshot.jwks.etag,
            "last_reload_error": health.last_error,
            "failing_since": unix(health.failing_since),
            "last_successful_reload": unix(health.last_success),
            "successful_reloads": health.successes,
            "failed_reloads": health.failures.iter().sum::<u64>(),
        });
        for attached in self.attached.iter() {
            body[attached.name] = (attached.status)();
        }
        Bytes::from(body.to_string())
    }
}

/// The routing decision for one request.
#[derive(Debug)]
pub(crate) enum Answer<'a> {
    /// One of the documents of the snapshot the request was routed with.
    Document {
        /// The document.
        document: &'a EncodedDocument,
        /// Its `route` label.
        route: Route,
        /// `If-None-Match` matched: 304 without body.
        not_modified: bool,
        /// A HEAD request: headers only.
        head: bool,
    },
    /// Anything else (health, status, 404, 405), body included.
    Other {
        /// The response.
        response: Response<Bytes>,
        /// Its `route` label.
        route: Route,
    },
}

impl Answer<'_> {
    /// The response as an `http::Response`.
    pub(crate) fn into_response(self) -> Response<Body> {
        match self {
            Self::Document {
                document,
                not_modified,
                head,
                ..
            } => {
                if not_modified {
                    document_response(document, StatusCode::NOT_MODIFIED, Bytes::new(), false)
                } else if head {
                    document_response(document, StatusCode::OK, Bytes::new(), true)
                } else {
                    document_response(document, StatusCode::OK, document.body.clone(), true)
                }
            }
            Self::Other { response, .. } => response.map(Full::new),
        }
    }
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for IssuerService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        ready(Ok(self.respond(&request)))
    }
}

fn document_response(
    document: &EncodedDocument,
    status: StatusCode,
    body: Bytes,
    with_entity_headers: bool,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.reserve(6);
    headers.insert(ETAG, document.etag.clone());
    headers.insert(CACHE_CONTROL, document.cache_control.clone());
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    if with_entity_headers {
        headers.insert(CONTENT_TYPE, document.content_type.clone());
        headers.insert(CONTENT_LENGTH, document.content_length.clone());
    }
    response
}

/// `If-None-Match` uses the weak comparison: `W/"x"` matches `"x"`; `*` matches any current
/// representation, and a document always has one.
fn etag_matches(condition: &[u8], etag: &[u8]) -> bool {
    condition.split(|&b| b == b',').any(|candidate| {
        let candidate = candidate.trim_ascii();
        candidate == b"*" || candidate.strip_prefix(b"W/").unwrap_or(candidate) == etag
    })
}

/// The plain-text error response for `status`: `400 Bad Request\n` and so on.
pub fn error_response(status: StatusCode) -> Response<Bytes> {
    let body = format!(
        "{} {}\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
    response
}

/// The same 404 kube-apiserver (Go's `http.NotFound`) sends.
fn not_found() -> Response<Bytes> {
    let mut response = text(StatusCode::NOT_FOUND, "404 page not found\n");
    response
        .headers_mut()
        .insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    response
}

fn method_not_allowed() -> Response<Bytes> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
    response.headers_mut().insert(ALLOW, GET_HEAD);
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::{DiscoveryProfile, Issuer, Publication};
    use crate::keys::{KeySet, PublicKey};
    use crate::store::Store;

    #[test]
    fn statusz_responses_within_a_second_share_one_body() {
        let pem = include_str!("../../tests/fixtures/keys/ec256.pub.pem");
        let keys = KeySet::from_public_keys(PublicKey::from_pem(pem.as_bytes()).unwrap());
        let publication = Publication {
            issuer: Issuer::new("https://h.example", None, false).unwrap(),
            profile: DiscoveryProfile::Kubernetes,
            max_age_secs: 60,
        };
        let store = Store::new(publication, keys.unwrap());
        let service = IssuerService::new(store.reader(), Readiness::default());
        let encoded = service.encoder().current();
        // Two in the same second (tried again if a second boundary fell between them).
        let shared = (0..3).any(|_| {
            let first = service.status(&encoded).into_body();
            let second = service.status(&encoded).into_body();
            first.as_ptr() == second.as_ptr()
        });
        assert!(shared, "each /statusz response has its own copy");
        let body: serde_json::Value =
            serde_json::from_slice(&service.status(&encoded).into_body()).unwrap();
        assert_eq!(body["generation"], 1);
    }

    #[test]
    fn etag_comparison() {
        let etag = HeaderValue::from_static("\"abc\"");
        for (condition, expected) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abcd\"", false),
            ("abc", false),
            ("", false),
        ] {
            assert_eq!(
                etag_matches(condition.as_bytes(), etag.as_bytes()),
                expected,
                "{condition}"
            );
        }
    }
}
