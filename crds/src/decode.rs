//! Turning request JSON into typed, validated objects, with upstream-like error paths
//! and messages.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::coercion::NULL_MSG;
use crate::resource::Resource;
use crate::validation::{PathSegment, ValidationErrors};

/// A request-only kind (`ClusterBinding`, `Complete`, ...): its `api` and `kind`
/// constants, checked like those of persisted kinds.
pub trait RequestKind {
    /// API group name.
    const API: &'static str;
    /// Kind name.
    const KIND: &'static str;
}

/// Marker starting an error message that carries a path below the position serde
/// reported (used by polymorphic containers, which decode their sub-object separately).
const NESTED_MARK: char = '\u{0}';

/// Build a serde error located at `path` below the current position.
pub(crate) fn nested_error<E: serde::de::Error>(path: &[&str], msg: &str) -> E {
    let segs: Vec<PathSegment> = path.iter().map(|s| PathSegment::field(*s)).collect();
    E::custom(encode_nested(&segs, msg))
}

fn encode_nested(path: &[PathSegment], msg: &str) -> String {
    let segs: Vec<Value> = path
        .iter()
        .map(|s| match s {
            PathSegment::Field(f) => Value::String(f.clone()),
            PathSegment::Index(i) => Value::from(*i),
        })
        .collect();
    format!("{NESTED_MARK}{}{NESTED_MARK}{msg}", Value::Array(segs))
}

fn decode_nested(msg: &str) -> Option<(Vec<PathSegment>, String)> {
    let rest = msg.strip_prefix(NESTED_MARK)?;
    let (json, msg) = rest.split_once(NESTED_MARK)?;
    let Value::Array(items) = serde_json::from_str(json).ok()? else {
        return None;
    };
    let path = items
        .into_iter()
        .map(|v| match v {
            Value::Number(n) => PathSegment::Index(n.as_u64().unwrap_or_default() as usize),
            Value::String(s) => PathSegment::Field(s),
            other => PathSegment::Field(other.to_string()),
        })
        .collect();
    Some((path, msg.to_string()))
}

