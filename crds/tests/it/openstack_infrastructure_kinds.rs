//! `openstack` and `infrastructure` kinds.

use crate::common::{err, meta, ok, round_trip, with};
use krake_crds::infrastructure::{
    Cloud, CloudBinding, CloudSpec, CloudState, CloudStatus, GLOBAL_CLOUD_NAMESPACED_METRIC,
    GLOBAL_CLOUD_NAMESPACED_PROVIDER, GlobalCloud, GlobalInfrastructureProvider, IM_AUTH_REQUIRED,
    InfrastructureProvider, InfrastructureProviderSpec,
};
use krake_crds::openstack::{
    AuthMethod, MagnumCluster, MagnumClusterBinding, MagnumClusterSpec, MagnumClusterState,
    MagnumClusterStatus, Project, ProjectState, ProjectStatus,
};
use krake_crds::{ImmutableField, Metadata, Resource, decode_request};
use rstest::rstest;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------
// Project
// ---------------------------------------------------------------------------------

fn project() -> Value {
    json!({"api": "openstack", "kind": "Project", "metadata": meta("p1", Some("ns1")),
           "spec": {"url": "http://keystone:5000/v3",
                    "auth": {"type": "password",
                             "password": {"user": {"id": "uid", "password": "pw", "comment": null},
                                          "project": {"id": "pid", "comment": null}}},
                    "template": "magnum-template-uuid", "metrics": []},
           "status": {"state": "ONLINE", "metrics_reasons": {}}})
}

#[test]
fn project_round_trip_and_defaults() {
    let p: Project = round_trip(project(), project());
    assert!(matches!(p.spec.auth, AuthMethod::Password(_)));
    assert_eq!(p.status, ProjectStatus::default());
    assert_eq!(p.state_name(), Some("ONLINE"));
    let minimal = json!({"metadata": meta("p1", Some("ns1")),
                         "spec": {"url": "http://keystone:5000/v3",
                                  "auth": {"type": "password",
                                           "password": {"user": {"id": "uid", "password": "pw"}, "project": {"id": "pid"}}},
                                  "template": "magnum-template-uuid"}});
    round_trip::<Project>(minimal, project());
    assert_eq!(
        Project::key(Some("ns1"), "p1"),
        "/openstack/projects/ns1/p1"
    );
}

#[test]
fn project_application_credential_and_type_change() {
    let input = with(&project(), |v| {
        v["spec"]["auth"] = json!({"type": "application_credential", "application_credential": {"id": "i", "secret": "s"},
                                   "password": {"ignored": true}});
    });
    let expected = with(&project(), |v| {
        v["spec"]["auth"] = json!({"type": "application_credential", "application_credential": {"id": "i", "secret": "s"}});
    });
    let body: Project = round_trip(input, expected);
    let mut stored: Project = ok(project());
    stored.merge_spec_from(&body).unwrap();
    assert_eq!(stored.spec.auth.type_name(), "application_credential");
    let status = with(&project(), |v| {
        v["status"] = json!({"state": "FAILING_METRICS", "metrics_reasons": {"m": {"code": "UNKNOWN_METRIC", "message": "x"}}});
    });
    let body: Project = round_trip(status.clone(), status);
    stored.merge_status_from(&body).unwrap();
    assert_eq!(stored.status.state, ProjectState::FailingMetrics);
    stored.reset_status();
    assert_eq!(stored.status.state, ProjectState::Online);
}

#[rstest]
#[case(|v: &mut Value| v["spec"]["auth"] = json!({"type": "token", "token": {}}), "{'spec': {'auth': {'type': [\"Unknown type 'token'\"]}}}")]
#[case(|v: &mut Value| v["spec"]["auth"] = json!({"type": "password"}), "{'spec': {'auth': {'password': ['Field is required']}}}")]
#[case(|v: &mut Value| { v["spec"]["auth"]["password"]["user"].as_object_mut().unwrap().remove("id"); }, "{'spec': {'auth': {'password': {'user': {'id': ['Missing data for required field.']}}}}}")]
#[case(|v: &mut Value| { v["spec"].as_object_mut().unwrap().remove("template"); }, "{'spec': {'template': ['Missing data for required field.']}}")]
#[case(|v: &mut Value| { v["spec"].as_object_mut().unwrap().remove("auth"); }, "{'spec': {'auth': ['Missing data for required field.']}}")]
#[case(|v: &mut Value| v["status"]["state"] = json!("PENDING"), "{'status': {'state': ['Invalid enum member PENDING']}}")]
fn project_errors(#[case] patch: fn(&mut Value), #[case] expected: &str) {
    assert_eq!(err::<Project>(with(&project(), patch)), expected);
}

