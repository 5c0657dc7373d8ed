//! The `core` API: RBAC (`Role`, `RoleBinding`), metrics (`GlobalMetric`,
//! `Metric`) and metrics providers (`GlobalMetricsProvider`, `MetricsProvider`), plus the
//! types shared by every API (`Reason`, `ReasonCode`, `MetricRef`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metadata::Metadata;
use crate::ordered_map::OrderedMap;
use crate::resource::{ImmutableField, Resource};
use crate::validation::{ValidationErrors, validate_metadata};

/// API group name of this module.
pub const API: &str = "core";

string_default! {
    default_api => API,
    kind_role => "Role",
    kind_role_binding => "RoleBinding",
    kind_global_metric => "GlobalMetric",
    kind_metric => "Metric",
    kind_global_metrics_provider => "GlobalMetricsProvider",
    kind_metrics_provider => "MetricsProvider",
}

name_enum! {
    /// Machine-readable cause of an error state, serialized by name.
    pub enum ReasonCode {
        /// Default error (1).
        InternalError => "INTERNAL_ERROR",
        /// Invalid values in the manifest (10).
        InvalidResource => "INVALID_RESOURCE",
        /// Kubernetes resource not supported by the controller (11).
        UnsupportedResource => "UNSUPPORTED_RESOURCE",
        /// Custom resource missing or invalid (12).
        InvalidCustomResource => "INVALID_CUSTOM_RESOURCE",
        /// Invalid TOSCA manifest (13).
        InvalidToscaManifest => "INVALID_TOSCA_MANIFEST",
        /// Connectivity issue with the cluster (20).
        ClusterNotReachable => "CLUSTER_NOT_REACHABLE",
        /// Scheduler found no suitable resource (50).
        NoSuitableResource => "NO_SUITABLE_RESOURCE",
        /// Kubernetes API error (60).
        KubernetesError => "KUBERNETES_ERROR",
        /// Creation failed (70).
        CreateFailed => "CREATE_FAILED",
        /// Reconciliation failed (71).
        ReconcileFailed => "RECONCILE_FAILED",
        /// Reconfiguration failed (72).
        ReconfigureFailed => "RECONFIGURE_FAILED",
        /// Deletion failed (73).
        DeleteFailed => "DELETE_FAILED",
        /// Retrieval failed (74).
        RetrieveFailed => "RETRIEVE_FAILED",
        /// Not found (75).
        NotFound => "NOT_FOUND",
        /// OpenStack error (80).
        OpenstackError => "OPENSTACK_ERROR",
        /// Invalid Magnum cluster template (81).
        InvalidClusterTemplate => "INVALID_CLUSTER_TEMPLATE",
        /// Invalid metric (91).
        InvalidMetric => "INVALID_METRIC",
        /// Metrics provider unreachable (92).
        UnreachableMetricsProvider => "UNREACHABLE_METRICS_PROVIDER",
        /// Unknown metric (93).
        UnknownMetric => "UNKNOWN_METRIC",
        /// Unknown metrics provider (94).
        UnknownMetricsProvider => "UNKNOWN_METRICS_PROVIDER",
    }
}

impl ReasonCode {
    /// Upstream's internal integer value (never on the wire).
    pub fn value(&self) -> u16 {
        match self {
            ReasonCode::InternalError => 1,
            ReasonCode::InvalidResource => 10,
            ReasonCode::UnsupportedResource => 11,
            ReasonCode::InvalidCustomResource => 12,
            ReasonCode::InvalidToscaManifest => 13,
            ReasonCode::ClusterNotReachable => 20,
            ReasonCode::NoSuitableResource => 50,
            ReasonCode::KubernetesError => 60,
            ReasonCode::CreateFailed => 70,
            ReasonCode::ReconcileFailed => 71,
            ReasonCode::ReconfigureFailed => 72,
            ReasonCode::DeleteFailed => 73,
            ReasonCode::RetrieveFailed => 74,
            ReasonCode::NotFound => 75,
            ReasonCode::OpenstackError => 80,
            ReasonCode::InvalidClusterTemplate => 81,
            ReasonCode::InvalidMetric => 91,
            ReasonCode::UnreachableMetricsProvider => 92,
            ReasonCode::UnknownMetric => 93,
            ReasonCode::UnknownMetricsProvider => 94,
        }
    }
}

