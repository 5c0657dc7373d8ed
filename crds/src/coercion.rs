//! Lenient number and boolean input, as upstream's marshmallow fields accept it
//! (clients written for upstream send `"5"` or `5.0` for integers). Use with `#[serde(deserialize_with = "crate::coercion::int")]`.
//!
//! * integers accept JSON integers, integral floats (`5.0`) and numeric strings (`"5"`);
//!   `5.5`, booleans and other strings are rejected with `Not a valid integer.`;
//! * floats accept JSON numbers and numeric strings; booleans and other strings are
//!   rejected with `Not a valid number.`;
//! * booleans accept `true`/`false`, `1`/`0` and the strings `true false yes no 1 0 on
//!   off t f y n` (case-insensitive); anything else is `Not a valid boolean.`
//!
//! The non-`opt_` variants reject `null` with `Field may not be null.`. Strings are not
//! coerced: serde already rejects numbers where a string is expected.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::ordered_map::OrderedMap;

/// Message for `null` in a non-nullable field.
pub const NULL_MSG: &str = "Field may not be null.";
/// Message for an invalid integer.
pub const INT_MSG: &str = "Not a valid integer.";
/// Message for an invalid float.
pub const FLOAT_MSG: &str = "Not a valid number.";
/// Message for an invalid boolean.
pub const BOOL_MSG: &str = "Not a valid boolean.";

fn parse_int_str(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i64>().ok()
}

fn parse_float_str(s: &str) -> Option<f64> {
    let t = s.trim();
    let v: f64 = t.parse().ok()?;
    // Python's float() accepts nan/inf spellings, marshmallow then rejects them.
    if v.is_finite() { Some(v) } else { None }
}

/// 2^63: the first float above `i64::MAX` (`i64::MAX as f64` rounds up to it, so a bound
/// written with it would let `9223372036854775808.0` saturate to `i64::MAX`).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

fn float_to_int(v: f64) -> Option<i64> {
    if v.is_finite() && v.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&v) {
        Some(v as i64)
    } else {
        None
    }
}

struct IntVisitor;

impl<'de> Visitor<'de> for IntVisitor {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Some).map_err(|_| E::custom(INT_MSG))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        float_to_int(v).map(Some).ok_or_else(|| E::custom(INT_MSG))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_int_str(v).map(Some).ok_or_else(|| E::custom(INT_MSG))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom(INT_MSG))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(INT_MSG))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(INT_MSG))
    }
}

struct FloatVisitor;

impl<'de> Visitor<'de> for FloatVisitor {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_float_str(v)
            .map(Some)
            .ok_or_else(|| E::custom(FLOAT_MSG))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom(FLOAT_MSG))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(FLOAT_MSG))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(FLOAT_MSG))
    }
}

struct BoolVisitor;

impl<'de> Visitor<'de> for BoolVisitor {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        match v {
            1 => Ok(Some(true)),
            0 => Ok(Some(false)),
            _ => Err(E::custom(BOOL_MSG)),
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        match v {
            1 => Ok(Some(true)),
            0 => Ok(Some(false)),
            _ => Err(E::custom(BOOL_MSG)),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v == 1.0 {
            Ok(Some(true))
        } else if v == 0.0 {
            Ok(Some(false))
        } else {
            Err(E::custom(BOOL_MSG))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" | "t" | "y" => Ok(Some(true)),
            "false" | "no" | "0" | "off" | "f" | "n" => Ok(Some(false)),
            _ => Err(E::custom(BOOL_MSG)),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(BOOL_MSG))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(de::Error::custom(BOOL_MSG))
    }
}

fn required<T, E: de::Error>(v: Option<T>) -> Result<T, E> {
    v.ok_or_else(|| E::custom(NULL_MSG))
}

/// Lenient integer; `null` rejected.
pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    required(d.deserialize_any(IntVisitor)?)
}

/// Lenient integer; `null` accepted.
pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(IntVisitor)
}

/// Lenient float; `null` rejected.
pub fn float<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    required(d.deserialize_any(FloatVisitor)?)
}

/// Lenient float; `null` accepted.
pub fn opt_float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(FloatVisitor)
}

/// Lenient boolean; `null` rejected.
pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    required(d.deserialize_any(BoolVisitor)?)
}

/// Lenient boolean; `null` accepted.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(BoolVisitor)
}

/// A lenient integer as a standalone type, for use inside containers.
struct Int(i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int(d).map(Int)
    }
}

/// A lenient float as a standalone type, for use inside containers.
struct Float(f64);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        float(d).map(Float)
    }
}

/// A list of lenient integers; `null` rejected (list and elements).
pub fn int_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    let v: Vec<Int> = Vec::deserialize(d)?;
    Ok(v.into_iter().map(|i| i.0).collect())
}

