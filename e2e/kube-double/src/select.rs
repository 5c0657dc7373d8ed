//! Label selectors (`k`, `!k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`) and
//! field selectors (`metadata.name`, `metadata.namespace`, `=`/`==`/`!=`) of list and watch.

use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label or field selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Split on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

fn set_values(rest: &str, raw: &str) -> Result<Vec<String>> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            Error::bad_request(format!(
                "unable to parse requirement: found '{raw}', expected: '('"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl Selector {
    /// Parse a label selector.
    pub fn labels(s: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        for term in split_terms(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let bad = || {
                Error::bad_request(format!(
                    "unable to parse requirement: invalid label selector term \"{term}\""
                ))
            };
            let requirement = if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = term.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set_values(rest, term)?)
            } else if let Some((k, rest)) = term.split_once(" in ") {
                Requirement::In(k.trim().into(), set_values(rest, term)?)
            } else if term.contains(' ') || term.contains('(') {
                return Err(bad());
            } else {
                Requirement::Exists(term.to_string())
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    /// Parse a field selector; only `metadata.name` and `metadata.namespace` are supported
    /// (as for most kinds on a real server), others are 400.
    pub fn fields(s: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        for term in s.split(',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let requirement = if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else {
                return Err(Error::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let key = match &requirement {
                Requirement::Equals(k, _) | Requirement::NotEquals(k, _) => k.clone(),
                _ => unreachable!("only equality terms are parsed"),
            };
            if key != "metadata.name" && key != "metadata.namespace" {
                return Err(Error::bad_request(format!(
                    "field label not supported: {key}"
                )));
            }
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    /// Whether the selector is empty.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    fn matches_with(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Exists(k) => lookup(k).is_some(),
            Requirement::NotExists(k) => lookup(k).is_none(),
            Requirement::Equals(k, v) => lookup(k).as_deref() == Some(v.as_str()),
            Requirement::NotEquals(k, v) => lookup(k).as_deref() != Some(v.as_str()),
            Requirement::In(k, vs) => lookup(k).is_some_and(|x| vs.contains(&x)),
            Requirement::NotIn(k, vs) => lookup(k).is_none_or(|x| !vs.contains(&x)),
        })
    }

    /// Whether an object's labels match.
    pub fn matches_labels(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        self.matches_with(|k| {
            labels
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    }

    /// Whether an object's fields match.
    pub fn matches_fields(&self, object: &Value) -> bool {
        self.matches_with(|k| {
            let value = match k {
                "metadata.name" => object.pointer("/metadata/name"),
                "metadata.namespace" => object.pointer("/metadata/namespace"),
                _ => None,
            };
            Some(value.and_then(Value::as_str).unwrap_or("").to_string())
        })
    }
}

/// A label and a field selector together.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// The label selector.
    pub labels: Selector,
    /// The field selector.
    pub fields: Selector,
}

impl Filter {
    /// Whether the object passes both selectors.
    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches_labels(object) && self.fields.matches_fields(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_operators() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}});
        for (s, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("missing", false),
            ("!missing", true),
            ("app=web,tier in (front)", true),
        ] {
            assert_eq!(Selector::labels(s).unwrap().matches_labels(&o), want, "{s}");
        }
        assert!(Selector::labels("app in web").is_err());
    }

    #[test]
    fn field_selectors_know_only_name_and_namespace() {
        let o = json!({"metadata": {"name": "a", "namespace": "n"}});
        assert!(
            Selector::fields("metadata.name=a")
                .unwrap()
                .matches_fields(&o)
        );
        assert!(
            !Selector::fields("metadata.namespace!=n")
                .unwrap()
                .matches_fields(&o)
        );
        assert!(Selector::fields("spec.nodeName=x").is_err());
    }
}
