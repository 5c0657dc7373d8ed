//! Request-only kinds: bodies of the Application subresources, never persisted.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{API, default_api};
use crate::decode::RequestKind;
use crate::metadata::ResourceRef;

string_default! {
    kind_cluster_binding => "ClusterBinding",
    kind_complete => "Complete",
    kind_shutdown => "Shutdown",
}

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
