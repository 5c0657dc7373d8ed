//! Decisions of the cluster handler: Clusters to be created are bound to a Cloud or
//! GlobalCloud.

use krake_crds::ResourceRef;
use krake_crds::kubernetes::{Cluster, ClusterState, ClusterStatus};

use crate::application::CloudCandidate;
use crate::error::{Error, Result};
use crate::matching::cloud_matches;
use crate::scoring::{Chooser, Scored, select_best, weighted_mean};

/// Message of the `NO_SUITABLE_RESOURCE` reason when no cloud matches.
pub const NO_CLOUD_FOUND: &str = "No matching cloud found";

/// Whether a cluster waits for a cloud: not deleted, no kubeconfig (it is to be created
/// by the infrastructure controller), not FAILED, not bound yet.
pub fn cluster_needs_cloud(cluster: &Cluster) -> bool {
    cluster.metadata.deleted.is_none()
        && cluster.spec.kubeconfig.is_empty()
        && cluster.status.state != ClusterState::Failed
        && cluster.status.scheduled_to.is_none()
}

/// Choose among one group of clouds (already restricted to the right scope).
fn select_among(
    cluster: &Cluster,
    clouds: &[&CloudCandidate],
    chooser: &dyn Chooser,
) -> Option<ResourceRef> {
    let constraints = &cluster.spec.constraints.cloud;
    let matching: Vec<&&CloudCandidate> = clouds
        .iter()
        .filter(|c| {
            c.cloud.metadata().deleted.is_none()
                && cloud_matches(constraints, &c.cloud.metadata().labels, c.metrics.values())
        })
        .collect();
    let mut scored: Vec<Scored<ResourceRef>> = matching
        .iter()
        .filter_map(|c| {
            c.metrics.values().map(|v| Scored {
                candidate: c.cloud.to_ref(),
                score: weighted_mean(Some(v)),
            })
        })
        .collect();
    if scored.is_empty() {
        scored = matching
            .iter()
            .map(|c| Scored {
                candidate: c.cloud.to_ref(),
                score: 0.0,
            })
            .collect();
    }
    select_best(&scored, |_| true, chooser)
}

/// The cloud a cluster is created on: among the namespaced Clouds of the cluster's
/// namespace first, then among the GlobalClouds. Deleted clouds and clouds not
/// satisfying `spec.constraints.cloud` are skipped; clouds with fetched metrics are
/// ranked by weighted mean and preferred over clouds without; `chooser` breaks ties.
/// None → `NO_SUITABLE_RESOURCE`.
pub fn select_cloud(
    cluster: &Cluster,
    clouds: &[CloudCandidate],
    chooser: &dyn Chooser,
) -> Result<ResourceRef> {
    let namespace = cluster.metadata.namespace.as_deref();
    let namespaced: Vec<&CloudCandidate> = clouds
        .iter()
        .filter(|c| c.cloud.is_namespaced() && c.cloud.namespace() == namespace)
        .collect();
    let global: Vec<&CloudCandidate> = clouds.iter().filter(|c| !c.cloud.is_namespaced()).collect();
    select_among(cluster, &namespaced, chooser)
        .or_else(|| select_among(cluster, &global, chooser))
        .ok_or_else(|| Error::NoSuitableResource(NO_CLOUD_FOUND.into()))
}

/// The status of a cluster for which no cloud could be chosen: FAILED with the reason.
pub fn cluster_failure_status(cluster: &Cluster, error: &Error) -> ClusterStatus {
    let mut status = cluster.status.clone();
    status.state = ClusterState::Failed;
    status.reason = Some(error.reason());
    status
}

#[cfg(test)]
mod tests {
    use krake_crds::core::ReasonCode;
    use krake_crds::kubernetes::CloudConstraints;

    use super::*;
    use crate::metrics::{MetricValue, MetricsOutcome};
    use crate::model::AnyCloud;
    use crate::model::fixtures::{
        cloud, cluster, global_cloud, kubeconfig, labels, metric_constraints,
    };

    fn to_create(name: &str) -> Cluster {
        let mut c = cluster(name, &[]);
        c.spec.kubeconfig.clear();
        c.status.state = ClusterState::Pending;
        c
    }

    fn fetched(value: f64) -> MetricsOutcome {
        MetricsOutcome::Fetched(vec![MetricValue {
            name: "m".into(),
            weight: 1.0,
            value,
        }])
    }

    fn ns(name: &str, labels: &[(&str, &str)], metrics: MetricsOutcome) -> CloudCandidate {
        CloudCandidate {
            cloud: AnyCloud::Namespaced(cloud(name, labels, vec![])),
            metrics,
        }
    }

    fn global(name: &str, labels: &[(&str, &str)], metrics: MetricsOutcome) -> CloudCandidate {
        CloudCandidate {
            cloud: AnyCloud::Global(global_cloud(name, labels, vec![])),
            metrics,
        }
    }

