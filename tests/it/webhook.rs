//! `issuerd webhook` as the API server meets it: AdmissionReviews POSTed over HTTPS (a CA made in
//! the test), the answers decoded and their patches checked; the map and the certificate
//! replaced while it runs; metrics through promtool; the start refused on bad input.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::common::ca::{Ca, write_atomically};
use crate::common::{self, KillOnDrop};

const ROLE: &str = "arn:aws:iam::111122223333:role/app.default.sa.cluster";
const ROLE_2: &str = "arn:aws:iam::111122223333:role/rotated";

/// A running `issuerd webhook` and the files it reads.
pub(crate) struct Running {
    child: KillOnDrop,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    pub(crate) admin: SocketAddr,
    ca: Ca,
    log: Arc<Mutex<String>>,
}

fn map_file(entries: &Value) -> String {
    serde_json::to_string(entries).unwrap()
}

fn start(map: &Value, extra: &[&str]) -> Running {
    start_with("--eks-config-map", &map_file(map), extra)
}

/// `issuerd webhook` with `text` as the map file given to `map_flag` (as `DIR/config`; no map
/// file when `map_flag` is empty).
pub(crate) fn start_with(map_flag: &str, text: &str, extra: &[&str]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    ca.leaf(&["localhost"], 1, (-1, 30)).write(dir.path());
    std::fs::write(dir.path().join("config"), text).unwrap();
    let map_args = if map_flag.is_empty() {
        Vec::new()
    } else {
        vec![
            std::ffi::OsString::from(map_flag),
            dir.path().join("config").into_os_string(),
        ]
    };
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_issuerd"))
            .args([
                "webhook",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .arg("--tls-cert")
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(map_args)
            .args(["--watch-debounce", "50ms"])
            .args(extra)
            .env_remove("ISSUERD_CONFIG")
            .env("NO_COLOR", "1")
            .env("ISSUERD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let (mut addr, mut admin) = (None, None);
    while addr.is_none() || admin.is_none() {
        let Some(Ok(line)) = lines.next() else {
            panic!(
                "issuerd webhook exited before ready:\n{}",
                log.lock().unwrap()
            );
        };
        addr = addr.or(common::logged_address(&line, "webhook ready"));
        admin = admin.or(common::logged_address(&line, "admin listener ready"));
        log.lock().unwrap().push_str(&format!("{line}\n"));
    }
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    Running {
        child,
        dir,
        addr: addr.unwrap(),
        admin: admin.unwrap(),
        ca,
        log,
    }
}

/// The answer to one request over a new TLS connection: status, headers, body, and the
/// serial of the certificate served.
pub(crate) struct Answer {
    pub(crate) status: u16,
    content_type: String,
    connection: Option<String>,
    pub(crate) body: Bytes,
    serial: String,
}

impl Running {
    /// POSTs a v1 review of a pod of `namespace`/`service_account` with `annotations`: the
    /// response envelope and the decoded patch.
    pub(crate) async fn admit_pod(
        &self,
        uid: &str,
        namespace: &str,
        service_account: &str,
        annotations: Value,
    ) -> (Value, Vec<Value>) {
        let pod = pod(namespace, service_account, annotations);
        let body = review("admission.k8s.io/v1", uid, namespace, pod);
        decode(&self.post("application/json", body).await)
    }

    pub(crate) async fn post(&self, content_type: &str, body: Vec<u8>) -> Answer {
        self.send("POST", "/mutate", content_type, body).await
    }

    async fn send(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        // As Go's client (the API server) offers: h2 first. The webhook speaks HTTP/1.1 only,
        // and must say so in ALPN rather than accept h2 and then fail.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .expect("the webhook's certificate verifies against the test CA");
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let serial = common::served_serial(&stream);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        Answer {
            status: response.status().as_u16(),
            connection: response
                .headers()
                .get("connection")
                .map(|v| v.to_str().unwrap().to_owned()),
            content_type: response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: response.into_body().collect().await.unwrap().to_bytes(),
            serial,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

pub(crate) fn pod(namespace: &str, service_account: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "app-", "namespace": namespace, "annotations": annotations},
        "spec": {
            "serviceAccountName": service_account,
            "containers": [{"name": "app", "image": "example/app"}]
        }
    })
}

pub(crate) fn review(api_version: &str, uid: &str, namespace: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object,
            "dryRun": false
        }
    }))
    .unwrap()
}

