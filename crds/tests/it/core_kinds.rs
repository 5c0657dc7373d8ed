//! `core` kinds: decoding, defaults, errors and merges.

use crate::common::{err, meta, ok, round_trip, with};
use krake_crds::core::{
    GlobalMetric, GlobalMetricsProvider, Metric, MetricsProvider, MetricsProviderSpec, Role,
    RoleBinding, Verb,
};
use krake_crds::{Metadata, Resource, decode};
use rstest::rstest;
use serde_json::{Value, json};

fn role() -> Value {
    json!({"api": "core", "kind": "Role", "metadata": meta("r1", None),
           "rules": [{"api": "kubernetes", "resources": ["applications", "applications/status"],
                      "namespaces": ["dev"], "verbs": ["get", "list"]}]})
}

#[test]
fn role_round_trip() {
    let r: Role = round_trip(role(), role());
    assert_eq!(r.rules[0].verbs, vec![Verb::Get, Verb::List]);
    assert_eq!(Role::key(None, "r1"), "/core/roles/r1");
}

#[test]
fn api_and_kind_default_and_unknown_keys_are_dropped() {
    let input = json!({"metadata": {"name": "r1"}, "rules": [], "extra": 1});
    let r: Role = ok(input);
    let out = serde_json::to_value(&r).unwrap();
    assert_eq!(out["api"], "core");
    assert_eq!(out["kind"], "Role");
    assert!(out.get("extra").is_none());
    assert_eq!(out["metadata"]["labels"], json!({}));
    assert_eq!(out["metadata"]["finalizers"], json!([]));
    assert_eq!(out["metadata"]["inherit_labels"], json!(false));
    assert_eq!(out["metadata"]["namespace"], Value::Null);
}

#[rstest]
#[case(json!({"kind": "RoleBinding"}), "{'kind': ['Must be equal to Role.']}")]
#[case(json!({"api": "kubernetes"}), "{'api': ['Must be equal to core.']}")]
#[case(json!({"rules": null}), "{'rules': ['Field may not be null.']}")]
#[case(json!({"rules": "x"}), "{'rules': ['Not a valid list.']}")]
#[case(json!({"metadata": null}), "{'metadata': ['Field may not be null.']}")]
#[case(json!({"metadata": "x"}), "{'metadata': {'_schema': ['Invalid input type.']}}")]
#[case(json!({"metadata": {"name": "-x"}}), "{'metadata': {'name': ['Invalid character in resource name.']}}")]
#[case(json!({"metadata": {"name": 5}}), "{'metadata': {'name': ['Not a valid string.']}}")]
#[case(json!({"metadata": {"name": "r", "namespace": "a b"}}), "{'metadata': {'namespace': ['Invalid character in resource namespace.']}}")]
#[case(json!({"metadata": {"name": "r", "labels": null}}), "{'metadata': {'labels': ['Field may not be null.']}}")]
#[case(json!({"metadata": {"name": "r", "inherit_labels": "maybe"}}), "{'metadata': {'inherit_labels': ['Not a valid boolean.']}}")]
#[case(json!({"metadata": {"name": "r", "created": "garbage"}}), "{'metadata': {'created': ['Not a valid datetime.']}}")]
#[case(json!({"rules": [{"api": "", "resources": [], "namespaces": []}]}), "{'rules': {0: {'verbs': ['Missing data for required field.']}}}")]
#[case(json!({"rules": [{"api": "", "resources": [], "namespaces": [], "verbs": ["get", "bogus"]}]}), "{'rules': {0: {'verbs': {1: ['Invalid enum member bogus']}}}}")]
#[case(json!({"rules": [{"api": "", "resources": [], "namespaces": [], "verbs": ["GET"]}]}), "{'rules': {0: {'verbs': {0: ['Invalid enum member GET']}}}}")]
#[case(json!({"rules": [{"api": "", "resources": [], "namespaces": [], "verbs": [1]}]}), "{'rules': {0: {'verbs': {0: ['Enum name must be string']}}}}")]
fn role_errors(#[case] patch: Value, #[case] expected: &str) {
    let input = with(&json!({"metadata": {"name": "r1"}, "rules": []}), |v| {
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
    });
    assert_eq!(err::<Role>(input), expected);
}

#[test]
fn required_top_level_fields() {
    assert_eq!(
        err::<Role>(json!({"metadata": {"name": "r"}})),
        "{'rules': ['Missing data for required field.']}"
    );
    assert_eq!(
        err::<Role>(json!({"rules": []})),
        "{'metadata': ['Missing data for required field.']}"
    );
    assert_eq!(
        err::<Role>(json!({"metadata": {}, "rules": []})),
        "{'metadata': {'name': ['Missing data for required field.']}}"
    );
    assert_eq!(
        err::<Role>(json!([])),
        "{'_schema': ['Invalid input type.']}"
    );
    assert_eq!(
        err::<Role>(json!(null)),
        "{'_schema': ['Invalid input type.']}"
    );
}

