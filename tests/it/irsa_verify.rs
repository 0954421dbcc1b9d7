//! `mint` and `verify`: tokens minted for every key type verify against a running `serve`, and
//! every diagnosis `verify` prints is produced by the failure it names.

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use common::{
    Route, TestServer, fake_issuer, key, published_jwks, refusing_port, start_local_issuer,
};
use issuerd::keys::PublicKey;
use issuerd::token::claims::{Subject, unix};
use issuerd::token::fetch::{FetchError, Fetcher};
use issuerd::token::mint::{MintRequest, mint};
use issuerd::token::signing_key::SigningKey;
use issuerd::token::verify::{VerifyError, verify_with_issuer};

const AUD: &str = "sts.amazonaws.com";

/// `serve` with the given fixture keys on 127.0.0.1:PORT, issuer `http://127.0.0.1:PORT`.
async fn serve(keys: &[&str]) -> (TestServer, String) {
    let paths: Vec<String> = keys.iter().map(|k| key(k).display().to_string()).collect();
    let mut args = Vec::new();
    for path in &paths {
        args.extend(["--key-file", path.as_str()]);
    }
    start_local_issuer(&args).await
}

fn request(issuer: &str) -> MintRequest {
    MintRequest {
        issuer: issuer.to_owned(),
        subject: Subject::parse("ns/app").unwrap(),
        audiences: vec![AUD.to_owned()],
        ttl: Duration::from_secs(3600),
        not_before: None,
        pod: Some("app-0".into()),
        service_account_uid: None,
    }
}

fn signing_key(file: &str) -> SigningKey {
    SigningKey::load(&key(file)).unwrap()
}

fn token(file: &str, request: &MintRequest) -> String {
    mint(&signing_key(file), request).unwrap()
}

async fn verify(
    token: &str,
    issuer: &str,
    local: Option<&PublicKey>,
) -> Result<String, VerifyError> {
    let fetcher = Fetcher::new(
        Duration::from_secs(5),
        true,
        &issuerd::trust::Trust::public(),
    )
    .unwrap();
    verify_with_issuer(
        &fetcher,
        token,
        issuer,
        &[AUD.to_owned()],
        local,
        unix(SystemTime::now()),
    )
    .await
    .map(|v| v.kid)
}

async fn failure(token: &str, issuer: &str) -> (VerifyError, String) {
    let error = verify(token, issuer, None)
        .await
        .expect_err("must not verify");
    let text = error.to_string();
    (error, text)
}

#[tokio::test]
async fn tokens_minted_for_every_key_type_verify() {
    let keys = [
        "rsa2048.pkcs8.pem",
        "rsa3072.pkcs1.pem",
        "ec256.sec1.pem",
        "ec384.pkcs8.pem",
        "ec521.sec1.pem",
        "ec521.pkcs8.pem",
    ];
    let (server, issuer) = serve(&keys).await;
    for file in keys {
        let key = signing_key(file);
        let token = mint(&key, &request(&issuer)).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&base64_decode(token.split('.').next().unwrap())).unwrap();
        assert_eq!(header["kid"], key.public_key().kid(), "{file}");
        assert_eq!(header["alg"], key.algorithm().name(), "{file}");
        assert_eq!(header.as_object().unwrap().len(), 2, "{file}: {header}");
        let kid = verify(&token, &issuer, None)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(kid, key.public_key().kid());
    }
    server.stop().await.unwrap();
}

fn base64_decode(part: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap()
}

