//! The `infrastructure` API: infrastructure providers (the IM service creating
//! clusters from TOSCA templates) and clouds (where they create them), and the
//! request-only kind `CloudBinding`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::{MetricRef, Reason};
use crate::decode::RequestKind;
use crate::metadata::{Metadata, ResourceRef};
use crate::ordered_map::OrderedMap;
use crate::resource::{ImmutableField, Resource};
use crate::validation::{ValidationErrors, validate_metadata};

/// API group name of this module.
pub const API: &str = "infrastructure";

string_default! {
    default_api => API,
    kind_global_infrastructure_provider => "GlobalInfrastructureProvider",
    kind_infrastructure_provider => "InfrastructureProvider",
    kind_global_cloud => "GlobalCloud",
    kind_cloud => "Cloud",
    kind_cloud_binding => "CloudBinding",
    default_version => "3",
    default_domain_name => "Default",
    default_domain_id => "default",
}

/// Message of the IM authentication rule.
pub const IM_AUTH_REQUIRED: &str =
    "At least one authentication should be defined in the IM infrastructure provider spec.";
/// Message of the first GlobalCloud restriction.
pub const GLOBAL_CLOUD_NAMESPACED_PROVIDER: &str = "A non-namespaced global cloud resource cannot reference the namespaced infrastructure provider resource.";
/// Message of the second GlobalCloud restriction.
pub const GLOBAL_CLOUD_NAMESPACED_METRIC: &str =
    "A non-namespaced global cloud resource cannot reference the namespaced metric resource.";

/// Access to an Infrastructure Manager (IM) instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImSpec {
    /// IM endpoint.
    pub url: String,
    /// User name (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password (with `username`).
    #[serde(default)]
    pub password: Option<String>,
    /// Token (alternative to username/password).
    #[serde(default)]
    pub token: Option<String>,
}

polymorphic! {
    /// Spec of a (Global)InfrastructureProvider: polymorphic on `type`.
    pub enum InfrastructureProviderSpec {
        /// `{"type": "im", "im": {...}}`.
        "im" => Im(ImSpec),
    }
}

fn validate_provider_spec(spec: &InfrastructureProviderSpec, errors: &mut ValidationErrors) {
    let InfrastructureProviderSpec::Im(im) = spec;
    if im.token.is_none() && (im.username.is_none() || im.password.is_none()) {
        errors.add("spec._schema", IM_AUTH_REQUIRED);
    }
}

spec_kind! {
    /// `infrastructure/GlobalInfrastructureProvider`: a provider usable from every namespace.
    pub struct GlobalInfrastructureProvider {
        api: "infrastructure",
        kind: "GlobalInfrastructureProvider",
        kind_default: "kind_global_infrastructure_provider",
        plural: "globalinfrastructureproviders",
        namespaced: false,
        spec: InfrastructureProviderSpec,
        spec_doc: "Provider spec.",
        check: validate_provider_spec,
    }
}

spec_kind! {
    /// `infrastructure/InfrastructureProvider`: a namespaced provider.
    pub struct InfrastructureProvider {
        api: "infrastructure",
        kind: "InfrastructureProvider",
        kind_default: "kind_infrastructure_provider",
        plural: "infrastructureproviders",
        namespaced: true,
        spec: InfrastructureProviderSpec,
        spec_doc: "Provider spec.",
        check: validate_provider_spec,
    }
}

/// Reference to the infrastructure provider of a cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InfrastructureProviderRef {
    /// Provider name.
    pub name: String,
    /// Whether it is a namespaced `InfrastructureProvider` (else global).
    #[serde(default, deserialize_with = "crate::coercion::bool")]
    pub namespaced: bool,
}

/// OpenStack user of the cloud password authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserReference {
    /// User name or UUID.
    pub username: String,
    /// Password.
    pub password: String,
    /// Domain name of the user.
    #[serde(default = "default_domain_name")]
    pub domain_name: String,
    /// Free comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// OpenStack project of the cloud password authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProjectReference {
    /// Project name or UUID.
    pub name: String,
    /// Domain id of the project.
    #[serde(default = "default_domain_id")]
    pub domain_id: String,
    /// Free comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Keystone password authentication of a cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Password {
    /// Identity API version.
    #[serde(default = "default_version")]
    pub version: String,
    /// User.
    pub user: UserReference,
    /// Project.
    pub project: ProjectReference,
}

polymorphic! {
    /// Keystone authentication method of a cloud: polymorphic on `type`.
    pub enum CloudAuthMethod {
        /// `{"type": "password", "password": {...}}`.
        "password" => Password(Password),
    }
}