/// The response envelope and the decoded patch (empty when none).
pub(crate) fn decode(answer: &Answer) -> (Value, Vec<Value>) {
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type, "application/json");
    let envelope: Value = serde_json::from_slice(&answer.body).unwrap();
    let patch = match envelope["response"].get("patch") {
        Some(Value::String(b64)) => {
            assert_eq!(envelope["response"]["patchType"], "JSONPatch");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            serde_json::from_slice::<Vec<Value>>(&bytes).unwrap()
        }
        None => Vec::new(),
        Some(other) => panic!("patch is {other}"),
    };
    (envelope, patch)
}

/// Every value the patch sets for env var `name`, in any container.
pub(crate) fn env_values(patch: &[Value], name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut visit = |v: &Value| {
        let list = match v {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for item in list {
            if item["name"] == name
                && let Some(value) = item["value"].as_str()
            {
                found.push(value.to_owned());
            }
        }
    };
    for op in patch {
        let value = &op["value"];
        visit(value);
        if let Some(containers) = value.as_array() {
            for container in containers {
                if let Some(env) = container.get("env") {
                    visit(env);
                }
            }
        }
    }
    found
}

fn eks_map(role: &str) -> Value {
    json!({
        "default/app": {"RoleARN": role, "Audience": "amazonaws.com", "UseRegionalSTS": true, "TokenExpiration": 0},
        "test-*/app": {"RoleARN": "arn:aws:iam::111122223333:role/app.wildcard.sa.cluster"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_pod_gets_the_wiring_over_https_in_v1_and_v1beta1() {
    let webhook = start(&eks_map(ROLE), &["--aws-default-region", "eu-west-1"]);
    for api_version in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
        let uid = format!("uid-{api_version}");
        let answer = webhook
            .post(
                "application/json",
                review(
                    api_version,
                    &uid,
                    "default",
                    pod("default", "app", json!({})),
                ),
            )
            .await;
        let (envelope, patch) = decode(&answer);
        assert_eq!(envelope["apiVersion"], api_version);
        assert_eq!(envelope["kind"], "AdmissionReview");
        assert_eq!(envelope["response"]["uid"], uid.as_str());
        assert_eq!(envelope["response"]["allowed"], true);
        assert_eq!(env_values(&patch, "AWS_ROLE_ARN"), [ROLE]);
        assert_eq!(
            env_values(&patch, "AWS_STS_REGIONAL_ENDPOINTS"),
            ["regional"]
        );
        assert_eq!(env_values(&patch, "AWS_REGION"), ["eu-west-1"]);
        assert_eq!(
            env_values(&patch, "AWS_WEB_IDENTITY_TOKEN_FILE"),
            ["/var/run/secrets/eks.amazonaws.com/serviceaccount/token"]
        );
        let text = serde_json::to_string(&patch).unwrap();
        assert!(text.contains(r#""audience":"amazonaws.com""#), "{text}");
        assert!(text.contains(r#""expirationSeconds":86400"#), "{text}");
    }
    // A namespace glob kOps writes (the EKS webhook never matches it).
    let (_, patch) = webhook.admit_pod("u2", "test-7", "app", json!({})).await;
    assert_eq!(
        env_values(&patch, "AWS_ROLE_ARN"),
        ["arn:aws:iam::111122223333:role/app.wildcard.sa.cluster"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_pods_pass_unchanged_and_a_pod_that_expects_credentials_is_warned() {
    let webhook = start(&eks_map(ROLE), &[]);
    let (envelope, patch) = webhook.admit_pod("u1", "default", "other", json!({})).await;
    assert_eq!(envelope["response"]["allowed"], true);
    assert!(patch.is_empty());
    assert!(
        envelope["response"]
            .get("warnings")
            .is_none_or(Value::is_null)
    );

    let expects = json!({"eks.amazonaws.com/token-expiration": "3600"});
    let answer = webhook
        .post(
            "application/json",
            review(
                "admission.k8s.io/v1",
                "u2",
                "default",
                pod("default", "other", expects),
            ),
        )
        .await;
    let (envelope, patch) = decode(&answer);
    assert!(patch.is_empty());
    let warnings = envelope["response"]["warnings"].to_string();
    assert!(warnings.contains("default/other has no role"), "{warnings}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_an_admission_review_is_refused_clearly() {
    let webhook = start(&eks_map(ROLE), &[]);
    let body = review(
        "admission.k8s.io/v1",
        "u1",
        "default",
        pod("default", "app", json!({})),
    );
    let answer = webhook.post("application/yaml", body.clone()).await;
    assert_eq!(answer.status, 415);
    let answer = webhook
        .send("GET", "/mutate", "application/json", Vec::new())
        .await;
    assert_eq!(answer.status, 405);
    let answer = webhook
        .send("POST", "/other", "application/json", body)
        .await;
    assert_eq!(answer.status, 404);

    let answer = webhook
        .post("application/json", b"{not json".to_vec())
        .await;
    let (envelope, patch) = decode(&answer);
    assert!(patch.is_empty());
    assert_eq!(envelope["response"]["allowed"], false);
    assert_eq!(envelope["response"]["status"]["code"], 400);
    let message = envelope["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("not JSON"), "{message}");

    let too_large = vec![b' '; 5 * 1024 * 1024];
    let answer = webhook.post("application/json", too_large).await;
    assert_eq!(answer.status, 413);

    for path in ["/healthz", "/readyz"] {
        let answer = webhook.send("GET", path, "text/plain", Vec::new()).await;
        assert_eq!(answer.status, 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_and_the_certificate_are_replaced_while_it_runs() {
    let webhook = start(&eks_map(ROLE), &[]);
    let body = || {
        review(
            "admission.k8s.io/v1",
            "u",
            "default",
            pod("default", "app", json!({})),
        )
    };
    let first = webhook.post("application/json", body()).await;
    assert_eq!(env_values(&decode(&first).1, "AWS_ROLE_ARN"), [ROLE]);
    assert_eq!(first.serial, "01");

    // A new map, written as kubelet or an editor would (rename): the new role is used.
    write_atomically(
        &webhook.path("config"),
        map_file(&eks_map(ROLE_2)).as_bytes(),
    );
    eventually!(
        env_values(
            &decode(&webhook.post("application/json", body()).await).1,
            "AWS_ROLE_ARN"
        ) == [ROLE_2],
        "the new map was not used:\n{}",
        webhook.log()
    );

    // A broken map keeps the last good one, and says which file and why.
    write_atomically(
        &webhook.path("config"),
        br#"{"default/app":{"RoleArm":"x"}}"#,
    );
    eventually!(
        webhook.log().contains("IAM map reload failed"),
        "no reload failure logged:\n{}",
        webhook.log()
    );
    let log = webhook.log();
    assert!(log.contains(r#"unknown field "RoleArm""#), "{log}");
    assert!(
        log.contains(&webhook.path("config").display().to_string()),
        "{log}"
    );
    let still = webhook.post("application/json", body()).await;
    assert_eq!(env_values(&decode(&still).1, "AWS_ROLE_ARN"), [ROLE_2]);
    // An empty file (a write caught half-way) is no map without roles.
    write_atomically(&webhook.path("config"), b"");
    eventually!(
        webhook.log().contains("config: is empty"),
        "no refusal of the empty map logged:\n{}",
        webhook.log()
    );
    let still = webhook.post("application/json", body()).await;
    assert_eq!(env_values(&decode(&still).1, "AWS_ROLE_ARN"), [ROLE_2]);

    // A new certificate (cert-manager renewing the Secret) is served without a restart.
    webhook
        .ca
        .leaf(&["localhost"], 2, (-1, 30))
        .write(webhook.dir.path());
    eventually!(
        webhook.post("application/json", body()).await.serial == "02",
        "the new certificate was not served:\n{}",
        webhook.log()
    );

    let metrics = reqwest::get(format!("http://{}/metrics", webhook.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    crate::metrics::promtool_check(&metrics);
    assert!(
        metrics.contains("issuerd_webhook_map_reload_failing 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("issuerd_webhook_map_entries 2"),
        "{metrics}"
    );
    let mutated = metrics
        .lines()
        .find(|l| l.starts_with("issuerd_webhook_admissions_total{outcome=\"mutated\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let count: u64 = mutated.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 4, "{mutated}");
    assert!(
        metrics.contains("issuerd_webhook_admission_duration_seconds_bucket"),
        "{metrics}"
    );
}

fn run_webhook(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .arg("webhook")
        .args(args)
        .current_dir(dir)
        .env_remove("ISSUERD_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_input_stops_the_start_with_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    Ca::new()
        .leaf(&["localhost"], 1, (-1, 30))
        .write(dir.path());
    std::fs::write(dir.path().join("bad.json"), r#"{"nssa":{"RoleARN":"x"}}"#).unwrap();
    std::fs::write(dir.path().join("good.json"), "{}").unwrap();
    let tls = [
        "--tls-cert",
        "tls.crt",
        "--tls-key",
        "tls.key",
        "--listen",
        "127.0.0.1:0",
    ];
    let with = |more: &[&'static str]| [&tls[..], more].concat();
    for (args, needle) in [
        (with(&[]), "the webhook needs a map"),
        (
            with(&["--cluster-spec", "good.json"]),
            "--cluster-spec needs --account-id",
        ),
        (
            with(&["--cluster-spec", "good.json", "--account-id", "1234"]),
            "--account-id: ",
        ),
        (
            with(&["--eks-config-map", "bad.json"]),
            r#"bad.json: entry "nssa": the key is not NAMESPACE/SERVICEACCOUNT"#,
        ),
        (
            with(&["--eks-config-map", "missing.json"]),
            "cannot read missing.json",
        ),
        (
            with(&["--eks-config-map", "good.json", "--fs-group=-1"]),
            "--fs-group -1",
        ),
        (
            with(&["--eks-config-map", "good.json", "--poll-interval", "0s"]),
            "--poll-interval 0ns: give a duration above 0",
        ),
        (
            with(&[
                "--eks-config-map",
                "good.json",
                "--service-account-lookup-grace-period",
                "9s",
            ]),
            "--service-account-lookup-grace-period: at most 3s",
        ),
        (
            with(&[
                "--service-account-annotations",
                "--kubeconfig",
                "missing-kubeconfig",
            ]),
            "--kubeconfig missing-kubeconfig",
        ),
        (
            [
                &["--tls-cert", "missing.crt", "--tls-key", "tls.key"][..],
                &["--eks-config-map", "good.json"][..],
            ]
            .concat(),
            "missing.crt",
        ),
    ] {
        let (code, stderr) = run_webhook(&args, dir.path());
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kops_cluster_manifest_wires_pods_with_the_roles_kops_names() {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/iam_map/kops-get-all.yaml"
    ))
    .unwrap();
    let webhook = start_with(
        "--cluster-spec",
        &manifest,
        &["--account-id", "111122223333", "--partition", "aws-cn"],
    );
    // Role names as kOps computes them (pkg/model/iam: <name>.<ns>.sa.<cluster>, `*` as
    // `wildcard`, over 64 characters the first 57 and a 6-character FNV-1a/base32hex suffix,
    // worked out independently of issuerd's code).
    for (namespace, service_account, role) in [
        ("default", "app", "app.default.sa.prod.k8s.example.com"),
        (
            "team-blue",
            "app",
            "app.team-wildcard.sa.prod.k8s.example.com",
        ),
        (
            "monitoring",
            "metrics",
            "metrics.wildcard.sa.prod.k8s.example.com",
        ),
        (
            "data-processing",
            "batch-pipeline-orchestrator",
            "batch-pipeline-orchestrator.data-processing.sa.prod.k8s.e-uo5j7r",
        ),
    ] {
        let body = review(
            "admission.k8s.io/v1",
            "u",
            namespace,
            pod(namespace, service_account, json!({})),
        );
        let (_, patch) = decode(&webhook.post("application/json", body).await);
        assert_eq!(
            env_values(&patch, "AWS_ROLE_ARN"),
            [format!("arn:aws-cn:iam::111122223333:role/{role}")],
            "{namespace}/{service_account}"
        );
        // What kOps writes for its webhook: the audience it registers, the regional endpoint.
        assert!(
            serde_json::to_string(&patch)
                .unwrap()
                .contains(r#""audience":"amazonaws.com""#)
        );
        assert_eq!(
            env_values(&patch, "AWS_STS_REGIONAL_ENDPOINTS"),
            ["regional"]
        );
    }
    let body = review(
        "admission.k8s.io/v1",
        "u",
        "default",
        pod("default", "nobody", json!({})),
    );
    let (_, patch) = decode(&webhook.post("application/json", body).await);
    assert!(patch.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_it_answers_through_the_drain_delay_then_exits_0() {
    let mut webhook = start(&eks_map(ROLE), &["--drain-delay", "1500ms"]);
    let body = || {
        review(
            "admission.k8s.io/v1",
            "u",
            "default",
            pod("default", "app", json!({})),
        )
    };
    let ready = reqwest::get(format!("http://{}/readyz", webhook.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        webhook.post("application/json", body()).await.connection,
        None
    );
    let status = Command::new("kill")
        .args(["-TERM", &webhook.child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually!(
        reqwest::get(format!("http://{}/readyz", webhook.admin))
            .await
            .is_ok_and(|r| r.status() == 503),
        "/readyz never turned 503:\n{}",
        webhook.log()
    );
    // Still answering, each answer closing its connection.
    let answer = webhook.post("application/json", body()).await;
    assert_eq!(env_values(&decode(&answer).1, "AWS_ROLE_ARN"), [ROLE]);
    assert_eq!(answer.connection.as_deref(), Some("close"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = webhook.child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running:\n{}",
            webhook.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}\n{}", webhook.log());
    assert!(webhook.log().contains("stopped"), "{}", webhook.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_no_api_server_sends_are_not_looked_up_and_short_lifetimes_are_raised() {
    let webhook = start(&eks_map(ROLE), &["--token-expiration", "60"]);
    let huge = "a".repeat(100_000);
    for (namespace, service_account) in [("Default", "app"), ("default", huge.as_str())] {
        let body = review(
            "admission.k8s.io/v1",
            "u",
            namespace,
            pod(namespace, service_account, json!({})),
        );
        let (envelope, patch) = decode(&webhook.post("application/json", body).await);
        assert_eq!(envelope["response"]["allowed"], true);
        assert!(patch.is_empty(), "{namespace}");
    }
    let body = review(
        "admission.k8s.io/v1",
        "u",
        "default",
        pod("default", "app", json!({})),
    );
    let (_, patch) = decode(&webhook.post("application/json", body).await);
    let text = serde_json::to_string(&patch).unwrap();
    assert!(text.contains(r#""expirationSeconds":600"#), "{text}");
    assert!(webhook.log().contains("raised"), "{}", webhook.log());
}
