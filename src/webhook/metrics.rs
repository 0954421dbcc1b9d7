//! The webhook's metrics, in the Prometheus text format through `prometheus-client`:
//! admissions by outcome, their latency, and the state of the map.

use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What became of one admission request, as the `outcome` label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// A pod got (some of) the wiring.
    Mutated,
    /// A mapped pod already had all of it (a reinvocation, or wired by hand).
    Unchanged,
    /// The pod's ServiceAccount has no role in the map.
    NotMapped,
    /// Not a pod `CREATE` (allowed unchanged).
    Ignored,
    /// A mapped pod left unchanged because of a conflict (answered with a warning); a pod wired
    /// in part, with a warning for the rest, counts as mutated.
    Conflict,
    /// The request could not be decoded (answered `allowed: false`).
    BadRequest,
    /// The pod's ServiceAccount could be read neither from the cache nor from the API server
    /// (answered `allowed: false`, so the pod's controller retries).
    LookupFailed,
}

impl Outcome {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Mutated => "mutated",
            Self::Unchanged => "unchanged",
            Self::NotMapped => "not_mapped",
            Self::Ignored => "ignored",
            Self::Conflict => "conflict",
            Self::BadRequest => "bad_request",
            Self::LookupFailed => "lookup_failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    result: &'static str,
}

/// The webhook's counters; cheap to share (`Arc`).
#[derive(Debug)]
pub struct WebhookMetrics {
    registry: Registry,
    admissions: Family<OutcomeLabels, Counter>,
    latency: Histogram,
    map_entries: Gauge<i64, AtomicI64>,
    map_reload_failing: Gauge<i64, AtomicI64>,
    lookups: Family<LookupLabels, Counter>,
    watch_failing: Gauge<i64, AtomicI64>,
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        let admissions = Family::<OutcomeLabels, Counter>::default();
        // 100 µs to 1 s: an admission is answered from memory; the API server gives up at the
        // configured timeoutSeconds (5 s in deploy/, 10 s by default).
        let latency = Histogram::new([
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]);
        let map_entries = Gauge::<i64, AtomicI64>::default();
        let map_reload_failing = Gauge::<i64, AtomicI64>::default();
        let mut registry = Registry::with_prefix("issuerd_webhook");
        registry.register(
            "admissions",
            "Admission requests answered, by outcome",
            admissions.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time from a request's body read to its answer",
            latency.clone(),
        );
        registry.register(
            "map_entries",
            "ServiceAccount entries in the IAM map in use",
            map_entries.clone(),
        );
        registry.register(
            "map_reload_failing",
            "1 while the last reload of the map file failed (the previous map stays in use)",
            map_reload_failing.clone(),
        );
        let lookups = Family::<LookupLabels, Counter>::default();
        registry.register(
            "service_account_lookups",
            "ServiceAccounts read for --service-account-annotations, by where the answer came \
             from (cache, api, missing, uncached, failed)",
            lookups.clone(),
        );
        let watch_failing = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "service_account_watch_failing",
            "1 while the ServiceAccount watch of --service-account-annotations fails (the cache \
             keeps what it had)",
            watch_failing.clone(),
        );
        Self {
            registry,
            admissions,
            latency,
            map_entries,
            map_reload_failing,
            lookups,
            watch_failing,
        }
    }
}

impl WebhookMetrics {
    /// Counts one answered admission.
    pub fn admitted(&self, outcome: Outcome, took: Duration) {
        self.admissions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// Counts one ServiceAccount lookup, by its result's label.
    pub fn looked_up(&self, result: &'static str) {
        self.lookups.get_or_create(&LookupLabels { result }).inc();
    }

    /// Records whether the ServiceAccount watch fails.
    pub fn watch_failing(&self, failing: bool) {
        self.watch_failing.set(i64::from(failing));
    }

    /// Records the map now in use, or a failed reload (`None`).
    pub fn map_loaded(&self, entries: Option<usize>) {
        match entries {
            Some(n) => {
                self.map_entries.set(i64::try_from(n).unwrap_or(i64::MAX));
                self.map_reload_failing.set(0);
            }
            None => {
                self.map_reload_failing.set(1);
            }
        }
    }

    /// The admissions counted for `outcome` so far.
    pub fn admissions(&self, outcome: Outcome) -> u64 {
        self.admissions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .get()
    }

    /// The exposition, Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_appear_in_the_exposition() {
        let metrics = WebhookMetrics::default();
        metrics.admitted(Outcome::Mutated, Duration::from_micros(300));
        metrics.admitted(Outcome::Mutated, Duration::from_micros(300));
        metrics.admitted(Outcome::NotMapped, Duration::from_millis(2));
        metrics.map_loaded(Some(3));
        let text = metrics.encode();
        assert!(
            text.contains("issuerd_webhook_admissions_total{outcome=\"mutated\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("issuerd_webhook_admission_duration_seconds_count 3"),
            "{text}"
        );
        assert!(text.contains("issuerd_webhook_map_entries 3"), "{text}");
        assert_eq!(metrics.admissions(Outcome::NotMapped), 1);
    }
}
