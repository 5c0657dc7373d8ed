//! The `kubernetes` API (spec §4.3): `Application` and `Cluster`, and the request-only
//! kinds `ClusterBinding`, `Complete` and `Shutdown`.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::constraints::{LabelConstraint, MetricConstraint};
use crate::core::{MetricRef, Reason};
use crate::decode::RequestKind;
use crate::metadata::{Metadata, ResourceRef, Timestamp};
use crate::ordered_map::OrderedMap;
use crate::resource::{ImmutableField, Resource};
use crate::validation::{ValidationErrors, py_repr, validate_metadata};

/// API group name of this module.
pub const API: &str = "kubernetes";

string_default! {
    default_api => API,
    kind_application => "Application",
    kind_cluster => "Cluster",
    kind_cluster_node => "ClusterNode",
    kind_cluster_binding => "ClusterBinding",
    kind_complete => "Complete",
    kind_shutdown => "Shutdown",
    default_storage_migration => "none",
}

fn default_true() -> bool {
    true
}
fn default_one() -> i64 {
    1
}
fn default_minus_one() -> i64 {
    -1
}

/// Python truthiness of a JSON value.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}

/// Python `repr()`-like rendering of a JSON value, for messages.
fn value_repr(v: &Value) -> String {
    match v {
        Value::String(s) => py_repr(s),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// Python `str()`-like rendering of a JSON value, for messages.
fn value_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => value_repr(other),
    }
}

// ---------------------------------------------------------------------------------
// TOSCA
// ---------------------------------------------------------------------------------

/// Message for a TOSCA object that is not a valid template.
pub const INVALID_TOSCA_CONTENT: &str = "Invalid TOSCA template content.";

/// Structural check of a TOSCA template given as an object.
///
/// Upstream validates TOSCA objects with the OpenStack `tosca-parser`. This
/// re-implementation does not embed a TOSCA parser; it performs a structural check
/// instead: the template must contain a non-empty string `tosca_definitions_version`;
/// `topology_template`, when present, must be an object; its `node_templates` and
/// `outputs`, when present, must be objects; every node template must be an object with
/// a string `type`. Failures give upstream's message `Invalid TOSCA template content.`
pub fn validate_tosca_template(tosca: &Map<String, Value>) -> Result<(), String> {
    let err = || INVALID_TOSCA_CONTENT.to_string();
    match tosca.get("tosca_definitions_version") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => return Err(err()),
    }
    let Some(topology) = tosca.get("topology_template") else {
        return Ok(());
    };
    let topology = topology.as_object().ok_or_else(err)?;
    if let Some(outputs) = topology.get("outputs")
        && !outputs.is_object()
    {
        return Err(err());
    }
    if let Some(nodes) = topology.get("node_templates") {
        let nodes = nodes.as_object().ok_or_else(err)?;
        for node in nodes.values() {
            let ok = node
                .as_object()
                .and_then(|n| n.get("type"))
                .is_some_and(Value::is_string);
            if !ok {
                return Err(err());
            }
        }
    }
    Ok(())
}

/// `spec.tosca` of an Application: a TOSCA template object, or the URL of one.
#[derive(Debug, Clone, PartialEq)]
pub enum Tosca {
    /// Inline template (`{}` when unused).
    Template(Map<String, Value>),
    /// URL of a template; must end with `.yaml` or `.yml`.
    Url(String),
}

impl Default for Tosca {
    fn default() -> Self {
        Tosca::Template(Map::new())
    }
}

impl Tosca {
    /// Whether the value is empty (`{}` or `""`), i.e. no TOSCA template is given.
    pub fn is_empty(&self) -> bool {
        match self {
            Tosca::Template(m) => m.is_empty(),
            Tosca::Url(u) => u.is_empty(),
        }
    }
}

impl Serialize for Tosca {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Tosca::Template(m) => m.serialize(serializer),
            Tosca::Url(u) => u.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Tosca {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Object(m) => Ok(Tosca::Template(m)),
            Value::String(s) => Ok(Tosca::Url(s)),
            Value::Null => Err(serde::de::Error::custom(crate::coercion::NULL_MSG)),
            _ => Err(serde::de::Error::custom("Invalid TOSCA template type.")),
        }
    }
}

impl JsonSchema for Tosca {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Tosca".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "TOSCA template object, or URL of a template ending with .yaml or .yml.",
            "oneOf": [{"type": "object"}, {"type": "string"}]
        })
    }
}

// ---------------------------------------------------------------------------------
// Application
// ---------------------------------------------------------------------------------

