//! A local AWS STS endpoint for IRSA testing: the Query API action `AssumeRoleWithWebIdentity`
//! (POST form or GET, unsigned as in AWS) that really verifies the token against its issuer and
//! really evaluates the role's trust policy, answering with AWS's XML, codes and statuses.
//!
//! # Layout
//! - [`roles`]: the `--roles` file (IAM OIDC providers and roles).
//! - [`policy`]: trust policy parsing and evaluation.
//! - [`key_cache`]: issuer keys fetched over HTTP, cached (moka), refetched on an unknown kid.
//! - [`service`]: request parameters -> answer.
//! - [`response`]: XML documents, error codes, credentials.
//!
//! The listener is a small hyper HTTP/1.1 server of its own, separate from the issuer's.

pub mod key_cache;
pub mod policy;
pub mod response;
pub mod roles;
pub mod service;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tracing::info;

pub use self::service::Sts;
use crate::{listener, shutdown};

/// Largest request body read (a token is at most 20 000 characters).
const MAX_BODY: usize = 64 * 1024;
/// Time a client has to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves STS on `listener` until `shutdown` fires, then lets in-flight requests finish for at
/// most `grace`.
pub async fn serve(
    listener: TcpListener,
    sts: Arc<Sts>,
    shutdown: shutdown::Signal,
    grace: Duration,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(listen = %addr, "STS ready");
    }
    listener::accept_until_shutdown("sts", listener, shutdown, grace, move |stream, shutdown| {
        let sts = Arc::clone(&sts);
        listener::serve_http1(
            "sts",
            stream,
            HEADER_READ_TIMEOUT,
            move |request| {
                let sts = Arc::clone(&sts);
                async move { handle(&sts, request).await }
            },
            shutdown,
        )
    })
    .await;
}

/// One request: the Query API over GET (query string) or POST (form body).
pub async fn handle(sts: &Sts, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let mut params: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    match parts.method {
        Method::GET => {}
        Method::POST => {
            let body = match Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
            };
            params.extend(url::form_urlencoded::parse(&body).into_owned());
        }
        _ => return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n"),
    }
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let answer = sts.answer(&params, authorization).await;
    Response::builder()
        .status(answer.status)
        .header(header::CONTENT_TYPE, "text/xml")
        .header("x-amzn-requestid", request_id_of(&answer.body))
        .body(Full::new(Bytes::from(answer.body)))
        .expect("static headers are valid")
}

fn request_id_of(body: &str) -> String {
    body.split("<RequestId>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default()
        .to_owned()
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("static headers are valid")
}
