//! Member access against the Kubernetes API test double over TLS (its kubeconfig as a
//! Cluster stores it): requests, and discovery following CRDs as they come and go.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use krake_member::{MemberClients, MemberConfig, MemberError};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube_double::{KubeDouble, Options};
use serde_json::{Map, Value, json};

fn kubeconfig(double: &KubeDouble) -> Map<String, Value> {
    match double.kubeconfig() {
        Value::Object(map) => map,
        other => panic!("a kubeconfig object, got {other}"),
    }
}

fn gadget_crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn a_member_client_talks_to_the_double_and_discovery_follows_crds() {
    let double = KubeDouble::start(Options::default())
        .await
        .expect("the double starts");
    double
        .set_node_conditions("node-1", &[("Ready", "True")])
        .unwrap();
    let members = MemberClients::new(MemberConfig::default());
    let member = members
        .get("uid-1", &kubeconfig(&double))
        .await
        .expect("a client from the double's kubeconfig");

    let nodes: Api<Node> = Api::all(member.client());
    let names: Vec<String> = nodes
        .list(&ListParams::default())
        .await
        .expect("nodes listed over TLS")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert_eq!(names, ["node-1"]);

    let discovery = member.discovery();
    let (pod, caps) = discovery
        .resolve(&GroupVersionKind::gvk("", "v1", "Pod"))
        .await
        .unwrap();
    assert_eq!(
        (pod.plural.as_str(), caps.scope),
        ("pods", Scope::Namespaced)
    );
    let gadget = GroupVersionKind::gvk("example.com", "v1", "Gadget");
    assert!(matches!(
        discovery.resolve(&gadget).await,
        Err(MemberError::UnknownKind { .. })
    ));

    // A CRD created on the member: the next miss refreshes and finds it.
    let crds: Api<CustomResourceDefinition> = Api::all(member.client());
    crds.create(&PostParams::default(), &gadget_crd())
        .await
        .unwrap();
    let (resource, caps) = discovery.resolve(&gadget).await.expect("found on a miss");
    assert_eq!(
        (resource.plural.as_str(), caps.scope),
        ("gadgets", Scope::Cluster)
    );

    // Deleted: cached until invalidated, then unknown again.
    crds.delete("gadgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    discovery.invalidate_group("example.com");
    assert!(matches!(
        discovery.resolve(&gadget).await,
        Err(MemberError::UnknownKind { .. })
    ));
}
