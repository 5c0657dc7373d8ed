//! The kind table: every resource the double serves, built-in or defined by a
//! CustomResourceDefinition. Discovery, routing and storage all read this one table, so a
//! kind is either fully served or not at all.

use std::sync::Arc;

use serde_json::Value;

/// One served resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Kind {
    /// API group (`""` for the core group).
    pub group: String,
    /// Served versions; the first is the preferred (storage) version.
    pub versions: Vec<String>,
    /// Kind name (`Deployment`).
    pub kind: String,
    /// List kind (`DeploymentList`).
    pub list_kind: String,
    /// Resource name (`deployments`).
    pub plural: String,
    /// Singular name (`deployment`).
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether the kind has a `status` subresource.
    pub status: bool,
    /// The `scale` subresource, if any.
    pub scale: Option<Scale>,
    /// Whether the kind is built in (checked against its k8s-openapi type).
    pub builtin: bool,
}

/// Where the scale subresource finds its fields (JSON paths without the leading dot).
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// Path of the desired replicas (`spec.replicas`).
    pub spec_replicas: String,
    /// Path of the observed replicas (`status.replicas`).
    pub status_replicas: String,
    /// Path of the label selector (`spec.selector` for built-ins).
    pub selector: Option<String>,
}

impl Kind {
    /// `group/version` or `version` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The preferred version.
    pub fn version(&self) -> &str {
        &self.versions[0]
    }

    /// Whether `version` is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// Whether this kind's object names are DNS-1123 labels (stricter than subdomains).
    pub fn name_is_label(&self) -> bool {
        self.group.is_empty() && matches!(self.kind.as_str(), "Namespace" | "Service")
    }

    /// Whether names are path segments only (RBAC kinds allow `:` and capitals).
    pub fn name_is_path_segment(&self) -> bool {
        self.group == "rbac.authorization.k8s.io"
    }
}

struct Row {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
}

// A table row constructor: one argument per column keeps the table readable.
#[allow(clippy::too_many_arguments)]
const fn row(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
) -> Row {
    Row {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        status,
        scale,
    }
}

const BUILTIN: &[Row] = &[
    row(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        false,
    ),
    row("", "v1", "Node", "nodes", false, &["no"], true, false),
    row("", "v1", "Pod", "pods", true, &["po"], true, false),
    row("", "v1", "Service", "services", true, &["svc"], true, false),
    row(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        false,
    ),
    row(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        false,
    ),
    row("", "v1", "Secret", "secrets", true, &[], false, false),
    row(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        false,
    ),
    row(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        true,
        false,
    ),
    row(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        true,
    ),
    row(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
        true,
    ),
    row(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        true,
        false,
    ),
    row(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        true,
        true,
    ),
    row("batch", "v1", "Job", "jobs", true, &[], true, false),
    row(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        true,
        false,
    ),
    row(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        true,
        false,
    ),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        false,
    ),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        false,
    ),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        false,
    ),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        false,
    ),
    row(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        false,
    ),
];

/// The kinds in the `all` category (what `kubectl get all` lists).
const IN_ALL: &[&str] = &[
    "Pod",
    "Service",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
];

/// The built-in kinds.
pub fn builtin() -> Vec<Arc<Kind>> {
    BUILTIN
        .iter()
        .map(|r| {
            Arc::new(Kind {
                group: r.group.into(),
                versions: vec![r.version.into()],
                kind: r.kind.into(),
                list_kind: format!("{}List", r.kind),
                plural: r.plural.into(),
                singular: r.kind.to_lowercase(),
                namespaced: r.namespaced,
                short_names: r.short.iter().map(|s| s.to_string()).collect(),
                categories: if IN_ALL.contains(&r.kind) {
                    vec!["all".into()]
                } else {
                    vec![]
                },
                status: r.status,
                scale: r.scale.then(|| Scale {
                    spec_replicas: "spec.replicas".into(),
                    status_replicas: "status.replicas".into(),
                    selector: Some("spec.selector".into()),
                }),
                builtin: true,
            })
        })
        .collect()
}

