//! `kubernetes` kinds: Application, Cluster and the request-only kinds.

use crate::common::{err, errors, meta, ok, round_trip, with};
use krake_crds::core::ReasonCode;
use krake_crds::fixtures::kubeconfig;
use krake_crds::kubernetes::{
    Application, ApplicationSpec, ApplicationState, ApplicationStatus, Cluster, ClusterBinding,
    ClusterSpec, ClusterState, ClusterStatus, Complete, Shutdown, Tosca, refused_kubeconfig_key,
};
use krake_crds::{Metadata, Resource, decode, decode_create, decode_request};
use rstest::rstest;
use serde_json::{Map, Value, json};

fn initial_app_status() -> Value {
    json!({"reason": null, "state": "PENDING",
           "container_health": {"desired_pods": 0, "running_pods": 0, "completed_pods": 0, "failed_pods": 0},
           "kube_controller_triggered": null, "scheduled": null, "scheduled_to": null, "running_on": null,
           "retries": null, "scheduled_retry": null, "services": {}, "mangled_observer_schema": [],
           "last_observed_manifest": [], "last_applied_manifest": [],
           "complete_token": null, "complete_cert": null, "complete_key": null,
           "shutdown_token": null, "shutdown_cert": null, "shutdown_key": null,
           "shutdown_grace_period": null, "auto_cluster_create_started": null,
           "migration_retries": 0, "migration_timeout": 0})
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {}})
}

fn app() -> Value {
    json!({"api": "kubernetes", "kind": "Application", "metadata": meta("app1", Some("ns1")),
           "spec": {
               "manifest": [pod()],
               "tosca": {}, "csar": null, "observer_schema": [],
               "constraints": {"cluster": {"labels": ["location is DE"],
                                           "custom_resources": ["crontabs.stable.example.com"],
                                           "metrics": ["load < 5"]},
                               "migration": true},
               "hooks": [], "shutdown_grace_time": null, "shutdown_failure_strategy": null,
               "shutdown_retry_count": null, "backoff": 1, "backoff_delay": 1, "backoff_limit": -1,
               "storage_migration": "none", "auto_cluster_create": false},
           "status": initial_app_status()})
}

fn minimal_app(spec: Value) -> Value {
    json!({"metadata": {"name": "app1", "namespace": "ns1"}, "spec": spec})
}

fn app_err(patch: impl FnOnce(&mut Value)) -> String {
    err::<Application>(with(&app(), patch))
}

