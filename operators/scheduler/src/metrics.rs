//! Metric resolution, normalisation, fetching and the metric-driven status transitions.
//!
//! A resource (Cluster, Cloud, GlobalCloud, Project) references metrics by
//! [`MetricRef`]. Each reference is resolved to a `Metric` + `MetricsProvider` in the
//! resource's namespace (`namespaced: true`) or a `GlobalMetric` + `GlobalMetricsProvider`,
//! the provider is queried, and the raw value is normalised into `[0, 1]`. The outcome of a
//! resource is all-or-nothing: one failing metric and the resource has no metrics for this
//! pass, its state becomes `FAILING_METRICS` and `status.metrics_reasons` names every
//! failing metric.

use std::sync::Arc;

use async_trait::async_trait;
use krake_crds::OrderedMap;
use krake_crds::core::{MetricRef, MetricSpec, MetricsProviderSpec, Reason};
use krake_crds::infrastructure::{CloudState, CloudStatus};
use krake_crds::kubernetes::{ClusterState, ClusterStatus};
use krake_crds::openstack::{ProjectState, ProjectStatus};

use crate::error::{Error, Result};
use crate::providers::MetricsProvider;

/// One successfully fetched metric of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    /// Name of the Krake metric resource (what metric constraints refer to).
    pub name: String,
    /// Weight from the resource's [`MetricRef`].
    pub weight: f64,
    /// Normalised value in `[0, 1]`.
    pub value: f64,
}

impl MetricValue {
    /// `weight × value`, the quantity metric constraints compare with their number.
    pub fn weighted(&self) -> f64 {
        self.weight * self.value
    }
}

/// Normalise a raw provider value with the bounds of its metric:
/// `min <= value <= max`, one of `allowed_values` when that list is non-empty, then
/// `(value - min) / (max - min)`. `max == min` cannot be normalised and is reported as
/// `INVALID_METRIC` (upstream divides by zero).
pub fn normalise(metric: &str, value: f64, spec: &MetricSpec) -> Result<f64> {
    let invalid = |message: String| Error::InvalidMetric {
        metric: metric.to_string(),
        message,
    };
    if !(spec.min <= value && value <= spec.max) {
        return Err(invalid(format!(
            "value {value} out of range [{}, {}]",
            spec.min, spec.max
        )));
    }
    if !spec.allowed_values.is_empty() && !spec.allowed_values.iter().any(|a| *a as f64 == value) {
        return Err(invalid(format!(
            "value {value} is not one of the allowed values {:?}",
            spec.allowed_values
        )));
    }
    if spec.max == spec.min {
        return Err(invalid(format!(
            "min and max are both {}, the value cannot be normalised",
            spec.min
        )));
    }
    Ok((value - spec.min) / (spec.max - spec.min))
}

/// Where a metric (or its provider) is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A namespaced `Metric` / `MetricsProvider`.
    Namespaced {
        /// Namespace of the referring resource.
        namespace: String,
        /// Resource name.
        name: String,
    },
    /// A `GlobalMetric` / `GlobalMetricsProvider`.
    Global {
        /// Resource name.
        name: String,
    },
}

impl Location {
    /// The resource name.
    pub fn name(&self) -> &str {
        match self {
            Location::Namespaced { name, .. } | Location::Global { name } => name,
        }
    }

    /// The provider of a metric found here: same scope (namespace or global), other name.
    pub fn provider(&self, provider_name: &str) -> Location {
        match self {
            Location::Namespaced { namespace, .. } => Location::Namespaced {
                namespace: namespace.clone(),
                name: provider_name.to_string(),
            },
            Location::Global { .. } => Location::Global {
                name: provider_name.to_string(),
            },
        }
    }

    fn describe(&self, kind: &str) -> String {
        match self {
            Location::Namespaced { namespace, name } => {
                format!("{kind} {name:?} in namespace {namespace:?}")
            }
            Location::Global { name } => format!("Global{kind} {name:?}"),
        }
    }
}

