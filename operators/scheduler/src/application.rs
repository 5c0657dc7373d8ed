//! Decisions of the application handler: admission, retry and migration
//! gates, cluster selection, what to write, and the DEGRADED/FAILED transitions.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use krake_crds::kubernetes::{
    Application, ApplicationState, ApplicationStatus, CloudConstraints, Cluster,
    ClusterCloudConstraints, ClusterSpec, ClusterState,
};
use krake_crds::{Metadata, ResourceRef, Timestamp};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::matching::{cloud_matches_cluster_constraints, cluster_is_eligible, cluster_matches};
use crate::metrics::{MetricValue, MetricsOutcome, effective_cluster_state};
use crate::model::{AnyCloud, resource_ref};
use crate::scoring::{Chooser, Scored, cluster_score, select_best, weighted_mean};

/// Message of the `NO_SUITABLE_RESOURCE` reason when no cluster matches.
pub const NO_CLUSTER_FOUND: &str = "No matching Kubernetes cluster found";

/// A [`Timestamp`] for a UTC instant (microsecond precision, `+00:00`).
pub fn timestamp(instant: DateTime<Utc>) -> Timestamp {
    Timestamp::parse(&instant.to_rfc3339_opts(SecondsFormat::Micros, false))
        .expect("RFC 3339 output of chrono parses")
}

fn add(instant: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    instant + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// What the scheduler does with an application it is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Deleted: drop pending work and the re-evaluation timer.
    Forget,
    /// `FAILED`, or placed with migration disabled and unchanged: nothing to do.
    Ignore,
    /// New, or changed since it was last scheduled (`kube_controller_triggered` null or
    /// older than `modified`): schedule now.
    Schedule,
    /// Placed and unchanged: make sure a periodic re-evaluation is pending. An existing
    /// timer is kept as is (upstream restarts it on every event, which starves the
    /// periodic re-evaluation of often-updated applications).
    Reevaluate,
}

/// Whether the application was changed since it was last scheduled.
pub fn needs_confirmation(app: &Application) -> bool {
    app.status
        .kube_controller_triggered
        .is_none_or(|kct| app.metadata.modified > kct)
}

/// Admission of an application event. FAILED applications are ignored
/// altogether, including their periodic re-evaluation (upstream keeps rescheduling
/// FAILED applications that were once placed, to no effect).
pub fn admit_application(app: &Application) -> Admission {
    if app.metadata.deleted.is_some() {
        Admission::Forget
    } else if app.status.state == ApplicationState::Failed {
        Admission::Ignore
    } else if needs_confirmation(app) {
        Admission::Schedule
    } else if app.spec.constraints.migration {
        Admission::Reevaluate
    } else {
        Admission::Ignore
    }
}

/// When a scheduling attempt may run: not before the retry backoff after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryGate {
    /// Now.
    Now,
    /// Not before this instant: the application is DEGRADED by a scheduling failure and
    /// its `scheduled_retry` has not come. The caller requeues it for that time
    /// (upstream drops it until the next event).
    At(DateTime<Utc>),
}

/// The retry gate of an application at `now`. A DEGRADED application without
/// `scheduled_retry` (degraded by the application observer, not by the scheduler) is
/// not held back.
pub fn retry_gate(app: &Application, now: DateTime<Utc>) -> RetryGate {
    match (&app.status.state, &app.status.scheduled_retry) {
        (ApplicationState::Degraded, Some(retry)) if retry.to_utc() > now => {
            RetryGate::At(retry.to_utc())
        }
        _ => RetryGate::Now,
    }
}

/// Whether the placement of an application may change now (the migration gates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Run the scheduling algorithm.
    Proceed,
    /// Keep the current placement: the application is placed and `migration: false`, or a
    /// migration back-off (`migration_timeout`) is active. A pending user update is still
    /// released to the application controller ([`Write::Confirm`]).
    Hold,
}

/// The migration gates of an application at `now`.
pub fn scheduling_gate(app: &Application, now: DateTime<Utc>) -> Gate {
    let placed = app.status.scheduled_to.is_some();
    if placed && !app.spec.constraints.migration {
        return Gate::Hold;
    }
    if app.status.migration_timeout > now.timestamp() {
        return Gate::Hold;
    }
    Gate::Proceed
}

/// Whether `status.scheduled_to` designates `cluster`.
pub fn is_scheduled_to(app: &Application, cluster: &Cluster) -> bool {
    app.status.scheduled_to.as_ref().is_some_and(|r| {
        r.kind == "Cluster"
            && r.name == cluster.metadata.name
            && r.namespace == cluster.metadata.namespace
    })
}

/// Whether the application was bound less than `reschedule_after` ago: it then stays on
/// its cluster as long as that cluster still matches (no ranking).
pub fn recently_scheduled(
    app: &Application,
    now: DateTime<Utc>,
    reschedule_after: Duration,
) -> bool {
    app.status
        .scheduled
        .is_some_and(|scheduled| now < add(scheduled.to_utc(), reschedule_after))
}

