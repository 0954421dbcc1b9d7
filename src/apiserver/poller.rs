//! The task that follows the cluster's keys: every `--kube-poll` and on SIGHUP, both documents
//! (conditionally), the issuer checked against the one published, the keys published as the
//! store's API server part. A failed poll or an invalid answer keeps the last good set and is
//! recorded.

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use super::answer::{self, ClusterKeys};
use super::client::{Cached, Client};
use super::endpoint::Endpoint;
use super::status::ApiServerStatus;
use super::{ApiServerError, DISCOVERY_PATH, JWKS_PATH};
use crate::shutdown;
use crate::store::{Origin, Store};

/// Polls one API server.
#[derive(Debug)]
pub struct Poller {
    client: Client,
    discovery_url: String,
    jwks_url: String,
    discovery: Cached,
    jwks: Cached,
    interval: Duration,
    /// SIGHUP asks at once (as it reloads key files); installed here, before `serve` is ready,
    /// so that a SIGHUP never finds the default action (exit) in place.
    hangup: Signal,
}

impl Poller {
    /// A poller of `endpoint`, asking every `interval` (and on SIGHUP), each request within
    /// `timeout`. Must run inside the runtime.
    pub fn new(
        endpoint: &Endpoint,
        interval: Duration,
        timeout: Duration,
    ) -> Result<Self, ApiServerError> {
        let hangup = tokio::signal::unix::signal(SignalKind::hangup())
            .map_err(|e| ApiServerError::Client(format!("cannot listen for SIGHUP: {e}")))?;
        Ok(Self {
            client: Client::new(endpoint, timeout)?,
            discovery_url: endpoint.document_url(DISCOVERY_PATH),
            jwks_url: endpoint.document_url(JWKS_PATH),
            discovery: Cached::default(),
            jwks: Cached::default(),
            interval,
            hangup,
        })
    }

    /// The JWKS URL asked.
    pub fn jwks_url(&self) -> &str {
        &self.jwks_url
    }

    /// Asks for both documents now and checks them; also says whether the API server answered
    /// both with 304 Not Modified.
    pub async fn fetch(&mut self) -> Result<(ClusterKeys, bool), ApiServerError> {
        let discovery = self
            .client
            .get(&self.discovery_url, &mut self.discovery)
            .await?;
        let jwks = self.client.get(&self.jwks_url, &mut self.jwks).await?;
        let keys = answer::parse(
            &discovery.body,
            &self.discovery_url,
            &jwks.body,
            &self.jwks_url,
        )?;
        Ok((keys, discovery.not_modified && jwks.not_modified))
    }

    /// One poll: fetch, check the issuer against the one `store` publishes, publish the keys
    /// as the API server's part. Returns whether both answers were 304, and the cluster's kids.
    pub async fn poll(&mut self, store: &Store) -> Result<(bool, Vec<String>), ApiServerError> {
        let (cluster, not_modified) = self.fetch().await?;
        let published = store.publication().issuer.url();
        if cluster.issuer != published {
            return Err(ApiServerError::IssuerMismatch {
                cluster: cluster.issuer,
                published: published.to_owned(),
            });
        }
        let kids = cluster.keys.kids().map(str::to_owned).collect();
        store
            .publish_part(Origin::ApiServer, cluster.keys)?
            .log(store, "apiserver");
        Ok((not_modified, kids))
    }

    /// Polls every interval until `shutdown` fires, recording each outcome in `status` (and
    /// failures in the store's reload health).
    pub async fn run(
        mut self,
        store: Arc<Store>,
        status: ApiServerStatus,
        mut shutdown: shutdown::Signal,
    ) {
        let mut next = Instant::now() + self.interval;
        loop {
            tokio::select! {
                () = shutdown.requested() => break,
                () = sleep_until(next) => {}
                _ = self.hangup.recv() => debug!("SIGHUP: asking the API server now"),
            }
            next = Instant::now() + self.interval;
            let outcome = tokio::select! {
                () = shutdown.requested() => break,
                outcome = self.poll(&store) => outcome,
            };
            match outcome {
                Ok((not_modified, kids)) => {
                    debug!(not_modified, "API server keys confirmed");
                    status.succeeded(kids, not_modified);
                }
                Err(error) => {
                    let serving_generation = store.current().generation;
                    warn!(
                        %error,
                        error_kind = error.kind(),
                        serving_generation,
                        stale = status.stale(),
                        "API server poll failed; still serving the last good key set"
                    );
                    store.record_failure(error.cause(), error.to_string());
                    status.failed(error.kind(), error.to_string());
                }
            }
        }
    }
}
