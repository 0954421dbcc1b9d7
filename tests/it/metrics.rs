//! The admin listener and `/metrics` against a real server over sockets: the counters move as
//! requests (HTTP/1.1 and h2c) and reloads happen, every scrape passes `promtool check metrics`,
//! `/statusz` leaves the issuer listener; and the access log, from the real binary.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    DISCOVERY, JWKS, KillOnDrop, LogCapture, TestServer, get, key, kid_of, request, request_h2c,
};
use http::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const ISSUER: &str = "https://issuer.example.com";

/// `promtool check metrics` on `text`; promtool missing is a failure, never a skip.
pub(crate) fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install Debian's `prometheus` package (.ci/run does)"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

/// One scrape: checked by promtool, parsed into `name{labels}` -> value.
async fn scrape(admin: SocketAddr) -> HashMap<String, f64> {
    let reply = get(admin, "/metrics").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = std::str::from_utf8(&reply.body).unwrap().to_owned();
    promtool_check(&text);
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn value(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

fn requests(route: &str, code: u16, protocol: &str) -> String {
    format!(
        "issuerd_http_requests_total{{route=\"{route}\",code=\"{code}\",protocol=\"{protocol}\",tls=\"false\"}}"
    )
}

async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn metrics_move_with_requests_and_reloads_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(key("ec256.pub.pem"), keys.join("a.pem")).unwrap();
    let keys_arg = keys.display().to_string();
    // The admin listener on port 0: its address is read from what it logs.
    let log = LogCapture::start();
    let server = TestServer::start(&[
        "--issuer",
        ISSUER,
        "--key-file",
        &keys_arg,
        "--debounce",
        "50ms",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .await;
    let admin: SocketAddr = log
        .field("admin listener ready", "listen")
        .await
        .parse()
        .unwrap();
    let public = server.addr;

    // The admin endpoints; /statusz and /metrics are not on the issuer listener.
    assert_eq!(get(public, "/statusz").await.unwrap().status, 404);
    assert_eq!(get(public, "/metrics").await.unwrap().status, 404);
    assert_eq!(get(admin, "/healthz").await.unwrap().status, 200);
    assert_eq!(get(admin, "/readyz").await.unwrap().status, 200);
    assert_eq!(get(admin, JWKS).await.unwrap().status, 404);
    let reply = request(admin, Method::POST, "/metrics", &[]).await.unwrap();
    assert_eq!(reply.status, 405);
    let status: serde_json::Value =
        serde_json::from_slice(&get(admin, "/statusz").await.unwrap().body).unwrap();
    let ec256 = kid_of("ec256.pub.pem");
    assert_eq!(status["keys"][0]["kid"], ec256.as_str());
    let first_published = status["keys"][0]["first_published"].as_u64().unwrap();

    let before = scrape(admin).await;
    assert_eq!(value(&before, "issuerd_key_set_generation"), 1.0);
    assert_eq!(value(&before, "issuerd_keys"), 1.0);
    let kid_series =
        |kid: &str| format!("issuerd_key_first_published_timestamp_seconds{{kid=\"{kid}\"}}");
    assert_eq!(
        value(&before, &kid_series(&ec256)).floor(),
        first_published as f64
    );
    // The revision build.rs stamped (git's short hash; "unknown" outside a repository).
    let revision = match issuerd::cli::GIT_REVISION {
        "" => "unknown",
        revision => revision,
    };
    let version = format!(
        "issuerd_build_info{{version=\"{}\",revision=\"{revision}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert!(before.contains_key(&version), "{before:#?}");

    // Requests of every kind.
    let jwks = get(public, JWKS).await.unwrap();
    for _ in 0..2 {
        assert_eq!(get(public, JWKS).await.unwrap().status, 200);
    }
    let etag = jwks.header("etag").unwrap().to_owned();
    let not_modified = request(public, Method::GET, JWKS, &[("if-none-match", &etag)])
        .await
        .unwrap();
    assert_eq!(not_modified.status, 304);
    assert_eq!(request_h2c(public, DISCOVERY).await.unwrap().status, 200);
    assert_eq!(get(public, "/nope").await.unwrap().status, 404);
    assert!(
        raw(public, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 400")
    );
    // An idle keep-alive connection stays open (counted) after its request.
    let mut idle = TcpStream::connect(public).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0; 1024];
    assert!(idle.read(&mut buf).await.unwrap() > 0);

    let after = scrape(admin).await;
    let delta = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(delta(&requests("jwks", 200, "http1")), 3.0);
    assert_eq!(delta(&requests("jwks", 304, "http1")), 1.0);
    assert_eq!(delta(&requests("discovery", 200, "h2")), 1.0);
    assert_eq!(delta(&requests("other", 404, "http1")), 1.0);
    assert_eq!(delta(&requests("other", 400, "http1")), 1.0);
    assert_eq!(delta(&requests("health", 200, "http1")), 1.0);
    let labels = |route: &str, protocol: &str| {
        format!("{{route=\"{route}\",protocol=\"{protocol}\",tls=\"false\"}}")
    };
    assert_eq!(
        delta(&format!(
            "issuerd_http_response_body_bytes_total{}",
            labels("jwks", "http1")
        )),
        3.0 * jwks.body.len() as f64
    );
    assert_eq!(
        delta(&format!(
            "issuerd_http_request_duration_seconds_count{}",
            labels("jwks", "http1")
        )),
        4.0
    );
    assert_eq!(
        delta(&format!(
            "issuerd_http_request_duration_seconds_count{}",
            labels("discovery", "h2")
        )),
        1.0
    );
    let inf = "issuerd_http_request_duration_seconds_bucket\
               {route=\"jwks\",protocol=\"http1\",tls=\"false\",le=\"+Inf\"}";
    assert_eq!(delta(inf), 4.0);
    assert!(
        value(
            &after,
            "issuerd_http_request_duration_seconds_sum{route=\"jwks\",protocol=\"http1\",tls=\"false\"}"
        ) > 0.0
    );
    // The idle connection is open; the others were closed by their clients.
    eventually!(
        value(
            &scrape(admin).await,
            "issuerd_open_connections{tls=\"false\"}"
        ) == 1.0,
        "open connections never settled at the one idle connection"
    );
    drop(idle);
    eventually!(
        value(
            &scrape(admin).await,
            "issuerd_open_connections{tls=\"false\"}"
        ) == 0.0,
        "the closed connection is still counted"
    );

    // A rotation: a key added, published as generation 2; the old kid keeps its timestamp.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::copy(key("ec384.pub.pem"), keys.join("b.pem")).unwrap();
    let ec384 = kid_of("ec384.pub.pem");
    eventually!(
        value(&scrape(admin).await, "issuerd_key_set_generation") == 2.0,
        "the new key was never published"
    );
    let rotated = scrape(admin).await;
    assert_eq!(value(&rotated, "issuerd_keys"), 2.0);
    assert_eq!(
        value(&rotated, &kid_series(&ec256)),
        value(&before, &kid_series(&ec256))
    );
    assert!(value(&rotated, &kid_series(&ec384)) > value(&rotated, &kid_series(&ec256)));
    assert!(
        value(&rotated, "issuerd_key_reloads_total") > value(&before, "issuerd_key_reloads_total")
    );
    assert!(
        value(&rotated, "issuerd_key_set_last_publish_timestamp_seconds")
            > value(&before, "issuerd_key_set_last_publish_timestamp_seconds")
    );
    let status: serde_json::Value =
        serde_json::from_slice(&get(admin, "/statusz").await.unwrap().body).unwrap();
    assert_eq!(status["keys"].as_array().unwrap().len(), 2);

    // A broken file: a failure by cause, the last good set still served.
    let rejected = "issuerd_key_reload_failures_total{cause=\"rejected\"}";
    assert_eq!(value(&rotated, rejected), 0.0);
    std::fs::write(keys.join("c.pem"), b"not a key\n").unwrap();
    eventually!(
        value(&scrape(admin).await, rejected) >= 1.0,
        "the rejected reload was never counted"
    );
    let failed = scrape(admin).await;
    assert_eq!(value(&failed, "issuerd_key_set_generation"), 2.0);
    assert_eq!(
        value(
            &failed,
            "issuerd_key_reload_failures_total{cause=\"no_keys\"}"
        ),
        0.0
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_an_admin_listener_statusz_stays_public() {
    let key_arg = key("ec256.pub.pem").display().to_string();
    let server = TestServer::start(&["--issuer", ISSUER, "--key-file", &key_arg]).await;
    assert_eq!(get(server.addr, "/statusz").await.unwrap().status, 200);
    assert_eq!(get(server.addr, "/metrics").await.unwrap().status, 404);
    server.stop().await.unwrap();
}

/// The address the binary logged as ready (`--log-format json`).
fn ready_address(line: &serde_json::Value) -> Option<SocketAddr> {
    (line["fields"]["message"] == "ready")
        .then(|| line["fields"]["listen"].as_str()?.parse().ok())
        .flatten()
}

#[tokio::test]
async fn the_access_log_has_one_json_line_per_request() {
    let key_arg = key("ec256.pub.pem").display().to_string();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_issuerd"))
            .args(["serve", "--issuer", ISSUER, "--key-file", &key_arg])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--access-log",
            ])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let parsed: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            if lines_tx.send(parsed).is_err() {
                break;
            }
        }
    });
    let next = async |lines: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>| {
        tokio::time::timeout(Duration::from_secs(10), lines.recv())
            .await
            .expect("no log line within 10 s")
            .expect("the server exited")
    };
    let addr = loop {
        if let Some(addr) = ready_address(&next(&mut lines).await) {
            break addr;
        }
    };
    let jwks = get(addr, JWKS).await.unwrap();
    assert_eq!(request_h2c(addr, "/nope?q=1").await.unwrap().status, 404);
    let mut access = Vec::new();
    while access.len() < 2 {
        let line = next(&mut lines).await;
        if line["target"] == "issuerd::access" {
            access.push(line);
        }
    }
    let first = &access[0]["fields"];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], JWKS);
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes"], jwks.body.len());
    assert_eq!(first["protocol"], "http1");
    assert_eq!(first["tls"], false);
    assert!(first["duration_us"].is_u64());
    let peer: SocketAddr = first["peer"].as_str().unwrap().parse().unwrap();
    assert!(peer.ip().is_loopback());
    let second = &access[1]["fields"];
    assert_eq!(second["path"], "/nope");
    assert_eq!(second["status"], 404);
    assert_eq!(second["protocol"], "h2");
    child.kill().unwrap();
}

