//! Packaging as users meet it: `--version` names the git revision, `issuerd probe` (the image's
//! HEALTHCHECK) against a real server, and the configuration the container image bakes in.
//! The Kubernetes manifests and the systemd unit are judged by their own tools in
//! tests/interop/test_deploy.py.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::key;
use issuerd::config::{Command as Cmd, Config, ConfigError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn git(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(REPO)
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

#[test]
fn version_names_the_git_revision() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let package = env!("CARGO_PKG_VERSION");
    let expected = match std::env::var("ISSUERD_BUILD_REV") {
        Ok(rev) if !rev.is_empty() => format!("issuerd {package} ({rev})"),
        // A source tree without git (a tarball) prints the package version alone.
        _ => match git(&["rev-parse", "--short", "HEAD"]) {
            None => format!("issuerd {package}"),
            Some(rev) => {
                let status = git(&[
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                    "--",
                    "src",
                    "Cargo.toml",
                    "Cargo.lock",
                    "build.rs",
                ])
                .unwrap();
                let dirty = if status.is_empty() { "" } else { "-dirty" };
                format!("issuerd {package} ({rev}{dirty})")
            }
        },
    };
    assert_eq!(printed.trim(), expected);
    assert!(issuerd::cli::VERSION.starts_with(package));
}

async fn probe(url: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(["probe", "--timeout", "2s", url])
        .env_remove("ISSUERD_CONFIG")
        .output()
        .await
        .unwrap()
}

fn error_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_exits_zero_on_200_only() {
    let k = key("ec256.pub.pem").display().to_string();
    let server =
        common::TestServer::start(&["--issuer", "https://h.example", "--key-file", &k]).await;
    let base = format!("http://{}", server.addr);
    for path in ["/healthz", "/readyz", "/openid/v1/jwks"] {
        let output = probe(&format!("{base}{path}")).await;
        assert!(output.status.success(), "{path}: {}", error_line(&output));
        assert!(output.stdout.is_empty() && output.stderr.is_empty());
    }
    let output = probe(&format!("{base}/nope")).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        error_line(&output),
        format!("error: probe {base}/nope: answered 404 Not Found")
    );
    server.stop().await.unwrap();

    // Nobody listening any more.
    let output = probe(&format!("{base}/healthz")).await;
    assert_eq!(output.status.code(), Some(1));
    let line = error_line(&output);
    assert!(line.contains("cannot connect to"), "{line}");
    assert!(line.contains(&base), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_speaks_https_to_a_tls_serve_without_verifying_it() {
    let fixtures = Path::new(REPO).join("tests/fixtures/thumbprint");
    let server =
        common::TlsServe::start(&fixtures.join("chain.pem"), &fixtures.join("leaf.key.pem"));
    // The certificate is from a private CA and names 127.0.0.1: accepted, as kubelet would.
    let output = probe(&format!("{}/healthz", server.url)).await;
    assert!(output.status.success(), "{}", error_line(&output));
    let output = probe(&format!("{}/nope", server.url)).await;
    assert_eq!(
        error_line(&output),
        format!("error: probe {}/nope: answered 404 Not Found", server.url)
    );
    // Plain http to the TLS port is no HTTP answer.
    let plain = server.url.replace("https://", "http://");
    let output = probe(&format!("{plain}/healthz")).await;
    assert_eq!(output.status.code(), Some(1));
    let line = error_line(&output);
    assert!(
        line.starts_with(&format!("error: probe {plain}/healthz: ")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_reports_not_ready_silence_and_non_http() {
    // 503 (as /readyz answers before the first publish), a server that never answers, and one
    // that is not HTTP.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                if request.starts_with("GET /silent ") {
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                } else if request.starts_with("GET /ssh ") {
                    let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
                } else {
                    assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request}");
                    let _ = stream
                        .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 10\r\n\r\nnot ready\n")
                        .await;
                }
            });
        }
    });
    let base = format!("http://{addr}");
    let started = std::time::Instant::now();
    for (path, expected) in [
        ("/readyz", "answered 503 Service Unavailable".to_owned()),
        ("/silent", "no answer within 2s".to_owned()),
        ("/ssh", "the answer is not an HTTP response".to_owned()),
    ] {
        let output = probe(&format!("{base}{path}")).await;
        assert_eq!(output.status.code(), Some(1), "{path}");
        assert_eq!(
            error_line(&output),
            format!("error: probe {base}{path}: {expected}")
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    server.abort();
}

#[test]
fn the_image_config_needs_only_an_issuer_and_mounted_keys() {
    let image_config = Path::new(REPO).join("deploy/docker/issuerd.toml");
    let config = image_config.to_str().unwrap();
    // `docker run IMAGE` alone: the message says what to set.
    let error = Config::from_args(["issuerd", "--config", config, "serve"]).unwrap_err();
    assert!(matches!(error, ConfigError::Missing { .. }), "{error}");
    assert!(error.to_string().contains("ISSUERD_ISSUER"), "{error}");
    // With an issuer, it listens on all interfaces and reads the mounted key directory.
    let loaded = Config::from_args([
        "issuerd",
        "--config",
        config,
        "serve",
        "--issuer",
        "https://oidc.example.com",
    ])
    .unwrap();
    let Cmd::Serve(serve) = loaded.command else {
        unreachable!()
    };
    assert_eq!(serve.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(serve.key_files, [Path::new("/etc/issuerd/keys")]);

    // The Dockerfile points ISSUERD_CONFIG at it, probes the port it listens on, and builds
    // with everything cargo needs.
    let dockerfile = std::fs::read_to_string(Path::new(REPO).join("Dockerfile")).unwrap();
    for needle in [
        "COPY deploy/docker/issuerd.toml /etc/issuerd/issuerd.toml",
        "ENV ISSUERD_CONFIG=/etc/issuerd/issuerd.toml",
        "\"probe\", \"--timeout\", \"3s\", \"http://127.0.0.1:8080/healthz\"",
        "COPY Cargo.toml Cargo.lock build.rs ./",
        "USER 65532:65532",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle:?}");
    }
}
