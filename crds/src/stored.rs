//! Decoding objects as they are stored, including objects written by older upstream
//! versions.
//!
//! Fields become required over time (upstream 1.0.1's wheel wrote `Metric`s without
//! `spec.allowed_values` and metadata without `inherit_labels`). Requests must satisfy
//! today's rules, but stored data must still be served: [`decode_stored`] fills every
//! required field a stored object lacks with its default before decoding, for every
//! kind, driven by the kind's JSON Schema (the same one the API documents):
//!
//! * the schema's `default`, when it has one;
//! * otherwise the empty value of the field's type: `null` for nullable fields, `[]`,
//!   `{}` (with its own required fields filled the same way), `false`, `0`, `0.0`.
//!
//! Strings, enum members and timestamps have no meaningful empty value: a stored object
//! lacking a required one stays undecodable (it was never written that way).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::decode::from_value_tracked;
use crate::resource::Resource;
use crate::validation::ValidationErrors;

/// Bound on schema nesting followed while filling defaults (the kinds' schemas are far
/// shallower; the bound only guards against recursive definitions).
const MAX_DEPTH: usize = 64;

/// Decode a stored object of kind `R`, filling the defaults of required fields it lacks
/// (see the module documentation). The object is not validated: stored data was valid
/// under the rules of the version that wrote it.
pub fn decode_stored<R: Resource>(bytes: &[u8]) -> Result<R, ValidationErrors> {
    // Fast path: data written by this version decodes as is.
    let first_error = match serde_json::from_slice::<R>(bytes) {
        Ok(object) => return Ok(object),
        Err(e) => e,
    };
    let mut value: Value = serde_json::from_slice(bytes).map_err(|_| {
        ValidationErrors::at(
            "_schema",
            format!("Not valid JSON: {}", json_error_position(&first_error)),
        )
    })?;
    fill_stored_defaults::<R>(&mut value);
    from_value_tracked(value).map_err(|(path, msg)| ValidationErrors::at(path, msg))
}

fn json_error_position(e: &serde_json::Error) -> String {
    format!("line {} column {}", e.line(), e.column())
}

/// Fill, in the JSON of a stored object of kind `R`, the defaults of the required fields
/// it lacks, at every depth.
pub fn fill_stored_defaults<R: Resource>(value: &mut Value) {
    let schema = schema_of::<R>();
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    Filler { defs }.fill(&schema, value, 0);
}

/// The JSON Schema of `R`, generated once per kind.
fn schema_of<R: Resource>() -> Arc<Value> {
    static CACHE: LazyLock<Mutex<HashMap<TypeId, Arc<Value>>>> = LazyLock::new(Default::default);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    cache
        .entry(TypeId::of::<R>())
        .or_insert_with(|| {
            Arc::new(serde_json::to_value(schemars::schema_for!(R)).expect("a JSON Schema is JSON"))
        })
        .clone()
}

struct Filler<'a> {
    defs: &'a Map<String, Value>,
}

