//! Label- and metric-constraint expression languages, as used in the
//! `constraints` of Applications, Clusters and Magnum clusters to select where they may
//! run (`location is DE`, `load >= 5`).
//!
//! Constraints are stored and returned verbatim as the string the client sent; they are
//! parsed (and rejected when invalid) on every deserialization. The parser reproduces
//! upstream's Lark grammar:
//!
//! * `KEY` and `VALUE` are maximal runs of characters other than space `,` `(` `)` `=`
//!   `!` (a tab inside a run belongs to the token, as in upstream's lexer);
//! * spaces and tabs between tokens are ignored, and keywords need no separation from
//!   what follows them (`location isDE`, `notin`, `greaterthan` parse);
//! * when an input has several complete parses, the first alternative of the grammar
//!   wins (upstream's Earley parser resolves ambiguities by rule order), e.g.
//!   `x =>5` is `x = ">5"` (then rejected by the label-value rule), not `x => 5`.
//!
//! After parsing, `KEY` must satisfy the label-key rule and every `VALUE` the label-value
//! rule of metadata labels, so that a constraint can only name a label that may exist.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::validation::{validate_label_key, validate_label_value};

/// Parse-failure message for label constraints.
pub const INVALID_LABEL_CONSTRAINT: &str = "Invalid label constraint";
/// Parse-failure message for metric constraints.
pub const INVALID_METRIC_CONSTRAINT: &str = "Invalid metric constraint";

fn is_delim(c: char) -> bool {
    matches!(c, ' ' | ',' | '(' | ')' | '=' | '!')
}

fn skip_ws(s: &str, mut i: usize) -> usize {
    let b = s.as_bytes();
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

fn lit(s: &str, i: usize, kw: &str) -> Option<usize> {
    let i = skip_ws(s, i);
    s[i..].starts_with(kw).then_some(i + kw.len())
}

fn lits(s: &str, mut i: usize, kws: &[&str]) -> Option<usize> {
    for kw in kws {
        i = lit(s, i, kw)?;
    }
    Some(i)
}

fn word(s: &str, i: usize) -> Option<(String, usize)> {
    let i = skip_ws(s, i);
    let len = s[i..].find(is_delim).unwrap_or(s.len() - i);
    (len > 0).then(|| (s[i..i + len].to_string(), i + len))
}

fn at_end(s: &str, i: usize) -> bool {
    skip_ws(s, i) == s.len()
}

/// `"(" (VALUE ",")* VALUE ","* ")"` followed by the end of input.
fn value_list(s: &str, i: usize) -> Option<Vec<String>> {
    let mut i = lit(s, i, "(")?;
    let (first, next) = word(s, i)?;
    let mut values = vec![first];
    i = next;
    loop {
        let j = skip_ws(s, i);
        match s[j..].chars().next()? {
            ')' => {
                i = j + 1;
                break;
            }
            ',' => {
                let k = skip_ws(s, j + 1);
                match s[k..].chars().next()? {
                    ',' | ')' => {
                        // Only trailing commas may follow.
                        let mut k = k;
                        while let Some(n) = lit(s, k, ",") {
                            k = n;
                        }
                        i = lit(s, k, ")")?;
                        break;
                    }
                    _ => {
                        let (v, n) = word(s, k)?;
                        values.push(v);
                        i = n;
                    }
                }
            }
            _ => return None,
        }
    }
    at_end(s, i).then_some(values)
}

fn single_value(s: &str, i: usize, kws: &[&str]) -> Option<String> {
    let i = lits(s, i, kws)?;
    let (v, i) = word(s, i)?;
    at_end(s, i).then_some(v)
}

// ---------------------------------------------------------------------------------
// Label constraints
// ---------------------------------------------------------------------------------

/// A parsed label constraint: a condition on the labels of a candidate cluster or cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelExpr {
    /// `KEY = VALUE`, `KEY == VALUE`, `KEY is VALUE`.
    Equal {
        /// Label key.
        key: String,
        /// Expected value.
        value: String,
    },
    /// `KEY != VALUE`, `KEY is not VALUE`.
    NotEqual {
        /// Label key.
        key: String,
        /// Excluded value.
        value: String,
    },
    /// `KEY in (V1, V2, ...)`.
    In {
        /// Label key.
        key: String,
        /// Accepted values.
        values: Vec<String>,
    },
    /// `KEY not in (V1, V2, ...)`.
    NotIn {
        /// Label key.
        key: String,
        /// Excluded values.
        values: Vec<String>,
    },
}