#[tokio::test]
async fn issuer_mismatches_show_both_strings_and_call_out_the_slash() {
    let (server, issuer) = serve(&["rsa2048.pkcs8.pem"]).await;
    let slashed = format!("{issuer}/");
    let slashed_token = token("rsa2048.pkcs8.pem", &request(&slashed));
    let (error, text) = failure(&slashed_token, &issuer).await;
    assert!(
        matches!(error, VerifyError::IssuerMismatch { .. }),
        "{text}"
    );
    assert!(
        text.contains(&format!("{issuer:?}")) && text.contains(&format!("{slashed:?}")),
        "{text}"
    );
    assert!(text.contains("trailing slash"), "{text}");

    // --issuer given with the slash too: the discovery document (at the same place) disagrees.
    let (error, text) = failure(&slashed_token, &slashed).await;
    assert!(
        matches!(
            error,
            VerifyError::IssuerMismatch {
                expected_what: "the discovery document's issuer",
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("trailing slash"), "{text}");

    let other = token("rsa2048.pkcs8.pem", &request("https://elsewhere.example"));
    let (_, text) = failure(&other, &issuer).await;
    assert!(!text.contains("trailing slash"), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_kid_lists_the_published_kids_and_the_local_key_s_kid() {
    let (server, issuer) = serve(&["rsa2048.pkcs8.pem", "ec256.pkcs8.pem"]).await;
    let token = token("ec384.pkcs8.pem", &request(&issuer));
    let published: Vec<String> = ["rsa2048.pkcs8.pem", "ec256.pkcs8.pem"]
        .iter()
        .map(|f| signing_key(f).public_key().kid().to_owned())
        .collect();
    let (error, text) = failure(&token, &issuer).await;
    assert!(matches!(error, VerifyError::UnknownKid { .. }), "{text}");
    for kid in &published {
        assert!(text.contains(kid.as_str()), "{text}");
    }
    let local = signing_key("ec384.pkcs8.pem").public_key().clone();
    let text = verify(&token, &issuer, Some(&local))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(&format!(
            "the key given with --key has this kid ({})",
            local.kid()
        )),
        "{text}"
    );

    // Signed by a published key under a kid computed some other way.
    let rsa = signing_key("rsa2048.pkcs8.pem");
    let odd = rsa
        .sign(
            &request(&issuer).claims(SystemTime::now()),
            Some("my-own-kid"),
        )
        .unwrap();
    let text = verify(&odd, &issuer, Some(rsa.public_key()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("not computed as kube-apiserver computes it"),
        "{text}"
    );

    // An empty kid is not a missing one.
    let empty = rsa
        .sign(&request(&issuer).claims(SystemTime::now()), Some(""))
        .unwrap();
    let (error, text) = failure(&empty, &issuer).await;
    assert!(matches!(error, VerifyError::EmptyKid { .. }), "{text}");
    assert!(text.contains("kid is empty"), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_foreign_key_reusing_a_published_kid_is_a_bad_signature() {
    let (server, issuer) = serve(&["rsa2048.pkcs8.pem", "ec256.pkcs8.pem"]).await;
    let published = signing_key("rsa2048.pkcs8.pem")
        .public_key()
        .kid()
        .to_owned();
    let claims = request(&issuer).claims(SystemTime::now());
    let forged = signing_key("rsa3072.pkcs8.pem")
        .sign(&claims, Some(&published))
        .unwrap();
    let (error, text) = failure(&forged, &issuer).await;
    assert!(matches!(error, VerifyError::BadSignature { .. }), "{text}");

    // An EC signature under the RSA key's kid: the algorithm does not fit the key.
    let mismatched = signing_key("ec256.pkcs8.pem")
        .sign(&claims, Some(&published))
        .unwrap();
    let (error, text) = failure(&mismatched, &issuer).await;
    assert!(
        matches!(error, VerifyError::AlgorithmMismatch { .. }),
        "{text}"
    );
    assert!(text.contains("ES256") && text.contains("RS256"), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn time_diagnoses_show_both_times() {
    let (server, issuer) = serve(&["ec256.pkcs8.pem"]).await;
    let mut expired = request(&issuer);
    expired.not_before = Some(SystemTime::now() - Duration::from_secs(7200));
    let (error, text) = failure(&token("ec256.pkcs8.pem", &expired), &issuer).await;
    let VerifyError::Expired { exp, now } = error else {
        panic!("{text}")
    };
    assert!(now - exp >= 3599, "{text}");
    assert!(
        text.contains(&format!("({exp})")) && text.contains(&format!("({now})")),
        "{text}"
    );
    assert!(text.contains("exp is 20"), "{text}");

    let mut early = request(&issuer);
    early.not_before = Some(SystemTime::now() + Duration::from_secs(600));
    let (error, text) = failure(&token("ec256.pkcs8.pem", &early), &issuer).await;
    assert!(matches!(error, VerifyError::NotYetValid { .. }), "{text}");
    assert!(text.contains("nbf is"), "{text}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_audience_shows_both_values() {
    let (server, issuer) = serve(&["ec256.pkcs8.pem"]).await;
    let mut wrong = request(&issuer);
    wrong.audiences = vec!["vault".into()];
    let (error, text) = failure(&token("ec256.pkcs8.pem", &wrong), &issuer).await;
    assert!(matches!(error, VerifyError::WrongAudience { .. }), "{text}");
    assert!(
        text.contains("[\"vault\"]") && text.contains("[\"sts.amazonaws.com\"]"),
        "{text}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn http_is_refused_unless_allowed() {
    let (server, issuer) = serve(&["ec256.pkcs8.pem"]).await;
    let token = token("ec256.pkcs8.pem", &request(&issuer));
    let strict = Fetcher::new(
        Duration::from_secs(5),
        false,
        &issuerd::trust::Trust::public(),
    )
    .unwrap();
    let error = verify_with_issuer(&strict, &token, &issuer, &[], None, unix(SystemTime::now()))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, VerifyError::Fetch(FetchError::Insecure { .. })),
        "{text}"
    );
    assert!(
        text.contains("uses http") && text.contains("--allow-insecure"),
        "{text}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_tokens_and_unreachable_issuers_are_named() {
    let (error, text) = failure("not-a-jwt", "http://127.0.0.1:9").await;
    assert!(matches!(error, VerifyError::Malformed(_)), "{text}");

    let (_refusing, port) = refusing_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let (error, text) = failure(&token("ec256.pkcs8.pem", &request(&issuer)), &issuer).await;
    assert!(
        matches!(error, VerifyError::Fetch(FetchError::Unreachable { .. })),
        "{text}"
    );
}

// === a misconfigured issuer ===

/// An issuer whose discovery document and JWKS are served with these Content-Types.
async fn issuer_serving(
    discovery_type: &'static str,
    jwks_type: &'static str,
) -> (String, tokio::task::JoinHandle<()>) {
    let jwks = published_jwks(&["ec256.pkcs8.pem"]);
    fake_issuer(Duration::ZERO, |issuer| {
        HashMap::from([
            (
                "/.well-known/openid-configuration".to_owned(),
                Route::ok(
                    discovery_type,
                    format!(r#"{{"issuer":"{issuer}","jwks_uri":"{issuer}/jwks"}}"#),
                ),
            ),
            ("/jwks".to_owned(), Route::ok(jwks_type, jwks)),
        ])
    })
    .await
}

#[tokio::test]
async fn wrong_content_types_are_named() {
    let (issuer, task) = issuer_serving("text/plain", "application/jwk-set+json").await;
    let (error, text) = failure(&token("ec256.pkcs8.pem", &request(&issuer)), &issuer).await;
    assert!(
        matches!(
            error,
            VerifyError::ContentType {
                what: "discovery document",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("text/plain") && text.contains("application/json"),
        "{text}"
    );
    task.abort();

    let (issuer, task) = issuer_serving("application/json", "application/octet-stream").await;
    let (error, text) = failure(&token("ec256.pkcs8.pem", &request(&issuer)), &issuer).await;
    assert!(
        matches!(error, VerifyError::ContentType { what: "JWKS", .. }),
        "{text}"
    );
    task.abort();
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_is_a_mismatch() {
    let (issuer, task) = fake_issuer(Duration::ZERO, |issuer| {
        HashMap::from([(
            "/.well-known/openid-configuration".to_owned(),
            Route::ok(
                "application/json",
                format!(r#"{{"issuer":"https://internal.example","jwks_uri":"{issuer}/jwks"}}"#),
            ),
        )])
    })
    .await;
    let (error, text) = failure(&token("ec256.pkcs8.pem", &request(&issuer)), &issuer).await;
    assert!(
        matches!(error, VerifyError::IssuerMismatch { .. }),
        "{text}"
    );
    assert!(text.contains("https://internal.example"), "{text}");
    task.abort();
}

#[tokio::test]
async fn a_discovery_document_that_is_not_there_is_named() {
    let (issuer, task) = fake_issuer(Duration::ZERO, |_| HashMap::new()).await;
    let (error, text) = failure(&token("ec256.pkcs8.pem", &request(&issuer)), &issuer).await;
    assert!(
        matches!(
            error,
            VerifyError::Fetch(FetchError::Status { status: 404, .. })
        ),
        "{text}"
    );
    task.abort();
}

// === the binary ===

#[tokio::test]
async fn mint_out_writes_a_0600_token_file_and_verify_exits_non_zero_with_a_diagnosis() {
    use std::os::unix::fs::PermissionsExt as _;
    let (server, issuer) = serve(&["ec256.pkcs8.pem"]).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("token");
    let bin = env!("CARGO_BIN_EXE_issuerd");
    let key_path = key("ec256.pkcs8.pem");
    let status = std::process::Command::new(bin)
        .args(["mint", "--key"])
        .arg(&key_path)
        .args([
            "--issuer",
            &issuer,
            "--subject",
            "system:serviceaccount:ns:app",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // `verify` gives up within its 5 s fetch timeout, so waiting for it is bounded.
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
                .args(args)
                .output()
                .unwrap()
        })
    };
    let at_file = format!("@{}", out.display());
    let verify_args = |aud: &str| -> Vec<String> {
        [
            "verify",
            &at_file,
            "--issuer",
            &issuer,
            "--allow-insecure",
            "--audience",
            aud,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let ok = run(verify_args(AUD)).await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:ns:app");
    assert_eq!(claims["kubernetes.io"]["namespace"], "ns");

    let bad = run(verify_args("vault")).await.unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("error: wrong audience"), "{stderr}");
    server.stop().await.unwrap();
}