// ---------------------------------------------------------------------------------
// MagnumCluster
// ---------------------------------------------------------------------------------

fn magnum() -> Value {
    json!({"api": "openstack", "kind": "MagnumCluster", "metadata": meta("m1", Some("ns1")),
           "spec": {"master_count": 1, "node_count": 2, "metrics": [],
                    "constraints": {"project": {"labels": ["a=b"]}}},
           "status": {"reason": null, "state": "PENDING", "project": null, "template": null,
                      "cluster_id": null, "node_count": null, "api_address": null,
                      "master_addresses": null, "node_addresses": null, "cluster": null}})
}

#[test]
fn magnum_cluster_round_trip_and_defaults() {
    let m: MagnumCluster = round_trip(magnum(), magnum());
    assert_eq!(m.status, MagnumClusterStatus::default());
    assert_eq!(m.state_name(), Some("PENDING"));
    let minimal: MagnumCluster = ok(json!({"metadata": {"name": "m1"}, "spec": {}}));
    assert_eq!(
        serde_json::to_value(&minimal).unwrap()["spec"],
        json!({"master_count": null, "node_count": null, "metrics": [], "constraints": null})
    );
    assert_eq!(minimal.spec, MagnumClusterSpec::default());
    let coerced: MagnumCluster = ok(with(&magnum(), |v| v["spec"]["node_count"] = json!("3")));
    assert_eq!(coerced.spec.node_count, Some(3));
    ok::<MagnumCluster>(with(&magnum(), |v| {
        v["spec"]["constraints"] = json!({"project": null})
    }));
    ok::<MagnumCluster>(with(&magnum(), |v| {
        v["spec"]["constraints"] = json!({"project": {"labels": null}})
    }));
}

#[rstest]
#[case(|v: &mut Value| { v.as_object_mut().unwrap().remove("spec"); }, "{'spec': ['Missing data for required field.']}")]
#[case(|v: &mut Value| v["spec"]["constraints"]["project"]["labels"] = json!(["a/b/c is d"]), "Label key 'a/b/c' does not match")]
#[case(|v: &mut Value| v["spec"]["master_count"] = json!(1.5), "{'spec': {'master_count': ['Not a valid integer.']}}")]
#[case(|v: &mut Value| v["status"]["master_addresses"] = json!("10.0.0.1"), "{'status': {'master_addresses': ['Not a valid list.']}}")]
fn magnum_cluster_errors(#[case] patch: fn(&mut Value), #[case] expected: &str) {
    let e = err::<MagnumCluster>(with(&magnum(), patch));
    assert!(e.contains(expected), "{e}");
}

#[test]
fn magnum_cluster_immutable_fields() {
    let mut stored: MagnumCluster = ok(magnum());
    let mut body = stored.clone();
    body.spec.master_count = Some(3);
    body.spec.node_count = Some(5);
    assert_eq!(
        stored.merge_spec_from(&body),
        Err(ImmutableField("master_count"))
    );
    assert_eq!(
        stored.spec.node_count,
        Some(2),
        "a rejected merge changes nothing"
    );
    body.spec.master_count = Some(1);
    stored.merge_spec_from(&body).unwrap();
    assert_eq!(stored.spec.node_count, Some(5));

    let mut status_body = stored.clone();
    status_body.status.template = Some("t2".into());
    status_body.status.state = MagnumClusterState::Running;
    assert_eq!(
        stored.merge_status_from(&status_body),
        Err(ImmutableField("template"))
    );
    assert_eq!(stored.status.state, MagnumClusterState::Pending);
    status_body.status.template = None;
    stored.merge_status_from(&status_body).unwrap();
    assert_eq!(stored.state_name(), Some("RUNNING"));
    stored.reset_status();
    assert_eq!(stored.status, MagnumClusterStatus::default());
    let built = MagnumCluster::new(Metadata::named("m"), MagnumClusterSpec::default());
    assert_eq!(built.kind, "MagnumCluster");
}

#[test]
fn magnum_cluster_binding() {
    let pref = json!({"api": "openstack", "namespace": "ns1", "kind": "Project", "name": "p1"});
    let b: MagnumClusterBinding =
        decode_request(json!({"project": pref, "template": "t"})).unwrap();
    assert_eq!(
        serde_json::to_value(&b).unwrap(),
        json!({"api": "openstack", "kind": "MagnumClusterBinding", "project": pref, "template": "t"})
    );
    let e = decode_request::<MagnumClusterBinding>(json!({"project": pref})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "{'template': ['Missing data for required field.']}"
    );
}