/// When the next periodic re-evaluation of a placed application is due: when its
/// recently-scheduled window ends if that is in the future, else `reschedule_after`
/// from now.
pub fn next_reevaluation(
    app: &Application,
    now: DateTime<Utc>,
    reschedule_after: Duration,
) -> DateTime<Utc> {
    match app.status.scheduled {
        Some(scheduled) if add(scheduled.to_utc(), reschedule_after) > now => {
            add(scheduled.to_utc(), reschedule_after)
        }
        _ => add(now, reschedule_after),
    }
}

/// A cluster considered for an application: the cluster with the values it inherits
/// from its cloud ([`crate::inheritance::with_inherited_values`]) and its metric outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterCandidate {
    /// The cluster, with inherited labels and metrics (shared with the reflector store
    /// when it inherits nothing).
    pub cluster: Arc<Cluster>,
    /// Its metrics for this pass.
    pub metrics: MetricsOutcome,
}

/// A cloud considered for automatic cluster creation, with its metric outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudCandidate {
    /// The cloud.
    pub cloud: AnyCloud,
    /// Its metrics for this pass.
    pub metrics: MetricsOutcome,
}

/// Where an application goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Bind to this cluster.
    Cluster(ResourceRef),
    /// Create a cluster on this cloud (automatic cluster creation).
    Cloud(ResourceRef),
}

/// The clusters that may receive the application: eligible (ONLINE once the metric
/// outcome is applied, not deleted, same namespace) and satisfying its constraints.
pub fn matching_clusters<'a>(
    app: &Application,
    clusters: &'a [ClusterCandidate],
) -> Vec<&'a ClusterCandidate> {
    let namespace = app.metadata.namespace.as_deref();
    let constraints = &app.spec.constraints.cluster;
    clusters
        .iter()
        .filter(|c| {
            let state = effective_cluster_state(&c.cluster.status, &c.metrics);
            cluster_is_eligible(&c.cluster, state, namespace)
                && cluster_matches(constraints, &c.cluster, c.metrics.values())
        })
        .collect()
}

/// Scores of the clouds an application may create a cluster on: not deleted, the
/// application's namespace or global, satisfying its cluster constraints; ranked by
/// weighted mean if any has metrics (only those), else all score 0.
pub fn cloud_scores(app: &Application, clouds: &[CloudCandidate]) -> Vec<Scored<Placement>> {
    let namespace = app.metadata.namespace.as_deref();
    let constraints = &app.spec.constraints.cluster;
    let matching: Vec<&CloudCandidate> = clouds
        .iter()
        .filter(|c| {
            c.cloud.metadata().deleted.is_none()
                && (!c.cloud.is_namespaced() || c.cloud.namespace() == namespace)
                && cloud_matches_cluster_constraints(
                    constraints,
                    &c.cloud.metadata().labels,
                    c.metrics.values(),
                )
        })
        .collect();
    let with_metrics: Vec<Scored<Placement>> = matching
        .iter()
        .filter_map(|c| {
            c.metrics.values().map(|values| Scored {
                candidate: Placement::Cloud(c.cloud.to_ref()),
                score: weighted_mean(Some(values)),
            })
        })
        .collect();
    if !with_metrics.is_empty() {
        return with_metrics;
    }
    matching
        .iter()
        .map(|c| Scored {
            candidate: Placement::Cloud(c.cloud.to_ref()),
            score: 0.0,
        })
        .collect()
}

/// The scheduling algorithm, without I/O.
///
/// 1. `matching` clusters ([`matching_clusters`]); none and no automatic cluster
///    creation → `NO_SUITABLE_RESOURCE`.
/// 2. Recently scheduled (within `reschedule_after`) and the current cluster still
///    matches → stay.
/// 3. Clusters with fetched metrics are scored `(Σ v·w + s_v·s_w)/(Σ w + s_w)`; only
///    if none has metrics, every matching cluster is scored `s_w × s_v` (clusters with
///    metrics always rank above clusters without).
/// 4. With `auto_cluster_create`, clouds are scored too ([`cloud_scores`]).
/// 5. The best score wins; clusters before clouds at equal score; `chooser` picks among
///    equals. No candidate at all → `NO_SUITABLE_RESOURCE` (upstream crashes).
pub fn select_placement(
    app: &Application,
    clusters: &[ClusterCandidate],
    clouds: &[CloudCandidate],
    now: DateTime<Utc>,
    config: &Config,
    chooser: &dyn Chooser,
) -> Result<Placement> {
    let matching = matching_clusters(app, clusters);
    let auto_create = app.spec.auto_cluster_create;
    if matching.is_empty() && !auto_create {
        return Err(Error::NoSuitableResource(NO_CLUSTER_FOUND.into()));
    }
    if recently_scheduled(app, now, config.reschedule_after)
        && let Some(current) = matching.iter().find(|c| is_scheduled_to(app, &c.cluster))
    {
        return Ok(Placement::Cluster(resource_ref(current.cluster.as_ref())));
    }
    // Candidates are scored by reference: only the chosen one is turned into a
    // `ResourceRef` (this runs over every matching cluster of every decision).
    fn score<'a>(
        app: &Application,
        c: &'a ClusterCandidate,
        metrics: Option<&[MetricValue]>,
        stickiness: f64,
    ) -> Scored<Scoring<'a>> {
        Scored {
            candidate: Scoring::Cluster(&c.cluster),
            score: cluster_score(metrics, is_scheduled_to(app, &c.cluster), stickiness),
        }
    }
    let stickiness = config.stickiness;
    let mut scored: Vec<Scored<Scoring<'_>>> = matching
        .iter()
        .filter_map(|c| {
            c.metrics
                .values()
                .map(|v| score(app, c, Some(v), stickiness))
        })
        .collect();
    if scored.is_empty() {
        scored = matching
            .iter()
            .map(|c| score(app, c, None, stickiness))
            .collect();
    }
    if auto_create {
        scored.extend(cloud_scores(app, clouds).into_iter().map(|s| Scored {
            candidate: Scoring::Cloud(s.candidate),
            score: s.score,
        }));
    }
    let best =
        select_best(&scored, |p| matches!(p, Scoring::Cluster(_)), chooser).ok_or_else(|| {
            Error::NoSuitableResource("No matching Kubernetes cluster or cloud found".into())
        })?;
    Ok(match best {
        Scoring::Cluster(cluster) => Placement::Cluster(resource_ref(cluster)),
        Scoring::Cloud(placement) => placement,
    })
}

