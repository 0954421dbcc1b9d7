//! `issuerd webhook --service-account-annotations` with the real `kube` client against a stand-in
//! Kubernetes API server made here: HTTPS with a test CA, a bearer token required, ServiceAccount
//! metadata listed, watched (a chunked stream of events) and fetched one at a time. The race (a
//! pod admitted before the cache has its ServiceAccount), annotations over the map, an API
//! outage, and a watch that ends and must relist after `410 Gone`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::ca::Ca;
use crate::common::https;
use crate::webhook::{Running, env_values, start_with};

const TOKEN: &str = "stand-in-token";
const MAP_ROLE: &str = "arn:aws:iam::111122223333:role/from-the-map";
const ANNOTATED_ROLE: &str = "arn:aws:iam::111122223333:role/from-the-annotation";
const ROLE_ARN: &str = "eks.amazonaws.com/role-arn";

/// One ServiceAccount as the stand-in stores it.
#[derive(Clone)]
struct Account {
    resource_version: u64,
    annotations: BTreeMap<String, String>,
    /// Left out of lists and watch events (the cache cannot have it); a GET finds it.
    hidden: bool,
}

#[derive(Default)]
struct State {
    accounts: BTreeMap<(String, String), Account>,
    /// Every change, for watches that resume from a resourceVersion.
    events: Vec<(u64, String)>,
    version: u64,
    /// Watches resuming from before this get `410 Gone`.
    compacted_before: u64,
    watchers: Vec<mpsc::UnboundedSender<Bytes>>,
    /// Every request answered 503.
    down: bool,
    /// GETs of one ServiceAccount answered 500.
    gets_fail: bool,
    /// This many GETs answered 429 with `Retry-After: 1` first (API priority and fairness).
    gets_throttled: usize,
    /// Lists answered in pages of at most `limit` (with a `continue` token), as the API
    /// server does; otherwise whole.
    pages: bool,
    gets: Vec<String>,
    lists: usize,
    watches: usize,
    unauthorized: usize,
}

/// The stand-in API server.
struct ApiServer {
    url: String,
    ca: Ca,
    state: Arc<Mutex<State>>,
    _task: tokio::task::JoinHandle<()>,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: u16, body: Value) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

fn status(code: u16, reason: &str, message: &str) -> hyper::Response<Body> {
    full(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

/// A ServiceAccount as `PartialObjectMetadata`, with metadata the webhook has no use for.
fn object(namespace: &str, name: &str, account: &Account) -> Value {
    let mut annotations = account.annotations.clone();
    annotations.insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        "x".repeat(2000),
    );
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("uid-{namespace}-{name}"),
            "resourceVersion": account.resource_version.to_string(),
            "labels": {"app": name},
            "annotations": annotations,
        }
    })
}

fn query(uri: &http::Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

impl ApiServer {
    async fn start() -> Self {
        let ca = Ca::new();
        let acceptor = ca.leaf(&["localhost"], 1, (-1, 30)).acceptor();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let state = Arc::new(Mutex::new(State::default()));
        let task = https::serve(listener, acceptor, {
            let state = Arc::clone(&state);
            move |request| std::future::ready(answer(&state, &request))
        });
        Self {
            url,
            ca,
            state,
            _task: task,
        }
    }

    /// Creates or updates `namespace/name` (a watch event unless `hidden`).
    fn put(&self, namespace: &str, name: &str, annotations: &[(&str, &str)], hidden: bool) {
        let mut state = self.state.lock().unwrap();
        state.version += 1;
        let account = Account {
            resource_version: state.version,
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            hidden,
        };
        let key = (namespace.to_owned(), name.to_owned());
        let kind = if state.accounts.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.accounts.insert(key, account.clone());
        if hidden {
            return;
        }
        let event = json!({"type": kind, "object": object(namespace, name, &account)});
        let version = state.version;
        state.events.push((version, format!("{event}\n")));
        let line = Bytes::from(format!("{event}\n"));
        state.watchers.retain(|w| w.send(line.clone()).is_ok());
    }

    /// Ends every open watch; resuming from before now gets `410 Gone` (the events were
    /// compacted), so the client must list again.
    fn end_watches_and_compact(&self) {
        let mut state = self.state.lock().unwrap();
        state.watchers.clear();
        state.compacted_before = state.version + 1;
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// A kubeconfig for the stand-in, with `token`.
    fn kubeconfig(&self, dir: &std::path::Path, token: &str) -> std::path::PathBuf {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca.pem());
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: stand-in\nclusters:\n- name: stand-in\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: webhook\nusers:\n- name: webhook\n  user:\n    token: {token}\n",
            self.url
        );
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).unwrap();
        path
    }
}

