//! Kubeconfigs that would make a controller run a program or read a host file are refused
//! on Cluster create and update with a 422 that names the key, and nothing is stored.

use crate::common::*;
use krake_crds::fixtures::kubeconfig;
use rstest::rstest;
use serde_json::{Value, json};

const NS: &str = "ns1";

/// (path of the section, key, a value that would run a program or read a file).
fn refused() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "users",
            "exec",
            json!({"command": "/bin/sh", "args": ["-c", "id"]}),
        ),
        (
            "users",
            "auth-provider",
            json!({"name": "oidc", "config": {}}),
        ),
        ("users", "tokenFile", json!("/etc/krake/leak-me")),
        (
            "users",
            "client-certificate",
            json!("/etc/krake/leak-me.pem"),
        ),
        ("users", "client-key", json!("/etc/krake/leak-me-key.pem")),
        (
            "clusters",
            "certificate-authority",
            json!("/etc/krake/leak-me-ca.pem"),
        ),
    ]
}

fn cluster_with(list: &str, key: &str, value: &Value) -> (Value, String) {
    let section = if list == "users" { "user" } else { "cluster" };
    let mut kc = Value::Object(kubeconfig());
    kc[list][0][section][key] = value.clone();
    let mut body = K::Cluster.sample("c");
    body["spec"]["kubeconfig"] = kc;
    (body, format!("{list}[0].{section}.{key}"))
}

fn assert_refused(r: &Resp, path: &str) {
    assert_problem(r, 422, None, &format!("Key {path} is not allowed"));
    let detail = r.2["detail"].as_str().unwrap_or_default();
    assert!(
        !detail.contains("leak-me") && !detail.contains("/bin/sh"),
        "the value leaked into the problem: {detail}"
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn create_with_a_refused_kubeconfig_key_is_422_naming_the_key(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for (list, key, value) in refused() {
        let (body, path) = cluster_with(list, key, &value);
        let r = srv.post(&K::Cluster.collection(NS), &body).await;
        assert_refused(&r, &path);
    }
    assert_eq!(
        srv.get_ok(&K::Cluster.collection(NS)).await["items"],
        json!([])
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[tokio::test]
async fn update_with_a_refused_kubeconfig_key_is_422_and_keeps_the_stored_kubeconfig(
    #[case] backend: Backend,
) {
    let srv = TestServer::start(backend).await;
    let created = srv.create(K::Cluster, NS, "c").await;
    for (list, key, value) in refused() {
        let (body, path) = cluster_with(list, key, &value);
        let mut update = created.clone();
        update["spec"]["kubeconfig"] = body["spec"]["kubeconfig"].clone();
        let r = srv.put(&K::Cluster.object(NS, "c"), &update).await;
        assert_refused(&r, &path);
    }
    let stored = srv.get_ok(&K::Cluster.object(NS, "c")).await;
    assert_eq!(stored["spec"]["kubeconfig"], created["spec"]["kubeconfig"]);
}
