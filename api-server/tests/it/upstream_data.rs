//! Objects written into etcd by upstream Krake 1.0.1 (its key layout, its JSON, its
//! older field set: no `metadata.inherit_labels`, no `spec.allowed_values` in metrics)
//! are served through GET, LIST and watch with the defaults of the fields they lack, for
//! every kind; requests must still satisfy today's rules. A stored object that cannot be
//! decoded at all is left out of lists (logged and counted), not failing them whole.

use crate::common::*;
use serde_json::{Value, json};

const NS: &str = "ns1";

/// The etcd key upstream stores an object under: `/{api}/{plural}/{ns}/{name}`, or
/// `/{api}/{plural}/{name}` for global kinds.
fn upstream_key(kind: K, name: &str) -> String {
    if kind.namespaced() {
        format!("/{}/{}/{NS}/{name}", kind.api(), kind.plural())
    } else {
        format!("/{}/{}/{name}", kind.api(), kind.plural())
    }
}

/// The fields 1.0.1 did not write, per kind (JSON pointers).
fn absent_in_1_0_1(kind: K) -> Vec<&'static str> {
    let mut absent = vec!["/metadata/inherit_labels"];
    if matches!(kind, K::Metric | K::GlobalMetric) {
        absent.push("/spec/allowed_values");
    }
    absent
}

fn remove(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .expect("parent object")
        .remove(key)
        .unwrap_or_else(|| panic!("{pointer} present"));
}

#[tokio::test]
async fn objects_stored_by_1_0_1_are_served_with_defaults_for_every_kind() {
    let srv = TestServer::etcd().await;
    let mut etcd = srv.etcd_client().await;
    for kind in all_kinds() {
        // Today's stored form of the kind, from an object created through the API...
        let created = srv.create(kind, NS, "today").await;
        let stored = etcd
            .get(upstream_key(kind, "today"), None)
            .await
            .expect("etcd get");
        let stored = stored
            .kvs()
            .first()
            .unwrap_or_else(|| panic!("{} is stored under upstream's key", kind.kind()));
        let mut legacy: Value = serde_json::from_slice(stored.value()).expect("stored JSON");
        // ... as 1.0.1 wrote it: same layout and encoding, without the newer fields.
        legacy["metadata"]["name"] = json!("legacy");
        for pointer in absent_in_1_0_1(kind) {
            remove(&mut legacy, pointer);
        }
        let text = krake_crds::json::to_string(&legacy);

        let mut w = srv.watch(&format!("{}?watch", kind.collection(NS))).await;
        etcd.put(upstream_key(kind, "legacy"), text, None)
            .await
            .expect("etcd put");

        let event = w.expect("ADDED", "legacy").await;
        let got = srv.get_ok(&kind.object(NS, "legacy")).await;
        assert_eq!(event, got, "{}: watch and GET agree", kind.kind());
        assert_eq!(
            got["metadata"]["inherit_labels"],
            json!(false),
            "{}",
            kind.kind()
        );
        if matches!(kind, K::Metric | K::GlobalMetric) {
            assert_eq!(got["spec"]["allowed_values"], json!([]), "{}", kind.kind());
        }
        // Everything else is as stored.
        let mut expected = strip(&created, true);
        expected["metadata"]["name"] = json!("legacy");
        assert_eq!(strip(&got, true), expected, "{}", kind.kind());
        let names: Vec<String> = srv
            .list_names(&kind.collection(NS))
            .await
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(names, ["legacy", "today"], "{}", kind.kind());
    }
}

#[tokio::test]
async fn requests_must_still_satisfy_todays_rules() {
    let srv = TestServer::etcd().await;
    let mut etcd = srv.etcd_client().await;
    for kind in [K::Metric, K::GlobalMetric] {
        let mut legacy = kind.sample("legacy");
        legacy["metadata"] = json!({"name": "legacy", "namespace": if kind.namespaced() { json!(NS) } else { Value::Null },
            "labels": {}, "finalizers": [], "uid": "2f0c1d3e-2b7a-4c55-9a53-d1f0e0b4a001",
            "created": "2024-03-01T10:00:00.123456+00:00", "modified": "2024-03-01T10:00:00.123456+00:00",
            "deleted": null, "owners": []});
        remove(&mut legacy, "/spec/allowed_values");
        etcd.put(
            upstream_key(kind, "legacy"),
            krake_crds::json::to_string(&legacy),
            None,
        )
        .await
        .expect("etcd put");
        let mut served = srv.get_ok(&kind.object(NS, "legacy")).await;
        assert_eq!(served["spec"]["allowed_values"], json!([]));

        // The same object sent back without the field: refused, as a create is.
        remove(&mut served, "/spec/allowed_values");
        served["spec"]["max"] = json!(3.0);
        let r = srv.put(&kind.object(NS, "legacy"), &served).await;
        assert_problem_exact(
            &r,
            422,
            None,
            "{'spec': {'allowed_values': ['Missing data for required field.']}}",
        );
        let mut create = kind.sample("new");
        remove(&mut create, "/spec/allowed_values");
        let r = srv.post(&kind.collection(NS), &create).await;
        assert_problem_exact(
            &r,
            422,
            None,
            "{'spec': {'allowed_values': ['Missing data for required field.']}}",
        );
        // With the field, the update goes through.
        served["spec"]["allowed_values"] = json!([1]);
        let updated = srv.put_ok(&kind.object(NS, "legacy"), &served).await;
        assert_eq!(updated["spec"]["allowed_values"], json!([1]));
        assert_eq!(updated["spec"]["max"], json!(3.0));
    }
}

