//! The answer checks, the token file and the status, without a network.

use std::time::Duration;

use serde_json::{Value, json};

use super::ApiServerError;
use super::answer::parse;
use super::endpoint::Token;
use super::status::ApiServerStatus;
use crate::document::Documents;
use crate::issuer::{DiscoveryProfile, Issuer, Publication};
use crate::keys::{KeySet, PublicKey, Reason};
use crate::store::FailureCause;

const EC256: &str = include_str!("../../tests/fixtures/keys/ec256.pub.pem");
const RSA2048: &str = include_str!("../../tests/fixtures/keys/rsa2048.pub.pem");

const ISSUER: &str = "https://oidc.example.com/cluster";
const DISCOVERY_URL: &str = "https://10.0.0.1/.well-known/openid-configuration";
const JWKS_URL: &str = "https://10.0.0.1/openid/v1/jwks";

fn keys(pems: &[&str]) -> KeySet {
    KeySet::from_public_keys(
        pems.iter()
            .flat_map(|p| PublicKey::from_pem(p.as_bytes()).unwrap())
            .collect(),
    )
    .unwrap()
}

/// The documents kube-apiserver serves for `keys`, as issuerd renders them.
fn documents(keys: &KeySet) -> (Vec<u8>, Vec<u8>) {
    let publication = Publication {
        issuer: Issuer::new(ISSUER, Some("https://10.0.0.1:6443/openid/v1/jwks"), false).unwrap(),
        profile: DiscoveryProfile::Kubernetes,
        max_age_secs: 3600,
    };
    let Documents { discovery, jwks } = Documents::render(&publication, keys);
    (discovery.body.to_vec(), jwks.body.to_vec())
}

fn with_jwk(jwks: &[u8], change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut document: Value = serde_json::from_slice(jwks).unwrap();
    change(document["keys"][0].as_object_mut().unwrap());
    serde_json::to_vec(&document).unwrap()
}

#[test]
fn the_cluster_documents_give_its_issuer_and_keys() {
    let served = keys(&[EC256, RSA2048]);
    let (discovery, jwks) = documents(&served);
    let cluster = parse(&discovery, DISCOVERY_URL, &jwks, JWKS_URL).unwrap();
    assert_eq!(cluster.issuer, ISSUER);
    assert_eq!(
        cluster.jwks_uri.as_deref(),
        Some("https://10.0.0.1:6443/openid/v1/jwks")
    );
    assert_eq!(cluster.keys, served);
}

#[test]
fn a_jwk_with_a_private_member_is_refused_and_named() {
    let (discovery, jwks) = documents(&keys(&[EC256]));
    let jwks = with_jwk(&jwks, |jwk| {
        jwk.insert("d".into(), json!("AAAA"));
    });
    let error = parse(&discovery, DISCOVERY_URL, &jwks, JWKS_URL).unwrap_err();
    assert!(
        matches!(&error, ApiServerError::Key { reason: Reason::PrivateJwk(m), .. } if m == "d"),
        "{error:?}"
    );
    assert_eq!(error.kind(), "private_key");
    assert_eq!(error.cause(), FailureCause::Rejected);
    let message = error.to_string();
    assert!(
        message.contains(JWKS_URL) && message.contains("JWK #1") && message.contains("\"d\""),
        "{message}"
    );
}

#[test]
fn a_kid_other_than_kubes_is_refused() {
    let (discovery, jwks) = documents(&keys(&[EC256]));
    let jwks = with_jwk(&jwks, |jwk| {
        jwk.insert("kid".into(), json!("my-key"));
    });
    let error = parse(&discovery, DISCOVERY_URL, &jwks, JWKS_URL).unwrap_err();
    assert!(
        matches!(&error, ApiServerError::Key { reason: Reason::KidMismatch { kid, .. }, .. } if kid == "my-key"),
        "{error:?}"
    );
    let jwks = with_jwk(&documents(&keys(&[EC256])).1, |jwk| {
        jwk.remove("kid");
    });
    let error = parse(&discovery, DISCOVERY_URL, &jwks, JWKS_URL).unwrap_err();
    assert!(error.to_string().contains("has no kid"), "{error}");
}

#[test]
fn weak_or_foreign_keys_are_refused_as_in_files() {
    let (discovery, _) = documents(&keys(&[EC256]));
    let ed25519 = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k"}]}"#;
    let error = parse(&discovery, DISCOVERY_URL, ed25519, JWKS_URL).unwrap_err();
    assert!(
        matches!(
            &error,
            ApiServerError::Key {
                reason: Reason::UnsupportedAlgorithm(_),
                ..
            }
        ),
        "{error:?}"
    );
    let empty = br#"{"keys":[]}"#;
    let error = parse(&discovery, DISCOVERY_URL, empty, JWKS_URL).unwrap_err();
    assert_eq!(error.cause(), FailureCause::NoKeys);
}

#[test]
fn a_discovery_document_without_an_issuer_is_refused() {
    let (_, jwks) = documents(&keys(&[EC256]));
    for (body, reason) in [
        (&b"<html>login</html>"[..], "not JSON"),
        (br#"{"jwks_uri":"https://x"}"#, "no \"issuer\""),
        (br#"{"issuer":7}"#, "not a string"),
    ] {
        let error = parse(body, DISCOVERY_URL, &jwks, JWKS_URL).unwrap_err();
        assert!(
            matches!(&error, ApiServerError::Invalid { .. }) && error.to_string().contains(reason),
            "{error}"
        );
        assert!(error.to_string().contains(DISCOVERY_URL), "{error}");
    }
}

#[test]
fn the_token_file_is_read_each_time_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let token = Token::File(path.clone());
    assert!(matches!(token.read(), Err(ApiServerError::ReadFile { .. })));
    std::fs::write(&path, "first\n").unwrap();
    assert_eq!(token.read().unwrap(), "first");
    std::fs::write(&path, "second").unwrap();
    assert_eq!(token.read().unwrap(), "second");
    for bad in ["", "  \n", "two words", "line\nbreak"] {
        std::fs::write(&path, bad).unwrap();
        let error = token.read().unwrap_err();
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }
    // Never in a Debug string.
    assert_eq!(
        format!("{:?}", Token::Inline("secret".into())),
        "Inline(<redacted>)"
    );
}

#[test]
fn staleness_holds_readiness_and_shows_in_the_status() {
    let status = ApiServerStatus::new(
        JWKS_URL.into(),
        "in-cluster".into(),
        ISSUER.into(),
        vec!["a".into()],
        Duration::from_millis(50),
    );
    assert!(status.not_ready().is_none());
    status.failed("forbidden", "the API server forbids ...".into());
    let json = status.to_json();
    assert_eq!(json["error"], "forbidden");
    assert_eq!(json["failed_polls"], 1);
    assert!(json["failing_since"].is_u64());
    // Failing, but not stale yet: still ready.
    assert!(status.not_ready().is_none());
    std::thread::sleep(Duration::from_millis(80));
    assert!(status.not_ready().is_some());
    assert_eq!(status.to_json()["stale"], true);
    status.succeeded(vec!["b".into()], true);
    assert!(status.not_ready().is_none());
    let json = status.to_json();
    assert_eq!(json["error"], Value::Null);
    assert_eq!(json["kids"], json!(["b"]));
    assert_eq!(json["not_modified"], 1);
}