// ---------------------------------------------------------------------------------
// Infrastructure providers
// ---------------------------------------------------------------------------------

fn provider(im: Value) -> Value {
    json!({"api": "infrastructure", "kind": "GlobalInfrastructureProvider", "metadata": meta("im1", None),
           "spec": {"type": "im", "im": im}})
}

#[rstest]
#[case(json!({"url": "http://im", "username": "u", "password": "p", "token": null}))]
#[case(json!({"url": "http://im", "username": null, "password": null, "token": "t"}))]
fn infrastructure_provider_auth_accepted(#[case] im: Value) {
    let p: GlobalInfrastructureProvider = round_trip(provider(im.clone()), provider(im));
    assert_eq!(p.spec.type_name(), "im");
    assert_eq!(
        GlobalInfrastructureProvider::key(None, "im1"),
        "/infrastructure/globalinfrastructureproviders/im1"
    );
}

#[rstest]
#[case(json!({"url": "http://im"}))]
#[case(json!({"url": "http://im", "username": "u"}))]
#[case(json!({"url": "http://im", "password": "p", "token": null}))]
fn infrastructure_provider_auth_rule(#[case] im: Value) {
    assert_eq!(
        err::<GlobalInfrastructureProvider>(provider(im)),
        format!("{{'spec': {{'_schema': ['{IM_AUTH_REQUIRED}']}}}}")
    );
}

#[test]
fn infrastructure_provider_namespaced_and_errors() {
    let input = with(&provider(json!({"url": "u", "token": "t"})), |v| {
        v["kind"] = json!("InfrastructureProvider");
        v["metadata"] = meta("im1", Some("ns1"));
    });
    let expected = with(&input, |v| {
        v["spec"]["im"] = json!({"url": "u", "username": null, "password": null, "token": "t"});
    });
    let mut p: InfrastructureProvider = round_trip(input, expected);
    assert_eq!(
        err::<InfrastructureProvider>(with(&provider(json!({})), |v| v["kind"] =
            json!("InfrastructureProvider"))),
        "{'spec': {'im': {'url': ['Missing data for required field.']}}}"
    );
    assert_eq!(
        err::<InfrastructureProvider>(with(&provider(json!({})), |v| {
            v["kind"] = json!("InfrastructureProvider");
            v["spec"] = json!({"type": "openstack", "openstack": {}});
        })),
        "{'spec': {'type': [\"Unknown type 'openstack'\"]}}"
    );
    let mut body = p.clone();
    let InfrastructureProviderSpec::Im(im) = &mut body.spec;
    im.url = "http://new".into();
    p.merge_spec_from(&body).unwrap();
    assert_eq!(p, body);
}

// ---------------------------------------------------------------------------------
// Clouds
// ---------------------------------------------------------------------------------

fn cloud(kind: &str, namespace: Option<&str>) -> Value {
    json!({"api": "infrastructure", "kind": kind, "metadata": meta("cl1", namespace),
           "spec": {"type": "openstack",
                    "openstack": {"url": "http://keystone:5000/v3",
                                  "auth": {"type": "password",
                                           "password": {"version": "3",
                                                        "user": {"username": "u", "password": "p", "domain_name": "Default", "comment": null},
                                                        "project": {"name": "proj", "domain_id": "default", "comment": null}}},
                                  "metrics": [],
                                  "infrastructure_provider": {"name": "im1", "namespaced": false}}},
           "status": {"state": "ONLINE", "metrics_reasons": {}}})
}

#[test]
fn cloud_round_trip_and_defaults() {
    let c: Cloud = round_trip(cloud("Cloud", Some("ns1")), cloud("Cloud", Some("ns1")));
    assert_eq!(c.status, CloudStatus::default());
    let minimal = json!({"api": "infrastructure", "kind": "Cloud", "metadata": meta("cl1", Some("ns1")),
        "spec": {"type": "openstack",
                 "openstack": {"url": "http://keystone:5000/v3",
                               "auth": {"type": "password",
                                        "password": {"user": {"username": "u", "password": "p"},
                                                     "project": {"name": "proj"}}},
                               "infrastructure_provider": {"name": "im1"}}}});
    round_trip::<Cloud>(minimal, cloud("Cloud", Some("ns1")));
    // A namespaced Cloud may reference namespaced providers and metrics.
    ok::<Cloud>(with(&cloud("Cloud", Some("ns1")), |v| {
        v["spec"]["openstack"]["infrastructure_provider"]["namespaced"] = json!(true);
        v["spec"]["openstack"]["metrics"] = json!([{"name": "m", "weight": 1, "namespaced": true}]);
    }));
}