#[test]
fn application_round_trip() {
    let a: Application = round_trip(app(), app());
    assert_eq!(a.status.state, ApplicationState::Pending);
    assert_eq!(a.state_name(), Some("PENDING"));
    assert_eq!(
        a.spec.constraints.cluster.labels.as_ref().unwrap()[0].as_str(),
        "location is DE"
    );
    assert_eq!(
        Application::key(Some("ns1"), "app1"),
        "/kubernetes/applications/ns1/app1"
    );
    let line = krake_crds::json::to_string(&a);
    assert!(line.starts_with(r#"{"api": "kubernetes", "kind": "Application", "metadata": {"name": "app1", "namespace": "ns1""#));
}

#[test]
fn application_defaults_filled() {
    let a: Application = ok(minimal_app(
        json!({"manifest": [pod()], "constraints": {"cluster": {}}}),
    ));
    let out = serde_json::to_value(&a).unwrap();
    assert_eq!(
        out["spec"],
        json!({"manifest": [pod()], "tosca": {}, "csar": null, "observer_schema": [],
               "constraints": {"cluster": {"labels": null, "custom_resources": [], "metrics": null}, "migration": true},
               "hooks": [], "shutdown_grace_time": null, "shutdown_failure_strategy": null,
               "shutdown_retry_count": null, "backoff": 1, "backoff_delay": 1, "backoff_limit": -1,
               "storage_migration": "none", "auto_cluster_create": false})
    );
    assert_eq!(out["status"], initial_app_status());
    assert_eq!(a.status, ApplicationStatus::default());
    assert_eq!(ApplicationSpec::with_manifest(vec![]).backoff_limit, -1);
}

#[test]
fn application_status_round_trip_with_values() {
    let status = json!({"reason": {"code": "CLUSTER_NOT_REACHABLE", "message": "down"}, "state": "RUNNING",
        "container_health": {"desired_pods": 2, "running_pods": 1, "completed_pods": 0, "failed_pods": 1},
        "kube_controller_triggered": "2026-11-21T09:02:37", "scheduled": "2026-11-21T09:02:37.000001+02:00",
        "scheduled_to": {"api": "kubernetes", "namespace": "ns1", "kind": "Cluster", "name": "c1"},
        "running_on": {"api": "kubernetes", "namespace": "ns1", "kind": "Cluster", "name": "c1"},
        "retries": 3, "scheduled_retry": null, "services": {"svc": "10.0.0.1:31234"},
        "mangled_observer_schema": [{"a": null}], "last_observed_manifest": [pod()], "last_applied_manifest": [pod()],
        "complete_token": "t", "complete_cert": "c", "complete_key": "k",
        "shutdown_token": "st", "shutdown_cert": null, "shutdown_key": null,
        "shutdown_grace_period": null, "auto_cluster_create_started": "yes",
        "migration_retries": 1, "migration_timeout": 5});
    let input = with(&app(), |v| v["status"] = status.clone());
    let a: Application = round_trip(input.clone(), input);
    assert_eq!(
        a.status.reason.as_ref().unwrap().code,
        ReasonCode::ClusterNotReachable
    );
    assert_eq!(a.status.state, ApplicationState::Running);
}

#[rstest]
#[case(|v: &mut Value| { v["spec"].as_object_mut().unwrap().remove("constraints"); }, "{'spec': {'constraints': ['Missing data for required field.']}}")]
#[case(|v: &mut Value| v["spec"]["constraints"] = json!({}), "{'spec': {'constraints': {'cluster': ['Missing data for required field.']}}}")]
#[case(|v: &mut Value| { v["spec"].as_object_mut().unwrap().remove("manifest"); }, "{'spec': {'manifest': ['Missing data for required field.']}}")]
#[case(|v: &mut Value| v["spec"]["manifest"] = json!(["x"]), "{'spec': {'manifest': {0: ['Not a valid mapping type.']}}}")]
#[case(|v: &mut Value| v["spec"]["backoff"] = json!(null), "{'spec': {'backoff': ['Field may not be null.']}}")]
#[case(|v: &mut Value| v["spec"]["backoff"] = json!(5.5), "{'spec': {'backoff': ['Not a valid integer.']}}")]
#[case(|v: &mut Value| v["spec"]["hooks"] = json!(null), "{'spec': {'hooks': ['Field may not be null.']}}")]
#[case(|v: &mut Value| v["spec"]["hooks"] = json!([1]), "{'spec': {'hooks': {0: ['Not a valid string.']}}}")]
#[case(|v: &mut Value| v["spec"]["tosca"] = json!(null), "{'spec': {'tosca': ['Field may not be null.']}}")]
#[case(|v: &mut Value| v["spec"]["tosca"] = json!(5), "{'spec': {'tosca': ['Invalid TOSCA template type.']}}")]
#[case(|v: &mut Value| v["spec"]["storage_migration"] = json!(null), "{'spec': {'storage_migration': ['Field may not be null.']}}")]
#[case(|v: &mut Value| v["spec"]["constraints"]["migration"] = json!(null), "{'spec': {'constraints': {'migration': ['Field may not be null.']}}}")]
#[case(|v: &mut Value| v["spec"]["constraints"]["cluster"]["custom_resources"] = json!(null), "{'spec': {'constraints': {'cluster': {'custom_resources': ['Field may not be null.']}}}}")]
#[case(|v: &mut Value| v["spec"]["auto_cluster_create"] = json!("maybe"), "{'spec': {'auto_cluster_create': ['Not a valid boolean.']}}")]
#[case(|v: &mut Value| v["spec"]["constraints"]["cluster"]["labels"] = json!(["location in ()"]), "{'spec': {'constraints': {'cluster': {'labels': {0: ['Invalid label constraint']}}}}}")]
#[case(|v: &mut Value| v["spec"]["constraints"]["cluster"]["metrics"] = json!(["load > 1", "load<5"]), "{'spec': {'constraints': {'cluster': {'metrics': {1: ['Invalid metric constraint']}}}}}")]
#[case(|v: &mut Value| v["status"]["state"] = json!("running"), "{'status': {'state': ['Invalid enum member running']}}")]
#[case(|v: &mut Value| v["status"]["state"] = json!(null), "{'status': {'state': ['Field may not be null.']}}")]
#[case(|v: &mut Value| v["status"]["reason"] = json!({"code": 20, "message": "x"}), "{'status': {'reason': {'code': ['Enum name must be string']}}}")]
#[case(|v: &mut Value| v["status"]["reason"] = json!({"code": "CLUSTER_NOT_REACHABLE"}), "{'status': {'reason': {'message': ['Missing data for required field.']}}}")]
#[case(|v: &mut Value| v["status"]["scheduled"] = json!("garbage"), "{'status': {'scheduled': ['Not a valid datetime.']}}")]
#[case(|v: &mut Value| v["status"]["migration_retries"] = json!(null), "{'status': {'migration_retries': ['Field may not be null.']}}")]
#[case(|v: &mut Value| v["status"]["container_health"] = json!(null), "{'status': {'container_health': ['Field may not be null.']}}")]
#[case(|v: &mut Value| v["status"] = json!(null), "{'status': ['Field may not be null.']}")]
fn application_field_errors(#[case] patch: fn(&mut Value), #[case] expected: &str) {
    assert_eq!(app_err(patch), expected);
}

#[test]
fn application_nullable_fields_and_coercion() {
    let input = with(&app(), |v| {
        v["spec"]["csar"] = json!(null);
        v["spec"]["shutdown_grace_time"] = json!("30");
        v["spec"]["shutdown_retry_count"] = json!(2.0);
        v["spec"]["backoff"] = json!("5");
        v["spec"]["backoff_limit"] = json!(-1.0);
        v["spec"]["auto_cluster_create"] = json!("yes");
        v["spec"]["constraints"]["migration"] = json!(0);
        v["spec"]["constraints"]["cluster"]["labels"] = json!(null);
        v["status"]["retries"] = json!(null);
    });
    let a: Application = ok(input);
    assert_eq!(a.spec.shutdown_grace_time, Some(30));
    assert_eq!(a.spec.shutdown_retry_count, Some(2));
    assert_eq!(a.spec.backoff, 5);
    assert_eq!(a.spec.backoff_limit, -1);
    assert!(a.spec.auto_cluster_create);
    assert!(!a.spec.constraints.migration);
    assert!(a.spec.constraints.cluster.labels.is_none());
    let out = serde_json::to_value(&a).unwrap();
    assert_eq!(out["spec"]["backoff"], json!(5));
    assert_eq!(out["spec"]["shutdown_grace_time"], json!(30));
}

#[test]
fn application_needs_manifest_tosca_or_csar() {
    let msg = "{'spec': {'_schema': ['The application should be defined by a manifest file, a TOSCA template or a CSAR file.']}}";
    assert_eq!(
        err::<Application>(minimal_app(
            json!({"manifest": [], "constraints": {"cluster": {}}})
        )),
        msg
    );
    let tosca_url = minimal_app(
        json!({"manifest": [], "tosca": "http://x/t.yaml", "constraints": {"cluster": {}}}),
    );
    let a: Application = ok(tosca_url);
    assert_eq!(a.spec.tosca, Tosca::Url("http://x/t.yaml".into()));
    ok::<Application>(minimal_app(
        json!({"manifest": [], "tosca": "http://x/t.yml", "constraints": {"cluster": {}}}),
    ));
    ok::<Application>(minimal_app(
        json!({"manifest": [], "csar": "http://x/a.csar", "constraints": {"cluster": {}}}),
    ));
    ok::<Application>(minimal_app(
        json!({"manifest": [], "csar": "http://x/a.zip", "constraints": {"cluster": {}}}),
    ));
    let tosca = json!({"tosca_definitions_version": "tosca_simple_yaml_1_0",
                       "topology_template": {"node_templates": {"app": {"type": "tosca.nodes.K8s"}}}});
    let a: Application = ok(minimal_app(
        json!({"manifest": [], "tosca": tosca, "constraints": {"cluster": {}}}),
    ));
    assert!(matches!(a.spec.tosca, Tosca::Template(ref m) if m.len() == 2));
    // An empty URL is no TOSCA template.
    assert_eq!(
        err::<Application>(minimal_app(
            json!({"manifest": [], "tosca": "", "constraints": {"cluster": {}}})
        )),
        msg
    );
}

#[rstest]
#[case(json!({"tosca": "http://x/t.txt"}), "{'spec': {'tosca': ['Invalid TOSCA template URL.']}}")]
#[case(json!({"tosca": {"a": 1}}), r#"{'spec': {'tosca': ['Invalid TOSCA template content. Template is missing required field "tosca_definitions_version".']}}"#)]
#[case(json!({"tosca": {"tosca_definitions_version": "v"}}), r#"{'spec': {'tosca': ['Invalid TOSCA template content. The template version "v" of "tosca_definitions_version" is invalid. Valid versions are "tosca_simple_yaml_1_0", "tosca_simple_yaml_1_2", "tosca_simple_yaml_1_3", "tosca_simple_profile_for_nfv_1_0_0", "tosca_simple_profile_for_mec_1_0_0".']}}"#)]
#[case(json!({"tosca": {"tosca_definitions_version": "tosca_simple_yaml_1_0", "topology_template": []}}), r#"{'spec': {'tosca': ['Invalid TOSCA template content. The section "topology_template" must be a mapping.']}}"#)]
#[case(json!({"tosca": {"tosca_definitions_version": "tosca_simple_yaml_1_0", "topology_template": {"node_templates": {"n": {}}}}}), r#"{'spec': {'tosca': ['Invalid TOSCA template content. The node template "n" has no string "type".']}}"#)]
#[case(json!({"csar": "http://x/a.tar"}), "{'spec': {'csar': ['Invalid CSAR archive URL.']}}")]
#[case(json!({"csar": ""}), "{'spec': {'csar': ['Invalid CSAR archive URL.']}}")]
fn application_tosca_and_csar_rules(#[case] extra: Value, #[case] expected: &str) {
    let mut spec = json!({"manifest": [], "constraints": {"cluster": {}}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    assert_eq!(err::<Application>(minimal_app(spec)), expected);
}

#[test]
fn application_manifest_rules() {
    let spec = json!({"manifest": [pod(), {"kind": "Pod"}, {"apiVersion": "v1", "metadata": {"name": "x"}}],
                      "constraints": {"cluster": {}}});
    let e = errors::<Application>(minimal_app(spec));
    assert_eq!(
        e.messages_at("spec.manifest"),
        vec![
            "Field 'metadata.name' not found in resource at index 1",
            "Field 'apiVersion' not found in resource at index 1",
            "Field 'metadata' not found in resource at index 1",
            "Field 'kind' not found in resource at index 2 (metadata.name: 'x')",
        ]
    );
    // The cross-field rules are not evaluated while field errors exist.
    assert!(!e.has_errors_under("spec._schema"));
}

fn observed(schema: Value) -> Value {
    with(&app(), |v| v["spec"]["observer_schema"] = json!([schema]))
}

#[test]
fn observer_schema_valid() {
    let schema = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "labels": null},
                        "spec": {"containers": [{"name": null}, {"observer_schema_list_min_length": 1,
                                                                  "observer_schema_list_max_length": 2}]},
                        "status": null});
    let a: Application = ok(observed(schema.clone()));
    assert_eq!(Value::Object(a.spec.observer_schema[0].clone()), schema);
    // Unlimited lists (max 0) may observe any number of elements.
    ok::<Application>(observed(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
        "spec": {"c": [null, null, null, {"observer_schema_list_min_length": 0, "observer_schema_list_max_length": 0}]}}),
    ));
}

