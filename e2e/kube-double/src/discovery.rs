//! Discovery documents, all from the kind table: `/version`, `/api`, `/api/v1`, `/apis`,
//! `/apis/{group}`, `/apis/{group}/{version}`, and aggregated discovery (v2) for clients
//! that ask for it (kubectl 1.30+, kube-rs `run_aggregated`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::kinds::Kind;

/// The Content-Type of an aggregated discovery answer: clients check it to know which
/// format they got.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The Kubernetes version the double claims (k8s-openapi's `latest`).
pub const MINOR: &str = "37";

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];

/// Whether an `Accept` header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let p: Vec<&str> = part.split(';').map(str::trim).collect();
        p.contains(&"g=apidiscovery.k8s.io")
            && p.contains(&"v=v2")
            && p.contains(&"as=APIGroupDiscoveryList")
    })
}

/// `GET /version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": MINOR,
        "emulationMajor": "1",
        "emulationMinor": MINOR,
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "36",
        "gitVersion": format!("v1.{MINOR}.0"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `GET /api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Groups (other than core) in serving order, with their versions.
fn groups(kinds: &[Arc<Kind>]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for k in kinds.iter().filter(|k| !k.group.is_empty()) {
        let entry = match out.iter_mut().find(|(g, _)| *g == k.group) {
            Some(e) => e,
            None => {
                out.push((k.group.clone(), Vec::new()));
                out.last_mut().expect("just pushed")
            }
        };
        for v in &k.versions {
            if !entry.1.contains(v) {
                entry.1.push(v.clone());
            }
        }
    }
    out
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
}

/// `GET /apis`.
pub fn group_list(kinds: &[Arc<Kind>]) -> Value {
    let groups: Vec<Value> = groups(kinds)
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/{group}`, `None` for an unknown group.
pub fn group(kinds: &[Arc<Kind>], name: &str) -> Option<Value> {
    groups(kinds)
        .into_iter()
        .find(|(g, _)| g == name)
        .map(|(g, vs)| {
            let mut v = group_json(&g, &vs);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            v
        })
}

/// `GET /api/v1` or `/apis/{group}/{version}`, `None` when nothing is served there.
pub fn resource_list(kinds: &[Arc<Kind>], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Arc<Kind>> = kinds
        .iter()
        .filter(|k| k.group == group && k.serves(version))
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for k in served {
        let mut r = json!({
            "name": k.plural,
            "singularName": k.singular,
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": VERBS,
        });
        if !k.short_names.is_empty() {
            r["shortNames"] = json!(k.short_names);
        }
        if !k.categories.is_empty() {
            r["categories"] = json!(k.categories);
        }
        resources.push(r);
        if k.status {
            resources.push(json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced, "kind": k.kind, "verbs": SUB_VERBS}));
        }
        if k.scale.is_some() {
            resources.push(json!({"name": format!("{}/scale", k.plural), "singularName": "", "namespaced": k.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": SUB_VERBS}));
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn aggregated_resource(k: &Kind, version: &str) -> Value {
    let response_kind = json!({"group": k.group, "version": version, "kind": k.kind});
    let mut subresources = Vec::new();
    if k.status {
        subresources.push(
            json!({"subresource": "status", "responseKind": response_kind, "verbs": SUB_VERBS}),
        );
    }
    if k.scale.is_some() {
        subresources.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": SUB_VERBS}));
    }
    let mut r = json!({
        "resource": k.plural,
        "responseKind": response_kind,
        "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": k.singular,
        "verbs": VERBS,
    });
    if !k.short_names.is_empty() {
        r["shortNames"] = json!(k.short_names);
    }
    if !k.categories.is_empty() {
        r["categories"] = json!(k.categories);
    }
    if !subresources.is_empty() {
        r["subresources"] = json!(subresources);
    }
    r
}

/// A group's versions with their resources.
type GroupResources = (String, Vec<(String, Vec<Value>)>);

/// Aggregated discovery of the core group (`/api`) or of the named groups (`/apis`).
pub fn aggregated(kinds: &[Arc<Kind>], core: bool) -> Value {
    let mut by_group: BTreeMap<usize, GroupResources> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for k in kinds.iter().filter(|k| k.group.is_empty() == core) {
        let index = match order.iter().position(|g| *g == k.group) {
            Some(i) => i,
            None => {
                order.push(k.group.clone());
                order.len() - 1
            }
        };
        let entry = by_group
            .entry(index)
            .or_insert_with(|| (k.group.clone(), Vec::new()));
        for v in &k.versions {
            let resources = match entry.1.iter_mut().find(|(name, _)| name == v) {
                Some(r) => r,
                None => {
                    entry.1.push((v.clone(), Vec::new()));
                    entry.1.last_mut().expect("just pushed")
                }
            };
            resources.1.push(aggregated_resource(k, v));
        }
    }
    let items: Vec<Value> = by_group
        .into_values()
        .map(|(name, versions)| {
            let versions: Vec<Value> = versions
                .into_iter()
                .map(|(v, resources)| json!({"version": v, "resources": resources, "freshness": "Current"}))
                .collect();
            json!({"metadata": {"name": name, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
