//! `Application`: Kubernetes manifests (or a TOSCA template or CSAR archive) plus the
//! constraints on the cluster they may run on.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::observer_schema::validate_observer_schema;
use super::tosca::{Tosca, validate_tosca_template};
use super::{API, default_api, default_minus_one, default_one};
use crate::constraints::{LabelConstraint, MetricConstraint};
use crate::core::Reason;
use crate::metadata::{Metadata, ResourceRef, Timestamp};
use crate::python::{truthy, value_repr};
use crate::resource::{ImmutableField, Resource};
use crate::validation::{ValidationErrors, validate_metadata};

string_default! {
    kind_application => "Application",
    default_storage_migration => "none",
}

fn default_true() -> bool {
    true
}

/// Constraints on the clusters an Application may be scheduled to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ClusterConstraints {
    /// Label constraints on the cluster.
    #[serde(default)]
    pub labels: Option<Vec<LabelConstraint>>,
    /// CRD names that must all be in the cluster's `spec.custom_resources`.
    #[serde(default)]
    pub custom_resources: Vec<String>,
    /// Metric constraints on the cluster.
    #[serde(default)]
    pub metrics: Option<Vec<MetricConstraint>>,
}

/// `spec.constraints` of an Application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationConstraints {
    /// Cluster constraints (required).
    pub cluster: ClusterConstraints,
    /// Whether the scheduler may migrate the application.
    #[serde(default = "default_true", deserialize_with = "crate::coercion::bool")]
    pub migration: bool,
}

impl Default for ApplicationConstraints {
    fn default() -> Self {
        ApplicationConstraints {
            cluster: ClusterConstraints::default(),
            migration: true,
        }
    }
}

/// Spec of an Application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationSpec {
    /// Kubernetes resources (required, may be empty).
    pub manifest: Vec<Map<String, Value>>,
    /// TOSCA template or its URL.
    #[serde(default)]
    pub tosca: Tosca,
    /// URL of a CSAR archive (`.csar` or `.zip`).
    #[serde(default)]
    pub csar: Option<String>,
    /// Fields observed by the Kubernetes observer.
    #[serde(default)]
    pub observer_schema: Vec<Map<String, Value>>,
    /// Scheduling constraints (required).
    pub constraints: ApplicationConstraints,
    /// Enabled hooks (`complete`, `shutdown`); not validated.
    #[serde(default)]
    pub hooks: Vec<String>,
    /// Timeout in seconds of the shutdown hook.
    #[serde(default, deserialize_with = "crate::coercion::opt_int")]
    pub shutdown_grace_time: Option<i64>,
    /// `give_up` or `delete`; not validated.
    #[serde(default)]
    pub shutdown_failure_strategy: Option<String>,
    /// Retries of the shutdown hook.
    #[serde(default, deserialize_with = "crate::coercion::opt_int")]
    pub shutdown_retry_count: Option<i64>,
    /// Multiplier applied to `backoff_delay` between attempts.
    #[serde(default = "default_one", deserialize_with = "crate::coercion::int")]
    pub backoff: i64,
    /// Delay in seconds between attempts.
    #[serde(default = "default_one", deserialize_with = "crate::coercion::int")]
    pub backoff_delay: i64,
    /// Maximal number of attempts, -1 = infinite.
    #[serde(
        default = "default_minus_one",
        deserialize_with = "crate::coercion::int"
    )]
    pub backoff_limit: i64,
    /// Storage migration strategy; not validated.
    #[serde(default = "default_storage_migration")]
    pub storage_migration: String,
    /// Whether automatic cluster creation is allowed.
    #[serde(default, deserialize_with = "crate::coercion::bool")]
    pub auto_cluster_create: bool,
}

impl ApplicationSpec {
    /// A spec with the given manifest and every other field at its default.
    pub fn with_manifest(manifest: Vec<Map<String, Value>>) -> Self {
        ApplicationSpec {
            manifest,
            tosca: Tosca::default(),
            csar: None,
            observer_schema: Vec::new(),
            constraints: ApplicationConstraints::default(),
            hooks: Vec::new(),
            shutdown_grace_time: None,
            shutdown_failure_strategy: None,
            shutdown_retry_count: None,
            backoff: 1,
            backoff_delay: 1,
            backoff_limit: -1,
            storage_migration: default_storage_migration(),
            auto_cluster_create: false,
        }
    }
}

