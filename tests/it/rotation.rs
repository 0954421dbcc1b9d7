//! Hot rotation over a real socket: every way keys change in practice is picked up; anything
//! invalid leaves the last good key set served and is reported on /statusz.

use crate::common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestServer, get, key, kid_of, kubelet_write};

const ISSUER: &str = "https://issuer.example.com";

async fn start(source: &Path, extra: &[&str]) -> TestServer {
    let source = source.display().to_string();
    let mut args = vec!["--issuer", ISSUER, "--key-file", &source];
    if !extra.contains(&"--debounce") {
        args.extend(["--debounce", "50ms"]);
    }
    args.extend_from_slice(extra);
    TestServer::start(&args).await
}

async fn status(server: &TestServer) -> serde_json::Value {
    serde_json::from_slice(&get(server.addr, "/statusz").await.unwrap().body).unwrap()
}

async fn served_kids(server: &TestServer) -> Vec<String> {
    let reply = get(server.addr, "/openid/v1/jwks").await.unwrap();
    assert_eq!(reply.status, 200);
    let jwks: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

/// Waits until exactly the keys of `files` are served.
async fn expect_served(server: &TestServer, files: &[&str], failure: &str) {
    let expected = sorted(files);
    eventually!(served_kids(server).await == expected, "{failure}");
}

fn sorted(kids: &[&str]) -> Vec<String> {
    let mut kids: Vec<String> = kids.iter().map(|k| kid_of(k)).collect();
    kids.sort();
    kids
}

/// Writes like an editor: a temp file beside the target, then rename over it.
fn replace_by_rename(target: &Path, from: &Path) {
    let temp = target.with_extension("tmp~");
    std::fs::copy(from, &temp).unwrap();
    std::fs::rename(&temp, target).unwrap();
}

#[tokio::test]
async fn kubelet_secret_volume_swap_is_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    kubelet_write(tmp.path(), 1, &[("sa.pub", key("rsa2048.pub.pem"))]);
    let server = start(tmp.path(), &[]).await;
    assert_eq!(served_kids(&server).await, sorted(&["rsa2048.pub.pem"]));

    // Rotation step 1: publish old + new. Step 2: drop the old one.
    kubelet_write(
        tmp.path(),
        2,
        &[
            ("sa.pub", key("rsa2048.pub.pem")),
            ("next.pub", key("ec256.pub.pem")),
        ],
    );
    expect_served(
        &server,
        &["rsa2048.pub.pem", "ec256.pub.pem"],
        "new key never served",
    )
    .await;
    kubelet_write(tmp.path(), 3, &[("next.pub", key("ec256.pub.pem"))]);
    expect_served(&server, &["ec256.pub.pem"], "old key never removed").await;
    assert_eq!(status(&server).await["generation"], 3);
}

#[tokio::test]
async fn rename_over_a_watched_file_is_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sa.pub");
    std::fs::copy(key("ec256.pub.pem"), &file).unwrap();
    let server = start(&file, &[]).await;
    replace_by_rename(&file, &key("ec384.pub.pem"));
    expect_served(&server, &["ec384.pub.pem"], "renamed file never served").await;
}

#[tokio::test]
async fn files_created_rewritten_and_removed_in_a_directory_are_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(key("ec256.pub.pem"), tmp.path().join("a.pem")).unwrap();
    let server = start(tmp.path(), &[]).await;

    std::fs::copy(key("rsa2048.pub.pem"), tmp.path().join("b.pem")).unwrap();
    expect_served(
        &server,
        &["ec256.pub.pem", "rsa2048.pub.pem"],
        "created file never served",
    )
    .await;

    // In place: truncate and write the same inode.
    std::fs::write(
        tmp.path().join("b.pem"),
        std::fs::read(key("ec521.pub.pem")).unwrap(),
    )
    .unwrap();
    expect_served(
        &server,
        &["ec256.pub.pem", "ec521.pub.pem"],
        "rewritten file never served",
    )
    .await;

    std::fs::remove_file(tmp.path().join("a.pem")).unwrap();
    expect_served(&server, &["ec521.pub.pem"], "removed file still served").await;
}

