//! ServiceAccounts read from the Kubernetes API (`webhook --service-account-annotations`), with
//! the `kube` crate: a reflector lists and watches every ServiceAccount's metadata (relisting
//! after `410 Gone`, backing off while the API server is away) and keeps their IRSA annotations
//! in memory; a ServiceAccount the cache does not have yet (created a moment before its pod,
//! the EKS webhook's most reported race) is asked for with a direct GET bounded by the grace
//! period. The one module of `webhook` that does network IO.
//!
//! What is held: the name, namespace, resourceVersion and the four IRSA annotations of each
//! ServiceAccount, each value cut at [`annotations::MAX_VALUE_LEN`] + 1 bytes (labels, managed
//! fields and every other annotation are dropped as they arrive): at most ~3 KiB for a
//! ServiceAccount whoever writes it, a few hundred bytes for a real one.
//!
//! Bounded in time: the watch's client reads nothing for at most [`WATCH_READ_TIMEOUT`] (a LIST
//! or watch on a connection gone half-open fails, and the watch backs off and lists again) and
//! does not retry itself, so a failing API server is logged and shown by
//! `issuerd_webhook_service_account_watch_failing` at once. A GET waits at most the grace
//! period; after one fails, misses fail at once for [`FAIL_FAST`] (or until the watch hears
//! from the API server again) rather than each holding an admission slot for the grace period.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tracing::{info, warn};

use super::{Webhook, annotations};
use crate::shutdown;

/// The longest the watch's client waits for the next bytes of an answer: above the 290 s a
/// watch is asked to last (kube-runtime's `timeoutSeconds`), under which the API server sends
/// bookmarks about every minute.
pub const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(330);
/// After a GET fails, how long cache misses are refused at once without asking again.
pub const FAIL_FAST: Duration = Duration::from_secs(5);