impl LabelExpr {
    /// The label key of the expression.
    pub fn key(&self) -> &str {
        match self {
            LabelExpr::Equal { key, .. }
            | LabelExpr::NotEqual { key, .. }
            | LabelExpr::In { key, .. }
            | LabelExpr::NotIn { key, .. } => key,
        }
    }

    /// The values of the expression (one for Equal/NotEqual).
    pub fn values(&self) -> Vec<&str> {
        match self {
            LabelExpr::Equal { value, .. } | LabelExpr::NotEqual { value, .. } => {
                vec![value.as_str()]
            }
            LabelExpr::In { values, .. } | LabelExpr::NotIn { values, .. } => {
                values.iter().map(String::as_str).collect()
            }
        }
    }

    fn parse_grammar(s: &str) -> Option<LabelExpr> {
        let (key, i) = word(s, 0)?;
        for kws in [&["=="][..], &["="], &["is"]] {
            if let Some(value) = single_value(s, i, kws) {
                return Some(LabelExpr::Equal { key, value });
            }
        }
        for kws in [&["!="][..], &["is", "not"]] {
            if let Some(value) = single_value(s, i, kws) {
                return Some(LabelExpr::NotEqual { key, value });
            }
        }
        if let Some(values) = lit(s, i, "in").and_then(|j| value_list(s, j)) {
            return Some(LabelExpr::In { key, values });
        }
        if let Some(values) = lits(s, i, &["not", "in"]).and_then(|j| value_list(s, j)) {
            return Some(LabelExpr::NotIn { key, values });
        }
        None
    }
}

/// A label constraint: the original string plus its parsed form.
///
/// Serializes as the original string. Deserialization parses and validates it, failing
/// with `Invalid label constraint` or the label-rule message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelConstraint {
    raw: String,
    parsed: LabelExpr,
}

impl LabelConstraint {
    /// Parse and validate an expression.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parsed =
            LabelExpr::parse_grammar(s).ok_or_else(|| INVALID_LABEL_CONSTRAINT.to_string())?;
        validate_label_key(parsed.key())?;
        for v in parsed.values() {
            validate_label_value(v)?;
        }
        Ok(LabelConstraint {
            raw: s.to_string(),
            parsed,
        })
    }

    /// The original string.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed expression.
    pub fn parsed(&self) -> &LabelExpr {
        &self.parsed
    }

    /// Whether `labels` fulfil the constraint. A missing label (or one whose value is
    /// not a string) never matches, whatever the operator.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let Some(actual) = labels.get(self.parsed.key()).and_then(Value::as_str) else {
            return false;
        };
        match &self.parsed {
            LabelExpr::Equal { value, .. } => actual == value,
            LabelExpr::NotEqual { value, .. } => actual != value,
            LabelExpr::In { values, .. } => values.iter().any(|v| v == actual),
            LabelExpr::NotIn { values, .. } => !values.iter().any(|v| v == actual),
        }
    }
}

impl fmt::Display for LabelConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for LabelConstraint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl Serialize for LabelConstraint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for LabelConstraint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        LabelConstraint::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for LabelConstraint {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LabelConstraint".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Label constraint: `KEY (=|==|is|!=|is not) VALUE`, `KEY in (V, ...)` or `KEY not in (V, ...)`."
        })
    }
}

// ---------------------------------------------------------------------------------
// Metric constraints
// ---------------------------------------------------------------------------------

