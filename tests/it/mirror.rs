//! The S3 mirror and `issuerd publish` against real S3-protocol servers: moto in server mode
//! (object ACLs and bucket policies for anonymous reads) behind a switchable, request-counting TCP
//! proxy, and s3s-fs in process (it checks SigV4, so wrong credentials are refused).

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::moto::Moto;
use common::proxy::RecordingProxy;
use common::{TestServer, find, get};
use http::StatusCode;
use issuerd::bucket::{MirrorConfig, StaticCredentials};
use issuerd::config::{Command, Config, ServeConfig};
use issuerd::mirror::ObjectSink as _;
use tokio::net::TcpListener;

const ISSUER: &str = "https://oidc.example.test/clusters/prod";
const PREFIX: &str = "clusters/prod";
const JWKS_KEY: &str = "clusters/prod/openid/v1/jwks";
const DISCOVERY_KEY: &str = "clusters/prod/.well-known/openid-configuration";

// === moto ===

impl Moto {
    /// Creates `bucket`; with `public`, a bucket policy lets anyone `s3:GetObject`.
    pub(crate) async fn bucket(&self, bucket: &str, public: bool) {
        let http = reqwest::Client::new();
        let url = format!("{}/{bucket}", self.url());
        let created = http.put(&url).send().await.unwrap();
        assert!(created.status().is_success(), "create bucket: {created:?}");
        if public {
            let policy = serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": format!("arn:aws:s3:::{bucket}/*"),
                }],
            });
            let set = http
                .put(format!("{url}?policy"))
                .body(policy.to_string())
                .send()
                .await
                .unwrap();
            assert!(set.status().is_success(), "put bucket policy: {set:?}");
        }
    }
}

/// An anonymous GET.
async fn anonymous_get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

// === proxy ===

/// Notes `PUT <path>` for each PUT request line (request lines are short; bodies are JSON and
/// never contain "PUT /").
fn puts(pending: &mut Vec<u8>, records: &mut Vec<String>) {
    while let Some(start) = find(pending, b"PUT /") {
        let Some(end) = find(&pending[start..], b" HTTP/1.1\r\n") else {
            break;
        };
        records.push(String::from_utf8_lossy(&pending[start..start + end]).into_owned());
        pending.drain(..start + end);
    }
}

// === issuerd ===

/// A key directory whose single key can be swapped (the watcher reloads it).
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new(name: &str) -> Self {
        let keys = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        keys.set(name);
        keys
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("sa.pub")
    }

    /// Replaces the key atomically with the fixture `name`.
    fn set(&self, name: &str) {
        let temp = self.dir.path().join(".next");
        std::fs::copy(common::key(name), &temp).unwrap();
        std::fs::rename(&temp, self.path()).unwrap();
    }
}

/// `serve` config mirroring to `s3_url`/`bucket`, with test credentials and fast retries.
fn serve_config(
    keys: &Keys,
    s3_url: &str,
    bucket: &str,
    public_url: &str,
    extra: &[&str],
) -> ServeConfig {
    let key = keys.path();
    let mirror = format!("s3://{bucket}/{PREFIX}");
    let mut argv = vec![
        "issuerd",
        "serve",
        "--issuer",
        ISSUER,
        "--key-file",
        key.to_str().unwrap(),
        "--mirror",
        &mirror,
        "--s3-endpoint",
        s3_url,
        "--s3-region",
        "us-east-1",
        "--public-url",
        public_url,
    ];
    argv.extend_from_slice(extra);
    let Command::Serve(mut config) = Config::from_args(argv).unwrap().command else {
        unreachable!()
    };
    let mirror: &mut MirrorConfig = config.mirror.as_mut().unwrap();
    mirror.credentials = Some(StaticCredentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "secret".into(),
    });
    mirror.initial_backoff = Duration::from_millis(50);
    mirror.max_backoff = Duration::from_millis(300);
    config
}

async fn start(config: ServeConfig) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    TestServer::start_with(listener, config).await
}

/// Starts `config` on a port of its own without waiting for /readyz (TestServer::start_with
/// waits for it, which `--mirror-required` holds back): the address, the stop, the task.
async fn start_unready(
    config: ServeConfig,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(issuerd::app::serve_on(listener, config, async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

/// `/statusz`'s `mirror` object of the server on `addr`.
async fn mirror_status_at(addr: SocketAddr) -> serde_json::Value {
    let reply = get(addr, "/statusz").await.unwrap();
    serde_json::from_slice::<serde_json::Value>(&reply.body).unwrap()["mirror"].clone()
}

async fn mirror_status(server: &TestServer) -> serde_json::Value {
    let reply = get(server.addr, "/statusz").await.unwrap();
    let status: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    status["mirror"].clone()
}

async fn in_sync(server: &TestServer) -> bool {
    let status = mirror_status(server).await;
    status["state"] == "in_sync"
}

/// The served document at `path`, with its headers.
async fn served(server: &TestServer, path: &str) -> common::Reply {
    let reply = get(server.addr, path).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    reply
}

fn public_url(s3: &str, bucket: &str) -> String {
    format!("{s3}/{bucket}/{PREFIX}")
}

// === serve --mirror ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_bytes_and_headers_jwks_first_skips_unchanged_and_survives_restart() {
    let moto = Moto::start().await;
    moto.bucket("oidc", true).await;
    let proxy = RecordingProxy::start(moto.addr, true, puts).await;
    let keys = Keys::new("ec256.pub.pem");
    let config = || {
        serve_config(
            &keys,
            &proxy.url(),
            "oidc",
            &public_url(&moto.url(), "oidc"),
            &[],
        )
    };

    let server = start(config()).await;
    eventually!(
        in_sync(&server).await,
        "mirror never got in sync: {}",
        mirror_status(&server).await
    );
    let status = mirror_status(&server).await;
    assert_eq!(status["target"], "s3://oidc/clusters/prod");
    assert_eq!(status["writes"], 2);
    assert_eq!(status["last_error"], serde_json::Value::Null);
    eventually!(
        mirror_status(&server).await["public_access"] == "readable",
        "public access: {}",
        mirror_status(&server).await
    );
    let expected_puts = |n: usize| -> Vec<String> {
        [JWKS_KEY, DISCOVERY_KEY]
            .iter()
            .cycle()
            .take(n)
            .map(|key| format!("PUT /oidc/{key}"))
            .collect()
    };
    assert_eq!(
        proxy.records(),
        expected_puts(2),
        "JWKS first, then discovery"
    );

    // The objects hold the served bytes and headers, readable anonymously.
    for (key, path) in [
        (JWKS_KEY, "/clusters/prod/openid/v1/jwks"),
        (
            DISCOVERY_KEY,
            "/clusters/prod/.well-known/openid-configuration",
        ),
    ] {
        let served = served(&server, path).await;
        let object = anonymous_get(&format!("{}/oidc/{key}", moto.url())).await;
        assert_eq!(object.status(), reqwest::StatusCode::OK, "{key}");
        let header = |name: &str| {
            object
                .headers()
                .get(name)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            header("content-type"),
            served.header("content-type").unwrap(),
            "{key}"
        );
        assert_eq!(
            header("cache-control"),
            served.header("cache-control").unwrap(),
            "{key}"
        );
        assert_eq!(object.bytes().await.unwrap(), served.body, "{key}");
    }

    // A rotation: exactly two more writes, JWKS first, and the bucket follows.
    keys.set("ec384.pub.pem");
    eventually!(
        served(&server, "/clusters/prod/openid/v1/jwks").await.body
            == anonymous_get(&format!("{}/oidc/{JWKS_KEY}", moto.url()))
                .await
                .bytes()
                .await
                .unwrap()
            && in_sync(&server).await
            && proxy.records().len() == 4,
        "rotation never reached the bucket: {:?} {}",
        proxy.records(),
        mirror_status(&server).await
    );
    assert_eq!(proxy.records(), expected_puts(4));
    let discovery = served(&server, "/clusters/prod/.well-known/openid-configuration").await;
    let object = anonymous_get(&format!("{}/oidc/{DISCOVERY_KEY}", moto.url())).await;
    assert_eq!(object.bytes().await.unwrap(), discovery.body);
    server.stop().await.unwrap();

    // A restart finds the bucket in sync and writes nothing.
    let server = start(config()).await;
    eventually!(
        in_sync(&server).await,
        "restart never in sync: {}",
        mirror_status(&server).await
    );
    assert_eq!(mirror_status(&server).await["writes"], 0);
    server.stop().await.unwrap();
    assert_eq!(
        proxy.records().len(),
        4,
        "a restart rewrote: {:?}",
        proxy.records()
    );

    // Drift (someone edited the discovery object): repaired on start, and only that object.
    let mut writer = MirrorConfig::new(issuerd::bucket::S3Target::parse("s3://oidc").unwrap());
    writer.endpoint = Some(moto.url().parse().unwrap());
    writer.region = Some("us-east-1".into());
    writer.credentials = Some(StaticCredentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "secret".into(),
    });
    let other = issuerd::mirror::Object {
        body: bytes::Bytes::from_static(b"{}"),
        content_type: "text/plain".into(),
        cache_control: "no-cache".into(),
    };
    let tamper = || async {
        issuerd::mirror::S3Sink::new(&writer)
            .unwrap()
            .put(DISCOVERY_KEY, &other)
            .await
            .unwrap();
    };
    tamper().await;
    let mut resyncing = config();
    resyncing.mirror.as_mut().unwrap().resync_interval = Duration::from_millis(200);
    let server = start(resyncing).await;
    eventually!(
        in_sync(&server).await,
        "drift never repaired: {}",
        mirror_status(&server).await
    );
    assert_eq!(mirror_status(&server).await["writes"], 1);
    assert_eq!(proxy.records()[4..], [format!("PUT /oidc/{DISCOVERY_KEY}")]);
    let discovery = served(&server, "/clusters/prod/.well-known/openid-configuration").await;
    let object = anonymous_get(&format!("{}/oidc/{DISCOVERY_KEY}", moto.url())).await;
    assert_eq!(
        object.headers()["content-type"],
        discovery.header("content-type").unwrap()
    );
    assert_eq!(object.bytes().await.unwrap(), discovery.body);

    // Drift while running is repaired by the periodic check.
    tamper().await;
    eventually!(
        mirror_status(&server).await["writes"] == 2,
        "drift while running never repaired: {}",
        mirror_status(&server).await
    );
    let object = anonymous_get(&format!("{}/oidc/{DISCOVERY_KEY}", moto.url())).await;
    assert_eq!(object.bytes().await.unwrap(), discovery.body);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_at_start_then_up_converges_and_mirror_required_gates_readiness() {
    let moto = Moto::start().await;
    moto.bucket("oidc", true).await;
    let proxy = RecordingProxy::start(moto.addr, false, puts).await;
    let keys = Keys::new("ec256.pub.pem");
    let config = serve_config(
        &keys,
        &proxy.url(),
        "oidc",
        &public_url(&moto.url(), "oidc"),
        &["--mirror-required"],
    );
    let (addr, stop, task) = start_unready(config).await;

    // Serving does not wait for the bucket.
    eventually!(
        matches!(get(addr, "/clusters/prod/openid/v1/jwks").await, Ok(r) if r.status == StatusCode::OK),
        "not serving while S3 is down"
    );
    let status = || mirror_status_at(addr);
    eventually!(
        status().await["last_error"].is_string(),
        "no error reported while S3 is down: {}",
        status().await
    );
    let mirror = status().await;
    assert_eq!(mirror["state"], "behind");
    assert!(mirror["behind_since"].is_u64(), "{mirror}");
    assert!(
        mirror["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot read clusters/prod/openid/v1/jwks"),
        "{mirror}"
    );
    let ready = get(addr, "/readyz").await.unwrap();
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body, "not ready: mirror behind\n");

    proxy.set_up(true);
    eventually!(
        status().await["state"] == "in_sync",
        "never converged: {}",
        status().await
    );
    assert_eq!(get(addr, "/readyz").await.unwrap().status, StatusCode::OK);
    assert_eq!(status().await["last_error"], serde_json::Value::Null);
    assert_eq!(proxy.records().len(), 2);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_going_away_mid_run_and_coming_back() {
    let moto = Moto::start().await;
    moto.bucket("oidc", true).await;
    let proxy = RecordingProxy::start(moto.addr, true, puts).await;
    let keys = Keys::new("ec256.pub.pem");
    let server = start(serve_config(
        &keys,
        &proxy.url(),
        "oidc",
        &public_url(&moto.url(), "oidc"),
        &[],
    ))
    .await;
    eventually!(
        in_sync(&server).await,
        "never in sync: {}",
        mirror_status(&server).await
    );

    proxy.set_up(false);
    keys.set("ec384.pub.pem");
    // Serving moves on at once; the mirror falls behind and says why.
    let rotated = || async {
        served(&server, "/clusters/prod/openid/v1/jwks").await.body
            != anonymous_get(&format!("{}/oidc/{JWKS_KEY}", moto.url()))
                .await
                .bytes()
                .await
                .unwrap()
    };
    eventually!(rotated().await, "rotation not served while S3 is away");
    // A second rotation while S3 is away: only the newest key set may reach the bucket.
    keys.set("rsa2048.pub.pem");
    eventually!(
        served(&server, "/clusters/prod/openid/v1/jwks")
            .await
            .body
            .windows(5)
            .any(|w| w == b"RS256"),
        "second rotation not served"
    );
    eventually!(
        mirror_status(&server).await["last_error"].is_string(),
        "no error while S3 is away: {}",
        mirror_status(&server).await
    );
    assert_eq!(mirror_status(&server).await["state"], "behind");

    proxy.set_up(true);
    eventually!(
        in_sync(&server).await && !rotated().await,
        "never caught up: {}",
        mirror_status(&server).await
    );
    // Coalesced: the initial pair and the newest pair, nothing for the intermediate key set.
    assert_eq!(proxy.records().len(), 4, "{:?}", proxy.records());
    let object = anonymous_get(&format!("{}/oidc/{DISCOVERY_KEY}", moto.url())).await;
    let discovery = served(&server, "/clusters/prod/.well-known/openid-configuration").await;
    assert_eq!(object.bytes().await.unwrap(), discovery.body);
    server.stop().await.unwrap();
}

// === s3s-fs: SigV4 checked ===

/// s3s-fs on 127.0.0.1:0 accepting only AKIDTEST/secret, with bucket `oidc`.
async fn s3s(root: &Path) -> SocketAddr {
    use hyper_util::rt::TokioIo;
    std::fs::create_dir_all(root.join("oidc")).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
    builder.set_auth(s3s::auth::SimpleAuth::from_single("AKIDTEST", "secret"));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_reported_and_serving_is_unaffected() {
    let root = tempfile::tempdir().unwrap();
    let s3 = format!("http://{}", s3s(root.path()).await);
    let keys = Keys::new("ec256.pub.pem");

    // Right credentials: the objects arrive (so the refusal below is about the credentials).
    let server = start(serve_config(
        &keys,
        &s3,
        "oidc",
        &public_url(&s3, "oidc"),
        &[],
    ))
    .await;
    eventually!(
        root.path().join("oidc").join(JWKS_KEY).exists(),
        "s3s-fs never received the JWKS: {}",
        mirror_status(&server).await
    );
    server.stop().await.unwrap();

    let mut config = serve_config(&keys, &s3, "oidc", &public_url(&s3, "oidc"), &[]);
    config.mirror.as_mut().unwrap().credentials = Some(StaticCredentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "wrong".into(),
    });
    let server = start(config).await;
    eventually!(
        mirror_status(&server).await["last_error"].is_string(),
        "wrong credentials not reported: {}",
        mirror_status(&server).await
    );
    let error = mirror_status(&server).await["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("403") && error.contains("SignatureDoesNotMatch"),
        "{error}"
    );
    assert_eq!(mirror_status(&server).await["state"], "behind");
    // Serving and readiness (without --mirror-required) are untouched.
    assert_eq!(
        get(server.addr, "/readyz").await.unwrap().status,
        StatusCode::OK
    );
    let jwks = served(&server, "/clusters/prod/openid/v1/jwks").await;
    assert!(jwks.body.starts_with(b"{\"keys\":["));
    server.stop().await.unwrap();
}

// === anonymous reads ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_denying_anonymous_reads_is_diagnosed() {
    let moto = Moto::start().await;
    moto.bucket("private", false).await;
    let keys = Keys::new("ec256.pub.pem");
    let server = start(serve_config(
        &keys,
        &moto.url(),
        "private",
        &public_url(&moto.url(), "private"),
        &[],
    ))
    .await;
    eventually!(
        mirror_status(&server).await["public_access"].is_string()
            && mirror_status(&server).await["public_access"] != "readable",
        "denied anonymous read not diagnosed: {}",
        mirror_status(&server).await
    );
    let status = mirror_status(&server).await;
    let reason = status["public_access"].as_str().unwrap();
    assert!(
        reason.contains("403") && reason.contains("Block Public Access"),
        "{reason}"
    );
    // The upload itself worked: the bucket is in sync, only the public read fails.
    assert_eq!(status["state"], "in_sync");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_required_holds_readiness_while_anonymous_reads_fail() {
    let moto = Moto::start().await;
    moto.bucket("private", false).await;
    let keys = Keys::new("ec256.pub.pem");
    let config = serve_config(
        &keys,
        &moto.url(),
        "private",
        &public_url(&moto.url(), "private"),
        &["--mirror-required"],
    );
    let (addr, stop, task) = start_unready(config).await;
    let status = || mirror_status_at(addr);
    eventually!(
        status().await["public_access"].is_string()
            && status().await["public_access"] != "readable",
        "denied anonymous read not diagnosed: {}",
        status().await
    );
    // In sync, but relying parties cannot read it: not ready.
    assert_eq!(status().await["state"], "in_sync");
    let ready = get(addr, "/readyz").await.unwrap();
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.body,
        "not ready: the mirrored documents cannot be read anonymously\n"
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

// === publish ===

struct Published {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `issuerd publish` with test credentials and the given extra flags.
async fn publish(s3: &str, bucket: &str, extra: &[&str]) -> Published {
    let key = common::key("ec256.pub.pem");
    let mirror = format!("s3://{bucket}/{PREFIX}");
    let public = public_url(s3, bucket);
    let mut args = vec![
        "publish",
        "--issuer",
        ISSUER,
        "--key-file",
        key.to_str().unwrap(),
        "--mirror",
        &mirror,
        "--s3-endpoint",
        s3,
    ];
    if !extra.contains(&"--public-url") {
        args.extend(["--public-url", &public]);
    }
    args.extend_from_slice(extra);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(&args)
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("publish finished within 60s")
        .unwrap();
    Published {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_exit_codes() {
    let moto = Moto::start().await;
    moto.bucket("public", true).await;
    moto.bucket("private", false).await;
    let s3 = moto.url();

    // 0: written, read back, anonymously readable.
    let first = publish(&s3, "public", &[]).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert!(
        first
            .stdout
            .contains(&format!("written   s3://public/{JWKS_KEY}")),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("readable  "), "{}", first.stdout);
    // 0 again, nothing rewritten.
    let again = publish(&s3, "public", &[]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(!again.stdout.contains("written"), "{}", again.stdout);
    assert_eq!(
        again.stdout.matches("unchanged").count(),
        2,
        "{}",
        again.stdout
    );

    // 4: in the bucket but not anonymously readable.
    let private = publish(&s3, "private", &[]).await;
    assert_eq!(private.code, Some(4), "{}", private.stderr);
    assert!(private.stderr.contains("403"), "{}", private.stderr);
    assert!(
        private.stderr.contains("relying parties cannot read them"),
        "{}",
        private.stderr
    );
    // 0 with the public-read ACL, which this bucket accepts: the objects are unchanged, and the
    // output says the ACL was set on them (not just "unchanged").
    let acl = publish(&s3, "private", &["--mirror-acl", "public-read"]).await;
    assert_eq!(acl.code, Some(0), "{}", acl.stderr);
    assert_eq!(
        acl.stdout
            .matches("(unchanged; ACL public-read set)")
            .count(),
        2,
        "{}",
        acl.stdout
    );
    assert!(
        !acl.stdout.lines().any(|line| line.starts_with("unchanged")),
        "{}",
        acl.stdout
    );
    // No object_store retry chatter in publish's output.
    assert!(!acl.stderr.contains("object_store"), "{}", acl.stderr);

    // 4: readable, but not the rendered bytes (the public URL serves another prefix).
    let stale = publish(
        &s3,
        "public",
        &["--public-url", &format!("{s3}/public/elsewhere")],
    )
    .await;
    assert_eq!(stale.code, Some(4), "{}", stale.stderr);
    assert!(stale.stderr.contains("404"), "{}", stale.stderr);
    let elsewhere = tokio::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(["publish", "--issuer", "https://oidc.example.test/elsewhere"])
        .args(["--mirror", "s3://public/elsewhere", "--s3-endpoint", &s3])
        .args(["--public-url", &format!("{s3}/public/elsewhere")])
        .arg("--key-file")
        .arg(common::key("ec384.pub.pem"))
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .output()
        .await
        .unwrap();
    assert_eq!(elsewhere.status.code(), Some(0));
    let stale = publish(
        &s3,
        "public",
        &["--public-url", &format!("{s3}/public/elsewhere")],
    )
    .await;
    assert_eq!(stale.code, Some(4), "{}", stale.stderr);
    assert!(stale.stderr.contains("differ"), "{}", stale.stderr);

    // 3: the bucket does not exist.
    let missing = publish(&s3, "nonexistent", &[]).await;
    assert_eq!(missing.code, Some(3), "{}", missing.stderr);
    assert!(
        missing.stderr.contains("cannot read clusters/prod/openid/v1/jwks from the bucket: HTTP 404 Not Found, NoSuchBucket"),
        "{}",
        missing.stderr
    );

    // 3: nothing listens at the endpoint.
    let (_refusing, port) = common::refusing_port();
    let dead = format!("http://127.0.0.1:{port}");
    let down = publish(&dead, "public", &[]).await;
    assert_eq!(down.code, Some(3), "{}", down.stderr);

    // 3: wrong credentials, refused by a SigV4-checking server.
    let root = tempfile::tempdir().unwrap();
    let strict = format!("http://{}", s3s(root.path()).await);
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args([
            "publish",
            "--issuer",
            ISSUER,
            "--mirror",
            "s3://oidc/clusters/prod",
        ])
        .arg("--key-file")
        .arg(common::key("ec256.pub.pem"))
        .args(["--s3-endpoint", &strict])
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .env("AWS_REGION", "us-east-1")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");

    // 3: an ACL the store refuses (s3s-fs implements no ACLs), after the objects were written.
    let no_acl = tokio::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args([
            "publish",
            "--issuer",
            ISSUER,
            "--mirror",
            "s3://oidc/clusters/prod",
        ])
        .arg("--key-file")
        .arg(common::key("ec256.pub.pem"))
        .args(["--s3-endpoint", &strict, "--mirror-acl", "public-read"])
        .env("AWS_ACCESS_KEY_ID", "AKIDTEST")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&no_acl.stderr);
    assert_eq!(no_acl.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("cannot set the public-read ACL on clusters/prod/openid/v1/jwks: HTTP"),
        "{stderr}"
    );

    // 2: usage.
    let gs = tokio::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(["publish", "--issuer", ISSUER, "--mirror", "gs://b/p"])
        .arg("--key-file")
        .arg(common::key("ec256.pub.pem"))
        .output()
        .await
        .unwrap();
    assert_eq!(gs.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&gs.stderr).contains("only s3://"));
    let no_bucket = tokio::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(["publish", "--issuer", ISSUER])
        .arg("--key-file")
        .arg(common::key("ec256.pub.pem"))
        .output()
        .await
        .unwrap();
    assert_eq!(no_bucket.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_bucket.stderr).contains("--mirror"));
}

// === config ===

#[test]
fn mirror_settings_from_the_file_and_flags_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuerd.toml");
    std::fs::write(
        &file,
        format!(
            "issuer = \"{ISSUER}\"\nkey_files = [\"{}\"]\n[mirror]\nurl = \"s3://from-file/p\"\n\
             endpoint = \"http://127.0.0.1:9000\"\nregion = \"eu-west-1\"\n\
             public_url = \"https://cdn.example.test/p\"\nacl = \"public-read\"\n\
             required = true\n",
            common::key("ec256.pub.pem").display()
        ),
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut argv = vec!["issuerd", "serve", "--config", config];
        argv.extend_from_slice(extra);
        let Command::Serve(serve) = Config::from_args(argv).unwrap().command else {
            unreachable!()
        };
        serve
    };
    let from_file = serve(&[]);
    let mirror = from_file.mirror.unwrap();
    assert_eq!(mirror.target.to_string(), "s3://from-file/p");
    assert_eq!(mirror.endpoint.unwrap().as_str(), "http://127.0.0.1:9000/");
    assert_eq!(mirror.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        mirror.public_url.unwrap().as_str(),
        "https://cdn.example.test/p"
    );
    assert_eq!(mirror.acl, issuerd::bucket::MirrorAcl::PublicRead);
    assert!(from_file.mirror_required);

    let flags = serve(&[
        "--mirror",
        "s3://from-flag",
        "--s3-region",
        "us-west-2",
        "--mirror-acl",
        "default",
    ]);
    let mirror = flags.mirror.unwrap();
    assert_eq!(mirror.target.to_string(), "s3://from-flag");
    assert_eq!(mirror.region.as_deref(), Some("us-west-2"));
    assert_eq!(mirror.acl, issuerd::bucket::MirrorAcl::Default);

    // Without a bucket, --mirror-required is a configuration error.
    let error = Config::from_args([
        "issuerd",
        "serve",
        "--issuer",
        ISSUER,
        "--key-file",
        common::key("ec256.pub.pem").to_str().unwrap(),
        "--mirror-required",
    ])
    .unwrap_err();
    assert!(error.to_string().contains("needs --mirror"), "{error}");
}