    const FIRST: fn(usize) -> usize = |_| 0;

    #[test]
    fn admission_table() {
        let mut deleted = to_create("d");
        deleted.metadata.deleted = Some(krake_crds::Timestamp::now());
        let mut registered = to_create("r");
        registered.spec.kubeconfig = kubeconfig();
        let mut failed = to_create("f");
        failed.status.state = ClusterState::Failed;
        let mut bound = to_create("b");
        bound.status.scheduled_to = Some(AnyCloud::Global(global_cloud("g", &[], vec![])).to_ref());
        for (c, expected) in [
            (to_create("c"), true),
            (deleted, false),
            (registered, false),
            (failed, false),
            (bound, false),
        ] {
            assert_eq!(cluster_needs_cloud(&c), expected, "{}", c.metadata.name);
        }
    }

    #[test]
    fn selection_table() {
        let mut foreign = ns("foreign", &[], MetricsOutcome::NoMetrics);
        if let AnyCloud::Namespaced(c) = &mut foreign.cloud {
            c.metadata.namespace = Some("other".into());
        }
        let mut deleted = ns("deleted", &[], fetched(1.0));
        if let AnyCloud::Namespaced(c) = &mut deleted.cloud {
            c.metadata.deleted = Some(krake_crds::Timestamp::now());
        }
        let failing = MetricsOutcome::Failed(
            [(
                "m",
                krake_crds::core::Reason {
                    code: ReasonCode::UnknownMetric,
                    message: "x".into(),
                },
            )]
            .into_iter()
            .collect(),
        );
        struct Case {
            clouds: Vec<CloudCandidate>,
            constraints: CloudConstraints,
            chooser: fn(usize) -> usize,
            expected: Option<&'static str>,
        }
        let none = CloudConstraints::default;
        let cases = [
            // Namespaced clouds first, even if a global cloud scores better.
            Case {
                clouds: vec![global("g", &[], fetched(1.0)), ns("n", &[], fetched(0.1))],
                constraints: none(),
                chooser: FIRST,
                expected: Some("n"),
            },
            // Global clouds when no namespaced cloud matches.
            Case {
                clouds: vec![
                    global("g", &[("location", "DE")], MetricsOutcome::NoMetrics),
                    ns("n", &[("location", "IT")], MetricsOutcome::NoMetrics),
                ],
                constraints: CloudConstraints {
                    labels: labels(&["location = DE"]),
                    metrics: None,
                },
                chooser: FIRST,
                expected: Some("g"),
            },
            // Other namespaces and deleted clouds are never used.
            Case {
                clouds: vec![
                    foreign,
                    deleted,
                    global("g", &[], MetricsOutcome::NoMetrics),
                ],
                constraints: none(),
                chooser: FIRST,
                expected: Some("g"),
            },
            // Clouds with metrics preferred, best weighted mean wins.
            Case {
                clouds: vec![
                    ns("plain", &[], MetricsOutcome::NoMetrics),
                    ns("low", &[], fetched(0.2)),
                    ns("high", &[], fetched(0.8)),
                    ns("failing", &[], failing.clone()),
                ],
                constraints: none(),
                chooser: FIRST,
                expected: Some("high"),
            },
            // Without metrics every matching cloud scores 0: random pick.
            Case {
                clouds: vec![
                    ns("a", &[], MetricsOutcome::NoMetrics),
                    ns("b", &[], failing),
                ],
                constraints: none(),
                chooser: |n| n - 1,
                expected: Some("b"),
            },
            // Metric constraints need fetched metrics (no crash).
            Case {
                clouds: vec![
                    ns("plain", &[], MetricsOutcome::NoMetrics),
                    ns("low", &[], fetched(0.2)),
                ],
                constraints: CloudConstraints {
                    labels: None,
                    metrics: metric_constraints(&["m > 0.5"]),
                },
                chooser: FIRST,
                expected: None,
            },
            Case {
                clouds: vec![],
                constraints: none(),
                chooser: FIRST,
                expected: None,
            },
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let mut c = to_create("c");
            c.spec.constraints.cloud = case.constraints;
            let got = select_cloud(&c, &case.clouds, &case.chooser);
            match case.expected {
                Some(name) => assert_eq!(got.unwrap().name, name, "case {i}"),
                None => {
                    let err = got.expect_err("no cloud");
                    assert_eq!(err.reason().code, ReasonCode::NoSuitableResource);
                    assert_eq!(err.to_string(), NO_CLOUD_FOUND);
                }
            }
        }
    }

    #[test]
    fn failure_marks_the_cluster_failed() {
        let c = to_create("c");
        let status = cluster_failure_status(&c, &Error::NoSuitableResource(NO_CLOUD_FOUND.into()));
        assert_eq!(status.state, ClusterState::Failed);
        assert_eq!(status.reason.unwrap().code, ReasonCode::NoSuitableResource);
    }
}