/// A string-keyed map of lenient floats, keeping key order; `null` rejected.
pub fn float_map<'de, D: Deserializer<'de>>(d: D) -> Result<OrderedMap<f64>, D::Error> {
    let m: OrderedMap<Float> = OrderedMap::deserialize(d)?;
    Ok(m.into_iter().map(|(k, v)| (k, v.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::{Value, json};

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "int")]
        i: i64,
        #[serde(default, deserialize_with = "opt_int")]
        oi: Option<i64>,
        #[serde(default, deserialize_with = "float")]
        f: f64,
        #[serde(default, deserialize_with = "opt_float")]
        of: Option<f64>,
        #[serde(default, deserialize_with = "bool")]
        b: bool,
        #[serde(default, deserialize_with = "opt_bool")]
        ob: Option<bool>,
        #[serde(default, deserialize_with = "int_vec")]
        iv: Vec<i64>,
        #[serde(default, deserialize_with = "float_map")]
        fm: OrderedMap<f64>,
        #[serde(default)]
        s: String,
    }

    fn load(v: Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[rstest]
    #[case(json!(5), 5)]
    #[case(json!(5.0), 5)]
    #[case(json!("5"), 5)]
    #[case(json!(" -7 "), -7)]
    #[case(json!("+3"), 3)]
    #[case(json!(i64::MAX), i64::MAX)]
    #[case(json!(i64::MIN), i64::MIN)]
    // -2^63 as a float: exactly i64::MIN.
    #[case(json!(-9.223_372_036_854_776e18), i64::MIN)]
    #[case(json!("9223372036854775807"), i64::MAX)]
    #[case(json!(1e3), 1000)]
    fn int_accepts(#[case] input: Value, #[case] expected: i64) {
        assert_eq!(load(json!({"i": input})).unwrap().i, expected);
    }

    #[rstest]
    #[case(json!(5.5))]
    #[case(json!("5.5"))]
    #[case(json!("x"))]
    #[case(json!(""))]
    #[case(json!(true))]
    #[case(json!([1]))]
    #[case(json!({}))]
    #[case(json!(9_223_372_036_854_775_808u64))]
    #[case(json!(u64::MAX))]
    // i64::MAX written as a float is 2^63: one past the range.
    #[case(json!(9.223_372_036_854_776e18))]
    #[case(json!(-9.3e18))]
    #[case(json!(1e300))]
    #[case(json!("9223372036854775808"))]
    #[case(json!("-9223372036854775809"))]
    fn int_rejects(#[case] input: Value) {
        let err = load(json!({"i": input})).unwrap_err();
        assert!(err.starts_with(INT_MSG), "{err}");
    }

    #[test]
    fn nulls() {
        assert!(load(json!({"i": null})).unwrap_err().starts_with(NULL_MSG));
        assert!(load(json!({"f": null})).unwrap_err().starts_with(NULL_MSG));
        assert!(load(json!({"b": null})).unwrap_err().starts_with(NULL_MSG));
        let t = load(json!({"oi": null, "of": null, "ob": null})).unwrap();
        assert_eq!((t.oi, t.of, t.ob), (None, None, None));
        let t = load(json!({"oi": "4", "of": 2, "ob": "yes"})).unwrap();
        assert_eq!((t.oi, t.of, t.ob), (Some(4), Some(2.0), Some(true)));
    }

    #[rstest]
    #[case(json!(1), 1.0)]
    #[case(json!(1.5), 1.5)]
    #[case(json!("2.5"), 2.5)]
    #[case(json!("1e3"), 1000.0)]
    fn float_accepts(#[case] input: Value, #[case] expected: f64) {
        assert_eq!(load(json!({"f": input})).unwrap().f, expected);
    }

    #[rstest]
    #[case(json!("abc"))]
    #[case(json!("nan"))]
    #[case(json!(false))]
    fn float_rejects(#[case] input: Value) {
        assert!(
            load(json!({"f": input}))
                .unwrap_err()
                .starts_with(FLOAT_MSG)
        );
    }

    #[rstest]
    #[case(json!(true), true)]
    #[case(json!(false), false)]
    #[case(json!("true"), true)]
    #[case(json!("TRUE"), true)]
    #[case(json!("Yes"), true)]
    #[case(json!("no"), false)]
    #[case(json!("1"), true)]
    #[case(json!("0"), false)]
    #[case(json!("on"), true)]
    #[case(json!("off"), false)]
    #[case(json!("t"), true)]
    #[case(json!("f"), false)]
    #[case(json!("y"), true)]
    #[case(json!("N"), false)]
    #[case(json!(1), true)]
    #[case(json!(0), false)]
    fn bool_accepts(#[case] input: Value, #[case] expected: bool) {
        assert_eq!(load(json!({"b": input})).unwrap().b, expected);
    }

    #[rstest]
    #[case(json!(2))]
    #[case(json!("maybe"))]
    #[case(json!([]))]
    fn bool_rejects(#[case] input: Value) {
        assert!(load(json!({"b": input})).unwrap_err().starts_with(BOOL_MSG));
    }

    #[test]
    fn strings_do_not_accept_numbers() {
        assert!(load(json!({"s": 5})).is_err());
        assert_eq!(load(json!({"s": "5"})).unwrap().s, "5");
    }

    #[test]
    fn containers() {
        let t = load(json!({"iv": [1, "2", 3.0], "fm": {"z": 1, "a": "0.5"}})).unwrap();
        assert_eq!(t.iv, vec![1, 2, 3]);
        assert_eq!(
            t.fm.iter()
                .map(|(k, v)| (k.as_str(), *v))
                .collect::<Vec<_>>(),
            vec![("z", 1.0), ("a", 0.5)]
        );
        assert!(
            load(json!({"iv": [1, 2.5]}))
                .unwrap_err()
                .starts_with(INT_MSG)
        );
        assert!(
            load(json!({"fm": {"a": "x"}}))
                .unwrap_err()
                .starts_with(FLOAT_MSG)
        );
    }
}
