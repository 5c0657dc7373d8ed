//! Assertions on responses: problem documents, content types, timestamps, resource
//! versions, JSON subsets.

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::server::Resp;

/// Assert a problem document: status, content type, optional title, detail predicate.
pub fn assert_problem(resp: &Resp, status: u16, title: Option<&str>, detail: &str) {
    let (s, headers, body) = resp;
    assert_eq!(s.as_u16(), status, "unexpected status; body: {body}");
    assert_problem_type(headers);
    assert_eq!(body["status"], status, "problem status: {body}");
    match title {
        Some(t) => assert_eq!(body["title"], t, "problem title: {body}"),
        None => assert!(
            body.get("title").is_none_or(Value::is_null),
            "unexpected problem title: {body}"
        ),
    }
    let d = body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("problem without a string detail: {body}"));
    assert!(
        d.contains(detail),
        "problem detail {d:?} does not contain {detail:?}"
    );
}

/// Assert the exact problem detail.
pub fn assert_problem_exact(resp: &Resp, status: u16, title: Option<&str>, detail: &str) {
    assert_problem(resp, status, title, detail);
    assert_eq!(resp.2["detail"], detail, "problem detail: {}", resp.2);
}

/// Assert the content type of a problem document.
pub fn assert_problem_type(headers: &HeaderMap) {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/problem+json"),
        "content type {ct:?} is not application/problem+json"
    );
}

/// Assert a JSON success content type.
pub fn assert_json_type(headers: &HeaderMap) {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(ct, "application/json; charset=utf-8");
}

/// Parse a server timestamp.
pub fn ts(v: &Value) -> krake_crds::Timestamp {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    krake_crds::Timestamp::parse(s).unwrap_or_else(|| panic!("not a timestamp: {s}"))
}

/// Assert a server-generated timestamp (UTC, explicit offset).
pub fn assert_server_ts(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    assert!(
        s.ends_with("+00:00"),
        "server timestamp {s} is not UTC with an offset"
    );
    ts(v);
}

/// `v` without `metadata.resource_version` (and `metadata.modified` when `modified` is false).
pub fn strip(v: &Value, keep_modified: bool) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resource_version");
        if !keep_modified {
            meta.remove("modified");
        }
    }
    v
}

/// The object's resource version (must be a string of digits).
pub fn rv(v: &Value) -> String {
    let s = v["metadata"]["resource_version"]
        .as_str()
        .unwrap_or_else(|| panic!("object without a string metadata.resource_version: {v}"));
    assert!(
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        "resource_version {s:?} is not a revision"
    );
    s.to_string()
}

/// Every key of `expected` is in `actual` with an equal value (recursively for objects).
pub fn assert_subset(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {actual}"));
                assert_subset(ev, av, &format!("{path}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(
                e.len(),
                a.len(),
                "{path}: list lengths differ: {expected} vs {actual}"
            );
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_subset(ev, av, &format!("{path}.{i}"));
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            assert_eq!(e.as_f64(), a.as_f64(), "{path}: {expected} vs {actual}");
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}
