//! The server over a real socket on 127.0.0.1:0: routes, status codes, headers, ETag/304, HEAD,
//! queries, path prefixes, h2c, readiness and graceful stop.

use crate::common;

use common::{TestServer, get, golden, key, request, request_h2c};
use http::{Method, StatusCode};

const ISSUER: &str = "https://issuer.example.com/clusters/a";
const DISCOVERY: &str = "/clusters/a/.well-known/openid-configuration";
const JWKS: &str = "/clusters/a/openid/v1/jwks";

async fn all_keys_server() -> TestServer {
    let keys: Vec<String> = ["rsa2048", "rsa3072", "rsa4096", "ec256", "ec384", "ec521"]
        .iter()
        .map(|k| key(&format!("{k}.pub.pem")).display().to_string())
        .collect();
    let mut args = vec!["--issuer", ISSUER];
    for k in &keys {
        args.extend(["--key-file", k.as_str()]);
    }
    TestServer::start(&args).await
}

#[tokio::test]
async fn serves_kube_apiserver_bytes_and_headers() {
    let server = all_keys_server().await;
    for (path, golden_file, content_type) in [
        (DISCOVERY, "discovery.json", "application/json"),
        (JWKS, "jwks.json", "application/jwk-set+json"),
    ] {
        let reply = get(server.addr, path).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.body.to_vec(), golden("all", golden_file), "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type));
        assert_eq!(reply.header("cache-control"), Some("public, max-age=3600"));
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            reply.header("content-length"),
            Some(reply.body.len().to_string().as_str())
        );
        let etag = reply.header("etag").unwrap();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
            "{etag}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn if_none_match_gives_304_without_body() {
    let server = all_keys_server().await;
    let first = get(server.addr, JWKS).await.unwrap();
    let etag = first.header("etag").unwrap().to_owned();
    for condition in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".into(),
    ] {
        let reply = request(
            server.addr,
            Method::GET,
            JWKS,
            &[("if-none-match", &condition)],
        )
        .await
        .unwrap();
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{condition}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("etag"), Some(etag.as_str()));
        assert_eq!(reply.header("cache-control"), Some("public, max-age=3600"));
    }
    let stale = request(
        server.addr,
        Method::GET,
        JWKS,
        &[("if-none-match", "\"stale\"")],
    )
    .await
    .unwrap();
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, first.body);
    // The discovery document has its own ETag.
    let discovery = get(server.addr, DISCOVERY).await.unwrap();
    assert_ne!(discovery.header("etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn head_has_headers_and_no_body() {
    let server = all_keys_server().await;
    let full = get(server.addr, JWKS).await.unwrap();
    let head = request(server.addr, Method::HEAD, JWKS, &[]).await.unwrap();
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(full.body.len().to_string().as_str())
    );
    assert_eq!(
        head.header("content-type"),
        Some("application/jwk-set+json")
    );
    assert_eq!(head.header("etag"), full.header("etag"));
}

#[tokio::test]
async fn queries_are_ignored_and_other_paths_are_404() {
    let server = all_keys_server().await;
    let plain = get(server.addr, JWKS).await.unwrap();
    let query = get(server.addr, &format!("{JWKS}?foo=bar")).await.unwrap();
    assert_eq!(query.status, StatusCode::OK);
    assert_eq!(query.body, plain.body);
    let query = get(server.addr, &format!("{DISCOVERY}?x")).await.unwrap();
    assert_eq!(query.status, StatusCode::OK);

    for path in [
        "/clusters/a/.well-known",
        "/clusters/a/openid/v1/jwks/foo",
        "/clusters/a/openid/v1/jwks/",
        "/.well-known/openid-configuration",
        "/openid/v1/jwks",
        "/clusters/a",
        "/",
        "/favicon.ico",
    ] {
        let reply = get(server.addr, path).await.unwrap();
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(&reply.body[..], b"404 page not found\n");
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let server = all_keys_server().await;
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ] {
        for path in [JWKS, DISCOVERY] {
            let reply = request(server.addr, method.clone(), path, &[])
                .await
                .unwrap();
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        }
    }
}

#[tokio::test]
async fn a_root_issuer_serves_at_the_root() {
    let key = key("ec256.pkcs8.pem").display().to_string();
    let server = TestServer::start(&["--issuer", "https://h.example", "--key-file", &key]).await;
    let discovery = get(server.addr, "/.well-known/openid-configuration")
        .await
        .unwrap();
    assert_eq!(discovery.status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_slice(&discovery.body).unwrap();
    assert_eq!(doc["issuer"], "https://h.example");
    assert_eq!(doc["jwks_uri"], "https://h.example/openid/v1/jwks");
    assert_eq!(
        get(server.addr, "/openid/v1/jwks").await.unwrap().status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn jwks_uri_override_moves_the_jwks_route_and_max_age_changes_cache_control() {
    let key = key("ec256.pub.pem").display().to_string();
    let server = TestServer::start(&[
        "--issuer",
        "https://h.example",
        "--jwks-uri",
        "https://h.example/keys",
        "--max-age",
        "60",
        "--key-file",
        &key,
    ])
    .await;
    let jwks = get(server.addr, "/keys").await.unwrap();
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(
        get(server.addr, "/openid/v1/jwks").await.unwrap().status,
        StatusCode::NOT_FOUND
    );
    let doc: serde_json::Value = serde_json::from_slice(
        &get(server.addr, "/.well-known/openid-configuration")
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(doc["jwks_uri"], "https://h.example/keys");
}

#[tokio::test]
async fn h2c_serves_the_same_bytes() {
    let server = all_keys_server().await;
    let reply = request_h2c(server.addr, JWKS).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.to_vec(), golden("all", "jwks.json"));
    assert_eq!(
        reply.header("content-type"),
        Some("application/jwk-set+json")
    );
}

#[tokio::test]
async fn health_readiness_and_status() {
    let server = all_keys_server().await;
    assert_eq!(
        get(server.addr, "/healthz").await.unwrap().status,
        StatusCode::OK
    );
    assert_eq!(
        get(server.addr, "/readyz").await.unwrap().status,
        StatusCode::OK
    );
    let status = get(server.addr, "/statusz").await.unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["generation"], 1);
    assert_eq!(status["kids"].as_array().unwrap().len(), 6);
    assert!(status["last_reload_error"].is_null());
    assert_eq!(
        request(server.addr, Method::POST, "/healthz", &[])
            .await
            .unwrap()
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn stop_drains_and_closes_the_listener() {
    let server = all_keys_server().await;
    let addr = server.addr;
    server.stop().await.unwrap();
    assert!(
        get(addr, "/readyz").await.is_err(),
        "still accepting after stop"
    );
}
