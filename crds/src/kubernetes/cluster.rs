//! `Cluster`: a member Kubernetes cluster, given by its kubeconfig or by a TOSCA template
//! that creates it, and the validation of that kubeconfig.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::tosca::validate_tosca_template;
use super::{API, default_api, default_minus_one, default_one};
use crate::constraints::{LabelConstraint, MetricConstraint};
use crate::core::{MetricRef, Reason};
use crate::metadata::{Metadata, ResourceRef, Timestamp};
use crate::ordered_map::OrderedMap;
use crate::python::{truthy, value_str};
use crate::resource::{ImmutableField, Resource};
use crate::validation::{ValidationErrors, validate_metadata};

string_default! {
    kind_cluster => "Cluster",
    kind_cluster_node => "ClusterNode",
}

/// Label and metric constraints on a Cloud.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct CloudConstraints {
    /// Label constraints on the cloud.
    #[serde(default)]
    pub labels: Option<Vec<LabelConstraint>>,
    /// Metric constraints on the cloud.
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
    /// State of a Cluster.
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

/// Keys of a kubeconfig's `clusters[].cluster` that make a client read a host file.
pub const REFUSED_CLUSTER_KEYS: &[&str] = &["certificate-authority"];

/// Keys of a kubeconfig's `users[].user` that make a client run a program (`exec`,
/// `auth-provider`, whose plugins run commands or read credential files) or read a host
/// file (`tokenFile`, `client-certificate`, `client-key`).
pub const REFUSED_USER_KEYS: &[&str] = &[
    "exec",
    "auth-provider",
    "tokenFile",
    "client-certificate",
    "client-key",
];

/// The path of the first key of `kubeconfig` that would make the component using it run
/// a program or read a file of the host it runs on, e.g. `users[0].user.exec`, or `None`.
///
/// A kubeconfig is written by a Krake user but used by Krake's controllers: such keys
/// would let any user with write access to Clusters run commands or read files (other
/// users' keys, the controllers' own credentials) in a controller. Only inline data
/// (`certificate-authority-data`, `client-certificate-data`, `client-key-data`, `token`)
/// is allowed. Key names are compared without regard to case, because some kubeconfig
/// readers do so; a `null` value counts as absent.
pub fn refused_kubeconfig_key(kubeconfig: &Map<String, Value>) -> Option<String> {
    let scan = |list: &str, entry: &str, refused: &[&str]| {
        let items = kubeconfig.get(list)?.as_array()?;
        items.iter().enumerate().find_map(|(i, item)| {
            let section = item.as_object()?.get(entry)?.as_object()?;
            section
                .iter()
                .filter(|(_, v)| !v.is_null())
                .find(|(k, _)| refused.iter().any(|r| r.eq_ignore_ascii_case(k)))
                .map(|(k, _)| format!("{list}[{i}].{entry}.{k}"))
        })
    };
    scan("users", "user", REFUSED_USER_KEYS)
        .or_else(|| scan("clusters", "cluster", REFUSED_CLUSTER_KEYS))
}

/// Validate a non-empty kubeconfig: it must load like upstream's
/// `KubeConfigLoader` (a `current-context` naming an existing context, whose cluster —
/// and user, when named — exist by name) and contain exactly one context, one user and
/// one cluster. A kubeconfig without `users` is an error (upstream crashes with 500).
///
/// Checked first: no key that makes a client run a program or read a host file
/// ([`refused_kubeconfig_key`]); the message names the key, never its value.
pub fn validate_kubeconfig(kubeconfig: &Map<String, Value>) -> Result<(), String> {
    if let Some(key) = refused_kubeconfig_key(kubeconfig) {
        return Err(format!(
            "{KUBECONFIG_INVALID} Key {key} is not allowed: Krake does not run programs \
             or read files named in a kubeconfig; use inline data (certificate-authority-data, \
             client-certificate-data, client-key-data, token) instead"
        ));
    }
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

status_kind! {
    impl Resource for Cluster {
        api: API,
        kind: "Cluster",
        plural: "clusters",
        namespaced: true,
        check: validate_cluster_spec,
    }
}
