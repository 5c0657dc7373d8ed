//! Kubernetes CustomResourceDefinitions of the persisted kinds, derived from the same
//! `schemars` JSON Schemas as [`crate::schema`] and checked in under
//! `crds/manifests/<group>_<plural>.yaml` (regenerate with
//! `cargo run -p krake-crds --bin krake-crds-schemas`).
//!
//! Each Krake API becomes the group `<api>.krake.io` with one version, `v1`. A Krake object
//! maps onto a custom resource as `apiVersion: <api>.krake.io/v1`, `kind`, Kubernetes
//! metadata, and the kind's other top-level fields (`spec`, `status`; `rules` for a Role,
//! `users` and `roles` for a RoleBinding) unchanged.
//!
//! Kubernetes owns `metadata` (its `ObjectMeta`), so a CRD schema cannot describe Krake's
//! metadata. Name, namespace, labels and finalizers carry over; `uid`, `created`, `deleted`
//! and `resource_version` have server-set counterparts (`uid`, `creationTimestamp`,
//! `deletionTimestamp`, `resourceVersion`); Krake-only fields are not representable there:
//! `owners` (Kubernetes' `ownerReferences` need the owner's uid and apiVersion),
//! `inherit_labels` and `modified`. Label values that are not strings (Krake allows any JSON
//! value) become their JSON text.
//!
//! The JSON Schemas are turned into *structural* schemas, the subset Kubernetes accepts for
//! CRDs: every node typed (or explicitly free-form), references inlined, `null` expressed as
//! `nullable`, polymorphic containers (`type` naming the key of the sub-object) as one
//! object declaring every variant's fields plus a `oneOf` that only validates values.

use serde_json::{Map, Value, json};

use crate::kinds::{KindVisitor, visit_kinds};
use crate::resource::Resource;

/// The only version of every Krake custom resource.
pub const VERSION: &str = "v1";

/// Formats Kubernetes knows; others (e.g. schemars' `uint64`) would only be noise there.
const KNOWN_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "date",
    "date-time",
    "duration",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
    "password",
];

/// Value validations that mean the same in JSON Schema 2020-12 and in OpenAPI v3.0.
const COPIED_VALIDATIONS: &[&str] = &[
    "minimum",
    "maximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
];

/// Nesting beyond this can only come from a recursive type, which a structural schema
/// (a finite tree) cannot express.
const MAX_DEPTH: usize = 64;

/// The Kubernetes API group of a kind: `<api>.krake.io`.
pub fn group<R: Resource>() -> String {
    format!("{}.krake.io", R::API)
}

/// The `apiVersion` of a kind's custom resources: `<api>.krake.io/v1`.
pub fn api_version<R: Resource>() -> String {
    format!("{}/{VERSION}", group::<R>())
}

/// The file name of a kind's CRD manifest: `<group>_<plural>.yaml`.
pub fn file_name<R: Resource>() -> String {
    format!("{}_{}.yaml", group::<R>(), R::PLURAL)
}

/// The CustomResourceDefinition (`apiextensions.k8s.io/v1`) of a kind.
pub fn custom_resource_definition<R: Resource>() -> Value {
    let json_schema =
        serde_json::to_value(schemars::schema_for!(R)).expect("a JSON Schema is JSON");
    let mut schema = structural_schema(&json_schema);
    schema["properties"]["apiVersion"]["description"] = format!("`{}`.", api_version::<R>()).into();
    schema["properties"]["kind"]["description"] = format!("`{}`.", R::KIND).into();
    let mut version = json!({
        "name": VERSION,
        "served": true,
        "storage": true,
    });
    if R::HAS_STATUS {
        version["subresources"] = json!({"status": {}});
    }
    version["additionalPrinterColumns"] = printer_columns(&schema);
    version["schema"] = json!({"openAPIV3Schema": schema});
    let group = group::<R>();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{group}", R::PLURAL)},
        "spec": {
            "group": group,
            "names": {
                "kind": R::KIND,
                "listKind": format!("{}List", R::KIND),
                "plural": R::PLURAL,
                "singular": R::KIND.to_lowercase(),
            },
            "scope": if R::NAMESPACED { "Namespaced" } else { "Cluster" },
            "versions": [version],
        },
    })
}

/// `kubectl get` shows the state of kinds that have one, and always the age (declaring any
/// column replaces the default Age column).
fn printer_columns(schema: &Value) -> Value {
    let mut columns = Vec::new();
    if schema["properties"]["status"]["properties"]["state"].is_object() {
        columns.push(json!({"name": "State", "type": "string", "jsonPath": ".status.state"}));
    }
    columns.push(json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}));
    Value::Array(columns)
}

