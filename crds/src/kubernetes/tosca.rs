//! TOSCA templates, the alternative to a manifest (Application) or a kubeconfig
//! (Cluster).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Message for a TOSCA object that is not a valid template.
pub const INVALID_TOSCA_CONTENT: &str = "Invalid TOSCA template content.";

/// The `tosca_definitions_version` values upstream's TOSCA parser accepts (the simple
/// profile versions and the NFV and MEC profile extensions).
pub const TOSCA_VERSIONS: &[&str] = &[
    "tosca_simple_yaml_1_0",
    "tosca_simple_yaml_1_2",
    "tosca_simple_yaml_1_3",
    "tosca_simple_profile_for_nfv_1_0_0",
    "tosca_simple_profile_for_mec_1_0_0",
];

/// The top-level sections of a TOSCA service template.
const TEMPLATE_SECTIONS: &[&str] = &[
    "tosca_definitions_version",
    "tosca_default_namespace",
    "template_name",
    "topology_template",
    "template_author",
    "template_version",
    "description",
    "imports",
    "dsl_definitions",
    "node_types",
    "relationship_types",
    "relationship_templates",
    "capability_types",
    "artifact_types",
    "data_types",
    "interface_types",
    "policy_types",
    "group_types",
    "repositories",
    "metadata",
];

/// The sections of a `topology_template`.
const TOPOLOGY_SECTIONS: &[&str] = &[
    "description",
    "inputs",
    "node_templates",
    "relationship_templates",
    "outputs",
    "groups",
    "substitution_mappings",
    "policies",
    "workflows",
];

/// Top-level sections holding a map of named definitions.
const MAP_SECTIONS: &[&str] = &[
    "dsl_definitions",
    "node_types",
    "relationship_types",
    "relationship_templates",
    "capability_types",
    "artifact_types",
    "data_types",
    "interface_types",
    "policy_types",
    "group_types",
    "repositories",
    "metadata",
];

