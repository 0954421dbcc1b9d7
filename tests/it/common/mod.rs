//! Shared test support: fixture paths, an in-process server on 127.0.0.1:0, a small HTTP client.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod ca;
pub mod https;
pub mod moto;
pub mod proxy;

use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use issuerd::config::{Command, Config, ServeConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The JWKS path of an issuer without a path.
pub const JWKS: &str = "/openid/v1/jwks";
/// The discovery document path of an issuer without a path.
pub const DISCOVERY: &str = "/.well-known/openid-configuration";

/// `tests/fixtures/keys/<name>`.
pub fn key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

/// `tests/golden/<case>/<file>`.
pub fn golden(case: &str, file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The kid issuerd gives the (first) key of fixture `file`.
pub fn kid_of(file: &str) -> String {
    issuerd::keys::KeySet::load(&[key(file)]).unwrap().keys()[0]
        .kid()
        .to_owned()
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The address on the line `serve` logs when ready (`... ready listen=ADDR ...`, the text
/// format), or `None` for another line.
pub fn ready_address(line: &str) -> Option<SocketAddr> {
    logged_address(line, ": ready ")
}

/// The `listen=ADDR` of a log line containing `marker` (the text format), or `None`.
pub fn logged_address(line: &str, marker: &str) -> Option<SocketAddr> {
    if !line.contains(marker) {
        return None;
    }
    line.split("listen=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Polls `$cond` every 20 ms for up to 10 s; panics with `$msg` if it never holds.
#[macro_export]
macro_rules! eventually {
    ($cond:expr, $($msg:tt)+) => {{
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if $cond { break; }
            if tokio::time::Instant::now() > deadline { panic!($($msg)+); }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

/// Does what the kubelet's AtomicWriter does: a new timestamped directory, a `..data_tmp` link
/// to it renamed over `..data`, the visible names linking through `..data`.
pub fn kubelet_write(dir: &Path, generation: u32, files: &[(&str, PathBuf)]) {
    let stamp = format!("..2026_11_28_12_00_00.{generation:09}");
    let stamp_dir = dir.join(&stamp);
    std::fs::create_dir(&stamp_dir).unwrap();
    for (name, source) in files {
        std::fs::copy(source, stamp_dir.join(name)).unwrap();
    }
    let tmp_link = dir.join("..data_tmp");
    symlink(&stamp, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, dir.join("..data")).unwrap();
    for (name, _) in files {
        let visible = dir.join(name);
        if std::fs::symlink_metadata(&visible).is_err() {
            symlink(Path::new("..data").join(name), &visible).unwrap();
        }
    }
    // The kubelet removes the old directory and stale visible links afterwards.
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..20") && name != stamp {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
        if !name.starts_with("..") && !files.iter().any(|(f, _)| *f == name) {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
}

/// A server running in this process; stopped (and awaited) on `stop`.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts `issuerd serve <args>` on a pre-bound 127.0.0.1:0 listener.
    pub async fn start(args: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut argv = vec!["issuerd", "serve"];
        argv.extend_from_slice(args);
        let Command::Serve(config) = Config::from_args(argv).expect("valid test config").command
        else {
            unreachable!("serve arguments make a serve config")
        };
        Self::start_with(listener, config).await
    }

    pub async fn start_with(listener: TcpListener, config: ServeConfig) -> Self {
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(issuerd::app::serve_on(listener, config, async {
            let _ = stopped.await;
        }));
        let server = Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        let addr = self.addr;
        eventually!(
            matches!(get(addr, "/readyz").await, Ok(r) if r.status == StatusCode::OK),
            "server on {addr} never became ready"
        );
    }

    /// Stops the server and returns what `serve_on` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A response, body collected.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Reply> {
    request(addr, Method::GET, path, &[]).await
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        sender.send_request(builder.body(Empty::<Bytes>::new())?),
    )
    .await??;
    let (parts, body) = response.into_parts();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await?.to_bytes(),
    })
}

/// One HTTP/2 prior-knowledge (h2c) request.
pub async fn request_h2c(addr: SocketAddr, path: &str) -> anyhow::Result<Reply> {
    request_h2c_with(addr, path, &[]).await
}

/// One HTTP/2 prior-knowledge (h2c) GET with extra headers (repeats allowed).
pub async fn request_h2c_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    request_h2c_method(addr, Method::GET, path, headers).await
}

/// One HTTP/2 prior-knowledge (h2c) request.
pub async fn request_h2c_method(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await?.to_bytes(),
    })
}

/// A child process that is killed if the test ends (or panics) before it exits.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `issuerd serve` over HTTPS on 127.0.0.1 with the certificate chain `chain` (leaf first) and
/// its key, publishing the ec256 fixture key for issuer `https://localhost`; killed on drop.
pub struct TlsServe {
    pub child: KillOnDrop,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
}

impl TlsServe {
    pub fn start(chain: &Path, key_file: &Path) -> Self {
        use std::io::{BufRead as _, BufReader};
        let mut child = KillOnDrop(
            std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
                .args([
                    "serve",
                    "--issuer",
                    "https://localhost",
                    "--listen",
                    "127.0.0.1:0",
                ])
                .arg("--key-file")
                .arg(key("ec256.pub.pem"))
                .arg("--tls-cert")
                .arg(chain)
                .arg("--tls-key")
                .arg(key_file)
                .env_remove("ISSUERD_CONFIG")
                .env("NO_COLOR", "1")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = String::new();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "issuerd serve --tls-cert {} exited before ready:\n{log}",
                    chain.display()
                );
            };
            log.push_str(&line);
            log.push('\n');
            if let Some(addr) = ready_address(&line) {
                break addr;
            }
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            url: format!("https://{addr}"),
        }
    }
}

/// One canned answer of a [`fake_issuer`].
#[derive(Clone, Debug)]
pub struct Route {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Route {
    /// 200 with this Content-Type and body.
    pub fn ok(content_type: &str, body: impl Into<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", content_type.to_owned())],
            body: body.into(),
        }
    }

    /// Adds a header.
    pub fn with(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A tiny issuer on 127.0.0.1:0 answering canned routes (404 elsewhere) after `delay`, to
/// produce what `serve` never does. `routes` gets the issuer URL (`http://127.0.0.1:PORT`).
pub async fn fake_issuer(
    delay: Duration,
    routes: impl FnOnce(&str) -> std::collections::HashMap<String, Route>,
) -> (String, JoinHandle<()>) {
    let (issuer, task, _) = counting_fake_issuer(delay, routes).await;
    (issuer, task)
}

/// [`fake_issuer`], also counting the requests it answers.
pub async fn counting_fake_issuer(
    delay: Duration,
    routes: impl FnOnce(&str) -> std::collections::HashMap<String, Route>,
) -> (
    String,
    JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let routes = Arc::new(routes(&issuer));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let routes = Arc::clone(&routes);
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let route = routes.get(request.uri().path()).cloned();
                        async move {
                            tokio::time::sleep(delay).await;
                            let route = route.unwrap_or(Route {
                                status: 404,
                                headers: vec![("content-type", "text/plain".into())],
                                body: "not found".into(),
                            });
                            let mut response = http::Response::builder().status(route.status);
                            for (name, value) in &route.headers {
                                response = response.header(*name, value);
                            }
                            Ok::<_, std::convert::Infallible>(
                                response
                                    .body(http_body_util::Full::new(Bytes::from(route.body)))
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
    (issuer, task, hits)
}

/// `serve` on 127.0.0.1:PORT with issuer `http://127.0.0.1:PORT` and `args` appended (key files
/// and the like); returns the server and the issuer.
pub async fn start_local_issuer(args: &[&str]) -> (TestServer, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let mut argv = vec![
        "issuerd",
        "serve",
        "--issuer",
        &issuer,
        "--allow-insecure-issuer",
    ];
    argv.extend_from_slice(args);
    let Command::Serve(config) = Config::from_args(argv).expect("valid test config").command else {
        unreachable!("serve arguments make a serve config")
    };
    (TestServer::start_with(listener, config).await, issuer)
}

/// The JWKS `serve` publishes for these fixture keys.
pub fn published_jwks(files: &[&str]) -> String {
    let keys =
        issuerd::keys::KeySet::load(&files.iter().map(|f| key(f)).collect::<Vec<_>>()).unwrap();
    let publication = issuerd::issuer::Publication {
        issuer: issuerd::issuer::Issuer::new("https://unused.example", None, false).unwrap(),
        profile: Default::default(),
        max_age_secs: 60,
    };
    let documents = issuerd::document::Documents::render(&publication, &keys);
    String::from_utf8(documents.jwks.body.to_vec()).unwrap()
}

/// What the servers of this test log, as `serve` writes it (tracing's fmt format, no colours):
/// to read what is only known once bound, such as the address of a listener on port 0.
///
/// The subscriber is this thread's default while the capture lives, never the process's global
/// one (the tests share one process). It sees every task of a server started in a
/// current-thread runtime (plain `#[tokio::test]`): they all run on the test's thread.
pub struct LogCapture {
    log: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _default: tracing::subscriber::DefaultGuard,
}

/// One writer of a [`LogCapture`]: appends to its buffer.
struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    pub fn start() -> Self {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = std::sync::Arc::clone(&log);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || CaptureWriter(std::sync::Arc::clone(&writer)))
            .finish();
        Self {
            log,
            _default: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// The value of `field` on the first line logging `message`, waited for (10 s at most).
    pub async fn field(&self, message: &str, field: &str) -> String {
        let find = || {
            let key = format!(" {field}=");
            self.text()
                .lines()
                .filter(|line| line.contains(&format!(": {message}")))
                .find_map(|line| {
                    Some(
                        line.split(&key)
                            .nth(1)?
                            .split_whitespace()
                            .next()?
                            .to_owned(),
                    )
                })
        };
        eventually!(
            find().is_some(),
            "nothing logged `{message}` with {field}=:\n{}",
            self.text()
        );
        find().unwrap()
    }
}

/// A port on 127.0.0.1 where connections are refused, and stay refused while the guard lives:
/// it is bound but not listening, so no other process can take it meanwhile (as it could a
/// port found free and closed again).
pub fn refusing_port() -> (socket2::Socket, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&any.into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    (socket, port)
}

/// One store's documents served by issuerd's `Server` and by the same `IssuerService` handed to
/// hyper: the two sides of the differential tests (EC P-256 key, issuer `https://h.example`).
pub struct DifferentialFixture {
    pub store: issuerd::store::Store,
    pub service: issuerd::server::IssuerService,
    pub server: std::sync::Arc<issuerd::server::Server>,
    /// The ETags of the discovery document and the JWKS.
    pub etags: Vec<String>,
}

impl DifferentialFixture {
    pub fn new() -> Self {
        use issuerd::issuer::{DiscoveryProfile, Issuer, Publication};
        let publication = Publication {
            issuer: Issuer::new("https://h.example", None, false).unwrap(),
            profile: DiscoveryProfile::Kubernetes,
            max_age_secs: 3600,
        };
        let keys = issuerd::keys::KeySet::load(&[key("ec256.pub.pem")]).unwrap();
        let store = issuerd::store::Store::new(publication, keys);
        let readiness = issuerd::shutdown::Readiness::default();
        readiness.set_ready();
        let service = issuerd::server::IssuerService::new(store.reader(), readiness);
        let server = std::sync::Arc::new(issuerd::server::Server::new(
            service.clone(),
            issuerd::server::Timeouts::default(),
        ));
        let snapshot = store.current();
        let etags = vec![snapshot.discovery.etag.clone(), snapshot.jwks.etag.clone()];
        Self {
            store,
            service,
            server,
            etags,
        }
    }
}

/// The serial (lowercase hex) of the leaf certificate a TLS connection was served.
pub fn served_serial(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> String {
    use x509_cert::der::Decode as _;
    let leaf = &stream.get_ref().1.peer_certificates().unwrap()[0];
    let cert = x509_cert::Certificate::from_der(leaf).unwrap();
    cert.tbs_certificate
        .serial_number
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The HTTP/2 client connection preface (RFC 9113 section 3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/2 frame types (RFC 9113 section 6), for [`h2_frame`].
pub mod frame_type {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const CONTINUATION: u8 = 0x9;
}

/// One raw HTTP/2 frame, for clients that misbehave on purpose: length, type, flags, stream.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    assert_eq!(len[0], 0, "a frame payload is at most 2^24 - 1 bytes");
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}