/// One `(file name, CRD)` pair per persisted kind, e.g.
/// `("kubernetes.krake.io_applications.yaml", {...})`, in the order of
/// [`crate::for_each_kind!`].
pub fn definitions() -> Vec<(String, Value)> {
    struct Definitions(Vec<(String, Value)>);
    impl KindVisitor for Definitions {
        fn visit<R: Resource>(&mut self) {
            self.0
                .push((file_name::<R>(), custom_resource_definition::<R>()));
        }
    }
    let mut definitions = Definitions(Vec::new());
    visit_kinds(&mut definitions);
    definitions.0
}

/// The file content of a CRD manifest: block-style YAML.
pub fn render(crd: &Value) -> String {
    serde_saphyr::to_string(crd).expect("a CRD is serializable as YAML")
}

/// A Krake object in its custom-resource form: `apiVersion: <api>.krake.io/v1`, `kind`,
/// the Kubernetes part of its metadata, and its other top-level fields unchanged.
pub fn custom_resource<R: Resource>(object: &R) -> Value {
    let Value::Object(fields) = serde_json::to_value(object).expect("a resource is JSON") else {
        unreachable!("a resource serializes as an object");
    };
    let meta = object.metadata();
    let mut metadata = Map::new();
    metadata.insert("name".into(), meta.name.clone().into());
    if let (true, Some(ns)) = (R::NAMESPACED, &meta.namespace) {
        metadata.insert("namespace".into(), ns.clone().into());
    }
    if !meta.labels.is_empty() {
        let labels = meta
            .labels
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), Value::String(v))
            })
            .collect();
        metadata.insert("labels".into(), Value::Object(labels));
    }
    if !meta.finalizers.is_empty() {
        metadata.insert("finalizers".into(), json!(meta.finalizers));
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), api_version::<R>().into());
    out.insert("kind".into(), R::KIND.into());
    out.insert("metadata".into(), Value::Object(metadata));
    for (key, value) in fields {
        if !matches!(key.as_str(), "api" | "kind" | "metadata") {
            out.insert(key, value);
        }
    }
    Value::Object(out)
}

/// The structural `openAPIV3Schema` of a kind, from its `schemars` JSON Schema: Kubernetes'
/// `apiVersion`, `kind` and `metadata` replace Krake's `api`, `kind` and `metadata`, and
/// every other top-level field is converted.
pub fn structural_schema(json_schema: &Value) -> Value {
    let converter = Converter {
        defs: json_schema
            .get("$defs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    };
    let mut properties = Map::new();
    properties.insert(
        "apiVersion".into(),
        json!({"description": "`<api>.krake.io/v1`.", "type": "string"}),
    );
    properties.insert(
        "kind".into(),
        json!({"description": "The kind.", "type": "string"}),
    );
    properties.insert("metadata".into(), json!({"type": "object"}));
    if let Some(fields) = json_schema.get("properties").and_then(Value::as_object) {
        for (name, node) in fields {
            if !is_envelope(name) {
                properties.insert(name.clone(), converter.node(node, 0));
            }
        }
    }
    let required: Vec<Value> = json_schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|name| !name.as_str().is_some_and(is_envelope))
        .cloned()
        .collect();
    let mut root = Map::new();
    if let Some(description) = json_schema.get("description") {
        root.insert("description".into(), description.clone());
    }
    root.insert("type".into(), "object".into());
    root.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        root.insert("required".into(), Value::Array(required));
    }
    Value::Object(root)
}

/// Krake's own envelope fields, which the Kubernetes ones replace.
fn is_envelope(name: &str) -> bool {
    matches!(name, "api" | "kind" | "metadata")
}

/// Whether `value` is valid for the structural `schema` and keeps all its fields under it
/// (Kubernetes prunes fields a schema does not declare). The `oneOf`/`anyOf` value
/// validations are not evaluated.
pub fn admits(schema: &Value, value: &Value) -> bool {
    if value.is_null() {
        return schema["nullable"] == true;
    }
    if let Some(members) = schema.get("enum").and_then(Value::as_array)
        && !members.contains(value)
    {
        return false;
    }
    let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
    match schema.get("type").and_then(Value::as_str) {
        None => preserve,
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value
            .as_array()
            .is_some_and(|items| items.iter().all(|item| admits(&schema["items"], item))),
        Some("object") => {
            let Some(fields) = value.as_object() else {
                return false;
            };
            let required_present = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .all(|name| fields.contains_key(name));
            required_present
                && fields.iter().all(|(name, field)| {
                    match (
                        schema["properties"].get(name),
                        schema.get("additionalProperties"),
                    ) {
                        (Some(property), _) => admits(property, field),
                        (None, Some(values)) => admits(values, field),
                        (None, None) => preserve,
                    }
                })
        }
        Some(_) => false,
    }
}

