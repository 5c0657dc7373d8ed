//! Create, get, list, update, patch, delete: server-set metadata, preconditions,
//! validation, finalizers, namespaces, garbage collection, selectors and paging.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
};
use serde_json::json;

use crate::common::{api_error, client, deployment, double};

fn typed(value: serde_json::Value) -> Deployment {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn typed_deployment_crud_with_server_metadata_and_conflicts() {
    let double = double().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&double).await, "default");
    let created = deployments
        .create(&PostParams::default(), &typed(deployment("web", 1)))
        .await
        .unwrap();
    let md = &created.metadata;
    assert!(md.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(md.creation_timestamp.is_some());
    assert_eq!(md.generation, Some(1));
    let rv1: u64 = md.resource_version.as_deref().unwrap().parse().unwrap();

    let status = api_error(
        deployments
            .create(&PostParams::default(), &typed(deployment("web", 1)))
            .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );

    let mut changed = created.clone();
    changed.spec.replicas = Some(3);
    let updated = deployments
        .replace("web", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(2));
    let rv2: u64 = updated
        .metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(updated.metadata.uid, created.metadata.uid);

    // The stale version of before the update.
    let status = api_error(
        deployments
            .replace("web", &PostParams::default(), &changed)
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status.message.contains("the object has been modified"),
        "{}",
        status.message
    );

    // Labels and status do not change the generation; status goes through its subresource only.
    let labelled = deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"tier": "front"}}, "status": {"replicas": 9}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    assert!(
        labelled.status.is_none_or(|s| s.replicas.is_none()),
        "status ignored on the main resource"
    );
    let with_status = deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3, "readyReplicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.status.unwrap().ready_replicas, Some(3));
    assert_eq!(with_status.metadata.generation, Some(2));

    // The scale subresource.
    let scale = deployments.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    deployments
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(deployments.get("web").await.unwrap().spec.replicas, Some(5));

    let gone = deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        gone.is_right(),
        "no finalizers: deleted at once, answered with a Status"
    );
    let status = api_error(deployments.get("web").await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn validation_is_strict_like_a_real_server() {
    let double = double().await;
    let c = client(&double).await;

    let status = api_error(
        Api::<ConfigMap>::namespaced(c.clone(), "nowhere")
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap(),
            )
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(status.message, "namespaces \"nowhere\" not found");

    let status = api_error(
        Api::<ConfigMap>::namespaced(c.clone(), "default")
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "Not_Valid"}})).unwrap(),
            )
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let causes = status.details.unwrap().causes;
    assert_eq!(causes[0].field, "metadata.name");
    assert_eq!(causes[0].reason, "FieldValueInvalid");

    let dynamic = Api::<DynamicObject>::namespaced_with(
        c.clone(),
        "default",
        &kube::api::ApiResource::erase::<Deployment>(&()),
    );
    let mut wrong = deployment("shape", 1);
    wrong["spec"]["replicas"] = json!("three");
    let status = api_error(
        dynamic
            .create(
                &PostParams::default(),
                &serde_json::from_value(wrong).unwrap(),
            )
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));

    let mut no_containers = deployment("empty", 1);
    no_containers["spec"]["template"]["spec"]["containers"] = json!([]);
    let status = api_error(
        dynamic
            .create(
                &PostParams::default(),
                &serde_json::from_value(no_containers).unwrap(),
            )
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status.message.contains("spec.template.spec.containers"),
        "{}",
        status.message
    );

    let mut mismatch = deployment("sel", 1);
    mismatch["spec"]["selector"]["matchLabels"]["app"] = json!("other");
    let status = api_error(
        dynamic
            .create(
                &PostParams::default(),
                &serde_json::from_value(mismatch).unwrap(),
            )
            .await,
    );
    assert_eq!(status.reason, "Invalid");
}

#[tokio::test]
async fn finalizers_hold_a_deletion_until_removed() {
    let double = double().await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&double).await, "default");
    let cm = serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"a": "1"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let pending = cms.delete("held", &DeleteParams::default()).await.unwrap();
    let pending = pending.left().expect("still there: finalizers remain");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(
        cms.get("held")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    let status = api_error(
        cms.patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["example.com/hold", "example.com/more"]}}),
            ),
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(cms.get("held").await).code, 404);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents_and_owners_take_dependents() {
    let double = double().await;
    let c = client(&double).await;
    let namespaces: Api<Namespace> = Api::all(c.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "team");
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let dependent = json!({"metadata": {"name": "dependent", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}});
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(dependent).unwrap(),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap(),
    )
    .await
    .unwrap();

    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(
        api_error(cms.get("dependent").await).code,
        404,
        "garbage-collected with its owner"
    );
    cms.get("other").await.unwrap();

    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(namespaces.get("team").await).code, 404);
    let status = api_error(
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap(),
        )
        .await,
    );
    assert_eq!(status.code, 404);
}

