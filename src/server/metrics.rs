//! Request metrics: counted on the request path into fixed arrays of relaxed atomics (no hashing,
//! no locks, one shard per worker thread), and exposed at scrape time through
//! `prometheus-client` in the Prometheus text format, with the key set's state read from the
//! store.
//!
//! Label values are closed sets resolved to array indexes: `route` (discovery, jwks, health,
//! other), `code`, `protocol` (http1, h2) and `tls`. A series appears once it has counted
//! something.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::store::{FailureCause, ReloadHealth, Snapshot};

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What a request asked for, as the `route` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The discovery document.
    Discovery = 0,
    /// The JWKS.
    Jwks = 1,
    /// `/healthz` and `/readyz`.
    Health = 2,
    /// Anything else: `/statusz`, unknown paths, requests refused before routing.
    Other = 3,
}

const ROUTES: [Route; 4] = [Route::Discovery, Route::Jwks, Route::Health, Route::Other];

impl Route {
    fn label(self) -> &'static str {
        match self {
            Self::Discovery => "discovery",
            Self::Jwks => "jwks",
            Self::Health => "health",
            Self::Other => "other",
        }
    }
}

/// The protocol a request came in, as the `protocol` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 and HTTP/1.1.
    Http1 = 0,
    /// HTTP/2 (h2c, or h2 by ALPN).
    H2 = 1,
}

const PROTOCOLS: [Protocol; 2] = [Protocol::Http1, Protocol::H2];

impl Protocol {
    /// The label value, also used by the access log.
    pub fn label(self) -> &'static str {
        match self {
            Self::Http1 => "http1",
            Self::H2 => "h2",
        }
    }
}

/// What the server knows of a connection when it starts serving it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The connection is TLS (the `tls` label).
    pub tls: bool,
    /// The client's address, when known (the access log's `peer`). Boxed: asked only for the
    /// access log, and every idle connection keeps this.
    pub peer: Option<Box<std::net::SocketAddr>>,
}

/// Status codes counted under their own `code` label; the server sends no others. Anything
/// else is counted as `other`.
const CODES: [u16; 11] = [200, 304, 400, 404, 405, 408, 413, 431, 500, 503, 505];
const CODE_SLOTS: usize = CODES.len() + 1;

fn code_index(status: StatusCode) -> usize {
    match status.as_u16() {
        200 => 0,
        304 => 1,
        400 => 2,
        404 => 3,
        405 => 4,
        408 => 5,
        413 => 6,
        431 => 7,
        500 => 8,
        503 => 9,
        505 => 10,
        _ => CODES.len(),
    }
}

/// Upper bounds of the duration histogram, in seconds. Answers from memory take microseconds;
/// the upper buckets catch a starved runtime or a slow socket.
const BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5,
];
/// The same bounds in nanoseconds, for the request path.
const BUCKET_NANOS: [u64; 12] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    100_000_000,
    500_000_000,
    2_500_000_000,
];
/// One slot per bound and one for `+Inf`.
const BUCKET_SLOTS: usize = BUCKETS.len() + 1;

/// (route, protocol, tls) series.
const STREAMS: usize = ROUTES.len() * PROTOCOLS.len() * 2;

fn stream(route: Route, protocol: Protocol, tls: bool) -> usize {
    (route as usize * PROTOCOLS.len() + protocol as usize) * 2 + usize::from(tls)
}

/// Shards: a thread keeps to its own, so counting never contends on a cache line (the issuer
/// listener runs one worker per core, at most [`crate::config::MAX_AUTO_WORKERS`] with `auto`;
/// more threads share shards round-robin).
const SHARDS: usize = 16;

/// One thread's counters. Aligned so two shards never share a cache line.
#[repr(align(128))]
pub(crate) struct Shard {
    /// By (route, protocol, tls) then code.
    requests: [AtomicU64; STREAMS * CODE_SLOTS],
    /// Response body bytes by (route, protocol, tls).
    body_bytes: [AtomicU64; STREAMS],
    /// Duration histogram by (route, protocol, tls) then bucket (not cumulative).
    buckets: [AtomicU64; STREAMS * BUCKET_SLOTS],
    /// Duration sum in nanoseconds by (route, protocol, tls).
    duration_nanos: [AtomicU64; STREAMS],
}

