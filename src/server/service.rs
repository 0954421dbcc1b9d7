//! The request handler: path -> precomputed snapshot bytes and headers. No JSON work per request.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::shutdown::Readiness;
use crate::store::{Document, Reader};

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
    readiness: Readiness,
}

impl IssuerService {
    /// A service over `reader`; `/readyz` follows `readiness`.
    pub fn new(reader: Reader, readiness: Readiness) -> Self {
        Self { reader, readiness }
    }

    /// Builds the response for a request. The body of the request is never read.
    pub fn respond<B>(&self, request: &Request<B>) -> Response<Body> {
        let snapshot = self.reader.snapshot();
        let path = request.uri().path();
        let document = if path == snapshot.discovery.path {
            &snapshot.discovery
        } else if path == snapshot.jwks.path {
            &snapshot.jwks
        } else {
            return self.respond_internal(request.method(), path);
        };
        let head = match *request.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => return method_not_allowed(),
        };
        let not_modified = request
            .headers()
            .get(IF_NONE_MATCH)
            .is_some_and(|condition| etag_matches(condition, &document.etag));
        if not_modified {
            return document_response(document, StatusCode::NOT_MODIFIED, Bytes::new(), false);
        }
        let body = if head {
            Bytes::new()
        } else {
            document.body.clone()
        };
        document_response(document, StatusCode::OK, body, true)
    }

    fn respond_internal(&self, method: &Method, path: &str) -> Response<Body> {
        let known = matches!(path, "/healthz" | "/readyz" | "/statusz");
        if !known {
            return not_found();
        }
        if method != Method::GET && method != Method::HEAD {
            return method_not_allowed();
        }
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.readiness.is_ready() => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            _ => self.status(),
        }
    }

    /// `/statusz`: the generation served, its kids and how reloads are going.
    fn status(&self) -> Response<Body> {
        let snapshot = self.reader.snapshot();
        let health = self.reader.health();
        let unix = |t: Option<SystemTime>| {
            t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        let body = serde_json::json!({
            "ready": self.readiness.is_ready(),
            "generation": snapshot.generation,
            "kids": snapshot.keys.kids().collect::<Vec<_>>(),
            "published_at": unix(Some(snapshot.published_at)),
            "discovery_etag": snapshot.discovery.etag_str(),
            "jwks_etag": snapshot.jwks.etag_str(),
            "last_reload_error": health.last_error,
            "failing_since": unix(health.failing_since),
            "last_successful_reload": unix(health.last_success),
        });
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, NO_STORE);
        response
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
    document: &Document,
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

/// `If-None-Match` uses the weak comparison: `W/"x"` matches `"x"`; `*` matches anything.
fn etag_matches(condition: &HeaderValue, etag: &HeaderValue) -> bool {
    let Ok(condition) = condition.to_str() else {
        return false;
    };
    let etag = etag.as_bytes();
    condition
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/").as_bytes() == etag)
}

/// The same 404 kube-apiserver (Go's `http.NotFound`) sends.
fn not_found() -> Response<Body> {
    let mut response = text(StatusCode::NOT_FOUND, "404 page not found\n");
    response
        .headers_mut()
        .insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    response
}

fn method_not_allowed() -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
    response.headers_mut().insert(ALLOW, GET_HEAD);
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
                etag_matches(&HeaderValue::from_static(condition), &etag),
                expected,
                "{condition}"
            );
        }
    }
}
