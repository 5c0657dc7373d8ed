//! The `openstack` API: `Project` (OpenStack credentials and quota holder) and
//! `MagnumCluster` (a Kubernetes cluster created through Magnum), and the request-only
//! kind `MagnumClusterBinding`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::constraints::LabelConstraint;
use crate::core::{MetricRef, Reason};
use crate::decode::RequestKind;
use crate::metadata::{Metadata, ResourceRef};
use crate::ordered_map::OrderedMap;
use crate::resource::{ImmutableField, Resource};
use crate::validation::{ValidationErrors, validate_metadata};

/// API group name of this module.
pub const API: &str = "openstack";

string_default! {
    default_api => API,
    kind_project => "Project",
    kind_magnum_cluster => "MagnumCluster",
    kind_magnum_cluster_binding => "MagnumClusterBinding",
}

/// OpenStack user of the password authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserReference {
    /// UUID of the user.
    pub id: String,
    /// Password of the user.
    pub password: String,
    /// Free comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// OpenStack project of the password authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectReference {
    /// UUID of the project.
    pub id: String,
    /// Free comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Keystone password authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Password {
    /// User.
    pub user: UserReference,
    /// Project.
    pub project: ProjectReference,
}

/// Keystone application-credential authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationCredential {
    /// UUID of the application credential.
    pub id: String,
    /// Its secret.
    pub secret: String,
}

polymorphic! {
    /// Keystone authentication method of a Project: polymorphic on `type`.
    pub enum AuthMethod {
        /// `{"type": "password", "password": {...}}`.
        "password" => Password(Password),
        /// `{"type": "application_credential", "application_credential": {...}}`.
        "application_credential" => ApplicationCredential(ApplicationCredential),
    }
}

/// Spec of a Project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectSpec {
    /// Keystone URL.
    pub url: String,
    /// Authentication.
    pub auth: AuthMethod,
    /// UUID of the Magnum cluster template.
    pub template: String,
    /// Metrics of the project.
    #[serde(default)]
    pub metrics: Vec<MetricRef>,
}

name_enum! {
    /// State of a Project.
    pub enum ProjectState {
        /// Initial state.
        Online => "ONLINE",
        /// Metrics could not be fetched.
        FailingMetrics => "FAILING_METRICS",
    }
}

/// Status of a Project (no `reason`); `Default` is the initial status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectStatus {
    /// Current state.
    #[serde(default = "ProjectStatus::default_state")]
    pub state: ProjectState,
    /// Metric name → reason of its failure.
    #[serde(default)]
    pub metrics_reasons: OrderedMap<Reason>,
}

impl ProjectStatus {
    fn default_state() -> ProjectState {
        ProjectState::Online
    }
}

impl Default for ProjectStatus {
    fn default() -> Self {
        ProjectStatus {
            state: ProjectState::Online,
            metrics_reasons: OrderedMap::new(),
        }
    }
}

/// `openstack/Project`: an OpenStack project hosting Magnum clusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Project {
    /// Always `openstack`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `Project`.
    #[serde(default = "kind_project")]
    pub kind: String,
    /// Object metadata.
    pub metadata: Metadata,
    /// Desired state.
    pub spec: ProjectSpec,
    /// Observed state.
    #[serde(default)]
    pub status: ProjectStatus,
}

impl Project {
    /// A project with the initial status.
    pub fn new(metadata: Metadata, spec: ProjectSpec) -> Self {
        Project {
            api: default_api(),
            kind: kind_project(),
            metadata,
            spec,
            status: ProjectStatus::default(),
        }
    }
}

status_kind! {
    impl Resource for Project {
        api: API,
        kind: "Project",
        plural: "projects",
        namespaced: true,
    }
}

/// Constraints on the Project a Magnum cluster is scheduled to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ProjectConstraints {
    /// Label constraints on the project.
    #[serde(default)]
    pub labels: Option<Vec<LabelConstraint>>,
}

/// `spec.constraints` of a MagnumCluster.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct MagnumClusterConstraints {
    /// Project constraints.
    #[serde(default)]
    pub project: Option<ProjectConstraints>,
}