#[tokio::test]
async fn a_watched_file_deleted_and_recreated_is_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sa.pub");
    std::fs::copy(key("ec256.pub.pem"), &file).unwrap();
    let server = start(&file, &[]).await;
    std::fs::remove_file(&file).unwrap();
    // While it is gone the last good set stays, and the failure is visible.
    eventually!(
        status(&server).await["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("sa.pub")),
        "missing file not reported"
    );
    assert_eq!(served_kids(&server).await, sorted(&["ec256.pub.pem"]));
    std::fs::copy(key("rsa3072.pub.pem"), &file).unwrap();
    expect_served(
        &server,
        &["rsa3072.pub.pem"],
        "re-created file never served",
    )
    .await;
    eventually!(
        status(&server).await["last_reload_error"].is_null(),
        "error not cleared"
    );
}

#[tokio::test]
async fn a_watched_directory_deleted_and_recreated_is_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(key("ec256.pub.pem"), dir.join("a.pem")).unwrap();
    let server = start(&dir, &[]).await;
    std::fs::remove_dir_all(&dir).unwrap();
    eventually!(
        !status(&server).await["last_reload_error"].is_null(),
        "missing directory not reported"
    );
    assert_eq!(served_kids(&server).await, sorted(&["ec256.pub.pem"]));
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(key("ec384.pub.pem"), dir.join("b.pem")).unwrap();
    expect_served(
        &server,
        &["ec384.pub.pem"],
        "re-created directory never served",
    )
    .await;
    // And the new directory is watched: a further change is seen too.
    std::fs::copy(key("ec521.pub.pem"), dir.join("c.pem")).unwrap();
    expect_served(
        &server,
        &["ec384.pub.pem", "ec521.pub.pem"],
        "new directory not watched",
    )
    .await;
}

#[tokio::test]
async fn a_half_written_file_never_changes_what_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sa.pem");
    std::fs::copy(key("rsa2048.pub.pem"), &file).unwrap();
    let server = start(&file, &[]).await;
    let before = get(server.addr, "/openid/v1/jwks").await.unwrap();

    let full = std::fs::read(key("rsa4096.pkcs8.pem")).unwrap();
    std::fs::write(&file, &full[..full.len() / 2]).unwrap();
    eventually!(
        status(&server).await["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("sa.pem") && e.contains("no END line")),
        "half-written file not reported"
    );
    let during = get(server.addr, "/openid/v1/jwks").await.unwrap();
    assert_eq!(during.body, before.body);
    assert_eq!(during.header("etag"), before.header("etag"));
    assert_eq!(status(&server).await["generation"], 1);

    std::fs::write(&file, &full).unwrap();
    expect_served(&server, &["rsa4096.pub.pem"], "completed file never served").await;
    let after = get(server.addr, "/openid/v1/jwks").await.unwrap();
    assert_ne!(after.header("etag"), before.header("etag"));
    // The new ETag revalidates; the old one no longer does.
    let old_etag = before.header("etag").unwrap();
    let revalidate = common::request(
        server.addr,
        http::Method::GET,
        "/openid/v1/jwks",
        &[("if-none-match", old_etag)],
    )
    .await
    .unwrap();
    assert_eq!(revalidate.status, 200);
    assert_eq!(revalidate.body, after.body);
}

#[tokio::test]
async fn removing_every_key_keeps_the_last_good_set() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(key("ec256.pub.pem"), tmp.path().join("a.pem")).unwrap();
    std::fs::copy(key("ec384.pub.pem"), tmp.path().join("b.pem")).unwrap();
    let server = start(tmp.path(), &[]).await;
    let before = served_kids(&server).await;
    std::fs::remove_file(tmp.path().join("a.pem")).unwrap();
    std::fs::remove_file(tmp.path().join("b.pem")).unwrap();
    eventually!(
        status(&server).await["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("no keys found")),
        "empty set not reported"
    );
    assert_eq!(served_kids(&server).await, before);
    assert!(!status(&server).await["failing_since"].is_null());
}

