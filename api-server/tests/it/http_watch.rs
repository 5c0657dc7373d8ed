//! The watch protocol (one JSON event per line, heartbeats) and its resumption extension (`?watch&resource_version=N`,
//! 410 Gone), on both backends.

use std::time::Duration;

use crate::common::*;
use krake_api_server::config::StorageConfig;
use rstest::rstest;
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

fn assert_ndjson(w: &Watch) {
    assert_eq!(w.status, 200);
    let ct = w
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(ct, "application/x-ndjson");
}

#[rstest]
#[tokio::test]
async fn watch_sees_the_whole_lifecycle(
    #[values(Backend::Embedded, Backend::Etcd)] backend: Backend,
) {
    let srv = TestServer::start(backend).await;
    for kind in all_kinds() {
        // Printed with the output of a failing test: which kind failed.
        eprintln!("kind {}/{}", kind.api(), kind.kind());
        watch_lifecycle_of(&srv, kind).await;
    }
}

async fn watch_lifecycle_of(srv: &TestServer, kind: K) {
    let mut ns_watch = srv
        .watch(&format!("{}?watch&heartbeat=0", kind.collection("ns1")))
        .await;
    assert_ndjson(&ns_watch);
    let mut all_watch = if kind.namespaced() {
        let w = srv
            .watch(&format!("{}?watch&heartbeat=0", kind.all_collection()))
            .await;
        assert_ndjson(&w);
        Some(w)
    } else {
        None
    };

    let created = srv.create(kind, "ns1", "a").await;
    let other = if kind.namespaced() {
        Some(srv.create(kind, "ns2", "b").await)
    } else {
        None
    };
    let mut body = created.clone();
    kind.mutate(&mut body);
    let updated = srv.put_ok(&kind.object("ns1", "a"), &body).await;
    let (_, _, deleting) = srv.delete(&kind.object("ns1", "a")).await;
    let mut body = deleting.clone();
    body["metadata"]["finalizers"] = json!([]);
    srv.put_ok(&kind.object("ns1", "a"), &body).await;

    // Namespaced (or global) watch: exactly the events of `a`, in order.
    assert_eq!(ns_watch.expect("ADDED", "a").await, created);
    assert_eq!(ns_watch.expect("MODIFIED", "a").await, updated);
    assert_eq!(
        ns_watch.expect("MODIFIED", "a").await,
        deleting,
        "DELETE shows as MODIFIED with deleted set"
    );
    let removed = ns_watch.expect("DELETED", "a").await;
    assert_eq!(
        strip(&removed, true),
        strip(&deleting, true),
        "DELETED carries the last stored version (with cascade_deletion)"
    );
    assert_eq!(
        removed["metadata"]["finalizers"],
        json!(["cascade_deletion"])
    );
    rv(&removed);
    ns_watch.expect_quiet(QUIET).await;

    // All-namespaces watch: also the other namespace.
    if let Some(mut w) = all_watch.take() {
        assert_eq!(w.expect("ADDED", "a").await, created);
        assert_eq!(w.expect("ADDED", "b").await, other.unwrap());
        w.expect("MODIFIED", "a").await;
        w.expect("MODIFIED", "a").await;
        w.expect("DELETED", "a").await;
        w.expect_quiet(QUIET).await;
    }
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn watch_flags_heartbeats_and_force_deletion(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let apps = K::Application.collection("ns1");

    // `watch=false` still watches; no initial state is sent for existing objects.
    srv.create(K::Application, "ns1", "before").await;
    let mut w = srv.watch(&format!("{apps}?watch=false&heartbeat=0")).await;
    assert_ndjson(&w);
    // The empty value (Python client) watches too.
    let mut w2 = srv.watch(&format!("{apps}?watch=&heartbeat=0")).await;
    assert_ndjson(&w2);
    w.expect_quiet(QUIET).await;

    srv.create(K::Application, "ns1", "x").await;
    w.expect("ADDED", "x").await;
    w2.expect("ADDED", "x").await;
    let (status, _, forced) = srv
        .delete(&format!("{}?force=True", K::Application.object("ns1", "x")))
        .await;
    assert_eq!(status, 200);
    let removed = w.expect("DELETED", "x").await;
    assert_eq!(
        removed["metadata"]["deleted"],
        Value::Null,
        "the last stored version was not marked deleted"
    );
    assert!(forced["metadata"]["deleted"].is_string());

    // Raw line format: one JSON document per line, Python separators.
    srv.create(K::Application, "ns1", "y").await;
    match w2.next_line(EVENT_TIMEOUT).await {
        Line::Text(t) => assert!(
            t.starts_with("{\"type\": \"DELETED\", \"object\": {\"api\": \"kubernetes\", "),
            "{t}"
        ),
        other => panic!("expected a line, got {other:?}"),
    }
    match w2.next_line(EVENT_TIMEOUT).await {
        Line::Text(t) => assert!(t.starts_with("{\"type\": \"ADDED\", \"object\": {"), "{t}"),
        other => panic!("expected a line, got {other:?}"),
    }

    // heartbeat=1: empty lines about every second.
    let mut hb = srv.watch(&format!("{apps}?watch&heartbeat=1")).await;
    assert_ndjson(&hb);
    for _ in 0..2 {
        assert_eq!(
            hb.next_line(Duration::from_secs(3)).await,
            Line::Text(String::new()),
            "heartbeat line"
        );
    }
    // Without heartbeats nothing at all arrives.
    match w.next_line(Duration::from_millis(1500)).await {
        Line::Text(t) if t.is_empty() => panic!("heartbeat=0 sent a heartbeat"),
        _ => {}
    }
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn invalid_heartbeat_is_rejected(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for (value, collection) in [
        ("x", K::Application.collection("ns1")),
        ("-1", K::Application.collection("ns1")),
        ("1.5", K::Role.all_collection()),
        ("x", K::Cloud.all_collection()),
    ] {
        for query in [
            format!("?watch&heartbeat={value}"),
            format!("?heartbeat={value}"),
        ] {
            let r = srv.get(&format!("{collection}{query}")).await;
            assert_problem(&r, 422, None, "heartbeat");
            let detail: Value = serde_json::from_str(r.2["detail"].as_str().unwrap())
                .expect("detail is a JSON string");
            let messages = detail["query"]["heartbeat"]
                .as_array()
                .unwrap_or_else(|| panic!("{detail}"));
            assert_eq!(messages.len(), 1, "{detail}");
            assert!(messages[0].is_string());
        }
    }
    // Upstream's detail is `json.dumps` of the webargs messages: Python separators.
    let r = srv
        .get(&format!("{}?heartbeat=x", K::Application.collection("ns1")))
        .await;
    assert_eq!(
        r.2["detail"],
        "{\"query\": {\"heartbeat\": [\"Not a valid integer.\"]}}"
    );
    // Unknown query parameters are ignored.
    assert_eq!(
        srv.get(&format!("{}?limit=5&foo", K::Application.collection("ns1")))
            .await
            .0,
        200
    );
    // An invalid URL namespace is refused on watches too.
    let r = srv
        .get("/kubernetes/namespaces/a%20b/applications?watch&heartbeat=0")
        .await;
    assert_problem(&r, 422, None, "namespace");
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn watch_resumes_after_a_resource_version(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let apps = K::Application.collection("ns1");
    let a = srv.create(K::Application, "ns1", "a").await;
    srv.create(K::Application, "ns2", "other-ns").await;
    let list = srv.get_ok(&apps).await;
    let list_rv = list["metadata"]["resource_version"]
        .as_str()
        .expect("list resource_version")
        .to_string();

    let b = srv.create(K::Application, "ns1", "b").await;
    let mut body = a.clone();
    K::Application.mutate(&mut body);
    let a2 = srv.put_ok(&K::Application.object("ns1", "a"), &body).await;
    srv.create(K::Application, "ns2", "other-ns-2").await;
    let (_, _, _) = srv
        .delete(&format!("{}?force=True", K::Application.object("ns1", "b")))
        .await;

    // From the list revision: exactly the later changes of this namespace.
    let mut w = srv
        .watch(&format!(
            "{apps}?watch&heartbeat=0&resource_version={list_rv}"
        ))
        .await;
    assert_ndjson(&w);
    assert_eq!(w.expect("ADDED", "b").await, b);
    assert_eq!(w.expect("MODIFIED", "a").await, a2);
    let deleted = w.expect("DELETED", "b").await;
    assert_eq!(strip(&deleted, true), strip(&b, true));
    w.expect_quiet(QUIET).await;
    // Live events follow the replay.
    let c = srv.create(K::Application, "ns1", "c").await;
    assert_eq!(w.expect("ADDED", "c").await, c);

    // From an object's resource version, across namespaces.
    let mut w = srv
        .watch(&format!(
            "{}?watch&heartbeat=0&resource_version={}",
            K::Application.all_collection(),
            rv(&a2)
        ))
        .await;
    w.expect("ADDED", "other-ns-2").await;
    w.expect("DELETED", "b").await;
    w.expect("ADDED", "c").await;
    w.expect_quiet(QUIET).await;

    // Resuming from the DELETED event's version replays nothing before it.
    let mut w = srv
        .watch(&format!(
            "{apps}?watch&heartbeat=0&resource_version={}",
            rv(&deleted)
        ))
        .await;
    w.expect("ADDED", "c").await;
    w.expect_quiet(QUIET).await;

    // Invalid versions.
    let r = srv.get(&format!("{apps}?watch&resource_version=abc")).await;
    assert_problem(&r, 422, None, "resource_version");
}

/// Resuming from a revision older than the watch cache reads the storage history.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn watch_resumes_beyond_the_watch_cache(#[case] backend: Backend) {
    let srv = TestServer::with_config(backend, |c| c.watch_cache_events = 2).await;
    let roles = K::Role.all_collection();
    let first = srv.create(K::Role, "", "r0").await;
    let mut expected = Vec::new();
    for i in 1..6 {
        expected.push(srv.create(K::Role, "", &format!("r{i}")).await);
    }
    let mut w = srv
        .watch(&format!(
            "{roles}?watch&heartbeat=0&resource_version={}",
            rv(&first)
        ))
        .await;
    assert_ndjson(&w);
    for object in &expected {
        let name = object["metadata"]["name"].as_str().unwrap();
        assert_eq!(&w.expect("ADDED", name).await, object);
    }
    w.expect_quiet(QUIET).await;
    let late = srv.create(K::Role, "", "late").await;
    assert_eq!(w.expect("ADDED", "late").await, late);
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn watch_from_a_compacted_revision_is_gone(#[case] backend: Backend) {
    let srv = TestServer::with_config(backend, |c| {
        c.watch_cache_events = 2;
        if let StorageConfig::Embedded { history_limit, .. } = &mut c.storage {
            *history_limit = 5;
        }
    })
    .await;
    let roles = K::Role.all_collection();
    let first = srv.create(K::Role, "", "r0").await;
    let mut last = first.clone();
    for i in 1..12 {
        last = srv.create(K::Role, "", &format!("r{i}")).await;
    }
    if backend == Backend::Etcd {
        let revision: i64 = rv(&last).parse().unwrap();
        let mut client = srv.etcd_client().await;
        client
            .compact(
                revision,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .expect("compact etcd");
    }
    let r = srv
        .get(&format!(
            "{roles}?watch&heartbeat=0&resource_version={}",
            rv(&first)
        ))
        .await;
    assert_problem(&r, 410, None, "");
    // A recent revision still works.
    let mut w = srv
        .watch(&format!(
            "{roles}?watch&heartbeat=0&resource_version={}",
            rv(&last)
        ))
        .await;
    assert_ndjson(&w);
    let next = srv.create(K::Role, "", "next").await;
    assert_eq!(w.expect("ADDED", "next").await, next);
    // Lists keep working after the compaction.
    assert_eq!(srv.list_names(&roles).await.len(), 13);
}

/// A DELETE answers with the revision of the change it made, as the watch event of that
/// change carries it: the deletion mark (MODIFIED), and the removal (DELETED) by a force
/// deletion or by the update that drops the last finalizer. A client can watch on from
/// the answer without missing or repeating anything.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn delete_answers_carry_the_revision_of_their_event(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for kind in all_kinds() {
        let ns = "ns1";
        let path = kind.object(ns, "d");
        let created = srv.create(kind, ns, "d").await;
        let mut w = srv
            .watch(&format!(
                "{}?watch&heartbeat=0&resource_version={}",
                kind.all_collection(),
                rv(&created)
            ))
            .await;
        let (status, _, marked) = srv.delete(&path).await;
        assert_eq!(status, 200, "{marked}");
        let event = w.expect("MODIFIED", "d").await;
        assert_eq!(rv(&marked), rv(&event), "{}: deletion mark", kind.kind());

        let mut body = marked.clone();
        body["metadata"]["finalizers"] = json!([]);
        let removed = srv.put_ok(&path, &body).await;
        let event = w.expect("DELETED", "d").await;
        assert_eq!(rv(&removed), rv(&event), "{}: last finalizer", kind.kind());

        if kind.force_delete() {
            srv.create(kind, ns, "d").await;
            w.expect("ADDED", "d").await;
            let (status, _, forced) = srv.delete(&format!("{path}?force=True")).await;
            assert_eq!(status, 200, "{forced}");
            let event = w.expect("DELETED", "d").await;
            assert_eq!(rv(&forced), rv(&event), "{}: force deletion", kind.kind());
        }
    }
}