/// Constraints on the clusters an Application may be scheduled to.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ClusterConstraints {
    /// Label constraints (§3.1) on the cluster.
    #[serde(default)]
    pub labels: Option<Vec<LabelConstraint>>,
    /// CRD names that must all be in the cluster's `spec.custom_resources`.
    #[serde(default)]
    pub custom_resources: Vec<String>,
    /// Metric constraints (§3.2) on the cluster.
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
    /// State of an Application (spec §4.3).
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

fn validate_observer_schema_dict(
    partial: &Map<String, Value>,
    first_level: bool,
    is_metadata: bool,
) -> Result<(), String> {
    if first_level {
        for key in ["apiVersion", "kind"] {
            if partial.get(key).is_none_or(Value::is_null) {
                return Err(format!("{key} is not defined"));
            }
        }
        let metadata = match partial.get("metadata") {
            None | Some(Value::Null) => return Err("metadata dictionary is not defined".into()),
            Some(Value::Object(m)) => m,
            Some(_) => return Err("metadata must be a dictionary".into()),
        };
        if metadata.get("name").is_none_or(Value::is_null) {
            return Err("name is not defined in the metadata dictionary".into());
        }
        validate_observer_schema_dict(metadata, false, true)?;
    }
    for (key, value) in partial {
        if (first_level && matches!(key.as_str(), "apiVersion" | "kind" | "metadata"))
            || (is_metadata && key == "name")
        {
            continue;
        }
        match value {
            Value::Object(m) => validate_observer_schema_dict(m, false, false)?,
            Value::Array(l) => validate_observer_schema_list(l)?,
            Value::Null => {}
            _ => return Err(format!("Value of '{key}' is not 'None'")),
        }
    }
    Ok(())
}

fn validate_observer_schema_list(partial: &[Value]) -> Result<(), String> {
    let Some(Value::Object(control)) = partial.last() else {
        return Err("Special list control dictionary not found".into());
    };
    let (Some(min), Some(max)) = (
        control.get("observer_schema_list_min_length"),
        control.get("observer_schema_list_max_length"),
    ) else {
        return Err("Special list control dictionary malformed".into());
    };
    let min = min
        .as_i64()
        .ok_or("observer_schema_list_min_length should be an integer")?;
    let max = max
        .as_i64()
        .ok_or("observer_schema_list_max_length should be an integer")?;
    if min < 0 {
        return Err("Invalid value for observer_schema_list_min_length".into());
    }
    if max < 0 {
        return Err("Invalid value for observer_schema_list_max_length".into());
    }
    let elements = &partial[..partial.len() - 1];
    if max != 0 {
        if max < min {
            return Err(
                "observer_schema_list_max_length is inferior to observer_schema_list_min_length"
                    .into(),
            );
        }
        if (max as u64) < elements.len() as u64 {
            return Err(
                "observer_schema_list_max_length is inferior to the number of observed elements"
                    .into(),
            );
        }
    }
    for value in elements {
        match value {
            Value::Object(m) => validate_observer_schema_dict(m, false, false)?,
            Value::Array(l) => validate_observer_schema_list(l)?,
            Value::Null => {}
            _ => return Err("Element of a list is not 'None'".into()),
        }
    }
    Ok(())
}

fn observed_resource_in_manifest(
    manifest: &[Map<String, Value>],
    observed: &Map<String, Value>,
) -> bool {
    let name = |r: &Map<String, Value>| r.get("metadata").and_then(|m| m.get("name")).cloned();
    manifest.iter().any(|r| {
        r.get("apiVersion") == observed.get("apiVersion")
            && r.get("kind") == observed.get("kind")
            && name(r).is_some()
            && name(r) == name(observed)
    })
}