#[tokio::test]
async fn a_bad_key_never_replaces_a_good_set() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(key("ec256.pub.pem"), tmp.path().join("a.pem")).unwrap();
    let server = start(tmp.path(), &[]).await;
    std::fs::copy(key("bad/rsa1024.pem"), tmp.path().join("weak.pem")).unwrap();
    eventually!(
        status(&server).await["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("weak.pem") && e.contains("1024")),
        "refused key not reported"
    );
    assert_eq!(served_kids(&server).await, sorted(&["ec256.pub.pem"]));
}

#[tokio::test]
async fn a_reload_that_recovers_to_the_set_served_all_along_says_so() {
    let log = common::LogCapture::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(key("ec256.pub.pem"), tmp.path().join("a.pem")).unwrap();
    let server = start(tmp.path(), &[]).await;
    std::fs::copy(key("bad/rsa1024.pem"), tmp.path().join("weak.pem")).unwrap();
    eventually!(
        !status(&server).await["failing_since"].is_null(),
        "refused key not reported"
    );
    std::fs::remove_file(tmp.path().join("weak.pem")).unwrap();
    eventually!(
        status(&server).await["failing_since"].is_null(),
        "never recovered"
    );
    // The set is the one served all along (no new generation), and the log says it recovered.
    assert_eq!(status(&server).await["generation"], 1);
    eventually!(
        log.text().contains("key reload recovered"),
        "recovery not logged:\n{}",
        log.text()
    );
}

#[tokio::test]
async fn an_unchanged_key_set_is_not_republished() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sa.pem");
    std::fs::copy(key("ec256.pub.pem"), &file).unwrap();
    let server = start(&file, &[]).await;
    let etag = get(server.addr, "/openid/v1/jwks")
        .await
        .unwrap()
        .header("etag")
        .unwrap()
        .to_owned();
    assert_eq!(status(&server).await["successful_reloads"], 1);
    // Same key in another form: same bytes, so no new generation. The reload must be seen to
    // have run, or this would pass with a watcher that never reloads.
    replace_by_rename(&file, &key("ec256.sec1.pem"));
    eventually!(
        status(&server).await["successful_reloads"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "the rewrite was never reloaded"
    );
    assert_eq!(status(&server).await["generation"], 1);
    let reply = get(server.addr, "/openid/v1/jwks").await.unwrap();
    assert_eq!(reply.header("etag"), Some(etag.as_str()));
}

/// `watched/sa.pem` links to `elsewhere/real.pem` (an ec256 key): rewriting the target in place
/// raises no event on `watched/`, so only polling or SIGHUP can pick it up.
fn link_into_unwatched_dir(root: &Path) -> (PathBuf, PathBuf) {
    let elsewhere = root.join("elsewhere");
    let watched = root.join("watched");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::create_dir(&watched).unwrap();
    std::fs::copy(key("ec256.pub.pem"), elsewhere.join("real.pem")).unwrap();
    symlink(elsewhere.join("real.pem"), watched.join("sa.pem")).unwrap();
    (elsewhere, watched)
}

/// A change inotify cannot see (a symlinked file's target rewritten in place in a directory that
/// is not watched) is found by polling.
#[tokio::test]
async fn polling_finds_changes_events_miss() {
    let tmp = tempfile::tempdir().unwrap();
    let (elsewhere, watched) = link_into_unwatched_dir(tmp.path());
    let server = start(&watched.join("sa.pem"), &["--poll-interval", "300ms"]).await;
    std::fs::write(
        elsewhere.join("real.pem"),
        std::fs::read(key("ec384.pub.pem")).unwrap(),
    )
    .unwrap();
    expect_served(
        &server,
        &["ec384.pub.pem"],
        "poll never picked the change up",
    )
    .await;
}