impl Shard {
    fn new() -> Self {
        Self {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            body_bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            duration_nanos: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts one answered request and its body bytes.
    #[inline]
    pub(crate) fn count(
        &self,
        route: Route,
        protocol: Protocol,
        tls: bool,
        status: StatusCode,
        body_bytes: usize,
    ) {
        let stream = stream(route, protocol, tls);
        self.requests[stream * CODE_SLOTS + code_index(status)].fetch_add(1, Relaxed);
        if body_bytes > 0 {
            self.body_bytes[stream].fetch_add(body_bytes as u64, Relaxed);
        }
    }

    /// Records `requests` requests that each took `elapsed`.
    #[inline]
    pub(crate) fn observe(
        &self,
        route: Route,
        protocol: Protocol,
        tls: bool,
        elapsed: Duration,
        requests: u64,
    ) {
        let nanos = elapsed
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(elapsed.subsec_nanos()));
        let bucket = BUCKET_NANOS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(BUCKETS.len());
        let stream = stream(route, protocol, tls);
        self.buckets[stream * BUCKET_SLOTS + bucket].fetch_add(requests, Relaxed);
        self.duration_nanos[stream].fetch_add(nanos.saturating_mul(requests), Relaxed);
    }

    /// Records the requests of one read-and-answer step, `routes[r]` of route `r`, that all
    /// took `elapsed` (answered together, written together).
    #[inline]
    pub(crate) fn observe_step(
        &self,
        protocol: Protocol,
        tls: bool,
        elapsed: Duration,
        routes: [u64; 4],
    ) {
        for (route, count) in [Route::Discovery, Route::Jwks, Route::Health, Route::Other]
            .into_iter()
            .zip(routes)
        {
            if count > 0 {
                self.observe(route, protocol, tls, elapsed, count);
            }
        }
    }
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn shard_index() -> usize {
    SHARD.with(|shard| {
        let index = shard.get();
        if index != usize::MAX {
            return index;
        }
        let index = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS;
        shard.set(index);
        index
    })
}

/// The serving counters: requests, bytes, durations and open connections.
pub struct Metrics {
    shards: Box<[Shard]>,
    /// Open connections, by tls.
    open_connections: [AtomicI64; 2],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            open_connections: [AtomicI64::new(0), AtomicI64::new(0)],
        }
    }
}

impl Metrics {
    /// The counters of the calling thread. A step that counts several things looks its shard
    /// up once.
    #[inline]
    pub(crate) fn local(&self) -> &Shard {
        &self.shards[shard_index()]
    }

    /// Counts a connection as open until the guard is dropped.
    pub fn connection(self: &Arc<Self>, tls: bool) -> OpenConnection {
        self.open_connections[usize::from(tls)].fetch_add(1, Relaxed);
        OpenConnection {
            metrics: Arc::clone(self),
            tls,
        }
    }

    fn sum(&self, pick: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| pick(s).load(Relaxed)).sum()
    }
}

/// An open connection, counted in `issuerd_open_connections` while it lives.
#[derive(Debug)]
pub struct OpenConnection {
    metrics: Arc<Metrics>,
    tls: bool,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.open_connections[usize::from(self.tls)].fetch_sub(1, Relaxed);
    }
}

/// Renders `/metrics`: the serving counters, the snapshot being served and reload health.
pub fn render(metrics: &Arc<Metrics>, snapshot: Arc<Snapshot>, health: ReloadHealth) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        metrics: Arc::clone(metrics),
        snapshot,
        health,
    }));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// What one scrape reads.
#[derive(Debug)]
struct Scrape {
    metrics: Arc<Metrics>,
    snapshot: Arc<Snapshot>,
    health: ReloadHealth,
}

