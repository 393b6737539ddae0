//! The webhook's Prometheus metrics, served on the metrics port at `/metrics`.
//!
//! One [`Metrics`] is made at start and shared (`Arc`) by the server, the TLS reloader and
//! whatever else wants to count: other modules register their own metrics into the same
//! registry with [`Metrics::register`] (every name gets the `akv_webhook_` prefix).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::admission::Outcome;

/// The prefix of every metric name.
pub const PREFIX: &str = "akv_webhook";

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Review latency buckets, in seconds: 100µs to 5s.
const DURATION_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Patch size buckets, in bytes: 256 B to 256 KiB.
const PATCH_BUCKETS: [f64; 11] = [
    256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0, 131072.0, 262144.0,
];

/// Registry lookup latency buckets, in seconds: 100µs (a cache hit) to 10s.
const LOOKUP_BUCKETS: [f64; 13] = [
    0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The result of one TLS certificate reload, for `akv_webhook_tls_reloads_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Ok,
    Error,
}

impl ReloadResult {
    /// Every result (a new variant goes here and in [`ReloadResult::as_str`]).
    pub const ALL: [ReloadResult; 2] = [ReloadResult::Ok, ReloadResult::Error];

    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Ok => "ok",
            ReloadResult::Error => "error",
        }
    }
}

/// The webhook's metrics and the registry that holds them.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    reviews: Family<OutcomeLabels, Counter>,
    review_duration: Histogram,
    patch_bytes: Histogram,
    bad_requests: Family<ReasonLabels, Counter>,
    tls_reloads: Family<ResultLabels, Counter>,
    certificate_expiry: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the webhook's own metrics in it.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);

        let reviews = counted_from_zero(Outcome::ALL.map(|outcome| OutcomeLabels {
            outcome: outcome.as_str(),
        }));
        registry.register(
            "reviews",
            "Admission reviews answered, by outcome (skipped, patched, denied, invalid)",
            reviews.clone(),
        );

        let review_duration = Histogram::new(DURATION_BUCKETS);
        registry.register(
            "review_duration_seconds",
            "Time to answer one admission review, in seconds, registry lookups included",
            review_duration.clone(),
        );

        let patch_bytes = Histogram::new(PATCH_BUCKETS);
        registry.register(
            "patch_bytes",
            "Size of the JSONPatch of each patched pod, in bytes",
            patch_bytes.clone(),
        );

        let bad_requests = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "bad_requests",
            "HTTP requests answered with an error instead of a review (timeouts and unknown paths included), by reason",
            bad_requests.clone(),
        );

        let tls_reloads = counted_from_zero(ReloadResult::ALL.map(|result| ResultLabels {
            result: result.as_str(),
        }));
        registry.register(
            "tls_reloads",
            "Reloads of the serving certificate after its files changed, by result (ok, error)",
            tls_reloads.clone(),
        );

        let certificate_expiry = Gauge::default();
        registry.register(
            "tls_certificate_expiry_seconds",
            "When the serving certificate in use expires (its notAfter), in seconds since the Unix epoch",
            certificate_expiry.clone(),
        );

        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the version label says which akv-webhook runs",
            build_info,
        );

        Metrics {
            registry: Mutex::new(registry),
            reviews,
            review_duration,
            patch_bytes,
            bad_requests,
            tls_reloads,
            certificate_expiry,
        }
    }

    /// Counts one answered review.
    pub fn observe_review(&self, outcome: Outcome, elapsed: Duration, patch_bytes: usize) {
        self.reviews
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str(),
            })
            .inc();
        self.review_duration.observe(elapsed.as_secs_f64());
        if outcome == Outcome::Patched {
            // usize -> f64 is exact for any patch size that fits in a request.
            self.patch_bytes.observe(patch_bytes as f64);
        }
    }

    /// Counts one request answered with an HTTP error; `reason` is a short fixed label.
    pub fn bad_request(&self, reason: &'static str) {
        self.bad_requests
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts one certificate reload.
    pub fn tls_reload(&self, result: ReloadResult) {
        self.tls_reloads
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
    }

    /// Records the expiry of the certificate now served (`None`: unreadable, kept at 0 so
    /// that an alert on "expires within N days" fires rather than stays silent).
    pub fn certificate_in_use(&self, expires_at: Option<u64>) {
        let seconds = expires_at.and_then(|s| i64::try_from(s).ok()).unwrap_or(0);
        self.certificate_expiry.set(seconds);
    }

    /// Registers another metric; its name gets the `akv_webhook_` prefix (and a counter's
    /// the `_total` suffix, so do not add it). Keep a clone of `metric` to update it.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry().register(name, help, metric);
    }

    /// The registry, for what [`Metrics::register`] cannot do (units, sub-registries).
    /// Do not hold the guard across an `.await`.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while registering cannot leave the registry half-changed in a way that
        // matters for encoding, so a poisoned lock is used as it is.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything in the registry, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry())?;
        Ok(out)
    }
}

/// A counter family with each of `labels` already at 0, so that `rate()` works from the
/// first event.
fn counted_from_zero<L>(labels: impl IntoIterator<Item = L>) -> Family<L, Counter>
where
    L: Clone + std::hash::Hash + Eq,
{
    let family = Family::default();
    for label in labels {
        let _ = family.get_or_create(&label);
    }
    family
}

/// `akv_webhook_registry_*` metrics, counted by the registry source.
#[derive(Debug, Clone)]
pub(crate) struct RegistryMetrics {
    hits: Family<CacheLabels, Counter>,
    misses: Family<CacheLabels, Counter>,
    errors: Family<ReasonLabels, Counter>,
    duration: Histogram,
}

impl RegistryMetrics {
    /// The registry's metrics, registered into `metrics` when there is one (else they
    /// count unseen).
    pub(crate) fn new(metrics: Option<&Metrics>) -> Self {
        let caches = || ["tag", "config"].map(|cache| CacheLabels { cache });
        let m = RegistryMetrics {
            hits: counted_from_zero(caches()),
            misses: counted_from_zero(caches()),
            errors: Family::default(),
            duration: Histogram::new(LOOKUP_BUCKETS),
        };
        let Some(metrics) = metrics else {
            return m;
        };
        let mut registry = metrics.registry();
        registry.register(
            "registry_cache_hits",
            "Image lookups answered from a cache (tag: tag -> digest; config: digest -> ENTRYPOINT/CMD), waiters on an in-flight lookup included",
            m.hits.clone(),
        );
        registry.register(
            "registry_cache_misses",
            "Image lookups that had to ask the registry, by cache",
            m.misses.clone(),
        );
        registry.register(
            "registry_lookup_errors",
            "Image lookups that failed, by reason (auth, not_found, unreachable, refused, too_large, timeout, invalid, other)",
            m.errors.clone(),
        );
        registry.register(
            "registry_lookup_duration_seconds",
            "Time to read one image's ENTRYPOINT/CMD, cache hits included, in seconds",
            m.duration.clone(),
        );
        drop(registry);
        m
    }

    /// Counts one lookup that `cache` (`tag` or `config`) answered, or did not.
    pub(crate) fn cache(&self, cache: &'static str, hit: bool) {
        let family = if hit { &self.hits } else { &self.misses };
        family.get_or_create(&CacheLabels { cache }).inc();
    }

    /// Records one lookup: how long it took, and why it failed if it did.
    pub(crate) fn lookup(&self, elapsed: Duration, failure: Option<&'static str>) {
        self.duration.observe(elapsed.as_secs_f64());
        if let Some(reason) = failure {
            self.errors.get_or_create(&ReasonLabels { reason }).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_counts() {
        let metrics = Metrics::new();
        metrics.observe_review(Outcome::Patched, Duration::from_millis(3), 1500);
        metrics.observe_review(Outcome::Skipped, Duration::from_micros(50), 0);
        metrics.bad_request("invalid_review");
        metrics.tls_reload(ReloadResult::Error);
        metrics.certificate_in_use(Some(1_900_000_000));
        let text = metrics.encode().expect("encodes");
        for line in [
            "akv_webhook_reviews_total{outcome=\"patched\"} 1",
            "akv_webhook_reviews_total{outcome=\"skipped\"} 1",
            "akv_webhook_reviews_total{outcome=\"denied\"} 0",
            "akv_webhook_reviews_total{outcome=\"invalid\"} 0",
            "akv_webhook_review_duration_seconds_count 2",
            "akv_webhook_review_duration_seconds_bucket{le=\"0.0001\"} 1",
            "akv_webhook_patch_bytes_count 1",
            "akv_webhook_patch_bytes_bucket{le=\"2048\"} 1",
            "akv_webhook_bad_requests_total{reason=\"invalid_review\"} 1",
            "akv_webhook_tls_reloads_total{result=\"error\"} 1",
            "akv_webhook_tls_reloads_total{result=\"ok\"} 0",
            "akv_webhook_tls_certificate_expiry_seconds 1900000000",
            concat!(
                "akv_webhook_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn others_can_register() {
        let metrics = Metrics::new();
        let lookups = Counter::<u64>::default();
        metrics.register("registry_lookups", "Image config lookups", lookups.clone());
        lookups.inc();
        let text = metrics.encode().expect("encodes");
        assert!(
            text.contains("akv_webhook_registry_lookups_total 1"),
            "{text}"
        );
    }
}
