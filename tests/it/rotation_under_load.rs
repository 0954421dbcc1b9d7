//! Rotation under load, checked for correctness (the part of `benches/rotation` that needs no
//! external load generator): clients hammer both documents over keep-alive connections while
//! the key set rotates through kubelet-style Secret volume swaps, and
//! - every body served is the body of a published key set (computed independently here),
//! - an ETag never stands for two different bodies,
//! - no client ever goes back to an older key set,
//! - no request fails, and every rotation is seen.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{TestServer, key, kubelet_write};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use issuerd::document::Documents;
use issuerd::issuer::{DiscoveryProfile, Issuer, Publication};
use issuerd::keys::KeySet;
use tokio::net::TcpStream;

const ISSUER: &str = "https://issuer.example.com";
const CLIENTS: usize = 4;
/// Ten distinct keys; the rotation walks [k0], [k0, k1], [k1], [k1, k2], ... as an operator
/// rotating a signing key does (publish the new key beside the old, then drop the old).
const KEYS: [&str; 10] = [
    "ec256.pub.pem",
    "ec384.pub.pem",
    "ec521.pub.pem",
    "rsa2048.pub.pem",
    "k8s-ecdsa.pub.pem",
    "rsa3072.pub.pem",
    "ec256lz.pub.pem",
    "k8s-rsa.pub.pem",
    "rsa2048e3.pub.pem",
    "rsa4096.pub.pem",
];

fn key_sets() -> Vec<Vec<&'static str>> {
    let mut sets = vec![vec![KEYS[0]]];
    for pair in KEYS.windows(2) {
        sets.push(vec![pair[0], pair[1]]);
        sets.push(vec![pair[1]]);
    }
    sets
}

/// The JWKS body issuerd must serve for `files`, rendered here from the library's renderer.
fn expected_jwks(files: &[&str]) -> Bytes {
    let publication = Publication {
        issuer: Issuer::new(ISSUER, None, false).unwrap(),
        profile: DiscoveryProfile::Kubernetes,
        max_age_secs: 3600,
    };
    let paths: Vec<PathBuf> = files.iter().map(|f| key(f)).collect();
    Documents::render(&publication, &KeySet::load(&paths).unwrap())
        .jwks
        .body
}

#[derive(Default)]
struct Observed {
    requests: u64,
    /// Index into the key sets of each JWKS body, in the order this client saw them.
    sequence: Vec<usize>,
    etags: HashMap<String, Bytes>,
    failures: Vec<String>,
}

async fn client(
    addr: std::net::SocketAddr,
    expected: Arc<Vec<Bytes>>,
    stop: Arc<AtomicBool>,
) -> Observed {
    let mut observed = Observed::default();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let path = if n.is_multiple_of(4) {
            "/.well-known/openid-configuration"
        } else {
            "/openid/v1/jwks"
        };
        let request = Request::get(path)
            .header("host", "issuer.example.com")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(error) => {
                observed.failures.push(format!("request: {error}"));
                break;
            }
        };
        observed.requests += 1;
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        if status != StatusCode::OK {
            observed.failures.push(format!("{path}: status {status}"));
            continue;
        }
        let Some(etag) = etag else {
            observed.failures.push(format!("{path}: no etag"));
            continue;
        };
        if let Some(previous) = observed.etags.insert(etag.clone(), body.clone())
            && previous != body
        {
            observed
                .failures
                .push(format!("ETag {etag} stood for two different bodies"));
        }
        if path == "/openid/v1/jwks" {
            match expected.iter().position(|b| *b == body) {
                Some(index) => {
                    if observed.sequence.last() != Some(&index) {
                        observed.sequence.push(index);
                    }
                }
                None => observed.failures.push(format!(
                    "a JWKS that was never published: {}",
                    String::from_utf8_lossy(&body)
                )),
            }
        }
    }
    observed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_serves_only_published_sets_in_order() {
    let sets = key_sets();
    let expected: Arc<Vec<Bytes>> = Arc::new(sets.iter().map(|s| expected_jwks(s)).collect());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("secret");
    std::fs::create_dir(&dir).unwrap();
    let write = |generation: usize| {
        let files: Vec<(&str, PathBuf)> = sets[generation].iter().map(|f| (*f, key(f))).collect();
        kubelet_write(&dir, generation as u32, &files);
    };
    write(0);
    let server = TestServer::start(&[
        "--issuer",
        ISSUER,
        "--key-file",
        dir.to_str().unwrap(),
        "--debounce",
        "20ms",
    ])
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client(
                server.addr,
                Arc::clone(&expected),
                Arc::clone(&stop),
            ))
        })
        .collect();
    // Each rotation waits until it is served before the next, so every set must be seen.
    for generation in 1..sets.len() {
        write(generation);
        let want = &expected[generation];
        eventually!(
            common::get(server.addr, "/openid/v1/jwks")
                .await
                .unwrap()
                .body
                == *want,
            "rotation {generation} ({:?}) never served",
            sets[generation]
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for client in clients {
        let observed = client.await.unwrap();
        assert!(observed.failures.is_empty(), "{:#?}", observed.failures);
        assert!(
            observed.sequence.windows(2).all(|w| w[0] < w[1]),
            "a client went back to an older key set: {:?}",
            observed.sequence
        );
        assert_eq!(
            observed.sequence.last(),
            Some(&(sets.len() - 1)),
            "a client never saw the last set"
        );
        total += observed.requests;
    }
    assert!(total > 100, "only {total} requests were made");
}