impl<'a> Filler<'a> {
    /// Follow `$ref`s into `$defs`.
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..MAX_DEPTH {
            let Some(target) = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
                .and_then(|name| self.defs.get(name))
            else {
                break;
            };
            schema = target;
        }
        schema
    }

    /// Whether `value` has one of the JSON types `schema` allows (and matches its
    /// `const` properties, which tell polymorphic variants apart).
    fn matches(&self, schema: &'a Value, value: &Value) -> bool {
        let schema = self.resolve(schema);
        let type_ok = match schema.get("type") {
            Some(Value::String(t)) => type_matches(t, value),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, value)),
            _ => true,
        };
        let consts_ok = match (schema.get("properties").and_then(Value::as_object), value) {
            (Some(props), Value::Object(map)) => {
                props.iter().all(|(name, sub)| match sub.get("const") {
                    Some(c) => map.get(name) == Some(c),
                    None => true,
                })
            }
            _ => true,
        };
        type_ok && consts_ok
    }

    fn fill(&self, schema: &'a Value, value: &mut Value, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let schema = self.resolve(schema);
        for combinator in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = schema.get(combinator) {
                for branch in branches {
                    if combinator == "allOf" || self.matches(branch, value) {
                        self.fill(branch, value, depth + 1);
                    }
                }
            }
        }
        match value {
            Value::Object(map) => {
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    let required = schema
                        .get("required")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    for name in required.iter().filter_map(Value::as_str) {
                        if !map.contains_key(name)
                            && let Some(sub) = props.get(name)
                            && let Some(default) = self.empty(sub, depth + 1)
                        {
                            map.insert(name.to_string(), default);
                        }
                    }
                    for (name, sub) in props {
                        if let Some(v) = map.get_mut(name) {
                            self.fill(sub, v, depth + 1);
                        }
                    }
                } else if let Some(additional @ Value::Object(_)) =
                    schema.get("additionalProperties")
                {
                    for v in map.values_mut() {
                        self.fill(additional, v, depth + 1);
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for v in items {
                        self.fill(item_schema, v, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    /// The default of a missing field with schema `schema`, if it has one.
    fn empty(&self, schema: &'a Value, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        if let Some(default) = schema.get("default") {
            return Some(default.clone());
        }
        let schema = self.resolve(schema);
        if let Some(default) = schema.get("default") {
            return Some(default.clone());
        }
        let nullable = |s: &Value| match s.get("type") {
            Some(Value::String(t)) => t == "null",
            Some(Value::Array(ts)) => ts.iter().any(|t| t == "null"),
            _ => false,
        };
        if nullable(schema) {
            return Some(Value::Null);
        }
        if let Some(Value::Array(branches)) = schema.get("anyOf")
            && branches.iter().any(|b| nullable(self.resolve(b)))
        {
            return Some(Value::Null);
        }
        if schema.get("enum").is_some() || schema.get("const").is_some() {
            return None;
        }
        match schema.get("type").and_then(Value::as_str)? {
            "array" => Some(Value::Array(Vec::new())),
            "object" => {
                let mut v = Value::Object(Map::new());
                self.fill(schema, &mut v, depth + 1);
                Some(v)
            }
            "boolean" => Some(Value::Bool(false)),
            "integer" => Some(Value::from(0)),
            "number" => Some(Value::from(0.0)),
            _ => None,
        }
    }
}

fn type_matches(t: &str, value: &Value) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "null" => value.is_null(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::core::{GlobalMetric, Metric};

    fn metric_as_1_0_1_stored() -> Value {
        json!({"api": "core", "kind": "Metric",
               "metadata": {"name": "m", "namespace": "ns", "labels": {}, "finalizers": [],
                            "uid": "c6a5d0a4-6a8e-4d32-9a83-3a1a1c0f7d11",
                            "created": "2024-01-01T00:00:00.123456+00:00",
                            "modified": "2024-01-01T00:00:00.123456+00:00",
                            "deleted": null, "owners": []},
               "spec": {"min": 0.0, "max": 1.0, "provider": {"name": "prom", "metric": "load"}}})
    }

    #[test]
    fn a_metric_without_allowed_values_is_served_with_the_default() {
        let bytes = serde_json::to_vec(&metric_as_1_0_1_stored()).unwrap();
        // Today's plain decoding refuses it: the reason this module exists.
        assert!(serde_json::from_slice::<Metric>(&bytes).is_err());
        let m: Metric = decode_stored(&bytes).unwrap();
        assert!(m.spec.allowed_values.is_empty());
        assert!(!m.metadata.inherit_labels);
        let mut global = metric_as_1_0_1_stored();
        global["kind"] = json!("GlobalMetric");
        global["metadata"]["namespace"] = Value::Null;
        let g: GlobalMetric = decode_stored(&serde_json::to_vec(&global).unwrap()).unwrap();
        assert!(g.spec.allowed_values.is_empty());
    }

    #[test]
    fn fields_without_an_empty_value_stay_required() {
        let mut v = metric_as_1_0_1_stored();
        v["spec"]["provider"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        let e = decode_stored::<Metric>(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "{'spec': {'provider': {'name': ['Missing data for required field.']}}}"
        );
        let e = decode_stored::<Metric>(b"{not json").unwrap_err();
        assert!(e.to_string().contains("Not valid JSON"), "{e}");
    }

    #[test]
    fn nested_and_listed_objects_are_filled() {
        use crate::core::Role;
        // A role rule lacking its list of namespaces, and a role lacking its rules.
        let v = json!({"api": "core", "kind": "Role", "metadata": {"name": "r"},
                       "rules": [{"api": "core", "resources": ["roles"], "verbs": ["get"]}]});
        let r: Role = decode_stored(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(r.rules[0].namespaces.is_empty());
        let v = json!({"api": "core", "kind": "Role", "metadata": {"name": "r"}});
        let r: Role = decode_stored(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(r.rules.is_empty());
    }
}