/// Comparison operator of a metric constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricOp {
    /// `=`, `==`, `is`.
    Equal,
    /// `!=`, `is not`.
    NotEqual,
    /// `>`, `gt`, `greater than`.
    GreaterThan,
    /// `>=`, `=>`, `gte`, `greater than or equal`.
    GreaterThanOrEqual,
    /// `<`, `lt`, `lesser than`.
    LesserThan,
    /// `<=`, `=<`, `lte`, `lesser than or equal`.
    LesserThanOrEqual,
}

/// A parsed metric constraint: a condition on a metric of a candidate cluster or cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricExpr {
    /// Metric name.
    pub key: String,
    /// Operator.
    pub op: MetricOp,
    /// Right-hand side as written (compared as a float at scheduling time).
    pub value: String,
}

impl MetricExpr {
    fn parse_grammar(s: &str) -> Option<MetricExpr> {
        let (key, i) = word(s, 0)?;
        let table: [(MetricOp, &[&[&str]]); 6] = [
            (MetricOp::Equal, &[&["=="], &["="], &["is"]]),
            (MetricOp::NotEqual, &[&["!="], &["is", "not"]]),
            (
                MetricOp::GreaterThan,
                &[&[">"], &["gt"], &["greater", "than"]],
            ),
            (
                MetricOp::GreaterThanOrEqual,
                &[
                    &[">="],
                    &["=>"],
                    &["gte"],
                    &["greater", "than", "or", "equal"],
                ],
            ),
            (
                MetricOp::LesserThan,
                &[&["<"], &["lt"], &["lesser", "than"]],
            ),
            (
                MetricOp::LesserThanOrEqual,
                &[
                    &["<="],
                    &["=<"],
                    &["lte"],
                    &["lesser", "than", "or", "equal"],
                ],
            ),
        ];
        for (op, alternatives) in table {
            for kws in alternatives {
                if let Some(value) = single_value(s, i, kws) {
                    return Some(MetricExpr { key, op, value });
                }
            }
        }
        None
    }
}

/// A metric constraint: the original string plus its parsed form.
///
/// Serializes as the original string. Deserialization parses and validates it, failing
/// with `Invalid metric constraint` or the label-rule message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricConstraint {
    raw: String,
    parsed: MetricExpr,
}

impl MetricConstraint {
    /// Parse and validate an expression.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parsed =
            MetricExpr::parse_grammar(s).ok_or_else(|| INVALID_METRIC_CONSTRAINT.to_string())?;
        validate_label_key(&parsed.key)?;
        validate_label_value(&parsed.value)?;
        Ok(MetricConstraint {
            raw: s.to_string(),
            parsed,
        })
    }

    /// The original string.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed expression.
    pub fn parsed(&self) -> &MetricExpr {
        &self.parsed
    }

    /// Whether a metric value (`weight × normalised value`, computed by the caller)
    /// fulfils the constraint. A right-hand side that is not a number never matches.
    pub fn matches(&self, value: f64) -> bool {
        let Ok(rhs) = self.parsed.value.trim().parse::<f64>() else {
            return false;
        };
        match self.parsed.op {
            MetricOp::Equal => value == rhs,
            MetricOp::NotEqual => value != rhs,
            MetricOp::GreaterThan => value > rhs,
            MetricOp::GreaterThanOrEqual => value >= rhs,
            MetricOp::LesserThan => value < rhs,
            MetricOp::LesserThanOrEqual => value <= rhs,
        }
    }
}

impl fmt::Display for MetricConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl std::str::FromStr for MetricConstraint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl Serialize for MetricConstraint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for MetricConstraint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        MetricConstraint::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for MetricConstraint {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MetricConstraint".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Metric constraint: `KEY OP VALUE` with OP one of = == is != `is not` > gt `greater than` >= => gte `greater than or equal` < lt `lesser than` <= =< lte `lesser than or equal`."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;
    use serde_json::json;

