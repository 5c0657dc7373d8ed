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

/// Message for a number the JSON decoder would alter (round or saturate).
pub const NUMBER_RANGE_MSG: &str = "Number out of range.";

/// Why a request body was refused by [`parse_body`].
#[derive(Debug)]
pub enum BodyError {
    /// Not JSON at all (upstream answers 415).
    NotJson,
    /// JSON, but with a number that cannot be represented without altering it.
    Invalid(ValidationErrors),
}

/// Parse a request body as JSON, refusing numbers the decoder would silently alter:
/// integer literals outside the 64-bit range (which would become rounded floats) and
/// number literals beyond the float range. Integers in `u64` beyond `i64::MAX` are kept
/// exactly and left to the typed fields (whose integers are `i64`) to refuse.
pub fn parse_body(bytes: &[u8]) -> Result<Value, BodyError> {
    let range_error = |path: Vec<PathSegment>| {
        let path = if path.is_empty() {
            vec![PathSegment::field("_schema")]
        } else {
            path
        };
        BodyError::Invalid(ValidationErrors::at(path, NUMBER_RANGE_MSG))
    };
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => match out_of_range_number(bytes) {
            None => Ok(value),
            Some(path) => Err(range_error(path)),
        },
        // Grammatically valid JSON with a float beyond f64 (`1e400`): the scan up to the
        // failure is over valid JSON, so its path is right.
        Err(e)
            if e.classify() == serde_json::error::Category::Syntax
                && e.to_string().starts_with("number out of range") =>
        {
            out_of_range_number(bytes)
                .map(range_error)
                .map_or(Err(BodyError::NotJson), Err)
        }
        Err(_) => Err(BodyError::NotJson),
    }
}

/// Whether a JSON number literal is represented exactly enough by `serde_json`: integer
/// literals must fit `i64` or `u64`, other literals must be finite as `f64`.
fn number_literal_in_range(lit: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(lit) else {
        return false;
    };
    if lit.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        text.parse::<f64>().is_ok_and(f64::is_finite)
    } else {
        text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok()
    }
}

/// The path of the first out-of-range number literal in `text` (JSON text that
/// `serde_json` accepted up to that point), tracking object keys and array indices.
fn out_of_range_number(text: &[u8]) -> Option<Vec<PathSegment>> {
    enum Frame {
        Object(Option<String>),
        Array(usize),
    }
    let path = |stack: &[Frame]| {
        stack
            .iter()
            .filter_map(|f| match f {
                Frame::Object(Some(k)) => Some(PathSegment::Field(k.clone())),
                Frame::Object(None) => None,
                Frame::Array(i) => Some(PathSegment::Index(*i)),
            })
            .collect::<Vec<_>>()
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'{' => {
                stack.push(Frame::Object(None));
                expect_key = true;
                i += 1;
            }
            b'[' => {
                stack.push(Frame::Array(0));
                expect_key = false;
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Array(n)) => *n += 1,
                    Some(Frame::Object(_)) => expect_key = true,
                    None => {}
                }
                i += 1;
            }
            b':' => {
                expect_key = false;
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(text.len());
                if expect_key && let Some(Frame::Object(key)) = stack.last_mut() {
                    *key = serde_json::from_slice::<String>(&text[start..i]).ok();
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < text.len()
                    && matches!(text[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                if !number_literal_in_range(&text[start..i]) {
                    return Some(path(&stack));
                }
            }
            _ => i += 1,
        }
    }
    None
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

    fn range_error(body: &str) -> String {
        match parse_body(body.as_bytes()) {
            Err(BodyError::Invalid(e)) => e.to_string(),
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn numbers_that_would_be_altered_are_refused_with_their_path() {
        assert_eq!(
            range_error(r#"{"spec": {"a": [1, -9223372036854775809]}}"#),
            "{'spec': {'a': {1: ['Number out of range.']}}}"
        );
        assert_eq!(
            range_error(r#"{"x\"y": {"k": 18446744073709551616}}"#),
            "{'x\"y': {'k': ['Number out of range.']}}"
        );
        assert_eq!(
            range_error(r#"{"a": "-99999999999999999999", "b": [{"c": 1e400}]}"#),
            "{'b': {0: {'c': ['Number out of range.']}}}"
        );
        assert_eq!(
            range_error("-1e999"),
            "{'_schema': ['Number out of range.']}"
        );
    }

    #[test]
    fn numbers_kept_exactly_are_accepted() {
        for body in [
            r#"{"a": -9223372036854775808, "b": 9223372036854775807, "c": 18446744073709551615}"#,
            r#"{"a": 1.5e300, "b": -0.0, "c": 5.0, "d": "123456789012345678901234567890"}"#,
            r#"[1, 2, {"a": [3]}]"#,
        ] {
            assert!(parse_body(body.as_bytes()).is_ok(), "{body}");
        }
        assert!(matches!(parse_body(b"{"), Err(BodyError::NotJson)));
        assert!(matches!(parse_body(b""), Err(BodyError::NotJson)));
        assert!(matches!(
            parse_body(b"{\"a\": 1e400"),
            Err(BodyError::NotJson) | Err(BodyError::Invalid(_))
        ));
    }
}