#[rstest]
#[case(json!({"kind": "Pod", "metadata": {"name": "p1"}}), "apiVersion is not defined")]
#[case(json!({"apiVersion": "v1", "kind": null, "metadata": {"name": "p1"}}), "kind is not defined")]
#[case(json!({"apiVersion": "v1", "kind": "Pod"}), "metadata dictionary is not defined")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": []}), "metadata must be a dictionary")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}), "name is not defined in the metadata dictionary")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "x"}}), "Value of 'namespace' is not 'None'")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": 5}), "Value of 'spec' is not 'None'")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": []}), "Special list control dictionary not found")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": [null]}), "Special list control dictionary not found")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": [{"observer_schema_list_min_length": 0}]}), "Special list control dictionary malformed")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": [{"observer_schema_list_min_length": "0", "observer_schema_list_max_length": 0}]}), "observer_schema_list_min_length should be an integer")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": [{"observer_schema_list_min_length": 0, "observer_schema_list_max_length": 1.5}]}), "observer_schema_list_max_length should be an integer")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": [{"observer_schema_list_min_length": -1, "observer_schema_list_max_length": 0}]}), "Invalid value for observer_schema_list_min_length")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": [{"observer_schema_list_min_length": 0, "observer_schema_list_max_length": -1}]}), "Invalid value for observer_schema_list_max_length")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": [{"observer_schema_list_min_length": 3, "observer_schema_list_max_length": 2}]}), "observer_schema_list_max_length is inferior to observer_schema_list_min_length")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": [null, null, {"observer_schema_list_min_length": 0, "observer_schema_list_max_length": 1}]}), "observer_schema_list_max_length is inferior to the number of observed elements")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "l": [5, {"observer_schema_list_min_length": 0, "observer_schema_list_max_length": 0}]}), "Element of a list is not 'None'")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "d": {"x": {"y": true}}}), "Value of 'y' is not 'None'")]
#[case(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "other"}}), "Observed resource must be in manifest")]
#[case(json!({"apiVersion": "v2", "kind": "Pod", "metadata": {"name": "p1"}}), "Observed resource must be in manifest")]
fn observer_schema_rules(#[case] schema: Value, #[case] expected: &str) {
    let e = errors::<Application>(observed(schema));
    assert_eq!(
        e.messages_at("spec.observer_schema.0"),
        vec![expected],
        "{e}"
    );
    assert_eq!(e.len(), 1);
}