/// Spec of a MagnumCluster.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct MagnumClusterSpec {
    /// Number of master nodes; immutable.
    #[serde(default, deserialize_with = "crate::coercion::opt_int")]
    pub master_count: Option<i64>,
    /// Number of worker nodes.
    #[serde(default, deserialize_with = "crate::coercion::opt_int")]
    pub node_count: Option<i64>,
    /// Metrics of the cluster.
    #[serde(default)]
    pub metrics: Vec<MetricRef>,
    /// Scheduling constraints.
    #[serde(default)]
    pub constraints: Option<MagnumClusterConstraints>,
}

name_enum! {
    /// State of a MagnumCluster.
    pub enum MagnumClusterState {
        /// Initial state.
        Pending => "PENDING",
        /// Being created.
        Creating => "CREATING",
        /// Running.
        Running => "RUNNING",
        /// Being reconciled.
        Reconciling => "RECONCILING",
        /// Being deleted.
        Deleting => "DELETING",
        /// Failed.
        Failed => "FAILED",
    }
}

/// Status of a MagnumCluster; `Default` is the initial status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MagnumClusterStatus {
    /// Error reason.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// Current state.
    #[serde(default = "MagnumClusterStatus::default_state")]
    pub state: MagnumClusterState,
    /// Project hosting the cluster (set by the binding).
    #[serde(default)]
    pub project: Option<ResourceRef>,
    /// Magnum template UUID (set by the binding; immutable through `/status`).
    #[serde(default)]
    pub template: Option<String>,
    /// UUID of the cluster in Magnum.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Current number of worker nodes.
    #[serde(default, deserialize_with = "crate::coercion::opt_int")]
    pub node_count: Option<i64>,
    /// URL of the cluster API.
    #[serde(default)]
    pub api_address: Option<String>,
    /// IP addresses of the master nodes.
    #[serde(default)]
    pub master_addresses: Option<Vec<String>>,
    /// IP addresses of the worker nodes.
    #[serde(default)]
    pub node_addresses: Option<Vec<String>>,
    /// Kubernetes Cluster created for this Magnum cluster.
    #[serde(default)]
    pub cluster: Option<ResourceRef>,
}

impl MagnumClusterStatus {
    fn default_state() -> MagnumClusterState {
        MagnumClusterState::Pending
    }
}

impl Default for MagnumClusterStatus {
    fn default() -> Self {
        MagnumClusterStatus {
            reason: None,
            state: MagnumClusterState::Pending,
            project: None,
            template: None,
            cluster_id: None,
            node_count: None,
            api_address: None,
            master_addresses: None,
            node_addresses: None,
            cluster: None,
        }
    }
}

/// `openstack/MagnumCluster`: a Kubernetes cluster created through OpenStack Magnum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MagnumCluster {
    /// Always `openstack`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `MagnumCluster`.
    #[serde(default = "kind_magnum_cluster")]
    pub kind: String,
    /// Object metadata.
    pub metadata: Metadata,
    /// Desired state.
    pub spec: MagnumClusterSpec,
    /// Observed state.
    #[serde(default)]
    pub status: MagnumClusterStatus,
}

impl MagnumCluster {
    /// A Magnum cluster with the initial status.
    pub fn new(metadata: Metadata, spec: MagnumClusterSpec) -> Self {
        MagnumCluster {
            api: default_api(),
            kind: kind_magnum_cluster(),
            metadata,
            spec,
            status: MagnumClusterStatus::default(),
        }
    }
}

status_kind! {
    impl Resource for MagnumCluster {
        api: API,
        kind: "MagnumCluster",
        plural: "magnumclusters",
        namespaced: true,
        // Magnum cannot change the number of masters of a running cluster, and the
        // template is fixed by the binding.
        immutable_spec: [master_count],
        immutable_status: [template],
    }
}

/// Body of `PUT …/magnumclusters/{name}/binding`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MagnumClusterBinding {
    /// Always `openstack`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `MagnumClusterBinding`.
    #[serde(default = "kind_magnum_cluster_binding")]
    pub kind: String,
    /// Project the cluster is bound to.
    pub project: ResourceRef,
    /// Magnum template UUID.
    pub template: String,
}

impl RequestKind for MagnumClusterBinding {
    const API: &'static str = API;
    const KIND: &'static str = "MagnumClusterBinding";
}