/// A node accepting any value, kept as is.
fn any_value(description: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(description) = description {
        out.insert("description".into(), description.clone());
    }
    out.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
    out
}

/// The JSON type of a value, as `type` names it.
fn json_type(value: &Value) -> Option<&'static str> {
    match value {
        Value::String(_) => Some("string"),
        Value::Bool(_) => Some("boolean"),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some("integer"),
        Value::Number(_) => Some("number"),
        Value::Array(_) => Some("array"),
        Value::Object(_) => Some("object"),
        Value::Null => None,
    }
}

/// Converts JSON Schema nodes, inlining the definitions of one schema.
struct Converter {
    defs: Map<String, Value>,
}

impl Converter {
    /// The structural form of one node.
    fn node(&self, node: &Value, depth: usize) -> Value {
        assert!(
            depth < MAX_DEPTH,
            "schema nested too deep (a recursive type?): not expressible as a structural schema"
        );
        let Some(obj) = node.as_object() else {
            // `true` (any value); `false` never occurs for serde types.
            return Value::Object(any_value(None));
        };
        if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
            // Inline the definition; the referring node's keywords (description, default) win.
            let name = target.strip_prefix("#/$defs/").unwrap_or(target);
            let def = self
                .defs
                .get(name)
                .unwrap_or_else(|| panic!("unresolved $ref {target}"));
            let mut merged = def.as_object().cloned().unwrap_or_default();
            for (key, value) in obj {
                if key != "$ref" {
                    merged.insert(key.clone(), value.clone());
                }
            }
            return self.node(&Value::Object(merged), depth + 1);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(variants) = obj.get(key).and_then(Value::as_array) {
                let mut rest = obj.clone();
                rest.remove(key);
                return self.union(key, variants, rest, depth);
            }
        }
        let mut out = Map::new();
        if let Some(description) = obj.get("description") {
            out.insert("description".into(), description.clone());
        }
        let (ty, nullable) = match obj.get("type") {
            Some(Value::String(ty)) => (Some(ty.clone()), false),
            Some(Value::Array(types)) => {
                let named: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                let non_null: Vec<&str> = named.iter().copied().filter(|t| *t != "null").collect();
                let ty = match non_null.as_slice() {
                    [one] => Some((*one).to_string()),
                    _ => None,
                };
                (ty, named.contains(&"null"))
            }
            _ => {
                // An untyped `const`/`enum` (a polymorphic container's tag) takes the type of
                // its values.
                let values: Vec<&Value> = match (obj.get("const"), obj.get("enum")) {
                    (Some(c), _) => vec![c],
                    (None, Some(Value::Array(members))) => members.iter().collect(),
                    _ => Vec::new(),
                };
                let types: Vec<&str> = values.iter().filter_map(|v| json_type(v)).collect();
                let ty = match types.first() {
                    Some(first) if types.iter().all(|t| t == first) => Some(first.to_string()),
                    _ => None,
                };
                (ty, values.iter().any(|v| v.is_null()))
            }
        };
        let Some(ty) = ty else {
            let mut out = any_value(obj.get("description"));
            if nullable {
                out.insert("nullable".into(), true.into());
            }
            return Value::Object(out);
        };
        out.insert("type".into(), ty.clone().into());
        if nullable {
            out.insert("nullable".into(), true.into());
        }
        match ty.as_str() {
            "object" => self.object(obj, &mut out, depth),
            "array" => {
                let items = match obj.get("items") {
                    Some(items @ Value::Object(_)) => self.node(items, depth + 1),
                    _ => Value::Object(any_value(None)),
                };
                out.insert("items".into(), items);
            }
            _ => {}
        }
        if let Some(Value::String(format)) = obj.get("format")
            && KNOWN_FORMATS.contains(&format.as_str())
        {
            out.insert("format".into(), format.clone().into());
        }
        let members: Option<Vec<Value>> = match (obj.get("const"), obj.get("enum")) {
            (Some(c), _) => Some(vec![c.clone()]),
            (None, Some(Value::Array(members))) => Some(members.clone()),
            _ => None,
        };
        if let Some(members) = members {
            // `nullable` admits null; Kubernetes does not want it among the members.
            let members: Vec<Value> = members.into_iter().filter(|m| !m.is_null()).collect();
            out.insert("enum".into(), Value::Array(members));
        }
        for key in COPIED_VALIDATIONS {
            if let Some(value) = obj.get(*key) {
                out.insert((*key).into(), value.clone());
            }
        }
        let mut out = Value::Object(out);
        set_default(&mut out, obj.get("default"));
        out
    }

    /// The fields of an object node: declared properties, or one schema for the values of
    /// a map, or any fields at all.
    fn object(&self, obj: &Map<String, Value>, out: &mut Map<String, Value>, depth: usize) {
        let additional = obj.get("additionalProperties");
        match obj.get("properties").and_then(Value::as_object) {
            Some(properties) => {
                let converted: Map<String, Value> = properties
                    .iter()
                    .map(|(name, node)| (name.clone(), self.node(node, depth + 1)))
                    .collect();
                out.insert("properties".into(), Value::Object(converted));
                if let Some(required) = obj.get("required").and_then(Value::as_array)
                    && !required.is_empty()
                {
                    out.insert("required".into(), Value::Array(required.clone()));
                }
                // Kubernetes forbids `properties` next to `additionalProperties`: keep the
                // extra fields instead of describing them.
                if matches!(additional, Some(Value::Object(_)) | Some(Value::Bool(true))) {
                    out.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
                }
            }
            None => match additional {
                Some(values @ Value::Object(_)) => {
                    out.insert("additionalProperties".into(), self.node(values, depth + 1));
                }
                // A closed object without properties admits only `{}`.
                Some(Value::Bool(false)) => {}
                _ => {
                    out.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
                }
            },
        }
    }

    /// `anyOf`/`oneOf`: an optional value (`X | null`), a polymorphic container (objects
    /// told apart by their fields), or anything else, which is kept as is.
    fn union(
        &self,
        key: &str,
        variants: &[Value],
        rest: Map<String, Value>,
        depth: usize,
    ) -> Value {
        let is_null = |v: &&Value| v.get("type").and_then(Value::as_str) == Some("null");
        let nullable = variants.iter().any(|v| is_null(&v));
        let others: Vec<&Value> = variants.iter().filter(|v| !is_null(v)).collect();
        let mut out = match others.as_slice() {
            [one] => {
                let mut merged = one.as_object().cloned().unwrap_or_default();
                for (k, v) in &rest {
                    merged.insert(k.clone(), v.clone());
                }
                // A null default is dropped anyway; it only says the field is optional.
                merged.remove("default");
                self.node(&Value::Object(merged), depth + 1)
            }
            _ => {
                let converted: Vec<Value> =
                    others.iter().map(|v| self.node(v, depth + 1)).collect();
                match merge_objects(key, &converted) {
                    Some(mut merged) => {
                        if let Some(description) = rest.get("description") {
                            merged.insert("description".into(), description.clone());
                        }
                        // `description` first, as everywhere else.
                        let mut ordered = Map::new();
                        if let Some(d) = merged.remove("description") {
                            ordered.insert("description".into(), d);
                        }
                        ordered.extend(merged);
                        Value::Object(ordered)
                    }
                    None => Value::Object(any_value(rest.get("description"))),
                }
            }
        };
        if nullable {
            out = mark_nullable(out);
        }
        set_default(&mut out, rest.get("default"));
        out
    }
}