#[test]
fn observer_schema_ignored_without_manifest() {
    let spec = json!({"manifest": [], "tosca": "http://x/t.yaml", "observer_schema": [{"bogus": 1}],
                      "constraints": {"cluster": {}}});
    ok::<Application>(minimal_app(spec));
}

#[test]
fn application_merges_and_status_reset() {
    let mut stored: Application = ok(app());
    let mut body: Application = ok(app());
    body.spec.hooks = vec!["shutdown".into()];
    body.status.state = ApplicationState::Degraded;
    stored.merge_spec_from(&body).unwrap();
    assert_eq!(stored.spec.hooks, vec!["shutdown"]);
    assert_eq!(
        stored.status.state,
        ApplicationState::Pending,
        "spec merge leaves the status alone"
    );
    stored.merge_status_from(&body).unwrap();
    assert_eq!(stored.status.state, ApplicationState::Degraded);
    assert_eq!(stored.state_name(), Some("DEGRADED"));
    stored.reset_status();
    assert_eq!(stored.status, ApplicationStatus::default());
    let built = Application::new(
        Metadata::named("a"),
        ApplicationSpec::with_manifest(vec![Map::new()]),
    );
    assert_eq!(built.status.state, ApplicationState::Pending);
}

#[test]
fn application_state_names() {
    let names: Vec<&str> = ApplicationState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "PENDING",
            "CREATING",
            "RUNNING",
            "RECONCILING",
            "TRANSLATING",
            "RETRYING",
            "RESTARTING",
            "WAITING_FOR_CLEANING",
            "READY_FOR_ACTION",
            "MIGRATING",
            "WAITING_FOR_CLUSTER_CREATION",
            "DELETING",
            "DELETED",
            "DEGRADED",
            "FAILED",
            "COMPLETED"
        ]
    );
    assert_eq!(
        "READY_FOR_ACTION".parse::<ApplicationState>(),
        Ok(ApplicationState::ReadyForAction)
    );
    assert_eq!(
        "ready_for_action".parse::<ApplicationState>(),
        Err("Invalid enum member ready_for_action".into())
    );
}