/// Structural check of a TOSCA template given as an object.
///
/// Upstream validates TOSCA objects with the OpenStack `tosca-parser`. This
/// re-implementation does not embed a TOSCA parser; it checks what the parser checks
/// first, with the parser's wording after upstream's `Invalid TOSCA template content.`:
///
/// * `tosca_definitions_version` is required and must be one of [`TOSCA_VERSIONS`];
/// * every top-level key must be a known section; sections of named definitions must be
///   objects, `imports` a list, `description` a string;
/// * `topology_template`, when present, must be an object of known sections; its
///   `inputs`, `node_templates`, `relationship_templates`, `outputs`, `groups` and
///   `substitution_mappings` must be objects and `policies` a list; every node template
///   must be an object with a string `type`.
pub fn validate_tosca_template(tosca: &Map<String, Value>) -> Result<(), String> {
    let err = |detail: String| format!("{INVALID_TOSCA_CONTENT} {detail}");
    match tosca.get("tosca_definitions_version") {
        None | Some(Value::Null) => {
            return Err(err(
                "Template is missing required field \"tosca_definitions_version\".".into(),
            ));
        }
        Some(Value::String(v)) if TOSCA_VERSIONS.contains(&v.as_str()) => {}
        Some(other) => {
            let version = match other {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            return Err(err(format!(
                "The template version \"{}\" of \"tosca_definitions_version\" is invalid. Valid versions are \"{}\".",
                shown(&version),
                TOSCA_VERSIONS.join("\", \"")
            )));
        }
    }
    for (name, value) in tosca {
        if !TEMPLATE_SECTIONS.contains(&name.as_str()) {
            return Err(err(format!(
                "Template contains unknown field \"{}\".",
                shown(name)
            )));
        }
        let ok = match name.as_str() {
            "imports" => value.is_array() || value.is_null(),
            "description"
            | "template_name"
            | "template_author"
            | "template_version"
            | "tosca_default_namespace" => value.is_string() || value.is_null(),
            n if MAP_SECTIONS.contains(&n) => value.is_object() || value.is_null(),
            _ => true,
        };
        if !ok {
            return Err(err(format!("The section \"{name}\" has the wrong type.")));
        }
    }
    let Some(topology) = tosca.get("topology_template") else {
        return Ok(());
    };
    let Some(topology) = topology.as_object() else {
        return Err(err(
            "The section \"topology_template\" must be a mapping.".into()
        ));
    };
    for (name, value) in topology {
        if !TOPOLOGY_SECTIONS.contains(&name.as_str()) {
            return Err(err(format!(
                "The topology template contains unknown field \"{}\".",
                shown(name)
            )));
        }
        let ok = match name.as_str() {
            "policies" | "workflows" => value.is_array() || value.is_object() || value.is_null(),
            "description" => value.is_string() || value.is_null(),
            _ => value.is_object() || value.is_null(),
        };
        if !ok {
            return Err(err(format!(
                "The section \"topology_template.{name}\" has the wrong type."
            )));
        }
    }
    if let Some(Value::Object(nodes)) = topology.get("node_templates") {
        for (name, node) in nodes {
            let ok = node
                .as_object()
                .and_then(|n| n.get("type"))
                .is_some_and(Value::is_string);
            if !ok {
                return Err(err(format!(
                    "The node template \"{}\" has no string \"type\".",
                    shown(name)
                )));
            }
        }
    }
    Ok(())
}

/// A client-supplied name as shown in a message: at most 64 characters, so that a huge
/// key cannot blow up the problem document.
fn shown(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: Value) -> Result<(), String> {
        validate_tosca_template(v.as_object().expect("an object"))
    }

    #[test]
    fn accepts_the_versions_upstream_accepts() {
        for version in TOSCA_VERSIONS {
            check(json!({"tosca_definitions_version": version})).unwrap();
        }
        check(json!({
            "tosca_definitions_version": "tosca_simple_yaml_1_0",
            "description": "d", "metadata": {"a": "b"}, "imports": [],
            "topology_template": {"inputs": {}, "outputs": {"kubeconfig": {"value": "x"}},
                "node_templates": {"pod": {"type": "tosca.nodes.indigo.KubernetesObject"}}}
        }))
        .unwrap();
    }

    #[test]
    fn refuses_an_unknown_version_naming_it() {
        let e = check(json!({"tosca_definitions_version": "bogus"})).unwrap_err();
        assert!(e.starts_with(INVALID_TOSCA_CONTENT), "{e}");
        assert!(e.contains("\"bogus\""), "{e}");
        assert!(e.contains("tosca_definitions_version"), "{e}");
        assert!(e.contains("tosca_simple_yaml_1_3"), "{e}");
        let e = check(json!({"tosca_definitions_version": 5})).unwrap_err();
        assert!(e.contains("\"5\""), "{e}");
    }

    #[test]
    fn refuses_a_missing_version() {
        let e = check(json!({"topology_template": {}})).unwrap_err();
        assert!(
            e.contains("missing required field \"tosca_definitions_version\""),
            "{e}"
        );
    }

    #[test]
    fn refuses_unknown_sections_naming_them() {
        let e = check(json!({"tosca_definitions_version": "tosca_simple_yaml_1_0", "foo": 1}))
            .unwrap_err();
        assert!(e.contains("unknown field \"foo\""), "{e}");
        let e = check(json!({"tosca_definitions_version": "tosca_simple_yaml_1_0",
                             "topology_template": {"bar": {}}}))
        .unwrap_err();
        assert!(e.contains("unknown field \"bar\""), "{e}");
    }

    #[test]
    fn refuses_wrong_shapes() {
        for (v, name) in [
            (json!({"topology_template": []}), "topology_template"),
            (json!({"node_types": []}), "node_types"),
            (json!({"imports": {}}), "imports"),
            (
                json!({"topology_template": {"outputs": []}}),
                "topology_template.outputs",
            ),
            (
                json!({"topology_template": {"node_templates": {"n": {}}}}),
                "\"n\"",
            ),
            (
                json!({"topology_template": {"node_templates": {"n": []}}}),
                "\"n\"",
            ),
        ] {
            let mut template = v.as_object().unwrap().clone();
            template.insert(
                "tosca_definitions_version".into(),
                json!("tosca_simple_yaml_1_2"),
            );
            let e = validate_tosca_template(&template).unwrap_err();
            assert!(
                e.starts_with(INVALID_TOSCA_CONTENT) && e.contains(name),
                "{v}: {e}"
            );
        }
    }
}
