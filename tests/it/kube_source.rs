//! `serve --from-kube-apiserver` against a stand-in for kube-apiserver made here: HTTPS with a
//! private CA, a bearer token required, the two documents as kube-apiserver serves them
//! (rendered by issuerd itself from fixture keys; ETags and 304s as a conditional-request-aware
//! API server would answer). Published bytes, rotation, the token re-read, each failure keeping
//! the last good set with a named error, staleness on /readyz, kubeconfig contexts.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::ca::{Ca, write_atomically};
use common::{TestServer, get, key, kubelet_write};
use http::StatusCode;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use issuerd::config::{Command, Config};
use issuerd::document::Documents;
use issuerd::issuer::{Issuer, Publication};
use issuerd::keys::KeySet;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::net::TcpListener;

/// The cluster's `--service-account-issuer`.
const ISSUER: &str = "https://oidc.example.com/clusters/prod";
/// Where kube-apiserver says its JWKS is (its own address): never republished.
const CLUSTER_JWKS_URI: &str = "https://10.96.0.1:443/openid/v1/jwks";

/// What the stand-in does with the next requests.
#[derive(Clone, Debug)]
enum Mode {
    /// Answers with the documents.
    Serve,
    /// Answers every request with this status.
    Status(u16),
    /// Answers after this long.
    Slow(Duration),
}

/// The stand-in's state, changed by the test between polls.
struct State {
    discovery: Bytes,
    jwks: Bytes,
    /// Increases with every change of the documents (the ETag).
    version: u64,
    token: String,
    /// TLS required a client certificate: no token is asked for.
    client_auth: bool,
    mode: Mode,
    /// Every `Authorization` header received.
    seen_tokens: Vec<String>,
    /// 304 answers given.
    not_modified: usize,
}

/// A kube-apiserver stand-in on `https://localhost:PORT`.
struct StandIn {
    url: String,
    state: Arc<Mutex<State>>,
    /// The CA its certificate chains to, written to a file.
    ca_file: PathBuf,
    ca_pem: String,
    _dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

/// The documents kube-apiserver serves for these fixture keys with `issuer` (http allowed, for
/// an issuer that is a local bucket).
fn cluster_documents(issuer: &str, files: &[&str]) -> (Bytes, Bytes) {
    let keys = KeySet::load(&files.iter().map(|f| key(f)).collect::<Vec<_>>()).unwrap();
    let publication = Publication {
        issuer: Issuer::new(issuer, Some(CLUSTER_JWKS_URI), true).unwrap(),
        profile: Default::default(),
        max_age_secs: 3600,
    };
    let documents = Documents::render(&publication, &keys);
    (documents.discovery.body, documents.jwks.body)
}

impl StandIn {
    async fn start(files: &[&str], token: &str) -> Self {
        Self::start_with(files, token, None).await
    }