/// Why a resource is in an error state (`status.reason`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reason {
    /// Machine-readable code.
    pub code: ReasonCode,
    /// Human-readable message.
    pub message: String,
}

name_enum! {
    /// Type of a watch event.
    pub enum WatchEventType {
        /// Object created.
        Added => "ADDED",
        /// Object modified.
        Modified => "MODIFIED",
        /// Object removed from storage.
        Deleted => "DELETED",
    }
}

/// Reference to a `Metric` (`namespaced: true`) or `GlobalMetric`, with
/// the weight it has when the scheduler ranks candidates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricRef {
    /// Metric name.
    pub name: String,
    /// Weight of the metric in scoring.
    #[serde(deserialize_with = "crate::coercion::float")]
    pub weight: f64,
    /// Whether the metric is a namespaced `Metric` (same namespace as the referrer).
    #[serde(default, deserialize_with = "crate::coercion::bool")]
    pub namespaced: bool,
}

// ---------------------------------------------------------------------------------
// RBAC
// ---------------------------------------------------------------------------------

name_enum! {
    /// RBAC verb, serialized lowercase.
    pub enum Verb {
        /// POST on a collection.
        Create => "create",
        /// GET on a collection (list and watch).
        List => "list",
        /// Exists, never required by an endpoint.
        ListAll => "list_all",
        /// GET on an object.
        Get => "get",
        /// PUT on an object or a subresource.
        Update => "update",
        /// DELETE on an object.
        Delete => "delete",
    }
}

/// One permission rule of a [`Role`]. `""` in `api`, `resources` or `namespaces` is the
/// wildcard, which RBAC matches against any value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoleRule {
    /// API group, or `""` for all.
    pub api: String,
    /// Resources (`applications`, `applications/status`), `""` for all.
    pub resources: Vec<String>,
    /// Namespaces, `""` for all.
    pub namespaces: Vec<String>,
    /// Granted verbs.
    pub verbs: Vec<Verb>,
}

/// `core/Role`: a named set of permission rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Role {
    /// Always `core`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `Role`.
    #[serde(default = "kind_role")]
    pub kind: String,
    /// Object metadata.
    pub metadata: Metadata,
    /// Permission rules (may be empty).
    pub rules: Vec<RoleRule>,
}

impl Role {
    /// A role with the given metadata and rules.
    pub fn new(metadata: Metadata, rules: Vec<RoleRule>) -> Self {
        Role {
            api: default_api(),
            kind: kind_role(),
            metadata,
            rules,
        }
    }
}

impl Resource for Role {
    resource_consts!(API, "Role", "roles", namespaced: false, status: false);

    fn validate(&self, errors: &mut ValidationErrors) {
        validate_metadata(&self.metadata, errors);
    }

    fn merge_spec_from(&mut self, body: &Self) -> Result<(), ImmutableField> {
        self.rules = body.rules.clone();
        Ok(())
    }
}

/// `core/RoleBinding`: grants roles to users. Role names are not checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RoleBinding {
    /// Always `core`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `RoleBinding`.
    #[serde(default = "kind_role_binding")]
    pub kind: String,
    /// Object metadata.
    pub metadata: Metadata,
    /// User names.
    pub users: Vec<String>,
    /// Role names.
    pub roles: Vec<String>,
}

impl RoleBinding {
    /// A binding of `roles` to `users`.
    pub fn new(metadata: Metadata, users: Vec<String>, roles: Vec<String>) -> Self {
        RoleBinding {
            api: default_api(),
            kind: kind_role_binding(),
            metadata,
            users,
            roles,
        }
    }
}

impl Resource for RoleBinding {
    resource_consts!(API, "RoleBinding", "rolebindings", namespaced: false, status: false);

    fn validate(&self, errors: &mut ValidationErrors) {
        validate_metadata(&self.metadata, errors);
    }