fn answer(
    state: &Mutex<State>,
    request: &http::Request<hyper::body::Incoming>,
) -> hyper::Response<Body> {
    let mut state = state.lock().unwrap();
    if state.down {
        return status(503, "ServiceUnavailable", "the stand-in is down");
    }
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {TOKEN}"));
    if !authorized {
        state.unauthorized += 1;
        return status(401, "Unauthorized", "Unauthorized");
    }
    let path = request.uri().path();
    let query = query(request.uri());
    if path == "/api/v1/serviceaccounts"
        && query.get("watch").is_some_and(|w| w == "true" || w == "1")
    {
        state.watches += 1;
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (sender, mut receiver) = mpsc::unbounded_channel::<Bytes>();
        if from < state.compacted_before {
            let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
                "status": "Failure", "reason": "Expired", "code": 410,
                "message": format!("too old resource version: {from}")}});
            sender.send(Bytes::from(format!("{gone}\n"))).unwrap();
            drop(sender);
        } else {
            for (version, line) in &state.events {
                if *version > from {
                    sender.send(Bytes::from(line.clone())).unwrap();
                }
            }
            state.watchers.push(sender);
        }
        let stream = futures::stream::poll_fn(move |cx| {
            receiver
                .poll_recv(cx)
                .map(|line| line.map(|l| Ok::<_, Infallible>(Frame::data(l))))
        });
        return hyper::Response::builder()
            .header("content-type", "application/json")
            .body(StreamBody::new(stream).boxed())
            .unwrap();
    }
    if path == "/api/v1/serviceaccounts" {
        state.lists += 1;
        let items: Vec<Value> = state
            .accounts
            .iter()
            .filter(|(_, a)| !a.hidden)
            .map(|((ns, name), a)| object(ns, name, a))
            .collect();
        let from: usize = query
            .get("continue")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|_| state.pages)
            .unwrap_or(usize::MAX);
        let page: Vec<Value> = items.iter().skip(from).take(limit).cloned().collect();
        let mut metadata = json!({"resourceVersion": state.version.to_string()});
        if from.saturating_add(limit) < items.len() {
            metadata["continue"] = json!((from + limit).to_string());
        }
        return full(
            200,
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                   "metadata": metadata, "items": page}),
        );
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let [
        "api",
        "v1",
        "namespaces",
        namespace,
        "serviceaccounts",
        name,
    ] = parts[..]
    {
        state.gets.push(format!("{namespace}/{name}"));
        if state.gets_throttled > 0 {
            state.gets_throttled -= 1;
            let mut throttled = status(429, "TooManyRequests", "the stand-in throttles GETs");
            throttled
                .headers_mut()
                .insert("retry-after", http::HeaderValue::from_static("1"));
            return throttled;
        }
        if state.gets_fail {
            return status(500, "InternalError", "the stand-in fails GETs");
        }
        return match state.accounts.get(&(namespace.to_owned(), name.to_owned())) {
            Some(account) => full(200, object(namespace, name, account)),
            None => status(
                404,
                "NotFound",
                &format!("serviceaccounts \"{name}\" not found"),
            ),
        };
    }
    status(404, "NotFound", "the stand-in serves ServiceAccounts only")
}

/// The webhook reading annotations from `api` with `token`, beside an EKS map for
/// `default/mapped` and `default/both`.
async fn start_webhook(
    api: &ApiServer,
    token: &str,
    extra: &[&str],
) -> (Running, tempfile::TempDir) {
    start_webhook_with(api, token, "--eks-config-map", extra).await
}