#[test]
fn label_errors_have_upstream_shape() {
    let input = json!({"metadata": {"name": "r", "labels": {"ok": "v", "a:b": "v", "k": "-v"}}, "rules": []});
    let e = crate::common::errors::<Role>(input);
    let subjects: Vec<_> = e
        .iter()
        .map(|f| (f.dotted_path(), f.subject.clone().unwrap()))
        .collect();
    assert_eq!(
        subjects,
        vec![
            ("metadata.labels".into(), "a:b".into()),
            ("metadata.labels".into(), "-v".into())
        ]
    );
    assert!(
        e.to_string()
            .starts_with("{'metadata': {'labels': [{'a:b': \"Label key 'a:b' does not match")
    );
}

#[test]
fn role_merge_spec_copies_rules() {
    let mut stored: Role = ok(role());
    let body: Role = ok(with(&role(), |v| v["rules"] = json!([])));
    stored.merge_spec_from(&body).unwrap();
    assert!(stored.rules.is_empty());
    assert!(stored.merge_status_from(&body).is_ok());
    assert_eq!(stored.state_name(), None);
}

#[test]
fn role_binding_round_trip_and_merge() {
    let rb = json!({"api": "core", "kind": "RoleBinding", "metadata": meta("rb", None), "users": ["u"], "roles": ["r"]});
    let mut stored: RoleBinding = round_trip(rb.clone(), rb.clone());
    assert_eq!(
        err::<RoleBinding>(json!({"metadata": {"name": "rb"}, "users": []})),
        "{'roles': ['Missing data for required field.']}"
    );
    let body: RoleBinding = ok(with(&rb, |v| {
        v["users"] = json!(["a", "b"]);
        v["roles"] = json!([]);
    }));
    stored.merge_spec_from(&body).unwrap();
    assert_eq!(stored.users, vec!["a", "b"]);
    assert!(stored.roles.is_empty());
    let built = RoleBinding::new(Metadata::named("x"), vec!["u".into()], vec![]);
    assert_eq!(built.kind, "RoleBinding");
}

fn global_metric() -> Value {
    json!({"api": "core", "kind": "GlobalMetric", "metadata": meta("m", None),
           "spec": {"allowed_values": [], "min": 0.0, "max": 1.0,
                    "provider": {"name": "prom", "metric": "node_load1"}}})
}