/// Resolve a metric reference of a resource living in `resource_namespace` (`None` for
/// global resources). A global resource cannot use a namespaced metric: `INVALID_METRIC`.
pub fn locate_metric(metric: &MetricRef, resource_namespace: Option<&str>) -> Result<Location> {
    if !metric.namespaced {
        return Ok(Location::Global {
            name: metric.name.clone(),
        });
    }
    match resource_namespace {
        Some(namespace) => Ok(Location::Namespaced {
            namespace: namespace.to_string(),
            name: metric.name.clone(),
        }),
        None => Err(Error::InvalidMetric {
            metric: metric.name.clone(),
            message: "a non-namespaced resource cannot reference a namespaced metric".into(),
        }),
    }
}

/// Read access to metric and metrics-provider definitions (the Krake API, or a cache of
/// it). `Ok(None)` means "does not exist"; `Err` is a transient failure that aborts the
/// scheduling pass (retried with backoff).
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// The spec of the `Metric` (namespaced location) or `GlobalMetric`.
    async fn metric(&self, location: &Location) -> Result<Option<MetricSpec>>;
    /// The spec of the `MetricsProvider` (namespaced location) or `GlobalMetricsProvider`.
    async fn provider(&self, location: &Location) -> Result<Option<MetricsProviderSpec>>;
}

/// Builds the client of a metrics provider from its spec.
pub trait ProviderFactory: Send + Sync {
    /// A provider client for the provider resource at `location` with `spec`.
    fn provider(&self, location: &Location, spec: &MetricsProviderSpec)
    -> Arc<dyn MetricsProvider>;
}

/// The all-or-nothing metric outcome of one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsOutcome {
    /// The resource references no metric.
    NoMetrics,
    /// Every metric was fetched and normalised.
    Fetched(Vec<MetricValue>),
    /// At least one metric failed: metric name → reason, failing metrics only.
    Failed(OrderedMap<Reason>),
}

impl MetricsOutcome {
    /// Combine per-metric results (in the order of the resource's metric references).
    pub fn from_results(results: Vec<(String, Result<MetricValue>)>) -> Self {
        if results.is_empty() {
            return MetricsOutcome::NoMetrics;
        }
        let mut values = Vec::new();
        let mut reasons = OrderedMap::new();
        for (name, result) in results {
            match result {
                Ok(v) => values.push(v),
                Err(e) => {
                    reasons.insert(name, e.reason());
                }
            }
        }
        if reasons.is_empty() {
            MetricsOutcome::Fetched(values)
        } else {
            MetricsOutcome::Failed(reasons)
        }
    }

    /// The fetched values, if the resource has metrics and all were fetched.
    pub fn values(&self) -> Option<&[MetricValue]> {
        match self {
            MetricsOutcome::Fetched(v) if !v.is_empty() => Some(v),
            _ => None,
        }
    }

    /// Whether no metric failed (a resource without metrics has not failed).
    pub fn succeeded(&self) -> bool {
        !matches!(self, MetricsOutcome::Failed(_))
    }
}

/// Fetch every metric of a resource concurrently and normalise them.
///
/// Per-metric problems (unknown metric or provider, unreachable provider, invalid value)
/// end up in [`MetricsOutcome::Failed`]; only a failure of `source` itself is an `Err`.
pub async fn fetch_metrics(
    resource_namespace: Option<&str>,
    metrics: &[MetricRef],
    source: &dyn MetricsSource,
    factory: &dyn ProviderFactory,
) -> Result<MetricsOutcome> {
    let fetches = metrics.iter().map(|metric| async move {
        let result = fetch_one(resource_namespace, metric, source, factory).await;
        (metric.name.clone(), result)
    });
    let mut results = Vec::with_capacity(metrics.len());
    for (name, result) in futures::future::join_all(fetches).await {
        match result {
            Err(e @ Error::Api(_)) => return Err(e),
            other => results.push((name, other)),
        }
    }
    Ok(MetricsOutcome::from_results(results))
}