/// SIGHUP forces a reload (in a child process, so the signal goes to issuerd alone).
#[tokio::test]
async fn sighup_forces_a_reload() {
    use std::io::{BufRead as _, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let (elsewhere, watched) = link_into_unwatched_dir(tmp.path());
    let mut child = common::KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
            .args([
                "serve",
                "--issuer",
                ISSUER,
                "--listen",
                "127.0.0.1:0",
                "--poll-interval",
                "1h",
                "--key-file",
            ])
            .arg(watched.join("sa.pem"))
            .env("NO_COLOR", "1")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    let addr: std::net::SocketAddr = loop {
        let line = lines.next().expect("no ready line").unwrap();
        if line.contains(" ready ") {
            break line
                .split("listen=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    std::fs::write(
        elsewhere.join("real.pem"),
        std::fs::read(key("ec384.pub.pem")).unwrap(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kids = |body: &[u8]| -> String {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["keys"][0]["kid"].as_str().unwrap().to_owned()
    };
    let before = get(addr, "/openid/v1/jwks").await.unwrap();
    assert_eq!(
        kids(&before.body),
        kid_of("ec256.pub.pem"),
        "changed without a reload trigger"
    );
    std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let expected = kid_of("ec384.pub.pem");
    eventually!(
        kids(&get(addr, "/openid/v1/jwks").await.unwrap().body) == expected,
        "SIGHUP did not reload"
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Changes landing while a reload runs must not be lost: each swap is made the moment the
/// previous one is served (while the watcher is finishing that reload), and each must be served.
#[tokio::test]
async fn back_to_back_changes_are_all_served() {
    let tmp = tempfile::tempdir().unwrap();
    let volume = tmp.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    kubelet_write(&volume, 0, &[("sa.pub", key("rsa2048.pub.pem"))]);
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::copy(key("ec256lz.pub.pem"), plain.join("extra.pem")).unwrap();
    let volume_arg = volume.display().to_string();
    let server = start(&plain, &["--debounce", "5ms", "--key-file", &volume_arg]).await;
    let cycle = [
        "ec256.pub.pem",
        "ec384.pub.pem",
        "ec521.pub.pem",
        "rsa3072.pub.pem",
    ];
    for round in 1..=60u32 {
        let file = cycle[round as usize % cycle.len()];
        if round % 2 == 0 {
            kubelet_write(&volume, round, &[("sa.pub", key(file))]);
        } else {
            replace_by_rename(&plain.join("extra.pem"), &key(file));
        }
        let kid = kid_of(file);
        eventually!(
            served_kids(&server).await.contains(&kid),
            "round {round}: change never served"
        );
    }
}

/// `--key-file keys/sa.pem` (relative to the working directory) is watched like an absolute path.
#[tokio::test]
async fn relative_key_paths_are_watched() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::create_dir_all(&base).unwrap();
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let file = tmp.path().join("sa.pem");
    std::fs::copy(key("ec256.pub.pem"), &file).unwrap();
    let cwd = std::env::current_dir().unwrap();
    let relative = pathdiff(&file, &cwd);
    assert!(relative.is_relative());
    let server = start(&relative, &[]).await;
    replace_by_rename(&file, &key("ec384.pub.pem"));
    expect_served(&server, &["ec384.pub.pem"], "relative path not watched").await;
}

/// `path` relative to `base` (both absolute, `path` below `base`).
fn pathdiff(path: &Path, base: &Path) -> PathBuf {
    path.strip_prefix(base)
        .expect("fixture under the working directory")
        .to_owned()
}

#[tokio::test]
async fn an_open_h2_connection_sees_a_rotation() {
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sa.pem");
    std::fs::copy(key("ec256.pub.pem"), &file).unwrap();
    let server = start(&file, &[]).await;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let uri = format!("http://{}/openid/v1/jwks", server.addr);
    let mut fetch = async || {
        let request = http::Request::get(&uri)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    };
    let before = fetch().await;
    assert!(String::from_utf8_lossy(&before).contains(&kid_of("ec256.pub.pem")));
    replace_by_rename(&file, &key("ec384.pub.pem"));
    // The same connection, not a new one, must serve the new set.
    eventually!(
        String::from_utf8_lossy(&fetch().await).contains(&kid_of("ec384.pub.pem")),
        "the open h2 connection kept serving the old key set"
    );
}