#[test]
fn global_metric_round_trip_and_coercion() {
    round_trip::<GlobalMetric>(global_metric(), global_metric());
    let input = with(&global_metric(), |v| {
        v["spec"]["min"] = json!(0);
        v["spec"]["max"] = json!("1");
        v["spec"]["allowed_values"] = json!(["1", 2.0, 3]);
    });
    let expected = with(&global_metric(), |v| {
        v["spec"]["allowed_values"] = json!([1, 2, 3])
    });
    let m: GlobalMetric = round_trip(input, expected);
    assert_eq!(m.spec.min, 0.0);
    let out = krake_crds::json::to_string(&m);
    assert!(out.contains(r#""min": 0.0, "max": 1.0"#), "{out}");
}

#[rstest]
#[case(|v: &mut Value| { v["spec"].as_object_mut().unwrap().remove("allowed_values"); }, "{'spec': {'allowed_values': ['Missing data for required field.']}}")]
#[case(|v: &mut Value| v["spec"]["allowed_values"] = json!([1, 5.5]), "{'spec': {'allowed_values': {1: ['Not a valid integer.']}}}")]
#[case(|v: &mut Value| v["spec"]["min"] = json!("low"), "{'spec': {'min': ['Not a valid number.']}}")]
#[case(|v: &mut Value| v["spec"]["max"] = json!(null), "{'spec': {'max': ['Field may not be null.']}}")]
#[case(|v: &mut Value| { v["spec"]["provider"].as_object_mut().unwrap().remove("metric"); }, "{'spec': {'provider': {'metric': ['Missing data for required field.']}}}")]
#[case(|v: &mut Value| { v.as_object_mut().unwrap().remove("spec"); }, "{'spec': ['Missing data for required field.']}")]
fn global_metric_errors(#[case] patch: fn(&mut Value), #[case] expected: &str) {
    assert_eq!(err::<GlobalMetric>(with(&global_metric(), patch)), expected);
}

#[test]
fn metric_is_namespaced() {
    let input = with(&global_metric(), |v| {
        v["kind"] = json!("Metric");
        v["metadata"] = meta("m", Some("ns1"));
    });
    let m: Metric = round_trip(input.clone(), input);
    assert_eq!(
        Metric::key(m.metadata.namespace.as_deref(), "m"),
        "/core/metrics/ns1/m"
    );
    assert_eq!(Metric::prefix(Some("ns1")), "/core/metrics/ns1/");
    assert_eq!(
        err::<Metric>(global_metric()),
        "{'kind': ['Must be equal to Metric.']}"
    );
}

fn provider(spec: Value) -> Value {
    json!({"api": "core", "kind": "GlobalMetricsProvider", "metadata": meta("p", None), "spec": spec})
}

#[rstest]
#[case(json!({"type": "prometheus", "prometheus": {"url": "http://prom:9090"}}))]
#[case(json!({"type": "influx", "influx": {"url": "http://i", "token": "t", "org": "o", "bucket": "b"}}))]
#[case(json!({"type": "kafka", "kafka": {"comparison_column": "c", "value_column": "v", "table": "t", "url": "http://k"}}))]
#[case(json!({"type": "static", "static": {"metrics": {"load": 0.5, "x": 2.0}}}))]
fn metrics_provider_types_round_trip(#[case] spec: Value) {
    let p: GlobalMetricsProvider = round_trip(provider(spec.clone()), provider(spec.clone()));
    assert_eq!(p.spec.type_name(), spec["type"].as_str().unwrap());
}

#[test]
fn polymorphic_container_drops_other_keys_and_coerces() {
    let input = provider(
        json!({"static": {"metrics": {"z": 1, "a": "0.5"}, "junk": 1},
                                "prometheus": {"url": "x"}, "other": 5, "type": "static"}),
    );
    let expected = provider(json!({"type": "static", "static": {"metrics": {"z": 1.0, "a": 0.5}}}));
    round_trip::<GlobalMetricsProvider>(input, expected);
}

#[rstest]
#[case(json!({"type": "graphite", "graphite": {}}), "{'spec': {'type': [\"Unknown type 'graphite'\"]}}")]
#[case(json!({"prometheus": {"url": "x"}}), "{'spec': {'type': ['Missing data for required field.']}}")]
#[case(json!({"type": null}), "{'spec': {'type': ['Field may not be null.']}}")]
#[case(json!({"type": 5}), "{'spec': {'type': ['Not a valid string.']}}")]
#[case(json!({"type": "prometheus"}), "{'spec': {'prometheus': ['Field is required']}}")]
#[case(json!({"type": "prometheus", "static": {"metrics": {}}}), "{'spec': {'prometheus': ['Field is required']}}")]
#[case(json!({"type": "prometheus", "prometheus": {}}), "{'spec': {'prometheus': {'url': ['Missing data for required field.']}}}")]
#[case(json!({"type": "prometheus", "prometheus": null}), "{'spec': {'prometheus': ['Field may not be null.']}}")]
#[case(json!({"type": "static", "static": {"metrics": {"a": "x"}}}), "{'spec': {'static': {'metrics': {'a': ['Not a valid number.']}}}}")]
#[case(json!("prometheus"), "{'spec': {'_schema': ['Invalid input type.']}}")]
#[case(json!(null), "{'spec': ['Field may not be null.']}")]
fn polymorphic_container_errors(#[case] spec: Value, #[case] expected: &str) {
    assert_eq!(err::<GlobalMetricsProvider>(provider(spec)), expected);
}

#[test]
fn metrics_provider_type_change_through_merge() {
    let mut stored: MetricsProvider = ok(with(
        &provider(json!({"type": "prometheus", "prometheus": {"url": "a"}})),
        |v| {
            v["kind"] = json!("MetricsProvider");
            v["metadata"] = meta("p", Some("ns"));
        },
    ));
    let body = with(&serde_json::to_value(&stored).unwrap(), |v| {
        v["spec"] = json!({"type": "static", "static": {"metrics": {"m": 1}}});
    });
    let body: MetricsProvider = ok(body);
    stored.merge_spec_from(&body).unwrap();
    assert!(
        matches!(&stored.spec, MetricsProviderSpec::Static(s) if s.metrics.get("m") == Some(&1.0))
    );
    assert_eq!(
        serde_json::to_value(&stored).unwrap()["spec"],
        json!({"type": "static", "static": {"metrics": {"m": 1.0}}})
    );
    assert!(decode::<MetricsProvider>(serde_json::to_value(&stored).unwrap()).is_ok());
}