#[test]
fn global_cloud_restrictions() {
    let g: GlobalCloud = round_trip(cloud("GlobalCloud", None), cloud("GlobalCloud", None));
    assert_eq!(
        GlobalCloud::key(None, "cl1"),
        "/infrastructure/globalclouds/cl1"
    );
    assert!(matches!(g.spec, CloudSpec::Openstack(_)));
    let provider = with(&cloud("GlobalCloud", None), |v| {
        v["spec"]["openstack"]["infrastructure_provider"]["namespaced"] = json!(true);
    });
    assert_eq!(
        err::<GlobalCloud>(provider),
        format!("{{'_schema': ['{GLOBAL_CLOUD_NAMESPACED_PROVIDER}']}}")
    );
    let metric = with(&cloud("GlobalCloud", None), |v| {
        v["spec"]["openstack"]["metrics"] =
            json!([{"name": "a", "weight": 1.0}, {"name": "m", "weight": 1, "namespaced": "true"}]);
    });
    assert_eq!(
        err::<GlobalCloud>(metric),
        format!("{{'_schema': ['{GLOBAL_CLOUD_NAMESPACED_METRIC}']}}")
    );
}

#[rstest]
#[case(|v: &mut Value| v["spec"]["openstack"]["auth"] = json!({"type": "application_credential", "application_credential": {}}), "{'spec': {'openstack': {'auth': {'type': [\"Unknown type 'application_credential'\"]}}}}")]
#[case(|v: &mut Value| { v["spec"]["openstack"].as_object_mut().unwrap().remove("infrastructure_provider"); }, "{'spec': {'openstack': {'infrastructure_provider': ['Missing data for required field.']}}}")]
#[case(|v: &mut Value| { v["spec"]["openstack"]["auth"]["password"]["user"].as_object_mut().unwrap().remove("username"); }, "{'spec': {'openstack': {'auth': {'password': {'user': {'username': ['Missing data for required field.']}}}}}}")]
#[case(|v: &mut Value| v["spec"]["openstack"]["auth"]["password"]["version"] = json!(null), "{'spec': {'openstack': {'auth': {'password': {'version': ['Field may not be null.']}}}}}")]
#[case(|v: &mut Value| v["spec"] = json!({"type": "openstack"}), "{'spec': {'openstack': ['Field is required']}}")]
#[case(|v: &mut Value| v["status"] = json!({"state": "OFFLINE"}), "{'status': {'state': ['Invalid enum member OFFLINE']}}")]
fn cloud_errors(#[case] patch: fn(&mut Value), #[case] expected: &str) {
    assert_eq!(
        err::<Cloud>(with(&cloud("Cloud", Some("ns1")), patch)),
        expected
    );
}

#[test]
fn cloud_merges() {
    let mut stored: Cloud = ok(cloud("Cloud", Some("ns1")));
    let body: Cloud = ok(with(&cloud("Cloud", Some("ns1")), |v| {
        v["spec"]["openstack"]["url"] = json!("http://other");
        v["status"] = json!({"state": "FAILING_METRICS", "metrics_reasons": {}});
    }));
    stored.merge_spec_from(&body).unwrap();
    assert_eq!(stored.status.state, CloudState::Online);
    let CloudSpec::Openstack(os) = &stored.spec;
    assert_eq!(os.url, "http://other");
    stored.merge_status_from(&body).unwrap();
    assert_eq!(stored.state_name(), Some("FAILING_METRICS"));
    stored.reset_status();
    assert_eq!(stored.status.state, CloudState::Online);
}

#[test]
fn cloud_binding() {
    let cref =
        json!({"api": "infrastructure", "namespace": null, "kind": "GlobalCloud", "name": "g"});
    let b: CloudBinding = decode_request(json!({"api": "infrastructure", "cloud": cref})).unwrap();
    assert_eq!(
        serde_json::to_value(&b).unwrap(),
        json!({"api": "infrastructure", "kind": "CloudBinding", "cloud": cref})
    );
    let e =
        decode_request::<CloudBinding>(json!({"api": "kubernetes", "cloud": cref})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "{'api': ['Must be equal to infrastructure.']}"
    );
}
