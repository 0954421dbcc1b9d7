//! HTTPS against the real server on 127.0.0.1: curl (HTTP/1.1 and HTTP/2), a rustls client,
//! `openssl s_client` (old protocol versions refused, any server name served), live certificate
//! swaps, and refused pairs that keep the served certificate.

use crate::common;
use common::ca::{Ca, Leaf, write_atomically};
use common::{DISCOVERY, JWKS};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use issuerd::config::{Command as Config_, Config};
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// `issuerd serve` over HTTPS in this process, with its certificate files in `dir`.
struct TlsServer {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    client: Arc<rustls::ClientConfig>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TlsServer {
    async fn start(ca: &Ca, leaf: &Leaf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        leaf.write(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        let issuer = format!("https://localhost:{}", addr.port());
        let signing_key = common::key("rsa2048.pub.pem");
        let argv = [
            "issuerd",
            "serve",
            "--issuer",
            &issuer,
            "--allow-issuer-port",
            "--key-file",
            signing_key.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--debounce",
            "20ms",
        ];
        let Config_::Serve(config) = Config::from_args(argv).expect("valid config").command else {
            unreachable!()
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(issuerd::app::serve_on(listener, config, async {
            let _ = stopped.await;
        }));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der()).unwrap();
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        );
        let server = Self {
            addr,
            dir,
            client,
            stop: Some(stop),
            task,
        };
        eventually!(
            server.connect(b"http/1.1").await.is_ok(),
            "HTTPS server on {addr} never answered"
        );
        server
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    async fn connect(&self, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
        let mut config = (*self.client).clone();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(self.addr).await?;
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    async fn status(&self) -> serde_json::Value {
        let mut client = Http1::open(self).await;
        let (status, body) = client.get("/statusz").await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_slice(&body).unwrap()
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// One HTTP/1.1 keep-alive connection over TLS.
struct Http1 {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    serial: String,
}

impl Http1 {
    async fn open(server: &TlsServer) -> Self {
        let stream = server.connect(b"http/1.1").await.unwrap();
        assert_eq!(
            stream.get_ref().1.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "ALPN http/1.1"
        );
        let serial = common::served_serial(&stream);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Self { sender, serial }
    }

    async fn get(&mut self, path: &str) -> (StatusCode, Bytes) {
        let request = Request::get(path)
            .header("host", "localhost")
            .body(Empty::new())
            .unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }
}

fn run(program: &str, args: &[&str], stdin: &[u8]) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} is required for this test (install it): {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_both_documents_over_http1_and_http2() {
    let ca = Ca::new();
    let server = TlsServer::start(&ca, &ca.leaf(&["localhost"], 1, (-1, 30))).await;
    let ca_file = server.dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let mut h1 = Http1::open(&server).await;
    for (path, content_type) in [
        (JWKS, "application/jwk-set+json"),
        (DISCOVERY, "application/json"),
    ] {
        let (_, expected) = h1.get(path).await;
        for version in ["--http1.1", "--http2"] {
            let url = format!("https://localhost:{}{path}", server.addr.port());
            let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
            let (ok, out) = tokio::task::spawn_blocking({
                let args: Vec<String> = [
                    "-sS",
                    version,
                    "--cacert",
                    ca_file.to_str().unwrap(),
                    "--resolve",
                    &resolve,
                    "-w",
                    "\n%{http_version} %{http_code} %{content_type}",
                    &url,
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    run("curl", &args, b"")
                }
            })
            .await
            .unwrap();
            assert!(ok, "curl {version} {path}: {out}");
            let (body, trailer) = out.rsplit_once('\n').unwrap();
            assert_eq!(body.as_bytes(), &expected[..], "curl {version} {path}");
            let want_version = if version == "--http2" { "2" } else { "1.1" };
            assert_eq!(
                trailer,
                format!("{want_version} 200 {content_type}"),
                "curl {version} {path}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_client_gets_h2_by_alpn() {
    let ca = Ca::new();
    let server = TlsServer::start(&ca, &ca.leaf(&["localhost"], 2, (-1, 30))).await;
    let stream = server.connect(b"h2").await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("https://localhost{JWKS}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/jwk-set+json"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let jwks: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tls_1_2_and_1_3_are_spoken_and_any_server_name_is_served() {
    let ca = Ca::new();
    let server = TlsServer::start(&ca, &ca.leaf(&["localhost"], 3, (-1, 30))).await;
    let connect = format!("127.0.0.1:{}", server.addr.port());
    let s_client = |extra: &'static [&'static str]| {
        let connect = connect.clone();
        tokio::task::spawn_blocking(move || {
            let mut args = vec!["s_client", "-connect", &connect];
            args.extend_from_slice(extra);
            run("openssl", &args, b"")
        })
    };
    for (flag, accepted) in [
        ("-tls1", false),
        ("-tls1_1", false),
        ("-tls1_2", true),
        ("-tls1_3", true),
    ] {
        // SECLEVEL=0 so that the client itself is willing to offer the old versions.
        let extra: &'static [&'static str] = match flag {
            "-tls1" => &["-tls1", "-cipher", "DEFAULT@SECLEVEL=0"],
            "-tls1_1" => &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
            "-tls1_2" => &["-tls1_2"],
            _ => &["-tls1_3"],
        };
        let (ok, out) = s_client(extra).await.unwrap();
        let handshake_done = out.contains("Verify return code")
            && out.contains("Cipher is ")
            && !out.contains("Cipher is (NONE)");
        assert_eq!(
            ok && handshake_done,
            accepted,
            "openssl s_client {flag}: accepted={accepted} expected\n{out}"
        );
    }
    // A name the certificate does not cover still gets the configured certificate.
    let (ok, out) = s_client(&["-servername", "wrong.example", "-showcerts"])
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("CN = localhost") || out.contains("CN=localhost"),
        "the configured certificate is served for any SNI:\n{out}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_certificate_serves_new_handshakes_and_open_connections_keep_working() {
    let ca = Ca::new();
    let server = TlsServer::start(&ca, &ca.leaf(&["localhost"], 0x10, (-1, 30))).await;
    let mut held = Http1::open(&server).await;
    assert_eq!(held.serial, "10");
    assert_eq!(held.get(JWKS).await.0, StatusCode::OK);

    ca.leaf(&["localhost"], 0x11, (-1, 60))
        .write(server.dir.path());
    eventually!(
        Http1::open(&server).await.serial == "11",
        "a new connection never saw the new certificate"
    );
    // The connection opened before the swap still answers, on its own session.
    let (status, body) = held.get(DISCOVERY).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with(b"{\"issuer\":"));
    let status = server.status().await;
    assert_eq!(status["tls"]["certificate"]["serial"], "11");
    assert!(status["tls"]["last_error"].is_null());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_pairs_keep_the_served_certificate_and_name_the_file() {
    let ca = Ca::new();
    let good = ca.leaf(&["localhost"], 0x20, (-1, 30));
    let server = TlsServer::start(&ca, &good).await;
    let cert = server.cert_path();
    let other = ca.leaf(&["localhost"], 0x21, (-1, 30));
    let expired = ca.leaf(&["localhost"], 0x22, (-30, -1));
    let half = &other.chain[..other.chain.len() / 2];
    let cases: [(&str, Vec<u8>, Option<&str>, &str); 4] = [
        (
            "garbage",
            b"not a certificate\n".to_vec(),
            None,
            "no CERTIFICATE block",
        ),
        (
            "mismatched key",
            other.chain.as_bytes().to_vec(),
            None,
            "does not match the certificate",
        ),
        (
            "expired",
            expired.chain.as_bytes().to_vec(),
            Some(&expired.key),
            "expired",
        ),
        ("half-written", half.as_bytes().to_vec(), None, "tls.crt"),
    ];
    let mut failures = 0;
    for (name, chain, key, reason) in cases {
        if let Some(key) = key {
            write_atomically(&server.dir.path().join("tls.key"), key.as_bytes());
        }
        write_atomically(&cert, &chain);
        failures += 1;
        eventually!(
            server.status().await["tls"]["failed_loads"].as_u64() >= Some(failures),
            "{name}: the refused pair was never reported"
        );
        let status = server.status().await;
        let error = status["tls"]["last_error"]["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(error.contains("tls.crt"), "{name}: names the file: {error}");
        assert!(
            error.contains(reason),
            "{name}: says why ({reason}): {error}"
        );
        assert_eq!(status["tls"]["certificate"]["serial"], "20", "{name}");
        assert_eq!(
            Http1::open(&server).await.serial,
            "20",
            "{name}: still served"
        );
        // Back to the good pair before the next case.
        good.write(server.dir.path());
        eventually!(
            server.status().await["tls"]["last_error"].is_null(),
            "{name}: the good pair was not taken back"
        );
    }
    server.stop().await;
}

fn issuerd(args: &[&str]) -> (bool, String) {
    run(env!("CARGO_BIN_EXE_issuerd"), args, b"")
}

#[test]
fn start_up_refuses_a_bad_pair_and_an_issuer_port_and_warns_on_a_foreign_name() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let key_file = common::key("rsa2048.pub.pem");
    let key_file = key_file.to_str().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());

    // An expired pair: nothing to serve, so no start; the error names the file.
    ca.leaf(&["localhost"], 1, (-30, -1)).write(dir.path());
    let (ok, out) = issuerd(&[
        "serve",
        "--issuer",
        "https://localhost",
        "--key-file",
        key_file,
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("tls.crt") && out.contains("expired"), "{out}");

    // A port in the issuer: AWS's rule is explained, and --allow-issuer-port is named.
    ca.leaf(&["localhost"], 2, (-1, 30)).write(dir.path());
    let (ok, out) = issuerd(&[
        "serve",
        "--issuer",
        "https://localhost:8443",
        "--key-file",
        key_file,
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert,
        "--tls-key",
        key,
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("no port") && out.contains("--allow-issuer-port"),
        "{out}"
    );

    // Only one of the pair.
    let (ok, out) = issuerd(&[
        "serve",
        "--issuer",
        "https://localhost",
        "--key-file",
        key_file,
        "--tls-cert",
        cert,
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("--tls-key"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_logs_the_certificate_and_warns_of_a_foreign_issuer_host_and_near_expiry() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    // Ten days left: inside the 14-day warning.
    ca.leaf(&["localhost"], 3, (-1, 10)).write(dir.path());
    let child = Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args([
            "serve",
            "--issuer",
            "https://issuer.example.com",
            "--key-file",
            common::key("rsa2048.pub.pem").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            dir.path().join("tls.crt").to_str().unwrap(),
            "--tls-key",
            dir.path().join("tls.key").to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = common::KillOnDrop(child);
    let mut stderr = child.0.stderr.take().unwrap();
    let log = tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut log = String::new();
        let mut buf = [0; 4096];
        while !log.contains(" ready ") && !log.contains("Error") {
            let n = stderr.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            log.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        log
    });
    let log = tokio::time::timeout(Duration::from_secs(20), log)
        .await
        .expect("issuerd started")
        .unwrap();
    let warning = log
        .lines()
        .find(|l| l.contains("not among the certificate's names"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(
        warning.contains("issuer.example.com") && warning.contains("localhost"),
        "{warning}"
    );
    // Every load names the leaf: subject, names, serial and expiry.
    let loaded = log
        .lines()
        .find(|l| l.contains("serving certificate"))
        .unwrap_or_else(|| panic!("no load line:\n{log}"));
    assert!(
        loaded.contains("CN=localhost")
            && loaded.contains("\"localhost\"")
            && loaded.contains("serial=\"03\"")
            && loaded.contains("not_after="),
        "{loaded}"
    );
    let expiring = log
        .lines()
        .find(|l| l.contains("expires soon"))
        .unwrap_or_else(|| panic!("no expiry warning for a certificate with 10 days left:\n{log}"));
    assert!(
        expiring.contains("days_left=9") || expiring.contains("days_left=10"),
        "{expiring}"
    );
}

/// `openssl` in `dir`, for key forms rcgen does not write (PKCS#1, SEC1).
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is required for this test (install it)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_key_form_and_type_loads_and_a_foreign_key_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // (name, command making `<name>.key`, PEM label it must have)
    let forms: [(&str, &[&str], &str); 5] = [
        (
            "rsa-pkcs1",
            &["genrsa", "-traditional", "-out", "rsa-pkcs1.key", "2048"],
            "RSA PRIVATE KEY",
        ),
        (
            "rsa-pkcs8",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "rsa-pkcs8.key",
            ],
            "BEGIN PRIVATE KEY",
        ),
        (
            "ec-sec1",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "ec-sec1.key",
            ],
            "EC PRIVATE KEY",
        ),
        (
            "ec384-pkcs8",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
                "ec384-pkcs8.key",
            ],
            "BEGIN PRIVATE KEY",
        ),
        (
            "ed25519",
            &["genpkey", "-algorithm", "ed25519", "-out", "ed25519.key"],
            "BEGIN PRIVATE KEY",
        ),
    ];
    for (name, make_key, label) in forms {
        openssl(d, make_key);
        let key = std::fs::read_to_string(d.join(format!("{name}.key"))).unwrap();
        assert!(key.contains(label), "{name}: {key:.40}");
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-key",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,DNS:*.example.com,IP:127.0.0.1",
            ],
        );
        let files = issuerd::tls::CertificateFiles {
            cert: d.join(format!("{name}.crt")),
            key: d.join(format!("{name}.key")),
        };
        let pair = files.load().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(pair.subject(), "CN=localhost", "{name}");
        assert!(
            pair.covers("localhost") && pair.covers("127.0.0.1"),
            "{name}"
        );
        assert!(
            pair.covers("oidc.example.com") && !pair.covers("a.b.example.com"),
            "{name}"
        );
        assert!(
            !pair.covers("example.com") && !pair.covers("other.test"),
            "{name}"
        );
    }
    // A key from another pair: refused, naming both files.
    let files = issuerd::tls::CertificateFiles {
        cert: d.join("ec-sec1.crt"),
        key: d.join("ed25519.key"),
    };
    let error = files.load().unwrap_err().to_string();
    assert!(
        error.contains("ed25519.key")
            && error.contains("ec-sec1.crt")
            && error.contains("does not match"),
        "{error}"
    );
    // A key file holding no key at all.
    let files = issuerd::tls::CertificateFiles {
        cert: d.join("ec-sec1.crt"),
        key: d.join("ec-sec1.crt"),
    };
    let error = files.load().unwrap_err().to_string();
    assert!(
        error.contains("ec-sec1.crt") && error.contains("no PRIVATE KEY"),
        "{error}"
    );
}
