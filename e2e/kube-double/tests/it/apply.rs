//! Server-side apply: managed fields per manager, removal of fields a manager stops
//! applying, conflicts and force, associative lists merged by key, and no-op applies.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchParams};
use serde_json::{Value, json};

use crate::common::{api_error, client, deployment, double};

fn managers(o: &Deployment) -> Vec<(String, String)> {
    o.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone().unwrap(), m.operation.clone().unwrap()))
        .collect()
}

fn fields_of(o: &Deployment, manager: &str) -> Value {
    let entry = o
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some(manager))
        .expect("an entry");
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    entry.fields_v1.clone().unwrap().0
}

fn containers(o: &Deployment) -> Vec<(String, String)> {
    o.spec
        .clone()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| (c.name, c.image.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn apply_creates_tracks_managers_and_no_op_changes_nothing() {
    let double = double().await;
    let api: Api<Deployment> = Api::namespaced(client(&double).await, "default");
    let ci = PatchParams::apply("ci");
    let created = api
        .patch("web", &ci, &Patch::Apply(deployment("web", 2)))
        .await
        .unwrap();
    assert_eq!(
        managers(&created),
        vec![("ci".to_string(), "Apply".to_string())]
    );
    let fields = fields_of(&created, "ci");
    assert_eq!(fields["f:spec"]["f:replicas"], json!({}));
    let web = &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
    assert_eq!(web["."], json!({}));
    assert_eq!(web["f:image"], json!({}));

    let rv = created.metadata.resource_version.clone().unwrap();
    let mut events = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    let again = api
        .patch("web", &ci, &Patch::Apply(deployment("web", 2)))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version.as_deref(),
        Some(rv.as_str()),
        "a no-op apply keeps the version"
    );
    assert_eq!(
        again.metadata.managed_fields, created.metadata.managed_fields,
        "and the managed fields' times"
    );
    assert!(
        events.try_next().await.unwrap().is_none(),
        "no watch event for a no-op apply"
    );
}

#[tokio::test]
async fn conflicts_name_the_other_manager_unless_forced() {
    let double = double().await;
    let api: Api<Deployment> = Api::namespaced(client(&double).await, "default");
    api.patch(
        "web",
        &PatchParams::apply("ci"),
        &Patch::Apply(deployment("web", 2)),
    )
    .await
    .unwrap();

    // Same value: shared ownership, no conflict.
    api.patch("web", &PatchParams::apply("other"), &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}}))).await.unwrap();

    let change = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
    let status = api_error(
        api.patch("web", &PatchParams::apply("hpa"), &Patch::Apply(&change))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let causes = status.details.unwrap().causes;
    assert!(
        causes
            .iter()
            .any(|c| c.field == ".spec.replicas" && c.message.contains("\"ci\"")),
        "{causes:?}"
    );
    assert!(causes.iter().all(|c| c.reason == "FieldManagerConflict"));

    let forced = api
        .patch(
            "web",
            &PatchParams::apply("hpa").force(),
            &Patch::Apply(&change),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.clone().replicas, Some(5));
    assert!(
        fields_of(&forced, "ci")["f:spec"]
            .get("f:replicas")
            .is_none(),
        "ownership moved to hpa"
    );
    assert_eq!(fields_of(&forced, "hpa")["f:spec"]["f:replicas"], json!({}));

    // An ordinary update takes ownership silently; the next non-forced apply conflicts.
    let edited = api.patch("web", &PatchParams { field_manager: Some("kubectl-edit".into()), ..Default::default() }, &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:edited"}]}}}}))).await.unwrap();
    assert!(managers(&edited).contains(&("kubectl-edit".into(), "Update".into())));
    let status = api_error(
        api.patch(
            "web",
            &PatchParams::apply("ci"),
            &Patch::Apply(deployment("web", 5)),
        )
        .await,
    );
    assert!(
        status.message.contains("kubectl-edit"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn fields_a_manager_stops_applying_are_removed_unless_someone_else_owns_them() {
    let double = double().await;
    let api: Api<Deployment> = Api::namespaced(client(&double).await, "default");
    let mut full = deployment("web", 1);
    full["metadata"]["labels"]["extra"] = json!("yes");
    full["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
    api.patch("web", &PatchParams::apply("ci"), &Patch::Apply(&full))
        .await
        .unwrap();

    // Another manager adds a sidecar container and a port to "web" (merged by key).
    let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [
        {"name": "web", "ports": [{"containerPort": 9090, "name": "metrics"}]},
        {"name": "sidecar", "image": "envoy:1"},
    ]}}}});
    let merged = api
        .patch("web", &PatchParams::apply("mesh"), &Patch::Apply(&sidecar))
        .await
        .unwrap();
    assert_eq!(
        containers(&merged),
        vec![
            ("web".into(), "nginx:1.27".into()),
            ("sidecar".into(), "envoy:1".into())
        ]
    );
    let ports: Vec<i32> = merged.spec.clone().template.spec.unwrap().containers[0]
        .ports
        .clone()
        .unwrap()
        .iter()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, vec![80, 9090]);

    // ci drops the label, env B and its port: they go; mesh's sidecar and port stay.
    let mut reduced = deployment("web", 1);
    reduced["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "A", "value": "1"}]);
    reduced["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("ports");
    let after = api
        .patch("web", &PatchParams::apply("ci"), &Patch::Apply(&reduced))
        .await
        .unwrap();
    let labels = after.metadata.labels.clone().unwrap();
    assert!(!labels.contains_key("extra"), "{labels:?}");
    let spec = after.spec.clone().template.spec.unwrap();
    let env: Vec<String> = spec.containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(env, vec!["A"]);
    let ports: Vec<i32> = spec.containers[0]
        .ports
        .clone()
        .unwrap()
        .iter()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, vec![9090], "ci's port went, mesh's stayed");
    assert_eq!(containers(&after).len(), 2);

    // mesh stops applying: its sidecar goes.
    let none = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
    let last = api
        .patch("web", &PatchParams::apply("mesh"), &Patch::Apply(&none))
        .await
        .unwrap();
    assert_eq!(containers(&last), vec![("web".into(), "nginx:1.27".into())]);
    assert!(
        last.spec.template.spec.unwrap().containers[0]
            .ports
            .is_none()
    );
}

