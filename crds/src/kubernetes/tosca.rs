//! TOSCA templates, the alternative to a manifest (Application) or a kubeconfig
//! (Cluster).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

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
