//! The crate's error type, [`ValidationErrors`], and the naming rules shared by every
//! kind: the resource-name rule (names end up in URLs and etcd keys) and the label rule
//! (labels are matched by constraints).
//!
//! Errors are collected as `(path, message)` pairs and rendered like upstream's
//! marshmallow error dictionaries, e.g.
//! `{'spec': {'constraints': ['Missing data for required field.']}}` or
//! `{'rules': {0: {'verbs': {1: ['Invalid enum member bogus']}}}}`.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::metadata::Metadata;
use crate::python::py_repr;

/// One step of an error path: an object field or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// Object key (`spec`, `_schema`, ...).
    Field(String),
    /// List index.
    Index(usize),
}

impl PathSegment {
    /// Shorthand for a field segment.
    pub fn field(name: impl Into<String>) -> Self {
        PathSegment::Field(name.into())
    }
}

impl From<&str> for PathSegment {
    fn from(s: &str) -> Self {
        PathSegment::Field(s.to_string())
    }
}

impl From<String> for PathSegment {
    fn from(s: String) -> Self {
        PathSegment::Field(s)
    }
}

impl From<usize> for PathSegment {
    fn from(i: usize) -> Self {
        PathSegment::Index(i)
    }
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSegment::Field(s) => f.write_str(s),
            PathSegment::Index(i) => write!(f, "{i}"),
        }
    }
}

/// Something that can be turned into an error path.
///
/// A `&str` is a dotted path (`"spec.constraints.cluster"`); segments made only of ASCII
/// digits become list indices (`"rules.0.verbs"`). The empty string is the root.
pub trait IntoPath {
    /// Convert into a list of segments.
    fn into_path(self) -> Vec<PathSegment>;
}

impl IntoPath for &str {
    fn into_path(self) -> Vec<PathSegment> {
        if self.is_empty() {
            return Vec::new();
        }
        self.split('.')
            .map(|s| {
                if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                    s.parse()
                        .map(PathSegment::Index)
                        .unwrap_or_else(|_| PathSegment::field(s))
                } else {
                    PathSegment::field(s)
                }
            })
            .collect()
    }
}

impl IntoPath for &String {
    fn into_path(self) -> Vec<PathSegment> {
        self.as_str().into_path()
    }
}

impl IntoPath for &[PathSegment] {
    fn into_path(self) -> Vec<PathSegment> {
        self.to_vec()
    }
}

impl<const N: usize> IntoPath for &[PathSegment; N] {
    fn into_path(self) -> Vec<PathSegment> {
        self.to_vec()
    }
}

impl IntoPath for Vec<PathSegment> {
    fn into_path(self) -> Vec<PathSegment> {
        self
    }
}

impl IntoPath for &Vec<PathSegment> {
    fn into_path(self) -> Vec<PathSegment> {
        self.clone()
    }
}

/// One validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the error is, from the root of the validated document.
    pub path: Vec<PathSegment>,
    /// For keyed errors (label rule): the offending label key or value. Rendered as a
    /// one-entry object `{subject: message}` in the error list.
    pub subject: Option<String>,
    /// Human-readable message (`Missing data for required field.`).
    pub message: String,
}

