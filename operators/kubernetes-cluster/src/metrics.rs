//! Prometheus metrics of the cluster controller.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Labels of the per-cluster state gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// Namespace of the Cluster.
    pub namespace: String,
    /// Name of the Cluster.
    pub name: String,
    /// Its state (`ONLINE`, `OFFLINE`, ...).
    pub state: String,
}

/// Labels of the probe latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~32 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The cluster controller's metrics. Label cardinality is bounded by the number of
/// Clusters that exist: a Cluster's series is removed when its observation stops.
///
/// Exposed (once registered with [`ClusterMetrics::register`]) as:
/// * `krake_kubernetes_cluster_probe_duration_seconds{result}` (histogram): time of the
///   reachability probes, `result` = `success` or `failure`;
/// * `krake_kubernetes_cluster_state{namespace, name, state}`: 1 for the state each
///   observed Cluster last had (one series per observed Cluster);
/// * `krake_kubernetes_cluster_watch_restarts_total`: node watches that failed and
///   reconnected, or were restarted after the API server came back;
/// * `krake_kubernetes_cluster_observers`: observation tasks running (one per observed
///   member cluster; a task counts until it has really ended).
#[derive(Clone, Debug)]
pub struct ClusterMetrics {
    probe_duration: Family<ProbeLabels, Histogram, fn() -> Histogram>,
    state: Family<ClusterLabels, Gauge>,
    watch_restarts: Counter,
    observers: Gauge,
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        ClusterMetrics {
            probe_duration: Family::new_with_constructor(latency_histogram),
            state: Family::default(),
            watch_restarts: Counter::default(),
            observers: Gauge::default(),
        }
    }
}

impl ClusterMetrics {
    /// Register the metrics in `registry` (under the `krake` prefix).
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("krake_kubernetes_cluster");
        sub.register_with_unit(
            "probe_duration",
            "Duration of member cluster reachability probes, by result",
            Unit::Seconds,
            self.probe_duration.clone(),
        );
        sub.register(
            "state",
            "1 for the current state of each observed Cluster",
            self.state.clone(),
        );
        sub.register(
            "watch_restarts",
            "Member cluster node watches that failed or were restarted",
            self.watch_restarts.clone(),
        );
        sub.register(
            "observers",
            "Observation tasks running (one per observed member cluster)",
            self.observers.clone(),
        );
    }

    pub(crate) fn probe(&self, success: bool, seconds: f64) {
        let result = if success { "success" } else { "failure" };
        self.probe_duration
            .get_or_create(&ProbeLabels { result })
            .observe(seconds);
    }

    /// Record that the cluster `namespace/name` is now in `state` (was in `previous`).
    pub(crate) fn state(&self, namespace: &str, name: &str, previous: Option<&str>, state: &str) {
        let labels = |state: &str| ClusterLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
            state: state.to_string(),
        };
        if let Some(previous) = previous.filter(|p| *p != state) {
            self.state.remove(&labels(previous));
        }
        self.state.get_or_create(&labels(state)).set(1);
    }

    /// Forget the series of cluster `namespace/name` last in `state`.
    pub(crate) fn forget(&self, namespace: &str, name: &str, state: Option<&str>) {
        if let Some(state) = state {
            self.state.remove(&ClusterLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
                state: state.to_string(),
            });
        }
    }

    pub(crate) fn watch_restart(&self) {
        self.watch_restarts.inc();
    }

    pub(crate) fn observers(&self) -> &Gauge {
        &self.observers
    }

    /// Node watch restarts counted so far.
    pub fn watch_restarts(&self) -> u64 {
        self.watch_restarts.get()
    }

    /// Observation tasks running now (counted until each task has ended).
    pub fn observer_tasks(&self) -> i64 {
        self.observers.get()
    }
}
