//! Core API specifics: Role rules and verbs, RoleBinding, Metric and metrics-provider
//! schemas.

use crate::common::*;
use rstest::rstest;
use serde_json::json;

const NS: &str = "ns1";

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn role_rules_are_validated(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let roles = K::Role.all_collection();

    let mut body = K::Role.sample("bad-verb");
    body["rules"][0]["verbs"] = json!(["get", "bogus"]);
    let r = srv.post(&roles, &body).await;
    assert_problem(&r, 422, None, "Invalid enum member bogus");
    assert_problem(&r, 422, None, "verbs");

    let mut body = K::Role.sample("upper-verb");
    body["rules"][0]["verbs"] = json!(["Get"]);
    let r = srv.post(&roles, &body).await;
    assert_problem(&r, 422, None, "Invalid enum member Get");

    let mut body = K::Role.sample("no-namespaces");
    body["rules"][0]
        .as_object_mut()
        .unwrap()
        .remove("namespaces");
    let r = srv.post(&roles, &body).await;
    assert_problem(&r, 422, None, "namespaces");

    let r = srv
        .post(&roles, &json!({"metadata": {"name": "no-rules"}}))
        .await;
    assert_problem(&r, 422, None, "rules");

    // Every verb, wildcards and empty rule lists are fine.
    let body = json!({"metadata": {"name": "all"}, "rules": [{"api": "", "resources": [""], "namespaces": [""],
        "verbs": ["create", "list", "list_all", "get", "update", "delete"]}]});
    let created = srv.create_body(K::Role, NS, &body).await;
    assert_eq!(
        created["rules"][0]["verbs"],
        json!(["create", "list", "list_all", "get", "update", "delete"])
    );
    srv.create_body(
        K::Role,
        NS,
        &json!({"metadata": {"name": "empty"}, "rules": []}),
    )
    .await;
    let names: Vec<String> = srv
        .list_names(&roles)
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, vec!["all".to_string(), "empty".to_string()]);
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn role_binding_and_metric_schemas(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let r = srv
        .post(
            &K::RoleBinding.all_collection(),
            &json!({"metadata": {"name": "rb"}, "users": ["u"]}),
        )
        .await;
    assert_problem(&r, 422, None, "roles");
    let r = srv
        .post(
            &K::RoleBinding.all_collection(),
            &json!({"metadata": {"name": "rb"}, "users": "u", "roles": []}),
        )
        .await;
    assert_problem(&r, 422, None, "users");

    // Metric: allowed_values is required (repository head); floats are floats.
    for kind in [K::GlobalMetric, K::Metric] {
        let mut body = kind.sample("no-allowed");
        body["spec"]
            .as_object_mut()
            .unwrap()
            .remove("allowed_values");
        let r = srv.post(&kind.collection(NS), &body).await;
        assert_problem(&r, 422, None, "allowed_values");
        let mut body = kind.sample("ints");
        body["spec"]["min"] = json!(0);
        body["spec"]["max"] = json!("5");
        body["spec"]["allowed_values"] = json!([1, "2"]);
        let created = srv.create_body(kind, NS, &body).await;
        assert_eq!(created["spec"]["min"], json!(0.0));
        assert_eq!(created["spec"]["max"], json!(5.0));
        assert_eq!(created["spec"]["allowed_values"], json!([1, 2]));
        let mut body = kind.sample("noprovider");
        body["spec"]["provider"] = json!({"name": "p"});
        let r = srv.post(&kind.collection(NS), &body).await;
        assert_problem(&r, 422, None, "metric");
    }
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn metrics_provider_types(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let specs = [
        json!({"type": "prometheus", "prometheus": {"url": "http://p:9090"}}),
        json!({"type": "influx", "influx": {"url": "http://i:8086", "token": "t", "org": "o", "bucket": "b"}}),
        json!({"type": "kafka", "kafka": {"comparison_column": "c", "value_column": "v", "table": "t", "url": "http://k:8088"}}),
        json!({"type": "static", "static": {"metrics": {"load": 1, "x": 0.5}}}),
    ];
    for (i, spec) in specs.iter().enumerate() {
        for kind in [K::GlobalMetricsProvider, K::MetricsProvider] {
            let name = format!("mp{i}");
            let mut body = kind.sample(&name);
            body["spec"] = spec.clone();
            let created = srv.create_body(kind, NS, &body).await;
            assert_subset(spec, &created["spec"], "spec");
            let keys: Vec<&String> = created["spec"].as_object().unwrap().keys().collect();
            assert_eq!(
                keys.len(),
                2,
                "type and its sub-object only: {}",
                created["spec"]
            );
        }
    }
    let created = srv.get_ok(&K::MetricsProvider.object(NS, "mp3")).await;
    assert_eq!(
        created["spec"]["static"]["metrics"],
        json!({"load": 1.0, "x": 0.5})
    );

    let mut body = K::MetricsProvider.sample("graphite");
    body["spec"] = json!({"type": "graphite", "graphite": {"url": "x"}});
    let r = srv.post(&K::MetricsProvider.collection(NS), &body).await;
    assert_problem(&r, 422, None, "Unknown type 'graphite'");
    let mut body = K::MetricsProvider.sample("incomplete");
    body["spec"] = json!({"type": "influx", "influx": {"url": "http://i:8086"}});
    let r = srv.post(&K::MetricsProvider.collection(NS), &body).await;
    assert_problem(&r, 422, None, "token");
    let mut body = K::MetricsProvider.sample("notype");
    body["spec"] = json!({"prometheus": {"url": "http://p:9090"}});
    let r = srv.post(&K::MetricsProvider.collection(NS), &body).await;
    assert_problem(&r, 422, None, "type");
}
