//! Values a cluster inherits from the cloud it was created on.
//!
//! Inherited values are used in memory for matching and scoring only; they are never
//! written back.

use krake_crds::core::MetricRef;
use krake_crds::kubernetes::Cluster;

use crate::model::AnyCloud;

/// The cloud a cluster is bound to (`status.scheduled_to`), among `clouds`.
pub fn bound_cloud<'a>(cluster: &Cluster, clouds: &'a [AnyCloud]) -> Option<&'a AnyCloud> {
    let target = cluster.status.scheduled_to.as_ref()?;
    clouds.iter().find(|c| c.is_referenced_by(target))
}

/// A copy of `cluster` with the values inherited from `cloud` (its bound cloud):
///
/// * `metadata.inherit_labels`: every cloud label, the cloud's value winning on
///   conflicts;
/// * `spec.constraints.cloud.labels`: the cloud labels whose keys those constraints name
///   (upstream compares metric-constraint values with label keys instead);
/// * `spec.inherit_metrics`: every cloud metric;
/// * `spec.constraints.cloud.metrics`: the cloud metrics those constraints name
///   (upstream compares the constraint's number with the metric name instead).
///
/// A cloud metric is not added when the cluster already references a metric of that
/// name: the cluster's own weight stays (upstream appends a duplicate).
pub fn with_inherited_values(cluster: &Cluster, cloud: Option<&AnyCloud>) -> Cluster {
    let mut copy = cluster.clone();
    let Some(cloud) = cloud else {
        return copy;
    };
    let cloud_labels = &cloud.metadata().labels;
    let constraints = &cluster.spec.constraints.cloud;
    if cluster.metadata.inherit_labels {
        for (key, value) in cloud_labels {
            copy.metadata.labels.insert(key.clone(), value.clone());
        }
    } else {
        for constraint in constraints.labels.iter().flatten() {
            let key = constraint.parsed().key();
            if let Some(value) = cloud_labels.get(key) {
                copy.metadata.labels.insert(key.to_string(), value.clone());
            }
        }
    }
    let wanted = |metric: &MetricRef| {
        cluster.spec.inherit_metrics
            || constraints
                .metrics
                .iter()
                .flatten()
                .any(|c| c.parsed().key == metric.name)
    };
    for metric in cloud.metrics() {
        if wanted(metric) && !copy.spec.metrics.iter().any(|m| m.name == metric.name) {
            copy.spec.metrics.push(metric.clone());
        }
    }
    copy
}

#[cfg(test)]
mod tests {
    use krake_crds::kubernetes::CloudConstraints;
    use serde_json::json;

    use super::*;
    use crate::model::fixtures::{
        cloud, cluster, global_cloud, labels, metric_constraints, metric_ref,
    };

    fn bound(mut c: Cluster, cloud: &AnyCloud) -> Cluster {
        c.status.scheduled_to = Some(cloud.to_ref());
        c
    }

    fn names(c: &Cluster) -> Vec<(&str, f64)> {
        c.spec
            .metrics
            .iter()
            .map(|m| (m.name.as_str(), m.weight))
            .collect()
    }

    #[test]
    fn finds_the_bound_cloud_by_kind_and_name() {
        let clouds = vec![
            AnyCloud::Namespaced(cloud("a", &[], vec![])),
            AnyCloud::Global(global_cloud("a", &[], vec![])),
        ];
        let c = bound(cluster("c", &[]), &clouds[1]);
        assert_eq!(bound_cloud(&c, &clouds), Some(&clouds[1]));
        let c = bound(cluster("c", &[]), &clouds[0]);
        assert_eq!(bound_cloud(&c, &clouds), Some(&clouds[0]));
        assert_eq!(bound_cloud(&cluster("c", &[]), &clouds), None);
    }

    #[test]
    fn inheritance_table() {
        let the_cloud = AnyCloud::Namespaced(cloud(
            "os",
            &[("location", "DE"), ("tier", "gold")],
            vec![
                metric_ref("energy", 2.0, true),
                metric_ref("cost", 1.0, false),
            ],
        ));
        let own = || {
            let mut c = cluster("c", &[("location", "IT"), ("own", "yes")]);
            c.spec.metrics = vec![metric_ref("cost", 5.0, false)];
            c
        };

        // Nothing requested: unchanged.
        let plain = own();
        assert_eq!(with_inherited_values(&plain, Some(&the_cloud)), plain);

        // inherit_labels: union, cloud wins.
        let mut c = own();
        c.metadata.inherit_labels = true;
        let got = with_inherited_values(&c, Some(&the_cloud));
        assert_eq!(
            serde_json::Value::Object(got.metadata.labels.clone()),
            json!({"location": "DE", "own": "yes", "tier": "gold"})
        );
        assert_eq!(got.spec.metrics, c.spec.metrics);

        // Label constraints: only the named labels are copied.
        let mut c = own();
        c.spec.constraints.cloud = CloudConstraints {
            labels: labels(&["tier in (gold, silver)"]),
            metrics: None,
        };
        let got = with_inherited_values(&c, Some(&the_cloud));
        assert_eq!(
            serde_json::Value::Object(got.metadata.labels.clone()),
            json!({"location": "IT", "own": "yes", "tier": "gold"})
        );

        // inherit_metrics: all cloud metrics, the cluster's own reference kept.
        let mut c = own();
        c.spec.inherit_metrics = true;
        let got = with_inherited_values(&c, Some(&the_cloud));
        assert_eq!(names(&got), vec![("cost", 5.0), ("energy", 2.0)]);
        assert!(got.spec.metrics[1].namespaced);

        // Metric constraints: the named cloud metrics only (by name, not by value).
        let mut c = own();
        c.spec.metrics.clear();
        c.spec.constraints.cloud = CloudConstraints {
            labels: None,
            metrics: metric_constraints(&["energy > 0.5"]),
        };
        let got = with_inherited_values(&c, Some(&the_cloud));
        assert_eq!(names(&got), vec![("energy", 2.0)]);

        // Cloud label constraints without cloud metric constraints do not crash.
        let mut c = own();
        c.spec.constraints.cloud = CloudConstraints {
            labels: labels(&["location = DE"]),
            metrics: None,
        };
        let got = with_inherited_values(&c, Some(&the_cloud));
        assert_eq!(got.metadata.labels["location"], "DE");

        // No bound cloud: unchanged.
        let mut c = own();
        c.metadata.inherit_labels = true;
        c.spec.inherit_metrics = true;
        assert_eq!(with_inherited_values(&c, None), c);
    }
}
