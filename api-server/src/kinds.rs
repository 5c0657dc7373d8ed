//! Per-kind API behaviour beyond the generic resource contract: which kinds support
//! `blocking` (and the states it may await) and `force` deletion, upstream's no-op
//! update exception, and what a DELETE does to the status.

use krake_crds::Resource;
use krake_crds::core::{
    GlobalMetric, GlobalMetricsProvider, Metric, MetricsProvider, Role, RoleBinding,
};
use krake_crds::infrastructure::{
    Cloud, GlobalCloud, GlobalInfrastructureProvider, InfrastructureProvider,
};
use krake_crds::kubernetes::{Application, ApplicationState, Cluster, ClusterState};
use krake_crds::openstack::{MagnumCluster, Project};

/// API behaviour of a persisted kind.
pub trait ApiKind: Resource {
    /// `?blocking` is honoured on create and delete.
    const BLOCKING: bool = false;
    /// `?force=True` removes the object at once on delete.
    const FORCE_DELETE: bool = false;
    /// An identical PUT answers 200 instead of 400 (upstream's GlobalMetricsProvider).
    const NOOP_UPDATE_OK: bool = false;

    /// Changes a DELETE makes besides marking the object deleted.
    fn on_delete(&mut self) {}

    /// The state names of the kind's status, which a `?blocking` request may await.
    fn states() -> Vec<&'static str> {
        Vec::new()
    }

    /// Whether `name` is one of [`ApiKind::states`].
    fn is_state(name: &str) -> bool {
        Self::states().contains(&name)
    }
}

impl ApiKind for Role {}
impl ApiKind for RoleBinding {}
impl ApiKind for GlobalMetric {}
impl ApiKind for Metric {}
impl ApiKind for GlobalMetricsProvider {
    const NOOP_UPDATE_OK: bool = true;
}
impl ApiKind for MetricsProvider {}
impl ApiKind for Application {
    const BLOCKING: bool = true;
    const FORCE_DELETE: bool = true;

    fn states() -> Vec<&'static str> {
        ApplicationState::ALL.iter().map(|s| s.as_str()).collect()
    }

    fn on_delete(&mut self) {
        // The shutdown hook gives the workload a chance to clean up before removal.
        if self.spec.hooks.iter().any(|h| h == "shutdown") {
            self.status.state = ApplicationState::WaitingForCleaning;
        }
    }
}
impl ApiKind for Cluster {
    const BLOCKING: bool = true;
    const FORCE_DELETE: bool = true;

    fn states() -> Vec<&'static str> {
        ClusterState::ALL.iter().map(|s| s.as_str()).collect()
    }
}
impl ApiKind for Project {}
impl ApiKind for MagnumCluster {}
impl ApiKind for GlobalInfrastructureProvider {}
impl ApiKind for InfrastructureProvider {}
impl ApiKind for GlobalCloud {}
impl ApiKind for Cloud {}
