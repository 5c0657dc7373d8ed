//! Prometheus metrics of controllers (and reflectors), one label set per controller.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Labels naming a controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// Controller name.
    pub controller: String,
}

/// Labels of the reconcile counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Controller name.
    pub controller: String,
    /// `success`, `error` or `skipped` (the object vanished before its turn).
    pub result: &'static str,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Controller name.
    pub controller: String,
    /// Error class ([`crate::ReconcileError::kind`]).
    pub kind: String,
}

/// Labels of reflector metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReflectorLabels {
    /// Reflector name (the kind, e.g. `kubernetes/Application`).
    pub reflector: String,
    /// `list`, `watch` or `decode`.
    pub operation: &'static str,
}

fn duration_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The metric families shared by every controller of a process. Create once per
/// [`Registry`] and hand to each controller ([`crate::Controller::with_metrics`]).
///
/// Exposed as:
/// * `krake_controller_reconciles_total{controller, result}`
/// * `krake_controller_reconcile_errors_total{controller, kind}`
/// * `krake_controller_reconcile_duration_seconds{controller}` (histogram)
/// * `krake_controller_queue_depth{controller}` (keys ready to be processed)
/// * `krake_reflector_failures_total{reflector, operation}` (`list`: failed lists,
///   `watch`: interrupted watches including 410, `decode`: skipped undecodable events)
#[derive(Clone, Debug)]
pub struct Metrics {
    reconciles: Family<ResultLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    queue_depth: Family<ControllerLabels, Gauge>,
    reflector_failures: Family<ReflectorLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::unregistered()
    }
}

impl Metrics {
    /// Create the families and register them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self::unregistered();
        let sub = registry.sub_registry_with_prefix("krake");
        sub.register(
            "controller_reconciles",
            "Reconciles run, by result",
            metrics.reconciles.clone(),
        );
        sub.register(
            "controller_reconcile_errors",
            "Failed reconciles, by error kind",
            metrics.errors.clone(),
        );
        sub.register_with_unit(
            "controller_reconcile_duration",
            "Duration of reconciles",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        sub.register(
            "controller_queue_depth",
            "Keys waiting in the work queue",
            metrics.queue_depth.clone(),
        );
        sub.register(
            "reflector_failures",
            "Failed lists and interrupted watches of reflectors",
            metrics.reflector_failures.clone(),
        );
        metrics
    }

    /// Families that are not registered anywhere (the default of controllers).
    pub fn unregistered() -> Self {
        Metrics {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            queue_depth: Family::default(),
            reflector_failures: Family::default(),
        }
    }

    /// The handle of one controller.
    pub fn controller(&self, name: &str) -> ControllerMetrics {
        let labels = ControllerLabels {
            controller: name.to_string(),
        };
        // Each `get_or_create` holds a read lock on its family until the guard is
        // dropped: take one counter per statement.
        let result = |result: &'static str| {
            self.reconciles
                .get_or_create(&ResultLabels {
                    controller: name.to_string(),
                    result,
                })
                .clone()
        };
        let success = result("success");
        let error = result("error");
        let skipped = result("skipped");
        let duration = self.duration.get_or_create(&labels).clone();
        let queue_depth = self.queue_depth.get_or_create(&labels).clone();
        ControllerMetrics {
            name: name.to_string(),
            success,
            error,
            skipped,
            errors: self.errors.clone(),
            duration,
            queue_depth,
        }
    }

    /// Count a failed list or watch of a reflector.
    pub fn reflector_failure(&self, reflector: &str, operation: &'static str) {
        self.reflector_failures
            .get_or_create(&ReflectorLabels {
                reflector: reflector.to_string(),
                operation,
            })
            .inc();
    }
}

/// The metrics of one controller.
#[derive(Clone, Debug)]
pub struct ControllerMetrics {
    name: String,
    success: Counter,
    error: Counter,
    skipped: Counter,
    errors: Family<ErrorLabels, Counter>,
    duration: Histogram,
    queue_depth: Gauge,
}

impl ControllerMetrics {
    /// The controller name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Record a successful reconcile of `seconds`.
    pub fn success(&self, seconds: f64) {
        self.success.inc();
        self.duration.observe(seconds);
    }

    /// Record a failed reconcile of `seconds` with error class `kind`.
    pub fn failure(&self, kind: &str, seconds: f64) {
        self.error.inc();
        self.duration.observe(seconds);
        self.errors
            .get_or_create(&ErrorLabels {
                controller: self.name.clone(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Record a key whose object vanished before its turn.
    pub fn skipped(&self) {
        self.skipped.inc();
    }

    /// The queue-depth gauge.
    pub fn queue_depth(&self) -> Gauge {
        self.queue_depth.clone()
    }

    /// Reconciles counted so far: (success, error, skipped).
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.success.get(), self.error.get(), self.skipped.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let apps = metrics.controller("apps");
        apps.success(0.01);
        apps.failure("conflict", 0.02);
        apps.skipped();
        apps.queue_depth().set(3);
        metrics.reflector_failure("kubernetes/Application", "watch");
        assert_eq!(apps.counts(), (1, 1, 1));

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for expected in [
            r#"krake_controller_reconciles_total{controller="apps",result="success"} 1"#,
            r#"krake_controller_reconciles_total{controller="apps",result="error"} 1"#,
            r#"krake_controller_reconcile_errors_total{controller="apps",kind="conflict"} 1"#,
            r#"krake_controller_reconcile_duration_seconds_count{controller="apps"} 2"#,
            r#"krake_controller_queue_depth{controller="apps"} 3"#,
            r#"krake_reflector_failures_total{reflector="kubernetes/Application",operation="watch"} 1"#,
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}