    fn merge_spec_from(&mut self, body: &Self) -> Result<(), ImmutableField> {
        self.users = body.users.clone();
        self.roles = body.roles.clone();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------

/// Where a metric's value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricSpecProvider {
    /// Name of the (Global)MetricsProvider.
    pub name: String,
    /// Metric name at the provider.
    pub metric: String,
}

/// Spec of `GlobalMetric` and `Metric`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricSpec {
    /// Allowed values (required, may be empty).
    #[serde(deserialize_with = "crate::coercion::int_vec")]
    pub allowed_values: Vec<i64>,
    /// Lower bound used for normalisation.
    #[serde(deserialize_with = "crate::coercion::float")]
    pub min: f64,
    /// Upper bound used for normalisation (`min <= max` is not checked).
    #[serde(deserialize_with = "crate::coercion::float")]
    pub max: f64,
    /// Provider of the value.
    pub provider: MetricSpecProvider,
}

spec_kind! {
    /// `core/GlobalMetric`: a metric usable from every namespace.
    pub struct GlobalMetric {
        api: "core",
        kind: "GlobalMetric",
        kind_default: "kind_global_metric",
        plural: "globalmetrics",
        namespaced: false,
        spec: MetricSpec,
        spec_doc: "Metric spec.",
        check: |_, _| {},
    }
}

spec_kind! {
    /// `core/Metric`: a namespaced metric.
    pub struct Metric {
        api: "core",
        kind: "Metric",
        kind_default: "kind_metric",
        plural: "metrics",
        namespaced: true,
        spec: MetricSpec,
        spec_doc: "Metric spec.",
        check: |_, _| {},
    }
}

// ---------------------------------------------------------------------------------
// Metrics providers
// ---------------------------------------------------------------------------------

/// Prometheus metrics provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PrometheusSpec {
    /// Prometheus endpoint.
    pub url: String,
}

/// InfluxDB metrics provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InfluxSpec {
    /// InfluxDB endpoint.
    pub url: String,
    /// Access token.
    pub token: String,
    /// Organisation.
    pub org: String,
    /// Bucket.
    pub bucket: String,
}

/// KSQL (Kafka) metrics provider: reads the row whose `comparison_column` equals the
/// metric name in `table`, value in `value_column`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KafkaSpec {
    /// Column compared with the metric name.
    pub comparison_column: String,
    /// Column holding the value.
    pub value_column: String,
    /// KSQL table.
    pub table: String,
    /// KSQL endpoint.
    pub url: String,
}

/// Static metrics provider: fixed values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StaticSpec {
    /// Metric name → value.
    #[serde(deserialize_with = "crate::coercion::float_map")]
    pub metrics: OrderedMap<f64>,
}

polymorphic! {
    /// Spec of a (Global)MetricsProvider: polymorphic on `type`.
    pub enum MetricsProviderSpec {
        /// `{"type": "prometheus", "prometheus": {...}}`.
        "prometheus" => Prometheus(PrometheusSpec),
        /// `{"type": "influx", "influx": {...}}`.
        "influx" => Influx(InfluxSpec),
        /// `{"type": "kafka", "kafka": {...}}`.
        "kafka" => Kafka(KafkaSpec),
        /// `{"type": "static", "static": {...}}`.
        "static" => Static(StaticSpec),
    }
}

spec_kind! {
    /// `core/GlobalMetricsProvider`: a metrics source usable from every namespace.
    pub struct GlobalMetricsProvider {
        api: "core",
        kind: "GlobalMetricsProvider",
        kind_default: "kind_global_metrics_provider",
        plural: "globalmetricsproviders",
        namespaced: false,
        spec: MetricsProviderSpec,
        spec_doc: "Provider spec.",
        check: |_, _| {},
    }
}

spec_kind! {
    /// `core/MetricsProvider`: a namespaced metrics source.
    pub struct MetricsProvider {
        api: "core",
        kind: "MetricsProvider",
        kind_default: "kind_metrics_provider",
        plural: "metricsproviders",
        namespaced: true,
        spec: MetricsProviderSpec,
        spec_doc: "Provider spec.",
        check: |_, _| {},
    }
}
