//! ACME against a real pebble (Let's Encrypt's test CA): first certificate with real
//! tls-alpn-01 validation, restart from the cache without a new order, forced renewal, and
//! pebble unreachable; plus the configuration rules of the `--acme-*` flags.
//!
//! pebble (Debian package `pebble`, with `pebble-challtestsrv` as its DNS) must be installed:
//! the tests fail, never skip, without it.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use issuerd::config::{Command as Cmd, Config, ConfigError};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use x509_cert::der::Decode as _;

/// The name ordered; pebble-challtestsrv resolves every name to 127.0.0.1.
const DOMAIN: &str = "issuer.acme.test";

// === pebble ===

/// A pebble ACME server and its DNS (pebble-challtestsrv) on free loopback ports, killed on drop.
struct Pebble {
    dir: tempfile::TempDir,
    pebble: Option<Child>,
    dns: Child,
    /// `https://127.0.0.1:<port>/dir`.
    directory: String,
    /// `https://127.0.0.1:<port>/roots/0`.
    roots_url: String,
    dns_port: u16,
    /// The CA of pebble's own HTTPS listener (for `--acme-directory-ca`).
    https_ca: PathBuf,
    /// The root the issued chains end in (management API `/roots/0`); new on every start.
    root: CertificateDer<'static>,
}

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: `apt-get install pebble` (scripts/test.sh and .ci/run do)"
    );
}

/// A port free for both TCP and UDP on 127.0.0.1 (the DNS server listens on both).
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Pebble {
    /// Starts pebble validating tls-alpn-01 on `tls_port` (where issuerd listens).
    async fn start(tls_port: u16) -> Self {
        Self::start_with(tls_port, free_port()).await
    }

    /// Starts pebble validating tls-alpn-01 on `tls_port` and http-01 on `http_port`. Its own
    /// ports are picked free beforehand (pebble cannot listen on port 0 and say where): when
    /// another test took one in between, it starts again on new ones.
    async fn start_with(tls_port: u16, http_port: u16) -> Self {
        require("pebble");
        require("pebble-challtestsrv");
        let mut attempt = 1;
        loop {
            match Self::try_start(tls_port, http_port).await {
                Ok(pebble) => return pebble,
                Err(log) if log.contains("address already in use") && attempt < 5 => {
                    attempt += 1;
                }
                Err(log) => panic!("pebble did not come up: {log}"),
            }
        }
    }

    async fn try_start(tls_port: u16, http_port: u16) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        // pebble ships no certificate for its own HTTPS listener: a CA and a 127.0.0.1 leaf.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let https_ca = dir.path().join("pebble-https-ca.pem");
        std::fs::write(&https_ca, ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();

        let (acme_port, management_port, dns_port) = (free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();

        // Every name resolves to 127.0.0.1 (A only), where issuerd listens.
        let dns_log = std::fs::File::create(dir.path().join("dns.log")).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdin(Stdio::null())
            .stdout(dns_log.try_clone().unwrap())
            .stderr(dns_log)
            .spawn()
            .expect("start pebble-challtestsrv");
        let mut pebble = Self {
            dir,
            pebble: None,
            dns,
            directory: format!("https://127.0.0.1:{acme_port}/dir"),
            roots_url: format!("https://127.0.0.1:{management_port}/roots/0"),
            dns_port,
            https_ca,
            root: CertificateDer::from(Vec::new()),
        };
        pebble.try_spawn().await?;
        Ok(pebble)
    }

    /// Starts the pebble process (again) and waits for its directory and new root.
    async fn spawn(&mut self) {
        if let Err(log) = self.try_spawn().await {
            panic!("pebble did not come up: {log}");
        }
    }

    /// [`Self::spawn`], returning pebble's and the DNS server's logs when it does not come up.
    async fn try_spawn(&mut self) -> Result<(), String> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let mut command = Command::new("pebble");
        command
            .arg("-config")
            .arg(self.dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns_port)])
            .args(["-strict=false"])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order is validated again (no reuse of earlier valid authorizations).
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        self.pebble = Some(command.spawn().expect("start pebble"));
        let ca = std::fs::read(&self.https_ca).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        let logs = |dir: &Path| {
            ["pebble.log", "dns.log"]
                .map(|name| std::fs::read_to_string(dir.join(name)).unwrap_or_default())
                .join("\n")
        };
        for _ in 0..200 {
            if let Ok(reply) = client.get(&self.roots_url).send().await
                && reply.status().is_success()
                && client.get(&self.directory).send().await.is_ok()
            {
                let pem = reply.text().await.unwrap();
                self.root =
                    rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes()).unwrap();
                // The DNS server may have lost its port too; it says so at once.
                let logs = logs(self.dir.path());
                if logs.contains("address already in use") {
                    return Err(logs);
                }
                return Ok(());
            }
            let exited = self
                .pebble
                .as_mut()
                .is_some_and(|p| matches!(p.try_wait(), Ok(Some(_))));
            if exited {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(logs(self.dir.path()))
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("pebble.log")
    }

    /// Orders placed so far, over every start (pebble logs every request).
    fn orders(&self) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap()
            .matches("POST /order-plz")
            .count()
    }

    /// Stops the pebble process (its DNS stays).
    fn kill(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.kill();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}

