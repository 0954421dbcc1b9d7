//! `issuerd thumbprint` as users run it: on the committed fixture chains (thumbprints precomputed
//! by openssl, and cross-checked against openssl here), and on a live `issuerd serve --tls-cert`
//! on 127.0.0.1 presenting a leaf alone, a leaf and its intermediate, and a chain with its root.

use crate::common;

use std::path::PathBuf;
use std::process::Output;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::process::Command;

fn fixture(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/thumbprint")
        .join(name)
}

/// The thumbprint of `name` (`leaf`, `intermediate`, `root`) in `expected.txt`.
fn expected(name: &str) -> String {
    std::fs::read_to_string(fixture("expected.txt"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in expected.txt"))
        .trim()
        .to_owned()
}

async fn issuerd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .arg("thumbprint")
        .args(args)
        .env_remove("ISSUERD_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap()
}

async fn json(args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    let output = issuerd(&args).await;
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn fixture_thumbprints_are_openssls() {
    // The committed values are openssl's; check openssl still agrees, so the fixture cannot rot.
    for name in ["leaf", "intermediate", "root"] {
        let path = fixture(&format!("{name}.crt.pem"));
        let output = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
            .arg(&path)
            .output()
            .await
            .expect("openssl is required by this test (apt-get install openssl)");
        assert!(output.status.success());
        let text = String::from_utf8(output.stdout).unwrap();
        let openssl = text
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_ascii_lowercase();
        assert_eq!(openssl, expected(name), "{name}");
    }
    for (file, which, role) in [
        ("chain.pem", "intermediate", "intermediate"),
        ("fullchain-with-root.pem", "root", "root"),
        ("leaf.crt.pem", "leaf", "leaf"),
    ] {
        let path = fixture(file).display().to_string();
        let report = json(&[&path]).await;
        assert_eq!(report["thumbprint"], expected(which), "{file}");
        assert_eq!(report["role"], role, "{file}");
        assert_eq!(report["trust"]["publicly_trusted"], false, "{file}");
        assert_eq!(report["aws_uses_thumbprint"], true, "{file}");
    }
}

#[tokio::test]
async fn human_output_leads_with_the_thumbprint_and_says_aws_pins_it() {
    let output = issuerd(&[&fixture("chain.pem").display().to_string()]).await;
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with(&format!("thumbprint: {}\n", expected("intermediate"))),
        "{text}"
    );
    assert!(text.contains("top intermediate CA"), "{text}");
    assert!(text.contains("AWS will pin this thumbprint"), "{text}");
}

#[tokio::test]
async fn bad_inputs_name_the_input_and_the_reason() {
    for (source, needle) in [
        (
            fixture("missing.pem").display().to_string(),
            "cannot read certificate chain",
        ),
        (
            fixture("leaf.key.pem").display().to_string(),
            "no CERTIFICATE block",
        ),
        ("http://127.0.0.1:1".to_owned(), "https://"),
        ("https://127.0.0.1:1".to_owned(), "cannot connect"),
    ] {
        let output = issuerd(&[&source]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{source}");
        let line = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
        assert!(line.contains(needle), "{source}: {stderr}");
        assert!(
            line.contains(
                source
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
            ),
            "{source}: {stderr}"
        );
    }
}

fn tls_serve(chain_file: &str) -> common::TlsServe {
    common::TlsServe::start(&fixture(chain_file), &fixture("leaf.key.pem"))
}

#[tokio::test(flavor = "multi_thread")]
async fn live_servers_are_thumbprinted_by_the_last_certificate_they_present() {
    for (chain, which, role) in [
        ("chain.pem", "intermediate", "intermediate"),
        ("leaf.crt.pem", "leaf", "leaf"),
        ("fullchain-with-root.pem", "root", "root"),
    ] {
        let server = tls_serve(chain);
        // A path after the host (an issuer URL) is allowed and ignored.
        let report = json(&[&format!("{}/clusters/prod", server.url)]).await;
        drop(server);
        assert_eq!(report["thumbprint"], expected(which), "{chain}");
        assert_eq!(report["role"], role, "{chain}");
        assert_eq!(report["chain"][0]["sha1"], expected("leaf"), "{chain}");
        // A private CA is reported, not refused.
        assert_eq!(report["trust"]["publicly_trusted"], false, "{chain}");
        assert!(
            report["trust"]["reason"]
                .as_str()
                .unwrap()
                .contains("UnknownIssuer"),
            "{report}"
        );
        assert_eq!(report["aws_uses_thumbprint"], true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_does_not_speak_tls_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
        }
    });
    let output = issuerd(&[&url, "--timeout", "5s"]).await;
    server.abort();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
}
