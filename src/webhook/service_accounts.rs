//! ServiceAccounts read from the Kubernetes API (`webhook --service-account-annotations`), with
//! the `kube` crate: a reflector lists and watches every ServiceAccount's metadata (relisting
//! after `410 Gone`, backing off while the API server is away) and keeps their IRSA annotations
//! in memory; a ServiceAccount the cache does not have yet (created a moment before its pod,
//! the EKS webhook's most reported race) is asked for with a direct GET bounded by the grace
//! period. The one module of `webhook` that does network IO.
//!
//! What is held: the name, namespace, resourceVersion and the four IRSA annotations of each
//! ServiceAccount (labels, managed fields and every other annotation are dropped as they
//! arrive), so the cache of a cluster with 10,000 ServiceAccounts stays at a few MiB.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::pin;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tracing::{info, warn};

use super::annotations;
use crate::shutdown;

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
}

/// What fills the cache: [`Watch::run`].
pub struct Watch {
    client: kube::Client,
    store: Store<PartialObjectMeta<ServiceAccount>>,
    writer: reflector::store::Writer<PartialObjectMeta<ServiceAccount>>,
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
        let client = kube::Client::try_from(config)
            .map_err(|e| ServiceAccountsError::Client(crate::log::error_chain(&e)))?;
        let (store, writer) = reflector::store();
        let watch = Watch {
            client: client.clone(),
            store: store.clone(),
            writer,
        };
        Ok((
            Self {
                client,
                store,
                grace,
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
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        match tokio::time::timeout(self.grace, api.get_metadata_opt(name)).await {
            Ok(Ok(Some(found))) => {
                Lookup::Fetched(irsa_annotations(found.metadata.annotations.as_ref()))
            }
            Ok(Ok(None)) => Lookup::Missing,
            Ok(Err(error)) => Lookup::Failed(crate::log::error_chain(&error)),
            Err(_) => Lookup::Failed(format!(
                "no usable answer from the API server within {:?} (--service-account-lookup-grace-period; kube retries 429, 503 and 504 meanwhile)",
                self.grace
            )),
        }
    }

    /// How many ServiceAccounts are cached.
    pub fn cached(&self) -> usize {
        self.store.len()
    }

    /// Resolves once the first list has filled the cache.
    pub async fn listed(&self) {
        // An error means the writer is gone (the watch ended): nothing more will be listed.
        let _ = self.store.wait_until_ready().await;
    }
}

impl Watch {
    /// Lists and watches ServiceAccounts into the cache until `stop` fires. Errors are logged
    /// and retried with kube-runtime's backoff; the cache keeps what it had meanwhile.
    pub async fn run(self, mut stop: shutdown::Signal) {
        let Self {
            client,
            store,
            writer,
        } = self;
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
                }
                Some(Ok(_)) if failing => {
                    info!("ServiceAccount watch resumed");
                    failing = false;
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    warn!(
                        error = %crate::log::error_chain(&error),
                        cached = store.len(),
                        "ServiceAccount watch failed; retrying with backoff, the cache is kept"
                    );
                    failing = true;
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

fn irsa_annotations(all: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    all.map(|all| {
        annotations::ALL
            .iter()
            .filter_map(|key| all.get(*key).map(|v| ((*key).to_owned(), v.clone())))
            .collect()
    })
    .unwrap_or_default()
}