    /// With `client_ca`, a client certificate from that CA is required instead of a token.
    async fn start_with(files: &[&str], token: &str, client_ca: Option<&Ca>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new();
        let leaf = ca.leaf(&["localhost"], 1, (-1, 30));
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let certs = CertificateDer::pem_slice_iter(leaf.chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(client_ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(client_ca.der()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder.with_single_cert(certs, key).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let (discovery, jwks) = cluster_documents(ISSUER, files);
        let state = Arc::new(Mutex::new(State {
            discovery,
            jwks,
            version: 1,
            token: token.to_owned(),
            client_auth: client_ca.is_some(),
            mode: Mode::Serve,
            seen_tokens: Vec::new(),
            not_modified: 0,
        }));
        let task = {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(
                            move |request: http::Request<hyper::body::Incoming>| {
                                let (response, delay) = answer(&state, &request);
                                async move {
                                    tokio::time::sleep(delay).await;
                                    Ok::<_, std::convert::Infallible>(response)
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self {
            url,
            state,
            ca_file,
            ca_pem: ca.pem(),
            _dir: dir,
            _task: task,
        }
    }

    /// Serves the documents of these keys with `issuer` from now on.
    fn publish(&self, issuer: &str, files: &[&str]) {
        let (discovery, jwks) = cluster_documents(issuer, files);
        let mut state = self.state.lock().unwrap();
        state.discovery = discovery;
        state.jwks = jwks;
        state.version += 1;
    }

    /// Serves this JWKS from now on.
    fn publish_jwks(&self, jwks: Vec<u8>) {
        let mut state = self.state.lock().unwrap();
        state.jwks = Bytes::from(jwks);
        state.version += 1;
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn require_token(&self, token: &str) {
        self.state.lock().unwrap().token = token.to_owned();
    }

    fn seen_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().seen_tokens.clone()
    }

    fn not_modified(&self) -> usize {
        self.state.lock().unwrap().not_modified
    }
}

/// One request, as kube-apiserver would answer it (the ETag is the version of the documents).
fn answer(
    state: &Mutex<State>,
    request: &http::Request<hyper::body::Incoming>,
) -> (http::Response<Full<Bytes>>, Duration) {
    let mut state = state.lock().unwrap();
    let text = |status: u16, body: &str| {
        http::Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.seen_tokens.push(authorization.clone());
    let delay = match state.mode {
        Mode::Serve => Duration::ZERO,
        Mode::Slow(delay) => delay,
        Mode::Status(status) => return (text(status, "stand-in failure\n"), Duration::ZERO),
    };
    if !state.client_auth && authorization != format!("Bearer {}", state.token) {
        return (text(401, "Unauthorized\n"), delay);
    }
    let (body, content_type) = match request.uri().path() {
        "/.well-known/openid-configuration" => (state.discovery.clone(), "application/json"),
        "/openid/v1/jwks" => (state.jwks.clone(), "application/jwk-set+json"),
        _ => return (text(404, "not found\n"), delay),
    };
    let etag = format!("\"v{}\"", state.version);
    let matches = request
        .headers()
        .get("if-none-match")
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let response = http::Response::builder()
        .header("content-type", content_type)
        .header("cache-control", "public, max-age=3600")
        .header("etag", &etag);
    if matches {
        state.not_modified += 1;
        return (
            response.status(304).body(Full::new(Bytes::new())).unwrap(),
            delay,
        );
    }
    (response.status(200).body(Full::new(body)).unwrap(), delay)
}

/// A token file written as the kubelet projects one (a `..data` symlink swap).
struct TokenFile {
    dir: tempfile::TempDir,
    generation: u32,
}

impl TokenFile {
    fn new(token: &str) -> Self {
        let mut file = Self {
            dir: tempfile::tempdir().unwrap(),
            generation: 0,
        };
        file.write(token);
        file
    }

    fn write(&mut self, token: &str) {
        self.generation += 1;
        let source = self.dir.path().join(format!("source-{}", self.generation));
        std::fs::write(&source, token).unwrap();
        kubelet_write(self.dir.path(), self.generation, &[("token", source)]);
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("token")
    }
}

/// `serve --from-kube-apiserver URL` with the stand-in's CA and `token`, polling every `poll`,
/// and `extra` arguments.
async fn serve_from(
    stand_in: &StandIn,
    token: &TokenFile,
    poll: &str,
    extra: &[&str],
) -> TestServer {
    let token_path = token.path();
    let ca = stand_in.ca_file.to_str().unwrap();
    let mut args = vec![
        "--from-kube-apiserver",
        &stand_in.url,
        "--kube-token-file",
        token_path.to_str().unwrap(),
        "--kube-ca-file",
        ca,
        "--kube-poll",
        poll,
        "--kube-timeout",
        "1s",
    ];
    args.extend_from_slice(extra);
    TestServer::start(&args).await
}

/// The two documents `server` serves for `issuer`.
async fn served(server: &TestServer, issuer: &str) -> (Bytes, Bytes) {
    let issuer = Issuer::new(issuer, None, true).unwrap();
    let discovery = get(server.addr, issuer.discovery_path()).await.unwrap();
    let jwks = get(server.addr, issuer.jwks_path()).await.unwrap();
    assert_eq!(discovery.status, StatusCode::OK);
    assert_eq!(jwks.status, StatusCode::OK);
    (discovery.body, jwks.body)
}

/// What `serve --key-file` publishes for these fixture keys with issuer [`ISSUER`].
async fn published_from_files(files: &[&str]) -> (Bytes, Bytes) {
    let mut args = vec!["--issuer", ISSUER];
    let paths: Vec<String> = files
        .iter()
        .map(|f| key(f).to_str().unwrap().to_owned())
        .collect();
    for path in &paths {
        args.extend(["--key-file", path.as_str()]);
    }
    let server = TestServer::start(&args).await;
    let documents = served(&server, ISSUER).await;
    server.stop().await.unwrap();
    documents
}

async fn statusz(server: &TestServer) -> Value {
    let reply = get(server.addr, "/statusz").await.unwrap();
    serde_json::from_slice(&reply.body).unwrap()
}

#[tokio::test]
async fn published_bytes_equal_those_of_the_same_keys_as_files() {
    let stand_in = StandIn::start(&["ec256.pub.pem", "rsa2048.pub.pem"], "token-a").await;
    let token = TokenFile::new("token-a");
    // No --issuer: the cluster's is adopted.
    let server = serve_from(&stand_in, &token, "60s", &[]).await;
    let from_cluster = served(&server, ISSUER).await;
    let from_files = published_from_files(&["ec256.pub.pem", "rsa2048.pub.pem"]).await;
    assert_eq!(from_cluster, from_files);
    // The cluster's jwks_uri (its own address) is not what is published.
    let discovery: Value = serde_json::from_slice(&from_cluster.0).unwrap();
    assert_eq!(
        discovery["jwks_uri"],
        format!("{ISSUER}/openid/v1/jwks").as_str()
    );
    let status = statusz(&server).await;
    assert_eq!(status["kube"]["issuer"], ISSUER);
    assert_eq!(status["kube"]["origin"], "in-cluster");
    assert_eq!(status["kube"]["error"], Value::Null);
    assert_eq!(
        stand_in.seen_tokens().last().map(String::as_str),
        Some("Bearer token-a")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn keys_from_files_and_from_the_api_server_are_combined() {
    let stand_in = StandIn::start(&["ec256.pub.pem"], "t").await;
    let token = TokenFile::new("t");
    let extra = key("ec384.pub.pem");
    let server = serve_from(
        &stand_in,
        &token,
        "60s",
        &["--issuer", ISSUER, "--key-file", extra.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        served(&server, ISSUER).await,
        published_from_files(&["ec256.pub.pem", "ec384.pub.pem"]).await
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_rotation_upstream_is_followed_within_one_poll() {
    let stand_in = StandIn::start(&["ec256.pub.pem"], "t").await;
    let token = TokenFile::new("t");
    let poll = Duration::from_millis(300);
    let server = serve_from(&stand_in, &token, "300ms", &["--issuer", ISSUER]).await;
    // Unchanged documents are asked for conditionally and answered 304.
    eventually!(
        stand_in.not_modified() >= 2,
        "no conditional request was answered 304"
    );
    let want = published_from_files(&["ec256.pub.pem", "ec384.pub.pem"]).await;
    let changed = Instant::now();
    stand_in.publish(ISSUER, &["ec256.pub.pem", "ec384.pub.pem"]);
    eventually!(
        served(&server, ISSUER).await == want,
        "the new key was never published"
    );
    let took = changed.elapsed();
    // One poll interval, plus the time one poll takes on a busy machine.
    assert!(
        took < poll + Duration::from_secs(2),
        "the rotation took {took:?}"
    );
    // The old key is withdrawn upstream: withdrawn here too.
    stand_in.publish(ISSUER, &["ec384.pub.pem"]);
    let want = published_from_files(&["ec384.pub.pem"]).await;
    eventually!(
        served(&server, ISSUER).await == want,
        "the withdrawn key stayed"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_token_file_replaced_between_polls_is_used() {
    let stand_in = StandIn::start(&["ec256.pub.pem"], "first-token").await;
    let mut token = TokenFile::new("first-token");
    let server = serve_from(&stand_in, &token, "200ms", &["--issuer", ISSUER]).await;
    // The kubelet rotates the bound token; the API server accepts only the new one.
    token.write("second-token");
    stand_in.require_token("second-token");
    stand_in.publish(ISSUER, &["ec384.pub.pem"]);
    let want = published_from_files(&["ec384.pub.pem"]).await;
    eventually!(
        served(&server, ISSUER).await == want,
        "the keys read with the new token were never published"
    );
    assert!(
        stand_in
            .seen_tokens()
            .contains(&"Bearer second-token".to_owned())
    );
    eventually!(
        statusz(&server).await["kube"]["error"].is_null(),
        "polls with the new token still fail"
    );
    server.stop().await.unwrap();
}

/// Starts a server on the stand-in, breaks the stand-in with `fault`, and checks the last good
/// set stays served, `/readyz` stays 200, and `/statusz` names the error with `kind` and a
/// message containing `needle`.
async fn keeps_the_last_good_set(fault: impl FnOnce(&StandIn), kind: &str, needle: &str) {
    let stand_in = StandIn::start(&["ec256.pub.pem"], "t").await;
    let token = TokenFile::new("t");
    let server = serve_from(&stand_in, &token, "200ms", &["--issuer", ISSUER]).await;
    let good = served(&server, ISSUER).await;
    fault(&stand_in);
    eventually!(
        statusz(&server).await["kube"]["error"] == kind,
        "no {kind} error on /statusz: {}",
        statusz(&server).await
    );
    let status = statusz(&server).await;
    let message = status["kube"]["last_error"].as_str().unwrap().to_owned();
    assert!(message.contains(needle), "{kind}: {message}");
    assert_eq!(status["last_reload_error"].as_str(), Some(message.as_str()));
    assert!(status["failed_reloads"].as_u64().unwrap() >= 1);
    assert_eq!(
        served(&server, ISSUER).await,
        good,
        "{kind}: the set changed"
    );
    assert_eq!(
        get(server.addr, "/readyz").await.unwrap().status,
        StatusCode::OK,
        "{kind}: not ready long before --kube-max-stale"
    );
    // The fault goes away: the next poll succeeds and the error clears.
    stand_in.set_mode(Mode::Serve);
    stand_in.require_token("t");
    stand_in.publish(ISSUER, &["ec256.pub.pem"]);
    eventually!(
        statusz(&server).await["kube"]["error"].is_null(),
        "{kind}: the error never cleared"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_401_keeps_the_last_good_set() {
    keeps_the_last_good_set(|s| s.require_token("other"), "unauthorized", "401").await;
}

#[tokio::test]
async fn a_403_keeps_the_last_good_set() {
    keeps_the_last_good_set(
        |s| s.set_mode(Mode::Status(403)),
        "forbidden",
        "system:service-account-issuer-discovery",
    )
    .await;
}

#[tokio::test]
async fn a_5xx_keeps_the_last_good_set() {
    keeps_the_last_good_set(|s| s.set_mode(Mode::Status(503)), "status", "HTTP 503").await;
}

#[tokio::test]
async fn a_404_keeps_the_last_good_set_and_says_when_kube_serves_none() {
    keeps_the_last_good_set(
        |s| s.set_mode(Mode::Status(404)),
        "not_found",
        "--service-account-issuer is an https URL",
    )
    .await;
}

#[tokio::test]
async fn a_timeout_keeps_the_last_good_set() {
    keeps_the_last_good_set(
        |s| s.set_mode(Mode::Slow(Duration::from_secs(3))),
        "timeout",
        "within 1s",
    )
    .await;
}

#[tokio::test]
async fn an_issuer_mismatch_keeps_the_last_good_set() {
    keeps_the_last_good_set(
        |s| s.publish("https://elsewhere.example", &["ec384.pub.pem"]),
        "issuer_mismatch",
        "https://elsewhere.example",
    )
    .await;
}

#[tokio::test]
async fn a_jwks_with_a_private_key_keeps_the_last_good_set() {
    keeps_the_last_good_set(
        |s| {
            let (_, jwks) = cluster_documents(ISSUER, &["ec384.pub.pem"]);
            let mut jwks: Value = serde_json::from_slice(&jwks).unwrap();
            jwks["keys"][0]["d"] = "c2VjcmV0".into();
            s.publish_jwks(serde_json::to_vec(&jwks).unwrap());
        },
        "private_key",
        "private member \"d\"",
    )
    .await;
}

#[tokio::test]
async fn readyz_fails_only_after_max_stale() {
    let stand_in = StandIn::start(&["ec256.pub.pem"], "t").await;
    let token = TokenFile::new("t");
    let server = serve_from(
        &stand_in,
        &token,
        "200ms",
        &["--issuer", ISSUER, "--kube-max-stale", "2s"],
    )
    .await;
    stand_in.set_mode(Mode::Status(500));
    let failing = Instant::now();
    eventually!(
        get(server.addr, "/readyz").await.unwrap().status == StatusCode::SERVICE_UNAVAILABLE,
        "/readyz never failed"
    );
    assert!(failing.elapsed() >= Duration::from_millis(1500));
    let reply = get(server.addr, "/readyz").await.unwrap();
    assert!(
        String::from_utf8_lossy(&reply.body).contains("--kube-max-stale"),
        "{reply:?}"
    );
    // Still served all along.
    let jwks = Issuer::new(ISSUER, None, false).unwrap();
    assert_eq!(
        get(server.addr, jwks.jwks_path()).await.unwrap().status,
        StatusCode::OK
    );
    stand_in.set_mode(Mode::Serve);
    eventually!(
        get(server.addr, "/readyz").await.unwrap().status == StatusCode::OK,
        "/readyz never recovered"
    );
    server.stop().await.unwrap();
}

/// `serve` with `args`, run until it fails to start: its error.
async fn start_error(args: &[&str]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut argv = vec!["issuerd", "serve"];
    argv.extend_from_slice(args);
    let Command::Serve(config) = Config::from_args(argv).unwrap().command else {
        unreachable!()
    };
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        issuerd::app::serve_on(listener, config, std::future::pending()),
    )
    .await
    .expect("serve started instead of failing");
    format!("{:#}", result.unwrap_err())
}

#[tokio::test]
async fn a_start_without_the_api_server_s_keys_fails_naming_why() {
    let stand_in = StandIn::start(&["ec256.pub.pem"], "t").await;
    let token = TokenFile::new("t");
    let token_path = token.path();
    let args = |issuer: &'static str| {
        vec![
            "--issuer",
            issuer,
            "--from-kube-apiserver",
            stand_in.url.as_str(),
            "--kube-token-file",
            token_path.to_str().unwrap(),
            "--kube-ca-file",
            stand_in.ca_file.to_str().unwrap(),
        ]
    };
    let error = start_error(&args("https://other.example")).await;
    assert!(
        error.contains("issuer is \"https://oidc.example.com/clusters/prod\"")
            && error.contains("https://other.example"),
        "{error}"
    );
    stand_in.set_mode(Mode::Status(403));
    let error = start_error(&args(ISSUER)).await;
    assert!(
        error.contains("403") && error.contains("system:service-account-issuer-discovery"),
        "{error}"
    );
    // A CA the API server's certificate does not chain to.
    let other_ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(other_ca.path(), Ca::new().pem()).unwrap();
    stand_in.set_mode(Mode::Serve);
    let error = start_error(&[
        "--from-kube-apiserver",
        stand_in.url.as_str(),
        "--kube-token-file",
        token_path.to_str().unwrap(),
        "--kube-ca-file",
        other_ca.path().to_str().unwrap(),
    ])
    .await;
    assert!(
        error.contains("cannot reach the API server") && error.contains(&stand_in.url),
        "{error}"
    );
    // No token file.
    let error = start_error(&[
        "--from-kube-apiserver",
        stand_in.url.as_str(),
        "--kube-token-file",
        "/nonexistent/token",
        "--kube-ca-file",
        stand_in.ca_file.to_str().unwrap(),
    ])
    .await;
    assert!(
        error.contains("ServiceAccount token /nonexistent/token"),
        "{error}"
    );
}

/// A kubeconfig naming the stand-in (context `prod`; the current context is `other`, an address
/// where nothing answers), its CA (inline) and `user`.
fn kubeconfig(dir: &Path, stand_in: &StandIn, user: &str) -> PathBuf {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(&stand_in.ca_pem);
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n\
         clusters:\n- name: prod\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
         - name: other\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n- name: issuerd\n  user:\n{user}\n\
         contexts:\n- name: prod\n  context:\n    cluster: prod\n    user: issuerd\n\
         - name: other\n  context:\n    cluster: other\n    user: issuerd\n",
        stand_in.url
    );
    write_atomically(&path, text.as_bytes());
    path
}

#[tokio::test]
async fn a_kubeconfig_context_with_a_token_and_ca_is_used() {
    let stand_in = StandIn::start(&["ec256.pub.pem"], "kubeconfig-token").await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &stand_in, "    token: kubeconfig-token");
    let server = TestServer::start(&[
        "--from-kube-apiserver",
        "--kubeconfig",
        config.to_str().unwrap(),
        "--kube-context",
        "prod",
    ])
    .await;
    assert_eq!(
        served(&server, ISSUER).await,
        published_from_files(&["ec256.pub.pem"]).await
    );
    let status = statusz(&server).await;
    assert_eq!(status["kube"]["origin"], "kubeconfig context prod");
    assert_eq!(
        status["kube"]["url"],
        format!("{}/openid/v1/jwks", stand_in.url).as_str()
    );
    server.stop().await.unwrap();

    // tokenFile is re-read like the pod's token.
    let token = TokenFile::new("kubeconfig-token");
    let user = format!("    tokenFile: {}", token.path().display());
    let config = kubeconfig(dir.path(), &stand_in, &user);
    let server = TestServer::start(&[
        "--from-kube-apiserver",
        "--kubeconfig",
        config.to_str().unwrap(),
        "--kube-context",
        "prod",
    ])
    .await;
    assert_eq!(
        served(&server, ISSUER).await,
        published_from_files(&["ec256.pub.pem"]).await
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn kubeconfig_contexts_it_cannot_use_are_named() {
    let stand_in = StandIn::start(&["ec256.pub.pem"], "t").await;
    let dir = tempfile::tempdir().unwrap();
    let exec = "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token]";
    let config = kubeconfig(dir.path(), &stand_in, exec);
    let error = start_error(&[
        "--from-kube-apiserver",
        "--kubeconfig",
        config.to_str().unwrap(),
        "--kube-context",
        "prod",
    ])
    .await;
    assert!(
        error.contains("credential plugin") && error.contains("not supported"),
        "{error}"
    );
    let config = kubeconfig(dir.path(), &stand_in, "    token: t");
    let error = start_error(&[
        "--from-kube-apiserver",
        "--kubeconfig",
        config.to_str().unwrap(),
        "--kube-context",
        "missing",
    ])
    .await;
    assert!(
        error.contains("kubeconfig") && error.contains("missing"),
        "{error}"
    );
}

/// The API server settings `serve` is configured with from `args`.
fn kube_config(args: &[&str]) -> Result<issuerd::apiserver::ApiServerSettings, String> {
    let mut argv = vec!["issuerd", "serve"];
    argv.extend_from_slice(args);
    match Config::from_args(argv) {
        Ok(config) => match config.command {
            Command::Serve(serve) => serve.apiserver.ok_or_else(|| "no API server".to_owned()),
            _ => unreachable!(),
        },
        Err(error) => Err(error.to_string()),
    }
}

#[test]
fn kube_config_picks_in_cluster_kubeconfig_or_inference() {
    use issuerd::apiserver::Connection;
    use issuerd::apiserver::settings::{
        DEFAULT_MAX_STALE, DEFAULT_POLL, IN_CLUSTER_CA_FILE, IN_CLUSTER_URL,
    };
    // Neither the issuer nor a key file is needed.
    let settings = kube_config(&["--from-kube-apiserver"]).unwrap();
    assert_eq!(settings.connection, Connection::Infer { url: None });
    assert_eq!(
        (settings.poll, settings.max_stale),
        (DEFAULT_POLL, DEFAULT_MAX_STALE)
    );
    // A URL may follow, and other flags after it.
    let settings = kube_config(&[
        "--from-kube-apiserver",
        "https://10.0.0.1:6443",
        "--kube-token-file",
        "/t",
        "--kube-poll",
        "5s",
        "--kube-max-stale",
        "10m",
    ])
    .unwrap();
    assert_eq!(
        settings.connection,
        Connection::InCluster {
            url: "https://10.0.0.1:6443".parse().unwrap(),
            token_file: "/t".into(),
            ca_file: IN_CLUSTER_CA_FILE.into(),
        }
    );
    assert_eq!(settings.poll, Duration::from_secs(5));
    assert_eq!(settings.max_stale, Duration::from_secs(600));
    let settings = kube_config(&["--kube-ca-file", "/ca", "--from-kube-apiserver"]).unwrap();
    assert!(matches!(
        settings.connection,
        Connection::InCluster { url, .. } if url.as_str() == format!("{IN_CLUSTER_URL}/")
    ));
    let settings = kube_config(&[
        "--from-kube-apiserver",
        "--kubeconfig",
        "/k",
        "--kube-context",
        "prod",
    ])
    .unwrap();
    assert_eq!(
        settings.connection,
        Connection::Kubeconfig {
            file: Some("/k".into()),
            context: Some("prod".into()),
            url: None,
        }
    );
}

#[test]
fn kube_config_in_the_file_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuerd.toml");
    std::fs::write(
        &file,
        "[kube]\napiserver = \"auto\"\nkubeconfig = \"kc\"\npoll = \"30s\"\ntimeout = \"2s\"\n",
    )
    .unwrap();
    let settings = kube_config(&["--config", file.to_str().unwrap()]).unwrap();
    assert_eq!(
        settings.connection,
        issuerd::apiserver::Connection::Kubeconfig {
            file: Some(dir.path().join("kc")),
            context: None,
            url: None,
        }
    );
    assert_eq!(settings.poll, Duration::from_secs(30));
    assert_eq!(settings.timeout, Duration::from_secs(2));
    let k = key("ec256.pub.pem");
    let k = k.to_str().unwrap();
    for (args, needle) in [
        (
            &[
                "--issuer",
                "https://i.example",
                "--key-file",
                k,
                "--kube-poll",
                "5s",
            ][..],
            "kube_poll: is set but --from-kube-apiserver is not",
        ),
        (
            &["--from-kube-apiserver", "http://10.0.0.1"],
            "is not https",
        ),
        (
            &["--from-kube-apiserver", "--kube-poll", "0s"],
            "kube_poll: must be greater than zero",
        ),
        (
            &[
                "--from-kube-apiserver",
                "--kubeconfig",
                "/k",
                "--kube-token-file",
                "/t",
            ],
            "cannot be combined with --kubeconfig",
        ),
        (&["--dev", "--from-kube-apiserver"], "cannot be used with"),
        (
            &["--issuer", "https://i.example"],
            "a key source is required",
        ),
    ] {
        let error = kube_config(args).unwrap_err();
        assert!(error.contains(needle), "{args:?}: {error}");
    }
}

#[test]
fn exit_status_tells_what_was_given_from_what_the_api_server_did() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, Ca::new().pem()).unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let (_socket, port) = common::refusing_port();
    let refusing = format!("https://127.0.0.1:{port}");
    let run = |url: &str, token: &Path| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--from-kube-apiserver",
                url,
            ])
            .arg("--kube-token-file")
            .arg(token)
            .arg("--kube-ca-file")
            .arg(&ca)
            .env("NO_COLOR", "1")
            .env_remove("ISSUERD_CONFIG")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // The API server cannot be reached: a run-time failure.
    let (status, stderr) = run(&refusing, &token);
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the API server"), "{stderr}");
    // The token file given does not exist: an input error.
    let (status, stderr) = run(&refusing, &dir.path().join("missing"));
    assert_eq!(status, Some(2), "{stderr}");
    assert!(stderr.contains("ServiceAccount token"), "{stderr}");
}

/// The whole chain, locally: the stand-in API server -> `serve --from-kube-apiserver --mirror`
/// to moto -> both objects read anonymously -> `issuerd verify` of a token signed by the
/// cluster's key, fetched from the bucket as AWS STS would.
#[tokio::test]
async fn the_whole_chain_from_the_api_server_to_a_verified_token() {
    let moto = crate::common::moto::Moto::start().await;
    moto.bucket("oidc", true).await;
    // The cluster's issuer is the bucket's URL (path-style, as moto serves it).
    let issuer = format!("{}/oidc/clusters/prod", moto.url());
    let stand_in = StandIn::start(&["ec256.pub.pem"], "t").await;
    stand_in.publish(&issuer, &["ec256.pub.pem"]);
    let token = TokenFile::new("t");
    let token_path = token.path();
    let endpoint = moto.url();
    let argv = vec![
        "issuerd",
        "serve",
        "--from-kube-apiserver",
        stand_in.url.as_str(),
        "--kube-token-file",
        token_path.to_str().unwrap(),
        "--kube-ca-file",
        stand_in.ca_file.to_str().unwrap(),
        "--allow-insecure-issuer",
        "--mirror",
        "s3://oidc/clusters/prod",
        "--s3-endpoint",
        endpoint.as_str(),
        "--s3-region",
        "us-east-1",
    ];
    let Command::Serve(mut config) = Config::from_args(argv).unwrap().command else {
        unreachable!()
    };
    config.mirror.as_mut().unwrap().credentials = Some(issuerd::bucket::StaticCredentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "secret".into(),
    });
    let server =
        TestServer::start_with(TcpListener::bind("127.0.0.1:0").await.unwrap(), config).await;
    let (discovery, jwks) = served(&server, &issuer).await;
    let anonymous = |path: &str| reqwest::get(format!("{issuer}{path}"));
    eventually!(
        matches!(anonymous("/openid/v1/jwks").await, Ok(r) if r.status() == 200)
            && matches!(anonymous("/.well-known/openid-configuration").await, Ok(r) if r.status() == 200),
        "the bucket never held both documents: {}",
        statusz(&server).await["mirror"]
    );
    let object =
        |path: &'static str| async move { anonymous(path).await.unwrap().bytes().await.unwrap() };
    assert_eq!(object("/openid/v1/jwks").await, jwks);
    assert_eq!(object("/.well-known/openid-configuration").await, discovery);

    let bin = env!("CARGO_BIN_EXE_issuerd");
    let minted = std::process::Command::new(bin)
        .args(["mint", "--key"])
        .arg(key("ec256.pkcs8.pem"))
        .args([
            "--issuer",
            &issuer,
            "--subject",
            "system:serviceaccount:ns:app",
        ])
        .output()
        .unwrap();
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let jwt = String::from_utf8(minted.stdout).unwrap();
    let verify = |jwt: &str| {
        let issuer = issuer.clone();
        let jwt = jwt.trim().to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new(bin)
                    .args(["verify", &jwt, "--issuer", &issuer, "--allow-insecure"])
                    .args(["--audience", "sts.amazonaws.com"])
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let verified = verify(&jwt).await;
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    // The check can fail: a token of a key the cluster does not publish is refused.
    let other = std::process::Command::new(bin)
        .args(["mint", "--key"])
        .arg(key("ec384.pkcs8.pem"))
        .args([
            "--issuer",
            &issuer,
            "--subject",
            "system:serviceaccount:ns:app",
        ])
        .output()
        .unwrap();
    let refused = verify(&String::from_utf8(other.stdout).unwrap()).await;
    assert!(!refused.status.success());
    server.stop().await.unwrap();
}

/// `name{labels} VALUE` of the admin listener's `/metrics`, 0 when absent.
async fn metric(admin: std::net::SocketAddr, series: &str) -> f64 {
    let reply = get(admin, "/metrics").await.unwrap();
    String::from_utf8_lossy(&reply.body)
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn failed_polls_are_counted_by_cause_in_metrics() {
    let stand_in = StandIn::start(&["ec256.pub.pem"], "t").await;
    let token = TokenFile::new("t");
    let log = common::LogCapture::start();
    let server = serve_from(
        &stand_in,
        &token,
        "200ms",
        &["--issuer", ISSUER, "--admin-listen", "127.0.0.1:0"],
    )
    .await;
    let admin = log
        .field("admin listener ready", "listen")
        .await
        .parse()
        .unwrap();
    let series = |cause: &str| format!("issuerd_key_reload_failures_total{{cause=\"{cause}\"}}");
    assert_eq!(metric(admin, &series("apiserver")).await, 0.0);
    stand_in.set_mode(Mode::Status(502));
    eventually!(
        metric(admin, &series("apiserver")).await >= 1.0,
        "no apiserver failure counted"
    );
    stand_in.set_mode(Mode::Serve);
    stand_in.publish("https://elsewhere.example", &["ec256.pub.pem"]);
    eventually!(
        metric(admin, &series("issuer_mismatch")).await >= 1.0,
        "no issuer_mismatch failure counted"
    );
    // Each successful poll counts as a reload that loaded a valid set.
    stand_in.publish(ISSUER, &["ec256.pub.pem"]);
    let reloads = metric(admin, "issuerd_key_reloads_total").await;
    eventually!(
        metric(admin, "issuerd_key_reloads_total").await > reloads,
        "successful polls are not counted"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_answer_over_the_size_limit_keeps_the_last_good_set() {
    keeps_the_last_good_set(
        |s| s.publish_jwks(vec![b' '; issuerd::apiserver::MAX_DOCUMENT_BYTES + 1]),
        "too_large",
        "larger than 1048576 bytes",
    )
    .await;
}

#[tokio::test]
async fn outside_a_pod_the_current_context_of_kubeconfig_is_inferred() {
    use std::io::BufRead as _;
    let stand_in = StandIn::start(&["ec256.pub.pem"], "kc").await;
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &stand_in, "    token: kc");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("current-context: other", "current-context: prod");
    std::fs::write(&config, text).unwrap();
    // Only `--from-kube-apiserver`: no pod token here, so $KUBECONFIG's current context.
    let mut child = common::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--from-kube-apiserver"])
            .env("KUBECONFIG", &config)
            .env("HOME", dir.path())
            .env("NO_COLOR", "1")
            .env_remove("ISSUERD_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    // Read on a thread of its own: the stand-in runs on this test's thread.
    let addr = tokio::task::spawn_blocking(move || {
        let mut log = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if let Some(addr) = common::ready_address(&line) {
                return addr;
            }
            log.push_str(&line);
            log.push('\n');
        }
        panic!("serve exited before ready:\n{log}");
    })
    .await
    .unwrap();
    let want = published_from_files(&["ec256.pub.pem"]).await;
    let issuer = Issuer::new(ISSUER, None, false).unwrap();
    assert_eq!(get(addr, issuer.jwks_path()).await.unwrap().body, want.1);
    // SIGHUP asks the API server at once (the poll interval is a minute), and never ends the
    // process, even with no key file watched.
    stand_in.publish(ISSUER, &["ec384.pub.pem"]);
    let want = published_from_files(&["ec384.pub.pem"]).await;
    let pid = child.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    eventually!(
        matches!(get(addr, issuer.jwks_path()).await, Ok(r) if r.body == want.1),
        "SIGHUP did not bring the rotated keys"
    );
    assert!(child.0.try_wait().unwrap().is_none(), "SIGHUP ended serve");
    drop(child);
}

#[tokio::test]
async fn a_kubeconfig_user_with_a_client_certificate_is_used() {
    use base64::Engine as _;
    let client_ca = Ca::new();
    let stand_in = StandIn::start_with(&["ec256.pub.pem"], "unused", Some(&client_ca)).await;
    let client = client_ca.leaf(&["issuerd"], 7, (-1, 30));
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let dir = tempfile::tempdir().unwrap();
    let user = format!(
        "    client-certificate-data: {}\n    client-key-data: {}",
        b64(&client.chain),
        b64(&client.key)
    );
    let config = kubeconfig(dir.path(), &stand_in, &user);
    let args = [
        "--from-kube-apiserver",
        "--kubeconfig",
        config.to_str().unwrap(),
        "--kube-context",
        "prod",
    ];
    let server = TestServer::start(&args).await;
    assert_eq!(
        served(&server, ISSUER).await,
        published_from_files(&["ec256.pub.pem"]).await
    );
    server.stop().await.unwrap();
    // The check can fail: without the certificate, the handshake is refused.
    let config = kubeconfig(dir.path(), &stand_in, "    token: unused");
    let error = start_error(&[
        "--from-kube-apiserver",
        "--kubeconfig",
        config.to_str().unwrap(),
        "--kube-context",
        "prod",
    ])
    .await;
    assert!(error.contains("cannot reach the API server"), "{error}");
}