/// Validate an observer schema against its manifest (spec §4.3). Upstream answers 500
/// for violations; this returns one error per offending entry at
/// `spec.observer_schema.<index>`.
fn validate_observer_schema(spec: &ApplicationSpec, errors: &mut ValidationErrors) {
    for (i, entry) in spec.observer_schema.iter().enumerate() {
        let result = validate_observer_schema_dict(entry, true, false).and_then(|()| {
            if observed_resource_in_manifest(&spec.manifest, entry) {
                Ok(())
            } else {
                Err("Observed resource must be in manifest".to_string())
            }
        });
        if let Err(msg) = result {
            errors.add(format!("spec.observer_schema.{i}").as_str(), msg);
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

impl Resource for Application {
    resource_consts!(API, "Application", "applications", namespaced: true, status: true);

    fn validate(&self, errors: &mut ValidationErrors) {
        validate_metadata(&self.metadata, errors);
        validate_application_spec(&self.spec, errors);
    }

    fn reset_status(&mut self) {
        self.status = ApplicationStatus::default();
    }

    fn state_name(&self) -> Option<&'static str> {
        Some(self.status.state.as_str())
    }

    fn merge_spec_from(&mut self, body: &Self) -> Result<(), ImmutableField> {
        self.spec = body.spec.clone();
        Ok(())
    }

    fn merge_status_from(&mut self, body: &Self) -> Result<(), ImmutableField> {
        self.status = body.status.clone();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------

/// Label and metric constraints on a Cloud.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct CloudConstraints {
    /// Label constraints (§3.1).
    #[serde(default)]
    pub labels: Option<Vec<LabelConstraint>>,
    /// Metric constraints (§3.2).
    #[serde(default)]
    pub metrics: Option<Vec<MetricConstraint>>,
}

/// `spec.constraints` of a Cluster.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ClusterCloudConstraints {
    /// Constraints on the cloud the cluster is created on (required).
    pub cloud: CloudConstraints,
}

/// Spec of a Cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterSpec {
    /// Kubeconfig with exactly one context, user and cluster (or `{}`).
    #[serde(default)]
    pub kubeconfig: Map<String, Value>,
    /// TOSCA template creating the cluster (or `{}`).
    #[serde(default)]
    pub tosca: Map<String, Value>,
    /// CRD names available on the cluster.
    #[serde(default)]
    pub custom_resources: Vec<String>,
    /// Scheduling constraints (required).
    pub constraints: ClusterCloudConstraints,
    /// Metrics of the cluster.
    #[serde(default)]
    pub metrics: Vec<MetricRef>,
    /// Inherit the metrics of the cloud.
    #[serde(default, deserialize_with = "crate::coercion::bool")]
    pub inherit_metrics: bool,
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
    /// Created by automatic cluster creation.
    #[serde(default, deserialize_with = "crate::coercion::bool")]
    pub auto_generated: bool,
}

impl ClusterSpec {
    /// A spec with the given kubeconfig and every other field at its default.
    pub fn with_kubeconfig(kubeconfig: Map<String, Value>) -> Self {
        ClusterSpec {
            kubeconfig,
            tosca: Map::new(),
            custom_resources: Vec::new(),
            constraints: ClusterCloudConstraints::default(),
            metrics: Vec::new(),
            inherit_metrics: false,
            backoff: 1,
            backoff_delay: 1,
            backoff_limit: -1,
            auto_generated: false,
        }
    }
}

name_enum! {
    /// State of a Cluster (spec §4.3).
    pub enum ClusterState {
        /// Initial state.
        Pending => "PENDING",
        /// Reachable and healthy.
        Online => "ONLINE",
        /// Being connected.
        Connecting => "CONNECTING",
        /// Not reachable.
        Offline => "OFFLINE",
        /// Nodes report problems.
        Unhealthy => "UNHEALTHY",
        /// Nodes not ready.
        Notready => "NOTREADY",
        /// Metrics could not be fetched.
        FailingMetrics => "FAILING_METRICS",
        /// Infrastructure being created.
        Creating => "CREATING",
        /// Infrastructure being reconciled.
        Reconciling => "RECONCILING",
        /// Infrastructure being deleted.
        Deleting => "DELETING",
        /// Infrastructure reconciliation failing.
        FailingReconciliation => "FAILING_RECONCILIATION",
        /// Infrastructure failed.
        Failed => "FAILED",
        /// Infrastructure degraded.
        Degraded => "DEGRADED",
    }
}

/// A node condition reported by Kubernetes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterNodeCondition {
    /// Details about the last transition.
    pub message: String,
    /// Reason of the last transition.
    pub reason: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Condition type.
    pub r#type: String,
}

/// Status of a cluster node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterNodeStatus {
    /// Observed conditions.
    pub conditions: Vec<ClusterNodeCondition>,
}

/// Metadata of a cluster node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterNodeMetadata {
    /// Node name.
    pub name: String,
}

/// A node of a cluster, as reported in `status.nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterNode {
    /// Default `kubernetes`, not validated.
    #[serde(default = "default_api")]
    pub api: String,
    /// Default `ClusterNode`, not validated.
    #[serde(default = "kind_cluster_node")]
    pub kind: String,
    /// Node metadata.
    pub metadata: ClusterNodeMetadata,
    /// Node status.
    #[serde(default)]
    pub status: Option<ClusterNodeStatus>,
}

