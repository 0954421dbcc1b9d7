//! The webhook's HTTP surface: `POST /mutate` (AdmissionReview JSON in and out), `/healthz`,
//! `/readyz`, and `/metrics` on the admin listener: requests -> responses, for the small hyper
//! HTTP/1.1 server `app` runs over TLS.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;

use super::Webhook;

use crate::shutdown::Readiness;

/// The path the API server posts to (the EKS webhook's).
pub const MUTATE_PATH: &str = "/mutate";
/// Largest AdmissionReview read. The API server stores objects of at most 1.5 MiB (etcd's
/// request limit) and a pod CREATE carries one, so 3 MiB holds any real review. Decoded, JSON
/// can take ~16 times its size: the in-flight bound below keeps the product small.
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// Time a client has to send the body once its head arrived.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a request waits for one of the in-flight slots before it is refused (503).
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// How many admissions are read and answered at once. An admission is tens of microseconds of
/// CPU on memory, so four keep two cores busy; more would only multiply what the largest bodies
/// take decoded (up to ~16 times their 3 MiB: the Deployment's 256 MiB limit holds four).
pub const IN_FLIGHT: usize = 4;

/// One request on the admin listener: `/metrics`, `/healthz`, `/readyz`.
pub fn admin(
    webhook: &Webhook,
    readiness: &Readiness,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => Response::builder()
            .header(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )
            .body(Full::new(Bytes::from(webhook.metrics.encode())))
            .expect("static headers are valid"),
        _ => health(readiness, request)
            .unwrap_or_else(|| plain(StatusCode::NOT_FOUND, "not found\n")),
    }
}

/// One request on the webhook listener.
pub async fn handle(
    webhook: &Webhook,
    readiness: &Readiness,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.uri().path() != MUTATE_PATH {
        return health(readiness, &request)
            .unwrap_or_else(|| plain(StatusCode::NOT_FOUND, "not found\n"));
    }
    if request.method() != Method::POST {
        let mut answer = plain(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview\n");
        answer
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
        return answer;
    }
    if !is_json(request.headers().get(header::CONTENT_TYPE)) {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "an AdmissionReview is sent as Content-Type: application/json\n",
        );
    }
    // A slot first: what a peer can make the webhook hold at once is the slots' bodies.
    let Ok(Ok(_slot)) = tokio::time::timeout(QUEUE_TIMEOUT, webhook.in_flight.acquire()).await
    else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many admissions at once\n",
        );
    };
    let body = Limited::new(request.into_body(), MAX_BODY).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, body).await {
        Err(_) => return plain(StatusCode::REQUEST_TIMEOUT, "the body took too long\n"),
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "AdmissionReview too large\n");
        }
        Ok(Err(_)) => return plain(StatusCode::BAD_REQUEST, "cannot read the request body\n"),
    };
    let started = Instant::now();
    let admitted = webhook.admit(&body).await;
    webhook
        .metrics
        .admitted(admitted.outcome, started.elapsed());
    let mut answer = Response::builder().header(header::CONTENT_TYPE, "application/json");
    if !readiness.is_ready() {
        // Draining: the API server's pooled connection closes after this answer, so its next
        // admission opens one to a replica that stays, instead of racing this one's close.
        answer = answer.header(header::CONNECTION, "close");
    }
    answer
        .body(Full::new(Bytes::from(admitted.body)))
        .expect("static headers are valid")
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// `/healthz` (the process answers) and `/readyz` (serving, not draining), as `serve` has them.
fn health(readiness: &Readiness, request: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return None;
    }
    match request.uri().path() {
        "/healthz" => Some(plain(StatusCode::OK, "ok\n")),
        "/readyz" if readiness.is_ready() => Some(plain(StatusCode::OK, "ready\n")),
        "/readyz" => Some(plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")),
        _ => None,
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_type_with_parameters() {
        let v = |s: &'static str| header::HeaderValue::from_static(s);
        assert!(is_json(Some(&v("application/json"))));
        assert!(is_json(Some(&v("application/json; charset=utf-8"))));
        assert!(is_json(Some(&v("Application/JSON"))));
        assert!(!is_json(Some(&v("application/yaml"))));
        assert!(!is_json(Some(&v("text/plain"))));
        assert!(!is_json(None));
    }
}