#[tokio::test]
async fn an_undecodable_stored_object_is_left_out_of_lists() {
    let srv = TestServer::etcd().await;
    let mut etcd = srv.etcd_client().await;
    srv.create(K::Metric, NS, "good").await;
    for (name, value) in [
        ("broken", "{not json".to_string()),
        // Lacks a field that has no default (the provider's name).
        (
            "incomplete",
            r#"{"api": "core", "kind": "Metric", "metadata": {"name": "incomplete", "namespace": "ns1"}, "spec": {"min": 0, "max": 1, "provider": {"metric": "m"}}}"#.to_string(),
        ),
    ] {
        etcd.put(upstream_key(K::Metric, name), value, None)
            .await
            .expect("etcd put");
    }
    let names = srv.list_names(&K::Metric.collection(NS)).await;
    assert_eq!(names, [(Some(NS.to_string()), "good".to_string())]);
    let names = srv.list_names(&K::Metric.all_collection()).await;
    assert_eq!(names, [(Some(NS.to_string()), "good".to_string())]);

    let r = srv.get(&K::Metric.object(NS, "broken")).await;
    assert_eq!(r.0, 500, "{}", r.2);
    assert_problem_type(&r.1);

    let metrics = srv
        .raw(reqwest::Method::GET, "/metrics", None, &[])
        .await
        .text();
    assert!(
        metrics.contains("krake_api_undecodable_stored_objects_total{kind=\"Metric\"} 4"),
        "{metrics}"
    );
}

/// The kind's JSON Schema (the one the API documents), by kind name.
fn schema_of(kind: K) -> Value {
    krake_crds::schema::schemas()
        .into_iter()
        .find(|(file, _)| file == &format!("{}.{}.json", kind.api(), kind.kind()))
        .map(|(_, schema)| schema)
        .expect("a schema per kind")
}

/// Remove from `value` (at any depth, following `schema`) every required field whose
/// type has an empty value (lists, numbers, booleans, nullable fields): what a future
/// version may make required and an older one did not write. Returns their pointers.
fn remove_fillable_required(
    root: &Value,
    schema: &Value,
    value: &mut Value,
    pointer: &str,
    out: &mut Vec<String>,
) {
    fn follow(root: &Value, s: &Value) -> Value {
        let mut s = s.clone();
        while let Some(name) = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            s = root["$defs"][name].clone();
        }
        s
    }
    let resolve = |s: &Value| follow(root, s);
    let schema = resolve(schema);
    for combinator in ["anyOf", "oneOf"] {
        for branch in schema[combinator].as_array().into_iter().flatten() {
            let branch = resolve(branch);
            let consts_match = branch["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, p)| p.get("const").is_none_or(|c| value.get(k) == Some(c)));
            if value.is_object() && branch["type"] == "object" && consts_match {
                remove_fillable_required(root, &branch, value, pointer, out);
            }
        }
    }
    let Some(map) = value.as_object_mut() else {
        return;
    };
    let props = schema["properties"].clone();
    for name in schema["required"].as_array().into_iter().flatten() {
        let name = name.as_str().expect("a name");
        let sub = resolve(&props[name]);
        let types: Vec<&str> = match &sub["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fillable = types
            .iter()
            .any(|t| matches!(*t, "array" | "number" | "integer" | "boolean" | "null"));
        if fillable && sub.get("enum").is_none() && map.remove(name).is_some() {
            out.push(format!("{pointer}/{name}"));
        }
    }
    for (name, sub) in props.as_object().into_iter().flatten() {
        if let Some(child) = map.get_mut(name) {
            remove_fillable_required(root, sub, child, &format!("{pointer}/{name}"), out);
        }
    }
}

#[tokio::test]
async fn objects_lacking_any_required_list_number_or_flag_are_served_for_every_kind() {
    let srv = TestServer::etcd().await;
    let mut etcd = srv.etcd_client().await;
    let mut removed_somewhere = 0;
    for kind in all_kinds() {
        srv.create(kind, NS, "today").await;
        let stored = etcd
            .get(upstream_key(kind, "today"), None)
            .await
            .expect("etcd get");
        let mut old: Value = serde_json::from_slice(stored.kvs()[0].value()).expect("stored JSON");
        old["metadata"]["name"] = json!("old");
        let schema = schema_of(kind);
        let mut removed = Vec::new();
        remove_fillable_required(&schema, &schema, &mut old, "", &mut removed);
        removed_somewhere += removed.len();
        etcd.put(
            upstream_key(kind, "old"),
            krake_crds::json::to_string(&old),
            None,
        )
        .await
        .expect("etcd put");
        let got = srv.get_ok(&kind.object(NS, "old")).await;
        for pointer in &removed {
            let v = got
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{}: {pointer} served", kind.kind()));
            assert!(
                v == &json!([])
                    || v == &json!(0)
                    || v == &json!(0.0)
                    || v == &json!(false)
                    || v.is_null(),
                "{}: {pointer} served with its empty value, not {v}",
                kind.kind()
            );
        }
        let names = srv.list_names(&kind.collection(NS)).await;
        assert_eq!(names.len(), 2, "{}: {names:?}", kind.kind());
    }
    // Role rules, RoleBinding users and roles, Metric allowed_values, min and max, ...
    assert!(removed_somewhere >= 6, "{removed_somewhere}");
}
