//! OpenStack API specifics: MagnumCluster binding, immutable `master_count` and
//! `status.template`, Project validation.

use crate::common::*;
use rstest::rstest;
use serde_json::{Value, json};

const NS: &str = "ns1";

fn project_ref(name: &str) -> Value {
    json!({"api": "openstack", "namespace": NS, "kind": "Project", "name": name})
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn magnum_cluster_binding(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let path = K::MagnumCluster.object(NS, "m1");
    let binding = format!("{path}/binding");
    let created = srv.create(K::MagnumCluster, NS, "m1").await;

    let body = json!({"api": "openstack", "kind": "MagnumClusterBinding", "project": project_ref("p1"), "template": "t1"});
    let bound = srv.put_ok(&binding, &body).await;
    assert_eq!(bound["status"]["project"], project_ref("p1"));
    assert_eq!(bound["status"]["template"], "t1");
    assert_eq!(bound["status"]["state"], "PENDING");
    assert_eq!(bound["metadata"]["owners"], json!([project_ref("p1")]));
    assert_eq!(
        bound["metadata"]["modified"],
        created["metadata"]["modified"]
    );
    assert_eq!(srv.get_ok(&path).await, bound);

    // A second project: appended, the old owner stays; the template may change here.
    let rebound = srv
        .put_ok(
            &binding,
            &json!({"project": project_ref("p2"), "template": "t2"}),
        )
        .await;
    assert_eq!(rebound["status"]["project"], project_ref("p2"));
    assert_eq!(rebound["status"]["template"], "t2");
    assert_eq!(
        rebound["metadata"]["owners"],
        json!([project_ref("p1"), project_ref("p2")])
    );
    let again = srv
        .put_ok(
            &binding,
            &json!({"project": project_ref("p2"), "template": "t2"}),
        )
        .await;
    assert_eq!(
        again["metadata"]["owners"],
        json!([project_ref("p1"), project_ref("p2")]),
        "owner added once"
    );

    // Required fields.
    let r = srv
        .put(&binding, &json!({"project": project_ref("p1")}))
        .await;
    assert_problem(&r, 422, None, "template");
    let r = srv.put(&binding, &json!({"template": "t"})).await;
    assert_problem(&r, 422, None, "project");
    let r = srv.put_raw(&binding, b"").await;
    assert_eq!(r.status, 415, "existing object, empty body: {}", r.text());

    // Upstream loads before parsing on this route: a missing object is 404 even with an
    // empty body.
    let missing = format!("{}/binding", K::MagnumCluster.object(NS, "missing"));
    let r = srv.put_raw(&missing, b"").await;
    let r = (r.status, r.headers.clone(), r.json());
    assert_problem_exact(
        &r,
        404,
        Some("NOT_FOUND_ERROR"),
        "'MagnumCluster' 'missing' does not exist in namespace 'ns1'",
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn magnum_cluster_immutable_fields(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let path = K::MagnumCluster.object(NS, "m1");
    let created = srv.create(K::MagnumCluster, NS, "m1").await;

    // spec.master_count cannot change ...
    let mut body = created.clone();
    body["spec"]["master_count"] = json!(3);
    let r = srv.put(&path, &body).await;
    assert_problem_exact(
        &r,
        400,
        Some("UPDATE_ERROR"),
        "Trying to update an immutable field: master_count",
    );
    assert_eq!(srv.get_ok(&path).await, created);
    // ... while node_count can.
    let mut body = created.clone();
    body["spec"]["node_count"] = json!(7);
    let updated = srv.put_ok(&path, &body).await;
    assert_eq!(updated["spec"]["node_count"], 7);
    assert_eq!(updated["spec"]["master_count"], 1);

    // status.template is set by the binding only.
    let mut body = updated.clone();
    body["status"]["template"] = json!("sneaky");
    let r = srv.put(&format!("{path}/status"), &body).await;
    assert_problem_exact(
        &r,
        400,
        Some("UPDATE_ERROR"),
        "Trying to update an immutable field: template",
    );
    let bound = srv
        .put_ok(
            &format!("{path}/binding"),
            &json!({"project": project_ref("p1"), "template": "t1"}),
        )
        .await;
    let mut body = bound.clone();
    body["status"]["template"] = json!("t2");
    let r = srv.put(&format!("{path}/status"), &body).await;
    assert_problem_exact(
        &r,
        400,
        Some("UPDATE_ERROR"),
        "Trying to update an immutable field: template",
    );
    assert_eq!(
        srv.get_ok(&path).await,
        bound,
        "rejected status updates write nothing"
    );

    // Other status fields remain writable with the template unchanged.
    let mut body = bound.clone();
    body["status"]["state"] = json!("RUNNING");
    body["status"]["node_addresses"] = json!(["10.0.0.7"]);
    let r = srv.put_ok(&format!("{path}/status"), &body).await;
    assert_eq!(r["status"]["state"], "RUNNING");
    assert_eq!(r["status"]["template"], "t1");
    assert_eq!(r["status"]["node_addresses"], json!(["10.0.0.7"]));
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn magnum_cluster_optional_spec_and_project_validation(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    // Every MagnumCluster spec key is optional.
    let created = srv
        .create_body(
            K::MagnumCluster,
            NS,
            &json!({"metadata": {"name": "bare"}, "spec": {}}),
        )
        .await;
    assert_eq!(created["spec"]["master_count"], Value::Null);
    assert_eq!(created["spec"]["metrics"], json!([]));
    // But the spec itself is required.
    let r = srv
        .post(
            &K::MagnumCluster.collection(NS),
            &json!({"metadata": {"name": "nospec"}}),
        )
        .await;
    assert_problem(&r, 422, None, "spec");
    // Label constraints are validated.
    let mut body = K::MagnumCluster.sample("badlabels");
    body["spec"]["constraints"]["project"]["labels"] = json!(["a in ()"]);
    let r = srv.post(&K::MagnumCluster.collection(NS), &body).await;
    assert_problem(&r, 422, None, "labels");

    // Project: application credentials are the other auth type; unknown types fail.
    let mut body = K::Project.sample("p-cred");
    body["spec"]["auth"] = json!({"type": "application_credential", "application_credential": {"id": "i", "secret": "s"}});
    let p = srv.create_body(K::Project, NS, &body).await;
    assert_eq!(
        p["spec"]["auth"],
        json!({"type": "application_credential", "application_credential": {"id": "i", "secret": "s"}})
    );
    let mut body = K::Project.sample("p-bad");
    body["spec"]["auth"] = json!({"type": "kerberos", "kerberos": {}});
    let r = srv.post(&K::Project.collection(NS), &body).await;
    assert_problem(&r, 422, None, "auth");
    let mut body = K::Project.sample("p-missing");
    body["spec"].as_object_mut().unwrap().remove("template");
    let r = srv.post(&K::Project.collection(NS), &body).await;
    assert_problem(&r, 422, None, "template");
    let names = srv.list_names(&K::Project.collection(NS)).await;
    assert_eq!(
        names,
        vec![(Some(NS.to_string()), "p-cred".to_string())],
        "invalid bodies are not stored"
    );
}
