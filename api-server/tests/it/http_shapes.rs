//! Lists where objects are required: serde's sequence form of structs
//! (`"metadata": ["name", null, ...]`) must be refused like upstream does (422 `Invalid
//! input type.`), for every kind, at every depth, on create, update and status update,
//! and nothing may be stored or changed.

use crate::common::*;
use serde_json::{Value, json};

const NS: &str = "ns1";

/// Keys of free-form content (kept as JSON as sent): replacing them by a list is still
/// refused, but what is inside them is not typed, so the walk does not descend.
const FREE_FORM: &[&str] = &[
    "manifest",
    "kubeconfig",
    "tosca",
    "observer_schema",
    "labels",
];

/// The sequence form serde would accept for an object: its values in field order.
fn as_sequence(object: &Value) -> Value {
    Value::Array(
        object
            .as_object()
            .expect("an object")
            .values()
            .cloned()
            .collect(),
    )
}

/// Paths (JSON pointers) of every object node of `body`, not descending into free-form
/// content, the root excluded.
fn object_paths(body: &Value) -> Vec<String> {
    fn walk(v: &Value, pointer: String, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if !pointer.is_empty() {
                    out.push(pointer.clone());
                }
                for (k, child) in map {
                    let p = format!("{pointer}/{k}");
                    if FREE_FORM.contains(&k.as_str()) {
                        if child.is_object() {
                            out.push(p);
                        }
                    } else {
                        walk(child, p, out);
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, format!("{pointer}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(body, String::new(), &mut out);
    out
}

/// `body` with the object at `pointer` replaced by its sequence form.
fn with_sequence_at(body: &Value, pointer: &str) -> Value {
    let mut b = body.clone();
    let node = b.pointer_mut(pointer).expect("path exists");
    *node = as_sequence(node);
    b
}

fn assert_refused_shape(r: &Resp, what: &str) {
    assert_eq!(r.0.as_u16(), 422, "{what}: {}", r.2);
    assert_problem_type(&r.1);
    assert_eq!(r.2["status"], 422, "{what}: {}", r.2);
    let detail = r.2["detail"].as_str().unwrap_or_default();
    assert!(
        [
            "Invalid input type.",
            "Not a valid mapping type.",
            "Invalid TOSCA template type."
        ]
        .iter()
        .any(|m| detail.contains(m)),
        "{what}: unexpected detail {detail:?}"
    );
}

#[tokio::test]
async fn lists_in_place_of_objects_are_refused_on_create_for_every_kind() {
    let srv = TestServer::embedded().await;
    for kind in all_kinds() {
        let sample = kind.sample("shape");
        let paths = object_paths(&sample);
        assert!(
            paths.iter().any(|p| p == "/metadata"),
            "{}: {paths:?}",
            kind.kind()
        );
        for pointer in &paths {
            let body = with_sequence_at(&sample, pointer);
            let r = srv.post(&kind.collection(NS), &body).await;
            assert_refused_shape(
                &r,
                &format!("POST {} with {pointer} as a list", kind.kind()),
            );
        }
        // The examples of the report, literally.
        let mut body = sample.clone();
        body["metadata"] = json!(["shape", null, {}]);
        let r = srv.post(&kind.collection(NS), &body).await;
        assert_problem(&r, 422, None, "Invalid input type.");
        assert_eq!(
            r.2["detail"],
            "{'metadata': {'_schema': ['Invalid input type.']}}",
            "{}",
            kind.kind()
        );
        assert_eq!(
            srv.get_ok(&kind.collection(NS)).await["items"],
            json!([]),
            "nothing stored for {}",
            kind.kind()
        );
    }
    let mut role = K::Role.sample("r");
    role["rules"] = json!([["kubernetes", ["applications"], ["dev"], ["get"]]]);
    let r = srv.post(&K::Role.collection(NS), &role).await;
    assert_problem_exact(
        &r,
        422,
        None,
        "{'rules': {0: {'_schema': ['Invalid input type.']}}}",
    );
    let mut metric = K::Metric.sample("m");
    metric["spec"] = json!([5, 7]);
    let r = srv.post(&K::Metric.collection(NS), &metric).await;
    assert_problem_exact(
        &r,
        422,
        None,
        "{'spec': {'_schema': ['Invalid input type.']}}",
    );
}

#[tokio::test]
async fn lists_in_place_of_objects_are_refused_on_update_for_every_kind() {
    let srv = TestServer::embedded().await;
    for kind in all_kinds() {
        let created = srv.create(kind, NS, "shape").await;
        let path = kind.object(NS, "shape");
        let mut current = srv.get_ok(&path).await;
        for pointer in object_paths(&current) {
            // The read-only parts may be omitted; their list form is refused all the same.
            let body = with_sequence_at(&current, &pointer);
            let r = srv.put(&path, &body).await;
            assert_refused_shape(&r, &format!("PUT {} with {pointer} as a list", kind.kind()));
        }
        current = srv.get_ok(&path).await;
        assert_eq!(
            strip(&current, true),
            strip(&created, true),
            "{} unchanged",
            kind.kind()
        );
    }
}

#[tokio::test]
async fn lists_in_place_of_a_status_are_refused_and_change_nothing() {
    let srv = TestServer::embedded().await;
    for kind in all_kinds().filter(|k| k.has_status()) {
        srv.create(kind, NS, "shape").await;
        let path = kind.object(NS, "shape");
        let mut body = srv.get_ok(&path).await;
        body["status"] = kind.custom_status().expect("a status");
        let running = srv.put_ok(&format!("{path}/status"), &body).await;

        let mut empty = running.clone();
        empty["status"] = json!([]);
        let r = srv.put(&format!("{path}/status"), &empty).await;
        assert_problem_exact(
            &r,
            422,
            None,
            "{'status': {'_schema': ['Invalid input type.']}}",
        );
        for pointer in object_paths(&running["status"]) {
            let pointer = format!("/status{pointer}");
            let r = srv
                .put(
                    &format!("{path}/status"),
                    &with_sequence_at(&running, &pointer),
                )
                .await;
            assert_refused_shape(
                &r,
                &format!("PUT {} status with {pointer} as a list", kind.kind()),
            );
        }
        let values = with_sequence_at(&running, "/status");
        let r = srv.put(&format!("{path}/status"), &values).await;
        assert_refused_shape(&r, &format!("PUT {} status as its values", kind.kind()));

        let after = srv.get_ok(&path).await;
        assert_eq!(after, running, "{}: the status is unchanged", kind.kind());
    }
    let app = srv.get_ok(&K::Application.object(NS, "shape")).await;
    assert_eq!(app["status"]["state"], "RUNNING");
}
