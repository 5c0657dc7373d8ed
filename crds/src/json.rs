//! JSON encoding compatible with Python's `json.dumps` defaults, used for responses,
//! watch lines and etcd values, so that clients and stored data see byte-for-byte what
//! upstream Krake writes:
//!
//! * separators `", "` and `": "` (`{"a": 1, "b": [1, 2]}`);
//! * `ensure_ascii=True`: every non-ASCII character (and DEL) is escaped as `\uXXXX`,
//!   astral characters as a surrogate pair;
//! * floats as Python's `repr` (`1.0`, `1e+16`, `1e-05`).

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// A [`Formatter`] producing Python `json.dumps` output.
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() && c != '\u{7f}' {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(python_float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        writer.write_all(python_float_repr(value as f64).as_bytes())
    }
}

/// Python's `repr()` of a float (shortest round-trip digits).
pub fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{value:e}");
    let (mantissa, exp) = sci.split_once('e').expect("exponent present");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mant}e{esign}{:02}", exp.abs());
    }
    let n = digits.len() as i32;
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("{sign}0.{zeros}{digits}")
    } else if exp + 1 >= n {
        let zeros = "0".repeat((exp + 1 - n) as usize);
        format!("{sign}{digits}{zeros}.0")
    } else {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{sign}{int}.{frac}")
    }
}

/// Serialize `v` like Python's `json.dumps(v)`.
///
/// # Panics
///
/// If `v`'s `Serialize` implementation fails (e.g. a map with non-string keys), which
/// none of this crate's types do.
pub fn to_vec<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_to(&mut out, v);
    out
}

/// Append the encoding of `v` to `out` (see [`to_vec`]).
///
/// # Panics
///
/// As [`to_vec`].
pub fn write_to<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let mut ser = serde_json::Serializer::with_formatter(out, PythonFormatter);
    v.serialize(&mut ser)
        .expect("JSON serialization of krake types cannot fail");
}

/// Serialize `v` like Python's `json.dumps(v)`, as a string.
///
/// # Panics
///
/// As [`to_vec`].
pub fn to_string<T: Serialize + ?Sized>(v: &T) -> String {
    String::from_utf8(to_vec(v)).expect("the encoder writes ASCII only")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_separators_and_ascii() {
        let v = json!({"a": 1, "b": [1, 2], "c": "é"});
        assert_eq!(to_string(&v), r#"{"a": 1, "b": [1, 2], "c": "\u00e9"}"#);
        assert_eq!(to_vec(&v), to_string(&v).into_bytes());
    }

    #[test]
    fn escapes() {
        assert_eq!(to_string(&json!("😀")), r#""\ud83d\ude00""#);
        assert_eq!(
            to_string(&json!("a\"b\\c\nd\u{1}\u{7f}")),
            r#""a\"b\\c\nd\u0001\u007f""#
        );
        assert_eq!(to_string(&json!({})), "{}");
        assert_eq!(to_string(&json!([])), "[]");
        assert_eq!(
            to_string(&json!({"x": {"y": []}, "z": null})),
            r#"{"x": {"y": []}, "z": null}"#
        );
    }

    #[test]
    fn floats_like_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (0.0, "0.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456.789, "123456.789"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1.2345e100, "1.2345e+100"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (v, expected) in cases {
            assert_eq!(python_float_repr(v), expected, "{v}");
        }
        assert_eq!(
            to_string(&json!({"f": 1.0, "i": 1})),
            r#"{"f": 1.0, "i": 1}"#
        );
    }
}