/// Status of a Cluster; `Default` is the initial status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterStatus {
    /// Error reason.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// Time the Kubernetes controller was triggered.
    #[serde(default)]
    pub kube_controller_triggered: Option<Timestamp>,
    /// Current state.
    #[serde(default = "ClusterStatus::default_state")]
    pub state: ClusterState,
    /// Metric name → reason of its failure.
    #[serde(default)]
    pub metrics_reasons: OrderedMap<Reason>,
    /// TOSCA template applied by Krake.
    #[serde(default)]
    pub last_applied_tosca: Map<String, Value>,
    /// Cluster nodes.
    #[serde(default)]
    pub nodes: Vec<ClusterNode>,
    /// Id of the cluster at the infrastructure provider.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Last time the cluster was scheduled to a cloud.
    #[serde(default)]
    pub scheduled: Option<Timestamp>,
    /// Target cloud.
    #[serde(default)]
    pub scheduled_to: Option<ResourceRef>,
    /// Cloud the cluster runs on.
    #[serde(default)]
    pub running_on: Option<ResourceRef>,
    /// Remaining retries.
    #[serde(default, deserialize_with = "crate::coercion::int")]
    pub retries: i64,
}

impl ClusterStatus {
    fn default_state() -> ClusterState {
        ClusterState::Pending
    }
}

impl Default for ClusterStatus {
    fn default() -> Self {
        ClusterStatus {
            reason: None,
            kube_controller_triggered: None,
            state: ClusterState::Pending,
            metrics_reasons: OrderedMap::new(),
            last_applied_tosca: Map::new(),
            nodes: Vec::new(),
            cluster_id: None,
            scheduled: None,
            scheduled_to: None,
            running_on: None,
            retries: 0,
        }
    }
}

/// `kubernetes/Cluster`: a member Kubernetes cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cluster {
    /// Always `kubernetes`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `Cluster`.
    #[serde(default = "kind_cluster")]
    pub kind: String,
    /// Object metadata.
    pub metadata: Metadata,
    /// Desired state.
    pub spec: ClusterSpec,
    /// Observed state (ignored on create; may be omitted on update, non-null).
    #[serde(default)]
    pub status: ClusterStatus,
}

impl Cluster {
    /// A cluster with the initial status.
    pub fn new(metadata: Metadata, spec: ClusterSpec) -> Self {
        Cluster {
            api: default_api(),
            kind: kind_cluster(),
            metadata,
            spec,
            status: ClusterStatus::default(),
        }
    }
}

const KUBECONFIG_INVALID: &str = "Invalid kube-config file.";

fn kc_get<'a>(node: &'a Value, key: &str, name: &str) -> Result<&'a Value, String> {
    match node.as_object().and_then(|m| m.get(key)) {
        None | Some(Value::Null) => {
            Err(format!("{KUBECONFIG_INVALID} Expected key {key} in {name}"))
        }
        Some(v) => Ok(v),
    }
}

fn kc_get_with_name<'a>(
    list: &'a Value,
    list_name: &str,
    name: &Value,
) -> Result<Option<&'a Value>, String> {
    let Value::Array(items) = list else {
        return Err(format!(
            "{KUBECONFIG_INVALID} Expected {list_name} to be a list"
        ));
    };
    let mut result = None;
    for item in items {
        let Some(item_name) = item.as_object().and_then(|m| m.get("name")) else {
            return Err(format!(
                "{KUBECONFIG_INVALID} Expected all values in {list_name} list to have 'name' key"
            ));
        };
        if item_name == name {
            if result.is_some() {
                return Err(format!(
                    "{KUBECONFIG_INVALID} Expected only one object with name {} in {list_name} list",
                    value_str(name)
                ));
            }
            result = Some(item);
        }
    }
    Ok(result)
}

fn kc_require_named<'a>(
    list: &'a Value,
    list_name: &str,
    name: &Value,
) -> Result<&'a Value, String> {
    kc_get_with_name(list, list_name, name)?.ok_or_else(|| {
        format!(
            "{KUBECONFIG_INVALID} Expected object with name {} in {list_name} list",
            value_str(name)
        )
    })
}

fn kc_len(root: &Value, key: &str) -> Result<usize, String> {
    match kc_get(root, key, "kube-config")? {
        Value::Array(a) => Ok(a.len()),
        _ => Err(format!(
            "{KUBECONFIG_INVALID} Expected kube-config/{key} to be a list"
        )),
    }
}

