//! The fourteen kinds side by side: API, kind, plural, scope, keys and state names.

use krake_crds::Resource;
use krake_crds::core::{
    GlobalMetric, GlobalMetricsProvider, Metric, MetricsProvider, Role, RoleBinding,
};
use krake_crds::infrastructure::{
    Cloud, GlobalCloud, GlobalInfrastructureProvider, InfrastructureProvider,
};
use krake_crds::kubernetes::{Application, Cluster};
use krake_crds::openstack::{MagnumCluster, Project};

fn row<R: Resource>() -> (&'static str, &'static str, &'static str, bool, bool, String) {
    (
        R::API,
        R::KIND,
        R::PLURAL,
        R::NAMESPACED,
        R::HAS_STATUS,
        R::key(Some("ns"), "n"),
    )
}

#[test]
fn kind_table_matches_the_spec() {
    let rows = vec![
        row::<Role>(),
        row::<RoleBinding>(),
        row::<GlobalMetric>(),
        row::<Metric>(),
        row::<GlobalMetricsProvider>(),
        row::<MetricsProvider>(),
        row::<Application>(),
        row::<Cluster>(),
        row::<Project>(),
        row::<MagnumCluster>(),
        row::<GlobalInfrastructureProvider>(),
        row::<InfrastructureProvider>(),
        row::<GlobalCloud>(),
        row::<Cloud>(),
    ];
    let s = |x: &str| x.to_string();
    let expected = vec![
        ("core", "Role", "roles", false, false, s("/core/roles/n")),
        (
            "core",
            "RoleBinding",
            "rolebindings",
            false,
            false,
            s("/core/rolebindings/n"),
        ),
        (
            "core",
            "GlobalMetric",
            "globalmetrics",
            false,
            false,
            s("/core/globalmetrics/n"),
        ),
        (
            "core",
            "Metric",
            "metrics",
            true,
            false,
            s("/core/metrics/ns/n"),
        ),
        (
            "core",
            "GlobalMetricsProvider",
            "globalmetricsproviders",
            false,
            false,
            s("/core/globalmetricsproviders/n"),
        ),
        (
            "core",
            "MetricsProvider",
            "metricsproviders",
            true,
            false,
            s("/core/metricsproviders/ns/n"),
        ),
        (
            "kubernetes",
            "Application",
            "applications",
            true,
            true,
            s("/kubernetes/applications/ns/n"),
        ),
        (
            "kubernetes",
            "Cluster",
            "clusters",
            true,
            true,
            s("/kubernetes/clusters/ns/n"),
        ),
        (
            "openstack",
            "Project",
            "projects",
            true,
            true,
            s("/openstack/projects/ns/n"),
        ),
        (
            "openstack",
            "MagnumCluster",
            "magnumclusters",
            true,
            true,
            s("/openstack/magnumclusters/ns/n"),
        ),
        (
            "infrastructure",
            "GlobalInfrastructureProvider",
            "globalinfrastructureproviders",
            false,
            false,
            s("/infrastructure/globalinfrastructureproviders/n"),
        ),
        (
            "infrastructure",
            "InfrastructureProvider",
            "infrastructureproviders",
            true,
            false,
            s("/infrastructure/infrastructureproviders/ns/n"),
        ),
        (
            "infrastructure",
            "GlobalCloud",
            "globalclouds",
            false,
            true,
            s("/infrastructure/globalclouds/n"),
        ),
        (
            "infrastructure",
            "Cloud",
            "clouds",
            true,
            true,
            s("/infrastructure/clouds/ns/n"),
        ),
    ];
    assert_eq!(rows, expected);
}
