//! Application and Cluster subresources: bindings, the complete and shutdown hooks, retry,
//! deletion with the shutdown hook, and `?blocking`.

use std::time::Duration;

use crate::common::*;
use rstest::rstest;
use serde_json::{Value, json};

const NS: &str = "ns1";

fn app(name: &str) -> String {
    K::Application.object(NS, name)
}

/// Set some status fields of an Application through the status subresource.
async fn set_status(srv: &TestServer, name: &str, fields: Value) -> Value {
    let mut body = srv.get_ok(&app(name)).await;
    for (k, v) in fields.as_object().expect("object of status fields") {
        body["status"][k] = v.clone();
    }
    srv.put_ok(&format!("{}/status", app(name)), &body).await
}

fn cluster_ref(name: &str) -> Value {
    json!({"api": "kubernetes", "namespace": NS, "kind": "Cluster", "name": name})
}

// ------------------------------------------------------------------------------------
// complete / shutdown / retry

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn complete_hook(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    srv.create(K::Application, NS, "a").await;
    let before = set_status(
        &srv,
        "a",
        json!({"complete_token": "tok", "state": "RUNNING"}),
    )
    .await;
    assert_eq!(before["status"]["complete_token"], "tok");
    let complete = format!("{}/complete", app("a"));
    let invalid = "401: No token has been provided or the provided one is invalid.";

    for body in [
        json!({"token": "wrong"}),
        json!({}),
        json!({"token": null}),
        json!({"api": "kubernetes", "kind": "Complete"}),
    ] {
        let r = srv.put(&complete, &body).await;
        assert_problem_exact(&r, 401, None, invalid);
    }
    assert_eq!(
        srv.get_ok(&app("a")).await,
        before,
        "rejected hooks change nothing"
    );

    let (status, _, done) = srv
        .put(
            &complete,
            &json!({"api": "kubernetes", "kind": "Complete", "token": "tok"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_server_ts(&done["metadata"]["deleted"]);
    assert_eq!(done["status"]["state"], "READY_FOR_ACTION");
    assert_eq!(
        done["metadata"]["finalizers"],
        json!([]),
        "complete adds no finalizer"
    );
    assert_eq!(done["metadata"]["modified"], before["metadata"]["modified"]);
    rv(&done);
    assert_eq!(
        srv.get_ok(&app("a")).await,
        done,
        "the completed application stays stored"
    );

    // Completing again (already deleted) overwrites `deleted`.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = srv.put_ok(&complete, &json!({"token": "tok"})).await;
    assert!(ts(&again["metadata"]["deleted"]) > ts(&done["metadata"]["deleted"]));

    // Hook disabled: no token at all.
    srv.create(K::Application, NS, "b").await;
    for body in [
        json!({"token": null}),
        json!({"token": "anything"}),
        json!({}),
    ] {
        let r = srv.put(&format!("{}/complete", app("b")), &body).await;
        assert_problem_exact(&r, 401, None, invalid);
    }
    let b = srv.get_ok(&app("b")).await;
    assert_eq!(b["metadata"]["deleted"], Value::Null, "not deleted");
    assert_eq!(b["status"]["state"], "PENDING");

    // Body errors and missing objects.
    let r = srv.put_raw(&complete, b"").await;
    assert_eq!(r.status, 415, "{}", r.text());
    let r = srv.put(&complete, &json!({"token": 5})).await;
    assert_problem(&r, 422, None, "token");
    let r = srv
        .put(&complete, &json!({"kind": "Shutdown", "token": "tok"}))
        .await;
    assert_problem(&r, 422, None, "kind");
    let r = srv
        .put(
            &format!("{}/complete", app("missing")),
            &json!({"token": "tok"}),
        )
        .await;
    assert_problem_exact(
        &r,
        404,
        Some("NOT_FOUND_ERROR"),
        "'Application' 'missing' does not exist in namespace 'ns1'",
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn shutdown_hook(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let shutdown = format!("{}/shutdown", app("a"));
    srv.create(K::Application, NS, "a").await;
    let waiting = set_status(
        &srv,
        "a",
        json!({"shutdown_token": "st", "state": "WAITING_FOR_CLEANING", "shutdown_grace_period": "2030-01-01T00:00:00+00:00"}),
    )
    .await;

    for body in [json!({"token": "wrong"}), json!({}), json!({"token": null})] {
        let r = srv.put(&shutdown, &body).await;
        assert_problem_exact(
            &r,
            401,
            None,
            "401: No token has been provided or the provided one is invalid.",
        );
    }
    assert_eq!(srv.get_ok(&app("a")).await, waiting);

    let ready = srv
        .put_ok(
            &shutdown,
            &json!({"api": "kubernetes", "kind": "Shutdown", "token": "st"}),
        )
        .await;
    assert_eq!(ready["status"]["state"], "READY_FOR_ACTION");
    assert_eq!(ready["status"]["shutdown_grace_period"], Value::Null);
    assert_eq!(
        ready["metadata"]["deleted"],
        Value::Null,
        "shutdown does not delete"
    );
    assert_eq!(srv.get_ok(&app("a")).await, ready);

    // DEGRADED also becomes READY_FOR_ACTION; other states stay.
    set_status(&srv, "a", json!({"state": "DEGRADED"})).await;
    let r = srv.put_ok(&shutdown, &json!({"token": "st"})).await;
    assert_eq!(r["status"]["state"], "READY_FOR_ACTION");
    set_status(&srv, "a", json!({"state": "RUNNING"})).await;
    let r = srv.put_ok(&shutdown, &json!({"token": "st"})).await;
    assert_eq!(r["status"]["state"], "RUNNING");

    // Hook disabled.
    srv.create(K::Application, NS, "b").await;
    let r = srv
        .put(&format!("{}/shutdown", app("b")), &json!({"token": null}))
        .await;
    assert_eq!(r.0, 401, "{}", r.2);
    let r = srv.put_raw(&shutdown, b"not json").await;
    assert_eq!(r.status, 415);
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn retry(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let retry = format!("{}/retry", app("a"));
    srv.create(K::Application, NS, "a").await;

    let running = set_status(&srv, "a", json!({"state": "RUNNING"})).await;
    let r = srv.put_raw(&retry, b"").await;
    let r = (r.status, r.headers.clone(), r.json());
    assert_problem_exact(
        &r,
        400,
        Some("UPDATE_ERROR"),
        "No migration or deletion retry needed",
    );
    assert_eq!(srv.get_ok(&app("a")).await, running);

    let degraded = set_status(
        &srv,
        "a",
        json!({"state": "DEGRADED", "shutdown_grace_period": "2030-01-01T00:00:00"}),
    )
    .await;
    assert_eq!(
        degraded["status"]["shutdown_grace_period"], "2030-01-01T00:00:00",
        "client datetimes are echoed as sent"
    );
    // No body needed, and whatever body is sent is ignored.
    let r = srv.put_raw(&retry, b"garbage").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let retried = r.json();
    assert_eq!(retried["status"]["state"], "WAITING_FOR_CLEANING");
    assert_eq!(retried["status"]["shutdown_grace_period"], Value::Null);
    assert_eq!(
        retried["metadata"]["modified"],
        degraded["metadata"]["modified"]
    );
    assert_eq!(srv.get_ok(&app("a")).await, retried);

    let r = srv.put_raw(&format!("{}/retry", app("missing")), b"").await;
    assert_eq!(r.status, 404);
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn delete_with_shutdown_hook_waits_for_cleaning(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let mut body = K::Application.sample("hooked");
    body["spec"]["hooks"] = json!(["complete", "shutdown"]);
    srv.create_body(K::Application, NS, &body).await;
    set_status(&srv, "hooked", json!({"state": "RUNNING"})).await;
    let (status, _, deleting) = srv.delete(&app("hooked")).await;
    assert_eq!(status, 200);
    assert_eq!(deleting["status"]["state"], "WAITING_FOR_CLEANING");
    assert_eq!(
        srv.get_ok(&app("hooked")).await["status"]["state"],
        "WAITING_FOR_CLEANING"
    );

    // Without the hook the state is untouched.
    srv.create(K::Application, NS, "plain").await;
    set_status(&srv, "plain", json!({"state": "RUNNING"})).await;
    let (_, _, deleting) = srv.delete(&app("plain")).await;
    assert_eq!(deleting["status"]["state"], "RUNNING");
}

// ------------------------------------------------------------------------------------
// bindings

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn application_binding(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let binding = format!("{}/binding", app("a"));
    let created = srv.create(K::Application, NS, "a").await;

    let body = json!({"api": "kubernetes", "kind": "ClusterBinding", "cluster": cluster_ref("c1")});
    let bound = srv.put_ok(&binding, &body).await;
    let status = &bound["status"];
    assert_eq!(status["scheduled_to"], cluster_ref("c1"));
    assert_server_ts(&status["scheduled"]);
    assert_eq!(status["scheduled"], status["kube_controller_triggered"]);
    assert_eq!(status["running_on"], Value::Null);
    assert_eq!(
        status["state"], "PENDING",
        "binding does not change the state"
    );
    assert_eq!(bound["metadata"]["owners"], json!([cluster_ref("c1")]));
    assert_eq!(
        bound["metadata"]["modified"],
        created["metadata"]["modified"]
    );
    assert_eq!(bound["spec"], created["spec"]);
    assert_eq!(srv.get_ok(&app("a")).await, bound);

    // Bound twice to the same cluster: one owner.
    let again = srv.put_ok(&binding, &body).await;
    assert_eq!(again["metadata"]["owners"], json!([cluster_ref("c1")]));
    assert!(ts(&again["status"]["scheduled"]) >= ts(&bound["status"]["scheduled"]));

    // Another cluster: a second owner, scheduled_to follows.
    let moved = srv
        .put_ok(&binding, &json!({"cluster": cluster_ref("c2")}))
        .await;
    assert_eq!(moved["status"]["scheduled_to"], cluster_ref("c2"));
    assert_eq!(
        moved["metadata"]["owners"],
        json!([cluster_ref("c1"), cluster_ref("c2")])
    );

    // A reference without namespace gets null.
    let global = srv
        .put_ok(
            &binding,
            &json!({"cluster": {"api": "kubernetes", "kind": "Cluster", "name": "c3"}}),
        )
        .await;
    assert_eq!(
        global["status"]["scheduled_to"],
        json!({"api": "kubernetes", "namespace": null, "kind": "Cluster", "name": "c3"})
    );

    // Errors: body parsed before the object is loaded.
    let r = srv.put_raw(&binding, b"").await;
    assert_eq!(r.status, 415);
    let r = srv
        .put(
            &binding,
            &json!({"api": "kubernetes", "kind": "ClusterBinding"}),
        )
        .await;
    assert_problem(&r, 422, None, "cluster");
    let r = srv
        .put(
            &binding,
            &json!({"cluster": {"api": "kubernetes", "kind": "Cluster"}}),
        )
        .await;
    assert_problem(&r, 422, None, "name");
    let missing = format!("{}/binding", app("missing"));
    let r = srv.put_raw(&missing, b"").await;
    assert_eq!(r.status, 415, "parse before load: {}", r.text());
    let r = srv.put(&missing, &body).await;
    assert_problem(
        &r,
        404,
        Some("NOT_FOUND_ERROR"),
        "'Application' 'missing' does not exist",
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn cluster_binding(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let path = K::Cluster.object(NS, "c1");
    let binding = format!("{path}/binding");
    let created = srv.create(K::Cluster, NS, "c1").await;
    let cloud =
        json!({"api": "infrastructure", "namespace": NS, "kind": "Cloud", "name": "cloud1"});

    let bound = srv
        .put_ok(
            &binding,
            &json!({"api": "infrastructure", "kind": "CloudBinding", "cloud": cloud}),
        )
        .await;
    assert_eq!(bound["status"]["scheduled_to"], cloud);
    assert_server_ts(&bound["status"]["scheduled"]);
    assert_eq!(bound["status"]["state"], "PENDING");
    assert_eq!(bound["metadata"]["owners"], json!([cloud]));
    assert_eq!(
        bound["metadata"]["modified"],
        created["metadata"]["modified"]
    );
    assert_eq!(srv.get_ok(&path).await, bound);

    let again = srv.put_ok(&binding, &json!({"cloud": cloud})).await;
    assert_eq!(
        again["metadata"]["owners"],
        json!([cloud]),
        "owner added once"
    );

    let r = srv
        .put(
            &binding,
            &json!({"api": "infrastructure", "kind": "CloudBinding"}),
        )
        .await;
    assert_problem(&r, 422, None, "cloud");
    let r = srv
        .put(
            &binding,
            &json!({"api": "kubernetes", "kind": "CloudBinding", "cloud": cloud}),
        )
        .await;
    assert_problem(&r, 422, None, "api");
    let r = srv
        .put_raw(
            &format!("{}/binding", K::Cluster.object(NS, "missing")),
            b"",
        )
        .await;
    assert_eq!(r.status, 415);
    let r = srv
        .put(
            &format!("{}/binding", K::Cluster.object(NS, "missing")),
            &json!({"cloud": cloud}),
        )
        .await;
    assert_eq!(r.0, 404);
}

// ------------------------------------------------------------------------------------
// blocking

/// Send a request in the background; the handle yields status and body.
fn spawn_request(
    srv: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> tokio::task::JoinHandle<(reqwest::StatusCode, Value)> {
    let client = srv.client.clone();
    let url = srv.url(path);
    tokio::spawn(async move {
        let mut request = client.request(method, url).timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("blocking request");
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    })
}

async fn wait_exists(srv: &TestServer, path: &str) -> Value {
    eventually("the object to exist", Duration::from_secs(10), || async {
        let (status, _, body) = srv.get(path).await;
        if status == 200 { Ok(body) } else { Err(status) }
    })
    .await
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn blocking_create_waits_for_the_state_of_its_object(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    srv.create(K::Application, NS, "unrelated").await;

    let collection = K::Application.collection(NS);
    let pending = spawn_request(
        &srv,
        reqwest::Method::POST,
        &format!("{collection}?blocking=running"),
        Some(K::Application.sample("target")),
    );
    let created = wait_exists(&srv, &app("target")).await;
    assert_eq!(created["status"]["state"], "PENDING");

    // Another Application reaching RUNNING does not release the request.
    set_status(&srv, "unrelated", json!({"state": "RUNNING"})).await;
    // Nor does another state of the target.
    set_status(&srv, "target", json!({"state": "CREATING"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "blocking create returned before its object was RUNNING"
    );

    let running = set_status(&srv, "target", json!({"state": "RUNNING"})).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("released in time")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["name"], "target");
    assert_eq!(body["status"]["state"], "RUNNING");
    assert_eq!(body["metadata"]["uid"], running["metadata"]["uid"]);
    assert_eq!(
        rv(&body),
        rv(&running),
        "the object at the awaited state, with its version"
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn blocking_create_of_a_cluster(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let path = K::Cluster.object(NS, "c1");
    let pending = spawn_request(
        &srv,
        reqwest::Method::POST,
        &format!("{}?blocking=online", K::Cluster.collection(NS)),
        Some(K::Cluster.sample("c1")),
    );
    let mut body = wait_exists(&srv, &path).await;
    body["status"]["state"] = json!("ONLINE");
    srv.put_ok(&format!("{path}/status"), &body).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("released in time")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["state"], "ONLINE");
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn blocking_false_returns_at_once(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let path = format!("{}?blocking=False", K::Application.collection(NS));
    let (status, _, body) = tokio::time::timeout(
        Duration::from_secs(10),
        srv.post(&path, &K::Application.sample("a")),
    )
    .await
    .expect("blocking=False does not wait");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["state"], "PENDING");
    let (status, _, body) = tokio::time::timeout(
        Duration::from_secs(10),
        srv.delete(&format!("{}?blocking=False", app("a"))),
    )
    .await
    .expect("blocking=False does not wait");
    assert_eq!(status, 200, "{body}");
    assert!(body["metadata"]["deleted"].is_string());
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn blocking_delete_waits_for_the_removal(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    srv.create(K::Application, NS, "a").await;
    srv.create(K::Application, NS, "other").await;
    let pending = spawn_request(
        &srv,
        reqwest::Method::DELETE,
        &format!("{}?blocking=deleted", app("a")),
        None,
    );
    let deleting = eventually("the deletion mark", Duration::from_secs(10), || async {
        let body = srv.get_ok(&app("a")).await;
        if body["metadata"]["deleted"].is_string() {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await;

    // Another object disappearing does not release it.
    let (status, _, _) = srv.delete(&format!("{}?force=True", app("other"))).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "blocking delete returned before its object was removed"
    );

    let mut body = deleting.clone();
    body["metadata"]["finalizers"] = json!([]);
    srv.put_ok(&app("a"), &body).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("released in time")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["name"], "a");
    assert_eq!(body["status"]["state"], "DELETED");
    rv(&body);
    assert_eq!(srv.get(&app("a")).await.0, 404);
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn blocking_times_out(#[case] backend: Backend) {
    let srv =
        TestServer::with_config(backend, |c| c.blocking_timeout = Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let path = format!("{}?blocking=running", K::Application.collection(NS));
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        srv.post(&path, &K::Application.sample("a")),
    )
    .await
    .expect("a blocking request ends after the configured timeout");
    assert_problem(&r, 504, None, "");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "answered before the timeout"
    );
    // The object was created nevertheless.
    assert_eq!(srv.get_ok(&app("a")).await["status"]["state"], "PENDING");

    let r = tokio::time::timeout(
        Duration::from_secs(15),
        srv.delete(&format!("{}?blocking=deleted", app("a"))),
    )
    .await
    .expect("ends after the timeout");
    assert_problem(&r, 504, None, "");
    assert!(srv.get_ok(&app("a")).await["metadata"]["deleted"].is_string());
}

// ------------------------------------------------------------------------------------
// deletion details

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn force_deletion_and_subresources_while_deleting(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for kind in [K::Application, K::Cluster] {
        // `force` must be exactly `True`.
        let path = kind.object(NS, "lower");
        srv.create(kind, NS, "lower").await;
        let (status, _, r) = srv.delete(&format!("{path}?force=true")).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            srv.get_ok(&path).await["metadata"]["finalizers"],
            json!(["cascade_deletion"]),
            "force=true is no force"
        );

        // Force works on an object already in deletion (checked first).
        let (status, _, forced) = srv.delete(&format!("{path}?force=True")).await;
        assert_eq!(status, 200, "{forced}");
        assert_eq!(
            forced["metadata"]["finalizers"],
            json!(["cascade_deletion"]),
            "finalizers untouched"
        );
        assert_eq!(srv.get(&path).await.0, 404);
        let (status, _, _) = srv.delete(&format!("{path}?force=True")).await;
        assert_eq!(status, 404, "force-deleting a missing object");
    }

    // Status updates and bindings remain possible while deleting.
    srv.create(K::Application, NS, "a").await;
    let (_, _, deleting) = srv.delete(&app("a")).await;
    let status = set_status(&srv, "a", json!({"state": "DELETING"})).await;
    assert_eq!(status["status"]["state"], "DELETING");
    assert_eq!(
        status["metadata"]["deleted"],
        deleting["metadata"]["deleted"]
    );
    let bound = srv
        .put_ok(
            &format!("{}/binding", app("a")),
            &json!({"cluster": cluster_ref("c1")}),
        )
        .await;
    assert_eq!(bound["metadata"]["owners"], json!([cluster_ref("c1")]));
    assert_eq!(bound["metadata"]["finalizers"], json!(["cascade_deletion"]));
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn blocking_edge_cases(#[case] backend: Backend) {
    let srv =
        TestServer::with_config(backend, |c| c.blocking_timeout = Duration::from_secs(20)).await;
    let quick = Duration::from_secs(5);
    let collection = K::Application.collection(NS);
    srv.create(K::Application, NS, "a").await;

    // Errors answer at once.
    let r = tokio::time::timeout(
        quick,
        srv.post(
            &format!("{collection}?blocking=running"),
            &K::Application.sample("a"),
        ),
    )
    .await
    .expect("a duplicate create does not block");
    assert_problem(&r, 409, Some("RESOURCE_ALREADY_EXISTS"), "already exists");
    let r = tokio::time::timeout(
        quick,
        srv.delete(&format!("{}?blocking=deleted", app("missing"))),
    )
    .await
    .expect("deleting a missing object does not block");
    assert_eq!(r.0, 404);
    let r = tokio::time::timeout(
        quick,
        srv.post(
            &format!("{collection}?blocking=running"),
            &json!({"metadata": {"name": "x"}}),
        ),
    )
    .await
    .expect("an invalid body does not block");
    assert_eq!(r.0, 422);

    // A forced blocking delete is released by its own removal.
    let (status, _, body) = tokio::time::timeout(
        quick,
        srv.delete(&format!("{}?blocking=deleted&force=True", app("a"))),
    )
    .await
    .expect("force removal releases the blocking delete");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["state"], "DELETED");
    assert_eq!(body["metadata"]["name"], "a");

    // Kinds without blocking support ignore the parameter.
    let (status, _, body) = tokio::time::timeout(
        quick,
        srv.post(
            &format!("{}?blocking=running", K::Role.all_collection()),
            &K::Role.sample("r"),
        ),
    )
    .await
    .expect("roles do not block");
    assert_eq!(status, 200, "{body}");
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn status_and_spec_update_details(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let created = srv.create(K::Application, NS, "a").await;

    // A status update validates the whole body, spec included.
    let mut body = created.clone();
    body["status"]["state"] = json!("RUNNING");
    body["spec"]["manifest"] = json!([]);
    let r = srv.put(&format!("{}/status", app("a")), &body).await;
    assert_problem(&r, 422, None, "_schema");
    assert_eq!(srv.get_ok(&app("a")).await, created);

    // A spec PUT differing only in status is no no-op: it writes and bumps modified, but
    // the status stays.
    let mut body = created.clone();
    body["status"]["state"] = json!("RUNNING");
    let written = srv.put_ok(&app("a"), &body).await;
    assert_eq!(written["status"], created["status"]);
    assert!(ts(&written["metadata"]["modified"]) > ts(&created["metadata"]["modified"]));
    assert_ne!(rv(&written), rv(&created));

    // A body without status is completed from the stored object: identical → no-op.
    let mut body = written.clone();
    body.as_object_mut().unwrap().remove("status");
    let r = srv.put(&app("a"), &body).await;
    assert_problem_exact(
        &r,
        400,
        Some("UPDATE_ERROR"),
        "The body contained no update.",
    );
}

/// The blocking timeout is the limit of a blocking request, also when it is longer than
/// the per-request timeout of ordinary requests.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn blocking_timeout_longer_than_request_timeout(#[case] backend: Backend) {
    let srv = TestServer::with_config(backend, |c| {
        c.request_timeout = Duration::from_secs(1);
        c.blocking_timeout = Duration::from_secs(10);
    })
    .await;
    let pending = spawn_request(
        &srv,
        reqwest::Method::POST,
        &format!("{}?blocking=running", K::Application.collection(NS)),
        Some(K::Application.sample("a")),
    );
    wait_exists(&srv, &app("a")).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    set_status(&srv, "a", json!({"state": "RUNNING"})).await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(15), pending)
        .await
        .expect("released in time")
        .unwrap();
    assert_eq!(status, 200, "the blocking wait was cut short: {body}");
    assert_eq!(body["status"]["state"], "RUNNING");
}