async fn fetch_one(
    resource_namespace: Option<&str>,
    metric: &MetricRef,
    source: &dyn MetricsSource,
    factory: &dyn ProviderFactory,
) -> Result<MetricValue> {
    let location = locate_metric(metric, resource_namespace)?;
    let spec = source.metric(&location).await?.ok_or_else(|| {
        Error::UnknownMetric(format!("{} not found", location.describe("Metric")))
    })?;
    let provider_location = location.provider(&spec.provider.name);
    let provider_spec = source.provider(&provider_location).await?.ok_or_else(|| {
        Error::UnknownMetricsProvider(format!(
            "{} not found",
            provider_location.describe("MetricsProvider")
        ))
    })?;
    let provider = factory.provider(&provider_location, &provider_spec);
    let raw = provider.query(&spec.provider.metric).await?;
    let value = normalise(&metric.name, raw, &spec)?;
    tracing::debug!(metric = %metric.name, raw, value, "metric fetched");
    Ok(MetricValue {
        name: metric.name.clone(),
        weight: metric.weight,
        value,
    })
}

/// The status change a metric outcome calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsStatusUpdate {
    /// State `FAILING_METRICS` with these `metrics_reasons`.
    SetFailing(OrderedMap<Reason>),
    /// Metrics work again: `FAILING_METRICS` → `ONLINE`, reason and `metrics_reasons`
    /// cleared (upstream never clears `metrics_reasons`).
    Recover,
    /// The state is not `FAILING_METRICS` (someone else changed it) but stale
    /// `metrics_reasons` remain: clear them.
    ClearReasons,
}

/// What to write after fetching the metrics of a resource whose state is currently
/// failing (`is_failing`) with `reasons`; `None` when the status is already right (no
/// write, so no watch event and no write storm: upstream rewrites clouds on every fetch).
pub fn metrics_status_update(
    is_failing: bool,
    reasons: &OrderedMap<Reason>,
    outcome: &MetricsOutcome,
) -> Option<MetricsStatusUpdate> {
    match outcome {
        MetricsOutcome::Failed(new) => {
            (!is_failing || reasons != new).then(|| MetricsStatusUpdate::SetFailing(new.clone()))
        }
        _ if is_failing => Some(MetricsStatusUpdate::Recover),
        _ if !reasons.is_empty() => Some(MetricsStatusUpdate::ClearReasons),
        _ => None,
    }
}

/// A status carrying a metric-driven state.
pub trait MetricsStatus {
    /// Whether the state is `FAILING_METRICS`.
    fn is_failing(&self) -> bool;
    /// Current `metrics_reasons`.
    fn metrics_reasons(&self) -> &OrderedMap<Reason>;
    /// Apply a metric status change.
    fn apply(&mut self, update: &MetricsStatusUpdate);

    /// Compute and apply the change `outcome` calls for; returns it (`None` = unchanged).
    fn update_from(&mut self, outcome: &MetricsOutcome) -> Option<MetricsStatusUpdate> {
        let update = metrics_status_update(self.is_failing(), self.metrics_reasons(), outcome)?;
        self.apply(&update);
        Some(update)
    }
}

impl MetricsStatus for ClusterStatus {
    fn is_failing(&self) -> bool {
        self.state == ClusterState::FailingMetrics
    }
    fn metrics_reasons(&self) -> &OrderedMap<Reason> {
        &self.metrics_reasons
    }
    fn apply(&mut self, update: &MetricsStatusUpdate) {
        match update {
            MetricsStatusUpdate::SetFailing(reasons) => {
                self.state = ClusterState::FailingMetrics;
                self.metrics_reasons = reasons.clone();
            }
            MetricsStatusUpdate::Recover => {
                self.state = ClusterState::Online;
                self.reason = None;
                self.metrics_reasons = OrderedMap::new();
            }
            MetricsStatusUpdate::ClearReasons => self.metrics_reasons = OrderedMap::new(),
        }
    }
}