/// As [`start_webhook`], with the map given to `map_flag` (none when empty).
async fn start_webhook_with(
    api: &ApiServer,
    token: &str,
    map_flag: &'static str,
    extra: &[&str],
) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path(), token);
    let map = json!({
        "default/mapped": {"RoleARN": MAP_ROLE},
        "default/both": {"RoleARN": MAP_ROLE},
    });
    let mut args = vec![
        "--service-account-annotations",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let running = tokio::task::spawn_blocking({
        let map = map.to_string();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            start_with(map_flag, &map, &args)
        }
    })
    .await
    .unwrap();
    (running, dir)
}

async fn readyz(webhook: &Running) -> u16 {
    reqwest::get(format!("http://{}/readyz", webhook.admin))
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_ready(webhook: &Running) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while readyz(webhook).await != 200 {
        assert!(Instant::now() < deadline, "never ready:\n{}", webhook.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Admits a pod of `namespace/service_account`: the response envelope and the patch.
async fn admit(webhook: &Running, namespace: &str, service_account: &str) -> (Value, Vec<Value>) {
    let uid = format!("uid-{service_account}");
    webhook
        .admit_pod(&uid, namespace, service_account, json!({}))
        .await
}

/// The role a pod of `service_account` gets, if any.
async fn role_of(webhook: &Running, service_account: &str) -> Option<String> {
    let (envelope, patch) = admit(webhook, "default", service_account).await;
    assert_eq!(envelope["response"]["allowed"], true, "{envelope}");
    env_values(&patch, "AWS_ROLE_ARN").into_iter().next()
}

async fn metrics(webhook: &Running) -> String {
    reqwest::get(format!("http://{}/metrics", webhook.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_win_over_the_map_and_a_service_account_created_just_before_its_pod_is_fetched()
{
    let api = ApiServer::start().await;
    api.put(
        "default",
        "both",
        &[
            (ROLE_ARN, ANNOTATED_ROLE),
            ("eks.amazonaws.com/audience", "vault"),
            ("eks.amazonaws.com/token-expiration", "3600"),
            ("eks.amazonaws.com/sts-regional-endpoints", "true"),
        ],
        false,
    );
    api.put("default", "mapped", &[("team", "a")], false);
    api.put("default", "annotated", &[(ROLE_ARN, ANNOTATED_ROLE)], false);
    api.put("default", "plain", &[], false);
    api.put(
        "default",
        "typo",
        &[(ROLE_ARN, "arn:aws:iam:111122223333:role/x")],
        false,
    );
    let (webhook, _dir) = start_webhook(&api, TOKEN, &[]).await;
    wait_ready(&webhook).await;
    assert!(
        webhook.log().contains("ServiceAccounts listed"),
        "{}",
        webhook.log()
    );

    // The annotation wins over the map entry, with its own audience, lifetime and endpoint.
    let (_, patch) = admit(&webhook, "default", "both").await;
    assert_eq!(env_values(&patch, "AWS_ROLE_ARN"), [ANNOTATED_ROLE]);
    assert_eq!(
        env_values(&patch, "AWS_STS_REGIONAL_ENDPOINTS"),
        ["regional"]
    );
    let text = serde_json::to_string(&patch).unwrap();
    assert!(text.contains(r#""audience":"vault""#), "{text}");
    assert!(text.contains(r#""expirationSeconds":3600"#), "{text}");
    // No role annotation: the map decides; neither: nothing.
    assert_eq!(role_of(&webhook, "mapped").await.as_deref(), Some(MAP_ROLE));
    assert_eq!(
        role_of(&webhook, "annotated").await.as_deref(),
        Some(ANNOTATED_ROLE)
    );
    assert_eq!(role_of(&webhook, "plain").await, None);
    // A role annotation that is no ARN is named in a warning, not wired.
    let (envelope, patch) = admit(&webhook, "default", "typo").await;
    assert!(patch.is_empty(), "{patch:?}");
    let warnings = envelope["response"]["warnings"].to_string();
    assert!(
        warnings.contains("default/typo") && warnings.contains(ROLE_ARN),
        "{warnings}"
    );
    // So far everything came from the cache.
    assert!(api.with(|s| s.gets.clone()).is_empty());

    // The race: the ServiceAccount exists, but the cache has not seen it yet.
    api.put("default", "late", &[(ROLE_ARN, ANNOTATED_ROLE)], true);
    assert_eq!(
        role_of(&webhook, "late").await.as_deref(),
        Some(ANNOTATED_ROLE)
    );
    assert_eq!(api.with(|s| s.gets.clone()), ["default/late"]);
    // A ServiceAccount that does not exist: the map alone decides (nothing here).
    assert_eq!(role_of(&webhook, "nobody").await, None);

    // A change arrives through the watch: no GET needed.
    api.with(|s| s.gets_fail = true);
    api.put("default", "plain", &[(ROLE_ARN, ANNOTATED_ROLE)], false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while role_of(&webhook, "plain").await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the watch never delivered:\n{}",
            webhook.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = metrics(&webhook).await;
    assert!(
        text.contains(r#"issuerd_webhook_service_account_lookups_total{result="api"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"issuerd_webhook_service_account_lookups_total{result="missing"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"issuerd_webhook_service_account_lookups_total{result="cache"}"#),
        "{text}"
    );
    assert_eq!(api.with(|s| s.unauthorized), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_api_outage_the_cache_answers_and_what_it_cannot_read_is_refused() {
    let api = ApiServer::start().await;
    api.put("default", "annotated", &[(ROLE_ARN, ANNOTATED_ROLE)], false);
    let (webhook, _dir) = start_webhook(
        &api,
        TOKEN,
        &["--service-account-lookup-grace-period", "3s"],
    )
    .await;
    wait_ready(&webhook).await;
    api.with(|s| {
        s.down = true;
        s.watchers.clear();
    });
    // The watch says it fails.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics(&webhook)
        .await
        .contains("issuerd_webhook_service_account_watch_failing 1")
    {
        assert!(Instant::now() < deadline, "{}", webhook.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Cached: answered as before.
    assert_eq!(
        role_of(&webhook, "annotated").await.as_deref(),
        Some(ANNOTATED_ROLE)
    );
    // Not cached, and the API server cannot say: refused (its controller retries), naming
    // the ServiceAccount, even when the map has an entry the annotation might override.
    // The first miss waits the grace period (kube retrying the 503s); the next, right after,
    // is refused at once instead of holding an admission slot as long.
    let mut took = Vec::new();
    for service_account in ["unknown", "mapped"] {
        let started = Instant::now();
        let (envelope, patch) = admit(&webhook, "default", service_account).await;
        took.push(started.elapsed());
        assert!(patch.is_empty());
        assert_eq!(envelope["response"]["allowed"], false, "{envelope}");
        assert_eq!(envelope["response"]["status"]["code"], 503, "{envelope}");
        let message = envelope["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("default/{service_account}")),
            "{message}"
        );
    }
    assert!(took[0] >= Duration::from_millis(2900), "{took:?}");
    assert!(took[1] < Duration::from_secs(1), "{took:?}");
    assert!(
        metrics(&webhook)
            .await
            .contains(r#"issuerd_webhook_admissions_total{outcome="lookup_failed"} 2"#),
        "{}",
        metrics(&webhook).await
    );
    // Back: a new ServiceAccount is found again (once the 5 s of failing fast are over, or
    // the watch is back).
    api.with(|s| s.down = false);
    api.put("default", "after", &[(ROLE_ARN, ANNOTATED_ROLE)], true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (envelope, patch) = admit(&webhook, "default", "after").await;
        if envelope["response"]["allowed"] == true {
            assert_eq!(env_values(&patch, "AWS_ROLE_ARN"), [ANNOTATED_ROLE]);
            break;
        }
        assert!(Instant::now() < deadline, "{envelope}\n{}", webhook.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_ends_resumes_and_after_410_gone_lists_again() {
    let api = ApiServer::start().await;
    api.put("default", "first", &[(ROLE_ARN, ANNOTATED_ROLE)], false);
    let (webhook, _dir) = start_webhook(&api, TOKEN, &[]).await;
    wait_ready(&webhook).await;
    let lists_before = api.with(|s| s.lists);
    api.with(|s| s.gets_fail = true);
    // The watch ends and the events it would resume from are gone: only a new list has
    // `second`, and GETs fail, so the cache must have it.
    api.end_watches_and_compact();
    api.put("default", "second", &[(ROLE_ARN, ANNOTATED_ROLE)], false);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (envelope, patch) = admit(&webhook, "default", "second").await;
        if !patch.is_empty() {
            assert_eq!(env_values(&patch, "AWS_ROLE_ARN"), [ANNOTATED_ROLE]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never relisted ({envelope}):\n{}",
            webhook.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(api.with(|s| s.lists) > lists_before);
    assert!(api.with(|s| s.watches) >= 2);
    assert_eq!(
        role_of(&webhook, "first").await.as_deref(),
        Some(ANNOTATED_ROLE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_keeps_it_unready_and_says_why() {
    let api = ApiServer::start().await;
    let (webhook, _dir) = start_webhook(&api, "wrong-token", &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(readyz(&webhook).await, 503, "{}", webhook.log());
    assert!(
        metrics(&webhook)
            .await
            .contains("issuerd_webhook_service_account_watch_failing 1")
    );
    assert!(api.with(|s| s.unauthorized) >= 1);
    let log = webhook.log();
    assert!(log.contains("ServiceAccount watch failed"), "{log}");
    assert!(log.contains("401") || log.contains("Unauthorized"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_alone_need_no_map_and_a_grace_period_of_0_fetches_nothing() {
    let api = ApiServer::start().await;
    api.put("default", "annotated", &[(ROLE_ARN, ANNOTATED_ROLE)], false);
    let (webhook, _dir) = start_webhook_with(
        &api,
        TOKEN,
        "",
        &["--service-account-lookup-grace-period", "0s"],
    )
    .await;
    wait_ready(&webhook).await;
    assert!(
        !webhook.log().contains("IAM map loaded"),
        "{}",
        webhook.log()
    );
    assert_eq!(
        role_of(&webhook, "annotated").await.as_deref(),
        Some(ANNOTATED_ROLE)
    );
    // Not cached yet, and 0 means no GET: nothing, as the EKS webhook's default does.
    api.put("default", "late", &[(ROLE_ARN, ANNOTATED_ROLE)], true);
    let annotations = json!({"eks.amazonaws.com/skip-containers": "sidecar"});
    let (envelope, patch) = webhook
        .admit_pod("uid-late", "default", "late", annotations)
        .await;
    assert!(patch.is_empty(), "{patch:?}");
    let warnings = envelope["response"]["warnings"].to_string();
    assert!(
        warnings.contains("no eks.amazonaws.com/role-arn annotation"),
        "{warnings}"
    );
    assert!(api.with(|s| s.gets.clone()).is_empty());
    assert!(
        metrics(&webhook)
            .await
            .contains(r#"issuerd_webhook_service_account_lookups_total{result="uncached"} 1"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_in_pages_fills_the_cache_and_a_throttled_get_is_retried_after_retry_after() {
    let api = ApiServer::start().await;
    api.with(|s| s.pages = true);
    // More than kube-runtime's page of 500: the first list takes three requests.
    for i in 0..1_100 {
        api.put(
            "default",
            &format!("sa-{i:04}"),
            &[(ROLE_ARN, ANNOTATED_ROLE)],
            false,
        );
    }
    let (webhook, _dir) = start_webhook(&api, TOKEN, &[]).await;
    wait_ready(&webhook).await;
    assert!(
        api.with(|s| s.lists) >= 3,
        "{} lists",
        api.with(|s| s.lists)
    );
    // The last page is in the cache: no GET is made for it.
    assert_eq!(
        role_of(&webhook, "sa-1099").await.as_deref(),
        Some(ANNOTATED_ROLE)
    );
    assert!(api.with(|s| s.gets.clone()).is_empty());

    // Not cached, and the first GET is answered 429 (Retry-After: 1): kube waits and asks
    // again within the grace period.
    api.put("default", "late", &[(ROLE_ARN, ANNOTATED_ROLE)], true);
    api.with(|s| s.gets_throttled = 1);
    let started = Instant::now();
    assert_eq!(
        role_of(&webhook, "late").await.as_deref(),
        Some(ANNOTATED_ROLE)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        api.with(|s| s.gets.clone()),
        ["default/late", "default/late"]
    );
}
