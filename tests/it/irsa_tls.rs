//! https issuers: `check` and `verify` refuse a certificate chain they cannot trust and accept
//! one that ends in a trusted CA (here the test CA, trusted through `SSL_CERT_FILE` as an
//! operator would add a private CA).

use crate::common;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use common::{key, published_jwks};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use issuerd::check::Level;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

fn tls_fixture(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// An issuer at `https://127.0.0.1:PORT` with the fixture server certificate.
async fn https_issuer() -> (String, tokio::task::JoinHandle<()>) {
    let certs = CertificateDer::pem_file_iter(tls_fixture("server.crt.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(tls_fixture("server.key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("https://{}", listener.local_addr().unwrap());
    let discovery = format!(
        r#"{{"issuer":"{issuer}","jwks_uri":"{issuer}/openid/v1/jwks","response_types_supported":["id_token"],"subject_types_supported":["public"],"id_token_signing_alg_values_supported":["ES256"]}}"#
    );
    let routes = Arc::new([
        (
            "/.well-known/openid-configuration",
            "application/json",
            discovery,
        ),
        (
            "/openid/v1/jwks",
            "application/jwk-set+json",
            published_jwks(&["ec256.pkcs8.pem"]),
        ),
    ]);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let routes = Arc::clone(&routes);
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to serve.
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let found = routes
                            .iter()
                            .find(|(path, _, _)| *path == request.uri().path())
                            .cloned();
                        async move {
                            let (status, content_type, body) = match found {
                                Some((_, ct, body)) => (200, ct, body),
                                None => (404, "text/plain", "not found".to_owned()),
                            };
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .header("content-type", content_type)
                                    .header("cache-control", "public, max-age=3600")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (issuer, task)
}

/// Runs the binary with the test CA as the only trusted root; bounded by its own timeouts.
async fn issuerd_trusting_the_test_ca(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
            .args(args)
            .env("SSL_CERT_FILE", tls_fixture("ca.crt.pem"))
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_untrusted_chain_fails_with_the_certificate_named() {
    let (issuer, task) = https_issuer().await;
    let report = issuerd::check::check(&issuer, false, &issuerd::trust::Trust::public()).await;
    assert!(!report.ok, "{report}");
    assert!(
        report.findings.iter().any(|f| f.level == Level::Fail
            && f.check == "discovery"
            && f.message.contains("certificate")
            && f.message.contains("publicly trusted CA")),
        "{report}"
    );
    task.abort();
}

#[tokio::test]
async fn a_chain_to_a_trusted_ca_passes_check_and_verify() {
    let (issuer, task) = https_issuer().await;
    let output = issuerd_trusting_the_test_ca(vec!["check".into(), issuer.clone()]).await;
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("ok   https") && report.contains("usable: 0 failure(s)"),
        "{report}"
    );
    // A port in an https issuer URL is something AWS IAM refuses: warned.
    assert!(
        report.contains("WARN url") && report.contains("port"),
        "{report}"
    );

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    let minted = issuerd_trusting_the_test_ca(
        [
            "mint",
            "--key",
            &key("ec256.pkcs8.pem").display().to_string(),
            "--issuer",
            &issuer,
            "--subject",
            "ns/app",
            "--out",
            &token.display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await;
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let verified = issuerd_trusting_the_test_ca(
        [
            "verify",
            &format!("@{}", token.display()),
            "--issuer",
            &issuer,
            "--audience",
            "sts.amazonaws.com",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await;
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(String::from_utf8_lossy(&verified.stderr).starts_with("valid: ES256"));
    task.abort();
}