/// Where the API server is: the kubeconfig given, else the pod's in-cluster configuration, else
/// `$KUBECONFIG` / `~/.kube/config` (kube's `Config::infer`).
#[derive(Clone, Debug, Default)]
pub struct KubeAccess {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--kube-context`.
    pub context: Option<String>,
}

/// Why the API server cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountsError {
    /// No usable configuration.
    #[error("cannot find how to reach the Kubernetes API server: {0}")]
    Config(String),
    /// A configuration the client cannot use.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(String),
    /// The watch ended before it listed anything (it never ends otherwise).
    #[error("the ServiceAccount watch ended before its first list")]
    WatchEnded,
}

/// What is known of one ServiceAccount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Its IRSA annotations, from the cache.
    Cached(BTreeMap<String, String>),
    /// Its IRSA annotations, from a GET (the cache did not have it yet).
    Fetched(BTreeMap<String, String>),
    /// The API server says it does not exist.
    Missing,
    /// Not cached, and not asked for (a grace period of 0, as the EKS webhook's default).
    Uncached,
    /// Neither the cache nor the API server could say, and why.
    Failed(String),
}

impl Lookup {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Cached(_) => "cache",
            Self::Fetched(_) => "api",
            Self::Missing => "missing",
            Self::Uncached => "uncached",
            Self::Failed(_) => "failed",
        }
    }
}

/// The ServiceAccounts' cache and the client that fills it.
#[derive(Clone)]
pub struct ServiceAccounts {
    client: kube::Client,
    store: Store<PartialObjectMeta<ServiceAccount>>,
    grace: Duration,
    /// The last failed GET: when, and why.
    failed: Arc<Mutex<Option<(Instant, String)>>>,
}

/// What fills the cache: [`Watch::run`].
pub struct Watch {
    client: kube::Client,
    store: Store<PartialObjectMeta<ServiceAccount>>,
    writer: reflector::store::Writer<PartialObjectMeta<ServiceAccount>>,
    /// The GETs' last failure, forgotten once the watch hears from the API server again.
    failed: Arc<Mutex<Option<(Instant, String)>>>,
}

impl std::fmt::Debug for ServiceAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccounts")
            .field("cached", &self.store.len())
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl ServiceAccounts {
    /// A client for the API server `access` names, and the watch that fills its cache;
    /// nothing is asked yet ([`Watch::run`] lists and watches). A cache miss waits at most
    /// `grace` for the API server's answer.
    pub async fn connect(
        access: &KubeAccess,
        grace: Duration,
    ) -> Result<(Self, Watch), ServiceAccountsError> {
        let config = match (&access.kubeconfig, &access.context) {
            (None, None) => kube::Config::infer()
                .await
                .map_err(|e| ServiceAccountsError::Config(crate::log::error_chain(&e)))?,
            (file, context) => {
                let options = KubeConfigOptions {
                    context: context.clone(),
                    ..KubeConfigOptions::default()
                };
                let loaded = match file {
                    Some(path) => {
                        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                            ServiceAccountsError::Config(format!(
                                "--kubeconfig {}: {}",
                                path.display(),
                                crate::log::error_chain(&e)
                            ))
                        })?;
                        kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
                    }
                    None => kube::Config::from_kubeconfig(&options).await,
                };
                loaded.map_err(|e| ServiceAccountsError::Config(crate::log::error_chain(&e)))?
            }
        };
        // The watch: errors surface at once (the watcher backs off and lists again); a stalled
        // read fails. The GETs keep kube's retries (429 with Retry-After, 503, 504), within
        // the grace period.
        let mut watch_config = config.clone();
        watch_config.default_retry = false;
        watch_config.read_timeout = Some(WATCH_READ_TIMEOUT);
        let built = |config: kube::Config| {
            kube::Client::try_from(config)
                .map_err(|e| ServiceAccountsError::Client(crate::log::error_chain(&e)))
        };
        let watch_client = built(watch_config)?;
        let client = built(config)?;
        let (store, writer) = reflector::store();
        let failed = Arc::default();
        let watch = Watch {
            client: watch_client,
            store: store.clone(),
            writer,
            failed: Arc::clone(&failed),
        };
        Ok((
            Self {
                client,
                store,
                grace,
                failed,
            },
            watch,
        ))
    }

    /// The ServiceAccount `namespace`/`name`: from the cache, else from the API server within
    /// the grace period.
    pub async fn lookup(&self, namespace: &str, name: &str) -> Lookup {
        let key = ObjectRef::new(name).within(namespace);
        if let Some(cached) = self.store.get(&key) {
            return Lookup::Cached(cached.metadata.annotations.clone().unwrap_or_default());
        }
        if self.grace.is_zero() {
            return Lookup::Uncached;
        }
        if let Some((when, reason)) = self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|(when, _)| when.elapsed() < FAIL_FAST)
        {
            return Lookup::Failed(format!(
                "a GET failed {:.1}s ago ({reason}); the next is tried {FAIL_FAST:?} after it",
                when.elapsed().as_secs_f64()
            ));
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let answer = match tokio::time::timeout(self.grace, api.get_metadata_opt(name)).await {
            Ok(Ok(Some(found))) => {
                Lookup::Fetched(irsa_annotations(found.metadata.annotations.as_ref()))
            }
            Ok(Ok(None)) => Lookup::Missing,
            Ok(Err(error)) => Lookup::Failed(crate::log::error_chain(&error)),
            Err(_) => Lookup::Failed(format!(
                "no usable answer from the API server within {:?} \
                 (--service-account-lookup-grace-period; kube retries 429, 503 and 504 meanwhile)",
                self.grace
            )),
        };
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        *failed = match &answer {
            Lookup::Failed(reason) => Some((Instant::now(), reason.clone())),
            _ => None,
        };
        answer
    }

    /// How many ServiceAccounts are cached.
    pub fn cached(&self) -> usize {
        self.store.len()
    }

    /// Resolves once the first list has filled the cache; an error if the watch ended first.
    pub async fn listed(&self) -> Result<(), ServiceAccountsError> {
        self.store
            .wait_until_ready()
            .await
            .map_err(|_| ServiceAccountsError::WatchEnded)
    }
}

impl Watch {
    /// Lists and watches ServiceAccounts into the cache until `stop` fires. Errors are logged,
    /// shown in the webhook's metrics, and retried with kube-runtime's backoff; the cache keeps what it had
    /// meanwhile.
    pub async fn run(self, webhook: Arc<Webhook>, mut stop: shutdown::Signal) {
        let metrics = &webhook.metrics;
        let Self {
            client,
            store,
            writer,
            failed,
        } = self;
        let recovered = || {
            metrics.watch_failing(false);
            *failed.lock().unwrap_or_else(PoisonError::into_inner) = None;
        };
        let api: Api<PartialObjectMeta<ServiceAccount>> = Api::all(client);
        let events = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(keep_only_irsa)
            .reflect(writer);
        let mut events = pin!(events);
        let mut failing = false;
        loop {
            let event = tokio::select! {
                biased;
                () = stop.requested() => return,
                event = events.next() => event,
            };
            match event {
                None => return,
                Some(Ok(watcher::Event::InitDone)) => {
                    info!(cached = store.len(), "ServiceAccounts listed");
                    failing = false;
                    recovered();
                }
                Some(Ok(_)) if failing => {
                    info!("ServiceAccount watch resumed");
                    failing = false;
                    recovered();
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    warn!(
                        error = %crate::log::error_chain(&error),
                        cached = store.len(),
                        "ServiceAccount watch failed; retrying with backoff, the cache is kept"
                    );
                    failing = true;
                    metrics.watch_failing(true);
                }
            }
        }
    }
}

/// Drops all of a ServiceAccount's metadata but its name, namespace, resourceVersion and IRSA
/// annotations.
fn keep_only_irsa(account: &mut PartialObjectMeta<ServiceAccount>) {
    let meta = &mut account.metadata;
    let kept = irsa_annotations(meta.annotations.as_ref());
    meta.annotations = (!kept.is_empty()).then_some(kept);
    meta.labels = None;
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
}

/// The IRSA annotations of `all`, each value cut to [`annotations::MAX_VALUE_LEN`] + 1 bytes
/// (so that one too long is still seen as such, and refused, by [`annotations::read`]).
fn irsa_annotations(all: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    all.map(|all| {
        annotations::ALL
            .iter()
            .filter_map(|key| all.get(*key).map(|v| ((*key).to_owned(), capped(v))))
            .collect()
    })
    .unwrap_or_default()
}

/// `value` cut after its first [`annotations::MAX_VALUE_LEN`] + 1 bytes (and the rest of the
/// character there), so a value that was too long stays too long.
fn capped(value: &str) -> String {
    let mut end = value.len().min(annotations::MAX_VALUE_LEN + 1);
    while !value.is_char_boundary(end) {
        end += 1;
    }
    value[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_irsa_annotations_are_kept_and_each_is_capped() {
        let long = "é".repeat(annotations::MAX_VALUE_LEN);
        let all: BTreeMap<String, String> = [
            (annotations::ROLE_ARN, "arn:aws:iam::111122223333:role/app"),
            (annotations::AUDIENCE, long.as_str()),
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let kept = irsa_annotations(Some(&all));
        assert_eq!(kept.len(), 2);
        assert_eq!(
            kept[annotations::ROLE_ARN],
            "arn:aws:iam::111122223333:role/app"
        );
        let audience = &kept[annotations::AUDIENCE];
        assert!(audience.len() > annotations::MAX_VALUE_LEN);
        assert!(audience.len() <= annotations::MAX_VALUE_LEN + 4);
    }
}