    fn eq(k: &str, v: &str) -> LabelExpr {
        LabelExpr::Equal {
            key: k.into(),
            value: v.into(),
        }
    }
    fn ne(k: &str, v: &str) -> LabelExpr {
        LabelExpr::NotEqual {
            key: k.into(),
            value: v.into(),
        }
    }
    fn inn(k: &str, v: &[&str]) -> LabelExpr {
        LabelExpr::In {
            key: k.into(),
            values: v.iter().map(|s| s.to_string()).collect(),
        }
    }
    fn notin(k: &str, v: &[&str]) -> LabelExpr {
        LabelExpr::NotIn {
            key: k.into(),
            values: v.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[rstest]
    #[case("location is DE", eq("location", "DE"))]
    #[case("location=DE", eq("location", "DE"))]
    #[case("location = DE", eq("location", "DE"))]
    #[case("location == DE", eq("location", "DE"))]
    #[case("location==DE", eq("location", "DE"))]
    #[case("location != DE", ne("location", "DE"))]
    #[case("location!=DE", ne("location", "DE"))]
    #[case("location is not DE", ne("location", "DE"))]
    #[case("location in (DE, UK)", inn("location", &["DE", "UK"]))]
    #[case("location in (DE,UK,)", inn("location", &["DE", "UK"]))]
    #[case("location in (DE,UK , ,)", inn("location", &["DE", "UK"]))]
    #[case("location in(DE)", inn("location", &["DE"]))]
    #[case("location not in (DE)", notin("location", &["DE"]))]
    #[case("location notin (DE, FR)", notin("location", &["DE", "FR"]))]
    #[case("example.com/zone is a", eq("example.com/zone", "a"))]
    #[case("  location   is\tDE  ", eq("location", "DE"))]
    #[case("location isDE", eq("location", "DE"))]
    #[case("location is not", eq("location", "not"))]
    #[case("location is notX", eq("location", "notX"))]
    #[case("is is is", eq("is", "is"))]
    fn label_constraint_valid(#[case] input: &str, #[case] expected: LabelExpr) {
        let c = LabelConstraint::parse(input).unwrap();
        assert_eq!(c.parsed(), &expected);
        assert_eq!(c.as_str(), input);
        assert_eq!(c.to_string(), input);
    }

    #[rstest]
    #[case("location in ()", INVALID_LABEL_CONSTRAINT)]
    #[case("a in (b,,c)", INVALID_LABEL_CONSTRAINT)]
    #[case("loc is x y", INVALID_LABEL_CONSTRAINT)]
    #[case("location is", INVALID_LABEL_CONSTRAINT)]
    #[case("a = b=c", INVALID_LABEL_CONSTRAINT)]
    #[case("", INVALID_LABEL_CONSTRAINT)]
    #[case("location", INVALID_LABEL_CONSTRAINT)]
    #[case("location in (DE", INVALID_LABEL_CONSTRAINT)]
    #[case("location in (,DE)", INVALID_LABEL_CONSTRAINT)]
    #[case("location in (DE) x", INVALID_LABEL_CONSTRAINT)]
    #[case("location in DE", INVALID_LABEL_CONSTRAINT)]
    #[case("location = = DE", INVALID_LABEL_CONSTRAINT)]
    #[case("locationis DE", INVALID_LABEL_CONSTRAINT)]
    #[case("location > DE", INVALID_LABEL_CONSTRAINT)]
    #[case("loc is -x", "Label value '-x' does not match")]
    #[case("a/b/c is d", "Label key 'a/b/c' does not match")]
    #[case("loc in (a, -b)", "Label value '-b' does not match")]
    #[case("loc is a\t", "Label value 'a\\t' does not match")]
    #[case("loc: is a", "Label key 'loc:' does not match")]
    fn label_constraint_invalid(#[case] input: &str, #[case] msg_prefix: &str) {
        let err = LabelConstraint::parse(input).unwrap_err();
        assert!(err.starts_with(msg_prefix), "{input:?}: {err}");
    }

    #[rstest]
    #[case("location is DE", true)]
    #[case("location is UK", false)]
    #[case("location != UK", true)]
    #[case("location != DE", false)]
    #[case("location in (UK, DE)", true)]
    #[case("location in (UK, FR)", false)]
    #[case("location not in (UK, FR)", true)]
    #[case("location not in (DE)", false)]
    #[case("missing is x", false)]
    #[case("missing != x", false)]
    #[case("missing in (x)", false)]
    #[case("missing not in (x)", false)]
    #[case("num is 5", false)]
    fn label_constraint_matches(#[case] input: &str, #[case] expected: bool) {
        let labels = json!({"location": "DE", "num": 5});
        let c = LabelConstraint::parse(input).unwrap();
        assert_eq!(c.matches(labels.as_object().unwrap()), expected, "{input}");
    }

    fn m(k: &str, op: MetricOp, v: &str) -> MetricExpr {
        MetricExpr {
            key: k.into(),
            op,
            value: v.into(),
        }
    }

    #[rstest]
    #[case("load = 5", m("load", MetricOp::Equal, "5"))]
    #[case("load == 5", m("load", MetricOp::Equal, "5"))]
    #[case("load is 5", m("load", MetricOp::Equal, "5"))]
    #[case("load != 5", m("load", MetricOp::NotEqual, "5"))]
    #[case("load is not 5", m("load", MetricOp::NotEqual, "5"))]
    #[case("load > 5", m("load", MetricOp::GreaterThan, "5"))]
    #[case("load >5", m("load", MetricOp::GreaterThan, "5"))]
    #[case("load gt 5", m("load", MetricOp::GreaterThan, "5"))]
    #[case("load greater than 5", m("load", MetricOp::GreaterThan, "5"))]
    #[case("load >= 5", m("load", MetricOp::GreaterThanOrEqual, "5"))]
    #[case("load => 5", m("load", MetricOp::GreaterThanOrEqual, "5"))]
    #[case("load gte 5", m("load", MetricOp::GreaterThanOrEqual, "5"))]
    #[case(
        "load greater than or equal 5",
        m("load", MetricOp::GreaterThanOrEqual, "5")
    )]
    #[case("load < 5", m("load", MetricOp::LesserThan, "5"))]
    #[case("load lt 5", m("load", MetricOp::LesserThan, "5"))]
    #[case("load lesser than 5", m("load", MetricOp::LesserThan, "5"))]
    #[case("load <= 5", m("load", MetricOp::LesserThanOrEqual, "5"))]
    #[case("load =< 5", m("load", MetricOp::LesserThanOrEqual, "5"))]
    #[case("load lte 5", m("load", MetricOp::LesserThanOrEqual, "5"))]
    #[case(
        "load lesser than or equal 5",
        m("load", MetricOp::LesserThanOrEqual, "5")
    )]
    #[case("load > 0.5", m("load", MetricOp::GreaterThan, "0.5"))]
    #[case("load > abc", m("load", MetricOp::GreaterThan, "abc"))]
    #[case("load greater than or", m("load", MetricOp::GreaterThan, "or"))]
    fn metric_constraint_valid(#[case] input: &str, #[case] expected: MetricExpr) {
        let c = MetricConstraint::parse(input).unwrap();
        assert_eq!(c.parsed(), &expected);
        assert_eq!(c.as_str(), input);
    }

    #[rstest]
    #[case("load<5", INVALID_METRIC_CONSTRAINT)]
    #[case("load is greater than 5", INVALID_METRIC_CONSTRAINT)]
    #[case("load equals 5", INVALID_METRIC_CONSTRAINT)]
    #[case("load greater than or equal to 5", INVALID_METRIC_CONSTRAINT)]
    #[case("load is lesser than 5", INVALID_METRIC_CONSTRAINT)]
    #[case("load in (1, 2)", INVALID_METRIC_CONSTRAINT)]
    #[case("load >", INVALID_METRIC_CONSTRAINT)]
    #[case("", INVALID_METRIC_CONSTRAINT)]
    #[case("load > -1", "Label value '-1' does not match")]
    #[case("load =>5", "Label value '>5' does not match")]
    #[case("a/b/c > 1", "Label key 'a/b/c' does not match")]
    fn metric_constraint_invalid(#[case] input: &str, #[case] msg_prefix: &str) {
        let err = MetricConstraint::parse(input).unwrap_err();
        assert!(err.starts_with(msg_prefix), "{input:?}: {err}");
    }

    #[rstest]
    #[case("load > 0.5", 0.6, true)]
    #[case("load > 0.5", 0.5, false)]
    #[case("load >= 0.5", 0.5, true)]
    #[case("load < 0.5", 0.4, true)]
    #[case("load <= 0.5", 0.6, false)]
    #[case("load = 1", 1.0, true)]
    #[case("load != 1", 1.0, false)]
    #[case("load > abc", 10.0, false)]
    fn metric_constraint_matches(#[case] input: &str, #[case] value: f64, #[case] expected: bool) {
        assert_eq!(
            MetricConstraint::parse(input).unwrap().matches(value),
            expected
        );
    }

    #[test]
    fn serde_round_trip_verbatim_and_errors() {
        let c: LabelConstraint = serde_json::from_value(json!("location=DE")).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), json!("location=DE"));
        let err = serde_json::from_value::<LabelConstraint>(json!("location in ()")).unwrap_err();
        assert_eq!(err.to_string(), INVALID_LABEL_CONSTRAINT);
        let err = serde_json::from_value::<MetricConstraint>(json!("load<5")).unwrap_err();
        assert_eq!(err.to_string(), INVALID_METRIC_CONSTRAINT);
        let c: MetricConstraint = serde_json::from_value(json!("load < 5")).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), json!("load < 5"));
        assert_eq!(c.parsed().op, MetricOp::LesserThan);
    }

    fn token_strategy() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a", "b.c", "x/y", "-", "_", "é", ":", "1", "0.5", "is", "not", "in", "=", "==", "!=",
            "(", ")", ",", " ", "\t", ">", ">=", "=>", "<", "=<", "gt", "greater", "than", "or",
            "equal", "lesser", "lte",
        ])
        .prop_map(str::to_string)
    }

    proptest! {
        #[test]
        fn any_valid_label_parse_satisfies_label_rules(tokens in prop::collection::vec(token_strategy(), 0..8)) {
            let input = tokens.concat();
            if let Ok(c) = LabelConstraint::parse(&input) {
                prop_assert!(crate::validation::is_valid_label_key(c.parsed().key()));
                for v in c.parsed().values() {
                    prop_assert!(crate::validation::is_valid_label_value(v));
                }
                prop_assert_eq!(c.as_str(), input.as_str());
            }
        }

        #[test]
        fn any_valid_metric_parse_satisfies_label_rules(tokens in prop::collection::vec(token_strategy(), 0..8)) {
            let input = tokens.concat();
            if let Ok(c) = MetricConstraint::parse(&input) {
                prop_assert!(crate::validation::is_valid_label_key(&c.parsed().key));
                prop_assert!(crate::validation::is_valid_label_value(&c.parsed().value));
            }
        }

        #[test]
        fn generated_constraints_parse_back(
            key in "[A-Za-z0-9_]([A-Za-z0-9_.-]{0,10}[A-Za-z0-9_])?",
            values in prop::collection::vec("[A-Za-z0-9_]([A-Za-z0-9_.-]{0,5}[A-Za-z0-9_])?", 1..4),
            sep in prop::sample::select(vec![",", ", ", " ,"]),
        ) {
            let list = values.join(sep);
            let c = LabelConstraint::parse(&format!("{key} not in ({list})")).unwrap();
            prop_assert_eq!(c.parsed(), &LabelExpr::NotIn { key: key.clone(), values: values.clone() });
            let c = LabelConstraint::parse(&format!("{key} != {}", values[0])).unwrap();
            prop_assert_eq!(c.parsed(), &LabelExpr::NotEqual { key: key.clone(), value: values[0].clone() });
            let c = MetricConstraint::parse(&format!("{key} >= {}", values[0])).unwrap();
            prop_assert_eq!(c.parsed().op, MetricOp::GreaterThanOrEqual);
        }
    }
}