fn tls_label(tls: bool) -> &'static str {
    if tls { "true" } else { "false" }
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Every (route, protocol, tls) series, with its index.
fn streams() -> impl Iterator<Item = (usize, [(&'static str, &'static str); 3])> {
    ROUTES.into_iter().flat_map(|route| {
        PROTOCOLS.into_iter().flat_map(move |protocol| {
            [false, true].into_iter().map(move |tls| {
                (
                    stream(route, protocol, tls),
                    [
                        ("route", route.label()),
                        ("protocol", protocol.label()),
                        ("tls", tls_label(tls)),
                    ],
                )
            })
        })
    })
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = &self.metrics;
        let code_labels: Vec<String> = CODES
            .iter()
            .map(u16::to_string)
            .chain(["other".to_owned()])
            .collect();

        let mut family = encoder.encode_descriptor(
            "issuerd_http_requests",
            "HTTP requests answered, by route, status code, protocol and TLS.",
            None,
            MetricType::Counter,
        )?;
        for (stream, [route, protocol, tls]) in streams() {
            for (slot, code) in code_labels.iter().enumerate() {
                let count = metrics.sum(|s| &s.requests[stream * CODE_SLOTS + slot]);
                if count == 0 {
                    continue;
                }
                let labels = [route, ("code", code.as_str()), protocol, tls];
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "issuerd_http_response_body_bytes",
            "Bytes of response bodies sent (headers and framing not included).",
            None,
            MetricType::Counter,
        )?;
        for (stream, labels) in streams() {
            let bytes = metrics.sum(|s| &s.body_bytes[stream]);
            let requests: u64 = (0..CODE_SLOTS)
                .map(|slot| metrics.sum(|s| &s.requests[stream * CODE_SLOTS + slot]))
                .sum();
            if requests > 0 {
                family
                    .encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&bytes, None)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "issuerd_http_request_duration_seconds",
            "Time from reading a request to handing its answer to the socket (HTTP/1.1) or \
             to the HTTP/2 stack (h2).",
            None,
            MetricType::Histogram,
        )?;
        for (stream, labels) in streams() {
            let buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .chain([&f64::INFINITY])
                .enumerate()
                .map(|(slot, &bound)| {
                    (
                        bound,
                        metrics.sum(|s| &s.buckets[stream * BUCKET_SLOTS + slot]),
                    )
                })
                .collect();
            let count: u64 = buckets.iter().map(|(_, n)| n).sum();
            if count == 0 {
                continue;
            }
            let sum = metrics.sum(|s| &s.duration_nanos[stream]) as f64 / 1e9;
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }

        let mut family = encoder.encode_descriptor(
            "issuerd_open_connections",
            "Client connections open on the issuer listener.",
            None,
            MetricType::Gauge,
        )?;
        for tls in [false, true] {
            let open = metrics.open_connections[usize::from(tls)].load(Relaxed);
            family
                .encode_family(&[("tls", tls_label(tls))])?
                .encode_gauge(&open)?;
        }

        let snapshot = &self.snapshot;
        encoder
            .encode_descriptor(
                "issuerd_key_set_generation",
                "Generation of the key set served; increases by one with every publish.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&snapshot.generation)?;
        encoder
            .encode_descriptor(
                "issuerd_keys",
                "Keys in the JWKS served.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&(snapshot.keys.keys().len() as u64))?;
        encoder
            .encode_descriptor(
                "issuerd_key_set_last_publish_timestamp_seconds",
                "When the key set served was published (Unix time); time() minus it is its age.",
                None,
                MetricType::Gauge,
            )?
            .encode_gauge(&unix_seconds(snapshot.published_at))?;
        let mut family = encoder.encode_descriptor(
            "issuerd_key_first_published_timestamp_seconds",
            "When each key served was first published (Unix time). Tokens signed by a key are \
             safe once it has been published for the documents' max-age.",
            None,
            MetricType::Gauge,
        )?;
        for (kid, at) in &snapshot.first_published {
            family
                .encode_family(&[("kid", kid.as_str())])?
                .encode_gauge(&unix_seconds(*at))?;
        }

        encoder
            .encode_descriptor(
                "issuerd_key_reloads",
                "Key reloads that loaded a valid key set (published, or found unchanged).",
                None,
                MetricType::Counter,
            )?
            .encode_counter::<NoLabelSet, _, u64>(&self.health.successes, None)?;
        let mut family = encoder.encode_descriptor(
            "issuerd_key_reload_failures",
            "Key reloads that failed, by cause; the last good key set kept being served.",
            None,
            MetricType::Counter,
        )?;
        for cause in FailureCause::ALL {
            family
                .encode_family(&[("cause", cause.label())])?
                .encode_counter::<NoLabelSet, _, u64>(
                    &self.health.failures[cause as usize],
                    None,
                )?;
        }
        let mut family = encoder.encode_descriptor(
            "issuerd_build_info",
            "The running build: version and git revision, value 1.",
            None,
            MetricType::Gauge,
        )?;
        family
            .encode_family(&[
                ("version", env!("CARGO_PKG_VERSION")),
                // Set by build.rs (git, or ISSUERD_BUILD_REV); empty without either.
                (
                    "revision",
                    match env!("ISSUERD_GIT_REV") {
                        "" => "unknown",
                        revision => revision,
                    },
                ),
            ])?
            .encode_gauge(&1u64)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_cover_every_slot_once() {
        let mut seen = [false; STREAMS];
        for (stream, _) in streams() {
            assert!(!seen[stream], "{stream} twice");
            seen[stream] = true;
        }
        assert!(seen.iter().all(|s| *s));
        for (slot, code) in CODES.iter().enumerate() {
            assert_eq!(code_index(StatusCode::from_u16(*code).unwrap()), slot);
        }
        assert_eq!(code_index(StatusCode::IM_A_TEAPOT), CODES.len());
        for (bound, nanos) in BUCKETS.iter().zip(BUCKET_NANOS) {
            assert_eq!((bound * 1e9).round() as u64, nanos);
        }
    }

    #[test]
    fn observations_land_in_their_bucket() {
        let metrics = Metrics::default();
        metrics.local().observe(
            Route::Jwks,
            Protocol::Http1,
            false,
            Duration::from_micros(50),
            2,
        );
        metrics.local().observe(
            Route::Jwks,
            Protocol::Http1,
            false,
            Duration::from_secs(9),
            1,
        );
        let stream = stream(Route::Jwks, Protocol::Http1, false);
        assert_eq!(metrics.sum(|s| &s.buckets[stream * BUCKET_SLOTS]), 2);
        assert_eq!(
            metrics.sum(|s| &s.buckets[stream * BUCKET_SLOTS + BUCKETS.len()]),
            1
        );
        assert_eq!(
            metrics.sum(|s| &s.duration_nanos[stream]),
            9_000_000_000 + 100_000
        );
    }
}
