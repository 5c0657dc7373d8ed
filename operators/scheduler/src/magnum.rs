//! Decisions of the Magnum handler: MagnumClusters are bound to OpenStack Projects.

use krake_crds::openstack::{MagnumCluster, MagnumClusterState, MagnumClusterStatus, Project};

use crate::error::{Error, Result};
use crate::matching::project_matches;
use crate::metrics::MetricsOutcome;
use crate::scoring::{Chooser, Scored, select_best, weighted_mean};

/// Message of the `NO_SUITABLE_RESOURCE` reason when no project matches.
pub const NO_PROJECT_FOUND: &str = "No matching OpenStack project found";

/// Whether a Magnum cluster waits for a project: not deleted and not bound.
pub fn magnum_needs_project(cluster: &MagnumCluster) -> bool {
    cluster.metadata.deleted.is_none() && cluster.status.project.is_none()
}

/// A project considered for a Magnum cluster, with its metric outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectCandidate {
    /// The project.
    pub project: Project,
    /// Its metrics for this pass.
    pub metrics: MetricsOutcome,
}

/// The project a Magnum cluster is bound to. Candidates: projects of the cluster's
/// namespace (upstream lists every namespace; tenants are kept apart here as for
/// clusters and clouds), not deleted, satisfying `spec.constraints.project.labels`. If
/// some of them reference metrics, only those are ranked (weighted mean) and those whose
/// metrics failed are skipped, with no fallback to the others; otherwise every candidate
/// scores 0. `chooser` breaks ties. None → `NO_SUITABLE_RESOURCE`.
pub fn select_project<'a>(
    cluster: &MagnumCluster,
    projects: &'a [ProjectCandidate],
    chooser: &dyn Chooser,
) -> Result<&'a Project> {
    let matching: Vec<(usize, &ProjectCandidate)> = projects
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            p.project.metadata.deleted.is_none()
                && p.project.metadata.namespace == cluster.metadata.namespace
                && project_matches(
                    cluster.spec.constraints.as_ref(),
                    &p.project.metadata.labels,
                )
        })
        .collect();
    let any_metrics = matching
        .iter()
        .any(|(_, p)| !p.project.spec.metrics.is_empty());
    let scored: Vec<Scored<usize>> = if any_metrics {
        matching
            .iter()
            .filter_map(|(i, p)| {
                p.metrics.values().map(|v| Scored {
                    candidate: *i,
                    score: weighted_mean(Some(v)),
                })
            })
            .collect()
    } else {
        matching
            .iter()
            .map(|(i, _)| Scored {
                candidate: *i,
                score: 0.0,
            })
            .collect()
    };
    select_best(&scored, |_| true, chooser)
        .map(|i| &projects[i].project)
        .ok_or_else(|| Error::NoSuitableResource(NO_PROJECT_FOUND.into()))
}

/// The Magnum cluster with the project's values, if that changes it: project labels the
/// cluster does not have (its own win), project metrics it does not reference yet.
pub fn with_project_values(cluster: &MagnumCluster, project: &Project) -> Option<MagnumCluster> {
    let mut updated = cluster.clone();
    for (key, value) in &project.metadata.labels {
        if !updated.metadata.labels.contains_key(key) {
            updated.metadata.labels.insert(key.clone(), value.clone());
        }
    }
    for metric in &project.spec.metrics {
        if !updated.spec.metrics.iter().any(|m| m.name == metric.name) {
            updated.spec.metrics.push(metric.clone());
        }
    }
    (updated != *cluster).then_some(updated)
}

/// The status of a Magnum cluster for which no project could be chosen: FAILED with the
/// reason.
pub fn magnum_failure_status(cluster: &MagnumCluster, error: &Error) -> MagnumClusterStatus {
    let mut status = cluster.status.clone();
    status.state = MagnumClusterState::Failed;
    status.reason = Some(error.reason());
    status
}

#[cfg(test)]
mod tests {
    use krake_crds::core::{Reason, ReasonCode};
    use krake_crds::openstack::{MagnumClusterConstraints, ProjectConstraints};
    use serde_json::json;

    use super::*;
    use crate::metrics::MetricValue;
    use crate::model::fixtures::{labels, magnum, metric_ref, project};

    fn fetched(value: f64) -> MetricsOutcome {
        MetricsOutcome::Fetched(vec![MetricValue {
            name: "m".into(),
            weight: 1.0,
            value,
        }])
    }

    fn failing() -> MetricsOutcome {
        MetricsOutcome::Failed(
            [(
                "m",
                Reason {
                    code: ReasonCode::UnreachableMetricsProvider,
                    message: "x".into(),
                },
            )]
            .into_iter()
            .collect(),
        )
    }

