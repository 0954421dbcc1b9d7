//! TLS handshake load for `benches/load/run.sh`: C concurrent clients, each in a loop of new TCP
//! connection -> TLS handshake (full, or resumed from a ticket / session ID) -> one HTTP/1.1
//! request with `Connection: close` -> read to the end. The same rustls client (X25519 key
//! exchange only, so every server does the same ECDHE) drives issuerd and nginx.
//!
//! Usage: tls_load URL CONNS SECONDS full|resume
//! Prints "REQUESTS RPS P99_MS ERRORS" on stdout, the handshake mix on stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use issuerd::tls::client::AnyCertificate;
use rustls::HandshakeKind;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    errors: AtomicU64,
    resumed: AtomicU64,
    full: AtomicU64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, conns, seconds, mode] = &args[..] else {
        eprintln!("usage: tls_load URL CONNS SECONDS full|resume");
        std::process::exit(2);
    };
    let url = url::Url::parse(url).expect("URL");
    let conns: usize = conns.parse().expect("CONNS");
    let duration = Duration::from_secs_f64(seconds.parse().expect("SECONDS"));
    let resume = match mode.as_str() {
        "full" => false,
        "resume" => true,
        other => panic!("mode must be full or resume, not {other}"),
    };
    let addr = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port_or_known_default().expect("port")
    );
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        url.path()
    );

    let mut provider = aws_lc_rs::default_provider();
    provider.kx_groups = vec![aws_lc_rs::kx_group::X25519];
    let provider = Arc::new(provider);
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        // Trusts any certificate: the load is the server's, not the client's chain validation.
        .with_custom_certificate_verifier(AnyCertificate::new(provider))
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    } else {
        config.resumption = rustls::client::Resumption::in_memory_sessions(4096);
    }
    let connector = TlsConnector::from(Arc::new(config));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("THREADS")
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(2),
        )
        .enable_all()
        .build()
        .expect("runtime");
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let deadline = started + duration;
    let latencies = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (connector, counts, addr, request) = (
                connector.clone(),
                Arc::clone(&counts),
                addr.clone(),
                request.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut response = Vec::with_capacity(4096);
                while Instant::now() < deadline {
                    let start = Instant::now();
                    match once(&connector, &addr, &request, &mut response).await {
                        Ok(kind) => {
                            counts.requests.fetch_add(1, Ordering::Relaxed);
                            let counter = if kind == HandshakeKind::Resumed {
                                &counts.resumed
                            } else {
                                &counts.full
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                            latencies.push(start.elapsed().as_micros() as u32);
                        }
                        Err(_) => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("client task"));
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = latencies;
    latencies.sort_unstable();
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .map_or(f64::NAN, |us| f64::from(*us) / 1000.0);
    let requests = counts.requests.load(Ordering::Relaxed);
    eprintln!(
        "tls_load: {} handshakes resumed, {} full, {} errors",
        counts.resumed.load(Ordering::Relaxed),
        counts.full.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed)
    );
    println!(
        "{requests} {:.1} {p99:.3} {}",
        requests as f64 / elapsed,
        counts.errors.load(Ordering::Relaxed)
    );
}

async fn once(
    connector: &TlsConnector,
    addr: &str,
    request: &str,
    response: &mut Vec<u8>,
) -> std::io::Result<HandshakeKind> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await?;
    let kind = tls
        .get_ref()
        .1
        .handshake_kind()
        .unwrap_or(HandshakeKind::Full);
    tls.write_all(request.as_bytes()).await?;
    response.clear();
    // A server may close without close_notify; what was read is what counts.
    let _ = tls.read_to_end(response).await;
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not a 200"));
    }
    Ok(kind)
}