#[test]
fn decode_create_ignores_status_and_read_only_metadata() {
    let input = with(&app(), |v| {
        v["status"] = json!({"state": "bogus"});
        v["metadata"]["created"] = json!("garbage");
        v["metadata"]["uid"] = json!(5);
    });
    assert!(decode::<Application>(input.clone()).is_err());
    let a: Application = decode_create(input).unwrap();
    assert_eq!(a.status, ApplicationStatus::default());
    assert_eq!(a.metadata.uid, "");
}

// ---------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------

fn cluster() -> Value {
    json!({"api": "kubernetes", "kind": "Cluster", "metadata": meta("c1", Some("ns1")),
           "spec": {"kubeconfig": kubeconfig(), "tosca": {}, "custom_resources": [],
                    "constraints": {"cloud": {"labels": null, "metrics": null}},
                    "metrics": [{"name": "load", "weight": 1.5, "namespaced": false}],
                    "inherit_metrics": false, "backoff": 1, "backoff_delay": 1,
                    "backoff_limit": -1, "auto_generated": false},
           "status": {"reason": null, "kube_controller_triggered": null, "state": "PENDING",
                      "metrics_reasons": {}, "last_applied_tosca": {}, "nodes": [],
                      "cluster_id": null, "scheduled": null, "scheduled_to": null,
                      "running_on": null, "retries": 0}})
}

#[test]
fn cluster_round_trip_and_defaults() {
    let c: Cluster = round_trip(cluster(), cluster());
    assert_eq!(c.status, ClusterStatus::default());
    assert_eq!(c.state_name(), Some("PENDING"));
    let minimal = json!({"metadata": {"name": "c1", "namespace": "ns1"},
                         "spec": {"kubeconfig": kubeconfig(), "constraints": {"cloud": {}},
                                  "metrics": [{"name": "load", "weight": "1.5"}]}});
    let c: Cluster = ok(minimal);
    let out = serde_json::to_value(&c).unwrap();
    assert_eq!(out["spec"], cluster()["spec"]);
    assert_eq!(out["status"], cluster()["status"]);
    assert_eq!(ClusterSpec::with_kubeconfig(Map::new()).backoff, 1);
    let built = Cluster::new(
        Metadata::named("c"),
        ClusterSpec::with_kubeconfig(Map::new()),
    );
    assert_eq!(built.status.state, ClusterState::Pending);
}

