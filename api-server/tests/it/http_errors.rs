//! Bad input and error documents (problem+json with upstream's titles and details): every rejected
//! request answers a problem document and stores nothing.

use crate::common::*;
use krake_crds::fixtures::kubeconfig;
use reqwest::Method;
use rstest::rstest;
use serde_json::{Value, json};

const NS: &str = "ns1";

/// POST `body` for `kind`, expect 422 whose detail mentions every one of `mentions`, and
/// check that nothing was stored.
async fn rejected(srv: &TestServer, kind: K, body: &Value, mentions: &[&str]) {
    let r = srv.post(&kind.collection(NS), body).await;
    for m in mentions {
        assert_problem(&r, 422, None, m);
    }
    assert_eq!(
        srv.get_ok(&kind.collection(NS)).await["items"],
        json!([]),
        "nothing stored after {body}"
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn unparseable_and_non_object_bodies(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for kind in [K::Application, K::Role] {
        let collection = kind.collection(NS);
        for body in [&b""[..], b"{", b"not json", b"{\"metadata\": "] {
            let r = srv.post_raw(&collection, body).await;
            let r = (r.status, r.headers.clone(), r.json());
            assert_problem_exact(&r, 415, None, "415: Unsupported Media Type");
        }
        for body in ["[]", "null", "\"x\"", "5"] {
            let r = srv.post_raw(&collection, body.as_bytes()).await;
            let r = (r.status, r.headers.clone(), r.json());
            assert_problem(&r, 422, None, "Invalid input type.");
        }
        // The content type is not checked.
        let r = srv
            .raw(
                Method::POST,
                &collection,
                Some(serde_json::to_vec(&kind.sample("typed")).unwrap()),
                &[("content-type", "text/plain")],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let names = srv.list_names(&collection).await;
        assert_eq!(names.len(), 1, "only the valid body was stored: {names:?}");
    }
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn names_and_types(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let kind = K::Metric;
    let with_name = |name: Value| {
        let mut body = kind.sample("x");
        body["metadata"]["name"] = name;
        body
    };
    rejected(
        &srv,
        kind,
        &with_name(json!(5)),
        &["metadata", "name", "Not a valid string."],
    )
    .await;
    rejected(&srv, kind, &with_name(json!(null)), &["metadata", "name"]).await;
    for bad in ["-a", "a-", ".a", "a b", "a/b", "é", "", &"a".repeat(256)] {
        rejected(
            &srv,
            kind,
            &with_name(json!(bad)),
            &["metadata", "name", "Invalid character in resource name."],
        )
        .await;
    }
    let mut body = kind.sample("x");
    body["metadata"].as_object_mut().unwrap().remove("name");
    rejected(
        &srv,
        kind,
        &body,
        &["name", "Missing data for required field."],
    )
    .await;
    rejected(
        &srv,
        kind,
        &json!({"api": "core", "kind": "Metric", "metadata": {"name": "x"}}),
        &["spec"],
    )
    .await;

    // Several semantic errors are reported together.
    let mut body = with_name(json!("-a"));
    body["metadata"]["labels"] = json!({"-x": "y"});
    rejected(
        &srv,
        kind,
        &body,
        &["Invalid character in resource name.", "labels", "-x"],
    )
    .await;

    let mut accepted = Vec::new();
    for good in [
        "a",
        "A",
        "_",
        "1",
        "a.b",
        "a:b",
        "a..b",
        "a--b",
        "Ab-C.d:e_f",
        &"a".repeat(255),
    ] {
        let created = srv.create_body(kind, NS, &with_name(json!(good))).await;
        assert_eq!(created["metadata"]["name"], good);
        assert_eq!(srv.get_ok(&kind.object(NS, good)).await, created);
        accepted.push(good.to_string());
    }
    assert_eq!(
        srv.list_names(&kind.collection(NS)).await.len(),
        accepted.len()
    );

    // Wrong types elsewhere.
    let mut body = kind.sample("types");
    body["spec"]["min"] = json!("low");
    let r = srv.post(&kind.collection(NS), &body).await;
    assert_problem(&r, 422, None, "min");
    let mut body = kind.sample("types");
    body["metadata"]["finalizers"] = json!("f");
    let r = srv.post(&kind.collection(NS), &body).await;
    assert_problem(&r, 422, None, "finalizers");
    let mut body = kind.sample("types");
    body["metadata"]["labels"] = json!(null);
    let r = srv.post(&kind.collection(NS), &body).await;
    assert_problem(&r, 422, None, "labels");
    assert_eq!(srv.get(&kind.object(NS, "types")).await.0, 404);
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn labels_and_constraints(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let with_labels = |labels: Value| {
        let mut body = K::Application.sample("x");
        body["metadata"]["labels"] = labels;
        body
    };
    for labels in [
        json!({"-bad": "x"}),
        json!({"k": ""}),
        json!({"k": 5}),
        json!({"k": null}),
        json!({"a/b/c": "x"}),
        json!({"k": "a:b"}),
        json!({"k": "x".repeat(64)}),
    ] {
        rejected(
            &srv,
            K::Application,
            &with_labels(labels),
            &["metadata", "labels"],
        )
        .await;
    }

    let with_constraints = |labels: Value, metrics: Value| {
        let mut body = K::Application.sample("x");
        body["spec"]["constraints"]["cluster"]["labels"] = labels;
        body["spec"]["constraints"]["cluster"]["metrics"] = metrics;
        body
    };
    for bad in [
        "location in ()",
        "a in (b,,c)",
        "loc is x y",
        "location is",
        "a = b=c",
        "loc is -x",
        "a/b/c is d",
    ] {
        rejected(
            &srv,
            K::Application,
            &with_constraints(json!([bad]), json!([])),
            &["constraints", "labels"],
        )
        .await;
    }
    for bad in ["load<5", "load is greater than 5", "load > -1", "load"] {
        rejected(
            &srv,
            K::Application,
            &with_constraints(json!([]), json!([bad])),
            &["constraints", "metrics"],
        )
        .await;
    }
    // Cluster constraints use the same grammars.
    let mut body = K::Cluster.sample("c");
    body["spec"]["constraints"]["cloud"]["labels"] = json!(["location in ()"]);
    rejected(&srv, K::Cluster, &body, &["labels"]).await;

    // Valid forms are stored verbatim.
    let labels = json!([
        "location is DE",
        "location=DE",
        "location == DE",
        "location != DE",
        "location is not DE",
        "location in (DE, UK)",
        "location in (DE,UK,)",
        "location not in (DE)",
        "example.com/zone is a"
    ]);
    let metrics = json!([
        "load >5",
        "load > 0.5",
        "load >= 1",
        "load gte 1",
        "load lesser than 3",
        "load == abc"
    ]);
    let created = srv
        .create_body(
            K::Application,
            NS,
            &with_constraints(labels.clone(), metrics.clone()),
        )
        .await;
    assert_eq!(created["spec"]["constraints"]["cluster"]["labels"], labels);
    assert_eq!(
        created["spec"]["constraints"]["cluster"]["metrics"],
        metrics
    );
    let created = srv
        .create_body(K::Application, NS, &{
            let mut b = with_labels(json!({"example.com/team": "a-b_c.d", "k": "v"}));
            b["metadata"]["name"] = json!("labelled");
            b
        })
        .await;
    assert_eq!(
        created["metadata"]["labels"],
        json!({"example.com/team": "a-b_c.d", "k": "v"})
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn enums_api_and_kind(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    rejected(
        &srv,
        K::Application,
        &{
            let mut b = K::Application.sample("x");
            b["kind"] = json!("Cluster");
            b
        },
        &["kind", "Must be equal to Application."],
    )
    .await;
    rejected(
        &srv,
        K::Application,
        &{
            let mut b = K::Application.sample("x");
            b["api"] = json!("core");
            b
        },
        &["api", "Must be equal to kubernetes."],
    )
    .await;
    // api and kind are optional.
    let mut body = K::Application.sample("a");
    body.as_object_mut().unwrap().remove("api");
    body.as_object_mut().unwrap().remove("kind");
    let created = srv.create_body(K::Application, NS, &body).await;
    assert_eq!(created["api"], "kubernetes");
    assert_eq!(created["kind"], "Application");

    // Enums are matched by exact member name.
    let path = K::Application.object(NS, "a");
    let mut body = created.clone();
    body["status"]["state"] = json!("running");
    let r = srv.put(&format!("{path}/status"), &body).await;
    assert_problem(&r, 422, None, "Invalid enum member running");
    assert_problem(&r, 422, None, "state");
    let mut body = created.clone();
    body["status"]["reason"] = json!({"code": 20, "message": "m"});
    let r = srv.put(&format!("{path}/status"), &body).await;
    assert_problem(&r, 422, None, "code");
    assert_eq!(
        srv.get_ok(&path).await,
        created,
        "rejected status updates store nothing"
    );

    // Unknown keys are dropped, not stored.
    let mut body = K::Application.sample("extra");
    body["surprise"] = json!(1);
    body["spec"]["surprise"] = json!(2);
    body["metadata"]["surprise"] = json!(3);
    let created = srv.create_body(K::Application, NS, &body).await;
    assert!(created.get("surprise").is_none() && created["spec"].get("surprise").is_none());
    assert!(created["metadata"].get("surprise").is_none());
    // Free-form objects keep everything.
    assert_eq!(
        created["spec"]["manifest"][0]["spec"],
        json!({"containers": []})
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn application_and_cluster_specs(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let app = |f: &dyn Fn(&mut Value)| {
        let mut b = K::Application.sample("x");
        f(&mut b);
        b
    };
    // Nothing defines the application.
    rejected(
        &srv,
        K::Application,
        &app(&|b| b["spec"]["manifest"] = json!([])),
        &["_schema", "manifest"],
    )
    .await;
    // Manifest entries need apiVersion, kind, metadata.name.
    rejected(
        &srv,
        K::Application,
        &app(&|b| b["spec"]["manifest"] = json!([{"kind": "Pod", "metadata": {"name": "p"}}])),
        &["apiVersion"],
    )
    .await;
    // Constraints are required.
    rejected(
        &srv,
        K::Application,
        &app(&|b| {
            b["spec"].as_object_mut().unwrap().remove("constraints");
        }),
        &["constraints", "Missing data for required field."],
    )
    .await;
    // TOSCA / CSAR URL suffixes.
    rejected(
        &srv,
        K::Application,
        &app(&|b| b["spec"]["tosca"] = json!("http://example.com/t.json")),
        &["tosca"],
    )
    .await;
    rejected(
        &srv,
        K::Application,
        &app(&|b| b["spec"]["csar"] = json!("http://example.com/c.tar")),
        &["csar"],
    )
    .await;

    rejected(
        &srv,
        K::Application,
        &app(&|b| {
            b["spec"]["manifest"] = json!([]);
            b["spec"]["tosca"] = json!({"foo": "bar"});
        }),
        &["tosca", "Invalid TOSCA template content."],
    )
    .await;
    // Valid TOSCA/CSAR alternatives to a manifest.
    for (i, (key, value)) in [
        ("tosca", json!("http://example.com/t.yaml")),
        ("tosca", json!("http://example.com/t.yml")),
        ("csar", json!("http://example.com/c.csar")),
        ("csar", json!("http://example.com/c.zip")),
        ("tosca", json!({"tosca_definitions_version": "tosca_simple_yaml_1_0",
                         "topology_template": {"node_templates": {"pod": {"type": "tosca.nodes.indigo.KubernetesObject"}}}})),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = K::Application.sample(&format!("alt{i}"));
        body["spec"]["manifest"] = json!([]);
        body["spec"][key] = value.clone();
        let created = srv.create_body(K::Application, NS, &body).await;
        assert_eq!(created["spec"][key], value);
        srv.delete(&format!("{}?force=True", K::Application.object(NS, &format!("alt{i}")))).await;
    }

    // observer_schema errors are 422 (upstream: 500).
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}});
    for schema in [
        json!([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unknown"}}]),
        json!([{"apiVersion": "v1", "kind": "Pod"}]),
        json!([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "x"}}]),
        json!([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"containers": [{"name": null}]}}]),
        json!([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"containers": [
            {"name": null}, {"observer_schema_list_min_length": 3, "observer_schema_list_max_length": 2}]}}]),
    ] {
        rejected(
            &srv,
            K::Application,
            &app(&|b| {
                b["spec"]["manifest"] = json!([pod]);
                b["spec"]["observer_schema"] = schema.clone();
            }),
            &["observer_schema"],
        )
        .await;
    }
    let valid_schema = json!([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": null},
        "spec": {"containers": [{"name": null}, {"observer_schema_list_min_length": 1, "observer_schema_list_max_length": 0}]}}]);
    let created = srv
        .create_body(
            K::Application,
            NS,
            &app(&|b| {
                b["spec"]["manifest"] = json!([pod]);
                b["spec"]["observer_schema"] = valid_schema.clone();
            }),
        )
        .await;
    assert_eq!(created["spec"]["observer_schema"], valid_schema);

    // Kubeconfig errors are 422, including a kubeconfig without users (upstream: 500).
    let cluster = |kc: Value| {
        let mut b = K::Cluster.sample("c");
        b["spec"]["kubeconfig"] = kc;
        b
    };
    let mut no_users = Value::Object(kubeconfig());
    no_users.as_object_mut().unwrap().remove("users");
    let mut two_contexts = Value::Object(kubeconfig());
    two_contexts["contexts"] = json!([{"name": "ctx", "context": {"cluster": "c1", "user": "u1"}},
                                      {"name": "ctx2", "context": {"cluster": "c1", "user": "u1"}}]);
    let mut bad_current = Value::Object(kubeconfig());
    bad_current["current-context"] = json!("nope");
    for kc in [
        json!({"invalid": "kubeconfig"}),
        no_users,
        two_contexts,
        bad_current,
    ] {
        rejected(&srv, K::Cluster, &cluster(kc), &["kubeconfig"]).await;
    }
    rejected(&srv, K::Cluster, &cluster(json!({})), &["_schema"]).await;
    let mut b = K::Cluster.sample("c");
    b["spec"]["constraints"] = json!({});
    rejected(&srv, K::Cluster, &b, &["cloud"]).await;
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn url_namespace_is_validated(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let r = srv
        .post("/core/namespaces/a%20b/metrics", &K::Metric.sample("m"))
        .await;
    assert_problem(&r, 422, None, "namespace");
    for path in [
        "/core/namespaces/a%20b/metrics",
        "/core/namespaces/-a/metrics/m",
        "/core/namespaces/a%20b/metrics/m",
        "/kubernetes/namespaces/a%20b/applications/x/status",
    ] {
        let r = srv.get(path).await;
        if path.ends_with("/status") {
            assert_eq!(r.0, 405, "{path}");
            continue;
        }
        assert_problem(&r, 422, None, "namespace");
    }
    let mut body = K::Application.sample("x");
    body["metadata"]["namespace"] = json!("a b");
    for (path, body) in [
        ("/kubernetes/namespaces/a%20b/applications/x", &body),
        ("/kubernetes/namespaces/a%20b/applications/x/status", &body),
        (
            "/kubernetes/namespaces/a%20b/applications/x/complete",
            &json!({"token": "t"}),
        ),
    ] {
        let r = srv.put(path, body).await;
        assert_problem(&r, 422, None, "namespace");
    }
    let r = srv
        .delete("/kubernetes/namespaces/a%20b/applications/x")
        .await;
    assert_problem(&r, 422, None, "namespace");
    // A slash inside the namespace segment never reaches another namespace.
    let r = srv.get("/kubernetes/namespaces/a%2Fb/applications").await;
    assert!(r.0 == 422 || r.0 == 404, "{}", r.0);
    assert_problem_type(&r.1);
    assert_eq!(
        srv.get_ok(&K::Metric.all_collection()).await["items"],
        json!([])
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn unknown_routes_and_methods(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for path in [
        "/foo",
        "/core/roles/",
        "/kubernetes/namespaces/ns1/applications/",
        "/kubernetes/namespaces/ns1/applications/a/",
        "/core/namespaces/ns1/roles",
        "/kubernetes/applications/a",
        "/api",
    ] {
        let r = srv.get(path).await;
        assert_eq!(r.0, 404, "{path}");
        assert_problem_type(&r.1);
        assert_eq!(
            r.2,
            json!({"type": "about:blank", "status": 404, "detail": "404: Not Found"}),
            "{path}"
        );
    }
    for (method, path, allowed) in [
        (Method::DELETE, "/core/roles", &["GET", "POST"][..]),
        (
            Method::PATCH,
            "/core/roles/r",
            &["GET", "PUT", "DELETE"][..],
        ),
        (
            Method::POST,
            "/kubernetes/namespaces/ns1/applications/a",
            &["GET", "PUT", "DELETE"][..],
        ),
        (
            Method::GET,
            "/kubernetes/namespaces/ns1/applications/a/status",
            &["PUT"][..],
        ),
        (Method::POST, "/", &["GET"][..]),
        (Method::PUT, "/kubernetes/applications", &["GET"][..]),
    ] {
        let r = srv
            .raw(method.clone(), path, Some(b"{}".to_vec()), &[])
            .await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        assert_problem_type(&r.headers);
        let body = r.json();
        assert_eq!(body["status"], 405);
        assert_eq!(body["detail"], "405: Method Not Allowed");
        let allow = r
            .headers
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
        for m in allowed {
            assert!(
                allow.contains(m),
                "{method} {path}: Allow {allow:?} lacks {m}"
            );
        }
    }
}

/// Authorization comes before body parsing and loading; body parsing before loading
/// (except the MagnumCluster binding), the order in which upstream checks them.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn processing_order(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let app = K::Application.object(NS, "missing");
    for path in [
        app.clone(),
        format!("{app}/status"),
        format!("{app}/binding"),
        format!("{app}/complete"),
        format!("{app}/shutdown"),
        K::Cluster.object(NS, "missing"),
        format!("{}/binding", K::Cluster.object(NS, "missing")),
        K::Role.object(NS, "missing"),
        format!("{}/status", K::GlobalCloud.object(NS, "missing")),
        format!("{}/status", K::MagnumCluster.object(NS, "missing")),
    ] {
        let r = srv.put_raw(&path, b"").await;
        assert_eq!(r.status, 415, "PUT {path} with an empty body: {}", r.text());
        assert_problem_type(&r.headers);
        let r = srv.put_raw(&path, b"[]").await;
        assert_eq!(
            r.status,
            422,
            "PUT {path} with a non-object body: {}",
            r.text()
        );
    }
    let r = srv
        .put_raw(
            &format!("{}/binding", K::MagnumCluster.object(NS, "missing")),
            b"",
        )
        .await;
    assert_eq!(r.status, 404, "MagnumCluster binding loads first");
    let r = srv.put_raw(&format!("{app}/retry"), b"").await;
    assert_eq!(r.status, 404, "retry has no body");
    let r = srv.delete(&app).await;
    assert_eq!(r.0, 404);
}

/// With `always-deny`, every resource endpoint answers 403, even for missing objects and
/// invalid bodies; the non-resource routes still answer.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn always_deny(#[case] backend: Backend) {
    use krake_api_server::config::AuthorizationMode;
    let srv =
        TestServer::with_config(backend, |c| c.authorization = AuthorizationMode::AlwaysDeny).await;
    let mut requests: Vec<(Method, String)> = Vec::new();
    for kind in all_kinds() {
        let object = kind.object(NS, "missing");
        requests.push((Method::POST, kind.collection(NS)));
        requests.push((Method::GET, kind.collection(NS)));
        requests.push((
            Method::GET,
            format!("{}?watch&heartbeat=0", kind.collection(NS)),
        ));
        requests.push((Method::GET, kind.all_collection()));
        requests.push((Method::GET, object.clone()));
        requests.push((Method::PUT, object.clone()));
        requests.push((Method::DELETE, object.clone()));
        if kind.has_status() {
            requests.push((Method::PUT, format!("{object}/status")));
        }
    }
    let app = K::Application.object(NS, "missing");
    for sub in ["binding", "complete", "shutdown", "retry"] {
        requests.push((Method::PUT, format!("{app}/{sub}")));
    }
    requests.push((
        Method::PUT,
        format!("{}/binding", K::Cluster.object(NS, "missing")),
    ));
    requests.push((
        Method::PUT,
        format!("{}/binding", K::MagnumCluster.object(NS, "missing")),
    ));
    for (method, path) in requests {
        let r = srv.raw(method.clone(), &path, Some(Vec::new()), &[]).await;
        let r = (r.status, r.headers.clone(), r.json());
        assert_eq!(r.0, 403, "{method} {path}: {}", r.2);
        assert_problem_exact(&r, 403, None, "403: Forbidden");
    }
    assert_eq!(srv.get_ok("/").await, json!({"version": "1.0.1"}));
    assert_eq!(srv.get("/me").await.0, 200);
    assert_eq!(srv.get("/release").await.0, 202);
}

/// Lenient input coercion, as upstream's marshmallow schemas accept it: numeric strings and integral floats for integers,
/// numbers for floats, Python-style booleans; strings do not accept numbers.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn coercion(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let mut body = K::Application.sample("coerced");
    body["spec"]["backoff"] = json!("5");
    body["spec"]["backoff_delay"] = json!(3.0);
    body["spec"]["auto_cluster_create"] = json!("yes");
    body["spec"]["constraints"]["migration"] = json!(0);
    body["metadata"]["inherit_labels"] = json!("true");
    let created = srv.create_body(K::Application, NS, &body).await;
    assert_eq!(created["spec"]["backoff"], json!(5));
    assert_eq!(created["spec"]["backoff_delay"], json!(3));
    assert_eq!(created["spec"]["auto_cluster_create"], json!(true));
    assert_eq!(created["spec"]["constraints"]["migration"], json!(false));
    assert_eq!(created["metadata"]["inherit_labels"], json!(true));

    for (field, value) in [
        ("backoff", json!(5.5)),
        ("backoff", json!("many")),
        ("hooks", json!("shutdown")),
        ("storage_migration", json!(5)),
    ] {
        let mut body = K::Application.sample("bad");
        body["spec"][field] = value.clone();
        let r = srv.post(&K::Application.collection(NS), &body).await;
        assert_problem(&r, 422, None, field);
    }
    let mut body = K::Application.sample("bad");
    body["spec"]["backoff"] = json!(null);
    let r = srv.post(&K::Application.collection(NS), &body).await;
    assert_problem(&r, 422, None, "Field may not be null.");
    assert_eq!(srv.get(&K::Application.object(NS, "bad")).await.0, 404);
}

/// Read-only fields may be omitted from a PUT (design deviation), but when present they
/// must be valid.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn read_only_fields_in_put_must_be_valid(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let path = K::Cluster.object(NS, "c");
    let created = srv.create(K::Cluster, NS, "c").await;
    for (field, value) in [
        ("created", json!("garbage")),
        ("modified", json!(5)),
        ("uid", json!(7)),
    ] {
        let mut body = created.clone();
        body["metadata"][field] = value;
        K::Cluster.mutate(&mut body);
        let r = srv.put(&path, &body).await;
        assert_problem(&r, 422, None, field);
    }
    let mut body = created.clone();
    body["status"]["state"] = json!("BOGUS");
    K::Cluster.mutate(&mut body);
    let r = srv.put(&path, &body).await;
    assert_problem(&r, 422, None, "Invalid enum member BOGUS");
    let mut body = created.clone();
    body["status"] = json!(null);
    K::Cluster.mutate(&mut body);
    let r = srv.put(&path, &body).await;
    assert_problem(&r, 422, None, "status");
    assert_eq!(srv.get_ok(&path).await, created);
}