/// Adds `nullable: true` next to the node's `type` (keeps the manifests readable).
fn mark_nullable(node: Value) -> Value {
    let Value::Object(fields) = node else {
        return node;
    };
    let anchor = if fields.contains_key("type") {
        "type"
    } else {
        "description"
    };
    let mut out = Map::new();
    let mut placed = false;
    for (key, value) in fields {
        if key == "nullable" {
            continue;
        }
        let is_anchor = key == anchor;
        out.insert(key, value);
        if is_anchor {
            out.insert("nullable".into(), true.into());
            placed = true;
        }
    }
    if !placed {
        out.insert("nullable".into(), true.into());
    }
    Value::Object(out)
}

/// Sets `default` on a converted node when Kubernetes would accept it: not null (which only
/// says "optional") and valid for the node, with no field the node would prune.
fn set_default(node: &mut Value, default: Option<&Value>) {
    if let Some(default) = default
        && !default.is_null()
        && admits(node, default)
    {
        node["default"] = default.clone();
    }
}

/// Object variants told apart by their fields, as one object declaring every variant's
/// fields, with the variants as `oneOf`/`anyOf` value validations (their required fields
/// and tag values). `None` when a variant is not an object with properties, or two variants
/// declare the same field differently (other than by its enum members).
fn merge_objects(key: &str, variants: &[Value]) -> Option<Map<String, Value>> {
    let mut properties = Map::new();
    let mut required: Option<Vec<Value>> = None;
    let mut validations = Vec::new();
    for variant in variants {
        if variant["type"] != "object" || variant["nullable"] == true {
            return None;
        }
        let fields = variant["properties"].as_object()?;
        let mut checks = Map::new();
        for (name, schema) in fields {
            if let Some(members) = schema.get("enum") {
                checks.insert(name.clone(), json!({"enum": members}));
            }
            match properties.get_mut(name) {
                None => {
                    properties.insert(name.clone(), schema.clone());
                }
                Some(existing) if existing == schema => {}
                Some(existing) => {
                    let mut a = existing.clone();
                    let mut b = schema.clone();
                    let (Some(Value::Array(ea)), Some(Value::Array(eb))) = (
                        a.as_object_mut()?.remove("enum"),
                        b.as_object_mut()?.remove("enum"),
                    ) else {
                        return None;
                    };
                    if a != b {
                        return None;
                    }
                    let mut members = ea;
                    members.extend(eb.into_iter().filter(|m| !members_contains(existing, m)));
                    existing["enum"] = Value::Array(members);
                }
            }
        }
        let variant_required = variant["required"].as_array().cloned().unwrap_or_default();
        let mut validation = Map::new();
        if !checks.is_empty() {
            validation.insert("properties".into(), Value::Object(checks));
        }
        if !variant_required.is_empty() {
            validation.insert("required".into(), Value::Array(variant_required.clone()));
        }
        validations.push(Value::Object(validation));
        required = Some(match required {
            None => variant_required,
            Some(so_far) => so_far
                .into_iter()
                .filter(|name| variant_required.contains(name))
                .collect(),
        });
    }
    let mut out = Map::new();
    out.insert("type".into(), "object".into());
    out.insert("properties".into(), Value::Object(properties));
    if let Some(required) = required.filter(|r| !r.is_empty()) {
        out.insert("required".into(), Value::Array(required));
    }
    out.insert(key.into(), Value::Array(validations));
    Some(out)
}

