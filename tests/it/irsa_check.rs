//! `check`: every finding it reports, produced by the misconfiguration it names.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    DISCOVERY, Route, fake_issuer, key, published_jwks, refusing_port, start_local_issuer,
};
use issuerd::check::{Level, Report};

/// The doctor as the command runs it without --ca-file.
async fn check(url: &str, allow_insecure: bool) -> Report {
    issuerd::check::check(url, allow_insecure, &issuerd::trust::Trust::public()).await
}

fn discovery(issuer: &str, jwks_uri: &str) -> String {
    format!(
        r#"{{"issuer":"{issuer}","jwks_uri":"{jwks_uri}","response_types_supported":["id_token"],"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["ES256","RS256"]}}"#
    )
}

/// The fixture key's JWK as `serve` publishes it, as a JSON object.
fn jwk(file: &str) -> serde_json::Value {
    let jwks: serde_json::Value = serde_json::from_str(&published_jwks(&[file])).unwrap();
    jwks["keys"][0].clone()
}

fn jwks(keys: &[serde_json::Value]) -> String {
    serde_json::json!({ "keys": keys }).to_string()
}

/// A fake issuer serving discovery and `/jwks` with good headers unless `tweak` changes them.
async fn issuer_with(
    delay: Duration,
    tweak: impl FnOnce(&str, &mut HashMap<String, Route>),
) -> (String, tokio::task::JoinHandle<()>) {
    fake_issuer(delay, |issuer| {
        let mut routes = HashMap::from([
            (
                DISCOVERY.to_owned(),
                Route::ok(
                    "application/json",
                    discovery(issuer, &format!("{issuer}/jwks")),
                )
                .with("cache-control", "public, max-age=3600"),
            ),
            (
                "/jwks".to_owned(),
                Route::ok("application/jwk-set+json", jwks(&[jwk("ec256.pkcs8.pem")]))
                    .with("cache-control", "public, max-age=3600"),
            ),
        ]);
        tweak(issuer, &mut routes);
        routes
    })
    .await
}

fn assert_finding(report: &Report, level: Level, check: &str, needle: &str) {
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.level == level && f.check == check && f.message.contains(needle)),
        "expected {level:?} {check} containing {needle:?}:\n{report}"
    );
}

