//! Query parameters are parsed and bounded before anything happens: each parameter of
//! each route class (list, watch, create, delete) is refused with a 422 problem when it
//! is malformed, out of range or given twice, and a watch cannot start from a revision
//! the store has not reached.

use std::time::Duration;

use crate::common::*;
use rstest::rstest;
use serde_json::Value;

const NS: &str = "ns1";

/// A request that must be answered at once (not after a blocking wait, not a stream).
async fn quick(
    srv: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> Resp {
    tokio::time::timeout(
        Duration::from_secs(10),
        srv.send(method.clone(), path, body),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {path}: no answer in time"))
}

/// A 422 problem whose detail is `{"query": {param: [message]}}`.
fn assert_query_problem(resp: &Resp, param: &str, what: &str) {
    assert_eq!(resp.0.as_u16(), 422, "{what}: {}", resp.2);
    assert_problem(resp, 422, None, param);
    let detail: Value = serde_json::from_str(resp.2["detail"].as_str().unwrap())
        .unwrap_or_else(|_| panic!("{what}: detail is not JSON: {}", resp.2));
    let messages = detail["query"][param]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {detail}"));
    assert_eq!(messages.len(), 1, "{what}: {detail}");
}

/// `heartbeat`, `resource_version` and `watch` on every collection route (a namespace,
/// all namespaces, a global kind), with and without `watch`.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn list_and_watch_parameters_are_bounded(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let collections = [
        K::Application.collection(NS),
        K::Application.all_collection(),
        K::Role.all_collection(),
    ];
    let bad: [(&str, &str); 14] = [
        ("heartbeat", "heartbeat=9223372036854775807"),
        ("heartbeat", "heartbeat=86401"),
        ("heartbeat", "heartbeat=-1"),
        ("heartbeat", "heartbeat=1e3"),
        ("heartbeat", "heartbeat=5&heartbeat=5"),
        ("resource_version", "resource_version=-1"),
        ("resource_version", "resource_version=%2B1"),
        ("resource_version", "resource_version=1.5"),
        ("resource_version", "resource_version=%201"),
        ("resource_version", "resource_version=0x10"),
        ("resource_version", "resource_version=9223372036854775808"),
        (
            "resource_version",
            "resource_version=99999999999999999999999",
        ),
        ("resource_version", "resource_version=1&resource_version=1"),
        ("watch", "watch&watch"),
    ];
    for collection in &collections {
        for (param, query) in bad {
            for prefix in ["", "watch&"] {
                if param == "watch" && !prefix.is_empty() {
                    continue;
                }
                let path = format!("{collection}?{prefix}heartbeat=0&{query}")
                    .replace("heartbeat=0&heartbeat", "heartbeat");
                let r = quick(&srv, reqwest::Method::GET, &path, None).await;
                assert_query_problem(&r, param, &path);
            }
        }
        // The bounds themselves are fine.
        let (status, _, body) = srv
            .get(&format!(
                "{collection}?heartbeat=86400&resource_version=9223372036854775807"
            ))
            .await;
        assert_eq!(status, 200, "{collection}: {body}");
        let mut w = srv
            .watch(&format!("{collection}?watch&heartbeat=86400"))
            .await;
        assert_eq!(w.status, 200);
        w.expect_quiet(Duration::from_millis(200)).await;
    }
}

/// A watch from a revision newer than the store's would silently skip every change up
/// to it: 410, as for a compacted one, so that the client re-lists.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn watch_from_a_revision_the_store_has_not_reached_is_gone(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let apps = K::Application.collection(NS);
    let created = srv.create(K::Application, NS, "a").await;
    let current: i64 = rv(&created).parse().unwrap();
    for collection in [apps.clone(), K::Application.all_collection()] {
        for ahead in [current + 1, current + 1000, i64::MAX] {
            let r = quick(
                &srv,
                reqwest::Method::GET,
                &format!("{collection}?watch&heartbeat=0&resource_version={ahead}"),
                None,
            )
            .await;
            assert_problem(&r, 410, None, "Too large resource version");
        }
    }
    // The current revision is fine, and the stream delivers what follows it.
    let mut w = srv
        .watch(&format!(
            "{apps}?watch&heartbeat=0&resource_version={current}"
        ))
        .await;
    assert_eq!(w.status, 200);
    let b = srv.create(K::Application, NS, "b").await;
    assert_eq!(w.expect("ADDED", "b").await, b);
}

/// `?blocking` names a state of the kind (or `deleted`, or `False`): anything else is
/// refused before the object is created or deleted, instead of waiting for a state that
/// never comes.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn blocking_is_validated_before_anything_is_written(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for (kind, bad) in [
        (K::Application, "bogus"),
        (K::Application, "online"),
        (K::Application, ""),
        (K::Cluster, "running"),
        (K::Cluster, "True"),
    ] {
        let path = format!("{}?blocking={bad}", kind.collection(NS));
        let r = quick(&srv, reqwest::Method::POST, &path, Some(&kind.sample("x"))).await;
        assert_query_problem(&r, "blocking", &path);
        assert_eq!(
            srv.get(&kind.object(NS, "x")).await.0,
            404,
            "{path} created"
        );
    }
    let path = format!(
        "{}?blocking=running&blocking=running",
        K::Application.collection(NS)
    );
    let r = quick(
        &srv,
        reqwest::Method::POST,
        &path,
        Some(&K::Application.sample("x")),
    )
    .await;
    assert_query_problem(&r, "blocking", &path);
    assert_eq!(srv.get(&K::Application.object(NS, "x")).await.0, 404);

    // DELETE: `blocking` and `force` are checked before the deletion mark.
    for kind in [K::Application, K::Cluster] {
        let object = kind.object(NS, "kept");
        let created = srv.create(kind, NS, "kept").await;
        for (param, query) in [
            ("blocking", "blocking=bogus"),
            ("blocking", "blocking=deleted&blocking=deleted"),
            ("force", "force=maybe"),
            ("force", "force=True&force=True"),
        ] {
            let path = format!("{object}?{query}");
            let r = quick(&srv, reqwest::Method::DELETE, &path, None).await;
            assert_query_problem(&r, param, &path);
        }
        assert_eq!(srv.get_ok(&object).await, created, "a refused DELETE wrote");
    }

    // Kinds without `blocking` or `force` ignore them, as any unknown parameter.
    let path = format!("{}?blocking=bogus", K::Role.all_collection());
    let (status, _, body) = quick(
        &srv,
        reqwest::Method::POST,
        &path,
        Some(&K::Role.sample("r")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = quick(
        &srv,
        reqwest::Method::DELETE,
        &format!("{}?force=maybe", K::Role.object("", "r")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Valid values keep working: `False` in any case returns at once, and `force=True`
    // removes the object.
    let path = format!("{}?blocking=false", K::Application.collection(NS));
    let (status, _, body) = quick(
        &srv,
        reqwest::Method::POST,
        &path,
        Some(&K::Application.sample("quick")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = quick(
        &srv,
        reqwest::Method::DELETE,
        &format!("{}?force=True", K::Application.object(NS, "quick")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(srv.get(&K::Application.object(NS, "quick")).await.0, 404);
}