fn members_contains(schema: &Value, member: &Value) -> bool {
    schema["enum"]
        .as_array()
        .is_some_and(|members| members.contains(member))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_reference_becomes_nullable_inline_object() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {"anyOf": [{"$ref": "#/$defs/S"}, {"type": "null"}], "default": null},
            },
            "$defs": {"S": {"type": "object", "properties": {"a": {"type": ["string", "null"]}}}},
        });
        let out = structural_schema(&schema);
        assert_eq!(
            out["properties"]["spec"],
            json!({"type": "object", "nullable": true,
                   "properties": {"a": {"type": "string", "nullable": true}}})
        );
    }

    #[test]
    fn polymorphic_container_declares_every_variant() {
        let schema = json!({
            "type": "object",
            "properties": {"spec": {"oneOf": [
                {"type": "object", "properties": {"type": {"const": "a"}, "a": {"type": "string"}},
                 "required": ["type", "a"]},
                {"type": "object", "properties": {"type": {"const": "b"}, "b": {"type": "integer"}},
                 "required": ["type", "b"]},
            ]}},
        });
        let spec = &structural_schema(&schema)["properties"]["spec"];
        assert_eq!(spec["type"], "object");
        assert_eq!(
            spec["properties"]["type"],
            json!({"type": "string", "enum": ["a", "b"]})
        );
        assert_eq!(spec["required"], json!(["type"]));
        assert_eq!(
            spec["oneOf"][1],
            json!({"properties": {"type": {"enum": ["b"]}}, "required": ["type", "b"]})
        );
    }

    #[test]
    fn defaults_are_kept_only_when_admitted() {
        let schema = json!({
            "type": "object",
            "properties": {
                "n": {"type": "integer", "default": 1},
                "o": {"type": "object", "properties": {"x": {"type": "string"}},
                      "required": ["x"], "default": {}},
            },
        });
        let out = structural_schema(&schema);
        assert_eq!(out["properties"]["n"]["default"], 1);
        assert!(out["properties"]["o"].get("default").is_none());
    }
}
