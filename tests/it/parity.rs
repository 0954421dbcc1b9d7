//! HTTP/1.1 and h2 (issuerd's own loop and engine) must answer every route alike: same status, same
//! headers (names and values, ignoring case, hop-by-hop headers and the Date value) and same body.

use crate::common;

use std::collections::BTreeMap;

use common::{Reply, TestServer, key, request, request_h2c_method};
use http::Method;

const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// Headers as a sorted map, lower-case names, hop-by-hop headers left out, `date` reduced to
/// its presence.
fn comparable(reply: &Reply) -> BTreeMap<String, Vec<String>> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &reply.headers {
        let name = name.as_str().to_ascii_lowercase();
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        let value = if name == "date" {
            "<present>".to_owned()
        } else {
            value.to_str().unwrap().to_owned()
        };
        headers.entry(name).or_default().push(value);
    }
    headers
}

/// Method, path, request headers, the expected status.
type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], u16);

#[tokio::test]
async fn every_route_answers_alike_over_http1_and_h2() {
    let k = key("ec256.pub.pem").display().to_string();
    let server = TestServer::start(&["--issuer", "https://h.example/c", "--key-file", &k]).await;
    let discovery = "/c/.well-known/openid-configuration";
    let jwks = "/c/openid/v1/jwks";
    let etag = common::get(server.addr, jwks)
        .await
        .unwrap()
        .header("etag")
        .unwrap()
        .to_owned();
    let conditional = [("if-none-match", etag.as_str())];
    let cases: Vec<Case> = vec![
        (Method::GET, discovery, &[], 200),
        (Method::GET, jwks, &[], 200),
        (Method::HEAD, jwks, &[], 200),
        (Method::GET, jwks, &conditional, 304),
        (Method::GET, jwks, &[("if-none-match", "\"other\"")], 200),
        (Method::GET, "/c/openid/v1/jwks/extra", &[], 404),
        (Method::GET, "/", &[], 404),
        (Method::POST, jwks, &[], 405),
        (Method::DELETE, "/healthz", &[], 405),
        (Method::GET, "/healthz", &[], 200),
        (Method::HEAD, "/healthz", &[], 200),
        (Method::GET, "/readyz", &[], 200),
        (Method::GET, "/statusz", &[], 200),
    ];
    for (method, path, headers, status) in cases {
        let h1 = request(server.addr, method.clone(), path, headers)
            .await
            .unwrap();
        let what = format!("{method} {path} {headers:?}");
        let h2 = request_h2c_method(server.addr, method.clone(), path, headers)
            .await
            .unwrap_or_else(|e| panic!("{what} over h2: {e:#}"));
        assert_eq!(h1.status.as_u16(), status, "{what} over HTTP/1.1");
        assert_eq!(h2.status, h1.status, "{what}: status");
        assert_eq!(comparable(&h2), comparable(&h1), "{what}: headers");
        assert_eq!(h2.body, h1.body, "{what}: body");
        assert!(h1.headers.contains_key("date"), "{what}: no date");
    }
}
