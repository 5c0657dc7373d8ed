//! The `kubernetes` API: `Application` (Kubernetes manifests placed on a member cluster)
//! and `Cluster` (a member cluster), and the request-only kinds `ClusterBinding`,
//! `Complete` and `Shutdown`.

mod application;
mod cluster;
mod observer_schema;
mod requests;
mod tosca;

pub use application::*;
pub use cluster::*;
pub use requests::*;
pub use tosca::*;

/// API group name of this module.
pub const API: &str = "kubernetes";

string_default! {
    default_api => API,
}

fn default_one() -> i64 {
    1
}

fn default_minus_one() -> i64 {
    -1
}
