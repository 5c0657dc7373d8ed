//! Eligibility and constraint matching of clusters, clouds and OpenStack projects.
//!
//! All constraint lists are AND-ed; an absent or empty list matches everything.

use krake_crds::constraints::{LabelConstraint, MetricConstraint};
use krake_crds::kubernetes::{CloudConstraints, Cluster, ClusterConstraints, ClusterState};
use krake_crds::openstack::MagnumClusterConstraints;
use serde_json::{Map, Value};

use crate::metrics::MetricValue;

/// Whether `cluster`, whose state for this pass is `state` (see
/// [`crate::metrics::effective_cluster_state`]), may receive applications of
/// `namespace`: `ONLINE`, not being deleted, and in the same namespace (tenant
/// separation).
pub fn cluster_is_eligible(
    cluster: &Cluster,
    state: ClusterState,
    namespace: Option<&str>,
) -> bool {
    state == ClusterState::Online
        && cluster.metadata.deleted.is_none()
        && cluster.metadata.namespace.as_deref() == namespace
}

/// Every label constraint is fulfilled by `labels` (a missing label never matches).
pub fn labels_match(constraints: Option<&[LabelConstraint]>, labels: &Map<String, Value>) -> bool {
    constraints
        .unwrap_or_default()
        .iter()
        .all(|c| c.matches(labels))
}

/// Every required custom resource (`<plural>.<group>`) is declared by the cluster.
pub fn custom_resources_match(required: &[String], available: &[String]) -> bool {
    required.iter().all(|r| available.contains(r))
}

/// Every metric constraint is fulfilled by the fetched metrics: the constraint's number
/// is compared with `weight × normalised value` of the metric of that name. A resource
/// without fetched metrics (none defined, or fetching failed) does not match a non-empty
/// list of metric constraints (upstream crashes with a `KeyError`).
pub fn metrics_match(
    constraints: Option<&[MetricConstraint]>,
    metrics: Option<&[MetricValue]>,
) -> bool {
    let constraints = constraints.unwrap_or_default();
    if constraints.is_empty() {
        return true;
    }
    let Some(metrics) = metrics else {
        return false;
    };
    constraints.iter().all(|c| {
        metrics
            .iter()
            .find(|m| m.name == c.parsed().key)
            .is_some_and(|m| c.matches(m.weighted()))
    })
}

/// Whether a cluster (with its inherited values) satisfies an application's cluster
/// constraints, given its fetched metrics.
pub fn cluster_matches(
    constraints: &ClusterConstraints,
    cluster: &Cluster,
    metrics: Option<&[MetricValue]>,
) -> bool {
    labels_match(constraints.labels.as_deref(), &cluster.metadata.labels)
        && custom_resources_match(
            &constraints.custom_resources,
            &cluster.spec.custom_resources,
        )
        && metrics_match(constraints.metrics.as_deref(), metrics)
}

/// Whether a cloud satisfies an application's cluster constraints (automatic cluster
/// creation): labels against the cloud's labels, metrics against its fetched metrics.
/// Clouds declare no custom resources, so a non-empty custom-resource constraint never
/// matches (upstream crashes with an `AttributeError`).
pub fn cloud_matches_cluster_constraints(
    constraints: &ClusterConstraints,
    cloud_labels: &Map<String, Value>,
    metrics: Option<&[MetricValue]>,
) -> bool {
    constraints.custom_resources.is_empty()
        && labels_match(constraints.labels.as_deref(), cloud_labels)
        && metrics_match(constraints.metrics.as_deref(), metrics)
}

/// Whether a cloud satisfies a cluster's `spec.constraints.cloud`.
pub fn cloud_matches(
    constraints: &CloudConstraints,
    cloud_labels: &Map<String, Value>,
    metrics: Option<&[MetricValue]>,
) -> bool {
    labels_match(constraints.labels.as_deref(), cloud_labels)
        && metrics_match(constraints.metrics.as_deref(), metrics)
}