/// The alert rules docs/operating.md recommends load, and fire as their unit tests say.
#[test]
fn the_alert_rules_pass_promtool() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    for args in [
        ["check", "rules", "issuerd-alerts.yml"],
        ["test", "rules", "issuerd-alerts.test.yml"],
    ] {
        let output = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run promtool ({e}): install Debian's `prometheus` package (.ci/run does)")
            });
        assert!(
            output.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn admin_listen_and_access_log_come_from_flags_then_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(key("ec256.pub.pem"), tmp.path().join("k.pem")).unwrap();
    let file = tmp.path().join("issuerd.toml");
    std::fs::write(
        &file,
        "issuer = \"https://i.example\"\nkey_files = [\"k.pem\"]\n\
         [admin]\nlisten = \"127.0.0.1:9100\"\n[server]\naccess_log = true\n",
    )
    .unwrap();
    let config_path = file.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["issuerd", "serve", "--config", config_path];
        args.extend_from_slice(extra);
        match issuerd::config::Config::from_args(args).unwrap().command {
            issuerd::config::Command::Serve(serve) => serve,
            _ => unreachable!(),
        }
    };
    let from_file = serve(&[]);
    assert_eq!(
        from_file.admin_listen,
        Some("127.0.0.1:9100".parse().unwrap())
    );
    assert!(from_file.access_log);
    let flagged = serve(&["--admin-listen", "127.0.0.1:9200"]);
    assert_eq!(
        flagged.admin_listen,
        Some("127.0.0.1:9200".parse().unwrap())
    );
    let key_arg = key("ec256.pub.pem").display().to_string();
    let defaults = issuerd::config::Config::from_args([
        "issuerd",
        "serve",
        "--issuer",
        ISSUER,
        "--key-file",
        &key_arg,
    ])
    .unwrap();
    let issuerd::config::Command::Serve(defaults) = defaults.command else {
        unreachable!()
    };
    assert_eq!(defaults.admin_listen, None);
    assert!(!defaults.access_log);
}