#[test]
fn cluster_status_values_round_trip() {
    let status = json!({"reason": {"code": "INVALID_METRIC", "message": "m"},
                        "kube_controller_triggered": "2026-11-21T09:02:37.560425+00:00", "state": "ONLINE",
                        "metrics_reasons": {"zeta": {"code": "UNKNOWN_METRIC", "message": "z"},
                                            "alpha": {"code": "UNREACHABLE_METRICS_PROVIDER", "message": "a"}},
                        "last_applied_tosca": {"x": 1},
                        "nodes": [{"api": "kubernetes", "kind": "ClusterNode", "metadata": {"name": "n1"},
                                   "status": {"conditions": [{"message": "ok", "reason": "KubeletReady", "status": "True", "type": "Ready"}]}}],
                        "cluster_id": "id", "scheduled": null,
                        "scheduled_to": {"api": "infrastructure", "namespace": null, "kind": "GlobalCloud", "name": "g"},
                        "running_on": null, "retries": 2});
    let input = with(&cluster(), |v| v["status"] = status.clone());
    let c: Cluster = round_trip(input.clone(), input);
    assert_eq!(c.status.state, ClusterState::Online);
    assert_eq!(
        c.status.metrics_reasons.keys().collect::<Vec<_>>(),
        vec!["zeta", "alpha"]
    );
    // ClusterNode api/kind are plain defaults.
    let node_default = with(&cluster(), |v| {
        v["status"]["nodes"] = json!([{"metadata": {"name": "n"}}])
    });
    let c: Cluster = ok(node_default);
    let out = serde_json::to_value(&c).unwrap();
    assert_eq!(
        out["status"]["nodes"][0],
        json!({"api": "kubernetes", "kind": "ClusterNode", "metadata": {"name": "n"}, "status": null})
    );
    let bad_node = with(&cluster(), |v| {
        v["status"]["nodes"] = json!([{"api": "x", "kind": "y"}])
    });
    assert_eq!(
        err::<Cluster>(bad_node),
        "{'status': {'nodes': {0: {'metadata': ['Missing data for required field.']}}}}"
    );
    let bad_state = with(&cluster(), |v| v["status"]["state"] = json!("BROKEN"));
    assert_eq!(
        err::<Cluster>(bad_state),
        "{'status': {'state': ['Invalid enum member BROKEN']}}"
    );
}

fn kubeconfig_err(patch: impl FnOnce(&mut Value)) -> String {
    let e = errors::<Cluster>(with(&cluster(), |v| {
        let mut kc = Value::Object(kubeconfig());
        patch(&mut kc);
        v["spec"]["kubeconfig"] = kc;
    }));
    let msgs = e.messages_at("spec.kubeconfig");
    assert_eq!(msgs.len(), 1, "{e}");
    msgs[0].to_string()
}

#[rstest]
#[case(|kc: &mut Value| *kc = json!({"invalid": "kubeconfig"}), "Invalid kube-config file. Expected key current-context in kube-config")]
#[case(|kc: &mut Value| { kc.as_object_mut().unwrap().remove("contexts"); }, "Invalid kube-config file. Expected key contexts in kube-config")]
#[case(|kc: &mut Value| kc["current-context"] = json!("nope"), "Invalid kube-config file. Expected object with name nope in kube-config/contexts list")]
#[case(|kc: &mut Value| kc["contexts"] = json!({"name": "ctx"}), "Invalid kube-config file. Expected kube-config/contexts to be a list")]
#[case(|kc: &mut Value| kc["contexts"] = json!([{"context": {}}]), "Invalid kube-config file. Expected all values in kube-config/contexts list to have 'name' key")]
#[case(|kc: &mut Value| kc["contexts"] = json!([{"name": "ctx"}]), "Invalid kube-config file. Expected key context in kube-config/contexts[name=ctx]")]
#[case(|kc: &mut Value| kc["contexts"] = json!([{"name": "ctx", "context": {"user": "u1"}}]), "Invalid kube-config file. Expected key cluster in kube-config/contexts[name=ctx]/context")]
#[case(|kc: &mut Value| kc["contexts"][0]["context"]["cluster"] = json!("c2"), "Invalid kube-config file. Expected object with name c2 in kube-config/clusters list")]
#[case(|kc: &mut Value| kc["contexts"][0]["context"]["user"] = json!("u2"), "Invalid kube-config file. Expected object with name u2 in kube-config/users list")]
#[case(|kc: &mut Value| kc["clusters"] = json!([{"name": "c1"}]), "Invalid kube-config file. Expected key cluster in kube-config/clusters[name=c1]")]
#[case(|kc: &mut Value| kc["contexts"] = json!([{"name": "ctx", "context": {"cluster": "c1", "user": "u1"}}, {"name": "ctx", "context": {}}]), "Invalid kube-config file. Expected only one object with name ctx in kube-config/contexts list")]
#[case(|kc: &mut Value| kc["contexts"] = json!([{"name": "ctx", "context": {"cluster": "c1", "user": "u1"}}, {"name": "b", "context": {}}]), "Only one context is allowed")]
#[case(|kc: &mut Value| { kc.as_object_mut().unwrap().remove("users"); }, "Invalid kube-config file. Expected key users in kube-config")]
#[case(|kc: &mut Value| kc["users"] = json!([{"name": "u1", "user": {}}, {"name": "u2", "user": {}}]), "Only one user is allowed")]
#[case(|kc: &mut Value| kc["clusters"] = json!([{"name": "c1", "cluster": {}}, {"name": "c2", "cluster": {}}]), "Only one cluster is allowed")]
fn kubeconfig_rules(#[case] patch: fn(&mut Value), #[case] expected: &str) {
    assert_eq!(kubeconfig_err(patch), expected);
}