/// Validate a non-empty kubeconfig (spec §4.3): it must load like upstream's
/// `KubeConfigLoader` (a `current-context` naming an existing context, whose cluster —
/// and user, when named — exist by name) and contain exactly one context, one user and
/// one cluster. A kubeconfig without `users` is an error (upstream crashes with 500).
pub fn validate_kubeconfig(kubeconfig: &Map<String, Value>) -> Result<(), String> {
    let root = Value::Object(kubeconfig.clone());
    let current = kc_get(&root, "current-context", "kube-config")?;
    let contexts = kc_get(&root, "contexts", "kube-config")?;
    let ctx = kc_require_named(contexts, "kube-config/contexts", current)?;
    let ctx_name = format!("kube-config/contexts[name={}]", value_str(current));
    let context = kc_get(ctx, "context", &ctx_name)?;
    if let Some(user) = context
        .as_object()
        .and_then(|c| c.get("user"))
        .filter(|u| truthy(Some(u)))
        && let Some(users) = kubeconfig.get("users").filter(|u| truthy(Some(u)))
    {
        kc_require_named(users, "kube-config/users", user)?;
    }
    let cluster_name = kc_get(context, "cluster", &format!("{ctx_name}/context"))?;
    let clusters = kc_get(&root, "clusters", "kube-config")?;
    let cluster = kc_require_named(clusters, "kube-config/clusters", cluster_name)?;
    kc_get(
        cluster,
        "cluster",
        &format!("kube-config/clusters[name={}]", value_str(cluster_name)),
    )?;

    if kc_len(&root, "contexts")? != 1 {
        return Err("Only one context is allowed".into());
    }
    if kc_len(&root, "users")? != 1 {
        return Err("Only one user is allowed".into());
    }
    if kc_len(&root, "clusters")? != 1 {
        return Err("Only one cluster is allowed".into());
    }
    Ok(())
}

fn validate_cluster_spec(spec: &ClusterSpec, errors: &mut ValidationErrors) {
    let mut spec_errors = ValidationErrors::new();
    if !spec.kubeconfig.is_empty()
        && let Err(msg) = validate_kubeconfig(&spec.kubeconfig)
    {
        spec_errors.add("spec.kubeconfig", msg);
    }
    if !spec.tosca.is_empty() {
        let kubeconfig_output = spec
            .tosca
            .get("topology_template")
            .and_then(Value::as_object)
            .and_then(|t| t.get("outputs"))
            .and_then(Value::as_object)
            .and_then(|o| o.get("kubeconfig"));
        if !truthy(kubeconfig_output) {
            spec_errors.add(
                "spec.tosca",
                "Invalid TOSCA template content. The output `kubeconfig` is missing.",
            );
        } else if let Err(msg) = validate_tosca_template(&spec.tosca) {
            spec_errors.add("spec.tosca", msg);
        }
    }
    if spec_errors.is_empty() && spec.kubeconfig.is_empty() && spec.tosca.is_empty() {
        spec_errors.add(
            "spec._schema",
            "The cluster should be defined by a kubeconfig file or a TOSCA template.",
        );
    }
    errors.extend(spec_errors);
}

impl Resource for Cluster {
    resource_consts!(API, "Cluster", "clusters", namespaced: true, status: true);

    fn validate(&self, errors: &mut ValidationErrors) {
        validate_metadata(&self.metadata, errors);
        validate_cluster_spec(&self.spec, errors);
    }

    fn reset_status(&mut self) {
        self.status = ClusterStatus::default();
    }

    fn state_name(&self) -> Option<&'static str> {
        Some(self.status.state.as_str())
    }

    fn merge_spec_from(&mut self, body: &Self) -> Result<(), ImmutableField> {
        self.spec = body.spec.clone();
        Ok(())
    }

    fn merge_status_from(&mut self, body: &Self) -> Result<(), ImmutableField> {
        self.status = body.status.clone();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Request-only kinds
// ---------------------------------------------------------------------------------

/// Body of `PUT …/applications/{name}/binding`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterBinding {
    /// Always `kubernetes`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `ClusterBinding`.
    #[serde(default = "kind_cluster_binding")]
    pub kind: String,
    /// The cluster the application is bound to.
    pub cluster: ResourceRef,
}

impl RequestKind for ClusterBinding {
    const API: &'static str = API;
    const KIND: &'static str = "ClusterBinding";
}

/// Body of `PUT …/applications/{name}/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Complete {
    /// Always `kubernetes`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `Complete`.
    #[serde(default = "kind_complete")]
    pub kind: String,
    /// Hook token.
    #[serde(default)]
    pub token: Option<String>,
}

impl RequestKind for Complete {
    const API: &'static str = API;
    const KIND: &'static str = "Complete";
}

/// Body of `PUT …/applications/{name}/shutdown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Shutdown {
    /// Always `kubernetes`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `Shutdown`.
    #[serde(default = "kind_shutdown")]
    pub kind: String,
    /// Hook token.
    #[serde(default)]
    pub token: Option<String>,
}

impl RequestKind for Shutdown {
    const API: &'static str = API;
    const KIND: &'static str = "Shutdown";
}