/// An OpenStack cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OpenstackSpec {
    /// Keystone URL.
    pub url: String,
    /// Authentication.
    pub auth: CloudAuthMethod,
    /// Metrics of the cloud.
    #[serde(default)]
    pub metrics: Vec<MetricRef>,
    /// Provider creating clusters on this cloud.
    pub infrastructure_provider: InfrastructureProviderRef,
}

polymorphic! {
    /// Spec of a (Global)Cloud: polymorphic on `type`.
    pub enum CloudSpec {
        /// `{"type": "openstack", "openstack": {...}}`.
        "openstack" => Openstack(OpenstackSpec),
    }
}

name_enum! {
    /// State of a cloud.
    pub enum CloudState {
        /// Initial state.
        Online => "ONLINE",
        /// Metrics could not be fetched.
        FailingMetrics => "FAILING_METRICS",
    }
}

/// Status of a (Global)Cloud (no `reason`); `Default` is the initial status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudStatus {
    /// Current state.
    #[serde(default = "CloudStatus::default_state")]
    pub state: CloudState,
    /// Metric name → reason of its failure.
    #[serde(default)]
    pub metrics_reasons: OrderedMap<Reason>,
}

impl CloudStatus {
    fn default_state() -> CloudState {
        CloudState::Online
    }
}

impl Default for CloudStatus {
    fn default() -> Self {
        CloudStatus {
            state: CloudState::Online,
            metrics_reasons: OrderedMap::new(),
        }
    }
}

/// `infrastructure/GlobalCloud`: a cloud usable from every namespace. It must not
/// reference a namespaced infrastructure provider nor namespaced metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GlobalCloud {
    /// Always `infrastructure`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `GlobalCloud`.
    #[serde(default = "kind_global_cloud")]
    pub kind: String,
    /// Object metadata.
    pub metadata: Metadata,
    /// Cloud spec.
    pub spec: CloudSpec,
    /// Observed state.
    #[serde(default)]
    pub status: CloudStatus,
}

impl GlobalCloud {
    /// A global cloud with the initial status.
    pub fn new(metadata: Metadata, spec: CloudSpec) -> Self {
        GlobalCloud {
            api: default_api(),
            kind: kind_global_cloud(),
            metadata,
            spec,
            status: CloudStatus::default(),
        }
    }
}

/// A global cloud is visible from every namespace, so it must not depend on objects of one.
fn validate_global_cloud_spec(spec: &CloudSpec, errors: &mut ValidationErrors) {
    if !errors.is_empty() {
        return;
    }
    let CloudSpec::Openstack(os) = spec;
    if os.infrastructure_provider.namespaced {
        errors.add("_schema", GLOBAL_CLOUD_NAMESPACED_PROVIDER);
    } else if os.metrics.iter().any(|m| m.namespaced) {
        errors.add("_schema", GLOBAL_CLOUD_NAMESPACED_METRIC);
    }
}

status_kind! {
    impl Resource for GlobalCloud {
        api: API,
        kind: "GlobalCloud",
        plural: "globalclouds",
        namespaced: false,
        check: validate_global_cloud_spec,
    }
}

/// `infrastructure/Cloud`: a namespaced cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cloud {
    /// Always `infrastructure`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `Cloud`.
    #[serde(default = "kind_cloud")]
    pub kind: String,
    /// Object metadata.
    pub metadata: Metadata,
    /// Cloud spec.
    pub spec: CloudSpec,
    /// Observed state.
    #[serde(default)]
    pub status: CloudStatus,
}

impl Cloud {
    /// A cloud with the initial status.
    pub fn new(metadata: Metadata, spec: CloudSpec) -> Self {
        Cloud {
            api: default_api(),
            kind: kind_cloud(),
            metadata,
            spec,
            status: CloudStatus::default(),
        }
    }
}

status_kind! {
    impl Resource for Cloud {
        api: API,
        kind: "Cloud",
        plural: "clouds",
        namespaced: true,
    }
}

/// Body of `PUT …/clusters/{name}/binding`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudBinding {
    /// Always `infrastructure`.
    #[serde(default = "default_api")]
    pub api: String,
    /// Always `CloudBinding`.
    #[serde(default = "kind_cloud_binding")]
    pub kind: String,
    /// The cloud the cluster is bound to.
    pub cloud: ResourceRef,
}

impl RequestKind for CloudBinding {
    const API: &'static str = API;
    const KIND: &'static str = "CloudBinding";
}
