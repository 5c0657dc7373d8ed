//! Python's renderings and truthiness, for messages and rules that must read exactly as
//! upstream Krake (a Python service) produces them.

use serde_json::Value;

/// Render a string like Python's `repr()`.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python truthiness of a JSON value.
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}

/// Python `repr()`-like rendering of a JSON value, for messages.
pub(crate) fn value_repr(v: &Value) -> String {
    match v {
        Value::String(s) => py_repr(s),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// Python `str()`-like rendering of a JSON value, for messages.
pub(crate) fn value_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => value_repr(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn truthiness_is_pythons() {
        for falsy in [
            json!(null),
            json!(false),
            json!(0),
            json!(0.0),
            json!(""),
            json!([]),
            json!({}),
        ] {
            assert!(!truthy(Some(&falsy)), "{falsy}");
        }
        assert!(!truthy(None));
        for truthy_value in [
            json!(true),
            json!(-1),
            json!(0.5),
            json!("0"),
            json!([0]),
            json!({"a": null}),
        ] {
            assert!(truthy(Some(&truthy_value)), "{truthy_value}");
        }
    }

    #[test]
    fn repr_and_str_render_like_python() {
        assert_eq!(value_repr(&json!("a")), "'a'");
        assert_eq!(value_repr(&json!(null)), "None");
        assert_eq!(value_repr(&json!(true)), "True");
        assert_eq!(value_repr(&json!(1.5)), "1.5");
        assert_eq!(value_str(&json!("a")), "a");
        assert_eq!(value_str(&json!(false)), "False");
    }
}
