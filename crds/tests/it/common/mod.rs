//! Helpers shared by the kind tests.
#![allow(dead_code)]

use krake_crds::{Resource, ValidationErrors, decode};
use serde_json::{Value, json};

/// Full server-style metadata.
pub fn meta(name: &str, namespace: Option<&str>) -> Value {
    json!({
        "name": name,
        "namespace": namespace,
        "labels": {},
        "inherit_labels": false,
        "finalizers": [],
        "uid": "436de7b0-9439-41f1-b3c7-d30c0af20136",
        "created": "2026-11-21T09:02:37.560425+00:00",
        "modified": "2026-11-21T09:02:37.560425+00:00",
        "deleted": null,
        "owners": []
    })
}

/// Decode `input` as `R`, panicking with the errors on failure.
pub fn ok<R: Resource>(input: Value) -> R {
    decode::<R>(input).unwrap_or_else(|e| panic!("unexpected validation errors: {e}"))
}

/// Decode `input` and compare its Python-style encoding (key order included) with `expected`.
pub fn round_trip<R: Resource>(input: Value, expected: Value) -> R {
    let obj: R = ok(input);
    assert_eq!(
        krake_crds::json::to_string(&obj),
        krake_crds::json::to_string(&expected),
        "serialized object differs from the expected JSON"
    );
    // Decoding the output again gives the same object.
    let again: R = ok(serde_json::to_value(&obj).unwrap());
    assert_eq!(again, obj);
    obj
}

/// Decode `input` as `R`, expecting validation errors; returns their rendering.
pub fn err<R: Resource>(input: Value) -> String {
    match decode::<R>(input) {
        Ok(obj) => panic!("expected validation errors, got {obj:?}"),
        Err(e) => e.to_string(),
    }
}

/// The errors themselves.
pub fn errors<R: Resource>(input: Value) -> ValidationErrors {
    match decode::<R>(input) {
        Ok(obj) => panic!("expected validation errors, got {obj:?}"),
        Err(e) => e,
    }
}

/// Apply `f` to a clone of `base` (an object) and return it.
pub fn with(base: &Value, f: impl FnOnce(&mut Value)) -> Value {
    let mut v = base.clone();
    f(&mut v);
    v
}