/// Whether a project satisfies a Magnum cluster's `spec.constraints.project.labels`.
pub fn project_matches(
    constraints: Option<&MagnumClusterConstraints>,
    project_labels: &Map<String, Value>,
) -> bool {
    let labels = constraints
        .and_then(|c| c.project.as_ref())
        .and_then(|p| p.labels.as_deref());
    labels_match(labels, project_labels)
}

#[cfg(test)]
mod tests {
    use krake_crds::Timestamp;
    use krake_crds::openstack::ProjectConstraints;

    use super::*;
    use crate::model::fixtures::{cluster, labels, meta, metric_constraints};

    fn value(name: &str, weight: f64, value: f64) -> MetricValue {
        MetricValue {
            name: name.into(),
            weight,
            value,
        }
    }

    #[test]
    fn eligibility_table() {
        let mut deleted = cluster("d", &[]);
        deleted.metadata.deleted = Some(Timestamp::now());
        let mut other_ns = cluster("o", &[]);
        other_ns.metadata.namespace = Some("other".into());
        let cases = [
            (cluster("a", &[]), ClusterState::Online, Some("ns"), true),
            (cluster("a", &[]), ClusterState::Offline, Some("ns"), false),
            (
                cluster("a", &[]),
                ClusterState::FailingMetrics,
                Some("ns"),
                false,
            ),
            (cluster("a", &[]), ClusterState::Notready, Some("ns"), false),
            (cluster("a", &[]), ClusterState::Pending, Some("ns"), false),
            (deleted, ClusterState::Online, Some("ns"), false),
            (other_ns, ClusterState::Online, Some("ns"), false),
            (cluster("a", &[]), ClusterState::Online, None, false),
        ];
        for (c, state, ns, expected) in cases {
            assert_eq!(
                cluster_is_eligible(&c, state, ns),
                expected,
                "{} {state} {ns:?}",
                c.metadata.name
            );
        }
    }

    #[test]
    fn label_table() {
        let l = meta("x", None, &[("location", "DE"), ("tier", "gold")]).labels;
        let cases = [
            (None, true),
            (Some(vec![]), true),
            (labels(&["location is DE"]), true),
            (labels(&["location = DE", "tier in (gold, silver)"]), true),
            (labels(&["location = DE", "tier = silver"]), false),
            (labels(&["location != IT"]), true),
            (labels(&["location not in (DE, IT)"]), false),
            (labels(&["zone != a"]), false),
            (labels(&["zone not in (a)"]), false),
        ];
        for (constraints, expected) in cases {
            assert_eq!(
                labels_match(constraints.as_deref(), &l),
                expected,
                "{constraints:?}"
            );
        }
    }

