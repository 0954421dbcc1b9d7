//! Admission load for `benches/load/webhook.sh`: C keep-alive HTTPS connections POSTing one
//! AdmissionReview (a pod CREATE the map wires) to `issuerd webhook`, either as fast as the
//! server answers (closed loop: the admissions per second it sustains) or at a fixed total rate
//! (open loop: latency measured from each request's scheduled send time, so a stall is counted
//! against every request it delays, not hidden by it).
//!
//! Usage: webhook_load URL CONNS SECONDS RATE|max REVIEW.json
//! Prints "ADMISSIONS RPS P50_MS P99_MS MAX_MS ERRORS" on stdout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use issuerd::tls::client::AnyCertificate;
use rustls::crypto::aws_lc_rs;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, conns, seconds, rate, review] = &args[..] else {
        eprintln!("usage: webhook_load URL CONNS SECONDS RATE|max REVIEW.json");
        std::process::exit(2);
    };
    let url = url::Url::parse(url).expect("URL");
    let conns: usize = conns.parse().expect("CONNS");
    let duration = Duration::from_secs_f64(seconds.parse().expect("SECONDS"));
    let rate: Option<f64> = (rate != "max").then(|| rate.parse().expect("RATE"));
    let body = Bytes::from(std::fs::read(review).expect("REVIEW.json"));
    let addr = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port_or_known_default().expect("port")
    );
    let path = url.path().to_owned();

    let provider = Arc::new(aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        // Trusts any certificate: the load is the server's, not the client's chain validation.
        .with_custom_certificate_verifier(AnyCertificate::new(provider))
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (connector, addr, path, body) =
                (connector.clone(), addr.clone(), path.clone(), body.clone());
            let (latencies, errors) = (Arc::clone(&latencies), Arc::clone(&errors));
            tasks.push(tokio::spawn(async move {
                let tcp = TcpStream::connect(&addr).await.expect("connect");
                tcp.set_nodelay(true).expect("nodelay");
                let tls = connector
                    .connect("localhost".try_into().expect("name"), tcp)
                    .await
                    .expect("handshake");
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(tls))
                        .await
                        .expect("http1");
                tokio::spawn(connection);
                let period = rate.map(|r| Duration::from_secs_f64(conns as f64 / r));
                let mut ticks = period.map(|p| {
                    let mut i = tokio::time::interval(p);
                    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    i
                });
                let mut mine = Vec::new();
                let mut failed = 0;
                while started.elapsed() < duration {
                    let scheduled = match &mut ticks {
                        Some(ticks) => ticks.tick().await.into_std(),
                        None => Instant::now(),
                    };
                    let request = hyper::Request::post(path.as_str())
                        .header("host", "localhost")
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .expect("request");
                    match sender.send_request(request).await {
                        Ok(response) if response.status() == 200 => {
                            let answer = response.into_body().collect().await;
                            if answer
                                .is_ok_and(|a| a.to_bytes().windows(9).any(|w| w == b"JSONPatch"))
                            {
                                mine.push(scheduled.elapsed());
                            } else {
                                failed += 1;
                            }
                        }
                        _ => failed += 1,
                    }
                }
                latencies.lock().expect("lock").extend(mine);
                *errors.lock().expect("lock") += failed;
            }));
        }
        for task in tasks {
            task.await.expect("connection task");
        }
    });
    let elapsed = started.elapsed();
    let mut latencies = latencies.lock().expect("lock").clone();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{} {:.0} {:.3} {:.3} {:.3} {}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        errors.lock().expect("lock")
    );
}