/// The kind a CustomResourceDefinition object defines (its served versions only), or
/// `None` when it serves no version.
pub fn from_crd(crd: &Value) -> Option<Kind> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions_json = spec.get("versions")?.as_array()?;
    let served: Vec<&Value> = versions_json
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
        .collect();
    // The storage version first: it is the preferred one.
    let mut ordered = served.clone();
    ordered.sort_by_key(|v| !v.get("storage").and_then(Value::as_bool).unwrap_or(false));
    let versions: Vec<String> = ordered.iter().filter_map(|v| text(v.get("name"))).collect();
    if versions.is_empty() {
        return None;
    }
    let subresources = ordered[0].get("subresources");
    let scale = subresources.and_then(|s| s.get("scale")).map(|s| Scale {
        spec_replicas: text(s.get("specReplicasPath"))
            .unwrap_or_default()
            .trim_start_matches('.')
            .into(),
        status_replicas: text(s.get("statusReplicasPath"))
            .unwrap_or_default()
            .trim_start_matches('.')
            .into(),
        selector: text(s.get("labelSelectorPath")).map(|p| p.trim_start_matches('.').into()),
    });
    let kind = text(names.get("kind"))?;
    Some(Kind {
        group: text(spec.get("group"))?,
        versions,
        list_kind: text(names.get("listKind")).unwrap_or_else(|| format!("{kind}List")),
        plural: text(names.get("plural"))?,
        singular: text(names.get("singular")).unwrap_or_else(|| kind.to_lowercase()),
        kind,
        namespaced: spec.get("scope").and_then(Value::as_str) == Some("Namespaced"),
        short_names: list(names.get("shortNames")),
        categories: list(names.get("categories")),
        status: subresources.and_then(|s| s.get("status")).is_some(),
        scale,
        builtin: false,
    })
}

/// Decode a built-in object into its k8s-openapi type and encode it again: `Err` carries
/// the decoder's message (a wrong shape, e.g. a string where a number belongs), `Ok(None)`
/// for kinds without a type (custom resources).
fn round_trip(kind: &str, object: &Value) -> Result<Option<Value>, String> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    use k8s_openapi::api::{networking::v1 as net, rbac::v1 as rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;

    fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
        object: &Value,
    ) -> Result<Option<Value>, String> {
        let decoded: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(decoded)
            .map(Some)
            .map_err(|e| e.to_string())
    }
    match kind {
        "Namespace" => typed::<core::Namespace>(object),
        "Node" => typed::<core::Node>(object),
        "Pod" => typed::<core::Pod>(object),
        "Service" => typed::<core::Service>(object),
        "Endpoints" => typed::<core::Endpoints>(object),
        "ConfigMap" => typed::<core::ConfigMap>(object),
        "Secret" => typed::<core::Secret>(object),
        "ServiceAccount" => typed::<core::ServiceAccount>(object),
        "PersistentVolumeClaim" => typed::<core::PersistentVolumeClaim>(object),
        "Deployment" => typed::<apps::Deployment>(object),
        "StatefulSet" => typed::<apps::StatefulSet>(object),
        "DaemonSet" => typed::<apps::DaemonSet>(object),
        "ReplicaSet" => typed::<apps::ReplicaSet>(object),
        "Job" => typed::<batch::Job>(object),
        "CronJob" => typed::<batch::CronJob>(object),
        "Ingress" => typed::<net::Ingress>(object),
        "Role" => typed::<rbac::Role>(object),
        "RoleBinding" => typed::<rbac::RoleBinding>(object),
        "ClusterRole" => typed::<rbac::ClusterRole>(object),
        "ClusterRoleBinding" => typed::<rbac::ClusterRoleBinding>(object),
        "CustomResourceDefinition" => typed::<ext::CustomResourceDefinition>(object),
        _ => Ok(None),
    }
}

/// Check a built-in object by deserialising it into its k8s-openapi type: `Err` carries
/// the decoder's message.
pub fn check_shape(kind: &str, object: &Value) -> Result<(), String> {
    round_trip(kind, object).map(|_| ())
}

/// The fields of a built-in object its type does not know (`spec.replicass`), as paths.
pub fn unknown_fields(kind: &str, object: &Value) -> Vec<String> {
    fn walk(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
        match (input, known) {
            (Value::Object(i), Value::Object(k)) => {
                for (key, value) in i {
                    let p = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    match k.get(key) {
                        Some(kv) => walk(value, kv, &p, out),
                        // A null is "unset": the decoder drops it, a real server too.
                        None if !value.is_null() => out.push(p),
                        None => {}
                    }
                }
            }
            (Value::Array(i), Value::Array(k)) if i.len() == k.len() => {
                for (n, (a, b)) in i.iter().zip(k).enumerate() {
                    walk(a, b, &format!("{path}[{n}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(Some(known)) = round_trip(kind, object) {
        walk(object, &known, "", &mut out);
    }
    out
}