impl FieldError {
    /// The path in dotted form (`spec.manifest.0`), `_schema` for root errors.
    pub fn dotted_path(&self) -> String {
        if self.path.is_empty() {
            return "_schema".to_string();
        }
        self.path
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// A collection of validation errors, the error type of decoding and validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// No errors.
    pub fn new() -> Self {
        Self::default()
    }

    /// A collection with one error at `path`.
    pub fn at(path: impl IntoPath, msg: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(path, msg);
        e
    }

    /// Add an error at `path` (a dotted string, a slice or a vector of segments).
    pub fn add(&mut self, path: impl IntoPath, msg: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into_path(),
            subject: None,
            message: msg.into(),
        });
    }

    /// Add an error at a dotted path such as `"spec._schema"` or `"metadata.labels"`.
    pub fn add_field(&mut self, dotted: &str, msg: impl Into<String>) {
        self.add(dotted, msg);
    }

    /// Add a keyed error (`{subject: msg}` entry in the error list at `path`), the shape
    /// upstream uses for label errors.
    pub fn add_keyed(
        &mut self,
        path: impl IntoPath,
        subject: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.errors.push(FieldError {
            path: path.into_path(),
            subject: Some(subject.into()),
            message: msg.into(),
        });
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Move all errors of `other` into `self`, below `prefix`.
    pub fn merge_under(&mut self, prefix: impl IntoPath, other: ValidationErrors) {
        let prefix = prefix.into_path();
        for mut e in other.errors {
            let mut path = prefix.clone();
            path.append(&mut e.path);
            e.path = path;
            self.errors.push(e);
        }
    }

    /// Move all errors of `other` into `self` at their own paths.
    pub fn extend(&mut self, other: ValidationErrors) {
        self.errors.extend(other.errors);
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// The errors, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.errors.iter()
    }

    /// Whether some error path starts with `prefix`.
    pub fn has_errors_under(&self, prefix: impl IntoPath) -> bool {
        let prefix = prefix.into_path();
        self.errors.iter().any(|e| e.path.starts_with(&prefix))
    }

    /// The messages at exactly `path` (keyed errors included, without their subject).
    pub fn messages_at(&self, path: impl IntoPath) -> Vec<&str> {
        let path = path.into_path();
        self.errors
            .iter()
            .filter(|e| e.path == path)
            .map(|e| e.message.as_str())
            .collect()
    }

    /// The errors as a JSON tree: nested objects by path (list indices become string
    /// keys), leaves are lists of messages (keyed errors are one-entry objects); errors
    /// at the root are under `_schema`.
    pub fn to_json(&self) -> Value {
        self.tree().to_json()
    }

    fn tree(&self) -> Node {
        let mut root = Node::default();
        for e in &self.errors {
            let mut node = &mut root;
            let path: Vec<PathSegment> = if e.path.is_empty() {
                vec![PathSegment::field("_schema")]
            } else {
                e.path.clone()
            };
            for seg in &path {
                let pos = node.children.iter().position(|(s, _)| s == seg);
                let idx = match pos {
                    Some(i) => i,
                    None => {
                        node.children.push((seg.clone(), Node::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[idx].1;
            }
            node.messages.push((e.subject.clone(), e.message.clone()));
        }
        root
    }
}

#[derive(Default)]
struct Node {
    messages: Vec<(Option<String>, String)>,
    children: Vec<(PathSegment, Node)>,
}

impl Node {
    fn to_json(&self) -> Value {
        let msgs = || {
            Value::Array(
                self.messages
                    .iter()
                    .map(|(subject, msg)| match subject {
                        Some(s) => {
                            let mut m = Map::new();
                            m.insert(s.clone(), Value::String(msg.clone()));
                            Value::Object(m)
                        }
                        None => Value::String(msg.clone()),
                    })
                    .collect(),
            )
        };
        if self.children.is_empty() {
            return msgs();
        }
        let mut m = Map::new();
        if !self.messages.is_empty() {
            m.insert("_schema".into(), msgs());
        }
        for (seg, child) in &self.children {
            m.insert(seg.to_string(), child.to_json());
        }
        Value::Object(m)
    }

    fn write_repr(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let write_msgs = |f: &mut fmt::Formatter<'_>| -> fmt::Result {
            f.write_str("[")?;
            for (i, (subject, msg)) in self.messages.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                match subject {
                    Some(s) => write!(f, "{{{}: {}}}", py_repr(s), py_repr(msg))?,
                    None => f.write_str(&py_repr(msg))?,
                }
            }
            f.write_str("]")
        };
        if self.children.is_empty() {
            return write_msgs(f);
        }
        f.write_str("{")?;
        let mut first = true;
        if !self.messages.is_empty() {
            f.write_str("'_schema': ")?;
            write_msgs(f)?;
            first = false;
        }
        for (seg, child) in &self.children {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            match seg {
                PathSegment::Field(s) => f.write_str(&py_repr(s))?,
                PathSegment::Index(i) => write!(f, "{i}")?,
            }
            f.write_str(": ")?;
            child.write_repr(f)?;
        }
        f.write_str("}")
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = self.tree();
        if root.children.is_empty() && root.messages.is_empty() {
            return f.write_str("{}");
        }
        root.write_repr(f)
    }
}

// ---------------------------------------------------------------------------------
// Naming rules
// ---------------------------------------------------------------------------------

/// Upstream's label-key pattern, shown in label error messages.
pub const LABEL_KEY_PATTERN: &str = r"^([A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?/)?[A-Za-z0-9_]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9_])?$";
/// Upstream's label-value pattern, shown in label error messages.
pub const LABEL_VALUE_PATTERN: &str = r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9_])?$";
/// The resource-name pattern, as upstream's.
pub const RESOURCE_NAME_PATTERN: &str = r"^[A-Za-z0-9_]([A-Za-z0-9_.:-]{0,253}[A-Za-z0-9_])?$";

static LABEL_KEY_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(LABEL_KEY_PATTERN).expect("valid regex"));
static LABEL_VALUE_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(LABEL_VALUE_PATTERN).expect("valid regex"));
static RESOURCE_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(RESOURCE_NAME_PATTERN).expect("valid regex"));

