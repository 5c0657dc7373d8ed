//! Infrastructure API specifics: IM provider authentication rule, GlobalCloud reference
//! rules, polymorphic containers.

use crate::common::*;
use rstest::rstest;
use serde_json::json;

const NS: &str = "ns1";

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn infrastructure_provider_needs_authentication(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for kind in [K::GlobalInfrastructureProvider, K::InfrastructureProvider] {
        let mut body = kind.sample("noauth");
        body["spec"]["im"] = json!({"url": "http://im:8800", "username": "u"});
        let r = srv.post(&kind.collection(NS), &body).await;
        assert_problem(
            &r,
            422,
            None,
            "At least one authentication should be defined in the IM infrastructure provider spec.",
        );
        assert_problem(&r, 422, None, "_schema");

        let mut body = kind.sample("token");
        body["spec"]["im"] = json!({"url": "http://im:8800", "token": "t"});
        let created = srv.create_body(kind, NS, &body).await;
        assert_eq!(
            created["spec"],
            json!({"type": "im", "im": {"url": "http://im:8800", "username": null, "password": null, "token": "t"}}),
            "the polymorphic container holds exactly the type and its sub-object with all fields"
        );

        // Other types' sub-objects are dropped; unknown types and missing sub-objects fail.
        let mut body = kind.sample("extra");
        body["spec"]["other"] = json!({"x": 1});
        let created = srv.create_body(kind, NS, &body).await;
        assert!(created["spec"].get("other").is_none(), "{created}");
        let mut body = kind.sample("unknown");
        body["spec"] = json!({"type": "terraform", "terraform": {}});
        let r = srv.post(&kind.collection(NS), &body).await;
        assert_problem(&r, 422, None, "type");
        let mut body = kind.sample("nosub");
        body["spec"] = json!({"type": "im"});
        let r = srv.post(&kind.collection(NS), &body).await;
        assert_problem(&r, 422, None, "im");

        let names: Vec<String> = srv
            .list_names(&kind.collection(NS))
            .await
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(
            names,
            vec!["extra".to_string(), "token".to_string()],
            "invalid bodies are not stored"
        );
    }
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn global_cloud_references_only_global_objects(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let mut body = K::GlobalCloud.sample("gc");
    body["spec"]["openstack"]["infrastructure_provider"]["namespaced"] = json!(true);
    let r = srv.post(&K::GlobalCloud.collection(NS), &body).await;
    assert_problem(
        &r,
        422,
        None,
        "A non-namespaced global cloud resource cannot reference the namespaced infrastructure provider resource.",
    );

    let mut body = K::GlobalCloud.sample("gc");
    body["spec"]["openstack"]["metrics"] = json!([{"name": "m", "weight": 1, "namespaced": true}]);
    let r = srv.post(&K::GlobalCloud.collection(NS), &body).await;
    assert_problem(
        &r,
        422,
        None,
        "A non-namespaced global cloud resource cannot reference the namespaced metric resource.",
    );
    assert_eq!(srv.get(&K::GlobalCloud.object(NS, "gc")).await.0, 404);

    // A namespaced Cloud may reference both; defaults are filled in.
    let mut body = K::Cloud.sample("c");
    body["spec"]["openstack"]["metrics"] = json!([{"name": "m", "weight": 1, "namespaced": true}]);
    body["spec"]["openstack"]["auth"]["password"] =
        json!({"user": {"username": "u", "password": "p"}, "project": {"name": "proj"}});
    let created = srv.create_body(K::Cloud, NS, &body).await;
    assert_eq!(
        created["spec"]["openstack"]["metrics"],
        json!([{"name": "m", "weight": 1.0, "namespaced": true}])
    );
    assert_eq!(
        created["spec"]["openstack"]["auth"]["password"],
        json!({"version": "3",
               "user": {"username": "u", "password": "p", "domain_name": "Default", "comment": null},
               "project": {"name": "proj", "domain_id": "default", "comment": null}})
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn global_cloud_status_subresource(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let path = K::GlobalCloud.object(NS, "gc");
    let created = srv.create(K::GlobalCloud, NS, "gc").await;
    assert_eq!(created["metadata"]["namespace"], serde_json::Value::Null);
    let mut body = created.clone();
    body["status"]["state"] = json!("FAILING_METRICS");
    let updated = srv.put_ok(&format!("{path}/status"), &body).await;
    assert_eq!(
        updated["status"],
        json!({"state": "FAILING_METRICS", "metrics_reasons": {}})
    );
    let mut body = created.clone();
    body["status"]["state"] = json!("OFFLINE");
    let r = srv.put(&format!("{path}/status"), &body).await;
    assert_problem(&r, 422, None, "Invalid enum member OFFLINE");
    assert_eq!(srv.get_ok(&path).await, updated);
}
