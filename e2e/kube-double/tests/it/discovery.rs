//! Discovery from the kind table (legacy and aggregated), and CRDs that start and stop
//! serving their kind.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::{self, Discovery, Scope};
use serde_json::json;

use crate::common::{api_error, client, double};

const BUILTIN: &[(&str, &str, &str, bool)] = &[
    ("", "v1", "Namespace", false),
    ("", "v1", "Node", false),
    ("", "v1", "Pod", true),
    ("", "v1", "Service", true),
    ("", "v1", "Endpoints", true),
    ("", "v1", "ConfigMap", true),
    ("", "v1", "Secret", true),
    ("", "v1", "ServiceAccount", true),
    ("", "v1", "PersistentVolumeClaim", true),
    ("apps", "v1", "Deployment", true),
    ("apps", "v1", "StatefulSet", true),
    ("apps", "v1", "DaemonSet", true),
    ("apps", "v1", "ReplicaSet", true),
    ("batch", "v1", "Job", true),
    ("batch", "v1", "CronJob", true),
    ("networking.k8s.io", "v1", "Ingress", true),
    ("rbac.authorization.k8s.io", "v1", "Role", true),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", true),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", false),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        false,
    ),
];

fn check_builtins(discovery: &Discovery) {
    for (group, version, kind, namespaced) in BUILTIN {
        let (ar, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
            .unwrap_or_else(|| panic!("{kind} is discovered"));
        assert_eq!(caps.scope == Scope::Namespaced, *namespaced, "{kind}");
        assert!(caps.supports_operation(discovery::verbs::WATCH), "{kind}");
        if *kind == "Deployment" {
            assert_eq!(ar.plural, "deployments");
            let subs: Vec<&str> = caps
                .subresources
                .iter()
                .map(|(r, _)| r.plural.as_str())
                .collect();
            assert!(
                subs.contains(&"status") && subs.contains(&"scale"),
                "{subs:?}"
            );
        }
    }
}

#[tokio::test]
async fn legacy_and_aggregated_discovery_list_every_builtin_kind() {
    let double = double().await;
    let c = client(&double).await;
    let legacy = Discovery::new(c.clone())
        .run()
        .await
        .expect("legacy discovery");
    check_builtins(&legacy);
    let aggregated = Discovery::new(c.clone())
        .run_aggregated()
        .await
        .expect("aggregated discovery");
    check_builtins(&aggregated);
    let (ar, caps) =
        discovery::pinned_kind(&c, &GroupVersionKind::gvk("apps", "v1", "StatefulSet"))
            .await
            .unwrap();
    assert_eq!(
        (ar.plural.as_str(), caps.scope),
        ("statefulsets", Scope::Namespaced)
    );
    let missing =
        discovery::pinned_kind(&c, &GroupVersionKind::gvk("example.com", "v1", "Widget")).await;
    assert!(missing.is_err());
}

fn widget_crd(scope: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}}],
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn a_crd_serves_its_kind_until_deleted() {
    for scope in ["Namespaced", "Cluster"] {
        let double = double().await;
        let c = client(&double).await;
        let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
        let created = crds
            .create(&PostParams::default(), &widget_crd(scope))
            .await
            .expect("CRD created");
        let conditions = created.status.unwrap().conditions.unwrap();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        );

        let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
        let (ar, caps) = discovery::pinned_kind(&c, &gvk)
            .await
            .expect("the new kind is discovered");
        assert_eq!(caps.scope == Scope::Namespaced, scope == "Namespaced");
        let aggregated = Discovery::new(c.clone()).run_aggregated().await.unwrap();
        assert!(aggregated.resolve_gvk(&gvk).is_some());

        let api: Api<DynamicObject> =
            Api::dynamic(c.clone(), &ar, &caps.scope).constrain("default");
        let widget: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}
        }))
        .unwrap();
        api.create(&PostParams::default(), &widget)
            .await
            .expect("a widget");
        assert_eq!(api.get("w1").await.unwrap().data["spec"]["size"], 3);

        crds.delete("widgets.example.com", &DeleteParams::default())
            .await
            .unwrap();
        assert!(
            discovery::pinned_kind(&c, &gvk).await.is_err(),
            "the kind is gone from discovery"
        );
        let status = api_error(api.get("w1").await);
        assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
        let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
        let status = api_error(
            Api::<DynamicObject>::all_with(c.clone(), &ar)
                .list(&Default::default())
                .await,
        );
        assert_eq!(status.code, 404);
    }
}

#[tokio::test]
async fn a_crd_name_must_be_plural_dot_group() {
    let double = double().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client(&double).await);
    let mut crd = widget_crd("Namespaced");
    crd.metadata.name = Some("gadgets.example.com".into());
    let status = api_error(crds.create(&PostParams::default(), &crd).await);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("metadata.name"),
        "{}",
        status.message
    );
}