/// Deserialize `value` as `T`, returning the error path and a user-facing message.
pub(crate) fn from_value_tracked<T: DeserializeOwned>(
    value: Value,
) -> Result<T, (Vec<PathSegment>, String)> {
    // Strict: a list where a struct is expected is refused at every depth, as upstream does.
    serde_path_to_error::deserialize::<_, T>(crate::strict::Strict(value)).map_err(|err| {
        let mut path = Vec::new();
        for seg in err.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => {
                    path.push(PathSegment::Index(*index))
                }
                serde_path_to_error::Segment::Map { key } => {
                    path.push(PathSegment::Field(key.clone()))
                }
                serde_path_to_error::Segment::Enum { variant } => {
                    path.push(PathSegment::Field(variant.clone()))
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        normalize(path, &err.into_inner().to_string())
    })
}

/// Deserialize the sub-object of a polymorphic container, re-raising errors with their
/// path below `key`.
pub(crate) fn from_value_nested<T: DeserializeOwned, E: serde::de::Error>(
    value: Value,
    key: &str,
) -> Result<T, E> {
    from_value_tracked(value).map_err(|(path, msg)| {
        let mut full = vec![PathSegment::field(key)];
        full.extend(path);
        E::custom(encode_nested(&full, &msg))
    })
}

fn backticked(msg: &str, prefix: &str) -> Option<String> {
    let rest = msg.strip_prefix(prefix)?;
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

/// Map serde's messages to upstream's (marshmallow) wording, adjusting the path where
/// marshmallow reports at another level.
fn normalize(mut path: Vec<PathSegment>, msg: &str) -> (Vec<PathSegment>, String) {
    if let Some((sub, m)) = decode_nested(msg) {
        path.extend(sub);
        return (path, m);
    }
    if let Some(field) = backticked(msg, "missing field `") {
        path.push(PathSegment::Field(field));
        return (path, "Missing data for required field.".into());
    }
    if msg.starts_with("invalid type: null") {
        return (path, NULL_MSG.into());
    }
    if let Some(variant) = backticked(msg, "unknown variant `") {
        return (path, format!("Invalid enum member {variant}"));
    }
    if msg.starts_with("invalid type:") {
        let expected = msg.rsplit_once(", expected ").map(|(_, e)| e).unwrap_or("");
        let m = if expected.starts_with("a string") {
            "Not a valid string."
        } else if expected.starts_with("a sequence") {
            "Not a valid list."
        } else if expected.starts_with("a map") {
            "Not a valid mapping type."
        } else if expected.starts_with("struct ") {
            path.push(PathSegment::field("_schema"));
            "Invalid input type."
        } else if expected.starts_with("a boolean") {
            "Not a valid boolean."
        } else if expected.starts_with("i64")
            || expected.starts_with("u64")
            || expected.contains("integer")
        {
            "Not a valid integer."
        } else if expected.starts_with("f64") || expected.contains("number") {
            "Not a valid number."
        } else {
            return (path, msg.to_string());
        };
        return (path, m.to_string());
    }
    (path, msg.to_string())
}

fn check_constant(
    map: &Map<String, Value>,
    field: &str,
    expected: &str,
    errors: &mut ValidationErrors,
) {
    match map.get(field) {
        None => {}
        Some(Value::String(s)) if s == expected => {}
        Some(Value::String(_)) => errors.add(field, format!("Must be equal to {expected}.")),
        Some(Value::Null) => errors.add(field, NULL_MSG),
        Some(_) => errors.add(field, "Not a valid string."),
    }
}

fn check_object_and_constants(
    value: &Value,
    api: &str,
    kind: &str,
) -> Result<(), ValidationErrors> {
    let Value::Object(map) = value else {
        return Err(ValidationErrors::at("_schema", "Invalid input type."));
    };
    let mut errors = ValidationErrors::new();
    check_constant(map, "api", api, &mut errors);
    check_constant(map, "kind", kind, &mut errors);
    errors.into_result()
}

fn structural<T: DeserializeOwned>(value: Value) -> Result<T, ValidationErrors> {
    from_value_tracked(value).map_err(|(path, msg)| ValidationErrors::at(path, msg))
}

/// Decode and validate a full object of kind `R` (update bodies, stored
/// values): the input must be an object; `api`/`kind`, if present, must equal the kind's
/// constants; then structural deserialization and [`Resource::validate`].
/// Missing `api`/`kind` are defaulted to the constants.
pub fn decode<R: Resource>(value: Value) -> Result<R, ValidationErrors> {
    check_object_and_constants(&value, R::API, R::KIND)?;
    let obj: R = structural(value)?;
    let mut errors = ValidationErrors::new();
    obj.validate(&mut errors);
    errors.into_result()?;
    Ok(obj)
}

/// Decode a create body: like [`decode`], but `status` and the read-only
/// metadata fields (`uid`, `created`, `modified`, `deleted`, `resource_version`) are
/// dropped before decoding, so that garbage in them is ignored as upstream does. The
/// caller then sets them (and calls [`Resource::reset_status`]).
pub fn decode_create<R: Resource>(mut value: Value) -> Result<R, ValidationErrors> {
    if let Value::Object(map) = &mut value {
        map.remove("status");
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for key in ["uid", "created", "modified", "deleted", "resource_version"] {
                meta.remove(key);
            }
        }
    }
    decode(value)
}

/// Decode a request-only body (`ClusterBinding`, `Complete`, `Shutdown`, `CloudBinding`,
/// `MagnumClusterBinding`) with the same `api`/`kind` checks as [`decode`].
pub fn decode_request<T: DeserializeOwned + RequestKind>(
    value: Value,
) -> Result<T, ValidationErrors> {
    check_object_and_constants(&value, T::API, T::KIND)?;
    structural(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_messages_round_trip() {
        let path = vec![PathSegment::field("a"), PathSegment::Index(3)];
        let (p, m) = decode_nested(&encode_nested(&path, "boom")).unwrap();
        assert_eq!((p, m.as_str()), (path, "boom"));
        assert!(decode_nested("plain").is_none());
    }

    #[test]
    fn normalize_maps_serde_messages() {
        let base = || vec![PathSegment::field("spec")];
        assert_eq!(
            normalize(base(), "missing field `url`"),
            (
                vec![PathSegment::field("spec"), PathSegment::field("url")],
                "Missing data for required field.".into()
            )
        );
        assert_eq!(
            normalize(base(), "invalid type: null, expected a string").1,
            NULL_MSG
        );
        assert_eq!(
            normalize(base(), "invalid type: integer `5`, expected a string").1,
            "Not a valid string."
        );
        assert_eq!(
            normalize(base(), "invalid type: string \"x\", expected a sequence").1,
            "Not a valid list."
        );
        assert_eq!(
            normalize(base(), "invalid type: string \"x\", expected a map").1,
            "Not a valid mapping type."
        );
        assert_eq!(
            normalize(base(), "invalid type: string \"x\", expected struct Foo"),
            (
                vec![PathSegment::field("spec"), PathSegment::field("_schema")],
                "Invalid input type.".into()
            )
        );
        assert_eq!(
            normalize(base(), "unknown variant `bogus`, expected one of `a`").1,
            "Invalid enum member bogus"
        );
        assert_eq!(normalize(base(), "something else").1, "something else");
    }

    #[test]
    fn constants_checked() {
        let v = serde_json::json!({"api": "core", "kind": "Nope"});
        let e = check_object_and_constants(&v, "core", "Role").unwrap_err();
        assert_eq!(e.to_string(), "{'kind': ['Must be equal to Role.']}");
        let v = serde_json::json!({"api": null, "kind": 5});
        let e = check_object_and_constants(&v, "core", "Role").unwrap_err();
        assert_eq!(
            e.to_string(),
            "{'api': ['Field may not be null.'], 'kind': ['Not a valid string.']}"
        );
        let e = check_object_and_constants(&serde_json::json!([]), "core", "Role").unwrap_err();
        assert_eq!(e.to_string(), "{'_schema': ['Invalid input type.']}");
        assert!(check_object_and_constants(&serde_json::json!({}), "core", "Role").is_ok());
    }
}
