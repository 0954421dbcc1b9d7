//! The connection timers, driven by paused tokio time over an in-memory duplex stream: 408 for a
//! head that never completes, idle keep-alive close, a client that stops reading, and the
//! lingering close after an unread body. Each timer is set to a distinct value, so a test that
//! sees the right one fire proves that it comes from the configuration.

use crate::common;
use common::JWKS;

use std::sync::Arc;
use std::time::Duration;

use issuerd::issuer::{DiscoveryProfile, Issuer, Publication};
use issuerd::keys::KeySet;
use issuerd::server::{IssuerService, Server, Timeouts};
use issuerd::shutdown::{self, Readiness};
use issuerd::store::Store;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const TIMEOUTS: Timeouts = Timeouts {
    header_read: Duration::from_secs(5),
    keep_alive: Duration::from_secs(60),
    write: Duration::from_secs(7),
    linger: Duration::from_secs(3),
};

/// One connection served by issuerd over a duplex stream whose buffers hold `buffer` bytes.
struct Connection {
    client: DuplexStream,
    task: JoinHandle<()>,
    _store: Store,
    _shutdown: shutdown::Trigger,
}

fn connect(buffer: usize) -> Connection {
    let publication = Publication {
        issuer: Issuer::new("https://h.example", None, false).unwrap(),
        profile: DiscoveryProfile::Kubernetes,
        max_age_secs: 3600,
    };
    let store = Store::new(
        publication,
        KeySet::load(&[common::key("ec256.pub.pem")]).unwrap(),
    );
    let readiness = Readiness::default();
    readiness.set_ready();
    let server = Arc::new(Server::new(
        IssuerService::new(store.reader(), readiness),
        TIMEOUTS,
    ));
    let (client, server_side) = tokio::io::duplex(buffer);
    let (trigger, signal) = shutdown::channel();
    let task = tokio::spawn(async move {
        server
            .serve_connection(server_side, signal, Default::default())
            .await
    });
    Connection {
        client,
        task,
        _store: store,
        _shutdown: trigger,
    }
}

async fn read_to_end(client: &mut DuplexStream) -> String {
    let mut all = Vec::new();
    client.read_to_end(&mut all).await.unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

/// Reads until `needle` has been seen `count` times.
async fn read_until(client: &mut DuplexStream, needle: &str, count: usize) -> String {
    let mut all = Vec::new();
    while String::from_utf8_lossy(&all).matches(needle).count() < count {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&all));
        all.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn assert_elapsed(start: Instant, expected: Duration) {
    let elapsed = start.elapsed();
    assert!(
        elapsed >= expected && elapsed < expected + Duration::from_millis(500),
        "elapsed {elapsed:?}, expected {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unfinished_head_gets_408_at_the_header_timeout() {
    let mut connection = connect(64 * 1024);
    let start = Instant::now();
    // Trickle the head one byte a second: the deadline runs from the first byte, so trickling
    // does not extend it.
    for byte in b"GET /openid/v1/jwks HT" {
        connection.client.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all = read_to_end(&mut connection.client).await;
    assert!(all.starts_with("HTTP/1.1 408 Request Timeout"), "{all:?}");
    assert!(all.contains("connection: close"), "{all:?}");
    assert_elapsed(start, TIMEOUTS.header_read);
    connection.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_closes_at_the_keep_alive_timeout() {
    let mut connection = connect(64 * 1024);
    let request = format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\n\r\n");
    connection
        .client
        .write_all(request.as_bytes())
        .await
        .unwrap();
    read_until(&mut connection.client, "{\"keys\":[", 1).await;
    let idle_since = Instant::now();
    // Nothing more is sent: the server closes after the keep-alive time, not the head time.
    let rest = read_to_end(&mut connection.client).await;
    assert_eq!(rest, "");
    assert_elapsed(idle_since, TIMEOUTS.keep_alive);
    connection.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_cut_off_at_the_write_timeout() {
    // A 4 KiB pipe and 200 pipelined requests (about 90 KiB of answers) that are never read.
    let mut connection = connect(4 * 1024);
    let request = format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\n\r\n");
    let start = Instant::now();
    let pipelined = request.repeat(200);
    // The server stops reading once its output is stuck, so this write cannot complete
    // either; it is abandoned when the server gives up and drops its end.
    let _ = tokio::time::timeout(
        Duration::from_secs(3600),
        connection.client.write_all(pipelined.as_bytes()),
    )
    .await;
    connection.task.await.unwrap();
    // Give-up time: the write timeout after the output got stuck, which happened at once.
    assert_elapsed(start, TIMEOUTS.write);
}

#[tokio::test(start_paused = true)]
async fn an_unread_body_is_drained_for_the_linger_time_then_closed() {
    let mut connection = connect(64 * 1024);
    let request = format!("POST {JWKS} HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n");
    connection
        .client
        .write_all(request.as_bytes())
        .await
        .unwrap();
    // The answer comes at once, and the server stops sending (end of stream for the client).
    let answer = read_to_end(&mut connection.client).await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer:?}");
    let closed_write = Instant::now();
    // The body keeps coming and is drained, not refused, for the linger time.
    for _ in 0..10 {
        connection.client.write_all(&[b'x'; 1000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    connection.task.await.unwrap();
    assert_elapsed(closed_write, TIMEOUTS.linger);
}
