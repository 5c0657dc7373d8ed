//! TOSCA templates are validated as upstream's parser does it first: a known
//! `tosca_definitions_version`, known sections of the right shape; a 422 names the
//! offending element.

use crate::common::*;
use krake_crds::fixtures::kubeconfig;
use serde_json::json;

const NS: &str = "ns1";

#[tokio::test]
async fn invalid_tosca_templates_are_refused_naming_the_element() {
    let srv = TestServer::embedded().await;
    let cases = [
        (json!({"tosca_definitions_version": "bogus"}), "\"bogus\""),
        (
            json!({"topology_template": {}}),
            "\"tosca_definitions_version\"",
        ),
        (
            json!({"tosca_definitions_version": "tosca_simple_yaml_1_0", "nodes": {}}),
            "unknown field \"nodes\"",
        ),
        (
            json!({"tosca_definitions_version": "tosca_simple_yaml_1_3", "topology_template": {"node_templates": []}}),
            "topology_template.node_templates",
        ),
    ];
    for (tosca, named) in &cases {
        let mut app = K::Application.sample("a");
        app["spec"]["manifest"] = json!([]);
        app["spec"]["tosca"] = tosca.clone();
        let r = srv.post(&K::Application.collection(NS), &app).await;
        assert_problem(&r, 422, None, "'tosca': ['Invalid TOSCA template content.");
        assert_problem(&r, 422, None, named);

        let mut tosca = tosca.clone();
        tosca["topology_template"]["outputs"] = json!({"kubeconfig": {"value": "x"}});
        let mut cluster = K::Cluster.sample("c");
        cluster["spec"]["kubeconfig"] = json!({});
        cluster["spec"]["tosca"] = tosca;
        let r = srv.post(&K::Cluster.collection(NS), &cluster).await;
        assert_problem(&r, 422, None, "Invalid TOSCA template content.");
    }
    assert_eq!(srv.list_names(&K::Application.collection(NS)).await, []);
    assert_eq!(srv.list_names(&K::Cluster.collection(NS)).await, []);

    for version in [
        "tosca_simple_yaml_1_0",
        "tosca_simple_yaml_1_2",
        "tosca_simple_yaml_1_3",
    ] {
        let mut app = K::Application.sample(version);
        app["spec"]["manifest"] = json!([]);
        app["spec"]["tosca"] = json!({"tosca_definitions_version": version,
            "topology_template": {"node_templates": {"pod": {"type": "tosca.nodes.indigo.KubernetesObject"}}}});
        srv.create_body(K::Application, NS, &app).await;
    }
    let mut cluster = K::Cluster.sample("c");
    cluster["spec"]["kubeconfig"] = json!({});
    cluster["spec"]["tosca"] = json!({"tosca_definitions_version": "tosca_simple_yaml_1_3",
        "topology_template": {"outputs": {"kubeconfig": {"value": "x"}}}});
    srv.create_body(K::Cluster, NS, &cluster).await;
    let mut cluster = K::Cluster.sample("d");
    cluster["spec"]["kubeconfig"] = serde_json::to_value(kubeconfig()).unwrap();
    srv.create_body(K::Cluster, NS, &cluster).await;
}