name_enum! {
    /// State of an Application.
    pub enum ApplicationState {
        /// Initial state; waiting for scheduling.
        Pending => "PENDING",
        /// Resources being created on the cluster.
        Creating => "CREATING",
        /// Resources applied / pods running.
        Running => "RUNNING",
        /// Resources being updated after a spec change.
        Reconciling => "RECONCILING",
        /// TOSCA/CSAR being translated into a manifest.
        Translating => "TRANSLATING",
        /// Defined, unused.
        Retrying => "RETRYING",
        /// A pod terminated and restarts.
        Restarting => "RESTARTING",
        /// Shutdown hook in progress.
        WaitingForCleaning => "WAITING_FOR_CLEANING",
        /// The controller may now delete/migrate.
        ReadyForAction => "READY_FOR_ACTION",
        /// Moving to another cluster.
        Migrating => "MIGRATING",
        /// Waiting for an automatically created cluster.
        WaitingForClusterCreation => "WAITING_FOR_CLUSTER_CREATION",
        /// Resources being deleted.
        Deleting => "DELETING",
        /// Never stored; only in the response of a `?blocking=deleted` DELETE.
        Deleted => "DELETED",
        /// Error but retries remain.
        Degraded => "DEGRADED",
        /// Error and no retries left.
        Failed => "FAILED",
        /// Pod terminated with restartPolicy Never.
        Completed => "COMPLETED",
    }
}

/// Pod counters of an Application.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ContainerHealth {
    /// Desired pods.
    #[serde(default, deserialize_with = "crate::coercion::int")]
    pub desired_pods: i64,
    /// Running pods.
    #[serde(default, deserialize_with = "crate::coercion::int")]
    pub running_pods: i64,
    /// Completed pods.
    #[serde(default, deserialize_with = "crate::coercion::int")]
    pub completed_pods: i64,
    /// Failed pods.
    #[serde(default, deserialize_with = "crate::coercion::int")]
    pub failed_pods: i64,
}

/// Status of an Application; `Default` is the initial status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApplicationStatus {
    /// Error reason.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// Current state.
    #[serde(default = "ApplicationStatus::default_state")]
    pub state: ApplicationState,
    /// Pod counters.
    #[serde(default)]
    pub container_health: ContainerHealth,
    /// Last time the current version was scheduled (scheduler → controller handshake).
    #[serde(default)]
    pub kube_controller_triggered: Option<Timestamp>,
    /// Last time `scheduled_to` changed.
    #[serde(default)]
    pub scheduled: Option<Timestamp>,
    /// Target cluster.
    #[serde(default)]
    pub scheduled_to: Option<ResourceRef>,
    /// Cluster the application currently runs on.
    #[serde(default)]
    pub running_on: Option<ResourceRef>,
    /// Remaining retries.
    #[serde(default, deserialize_with = "crate::coercion::opt_int")]
    pub retries: Option<i64>,
    /// Time of the next scheduled retry.
    #[serde(default)]
    pub scheduled_retry: Option<Timestamp>,
    /// Service name → public endpoint.
    #[serde(default)]
    pub services: Map<String, Value>,
    /// Observer schema used by the observer.
    #[serde(default)]
    pub mangled_observer_schema: Vec<Value>,
    /// Resources observed on the cluster.
    #[serde(default)]
    pub last_observed_manifest: Vec<Value>,
    /// Resources applied by Krake.
    #[serde(default)]
    pub last_applied_manifest: Vec<Value>,
    /// Token of the complete hook.
    #[serde(default)]
    pub complete_token: Option<String>,
    /// Certificate of the complete hook.
    #[serde(default)]
    pub complete_cert: Option<String>,
    /// Key of the complete hook certificate.
    #[serde(default)]
    pub complete_key: Option<String>,
    /// Token of the shutdown hook.
    #[serde(default)]
    pub shutdown_token: Option<String>,
    /// Certificate of the shutdown hook.
    #[serde(default)]
    pub shutdown_cert: Option<String>,
    /// Key of the shutdown hook certificate.
    #[serde(default)]
    pub shutdown_key: Option<String>,
    /// Deadline of the shutdown hook.
    #[serde(default)]
    pub shutdown_grace_period: Option<Timestamp>,
    /// Whether automatic cluster creation was started.
    #[serde(default)]
    pub auto_cluster_create_started: Option<String>,
    /// Migration retries.
    #[serde(default, deserialize_with = "crate::coercion::int")]
    pub migration_retries: i64,
    /// Migration timeout.
    #[serde(default, deserialize_with = "crate::coercion::int")]
    pub migration_timeout: i64,
}