// === client side ===

/// A TLS connection to `addr` with SNI `DOMAIN`, verified against `root` only.
async fn connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(DOMAIN).unwrap(), stream)
        .await
}

/// A verified handshake's serial, retried for a while (the first certificate takes a moment).
async fn serial_when_served(addr: SocketAddr, root: &CertificateDer<'static>) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match connect(addr, root).await {
            Ok(stream) => return common::served_serial(&stream),
            Err(error) if tokio::time::Instant::now() > deadline => {
                panic!("no verified certificate served on {addr}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// An HTTP/1.1 keep-alive connection over a verified TLS connection.
struct Https {
    serial: String,
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
}

impl Https {
    async fn open(addr: SocketAddr, root: &CertificateDer<'static>) -> Self {
        let stream = connect(addr, root).await.expect("verified TLS connection");
        let serial = common::served_serial(&stream);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        Self { serial, sender }
    }

    async fn get(&mut self, path: &str) -> (http::StatusCode, bytes::Bytes) {
        use http_body_util::BodyExt as _;
        let request = http::Request::get(path)
            .header("host", DOMAIN)
            .body(http_body_util::Empty::new())
            .unwrap();
        let response =
            tokio::time::timeout(Duration::from_secs(10), self.sender.send_request(request))
                .await
                .expect("answer within 10 s")
                .expect("response");
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }
}

/// `/statusz`'s `acme` section, over a new verified connection.
async fn acme_status(addr: SocketAddr, root: &CertificateDer<'static>) -> serde_json::Value {
    let (status, body) = Https::open(addr, root).await.get("/statusz").await;
    assert_eq!(status, http::StatusCode::OK);
    let statusz: serde_json::Value = serde_json::from_slice(&body).unwrap();
    statusz["acme"].clone()
}

// === issuerd ===

/// `issuerd serve` with ACME against `pebble`, on `listener`, until dropped.
struct Issuerd {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Issuerd {
    fn start(listener: TcpListener, pebble: &Pebble, cache: &Path, extra: &[&str]) -> Self {
        let key = common::key("ec256.pub.pem");
        let mut args = vec![
            "issuerd".to_owned(),
            "serve".into(),
            "--issuer".into(),
            format!("https://{DOMAIN}"),
            "--key-file".into(),
            key.display().to_string(),
            "--acme-domain".into(),
            DOMAIN.into(),
            "--acme-accept-tos".into(),
            "--acme-email".into(),
            "ops@acme.test".into(),
            "--acme-directory".into(),
            pebble.directory.clone(),
            "--acme-directory-ca".into(),
            pebble.https_ca.display().to_string(),
            "--acme-cache".into(),
            cache.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let Cmd::Serve(config) = Config::from_args(args).expect("valid config").command else {
            unreachable!()
        };
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(issuerd::app::serve_on(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task
            .take()
            .unwrap()
            .await
            .unwrap()
            .expect("serve ends cleanly");
    }
}

impl Drop for Issuerd {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// === cases ===

/// A first certificate through real tls-alpn-01 validation (pebble connects to issuerd's
/// listener), served to a client that trusts only pebble's root; then a restart that serves the
/// cached certificate at once and places no order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_certificate_then_restart_from_the_cache_without_an_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pebble = Pebble::start(listener.local_addr().unwrap().port()).await;
    let cache = tempfile::tempdir().unwrap();
    let server = Issuerd::start(listener, &pebble, cache.path(), &[]);

    let serial = serial_when_served(server.addr, &pebble.root).await;
    assert_eq!(pebble.orders(), 1);
    let mut https = Https::open(server.addr, &pebble.root).await;
    let (status, jwks) = https.get("/openid/v1/jwks").await;
    assert_eq!(status, http::StatusCode::OK);
    assert!(String::from_utf8_lossy(&jwks).contains("\"keys\""));
    let acme = acme_status(server.addr, &pebble.root).await;
    assert_eq!(acme["serial"], serial.as_str(), "{acme}");
    assert_eq!(acme["source"], "acme");
    assert_eq!(acme["orders"], 1);
    assert!(acme["last_error"].is_null(), "{acme}");
    assert!(acme["last_success"].is_u64(), "{acme}");
    // Next renewal 30 days before pebble's 5-year expiry.
    let renewal = acme["next_attempt"].as_u64().unwrap();
    let not_after = acme["not_after"].as_u64().unwrap();
    assert_eq!(not_after - renewal, 30 * 24 * 3600, "{acme}");
    for file in [
        issuerd::acme::ACCOUNT_FILE,
        issuerd::acme::CERTIFICATE_FILE,
        issuerd::acme::KEY_FILE,
    ] {
        assert_eq!(mode(&cache.path().join(file)), 0o600, "{file}");
    }
    drop(https);
    server.stop().await;

    // Restart: the cached certificate is served at once, and pebble sees no new order.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Issuerd::start(listener, &pebble, cache.path(), &[]);
    assert_eq!(serial_when_served(server.addr, &pebble.root).await, serial);
    let acme = acme_status(server.addr, &pebble.root).await;
    assert_eq!(acme["source"], "cache", "{acme}");
    assert_eq!(acme["orders"], 0, "{acme}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        pebble.orders(),
        1,
        "a restart with a valid cached certificate ordered again"
    );
    server.stop().await;
}

/// Renewal forced by `--acme-renew-before`: with pebble down, the due renewal fails, the error is
/// reported and the cached certificate keeps being served; once pebble is back (a new CA that
/// has forgotten the account), the renewal succeeds, new connections get the new serial and a
/// connection opened before keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_renewal_survives_an_unreachable_server_and_keeps_old_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut pebble = Pebble::start(port).await;
    let cache = tempfile::tempdir().unwrap();
    let server = Issuerd::start(listener, &pebble, cache.path(), &[]);
    let first = serial_when_served(server.addr, &pebble.root).await;
    server.stop().await;
    let first_root = pebble.root.clone();

    // pebble unreachable; the cached certificate (5 years left) is due with 2000 days' notice.
    pebble.kill();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let server = Issuerd::start(
        listener,
        &pebble,
        cache.path(),
        &["--acme-renew-before", "2000days"],
    );
    let mut old = Https::open(server.addr, &first_root).await;
    assert_eq!(old.serial, first);
    let acme = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let acme = acme_status(server.addr, &first_root).await;
            if !acme["last_error"].is_null() {
                break acme;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no error reported: {acme}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let error = acme["last_error"].as_str().unwrap();
    assert!(error.contains(&pebble.directory), "{error}");
    assert_eq!(acme["serial"], first.as_str(), "{acme}");
    assert!(acme["failures"].as_u64().unwrap() >= 1, "{acme}");
    let (status, _) = old.get("/readyz").await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(Https::open(server.addr, &first_root).await.serial, first);

    // pebble is back (new root, account forgotten): the retry, after backoff, renews.
    pebble.spawn().await;
    let renewed = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(stream) = connect(server.addr, &pebble.root).await {
                break common::served_serial(&stream);
            }
            assert!(tokio::time::Instant::now() < deadline, "never renewed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    assert_ne!(renewed, first);
    let acme = acme_status(server.addr, &pebble.root).await;
    assert_eq!(acme["serial"], renewed.as_str(), "{acme}");
    assert!(acme["last_error"].is_null(), "{acme}");
    assert_eq!(acme["source"], "acme");
    // The connection opened before the renewal still works, on the certificate it started with.
    let (status, jwks) = old.get("/openid/v1/jwks").await;
    assert_eq!(status, http::StatusCode::OK);
    assert!(!jwks.is_empty());
    assert_eq!(old.serial, first);
    // The cache now holds the renewed certificate.
    let cached =
        std::fs::read_to_string(cache.path().join(issuerd::acme::CERTIFICATE_FILE)).unwrap();
    let leaf: CertificateDer =
        rustls::pki_types::pem::PemObject::from_pem_slice(cached.as_bytes()).unwrap();
    let parsed = x509_cert::Certificate::from_der(&leaf).unwrap();
    let hex: String = parsed
        .tbs_certificate
        .serial_number
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, renewed);
    server.stop().await;
}

/// The ACME task's settings for `DOMAIN` (library-level tests).
fn settings(directory: &str, ca: Option<&Path>, cache: &Path) -> issuerd::acme::Settings {
    issuerd::acme::Settings {
        domains: vec![DOMAIN.into()],
        email: None,
        directory: directory.to_owned(),
        directory_ca: ca.map(Path::to_owned),
        cache: cache.to_owned(),
        renew_before: Duration::from_secs(30 * 24 * 3600),
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(1),
        order_timeout: Duration::from_secs(60),
    }
}

/// Validation is real: with pebble validating a port where nothing answers, the order fails
/// with pebble's reason, and nothing is installed or cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_challenge_fails_the_order_with_the_servers_reason() {
    let nobody = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pebble = Pebble::start(nobody.local_addr().unwrap().port()).await;
    drop(nobody);
    let cache = tempfile::tempdir().unwrap();
    let settings = settings(&pebble.directory, Some(&pebble.https_ca), cache.path());
    let certificates = issuerd::tls::Certificates::default();
    let status = issuerd::acme::AcmeStatus::default();
    let mut acme = issuerd::acme::Acme::new(settings, certificates.clone(), status).unwrap();
    let error = acme.renew().await.unwrap_err();
    let text = issuerd::log::error_chain(&error);
    assert!(
        text.contains("tls-alpn-01") && text.contains(&pebble.directory),
        "{text}"
    );
    assert!(certificates.current().is_none());
    assert!(!cache.path().join(issuerd::acme::CERTIFICATE_FILE).exists());
    assert_eq!(pebble.orders(), 1);
}

/// A directory that accepts connections and never answers: the order times out, the error is
/// reported, and the task retries (it is not stuck on the first attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_the_order_out_and_it_is_retried() {
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    let accepting = tokio::spawn(async move {
        while let Ok((stream, _)) = silent.accept().await {
            keep.lock().unwrap().push(stream);
        }
    });
    let cache = tempfile::tempdir().unwrap();
    let settings = issuerd::acme::Settings {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(200),
        order_timeout: Duration::from_millis(500),
        ..settings(&format!("https://{addr}/dir"), None, cache.path())
    };
    let status = issuerd::acme::AcmeStatus::default();
    let acme = issuerd::acme::Acme::new(
        settings,
        issuerd::tls::Certificates::default(),
        status.clone(),
    )
    .unwrap();
    let (trigger, signal) = issuerd::shutdown::channel();
    let task = tokio::spawn(acme.run(signal));
    eventually!(
        status.get().failures >= 2,
        "no retry after a timeout: {:?}",
        status.get()
    );
    let state = status.get();
    let error = state.last_error.unwrap();
    assert!(
        error.contains("took longer than 500ms") && error.contains(&addr.to_string()),
        "{error}"
    );
    assert!(held.lock().unwrap().len() >= 2, "the retry never connected");
    trigger.trigger();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    accepting.abort();
}

/// With `--acme-http-listen`, http-01 is answered on that plain listener (pebble validates there;
/// nothing answers tls-alpn-01), and the listener serves nothing but challenge tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_on_a_plain_listener() {
    let nobody = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_port = free_port();
    let pebble = Pebble::start_with(nobody.local_addr().unwrap().port(), http_port).await;
    drop(nobody);
    let cache = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_listen = format!("127.0.0.1:{http_port}");
    let server = Issuerd::start(
        listener,
        &pebble,
        cache.path(),
        &["--acme-http-listen", &http_listen],
    );
    let serial = serial_when_served(server.addr, &pebble.root).await;
    assert_eq!(pebble.orders(), 1);
    assert_eq!(
        acme_status(server.addr, &pebble.root).await["serial"],
        serial.as_str()
    );
    let plain: SocketAddr = http_listen.parse().unwrap();
    for path in [
        "/.well-known/acme-challenge/unknown",
        "/openid/v1/jwks",
        "/statusz",
    ] {
        let reply = common::get(plain, path).await.unwrap();
        assert_eq!(reply.status, http::StatusCode::NOT_FOUND, "{path}");
    }
    server.stop().await;
}

// === configuration ===

fn serve_error(args: &[&str]) -> String {
    let key = common::key("ec256.pub.pem");
    let mut argv = vec![
        "issuerd",
        "serve",
        "--issuer",
        "https://issuer.example",
        "--key-file",
    ];
    let key = key.display().to_string();
    argv.push(&key);
    argv.extend_from_slice(args);
    match Config::from_args(argv) {
        Ok(_) => panic!("accepted {args:?}"),
        Err(error) => error_text(&error),
    }
}

fn error_text(error: &ConfigError) -> String {
    issuerd::log::error_chain(error)
}

#[test]
fn acme_needs_the_terms_accepted_and_a_cache() {
    let text = serve_error(&["--acme-domain", "issuer.example", "--acme-cache", "/tmp/x"]);
    assert!(text.contains("--acme-accept-tos"), "{text}");
    let text = serve_error(&["--acme-domain", "issuer.example", "--acme-accept-tos"]);
    assert!(text.contains("--acme-cache"), "{text}");
}

#[test]
fn acme_and_tls_files_are_exclusive() {
    let text = serve_error(&[
        "--acme-domain",
        "issuer.example",
        "--acme-accept-tos",
        "--acme-cache",
        "/tmp/x",
        "--tls-cert",
        "/tmp/c.pem",
        "--tls-key",
        "/tmp/k.pem",
    ]);
    assert!(
        text.contains("--tls-cert") && text.contains("ACME"),
        "{text}"
    );
}

#[test]
fn acme_settings_are_checked() {
    let base = ["--acme-accept-tos", "--acme-cache", "/tmp/x"];
    for (args, expected) in [
        (vec!["--acme-domain", "*.example.com"], "wildcard"),
        (vec!["--acme-domain", "10.0.0.1"], "IP address"),
        (
            vec!["--acme-domain", "https://issuer.example"],
            "not a DNS name",
        ),
        (
            vec![
                "--acme-domain",
                "issuer.example",
                "--acme-directory",
                "http://ca.example/dir",
            ],
            "https://",
        ),
        (
            vec![
                "--acme-domain",
                "issuer.example",
                "--acme-email",
                "mailto:a@b.example",
            ],
            "without mailto",
        ),
        (
            vec![
                "--acme-domain",
                "issuer.example",
                "--acme-renew-before",
                "0s",
            ],
            "greater than zero",
        ),
    ] {
        let mut all = args.clone();
        all.extend_from_slice(&base);
        let text = serve_error(&all);
        assert!(text.contains(expected), "{args:?}: {text}");
    }
    // Companions without a domain are a mistake, not silently ignored.
    let text = serve_error(&["--acme-cache", "/tmp/x"]);
    assert!(
        text.contains("acme_cache") && text.contains("--acme-domain"),
        "{text}"
    );
    // An issuer with a port is refused with ACME as with --tls-cert (AWS's rule).
    let key = common::key("ec256.pub.pem").display().to_string();
    let error = Config::from_args([
        "issuerd",
        "serve",
        "--issuer",
        "https://issuer.example:8443",
        "--key-file",
        &key,
        "--acme-domain",
        "issuer.example",
        "--acme-accept-tos",
        "--acme-cache",
        "/tmp/x",
    ])
    .err()
    .unwrap();
    assert!(
        error_text(&error).contains("port 8443"),
        "{}",
        error_text(&error)
    );
}

#[test]
fn acme_defaults_and_file_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuerd.toml");
    let key = common::key("ec256.pub.pem");
    std::fs::write(
        &file,
        format!(
            "issuer = \"https://issuer.example\"\nkey_files = [{:?}]\n[acme]\ndomains = [\"Issuer.Example.\"]\n\
             accept_tos = true\ncache = \"acme\"\nrenew_before = \"10days\"\n",
            key.display().to_string()
        ),
    )
    .unwrap();
    let config =
        Config::from_args(["issuerd", "serve", "--config", file.to_str().unwrap()]).unwrap();
    let Cmd::Serve(serve) = config.command else {
        unreachable!()
    };
    let acme = serve.acme.expect("ACME on");
    assert_eq!(acme.domains, ["issuer.example"]);
    assert_eq!(acme.cache, dir.path().join("acme"));
    assert_eq!(acme.directory, issuerd::config::DEFAULT_ACME_DIRECTORY);
    assert_eq!(acme.renew_before, Duration::from_secs(10 * 24 * 3600));
    // Flags win over the file.
    let config = Config::from_args([
        "issuerd",
        "serve",
        "--config",
        file.to_str().unwrap(),
        "--acme-renew-before",
        "1h",
    ])
    .unwrap();
    let Cmd::Serve(serve) = config.command else {
        unreachable!()
    };
    assert_eq!(serve.acme.unwrap().renew_before, Duration::from_secs(3600));
}
