//! Just enough OpenAPI for clients that look before they write: kubectl (1.27+) reads
//! `/openapi/v3` to learn whether the server validates fields itself (the
//! `fieldValidation` query parameter of each kind's PATCH operation) and then leaves
//! validation to the server; older kubectl reads `/openapi/v2` (protobuf) for client-side
//! validation, which skips kinds the document does not describe. No schemas are served:
//! `kubectl explain` is out of scope.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::discovery::MINOR;
use crate::kinds::Kind;

/// The media type of the protobuf OpenAPI v2 document.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// `group/version` paths (`api/v1`, `apis/apps/v1`) of every served group version.
fn group_versions(kinds: &[Arc<Kind>]) -> BTreeMap<String, Vec<Arc<Kind>>> {
    let mut out: BTreeMap<String, Vec<Arc<Kind>>> = BTreeMap::new();
    for k in kinds {
        for v in &k.versions {
            let path = if k.group.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{}/{v}", k.group)
            };
            out.entry(path).or_default().push(k.clone());
        }
    }
    out
}

fn hash(kinds: &[Arc<Kind>]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for k in kinds {
        (&k.group, &k.versions, &k.kind, &k.plural, k.namespaced).hash(&mut h);
    }
    format!("{:016X}", h.finish())
}

/// `GET /openapi/v3`: where each group version's document is.
pub fn v3_root(kinds: &[Arc<Kind>]) -> Value {
    let paths: serde_json::Map<String, Value> = group_versions(kinds)
        .into_iter()
        .map(|(path, ks)| {
            let url = format!("/openapi/v3/{path}?hash={}", hash(&ks));
            (path, json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

fn parameter(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// `GET /openapi/v3/{api/v1 | apis/g/v}`: the operations of the group version with their
/// query parameters, `None` when nothing is served there.
pub fn v3_group_version(kinds: &[Arc<Kind>], path: &str) -> Option<Value> {
    let gvs = group_versions(kinds);
    let served = gvs.get(path)?;
    let version = path.rsplit('/').next().unwrap_or_default();
    let mut paths = serde_json::Map::new();
    for k in served {
        let gvk = json!({"group": k.group, "version": version, "kind": k.kind});
        let scope = if k.namespaced {
            "namespaces/{namespace}/"
        } else {
            ""
        };
        let item = format!("/{path}/{scope}{}/{{name}}", k.plural);
        let write_params: Vec<Value> = [
            "dryRun",
            "fieldManager",
            "fieldValidation",
            "force",
            "pretty",
        ]
        .iter()
        .map(|p| parameter(p))
        .collect();
        let ok = json!({"200": {"description": "OK"}});
        paths.insert(
            item,
            json!({
                "get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get", "responses": ok},
                "put": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "put", "parameters": write_params, "responses": ok},
                "patch": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch", "parameters": write_params, "responses": ok},
                "delete": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "delete", "responses": ok},
            }),
        );
        paths.insert(
            format!("/{path}/{scope}{}", k.plural),
            json!({"post": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "post", "parameters": write_params, "responses": ok}}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{MINOR}.0")},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

/// `GET /openapi/v2` as JSON (no definitions).
pub fn v2_json() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{MINOR}.0")},
        "paths": {},
        "definitions": {},
    })
}

/// `GET /openapi/v2` as protobuf: the `Document` with `swagger` and `info` only.
pub fn v2_protobuf() -> Vec<u8> {
    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        // Length-delimited field; every length here is below 128.
        let mut out = vec![(number << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }
    let version = format!("v1.{MINOR}.0");
    let mut info = field(1, b"Kubernetes");
    info.extend(field(2, version.as_bytes()));
    let mut doc = field(1, b"2.0");
    doc.extend(field(2, &info));
    doc
}