    #[test]
    fn custom_resource_table() {
        let available = vec![
            "crontabs.stable.example.com".to_string(),
            "foos.x.io".into(),
        ];
        let cases: [(&[&str], bool); 4] = [
            (&[], true),
            (&["crontabs.stable.example.com"], true),
            (&["crontabs.stable.example.com", "foos.x.io"], true),
            (&["crontabs.stable.example.com", "bars.x.io"], false),
        ];
        for (required, expected) in cases {
            let required: Vec<String> = required.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                custom_resources_match(&required, &available),
                expected,
                "{required:?}"
            );
            assert_eq!(custom_resources_match(&required, &[]), required.is_empty());
        }
    }

    #[test]
    fn metric_table() {
        let fetched = vec![value("latency", 2.0, 0.4), value("cost", 1.0, 0.5)];
        let cases = [
            (None, Some(&fetched), true),
            (Some(vec![]), None, true),
            (None, None, true),
            // weight × value = 0.8
            (metric_constraints(&["latency > 0.7"]), Some(&fetched), true),
            (
                metric_constraints(&["latency > 0.8"]),
                Some(&fetched),
                false,
            ),
            (
                metric_constraints(&["latency >= 0.8"]),
                Some(&fetched),
                true,
            ),
            (
                metric_constraints(&["latency = 0.8", "cost < 0.6"]),
                Some(&fetched),
                true,
            ),
            (
                metric_constraints(&["latency = 0.8", "cost lt 0.5"]),
                Some(&fetched),
                false,
            ),
            (metric_constraints(&["energy > 0"]), Some(&fetched), false),
            // No fetched metrics: no match instead of upstream's crash.
            (metric_constraints(&["latency > 0"]), None, false),
        ];
        for (constraints, metrics, expected) in cases {
            assert_eq!(
                metrics_match(constraints.as_deref(), metrics.map(Vec::as_slice)),
                expected,
                "{constraints:?}"
            );
        }
    }

    #[test]
    fn cluster_constraints_combine_all_kinds() {
        let mut c = cluster("a", &[("location", "DE")]);
        c.spec.custom_resources = vec!["foos.x.io".into()];
        let fetched = [value("latency", 1.0, 0.5)];
        let full = ClusterConstraints {
            labels: labels(&["location = DE"]),
            custom_resources: vec!["foos.x.io".into()],
            metrics: metric_constraints(&["latency < 0.6"]),
        };
        assert!(cluster_matches(&full, &c, Some(&fetched)));
        assert!(!cluster_matches(&full, &c, None));
        assert!(cluster_matches(&ClusterConstraints::default(), &c, None));
        let wrong_label = ClusterConstraints {
            labels: labels(&["location = IT"]),
            ..full.clone()
        };
        assert!(!cluster_matches(&wrong_label, &c, Some(&fetched)));
        let wrong_cr = ClusterConstraints {
            custom_resources: vec!["bars.x.io".into()],
            ..full.clone()
        };
        assert!(!cluster_matches(&wrong_cr, &c, Some(&fetched)));
    }

    #[test]
    fn cloud_and_project_constraints() {
        let l = meta("x", None, &[("location", "DE")]).labels;
        let fetched = [value("energy", 1.0, 0.9)];
        let app_constraints = ClusterConstraints {
            labels: labels(&["location = DE"]),
            custom_resources: vec![],
            metrics: metric_constraints(&["energy > 0.5"]),
        };
        assert!(cloud_matches_cluster_constraints(
            &app_constraints,
            &l,
            Some(&fetched)
        ));
        assert!(!cloud_matches_cluster_constraints(
            &app_constraints,
            &l,
            None
        ));
        let with_cr = ClusterConstraints {
            custom_resources: vec!["foos.x.io".into()],
            ..app_constraints
        };
        assert!(!cloud_matches_cluster_constraints(
            &with_cr,
            &l,
            Some(&fetched)
        ));

        let cloud_constraints = CloudConstraints {
            labels: labels(&["location = DE"]),
            metrics: metric_constraints(&["energy > 0.5"]),
        };
        assert!(cloud_matches(&cloud_constraints, &l, Some(&fetched)));
        assert!(!cloud_matches(&cloud_constraints, &l, None));
        assert!(cloud_matches(&CloudConstraints::default(), &l, None));
        let it = CloudConstraints {
            labels: labels(&["location = IT"]),
            metrics: None,
        };
        assert!(!cloud_matches(&it, &l, Some(&fetched)));

        assert!(project_matches(None, &l));
        let none = MagnumClusterConstraints { project: None };
        assert!(project_matches(Some(&none), &l));
        let de = MagnumClusterConstraints {
            project: Some(ProjectConstraints {
                labels: labels(&["location = DE"]),
            }),
        };
        assert!(project_matches(Some(&de), &l));
        let it = MagnumClusterConstraints {
            project: Some(ProjectConstraints {
                labels: labels(&["location = IT"]),
            }),
        };
        assert!(!project_matches(Some(&it), &l));
    }
}