/// Message for an invalid `metadata.name`.
pub const INVALID_NAME: &str = "Invalid character in resource name.";
/// Message for an invalid `metadata.namespace`.
pub const INVALID_NAMESPACE: &str = "Invalid character in resource namespace.";

/// The resource-name rule: 1–255 ASCII characters from `A–Z a–z 0–9 _ . : -`,
/// first and last character from `A–Z a–z 0–9 _`.
pub fn is_valid_resource_name(name: &str) -> bool {
    RESOURCE_NAME_RE.is_match(name)
}

/// The label-key rule: `[prefix "/"] name`, name 1–63 characters, prefix
/// 1–253 characters, both from `A–Z a–z 0–9 _ . -` with alphanumeric or `_` ends.
pub fn is_valid_label_key(key: &str) -> bool {
    LABEL_KEY_RE.is_match(key)
}

/// The label-value rule: 1–63 characters from `A–Z a–z 0–9 _ . -`, first and
/// last alphanumeric or `_`. The empty string is invalid.
pub fn is_valid_label_value(value: &str) -> bool {
    LABEL_VALUE_RE.is_match(value)
}

/// Check a label key, returning upstream's error message when invalid.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    if is_valid_label_key(key) {
        Ok(())
    } else {
        Err(format!(
            "Label key {} does not match the regex {}.",
            py_repr(key),
            py_repr(LABEL_KEY_PATTERN)
        ))
    }
}

/// Check a label value, returning upstream's error message when invalid.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if is_valid_label_value(value) {
        Ok(())
    } else {
        Err(format!(
            "Label value {} does not match the regex {}.",
            py_repr(value),
            py_repr(LABEL_VALUE_PATTERN)
        ))
    }
}

/// Python's `str()` of a JSON value, used as the subject of label errors about values
/// that are not strings.
fn py_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Validate a label map with the label-key and label-value rules. Every offending key or value adds one keyed error
/// `{offending: message}` at `path` (normally `metadata.labels`).
pub fn validate_labels(
    labels: &Map<String, Value>,
    errors: &mut ValidationErrors,
    path: impl IntoPath,
) {
    let path = path.into_path();
    for (key, value) in labels {
        if let Err(msg) = validate_label_key(key) {
            errors.add_keyed(&path, key.clone(), msg);
        }
        match value {
            Value::String(s) => {
                if let Err(msg) = validate_label_value(s) {
                    errors.add_keyed(&path, s.clone(), msg);
                }
            }
            other => errors.add_keyed(&path, py_str(other), "expected string or bytes-like object"),
        }
    }
}