impl ApplicationStatus {
    fn default_state() -> ApplicationState {
        ApplicationState::Pending
    }
}

impl Default for ApplicationStatus {
    fn default() -> Self {
        ApplicationStatus {
            reason: None,
            state: ApplicationState::Pending,
            container_health: ContainerHealth::default(),
            kube_controller_triggered: None,
            scheduled: None,
            scheduled_to: None,
            running_on: None,
            retries: None,
            scheduled_retry: None,
            services: Map::new(),
            mangled_observer_schema: Vec::new(),
            last_observed_manifest: Vec::new(),
            last_applied_manifest: Vec::new(),
            complete_token: None,
            complete_cert: None,
            complete_key: None,
            shutdown_token: None,
            shutdown_cert: None,
            shutdown_key: None,
            shutdown_grace_period: None,
            auto_cluster_create_started: None,
            migration_retries: 0,
            migration_timeout: 0,
        }
    }
}

/// `kubernetes/Application`: Kubernetes manifests plus placement constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Application {
    /// Always `kubernetes`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `Application`.
    #[serde(default = "kind_application")]
    pub kind: String,
    /// Object metadata.
    pub metadata: Metadata,
    /// Desired state.
    pub spec: ApplicationSpec,
    /// Observed state (ignored on create; may be omitted on update, non-null).
    #[serde(default)]
    pub status: ApplicationStatus,
}

impl Application {
    /// An application with the initial status.
    pub fn new(metadata: Metadata, spec: ApplicationSpec) -> Self {
        Application {
            api: default_api(),
            kind: kind_application(),
            metadata,
            spec,
            status: ApplicationStatus::default(),
        }
    }
}

fn validate_manifest(manifest: &[Map<String, Value>], errors: &mut ValidationErrors) {
    for (index, resource) in manifest.iter().enumerate() {
        let mut fmt = format!("Field '{{field}}' not found in resource at index {index}");
        let name = resource
            .get("metadata")
            .and_then(Value::as_object)
            .and_then(|m| m.get("name"));
        let mut resource_errors = Vec::new();
        if truthy(name) {
            fmt.push_str(&format!(
                " (metadata.name: {})",
                value_repr(name.expect("truthy value is present"))
            ));
        } else {
            resource_errors.push(fmt.replace("{field}", "metadata.name"));
        }
        for attribute in ["apiVersion", "kind", "metadata"] {
            if !resource.contains_key(attribute) {
                resource_errors.push(fmt.replace("{field}", attribute));
            }
        }
        for e in resource_errors {
            errors.add("spec.manifest", e);
        }
    }
}

fn validate_application_spec(spec: &ApplicationSpec, errors: &mut ValidationErrors) {
    let mut spec_errors = ValidationErrors::new();
    validate_manifest(&spec.manifest, &mut spec_errors);
    match &spec.tosca {
        t if t.is_empty() => {}
        Tosca::Template(m) => {
            if let Err(msg) = validate_tosca_template(m) {
                spec_errors.add("spec.tosca", msg);
            }
        }
        Tosca::Url(u) => {
            if !(u.ends_with(".yaml") || u.ends_with(".yml")) {
                spec_errors.add("spec.tosca", "Invalid TOSCA template URL.");
            }
        }
    }
    if let Some(csar) = &spec.csar
        && !(csar.ends_with(".csar") || csar.ends_with(".zip"))
    {
        spec_errors.add("spec.csar", "Invalid CSAR archive URL.");
    }
    if spec_errors.is_empty() {
        let csar_empty = spec.csar.as_deref().is_none_or(str::is_empty);
        if spec.manifest.is_empty() && spec.tosca.is_empty() && csar_empty {
            spec_errors.add(
                "spec._schema",
                "The application should be defined by a manifest file, a TOSCA template or a CSAR file.",
            );
        } else if !spec.manifest.is_empty() {
            validate_observer_schema(spec, &mut spec_errors);
        }
    }
    errors.extend(spec_errors);
}

status_kind! {
    impl Resource for Application {
        api: API,
        kind: "Application",
        plural: "applications",
        namespaced: true,
        check: validate_application_spec,
    }
}