/// A candidate of [`select_placement`] while it is scored.
#[derive(Clone)]
enum Scoring<'a> {
    Cluster(&'a Cluster),
    Cloud(Placement),
}

/// What to write once a cluster is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// First placement or migration: `PUT …/binding` (sets `scheduled`,
    /// `kube_controller_triggered`, `scheduled_to`, adds the owner).
    Bind(ResourceRef),
    /// Same cluster, but the application changed since it was last scheduled:
    /// `kube_controller_triggered = now` (releases the update to the application
    /// controller).
    Confirm,
    /// Same cluster, nothing changed: silent.
    Nothing,
}

/// The write for the decision `cluster`.
pub fn decision_write(app: &Application, cluster: &ResourceRef) -> Write {
    let same = app.status.scheduled_to.as_ref().is_some_and(|current| {
        current.kind == cluster.kind
            && current.name == cluster.name
            && current.namespace == cluster.namespace
    });
    if !same {
        Write::Bind(cluster.clone())
    } else if needs_confirmation(app) {
        Write::Confirm
    } else {
        Write::Nothing
    }
}

/// The write when the placement is held ([`Gate::Hold`]): confirm a pending update of a
/// placed application, else nothing.
pub fn hold_write(app: &Application) -> Write {
    if app.status.scheduled_to.is_some() && needs_confirmation(app) {
        Write::Confirm
    } else {
        Write::Nothing
    }
}

/// The status after [`Write::Confirm`] at `now`: `kube_controller_triggered` is now, or
/// `metadata.modified` if that is later (the API server's clock is ahead of ours), so
/// that the update is released whatever the clock skew.
pub fn confirmed_status(app: &Application, now: DateTime<Utc>) -> ApplicationStatus {
    let mut status = app.status.clone();
    status.kube_controller_triggered = Some(timestamp(now).max(app.metadata.modified));
    status
}

/// The status after a scheduling failure at `now`: `reason` set; retries left
/// (`status.retries`, initialised from `spec.backoff_limit`) or an infinite limit (-1)
/// → DEGRADED with `scheduled_retry = now + backoff_delay × backoff` seconds (and one
/// retry less when the limit is finite); otherwise FAILED.
pub fn failure_status(app: &Application, error: &Error, now: DateTime<Utc>) -> ApplicationStatus {
    let mut status = app.status.clone();
    let limit = app.spec.backoff_limit;
    let retries = status.retries.unwrap_or(limit);
    status.reason = Some(error.reason());
    if retries > 0 || limit == -1 {
        status.state = ApplicationState::Degraded;
        status.retries = Some(if limit == -1 { retries } else { retries - 1 });
        let delay = app
            .spec
            .backoff_delay
            .max(0)
            .saturating_mul(app.spec.backoff.max(0));
        status.scheduled_retry = Some(timestamp(add(
            now,
            Duration::from_secs(delay.unsigned_abs()),
        )));
    } else {
        status.state = ApplicationState::Failed;
        status.retries = Some(retries);
    }
    status
}

/// The decision for an application waiting for an automatically created cluster
/// (`status.auto_cluster_create_started`): the cluster once it exists, is not deleted
/// and is ONLINE, else [`Error::WaitingOnCluster`]. `None` if the application waits for
/// nothing.
pub fn waiting_cluster<'a>(
    app: &Application,
    clusters: impl IntoIterator<Item = &'a Cluster>,
) -> Option<Result<ResourceRef>> {
    let name = app.status.auto_cluster_create_started.as_ref()?;
    let ready = clusters.into_iter().find(|c| {
        &c.metadata.name == name
            && c.metadata.namespace == app.metadata.namespace
            && c.metadata.deleted.is_none()
            && c.status.state == ClusterState::Online
    });
    Some(match ready {
        Some(c) => Ok(resource_ref(c)),
        None => Err(Error::WaitingOnCluster(name.clone())),
    })
}