/// Validate the metadata rules shared by every kind: name and namespace rule, label rule.
pub fn validate_metadata(metadata: &Metadata, errors: &mut ValidationErrors) {
    if !is_valid_resource_name(&metadata.name) {
        errors.add("metadata.name", INVALID_NAME);
    }
    if let Some(ns) = &metadata.namespace
        && !is_valid_resource_name(ns)
    {
        errors.add("metadata.namespace", INVALID_NAMESPACE);
    }
    validate_labels(&metadata.labels, errors, "metadata.labels");
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[test]
    fn display_renders_marshmallow_like_dicts() {
        let e = ValidationErrors::at("spec.constraints", "Missing data for required field.");
        assert_eq!(
            e.to_string(),
            "{'spec': {'constraints': ['Missing data for required field.']}}"
        );

        let e = ValidationErrors::at("rules.0.verbs.1", "Invalid enum member bogus");
        assert_eq!(
            e.to_string(),
            "{'rules': {0: {'verbs': {1: ['Invalid enum member bogus']}}}}"
        );

        let mut e = ValidationErrors::new();
        e.add_field("spec._schema", "cross");
        e.add("spec.url", "a");
        e.add("spec.url", "b");
        e.add("", "root");
        assert_eq!(
            e.to_string(),
            "{'spec': {'_schema': ['cross'], 'url': ['a', 'b']}, '_schema': ['root']}"
        );
        assert_eq!(e.len(), 4);
    }

    #[test]
    fn display_of_empty_and_quotes() {
        assert_eq!(ValidationErrors::new().to_string(), "{}");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("a\tb\\"), "'a\\tb\\\\'");
    }

    #[test]
    fn paths_parse_indices_and_merge() {
        assert_eq!(
            "rules.0.verbs".into_path(),
            vec![
                PathSegment::field("rules"),
                PathSegment::Index(0),
                PathSegment::field("verbs")
            ]
        );
        let mut outer = ValidationErrors::new();
        outer.merge_under("spec.openstack", ValidationErrors::at("auth.type", "x"));
        assert_eq!(
            outer.iter().next().unwrap().dotted_path(),
            "spec.openstack.auth.type"
        );
        assert!(outer.has_errors_under("spec"));
        assert!(!outer.has_errors_under("metadata"));
        assert_eq!(outer.messages_at("spec.openstack.auth.type"), vec!["x"]);
        assert!(outer.clone().into_result().is_err());
        assert!(ValidationErrors::new().into_result().is_ok());
    }

    #[test]
    fn to_json_nests_and_keys_subjects() {
        let mut e = ValidationErrors::new();
        e.add_keyed("metadata.labels", "-a", "bad");
        e.add("rules.0", "x");
        assert_eq!(
            e.to_json(),
            json!({"metadata": {"labels": [{"-a": "bad"}]}, "rules": {"0": ["x"]}})
        );
        assert_eq!(
            e.to_string(),
            "{'metadata': {'labels': [{'-a': 'bad'}]}, 'rules': {0: ['x']}}"
        );
    }

    #[rstest]
    #[case("a")]
    #[case("A")]
    #[case("_")]
    #[case("1")]
    #[case("a.b")]
    #[case("a:b")]
    #[case("a..b")]
    #[case("a--b")]
    #[case("Ab-C.d:e_f")]
    fn resource_name_accepted(#[case] name: &str) {
        assert!(is_valid_resource_name(name), "{name}");
    }

    #[rstest]
    #[case("")]
    #[case("-a")]
    #[case("a-")]
    #[case(".a")]
    #[case("a b")]
    #[case("a/b")]
    #[case("é")]
    #[case("a\n")]
    fn resource_name_rejected(#[case] name: &str) {
        assert!(!is_valid_resource_name(name), "{name:?}");
    }

    #[test]
    fn resource_name_length_limits() {
        assert!(is_valid_resource_name(&"a".repeat(255)));
        assert!(!is_valid_resource_name(&"a".repeat(256)));
    }

    #[rstest]
    #[case("a", true)]
    #[case("a.b-c_d", true)]
    #[case("example.com/zone", true)]
    #[case("_x_", true)]
    #[case("", false)]
    #[case("-a", false)]
    #[case("a-", false)]
    #[case("a:b", false)]
    #[case("a/b/c", false)]
    #[case("/a", false)]
    #[case("a/", false)]
    #[case("é", false)]
    #[case("a b", false)]
    fn label_key_rule(#[case] key: &str, #[case] ok: bool) {
        assert_eq!(is_valid_label_key(key), ok, "{key:?}");
    }

    #[test]
    fn label_length_limits() {
        assert!(is_valid_label_value(&"a".repeat(63)));
        assert!(!is_valid_label_value(&"a".repeat(64)));
        assert!(is_valid_label_key(&"a".repeat(63)));
        assert!(!is_valid_label_key(&"a".repeat(64)));
        let prefix = "p".repeat(253);
        assert!(is_valid_label_key(&format!("{prefix}/{}", "a".repeat(63))));
        assert!(!is_valid_label_key(&format!("p{prefix}/a")));
        assert!(!is_valid_label_value("a/b"));
        assert!(!is_valid_label_value(""));
        assert!(!is_valid_label_value("a:b"));
    }

    #[test]
    fn labels_error_shape() {
        let labels = json!({"ok": "fine", "-bad": "v", "k": "", "n": 5, "z": null});
        let mut errors = ValidationErrors::new();
        validate_labels(labels.as_object().unwrap(), &mut errors, "metadata.labels");
        let subjects: Vec<_> = errors.iter().map(|e| e.subject.clone().unwrap()).collect();
        assert_eq!(subjects, vec!["-bad", "", "5", "None"]);
        assert!(errors.iter().all(|e| e.dotted_path() == "metadata.labels"));
        let first = errors.iter().next().unwrap();
        assert!(
            first
                .message
                .starts_with("Label key '-bad' does not match the regex"),
            "{}",
            first.message
        );
        assert_eq!(
            errors.iter().nth(2).unwrap().message,
            "expected string or bytes-like object"
        );
        assert!(
            errors
                .to_string()
                .starts_with("{'metadata': {'labels': [{'-bad': \"Label key '-bad'")
        );
    }

    #[test]
    fn metadata_rules() {
        let mut m = Metadata::named("ok");
        m.namespace = Some("bad ns".into());
        let mut errors = ValidationErrors::new();
        validate_metadata(&m, &mut errors);
        assert_eq!(
            errors.messages_at("metadata.namespace"),
            vec![INVALID_NAMESPACE]
        );
        let mut errors = ValidationErrors::new();
        validate_metadata(&Metadata::named("-x"), &mut errors);
        assert_eq!(errors.messages_at("metadata.name"), vec![INVALID_NAME]);
    }
}