/// Every key that would make a controller run a program or read a host file is refused,
/// and the message names the key (never its value).
#[rstest]
#[case("users", "user", "exec", json!({"command": "/bin/sh", "args": ["-c", "id"], "apiVersion": "client.authentication.k8s.io/v1"}))]
#[case("users", "user", "auth-provider", json!({"name": "gcp", "config": {"cmd-path": "/bin/sh"}}))]
#[case("users", "user", "tokenFile", json!("/var/run/secrets/leak-me"))]
#[case("users", "user", "TokenFile", json!("/var/run/secrets/leak-me"))]
#[case("users", "user", "client-certificate", json!("/etc/leak-me/cert.pem"))]
#[case("users", "user", "client-key", json!("/etc/leak-me/key.pem"))]
#[case("clusters", "cluster", "certificate-authority", json!("/etc/leak-me/ca.pem"))]
fn kubeconfig_keys_that_run_programs_or_read_files_are_refused(
    #[case] list: &str,
    #[case] section: &str,
    #[case] key: &str,
    #[case] value: Value,
) {
    let mut kc = kubeconfig();
    kc[list][0][section][key] = value;
    let path = format!("{list}[0].{section}.{key}");
    assert_eq!(refused_kubeconfig_key(&kc), Some(path.clone()));
    let msg = kubeconfig_err(|v| *v = Value::Object(kc.clone()));
    assert!(msg.contains(&format!("Key {path} is not allowed")), "{msg}");
    assert!(
        !msg.contains("leak-me") && !msg.contains("/bin/sh"),
        "{msg}"
    );
}

#[test]
fn kubeconfig_inline_credentials_and_null_refused_keys_are_accepted() {
    let mut kc = kubeconfig();
    kc["clusters"][0]["cluster"]["certificate-authority-data"] = json!("Y2E=");
    kc["clusters"][0]["cluster"]["certificate-authority"] = json!(null);
    kc["users"][0]["user"]["client-certificate-data"] = json!("Y2VydA==");
    kc["users"][0]["user"]["client-key-data"] = json!("a2V5");
    kc["users"][0]["user"]["exec"] = json!(null);
    assert_eq!(refused_kubeconfig_key(&kc), None);
    ok::<Cluster>(with(&cluster(), |v| {
        v["spec"]["kubeconfig"] = Value::Object(kc)
    }));
}