impl MetricsStatus for CloudStatus {
    fn is_failing(&self) -> bool {
        self.state == CloudState::FailingMetrics
    }
    fn metrics_reasons(&self) -> &OrderedMap<Reason> {
        &self.metrics_reasons
    }
    fn apply(&mut self, update: &MetricsStatusUpdate) {
        match update {
            MetricsStatusUpdate::SetFailing(reasons) => {
                self.state = CloudState::FailingMetrics;
                self.metrics_reasons = reasons.clone();
            }
            MetricsStatusUpdate::Recover => {
                self.state = CloudState::Online;
                self.metrics_reasons = OrderedMap::new();
            }
            MetricsStatusUpdate::ClearReasons => self.metrics_reasons = OrderedMap::new(),
        }
    }
}

impl MetricsStatus for ProjectStatus {
    fn is_failing(&self) -> bool {
        self.state == ProjectState::FailingMetrics
    }
    fn metrics_reasons(&self) -> &OrderedMap<Reason> {
        &self.metrics_reasons
    }
    fn apply(&mut self, update: &MetricsStatusUpdate) {
        match update {
            MetricsStatusUpdate::SetFailing(reasons) => {
                self.state = ProjectState::FailingMetrics;
                self.metrics_reasons = reasons.clone();
            }
            MetricsStatusUpdate::Recover => {
                self.state = ProjectState::Online;
                self.metrics_reasons = OrderedMap::new();
            }
            MetricsStatusUpdate::ClearReasons => self.metrics_reasons = OrderedMap::new(),
        }
    }
}