#[tokio::test]
async fn a_served_issuer_passes_with_http_as_the_only_warning() {
    let key_file = key("rsa2048.pkcs8.pem").display().to_string();
    let (server, issuer) = start_local_issuer(&["--key-file", &key_file]).await;
    let report = check(&issuer, true).await;
    assert!(report.ok, "{report}");
    assert_finding(&report, Level::Warn, "https", "local testing only");
    assert_finding(&report, Level::Pass, "issuer", "byte for byte");
    assert_finding(&report, Level::Pass, "kid", "SHA-256 thumbprint");
    assert_finding(&report, Level::Pass, "kid", "RSA 2048 bits, RS256");
    assert_finding(&report, Level::Pass, "latency", "within");
    assert_finding(&report, Level::Pass, "keys", "1 key(s)");
    let fails = report
        .findings
        .iter()
        .filter(|f| f.level != Level::Pass)
        .count();
    assert_eq!(fails, 2, "{report}");

    let strict = check(&issuer, false).await;
    assert!(!strict.ok);
    assert_finding(&strict, Level::Fail, "https", "require https");
    assert_finding(&strict, Level::Fail, "jwks_uri", "uses http");
    let json = serde_json::to_value(&strict).unwrap();
    assert_eq!(json["ok"], false);
    assert!(
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["level"] == "fail")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn issuer_not_equal_to_the_url_fails_and_names_the_slash() {
    let (issuer, task) = issuer_with(Duration::ZERO, |_, _| {}).await;
    let report = check(&format!("{issuer}/"), true).await;
    assert_finding(&report, Level::Fail, "issuer", "trailing slash");
    assert_finding(&report, Level::Warn, "url", "ends with '/'");
    task.abort();
}

#[tokio::test]
async fn anonymous_access_denied_and_unreachable_issuers_fail() {
    let (issuer, task) = issuer_with(Duration::ZERO, |_, routes| {
        routes.insert(
            DISCOVERY.into(),
            Route {
                status: 403,
                headers: vec![],
                body: "denied".into(),
            },
        );
    })
    .await;
    let report = check(&issuer, true).await;
    assert!(!report.ok);
    assert_finding(&report, Level::Fail, "discovery", "HTTP 403");
    assert_finding(&report, Level::Fail, "discovery", "anonymously");
    task.abort();

    let (_refusing, port) = refusing_port();
    let report = check(&format!("http://127.0.0.1:{port}"), true).await;
    assert_finding(&report, Level::Fail, "discovery", "cannot fetch");
}

#[tokio::test]
async fn wrong_content_types_and_cache_headers_are_reported() {
    let (issuer, task) = issuer_with(Duration::ZERO, |issuer, routes| {
        routes.insert(
            DISCOVERY.into(),
            Route::ok("text/html", discovery(issuer, &format!("{issuer}/jwks"))),
        );
        routes.insert(
            "/jwks".into(),
            Route::ok("application/json", jwks(&[jwk("ec256.pkcs8.pem")]))
                .with("cache-control", "public, max-age=604800"),
        );
    })
    .await;
    let report = check(&issuer, true).await;
    assert_finding(&report, Level::Fail, "content-type", "discovery: text/html");
    assert_finding(
        &report,
        Level::Pass,
        "content-type",
        "jwks: application/json",
    );
    assert_finding(&report, Level::Warn, "cache", "discovery: no Cache-Control");
    assert_finding(&report, Level::Warn, "cache", "7days");
    task.abort();
}

#[tokio::test]
async fn missing_members_and_unadvertised_algorithms_warn() {
    let (issuer, task) = issuer_with(Duration::ZERO, |issuer, routes| {
        routes.insert(
            DISCOVERY.into(),
            Route::ok(
                "application/json",
                format!(r#"{{"issuer":"{issuer}","jwks_uri":"{issuer}/jwks","id_token_signing_alg_values_supported":["RS256"]}}"#),
            ),
        );
    })
    .await;
    let report = check(&issuer, true).await;
    assert_finding(&report, Level::Warn, "members", "response_types_supported");
    assert_finding(&report, Level::Warn, "algorithms", "ES256");
    task.abort();
}

#[tokio::test]
async fn private_members_fail_and_foreign_kids_and_missing_alg_warn() {
    let mut private = jwk("ec256.pkcs8.pem");
    private["d"] = "AAAA".into();
    let (issuer, task) = issuer_with(Duration::ZERO, |_, routes| {
        routes.insert(
            "/jwks".into(),
            Route::ok("application/jwk-set+json", jwks(&[private])),
        );
    })
    .await;
    let report = check(&issuer, true).await;
    assert_finding(&report, Level::Fail, "private", "\"d\"");
    task.abort();

    let mut renamed = jwk("ec256.pkcs8.pem");
    renamed["kid"] = "key-1".into();
    renamed.as_object_mut().unwrap().remove("alg");
    let (issuer, task) = issuer_with(Duration::ZERO, |_, routes| {
        routes.insert(
            "/jwks".into(),
            Route::ok("application/jwk-set+json", jwks(&[renamed])),
        );
    })
    .await;
    let report = check(&issuer, true).await;
    assert!(report.ok, "{report}");
    assert_finding(
        &report,
        Level::Warn,
        "kid",
        "\"key-1\" (EC P-256, ES256) is not its SHA-256 thumbprint",
    );
    assert_finding(&report, Level::Warn, "alg", "no \"alg\"");
    task.abort();
}

#[tokio::test]
async fn a_small_rsa_key_fails() {
    // A 1024-bit RSA JWK: refused by kube-apiserver's rules and issuerd's.
    let small = serde_json::json!({"kty": "RSA", "kid": "small", "alg": "RS256", "use": "sig",
        "n": "wHh5yXyT0s8Ji0kkRu7ARU0wEOSv8xdCvQuS2H8tpXvEzHmUOEpbvWr3Nq21xVvFt4IeAp62hl_yGMn4i2hf8-zxpQHU9xTTVB0hZ2DpNYz7E0c9iWcUv1-VTUGUXOJffpvwVOSmzKZZgtbAfiyb0ReevREbmkAD1LVJpLqsGhk",
        "e": "AQAB"});
    let (issuer, task) = issuer_with(Duration::ZERO, |_, routes| {
        routes.insert(
            "/jwks".into(),
            Route::ok("application/jwk-set+json", jwks(&[small])),
        );
    })
    .await;
    let report = check(&issuer, true).await;
    assert_finding(&report, Level::Fail, "keys", "at least 2048");
    task.abort();
}

#[tokio::test]
async fn a_slow_issuer_is_warned_about() {
    // 1.3 s per document: 2.6 s in all, past half of STS's 5 s budget.
    let (issuer, task) = issuer_with(Duration::from_millis(1300), |_, _| {}).await;
    let report = check(&issuer, true).await;
    assert_finding(
        &report,
        Level::Warn,
        "latency",
        "close to AWS STS's ~5 s budget",
    );
    task.abort();
}

#[tokio::test]
async fn urls_relying_parties_refuse_are_named() {
    let report = check("https://127.0.0.1:1/?x=1", false).await;
    assert_finding(&report, Level::Warn, "url", "port");
    assert_finding(&report, Level::Fail, "url", "query");
    let report = check("not a url", false).await;
    assert_finding(&report, Level::Fail, "url", "not an absolute URL");
}

#[tokio::test]
async fn an_algorithm_that_does_not_fit_its_key_fails() {
    let mut wrong = jwk("ec256.pkcs8.pem");
    wrong["alg"] = "ES384".into();
    let (issuer, task) = issuer_with(Duration::ZERO, |_, routes| {
        routes.insert(
            "/jwks".into(),
            Route::ok("application/jwk-set+json", jwks(&[wrong])),
        );
    })
    .await;
    let report = check(&issuer, true).await;
    assert_finding(&report, Level::Fail, "keys", "does not match its key");
    task.abort();
}