#[test]
fn kubeconfig_without_users_is_a_validation_error_not_a_panic() {
    let kc = json!({"clusters": [{"name": "c", "cluster": {}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x"});
    let input = with(&cluster(), |v| v["spec"]["kubeconfig"] = kc);
    assert_eq!(
        err::<Cluster>(input),
        "{'spec': {'kubeconfig': ['Invalid kube-config file. Expected key users in kube-config']}}"
    );
}

fn cluster_tosca() -> Value {
    json!({"tosca_definitions_version": "tosca_simple_yaml_1_2",
           "topology_template": {"node_templates": {"k8s": {"type": "tosca.nodes.indigo.Kubernetes"}},
                                 "outputs": {"kubeconfig": {"value": {"get_attribute": ["front", "kubeconfig"]}}}}})
}

#[test]
fn cluster_tosca_and_cross_field_rules() {
    let with_tosca = |tosca: Value| {
        with(&cluster(), |v| {
            v["spec"]["kubeconfig"] = json!({});
            v["spec"]["tosca"] = tosca;
        })
    };
    ok::<Cluster>(with_tosca(cluster_tosca()));
    let missing = "{'spec': {'tosca': ['Invalid TOSCA template content. The output `kubeconfig` is missing.']}}";
    assert_eq!(
        err::<Cluster>(with_tosca(json!({"tosca_definitions_version": "x"}))),
        missing
    );
    let mut no_output = cluster_tosca();
    no_output["topology_template"]["outputs"] = json!({"other": {}});
    assert_eq!(err::<Cluster>(with_tosca(no_output)), missing);
    let mut not_tosca = cluster_tosca();
    not_tosca
        .as_object_mut()
        .unwrap()
        .remove("tosca_definitions_version");
    assert_eq!(
        err::<Cluster>(with_tosca(not_tosca)),
        r#"{'spec': {'tosca': ['Invalid TOSCA template content. Template is missing required field "tosca_definitions_version".']}}"#
    );
    assert_eq!(
        err::<Cluster>(with_tosca(json!("http://x/t.yaml"))),
        "{'spec': {'tosca': ['Not a valid mapping type.']}}"
    );
    assert_eq!(
        err::<Cluster>(with_tosca(json!({}))),
        "{'spec': {'_schema': ['The cluster should be defined by a kubeconfig file or a TOSCA template.']}}"
    );
}

#[rstest]
#[case(|v: &mut Value| { v["spec"].as_object_mut().unwrap().remove("constraints"); }, "{'spec': {'constraints': ['Missing data for required field.']}}")]
#[case(|v: &mut Value| v["spec"]["constraints"] = json!({}), "{'spec': {'constraints': {'cloud': ['Missing data for required field.']}}}")]
#[case(|v: &mut Value| v["spec"]["constraints"]["cloud"]["labels"] = json!(["a = b=c"]), "{'spec': {'constraints': {'cloud': {'labels': {0: ['Invalid label constraint']}}}}}")]
#[case(|v: &mut Value| v["spec"]["kubeconfig"] = json!(null), "{'spec': {'kubeconfig': ['Field may not be null.']}}")]
#[case(|v: &mut Value| v["spec"]["metrics"] = json!([{"name": "m"}]), "{'spec': {'metrics': {0: {'weight': ['Missing data for required field.']}}}}")]
#[case(|v: &mut Value| v["spec"]["metrics"] = json!([{"name": "m", "weight": "heavy"}]), "{'spec': {'metrics': {0: {'weight': ['Not a valid number.']}}}}")]
#[case(|v: &mut Value| v["spec"]["inherit_metrics"] = json!(null), "{'spec': {'inherit_metrics': ['Field may not be null.']}}")]
#[case(|v: &mut Value| v["status"]["retries"] = json!("x"), "{'status': {'retries': ['Not a valid integer.']}}")]
fn cluster_field_errors(#[case] patch: fn(&mut Value), #[case] expected: &str) {
    assert_eq!(err::<Cluster>(with(&cluster(), patch)), expected);
}

#[test]
fn cluster_merges() {
    let mut stored: Cluster = ok(cluster());
    let mut body: Cluster = ok(cluster());
    body.spec.custom_resources = vec!["crontabs.stable.example.com".into()];
    body.status.state = ClusterState::Offline;
    stored.merge_spec_from(&body).unwrap();
    assert_eq!(stored.spec.custom_resources.len(), 1);
    assert_eq!(stored.status.state, ClusterState::Pending);
    stored.merge_status_from(&body).unwrap();
    assert_eq!(stored.state_name(), Some("OFFLINE"));
    stored.reset_status();
    assert_eq!(stored.status.state, ClusterState::Pending);
}

// ---------------------------------------------------------------------------------
// Request-only kinds
// ---------------------------------------------------------------------------------

#[test]
fn cluster_binding() {
    let cref = json!({"api": "kubernetes", "namespace": "ns1", "kind": "Cluster", "name": "c1"});
    let b: ClusterBinding = decode_request(json!({"cluster": cref})).unwrap();
    assert_eq!(b.cluster.name, "c1");
    assert_eq!(
        serde_json::to_value(&b).unwrap(),
        json!({"api": "kubernetes", "kind": "ClusterBinding", "cluster": cref})
    );
    let e = decode_request::<ClusterBinding>(json!({"api": "kubernetes"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "{'cluster': ['Missing data for required field.']}"
    );
    let e = decode_request::<ClusterBinding>(json!({"kind": "CloudBinding", "cluster": cref}))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "{'kind': ['Must be equal to ClusterBinding.']}"
    );
    let e = decode_request::<ClusterBinding>(json!({"cluster": {"api": "a", "kind": "k"}}))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "{'cluster': {'name': ['Missing data for required field.']}}"
    );
    assert!(decode_request::<ClusterBinding>(json!("x")).is_err());
}

#[test]
fn complete_and_shutdown() {
    let c: Complete = decode_request(json!({})).unwrap();
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({"api": "kubernetes", "kind": "Complete", "token": null})
    );
    let c: Complete = decode_request(json!({"token": "abc"})).unwrap();
    assert_eq!(c.token.as_deref(), Some("abc"));
    let e = decode_request::<Complete>(json!({"kind": "Shutdown"})).unwrap_err();
    assert_eq!(e.to_string(), "{'kind': ['Must be equal to Complete.']}");
    let s: Shutdown =
        decode_request(json!({"api": "kubernetes", "kind": "Shutdown", "token": null})).unwrap();
    assert!(s.token.is_none());
    let e = decode_request::<Shutdown>(json!({"token": 5})).unwrap_err();
    assert_eq!(e.to_string(), "{'token': ['Not a valid string.']}");
}