/// The Cluster to create on a cloud for an application (automatic cluster creation):
/// inherits the cloud's labels and metrics, carries the application's label and metric
/// constraints as cloud constraints, and is marked `auto_generated`.
pub fn auto_cluster(app: &Application, name: &str, tosca: Map<String, Value>) -> Cluster {
    let mut metadata = Metadata::named(name);
    metadata.namespace = app.metadata.namespace.clone();
    metadata.inherit_labels = true;
    let mut spec = ClusterSpec::with_kubeconfig(Map::new());
    spec.tosca = tosca;
    spec.inherit_metrics = true;
    spec.auto_generated = true;
    spec.constraints = ClusterCloudConstraints {
        cloud: CloudConstraints {
            labels: app.spec.constraints.cluster.labels.clone(),
            metrics: app.spec.constraints.cluster.metrics.clone(),
        },
    };
    Cluster::new(metadata, spec)
}

/// The status of an application once a cluster is being created for it.
pub fn waiting_for_cluster_status(app: &Application, cluster_name: &str) -> ApplicationStatus {
    let mut status = app.status.clone();
    status.auto_cluster_create_started = Some(cluster_name.to_string());
    status.state = ApplicationState::WaitingForClusterCreation;
    status
}

/// Whether an automatically created cluster is no longer used: no application of its
/// namespace is scheduled to it, runs on it or waits for it (upstream only looks at the
/// first application of the list).
pub fn auto_cluster_unused(cluster: &Cluster, apps: &[Application]) -> bool {
    let refers = |r: &Option<ResourceRef>| {
        r.as_ref().is_some_and(|r| {
            r.kind == "Cluster"
                && r.name == cluster.metadata.name
                && r.namespace == cluster.metadata.namespace
        })
    };
    !apps.iter().any(|app| {
        refers(&app.status.scheduled_to)
            || refers(&app.status.running_on)
            || (app.metadata.namespace == cluster.metadata.namespace
                && app.status.auto_cluster_create_started.as_deref()
                    == Some(cluster.metadata.name.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use krake_crds::OrderedMap;
    use krake_crds::core::{Reason, ReasonCode};

    use super::*;
    use crate::metrics::MetricValue;
    use crate::model::fixtures::{
        app, cloud, cluster, global_cloud, labels, metric_constraints, ts,
    };

    const NOW: &str = "2026-01-01T12:00:00+00:00";

    fn now() -> DateTime<Utc> {
        ts(NOW).to_utc()
    }

    fn at(offset_secs: i64) -> Timestamp {
        timestamp(now() + chrono::Duration::seconds(offset_secs))
    }

    fn fetched(values: &[(&str, f64, f64)]) -> MetricsOutcome {
        MetricsOutcome::Fetched(
            values
                .iter()
                .map(|(name, weight, value)| MetricValue {
                    name: name.to_string(),
                    weight: *weight,
                    value: *value,
                })
                .collect(),
        )
    }

    fn failed() -> MetricsOutcome {
        MetricsOutcome::Failed(
            [(
                "m",
                Reason {
                    code: ReasonCode::UnreachableMetricsProvider,
                    message: "down".into(),
                },
            )]
            .into_iter()
            .collect::<OrderedMap<_>>(),
        )
    }

    fn candidate(name: &str, metrics: MetricsOutcome) -> ClusterCandidate {
        ClusterCandidate {
            cluster: Arc::new(cluster(name, &[])),
            metrics,
        }
    }

    fn placed(app: &mut Application, cluster_name: &str, scheduled: Timestamp) {
        let c = cluster(cluster_name, &[]);
        app.status.scheduled_to = Some(resource_ref(&c));
        app.status.scheduled = Some(scheduled);
        app.status.kube_controller_triggered = Some(scheduled);
        app.metadata.modified = scheduled;
    }

    fn cluster_name(p: &Placement) -> &str {
        match p {
            Placement::Cluster(r) => &r.name,
            Placement::Cloud(r) => panic!("expected a cluster, got cloud {}", r.name),
        }
    }

    const FIRST: fn(usize) -> usize = |_| 0;

    #[test]
    fn admission_table() {
        let fresh = app("a");
        let mut deleted = app("a");
        deleted.metadata.deleted = Some(at(0));
        let mut failed_app = app("a");
        failed_app.status.state = ApplicationState::Failed;
        let mut scheduled = app("a");
        placed(&mut scheduled, "c", at(-10));
        let mut updated = scheduled.clone();
        updated.metadata.modified = at(-5);
        let mut pinned = scheduled.clone();
        pinned.spec.constraints.migration = false;
        let mut pinned_updated = pinned.clone();
        pinned_updated.metadata.modified = at(-5);
        let mut failed_placed = scheduled.clone();
        failed_placed.status.state = ApplicationState::Failed;
        let cases = [
            (fresh, Admission::Schedule),
            (deleted, Admission::Forget),
            (failed_app, Admission::Ignore),
            (scheduled, Admission::Reevaluate),
            (updated, Admission::Schedule),
            (pinned, Admission::Ignore),
            (pinned_updated, Admission::Schedule),
            (failed_placed, Admission::Ignore),
        ];
        for (i, (a, expected)) in cases.into_iter().enumerate() {
            assert_eq!(admit_application(&a), expected, "case {i}");
        }
    }

    #[test]
    fn retry_gate_table() {
        let mut degraded_future = app("a");
        degraded_future.status.state = ApplicationState::Degraded;
        degraded_future.status.scheduled_retry = Some(at(5));
        let mut degraded_past = degraded_future.clone();
        degraded_past.status.scheduled_retry = Some(at(-1));
        let mut degraded_now = degraded_future.clone();
        degraded_now.status.scheduled_retry = Some(at(0));
        let mut degraded_by_observer = degraded_future.clone();
        degraded_by_observer.status.scheduled_retry = None;
        let mut running_with_stale_retry = degraded_future.clone();
        running_with_stale_retry.status.state = ApplicationState::Running;
        let cases = [
            (app("a"), RetryGate::Now),
            (degraded_future, RetryGate::At(at(5).to_utc())),
            (degraded_past, RetryGate::Now),
            (degraded_now, RetryGate::Now),
            (degraded_by_observer, RetryGate::Now),
            (running_with_stale_retry, RetryGate::Now),
        ];
        for (i, (a, expected)) in cases.into_iter().enumerate() {
            assert_eq!(retry_gate(&a, now()), expected, "case {i}");
        }
    }

    #[test]
    fn scheduling_gate_table() {
        let mut placed_pinned = app("a");
        placed(&mut placed_pinned, "c", at(-100));
        placed_pinned.spec.constraints.migration = false;
        let mut unplaced_pinned = app("a");
        unplaced_pinned.spec.constraints.migration = false;
        let mut backoff = app("a");
        placed(&mut backoff, "c", at(-100));
        backoff.status.migration_timeout = now().timestamp() + 30;
        let mut expired_backoff = backoff.clone();
        expired_backoff.status.migration_timeout = now().timestamp();
        let cases = [
            (app("a"), Gate::Proceed),
            (placed_pinned, Gate::Hold),
            (unplaced_pinned, Gate::Proceed),
            (backoff, Gate::Hold),
            (expired_backoff, Gate::Proceed),
        ];
        for (i, (a, expected)) in cases.into_iter().enumerate() {
            assert_eq!(scheduling_gate(&a, now()), expected, "case {i}");
        }
    }

    #[test]
    fn hold_confirms_pending_updates_only() {
        let mut a = app("a");
        placed(&mut a, "c", at(-100));
        a.spec.constraints.migration = false;
        assert_eq!(hold_write(&a), Write::Nothing);
        a.metadata.modified = at(-1);
        assert_eq!(hold_write(&a), Write::Confirm);
        assert_eq!(hold_write(&app("unplaced")), Write::Nothing);
    }

    #[test]
    fn recently_scheduled_and_next_reevaluation() {
        let r = Duration::from_secs(60);
        let mut a = app("a");
        assert!(!recently_scheduled(&a, now(), r));
        assert_eq!(
            next_reevaluation(&a, now(), r),
            now() + chrono::Duration::seconds(60)
        );
        placed(&mut a, "c", at(-59));
        assert!(recently_scheduled(&a, now(), r));
        assert_eq!(next_reevaluation(&a, now(), r), at(1).to_utc());
        placed(&mut a, "c", at(-60));
        assert!(!recently_scheduled(&a, now(), r));
        assert_eq!(next_reevaluation(&a, now(), r), at(60).to_utc());
    }

    #[test]
    fn selection_filters_candidates() {
        let config = Config::default();
        let mut offline = candidate("offline", MetricsOutcome::NoMetrics);
        Arc::make_mut(&mut offline.cluster).status.state = ClusterState::Offline;
        let mut deleted = candidate("deleted", MetricsOutcome::NoMetrics);
        Arc::make_mut(&mut deleted.cluster).metadata.deleted = Some(at(-1));
        let mut other_ns = candidate("other-ns", MetricsOutcome::NoMetrics);
        Arc::make_mut(&mut other_ns.cluster).metadata.namespace = Some("other".into());
        let failing = candidate("failing", failed());
        let mut recovered = candidate("recovered", fetched(&[("m", 1.0, 0.1)]));
        Arc::make_mut(&mut recovered.cluster).status.state = ClusterState::FailingMetrics;
        let mut labelled = candidate("labelled", MetricsOutcome::NoMetrics);
        Arc::make_mut(&mut labelled.cluster).metadata.labels =
            crate::model::fixtures::meta("x", None, &[("location", "DE")]).labels;

        // Only the recovered FAILING_METRICS cluster is eligible among these.
        let clusters = [
            offline.clone(),
            deleted.clone(),
            other_ns.clone(),
            failing.clone(),
            recovered.clone(),
        ];
        let got = select_placement(&app("a"), &clusters, &[], now(), &config, &FIRST).unwrap();
        assert_eq!(cluster_name(&got), "recovered");

        // Nothing eligible → NO_SUITABLE_RESOURCE.
        let clusters = [offline, deleted, other_ns, failing.clone()];
        let err = select_placement(&app("a"), &clusters, &[], now(), &config, &FIRST).unwrap_err();
        assert_eq!(err.reason().code, ReasonCode::NoSuitableResource);
        assert_eq!(err.to_string(), NO_CLUSTER_FOUND);

        // A metric-less cluster is chosen over one whose metrics fail.
        let clusters = [failing, candidate("plain", MetricsOutcome::NoMetrics)];
        let got = select_placement(&app("a"), &clusters, &[], now(), &config, &FIRST).unwrap();
        assert_eq!(cluster_name(&got), "plain");

        // Label constraints.
        let mut a = app("a");
        a.spec.constraints.cluster.labels = labels(&["location = DE"]);
        let clusters = [candidate("plain", MetricsOutcome::NoMetrics), labelled];
        let got = select_placement(&a, &clusters, &[], now(), &config, &FIRST).unwrap();
        assert_eq!(cluster_name(&got), "labelled");

        // Metric constraints against a cluster without metrics: no match, no crash.
        let mut a = app("a");
        a.spec.constraints.cluster.metrics = metric_constraints(&["m > 0.5"]);
        let clusters = [
            candidate("plain", MetricsOutcome::NoMetrics),
            candidate("low", fetched(&[("m", 1.0, 0.4)])),
            candidate("high", fetched(&[("m", 1.0, 0.6)])),
        ];
        let got = select_placement(&a, &clusters, &[], now(), &config, &FIRST).unwrap();
        assert_eq!(cluster_name(&got), "high");
        let err = select_placement(&a, &clusters[..2], &[], now(), &config, &FIRST).unwrap_err();
        assert_eq!(err.reason().code, ReasonCode::NoSuitableResource);

        // Custom resources.
        let mut a = app("a");
        a.spec.constraints.cluster.custom_resources = vec!["foos.x.io".into()];
        let mut with_crd = candidate("crd", MetricsOutcome::NoMetrics);
        Arc::make_mut(&mut with_crd.cluster).spec.custom_resources = vec!["foos.x.io".into()];
        let clusters = [candidate("plain", MetricsOutcome::NoMetrics), with_crd];
        let got = select_placement(&a, &clusters, &[], now(), &config, &FIRST).unwrap();
        assert_eq!(cluster_name(&got), "crd");
    }

    #[test]
    fn ranking_table() {
        let config = Config::default();
        let old = at(-3600);
        struct Case {
            clusters: Vec<ClusterCandidate>,
            current: Option<&'static str>,
            scheduled: Timestamp,
            chooser: fn(usize) -> usize,
            expected: &'static str,
        }
        let cases = [
            // Metrics beat no metrics, even when the metric-less one is current.
            Case {
                clusters: vec![
                    candidate("plain", MetricsOutcome::NoMetrics),
                    candidate("measured", fetched(&[("m", 1.0, 0.01)])),
                ],
                current: Some("plain"),
                scheduled: old,
                chooser: FIRST,
                expected: "measured",
            },
            // Better metrics win.
            Case {
                clusters: vec![
                    candidate("low", fetched(&[("m", 1.0, 0.2)])),
                    candidate("high", fetched(&[("m", 1.0, 0.9)])),
                ],
                current: None,
                scheduled: old,
                chooser: FIRST,
                expected: "high",
            },
            // Stickiness keeps close scores: (0.75 + 0.1)/1.1 = 0.7727 > 0.77.
            Case {
                clusters: vec![
                    candidate("current", fetched(&[("m", 1.0, 0.75)])),
                    candidate("other", fetched(&[("m", 1.0, 0.77)])),
                ],
                current: Some("current"),
                scheduled: old,
                chooser: FIRST,
                expected: "current",
            },
            // ... but not a clearly better cluster: 0.78 > 0.7727.
            Case {
                clusters: vec![
                    candidate("current", fetched(&[("m", 1.0, 0.75)])),
                    candidate("other", fetched(&[("m", 1.0, 0.78)])),
                ],
                current: Some("current"),
                scheduled: old,
                chooser: FIRST,
                expected: "other",
            },
            // Stickiness decides among metric-less clusters.
            Case {
                clusters: vec![
                    candidate("a", MetricsOutcome::NoMetrics),
                    candidate("b", MetricsOutcome::NoMetrics),
                ],
                current: Some("b"),
                scheduled: old,
                chooser: FIRST,
                expected: "b",
            },
            // Random tie-break among equal metric-less clusters.
            Case {
                clusters: vec![
                    candidate("a", MetricsOutcome::NoMetrics),
                    candidate("b", MetricsOutcome::NoMetrics),
                    candidate("c", MetricsOutcome::NoMetrics),
                ],
                current: None,
                scheduled: old,
                chooser: |n| n - 1,
                expected: "c",
            },
            // Recently scheduled: stays although another cluster scores better.
            Case {
                clusters: vec![
                    candidate("current", fetched(&[("m", 1.0, 0.1)])),
                    candidate("other", fetched(&[("m", 1.0, 0.9)])),
                ],
                current: Some("current"),
                scheduled: at(-30),
                chooser: FIRST,
                expected: "current",
            },
            // Recently scheduled, but the current cluster stopped matching: moves now.
            Case {
                clusters: vec![candidate("other", fetched(&[("m", 1.0, 0.1)])), {
                    let mut c = candidate("current", fetched(&[("m", 1.0, 0.9)]));
                    Arc::make_mut(&mut c.cluster).status.state = ClusterState::Offline;
                    c
                }],
                current: Some("current"),
                scheduled: at(-30),
                chooser: FIRST,
                expected: "other",
            },
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let mut a = app("a");
            if let Some(current) = case.current {
                placed(&mut a, current, case.scheduled);
            }
            let got = select_placement(&a, &case.clusters, &[], now(), &config, &case.chooser)
                .unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(cluster_name(&got), case.expected, "case {i}");
        }
    }

    #[test]
    fn clouds_compete_only_with_automatic_cluster_creation() {
        let config = Config::default();
        let clouds = [
            CloudCandidate {
                cloud: AnyCloud::Namespaced(cloud("mine", &[], vec![])),
                metrics: fetched(&[("m", 1.0, 0.9)]),
            },
            CloudCandidate {
                cloud: AnyCloud::Global(global_cloud("global", &[], vec![])),
                metrics: fetched(&[("m", 1.0, 0.5)]),
            },
        ];
        let clusters = [candidate("c", fetched(&[("m", 1.0, 0.5)]))];

        let got = select_placement(&app("a"), &clusters, &clouds, now(), &config, &FIRST).unwrap();
        assert_eq!(cluster_name(&got), "c");

        let mut auto = app("a");
        auto.spec.auto_cluster_create = true;
        let got = select_placement(&auto, &clusters, &clouds, now(), &config, &FIRST).unwrap();
        assert_eq!(got, Placement::Cloud(clouds[0].cloud.to_ref()));

        // Equal scores: the cluster wins.
        let equal = [candidate("c", fetched(&[("m", 1.0, 0.9)]))];
        let got =
            select_placement(&auto, &equal, &clouds, now(), &config, &|n: usize| n - 1).unwrap();
        assert_eq!(cluster_name(&got), "c");

        // No cluster, no cloud: an error, not a crash.
        let err = select_placement(&auto, &[], &[], now(), &config, &FIRST).unwrap_err();
        assert_eq!(err.reason().code, ReasonCode::NoSuitableResource);

        // Clouds of other namespaces are never used; deleted clouds neither.
        let mut foreign = cloud("foreign", &[], vec![]);
        foreign.metadata.namespace = Some("other".into());
        let mut gone = cloud("gone", &[], vec![]);
        gone.metadata.deleted = Some(at(-1));
        let scores = cloud_scores(
            &auto,
            &[
                CloudCandidate {
                    cloud: AnyCloud::Namespaced(foreign),
                    metrics: MetricsOutcome::NoMetrics,
                },
                CloudCandidate {
                    cloud: AnyCloud::Namespaced(gone),
                    metrics: MetricsOutcome::NoMetrics,
                },
                CloudCandidate {
                    cloud: AnyCloud::Global(global_cloud("g", &[], vec![])),
                    metrics: MetricsOutcome::NoMetrics,
                },
            ],
        );
        assert_eq!(scores.len(), 1);
        assert_eq!(scores[0].score, 0.0);

        // Clouds with metrics only, when some have metrics; metric constraints need
        // fetched metrics; custom resources are never satisfied by a cloud.
        let mut constrained = auto.clone();
        constrained.spec.constraints.cluster.metrics = metric_constraints(&["m > 0.6"]);
        let mixed = [
            clouds[0].clone(),
            clouds[1].clone(),
            CloudCandidate {
                cloud: AnyCloud::Global(global_cloud("bare", &[], vec![])),
                metrics: MetricsOutcome::NoMetrics,
            },
        ];
        let scores = cloud_scores(&constrained, &mixed);
        assert_eq!(scores.len(), 1);
        assert_eq!(
            scores[0].candidate,
            Placement::Cloud(clouds[0].cloud.to_ref())
        );
        assert_eq!(cloud_scores(&auto, &mixed).len(), 2);
        let mut with_crd = auto.clone();
        with_crd.spec.constraints.cluster.custom_resources = vec!["foos.x.io".into()];
        assert!(cloud_scores(&with_crd, &mixed).is_empty());
    }

    #[test]
    fn decision_writes() {
        let c = resource_ref(&cluster("c", &[]));
        let d = resource_ref(&cluster("d", &[]));
        let unplaced = app("a");
        assert_eq!(decision_write(&unplaced, &c), Write::Bind(c.clone()));
        let mut a = app("a");
        placed(&mut a, "c", at(-100));
        assert_eq!(decision_write(&a, &c), Write::Nothing);
        assert_eq!(decision_write(&a, &d), Write::Bind(d.clone()));
        a.metadata.modified = at(-1);
        assert_eq!(decision_write(&a, &c), Write::Confirm);
        let confirmed = confirmed_status(&a, now());
        assert_eq!(confirmed.kube_controller_triggered, Some(timestamp(now())));
        assert_eq!(confirmed.scheduled, a.status.scheduled);
        // The API server's clock is ahead: the update is released all the same.
        a.metadata.modified = at(5);
        let confirmed = confirmed_status(&a, now());
        assert_eq!(confirmed.kube_controller_triggered, Some(at(5)));
        a.status = confirmed;
        assert_eq!(decision_write(&a, &c), Write::Nothing);
    }

    #[test]
    fn failure_transition_table() {
        let error = Error::NoSuitableResource(NO_CLUSTER_FOUND.into());
        // (backoff_limit, status.retries, backoff, backoff_delay) → (state, retries, retry delay)
        type Case = (
            i64,
            Option<i64>,
            i64,
            i64,
            ApplicationState,
            i64,
            Option<i64>,
        );
        let cases: [Case; 7] = [
            (-1, None, 1, 1, ApplicationState::Degraded, -1, Some(1)),
            (-1, Some(-1), 2, 5, ApplicationState::Degraded, -1, Some(10)),
            (1, None, 1, 1, ApplicationState::Degraded, 0, Some(1)),
            (1, Some(0), 1, 1, ApplicationState::Failed, 0, None),
            (3, Some(2), 1, 3, ApplicationState::Degraded, 1, Some(3)),
            (0, None, 1, 1, ApplicationState::Failed, 0, None),
            (3, Some(0), 1, 1, ApplicationState::Failed, 0, None),
        ];
        for (i, (limit, retries, backoff, delay, state, left, retry_in)) in
            cases.into_iter().enumerate()
        {
            let mut a = app("a");
            a.spec.backoff_limit = limit;
            a.spec.backoff = backoff;
            a.spec.backoff_delay = delay;
            a.status.retries = retries;
            let status = failure_status(&a, &error, now());
            assert_eq!(status.state, state, "case {i}");
            assert_eq!(status.retries, Some(left), "case {i}");
            assert_eq!(status.scheduled_retry, retry_in.map(at), "case {i}");
            let reason = status.reason.expect("reason set");
            assert_eq!(reason.code, ReasonCode::NoSuitableResource);
            assert_eq!(reason.message, NO_CLUSTER_FOUND);
        }
    }

    #[test]
    fn degraded_then_failed_with_backoff_limit_one() {
        let error = Error::NoSuitableResource(NO_CLUSTER_FOUND.into());
        let mut a = app("a");
        a.spec.backoff_limit = 1;
        a.status = failure_status(&a, &error, now());
        assert_eq!(a.status.state, ApplicationState::Degraded);
        assert_eq!(retry_gate(&a, now()), RetryGate::At(at(1).to_utc()));
        assert_eq!(retry_gate(&a, at(1).to_utc()), RetryGate::Now);
        a.status = failure_status(&a, &error, at(1).to_utc());
        assert_eq!(a.status.state, ApplicationState::Failed);
        assert_eq!(admit_application(&a), Admission::Ignore);
    }

    #[test]
    fn automatic_cluster_creation_helpers() {
        let mut a = app("a");
        assert!(waiting_cluster(&a, []).is_none());
        a.status = waiting_for_cluster_status(&a, "cluster-1234");
        assert_eq!(a.status.state, ApplicationState::WaitingForClusterCreation);
        let mut creating = cluster("cluster-1234", &[]);
        creating.status.state = ClusterState::Creating;
        assert!(matches!(
            waiting_cluster(&a, [&creating]),
            Some(Err(Error::WaitingOnCluster(_)))
        ));
        let mut online = creating.clone();
        online.status.state = ClusterState::Online;
        assert_eq!(
            waiting_cluster(&a, [&online]).unwrap().unwrap(),
            resource_ref(&online)
        );

        a.spec.constraints.cluster.labels = labels(&["location = DE"]);
        a.spec.constraints.cluster.metrics = metric_constraints(&["m > 0.5"]);
        let tosca = serde_json::json!({"tosca_definitions_version": "x"});
        let c = auto_cluster(&a, "cluster-1", tosca.as_object().cloned().unwrap());
        assert_eq!(c.metadata.namespace.as_deref(), Some("ns"));
        assert!(c.metadata.inherit_labels && c.spec.inherit_metrics && c.spec.auto_generated);
        assert!(c.spec.kubeconfig.is_empty());
        assert_eq!(
            c.spec.constraints.cloud.labels,
            a.spec.constraints.cluster.labels
        );
        assert_eq!(
            c.spec.constraints.cloud.metrics,
            a.spec.constraints.cluster.metrics
        );
        assert_eq!(
            (c.spec.backoff, c.spec.backoff_delay, c.spec.backoff_limit),
            (1, 1, -1)
        );

        // Unused unless some application (not only the first) uses it.
        let mut user = app("b");
        assert!(auto_cluster_unused(&online, &[app("x"), user.clone()]));
        user.status.scheduled_to = Some(resource_ref(&online));
        assert!(!auto_cluster_unused(&online, &[app("x"), user.clone()]));
        user.status.scheduled_to = None;
        user.status.running_on = Some(resource_ref(&online));
        assert!(!auto_cluster_unused(&online, &[app("x"), user]));
        assert!(!auto_cluster_unused(&online, &[a]));
    }
}
