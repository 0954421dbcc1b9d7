//! Issuer keys as STS keeps them: discovery + JWKS fetched over the network, cached with a TTL
//! (moka), and refetched on an unknown kid at most once per interval per issuer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::keys::PublicKey;
use crate::token::fetch::Fetcher;

/// Most issuers kept.
const MAX_ISSUERS: u64 = 64;

/// One issuer's published keys, as last fetched.
#[derive(Debug)]
pub struct IssuerKeys {
    /// The keys.
    pub keys: Vec<PublicKey>,
    /// Where they came from.
    pub jwks_uri: String,
    /// When.
    pub fetched_at: Instant,
}

impl IssuerKeys {
    /// Whether a key with this kid is published.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == kid)
    }
}

/// The cache.
#[derive(Clone, Debug)]
pub struct KeyCache {
    fetcher: Fetcher,
    cache: Cache<String, Arc<IssuerKeys>>,
    refetch_interval: Duration,
    /// When each issuer was last refetched for an unknown kid, so that concurrent requests
    /// with unknown kids refetch once, not once each.
    refetched: Arc<Mutex<HashMap<String, Instant>>>,
}

impl KeyCache {
    /// Keys live for `ttl`; an unknown kid refetches at most once per `refetch_interval`.
    pub fn new(fetcher: Fetcher, ttl: Duration, refetch_interval: Duration) -> Self {
        Self {
            fetcher,
            cache: Cache::builder()
                .max_capacity(MAX_ISSUERS)
                .time_to_live(ttl)
                .build(),
            refetch_interval,
            refetched: Arc::default(),
        }
    }

    /// The issuer's keys, able to verify `kid` if the issuer publishes it now. The error is the
    /// reason the issuer could not be reached or understood.
    pub async fn keys_for(
        &self,
        issuer: &str,
        kid: Option<&str>,
    ) -> Result<Arc<IssuerKeys>, String> {
        let fetcher = &self.fetcher;
        let current = self
            .cache
            .try_get_with(issuer.to_owned(), fetch(fetcher, issuer))
            .await
            .map_err(|e| e.to_string())?;
        let Some(kid) = kid else { return Ok(current) };
        if current.has_kid(kid) || current.fetched_at.elapsed() < self.refetch_interval {
            return Ok(current);
        }
        {
            let mut refetched = self
                .refetched
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            match refetched.get(issuer) {
                Some(at) if now.duration_since(*at) < self.refetch_interval => return Ok(current),
                _ => {
                    refetched.insert(issuer.to_owned(), now);
                }
            }
        }
        let fresh = fetch(fetcher, issuer).await?;
        self.cache
            .insert(issuer.to_owned(), Arc::clone(&fresh))
            .await;
        Ok(fresh)
    }
}

async fn fetch(fetcher: &Fetcher, issuer: &str) -> Result<Arc<IssuerKeys>, String> {
    fetch_keys(fetcher, issuer).await.map(Arc::new)
}

async fn fetch_keys(fetcher: &Fetcher, issuer: &str) -> Result<IssuerKeys, String> {
    let discovery = fetcher.discovery(issuer).await.map_err(|e| e.to_string())?;
    if discovery.issuer != issuer {
        return Err(format!(
            "the discovery document's issuer {:?} is not the token's iss {issuer:?}",
            discovery.issuer
        ));
    }
    let jwks = fetcher
        .jwks(&discovery.jwks_uri)
        .await
        .map_err(|e| e.to_string())?;
    Ok(IssuerKeys {
        keys: jwks.keys,
        jwks_uri: discovery.jwks_uri,
        fetched_at: Instant::now(),
    })
}
