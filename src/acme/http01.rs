//! The http-01 answer (RFC 8555 §8.3) on a plain HTTP listener: `GET
//! /.well-known/acme-challenge/<token>` answers the key authorization while an order waits for
//! it; every other request is a 404. The listener serves nothing else.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tracing::info;

use crate::{listener, shutdown};

/// The path prefix of http-01 tokens.
pub const PREFIX: &str = "/.well-known/acme-challenge/";
/// Time a client has to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The tokens being answered: token -> key authorization. Shared by the ACME task (writes) and
/// the listener (reads).
#[derive(Clone, Debug, Default)]
pub struct Http01Tokens {
    tokens: Arc<RwLock<HashMap<String, String>>>,
}

impl Http01Tokens {
    /// Answers `token` with `key_authorization` until removed.
    pub fn set(&self, token: &str, key_authorization: &str) {
        self.write()
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stops answering `token`.
    pub fn remove(&self, token: &str) {
        self.write().remove(token);
    }

    /// Stops answering every token.
    pub fn clear(&self) {
        self.write().clear();
    }

    fn get(&self, token: &str) -> Option<String> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, String>> {
        self.tokens.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the tokens on `listener` until `shutdown`, then drains for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    tokens: Http01Tokens,
    shutdown: shutdown::Signal,
    grace: Duration,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(listen = %addr, "ACME http-01 listener ready");
    }
    listener::accept_until_shutdown(
        "acme-http-01",
        listener,
        shutdown,
        grace,
        move |stream, shutdown| {
            let tokens = tokens.clone();
            listener::serve_http1(
                "acme-http-01",
                stream,
                HEADER_READ_TIMEOUT,
                move |request| std::future::ready(answer(&tokens, &request)),
                shutdown,
            )
        },
    )
    .await;
}

/// The key authorization of a known token, else 404.
fn answer(tokens: &Http01Tokens, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let known = matches!(*request.method(), Method::GET | Method::HEAD)
        .then(|| request.uri().path().strip_prefix(PREFIX))
        .flatten()
        .and_then(|token| tokens.get(token));
    let (status, body) = match known {
        Some(key_authorization) => (StatusCode::OK, key_authorization),
        None => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from(body)))
        .expect("static headers are valid")
}
