//! JSON Schemas of the persisted kinds, generated with `schemars` and checked in under
//! `crds/schemas/<api>.<Kind>.json` (regenerate with
//! `cargo run -p krake-crds --bin krake-crds-schemas`).

use serde_json::Value;

use crate::core::{
    GlobalMetric, GlobalMetricsProvider, Metric, MetricsProvider, Role, RoleBinding,
};
use crate::infrastructure::{
    Cloud, GlobalCloud, GlobalInfrastructureProvider, InfrastructureProvider,
};
use crate::kubernetes::{Application, Cluster};
use crate::openstack::{MagnumCluster, Project};
use crate::resource::Resource;

fn entry<R: Resource>() -> (String, Value) {
    let schema = schemars::schema_for!(R);
    let value = serde_json::to_value(&schema).expect("a JSON Schema is JSON");
    (format!("{}.{}.json", R::API, R::KIND), value)
}

/// One `(file name, JSON Schema)` pair per persisted kind, e.g.
/// `("kubernetes.Application.json", {...})`, in the order of the spec's kind table.
pub fn schemas() -> Vec<(String, Value)> {
    vec![
        entry::<Role>(),
        entry::<RoleBinding>(),
        entry::<GlobalMetric>(),
        entry::<Metric>(),
        entry::<GlobalMetricsProvider>(),
        entry::<MetricsProvider>(),
        entry::<Application>(),
        entry::<Cluster>(),
        entry::<Project>(),
        entry::<MagnumCluster>(),
        entry::<GlobalInfrastructureProvider>(),
        entry::<InfrastructureProvider>(),
        entry::<GlobalCloud>(),
        entry::<Cloud>(),
    ]
}

/// The file content of a schema: pretty JSON with a trailing newline.
pub fn render(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).expect("a JSON Schema is JSON");
    s.push('\n');
    s
}