    fn plain(name: &str, l: &[(&str, &str)]) -> ProjectCandidate {
        ProjectCandidate {
            project: project(name, l, vec![]),
            metrics: MetricsOutcome::NoMetrics,
        }
    }

    fn measured(name: &str, metrics: MetricsOutcome) -> ProjectCandidate {
        ProjectCandidate {
            project: project(name, &[], vec![metric_ref("m", 1.0, false)]),
            metrics,
        }
    }

    const FIRST: fn(usize) -> usize = |_| 0;

    #[test]
    fn admission() {
        assert!(magnum_needs_project(&magnum("m")));
        let mut bound = magnum("m");
        bound.status.project = Some(crate::model::resource_ref(&project("p", &[], vec![])));
        assert!(!magnum_needs_project(&bound));
        let mut deleted = magnum("m");
        deleted.metadata.deleted = Some(krake_crds::Timestamp::now());
        assert!(!magnum_needs_project(&deleted));
    }

    #[test]
    fn selection_table() {
        let mut foreign = plain("foreign", &[]);
        foreign.project.metadata.namespace = Some("other".into());
        let mut deleted = plain("deleted", &[]);
        deleted.project.metadata.deleted = Some(krake_crds::Timestamp::now());
        type Case<'a> = (
            Vec<ProjectCandidate>,
            Option<Vec<&'a str>>,
            fn(usize) -> usize,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (vec![plain("a", &[])], None, FIRST, Some("a")),
            (
                vec![plain("a", &[]), plain("b", &[])],
                None,
                |n| n - 1,
                Some("b"),
            ),
            (
                vec![foreign, deleted, plain("ok", &[])],
                None,
                FIRST,
                Some("ok"),
            ),
            (
                vec![
                    plain("it", &[("location", "IT")]),
                    plain("de", &[("location", "DE")]),
                ],
                Some(vec!["location = DE"]),
                FIRST,
                Some("de"),
            ),
            (
                vec![plain("it", &[("location", "IT")])],
                Some(vec!["location = DE"]),
                FIRST,
                None,
            ),
            // Projects with metrics are ranked, metric-less ones ignored.
            (
                vec![
                    plain("plain", &[]),
                    measured("low", fetched(0.1)),
                    measured("high", fetched(0.9)),
                ],
                None,
                FIRST,
                Some("high"),
            ),
            // Failing metrics are skipped...
            (
                vec![
                    measured("failing", failing()),
                    measured("low", fetched(0.1)),
                ],
                None,
                FIRST,
                Some("low"),
            ),
            // ... and there is no fallback to metric-less projects.
            (
                vec![plain("plain", &[]), measured("failing", failing())],
                None,
                FIRST,
                None,
            ),
            (vec![], None, FIRST, None),
        ];
        for (i, (projects, constraint, chooser, expected)) in cases.into_iter().enumerate() {
            let mut m = magnum("m");
            m.spec.constraints = constraint.map(|c| MagnumClusterConstraints {
                project: Some(ProjectConstraints { labels: labels(&c) }),
            });
            let got = select_project(&m, &projects, &chooser);
            match expected {
                Some(name) => assert_eq!(got.unwrap().metadata.name, name, "case {i}"),
                None => {
                    let err = got.expect_err("no project");
                    assert_eq!(
                        err.reason().code,
                        ReasonCode::NoSuitableResource,
                        "case {i}"
                    );
                    assert_eq!(err.to_string(), NO_PROJECT_FOUND);
                }
            }
        }
    }

    #[test]
    fn project_values_are_copied_without_overriding() {
        let p = project(
            "p",
            &[("location", "DE"), ("tier", "gold")],
            vec![metric_ref("m", 1.0, false), metric_ref("n", 2.0, true)],
        );
        let mut m = magnum("m");
        m.metadata.labels = crate::model::fixtures::meta("x", None, &[("location", "IT")]).labels;
        m.spec.metrics = vec![metric_ref("m", 5.0, false)];
        let updated = with_project_values(&m, &p).expect("changed");
        assert_eq!(
            serde_json::Value::Object(updated.metadata.labels.clone()),
            json!({"location": "IT", "tier": "gold"})
        );
        let metrics: Vec<(&str, f64)> = updated
            .spec
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.weight))
            .collect();
        assert_eq!(metrics, vec![("m", 5.0), ("n", 2.0)]);
        assert_eq!(with_project_values(&updated, &p), None);
        let status = magnum_failure_status(&m, &Error::NoSuitableResource(NO_PROJECT_FOUND.into()));
        assert_eq!(status.state, MagnumClusterState::Failed);
        assert_eq!(status.reason.unwrap().code, ReasonCode::NoSuitableResource);
    }
}