/// The state a cluster has for scheduling once its metric outcome is applied: a
/// cluster whose metrics fail is `FAILING_METRICS` (not eligible), a `FAILING_METRICS`
/// cluster whose metrics work again is `ONLINE` (eligible).
///
/// The state [`MetricsStatus::update_from`] would give, without copying the status (this
/// runs for every candidate cluster of every decision).
pub fn effective_cluster_state(status: &ClusterStatus, outcome: &MetricsOutcome) -> ClusterState {
    match outcome {
        MetricsOutcome::Failed(_) => ClusterState::FailingMetrics,
        _ if status.state == ClusterState::FailingMetrics => ClusterState::Online,
        _ => status.state,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use krake_crds::core::{ReasonCode, StaticSpec};

    use super::*;
    use crate::model::fixtures::{metric_ref, metric_spec};
    use crate::providers::StaticProvider;

    #[test]
    fn normalisation_table() {
        // (min, max, allowed, raw, expected normalised or error code)
        type Case<'a> = (f64, f64, &'a [i64], f64, Option<f64>);
        let cases: &[Case] = &[
            (0.0, 1.0, &[], 0.5, Some(0.5)),
            (0.0, 1.0, &[], 0.0, Some(0.0)),
            (0.0, 1.0, &[], 1.0, Some(1.0)),
            (0.0, 10.0, &[], 2.5, Some(0.25)),
            (-10.0, 10.0, &[], 0.0, Some(0.5)),
            (0.0, 1.0, &[], 1.5, None),
            (0.0, 1.0, &[], -0.1, None),
            (0.0, 1.0, &[], f64::NAN, None),
            (0.0, 10.0, &[2, 4], 4.0, Some(0.4)),
            (0.0, 10.0, &[2, 4], 3.0, None),
            (5.0, 5.0, &[], 5.0, None),
        ];
        for (min, max, allowed, raw, expected) in cases {
            let spec = metric_spec(*min, *max, allowed);
            let got = normalise("m", *raw, &spec);
            match expected {
                Some(v) => assert_eq!(got.as_ref().ok(), Some(v), "{min} {max} {raw}"),
                None => {
                    let err = got.expect_err("must be rejected");
                    assert_eq!(err.reason().code, ReasonCode::InvalidMetric, "{err}");
                }
            }
        }
        let err = normalise("m", 5.0, &metric_spec(5.0, 5.0, &[])).unwrap_err();
        assert!(err.to_string().contains("cannot be normalised"), "{err}");
        let err = normalise("m", 2.0, &metric_spec(0.0, 1.0, &[])).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn location_table() {
        let cases = [
            (
                metric_ref("m", 1.0, true),
                Some("ns"),
                Ok(Location::Namespaced {
                    namespace: "ns".into(),
                    name: "m".into(),
                }),
            ),
            (
                metric_ref("m", 1.0, false),
                Some("ns"),
                Ok(Location::Global { name: "m".into() }),
            ),
            (
                metric_ref("m", 1.0, false),
                None,
                Ok(Location::Global { name: "m".into() }),
            ),
            (
                metric_ref("m", 1.0, true),
                None,
                Err(ReasonCode::InvalidMetric),
            ),
        ];
        for (metric, ns, expected) in cases {
            let got = locate_metric(&metric, ns).map_err(|e| e.reason().code);
            assert_eq!(got, expected, "{metric:?} in {ns:?}");
        }
        let ns = Location::Namespaced {
            namespace: "a".into(),
            name: "m".into(),
        };
        assert_eq!(
            ns.provider("p"),
            Location::Namespaced {
                namespace: "a".into(),
                name: "p".into()
            }
        );
        assert_eq!(
            Location::Global { name: "m".into() }.provider("p"),
            Location::Global { name: "p".into() }
        );
    }

    fn reason(code: ReasonCode) -> Reason {
        Reason {
            code,
            message: "x".into(),
        }
    }

    #[test]
    fn outcome_is_all_or_nothing() {
        assert_eq!(
            MetricsOutcome::from_results(vec![]),
            MetricsOutcome::NoMetrics
        );
        let ok = |n: &str| MetricValue {
            name: n.into(),
            weight: 1.0,
            value: 0.5,
        };
        let all_ok = MetricsOutcome::from_results(vec![
            ("a".into(), Ok(ok("a"))),
            ("b".into(), Ok(ok("b"))),
        ]);
        assert_eq!(all_ok.values().map(<[_]>::len), Some(2));
        assert!(all_ok.succeeded());
        let one_failed = MetricsOutcome::from_results(vec![
            ("a".into(), Ok(ok("a"))),
            ("b".into(), Err(Error::UnknownMetric("nope".into()))),
        ]);
        assert!(!one_failed.succeeded());
        assert_eq!(one_failed.values(), None);
        let MetricsOutcome::Failed(reasons) = one_failed else {
            panic!("expected failure")
        };
        assert_eq!(reasons.keys().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(reasons.get("b").unwrap().code, ReasonCode::UnknownMetric);
        assert_eq!(MetricsOutcome::Fetched(vec![]).values(), None);
    }

    #[test]
    fn status_update_table() {
        let failing: OrderedMap<Reason> = [("m", reason(ReasonCode::UnknownMetric))]
            .into_iter()
            .collect();
        let other: OrderedMap<Reason> = [("m", reason(ReasonCode::InvalidMetric))]
            .into_iter()
            .collect();
        let fetched = MetricsOutcome::Fetched(vec![]);
        let failed = MetricsOutcome::Failed(failing.clone());
        let none = OrderedMap::new();
        let cases = [
            // (is_failing, current reasons, outcome, expected)
            (false, &none, &fetched, None),
            (false, &none, &MetricsOutcome::NoMetrics, None),
            (true, &failing, &fetched, Some(MetricsStatusUpdate::Recover)),
            (
                true,
                &failing,
                &MetricsOutcome::NoMetrics,
                Some(MetricsStatusUpdate::Recover),
            ),
            (
                false,
                &failing,
                &fetched,
                Some(MetricsStatusUpdate::ClearReasons),
            ),
            (
                false,
                &none,
                &failed,
                Some(MetricsStatusUpdate::SetFailing(failing.clone())),
            ),
            (true, &failing, &failed, None),
            (
                true,
                &other,
                &failed,
                Some(MetricsStatusUpdate::SetFailing(failing.clone())),
            ),
        ];
        for (i, (is_failing, reasons, outcome, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                metrics_status_update(is_failing, reasons, outcome),
                expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn recovery_clears_reasons_on_every_kind() {
        let reasons: OrderedMap<Reason> = [("m", reason(ReasonCode::UnreachableMetricsProvider))]
            .into_iter()
            .collect();
        let mut cluster = ClusterStatus {
            state: ClusterState::FailingMetrics,
            metrics_reasons: reasons.clone(),
            reason: Some(reason(ReasonCode::InternalError)),
            ..ClusterStatus::default()
        };
        let fetched = MetricsOutcome::Fetched(vec![]);
        assert_eq!(
            cluster.update_from(&fetched),
            Some(MetricsStatusUpdate::Recover)
        );
        assert_eq!(cluster.state, ClusterState::Online);
        assert!(cluster.metrics_reasons.is_empty());
        assert_eq!(cluster.reason, None);

        let mut cloud = CloudStatus {
            state: CloudState::FailingMetrics,
            metrics_reasons: reasons.clone(),
        };
        cloud.update_from(&fetched);
        assert_eq!(cloud, CloudStatus::default());
        // An ONLINE cloud without reasons is not rewritten.
        assert_eq!(cloud.update_from(&fetched), None);

        let mut project = ProjectStatus::default();
        project.update_from(&MetricsOutcome::Failed(reasons.clone()));
        assert_eq!(project.state, ProjectState::FailingMetrics);
        assert_eq!(project.metrics_reasons, reasons);
        project.update_from(&fetched);
        assert_eq!(project, ProjectStatus::default());
    }

    #[test]
    fn effective_state_table() {
        let failed = MetricsOutcome::Failed(
            [("m", reason(ReasonCode::InvalidMetric))]
                .into_iter()
                .collect(),
        );
        let fetched = MetricsOutcome::Fetched(vec![]);
        let cases = [
            (ClusterState::Online, &fetched, ClusterState::Online),
            (ClusterState::Online, &failed, ClusterState::FailingMetrics),
            (ClusterState::FailingMetrics, &fetched, ClusterState::Online),
            (
                ClusterState::FailingMetrics,
                &failed,
                ClusterState::FailingMetrics,
            ),
            (ClusterState::Offline, &fetched, ClusterState::Offline),
            (ClusterState::Offline, &failed, ClusterState::FailingMetrics),
        ];
        for (state, outcome, expected) in cases {
            let status = ClusterStatus {
                state,
                ..ClusterStatus::default()
            };
            assert_eq!(
                effective_cluster_state(&status, outcome),
                expected,
                "{state}"
            );
        }
    }

    /// In-memory metric definitions for fetch tests.
    #[derive(Default)]
    pub(crate) struct MemorySource {
        pub metrics: HashMap<Location, MetricSpec>,
        pub providers: HashMap<Location, MetricsProviderSpec>,
        pub fail: bool,
    }

    #[async_trait]
    impl MetricsSource for MemorySource {
        async fn metric(&self, location: &Location) -> Result<Option<MetricSpec>> {
            if self.fail {
                return Err(Error::Api("down".into()));
            }
            Ok(self.metrics.get(location).cloned())
        }
        async fn provider(&self, location: &Location) -> Result<Option<MetricsProviderSpec>> {
            Ok(self.providers.get(location).cloned())
        }
    }

    struct StaticOnly;

    impl ProviderFactory for StaticOnly {
        fn provider(
            &self,
            location: &Location,
            spec: &MetricsProviderSpec,
        ) -> Arc<dyn MetricsProvider> {
            match spec {
                MetricsProviderSpec::Static(s) => Arc::new(StaticProvider::new(location.name(), s)),
                other => panic!("unexpected provider {other:?}"),
            }
        }
    }

    fn static_spec(values: &[(&str, f64)]) -> MetricsProviderSpec {
        MetricsProviderSpec::Static(StaticSpec {
            metrics: values.iter().map(|(k, v)| (*k, *v)).collect(),
        })
    }

    fn source() -> MemorySource {
        let mut s = MemorySource::default();
        let mut global = metric_spec(0.0, 10.0, &[]);
        global.provider.name = "gp".into();
        global.provider.metric = "raw-g".into();
        s.metrics
            .insert(Location::Global { name: "g".into() }, global);
        let mut namespaced = metric_spec(0.0, 1.0, &[]);
        namespaced.provider.name = "np".into();
        namespaced.provider.metric = "raw-n".into();
        s.metrics.insert(
            Location::Namespaced {
                namespace: "ns".into(),
                name: "n".into(),
            },
            namespaced.clone(),
        );
        // A namespaced metric in another namespace must not be used from "ns".
        s.metrics.insert(
            Location::Namespaced {
                namespace: "other".into(),
                name: "o".into(),
            },
            namespaced,
        );
        let mut orphan = metric_spec(0.0, 1.0, &[]);
        orphan.provider.name = "missing".into();
        s.metrics.insert(
            Location::Global {
                name: "orphan".into(),
            },
            orphan,
        );
        let mut bad = metric_spec(0.0, 1.0, &[]);
        bad.provider.name = "gp".into();
        bad.provider.metric = "too-big".into();
        s.metrics
            .insert(Location::Global { name: "bad".into() }, bad);
        s.providers.insert(
            Location::Global { name: "gp".into() },
            static_spec(&[("raw-g", 5.0), ("too-big", 7.0)]),
        );
        s.providers.insert(
            Location::Namespaced {
                namespace: "ns".into(),
                name: "np".into(),
            },
            static_spec(&[("raw-n", 0.25)]),
        );
        s
    }

    #[tokio::test]
    async fn fetch_resolves_namespaced_and_global_metrics() {
        let src = source();
        let refs = [metric_ref("g", 2.0, false), metric_ref("n", 1.0, true)];
        let outcome = fetch_metrics(Some("ns"), &refs, &src, &StaticOnly)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            MetricsOutcome::Fetched(vec![
                MetricValue {
                    name: "g".into(),
                    weight: 2.0,
                    value: 0.5
                },
                MetricValue {
                    name: "n".into(),
                    weight: 1.0,
                    value: 0.25
                },
            ])
        );
        assert_eq!(
            fetch_metrics(Some("ns"), &[], &src, &StaticOnly)
                .await
                .unwrap(),
            MetricsOutcome::NoMetrics
        );
    }

    #[tokio::test]
    async fn fetch_failures_give_per_metric_reasons() {
        let src = source();
        let cases = [
            (
                metric_ref("absent", 1.0, false),
                Some("ns"),
                ReasonCode::UnknownMetric,
            ),
            (
                metric_ref("o", 1.0, true),
                Some("ns"),
                ReasonCode::UnknownMetric,
            ),
            (
                metric_ref("orphan", 1.0, false),
                Some("ns"),
                ReasonCode::UnknownMetricsProvider,
            ),
            (
                metric_ref("bad", 1.0, false),
                Some("ns"),
                ReasonCode::InvalidMetric,
            ),
            (metric_ref("n", 1.0, true), None, ReasonCode::InvalidMetric),
        ];
        for (metric, ns, code) in cases {
            let refs = [metric_ref("g", 1.0, false), metric.clone()];
            let outcome = fetch_metrics(ns, &refs, &src, &StaticOnly).await.unwrap();
            let MetricsOutcome::Failed(reasons) = outcome else {
                panic!("{metric:?} must fail, got {outcome:?}")
            };
            assert_eq!(reasons.len(), 1, "{metric:?}");
            assert_eq!(reasons.get(&metric.name).unwrap().code, code, "{metric:?}");
        }
    }

    #[tokio::test]
    async fn fetch_propagates_source_errors() {
        let src = MemorySource {
            fail: true,
            ..source()
        };
        let err = fetch_metrics(
            Some("ns"),
            &[metric_ref("g", 1.0, false)],
            &src,
            &StaticOnly,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Api(_)));
    }
}
