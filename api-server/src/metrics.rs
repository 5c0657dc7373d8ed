//! Prometheus metrics of the API server: requests by route, method and status code with
//! latency histograms, open watchers, and storage operation latency.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Matched route template, e.g. `/kubernetes/namespaces/{ns}/applications/{name}`.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// HTTP status code.
    pub code: u16,
}

/// Labels of latency histograms by route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Matched route template.
    pub route: String,
    /// HTTP method.
    pub method: String,
}

/// Labels of storage metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageLabels {
    /// Operation: get, list, create, update, delete, watch, revision.
    pub operation: &'static str,
}

/// Labels of per-kind metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Kind name (`Application`).
    pub kind: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// All metrics, registered once per server.
pub struct Metrics {
    registry: Registry,
    /// Requests served.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency in seconds (time to response headers).
    pub request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Open watch streams.
    pub open_watchers: Gauge,
    /// Storage operation latency in seconds.
    pub storage_duration: Family<StorageLabels, Histogram, fn() -> Histogram>,
    /// Storage operations that failed (not counting conditional-write conflicts).
    pub storage_errors: Family<StorageLabels, Counter>,
    /// Bytes of events each watch cache keeps.
    pub watch_cache_bytes: Family<KindLabels, Gauge>,
    /// Events evicted from each watch cache.
    pub watch_cache_evictions: Family<KindLabels, Counter>,
    /// Stored objects that could not be decoded and were left out of a list.
    pub undecodable_objects: Family<KindLabels, Counter>,
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("krake_api");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let open_watchers = Gauge::default();
        let storage_duration =
            Family::<StorageLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let storage_errors = Family::<StorageLabels, Counter>::default();
        let watch_cache_bytes = Family::<KindLabels, Gauge>::default();
        let watch_cache_evictions = Family::<KindLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            request_duration.clone(),
        );
        registry.register("open_watchers", "Open watch streams", open_watchers.clone());
        registry.register(
            "storage_operation_duration_seconds",
            "Storage operation latency",
            storage_duration.clone(),
        );
        registry.register(
            "storage_operation_errors",
            "Failed storage operations",
            storage_errors.clone(),
        );
        registry.register(
            "watch_cache_bytes",
            "Bytes of events a watch cache keeps for resumption",
            watch_cache_bytes.clone(),
        );
        registry.register(
            "watch_cache_evictions",
            "Events evicted from a watch cache to stay within its bounds",
            watch_cache_evictions.clone(),
        );
        let undecodable_objects = Family::<KindLabels, Counter>::default();
        registry.register(
            "undecodable_stored_objects",
            "Stored objects left out of a list because they cannot be decoded",
            undecodable_objects.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            request_duration,
            open_watchers,
            storage_duration,
            storage_errors,
            watch_cache_bytes,
            watch_cache_evictions,
            undecodable_objects,
        })
    }

    /// Record one served request.
    pub fn observe_request(&self, route: &str, method: &str, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                code,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Count a stored object of `kind` left out of a list because it cannot be decoded.
    pub fn undecodable_object(&self, kind: &'static str) {
        self.undecodable_objects
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
