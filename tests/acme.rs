//! ACME against a real pebble (Let's Encrypt's test CA): first certificate with real
//! tls-alpn-01 validation, restart from the cache without a new order, forced renewal, and
//! pebble unreachable; plus the configuration rules of the `--acme-*` flags.
//!
//! pebble (Debian package `pebble`, with `pebble-challtestsrv` as its DNS) must be installed:
//! the tests fail, never skip, without it.

#[macro_use]
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use issuerd::config::{Command as Cmd, Config, ConfigError};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use x509_cert::der::Decode as _;

/// The name ordered; pebble-challtestsrv resolves every name to 127.0.0.1.
const DOMAIN: &str = "issuer.acme.test";

// === pebble ===

/// A pebble ACME server and its DNS (pebble-challtestsrv) on free loopback ports, killed on drop.
struct Pebble {
    _dir: tempfile::TempDir,
    pebble: Child,
    dns: Child,
    log: PathBuf,
    /// `https://127.0.0.1:<port>/dir`.
    directory: String,
    /// The CA of pebble's own HTTPS listener (for `--acme-directory-ca`).
    https_ca: PathBuf,
    /// The root the issued chains end in (management API `/roots/0`).
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
    async fn start(tls_port: u16, always_valid: bool) -> Self {
        require("pebble");
        require("pebble-challtestsrv");
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
            "httpPort": free_port(),
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();

        let dns_log = std::fs::File::create(dir.path().join("dns.log")).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .stdout(dns_log.try_clone().unwrap())
            .stderr(dns_log)
            .spawn()
            .expect("start pebble-challtestsrv");
        let log = dir.path().join("pebble.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new("pebble");
        command
            .arg("-config")
            .arg(&config_path)
            .args([
                "-dnsserver",
                &format!("127.0.0.1:{dns_port}"),
                "-strict=false",
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order is validated again (no reuse of earlier valid authorizations).
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if always_valid {
            command.env("PEBBLE_VA_ALWAYS_VALID", "1");
        }
        let pebble = command.spawn().expect("start pebble");

        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .build()
            .unwrap();
        let directory = format!("https://127.0.0.1:{acme_port}/dir");
        let roots = format!("https://127.0.0.1:{management_port}/roots/0");
        let mut root_pem = None;
        for _ in 0..200 {
            if let Ok(reply) = client.get(&roots).send().await
                && reply.status().is_success()
                && client.get(&directory).send().await.is_ok()
            {
                root_pem = Some(reply.text().await.unwrap());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let root_pem = root_pem.unwrap_or_else(|| {
            panic!(
                "pebble did not come up: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let root = rustls::pki_types::pem::PemObject::from_pem_slice(root_pem.as_bytes()).unwrap();
        Self {
            _dir: dir,
            pebble,
            dns,
            log,
            directory,
            https_ca,
            root,
        }
    }

    /// Orders placed so far (pebble logs every request).
    fn orders(&self) -> usize {
        self.log_text().matches("/order-plz").count()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn stop(&mut self) {
        for child in [&mut self.pebble, &mut self.dns] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
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

/// The serial (hex) of the leaf a verified connection was served.
fn served_serial(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let leaf = &stream.get_ref().1.peer_certificates().unwrap()[0];
    let cert = x509_cert::Certificate::from_der(leaf).unwrap();
    cert.tbs_certificate
        .serial_number
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A verified handshake's serial, retried for a while (the first certificate takes a moment).
async fn serial_when_served(addr: SocketAddr, root: &CertificateDer<'static>) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match connect(addr, root).await {
            Ok(stream) => return served_serial(&stream),
            Err(error) if tokio::time::Instant::now() > deadline => {
                panic!("no verified certificate served on {addr}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