#[tokio::test]
async fn apply_refuses_what_a_real_server_refuses() {
    let double = double().await;
    let c = client(&double).await;
    let api: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let status = api_error(
        api.patch("x", &PatchParams::default(), &Patch::Apply(&body))
            .await,
    );
    assert_eq!(
        (status.code, status.reason.as_str()),
        (422, "Invalid"),
        "fieldManager is required"
    );
    let status = api_error(
        api.patch("y", &PatchParams::apply("ci"), &Patch::Apply(&body))
            .await,
    );
    assert_eq!(status.code, 400, "URL and body names differ");
    let with_managed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "managedFields": [{"manager": "x"}]}});
    let status = api_error(
        api.patch("x", &PatchParams::apply("ci"), &Patch::Apply(&with_managed))
            .await,
    );
    assert_eq!(status.code, 400);
    // Unknown fields of a built-in kind: refused under strict validation.
    let mut unknown = body.clone();
    unknown["dataa"] = json!({"a": "1"});
    let status = api_error(
        api.patch(
            "x",
            &PatchParams::apply("ci").validation_strict(),
            &Patch::Apply(&unknown),
        )
        .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        status.message,
        "strict decoding error: unknown field \"dataa\""
    );
    let created = api
        .patch("x", &PatchParams::apply("ci"), &Patch::Apply(&body))
        .await
        .unwrap();
    let mut stale = body.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    let status = api_error(
        api.patch("x", &PatchParams::apply("ci"), &Patch::Apply(&stale))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    let status = api_error(api.create(&PostParams::default(), &created).await);
    assert_eq!(status.reason, "AlreadyExists");
}