/// Foreground deletion: the owner stays, marked and with `foregroundDeletion`, until its
/// dependents are gone (here one held by its own finalizer), then goes by itself.
#[tokio::test]
async fn foreground_deletion_waits_for_the_dependents() {
    let double = double().await;
    let c = client(&double).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let reference = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]);
    for (name, finalizers) in [("held", json!(["example.com/hold"])), ("free", json!([]))] {
        let dependent = json!({"metadata": {"name": name, "ownerReferences": reference, "finalizers": finalizers}});
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(dependent).unwrap(),
        )
        .await
        .unwrap();
    }

    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    let pending = cms.get("owner").await.expect("held by its dependent");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert_eq!(
        pending.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    assert_eq!(api_error(cms.get("free").await).code, 404);
    let held = cms.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(cms.get("held").await).code, 404);
    assert_eq!(
        api_error(cms.get("owner").await).code,
        404,
        "the owner goes with its last dependent"
    );

    // Without dependents, a foreground deletion is immediate.
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "alone"}})).unwrap(),
    )
    .await
    .unwrap();
    cms.delete("alone", &DeleteParams::foreground())
        .await
        .unwrap();
    assert_eq!(api_error(cms.get("alone").await).code, 404);
}

/// Delete preconditions (uid, resourceVersion): a mismatch is a 409 that keeps the object.
#[tokio::test]
async fn delete_preconditions_are_checked() {
    let double = double().await;
    let c = client(&double).await;
    let cms: Api<ConfigMap> = Api::namespaced(c, "default");
    let cm = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cm"}})).unwrap(),
        )
        .await
        .unwrap();
    for preconditions in [
        Preconditions {
            uid: Some("not-its-uid".into()),
            resource_version: None,
        },
        Preconditions {
            uid: None,
            resource_version: Some("1".into()),
        },
    ] {
        let params = DeleteParams {
            preconditions: Some(preconditions),
            ..DeleteParams::default()
        };
        let status = api_error(cms.delete("cm", &params).await);
        assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
        assert!(
            status.message.starts_with(
                "Operation cannot be fulfilled on configmaps \"cm\": Precondition failed:"
            ),
            "{}",
            status.message
        );
        cms.get("cm").await.expect("still there");
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: cm.metadata.uid.clone(),
            resource_version: cm.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    cms.delete("cm", &params).await.unwrap();
    assert_eq!(api_error(cms.get("cm").await).code, 404);
}

#[tokio::test]
async fn lists_page_and_select() {
    let double = double().await;
    let c = client(&double).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    for (name, tier) in [
        ("a", "front"),
        ("b", "back"),
        ("c", "front"),
        ("d", "db"),
        ("e", ""),
    ] {
        let mut labels = json!({"app": "shop"});
        if !tier.is_empty() {
            labels["tier"] = json!(tier);
        }
        cms.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let names = |list: kube::core::ObjectList<ConfigMap>| {
        list.items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect::<Vec<_>>()
    };
    for (selector, want) in [
        ("tier=front", vec!["a", "c"]),
        ("tier!=front", vec!["b", "d", "e"]),
        ("tier in (back,db)", vec!["b", "d"]),
        ("tier notin (front)", vec!["b", "d", "e"]),
        ("tier", vec!["a", "b", "c", "d"]),
        ("!tier", vec!["e"]),
    ] {
        assert_eq!(
            names(
                cms.list(&ListParams::default().labels(selector))
                    .await
                    .unwrap()
            ),
            want,
            "{selector}"
        );
    }
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        vec!["b"]
    );
    let all: Api<ConfigMap> = Api::all(c.clone());
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.namespace=default"))
                .await
                .unwrap()
        )
        .len(),
        5
    );
    let status = api_error(cms.list(&ListParams::default().fields("data.x=1")).await);
    assert_eq!(status.reason, "BadRequest");

    let first = cms.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    assert!(
        !first
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or("")
            .is_empty()
    );
    let second = cms
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let third = cms
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(second.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    assert!(third.metadata.continue_.is_none());
    let mut paged = names(first);
    paged.extend(names(second));
    paged.extend(names(third));
    assert_eq!(paged, vec!["a", "b", "c", "d", "e"]);

    // A later write, then the history is compacted past the token's version.
    let later = json!({"metadata": {"name": "f"}});
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(later).unwrap(),
    )
    .await
    .unwrap();
    double.compact();
    let status = api_error(
        cms.list(&ListParams::default().limit(2).continue_token(&token))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
}

#[tokio::test]
async fn json_and_strategic_merge_patches() {
    let double = double().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&double).await, "default");
    deployments
        .create(&PostParams::default(), &typed(deployment("p", 1)))
        .await
        .unwrap();
    let patched = deployments
        .patch("p", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}})))
        .await
        .unwrap();
    let containers: Vec<String> = patched
        .spec
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        containers,
        vec!["web", "sidecar"],
        "strategic merge keeps containers by name"
    );
    let c = client(&double).await;
    let json_patch = |ops: serde_json::Value| {
        axum::http::Request::patch("/apis/apps/v1/namespaces/default/deployments/p")
            .header("content-type", "application/json-patch+json")
            .body(serde_json::to_vec(&ops).unwrap())
            .unwrap()
    };
    let patched: Deployment = c
        .request(json_patch(
            json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]),
        ))
        .await
        .unwrap();
    assert_eq!(patched.spec.replicas, Some(4));
    let status = api_error(
        c.request::<Deployment>(json_patch(
            json!([{"op": "test", "path": "/spec/replicas", "value": 1}]),
        ))
        .await,
    );
    assert_eq!(status.code, 422);
}
