//! Non-resource routes, HEAD, operations endpoints, authentication, CORS, problem `type`
//! URIs and the `resource_version` extensions; the extensions are additive, so upstream clients never see them.

use crate::common::*;
use reqwest::Method;
use rstest::rstest;
use serde_json::{Value, json};

const NS: &str = "ns1";

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn root_me_release(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (status, headers, body) = srv.get("/").await;
    assert_eq!(status, 200);
    assert_json_type(&headers);
    assert_eq!(body, json!({"version": "1.0.1"}));
    let r = srv.raw(Method::GET, "/", None, &[]).await;
    assert_eq!(r.text(), "{\"version\": \"1.0.1\"}");

    let (status, _, body) = srv.get("/me").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"user": "system:anonymous", "roles": []}));

    let (status, headers, body) = srv.get("/release").await;
    assert_eq!(status, 202);
    assert_json_type(&headers);
    assert_eq!(body, json!("You released the Krake."));
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn head_requests(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    srv.create(K::Application, NS, "a").await;
    for path in [
        "/",
        "/me",
        &K::Application.object(NS, "a"),
        &K::Application.collection(NS),
        &K::Role.all_collection(),
    ] {
        let r = srv.raw(Method::HEAD, path, None, &[]).await;
        assert_eq!(r.status, 200, "HEAD {path}");
        assert!(r.body.is_empty(), "HEAD {path} has a body");
        assert_json_type(&r.headers);
    }
    let r = srv
        .raw(
            Method::HEAD,
            &K::Application.object(NS, "missing"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn operations_endpoints(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    assert_eq!(srv.raw(Method::GET, "/livez", None, &[]).await.status, 200);
    assert_eq!(srv.raw(Method::GET, "/readyz", None, &[]).await.status, 200);
    srv.create(K::Role, NS, "r").await;
    assert_eq!(srv.get(&K::Role.object(NS, "missing")).await.0, 404);
    let r = srv.raw(Method::GET, "/metrics", None, &[]).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("krake_api_http_requests"))
        .collect();
    assert!(
        !lines.is_empty(),
        "no krake_api_http_requests metric:\n{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains("route=\"/core/roles\"")
            && l.contains("code=\"200\"")
            && l.contains("method=\"POST\"")),
        "create not counted:\n{}",
        lines.join("\n")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("route=\"/core/roles/{name}\"") && l.contains("code=\"404\"")),
        "missing read not counted:\n{}",
        lines.join("\n")
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn anonymous_disallowed(#[case] backend: Backend) {
    let srv = TestServer::with_config(backend, |c| c.allow_anonymous = false).await;
    for path in [
        "/",
        "/me",
        "/release",
        "/foo",
        &K::Application.collection(NS),
        &K::Role.object(NS, "r"),
    ] {
        let r = srv.get(path).await;
        assert_problem_exact(&r, 401, None, "401: No user has been authenticated.");
    }
    let r = srv
        .post(&K::Role.all_collection(), &K::Role.sample("r"))
        .await;
    assert_eq!(r.0, 401);
    // Probes need no authentication.
    assert_eq!(srv.raw(Method::GET, "/livez", None, &[]).await.status, 200);
    assert_eq!(srv.raw(Method::GET, "/readyz", None, &[]).await.status, 200);
    // CORS preflights are never rejected by authentication.
    let r = srv
        .raw(
            Method::OPTIONS,
            &K::Role.all_collection(),
            None,
            &[
                ("origin", "http://valid.com"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.headers.get("access-control-allow-origin").unwrap(),
        "http://valid.com"
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn static_user(#[case] backend: Backend) {
    let srv = TestServer::with_config(backend, |c| {
        c.allow_anonymous = false;
        c.static_user = Some("system:admin".into());
    })
    .await;
    assert_eq!(
        srv.get_ok("/me").await,
        json!({"user": "system:admin", "roles": []})
    );
    srv.create(K::Role, NS, "r").await;
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn cors(#[case] backend: Backend) {
    let srv = TestServer::with_config(backend, |c| c.cors_origin = "http://valid.com".into()).await;
    let path = K::Application.collection(NS);
    let r = srv
        .raw(
            Method::OPTIONS,
            &path,
            None,
            &[
                ("origin", "http://valid.com"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type,x-custom"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let h = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(h("access-control-allow-origin"), "http://valid.com");
    assert_eq!(h("access-control-allow-credentials"), "true");
    assert_eq!(h("access-control-allow-methods"), "POST");
    assert_eq!(h("access-control-allow-headers"), "CONTENT-TYPE,X-CUSTOM");
    assert!(r.body.is_empty());

    for (headers, mention) in [
        (
            vec![
                ("origin", "http://valid.com"),
                ("access-control-request-method", "PATCH"),
            ],
            "PATCH",
        ),
        (
            vec![
                ("origin", "http://evil.com"),
                ("access-control-request-method", "GET"),
            ],
            "http://evil.com",
        ),
        (vec![("access-control-request-method", "GET")], "origin"),
    ] {
        let r = srv.raw(Method::OPTIONS, &path, None, &headers).await;
        let r = (r.status, r.headers.clone(), r.json());
        assert_problem(&r, 403, None, "CORS");
        assert_problem(&r, 403, None, mention);
    }

    // Actual requests: the allowed origin gets the headers, others are served without.
    let r = srv
        .raw(Method::GET, &path, None, &[("origin", "http://valid.com")])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("access-control-allow-origin").unwrap(),
        "http://valid.com"
    );
    assert_eq!(
        r.headers.get("access-control-allow-credentials").unwrap(),
        "true"
    );
    let r = srv
        .raw(Method::GET, &path, None, &[("origin", "http://evil.com")])
        .await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("access-control-allow-origin").is_none());

    // With the default `*`, any origin is accepted.
    let any = TestServer::start(Backend::Embedded).await;
    let r = any
        .raw(
            Method::OPTIONS,
            &path,
            None,
            &[
                ("origin", "http://anything.org"),
                ("access-control-request-method", "DELETE"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("access-control-allow-origin").unwrap(),
        "http://anything.org"
    );
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn problem_type_uses_the_configured_base(#[case] backend: Backend) {
    let srv = TestServer::with_config(backend, |c| {
        c.problem_base_url = "http://example.com/problem".into()
    })
    .await;
    let r = srv.get(&K::Application.object(NS, "x")).await;
    assert_problem(&r, 404, Some("NOT_FOUND_ERROR"), "does not exist");
    assert_eq!(r.2["type"], "http://example.com/problem#not-found-error");
    srv.create(K::Role, NS, "r").await;
    let r = srv
        .post(&K::Role.all_collection(), &K::Role.sample("r"))
        .await;
    assert_eq!(
        r.2["type"],
        "http://example.com/problem#resource-already-exists"
    );
    // Untitled problems stay about:blank.
    let r = srv.post_raw(&K::Role.all_collection(), b"").await;
    assert_eq!(r.json()["type"], "about:blank");
    // No instance, no null keys.
    let r = srv.get(&K::Application.object(NS, "x")).await;
    let keys: Vec<&String> = r.2.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["type", "title", "status", "detail"]);

    let blank =
        TestServer::with_config(Backend::Embedded, |c| c.problem_base_url = String::new()).await;
    let r = blank.get(&K::Application.object(NS, "x")).await;
    assert_problem(&r, 404, Some("NOT_FOUND_ERROR"), "does not exist");
    assert_eq!(r.2["type"], "about:blank");
}

/// Every object returned carries `metadata.resource_version`; PUT honours it as a
/// precondition (design, "Additive extensions").
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn resource_version_extension(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let path = K::Application.object(NS, "a");
    let created = srv.create(K::Application, NS, "a").await;
    let v1: i64 = rv(&created).parse().unwrap();
    let read = srv.get_ok(&path).await;
    assert_eq!(rv(&read), rv(&created));
    let list = srv.get_ok(&K::Application.collection(NS)).await;
    assert_eq!(rv(&list["items"][0]), rv(&created));

    // Current version: accepted; the new version is larger.
    let mut body = read.clone();
    K::Application.mutate(&mut body);
    let updated = srv.put_ok(&path, &body).await;
    let v2: i64 = rv(&updated).parse().unwrap();
    assert!(v2 > v1);

    // Stale version: 409, nothing written.
    let mut stale = read.clone();
    stale["spec"]["backoff"] = json!(7);
    let r = srv.put(&path, &stale).await;
    assert_problem(&r, 409, Some("TRANSACTION_ERROR"), "");
    assert_eq!(srv.get_ok(&path).await, updated);
    // Status subresource too.
    let mut stale_status = read.clone();
    stale_status["status"]["state"] = json!("RUNNING");
    let r = srv.put(&format!("{path}/status"), &stale_status).await;
    assert_problem(&r, 409, Some("TRANSACTION_ERROR"), "");
    // Not a string.
    let mut bad = updated.clone();
    bad["metadata"]["resource_version"] = json!(5);
    bad["spec"]["backoff"] = json!(8);
    let r = srv.put(&path, &bad).await;
    assert_problem(&r, 422, None, "resource_version");

    // Without a version: last writer wins, even from an old read.
    let mut lww = read.clone();
    lww["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resource_version");
    lww["spec"]["backoff"] = json!(9);
    let written = srv.put_ok(&path, &lww).await;
    assert_eq!(written["spec"]["backoff"], 9);
    assert_eq!(
        written["spec"]["manifest"], read["spec"]["manifest"],
        "the old read overwrote the update"
    );

    // Subresources, deletes and bindings all answer with a version.
    let s = srv
        .put_ok(&format!("{path}/status"), &{
            let mut b = written.clone();
            b["status"]["state"] = json!("RUNNING");
            b
        })
        .await;
    assert!(rv(&s).parse::<i64>().unwrap() > rv(&written).parse::<i64>().unwrap());
    let b = srv
        .put_ok(&format!("{path}/binding"), &json!({"cluster": {"api": "kubernetes", "namespace": NS, "kind": "Cluster", "name": "c"}}))
        .await;
    rv(&b);
    let (_, _, d) = srv.delete(&path).await;
    rv(&d);
    assert_eq!(srv.get_ok(&path).await, d);
    // The version is never stored inside the object: a client-sent value is ignored on create.
    let mut body = K::Role.sample("r");
    body["metadata"]["resource_version"] = json!("1");
    let role = srv.create_body(K::Role, NS, &body).await;
    assert_ne!(rv(&role), "1");
}

/// Data compatibility: etcd holds upstream's JSON (Python separators, no
/// `resource_version`) under upstream's key.
#[tokio::test]
async fn stored_etcd_value_is_upstream_json() {
    let srv = TestServer::etcd().await;
    let created = srv.create(K::Application, NS, "a").await;
    let mut client = srv.etcd_client().await;
    let resp = client
        .get("/kubernetes/applications/ns1/a", None)
        .await
        .expect("etcd get");
    let kv = resp.kvs().first().expect("the key exists in etcd");
    let text = String::from_utf8_lossy(kv.value()).into_owned();
    assert!(!text.contains("resource_version"), "{text}");
    assert!(
        text.starts_with("{\"api\": \"kubernetes\", \"kind\": \"Application\", "),
        "{text}"
    );
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stored, strip(&created, true));
    assert_eq!(kv.mod_revision().to_string(), rv(&created));
}

/// Concurrent conditional writes from the same read: exactly one wins (design: "one
/// conformance test suite ... concurrent conditional writes where exactly one wins").
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let path = K::Application.object(NS, "a");
    let read = srv.create(K::Application, NS, "a").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = srv.client.clone();
        let url = srv.url(&path);
        let mut body = read.clone();
        body["metadata"]["labels"] = json!({"writer": format!("w{i}")});
        tasks.push(tokio::spawn(async move {
            let r = client.put(url).json(&body).send().await.expect("PUT");
            let status = r.status();
            (i, status, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, status, body) = t.await.unwrap();
        match status.as_u16() {
            200 => winners.push(i),
            409 => assert_eq!(body["title"], "TRANSACTION_ERROR", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one conditional write wins: {winners:?}"
    );
    assert_eq!(
        srv.get_ok(&path).await["metadata"]["labels"],
        json!({"writer": format!("w{}", winners[0])})
    );

    // Unconditional writes: last writer wins; conflicts are retried, never 500.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = srv.client.clone();
        let url = srv.url(&format!("{path}/status"));
        let mut body = read.clone();
        body["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resource_version");
        body["status"]["services"] = json!({"svc": format!("10.0.0.{i}:80")});
        tasks.push(tokio::spawn(async move {
            let r = client.put(url).json(&body).send().await.expect("PUT");
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status.as_u16() {
            200 => ok += 1,
            409 => assert_eq!(body["title"], "TRANSACTION_ERROR", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 1, "at least one unconditional write succeeds");
    let services = srv.get_ok(&path).await["status"]["services"]["svc"].clone();
    assert!(
        services.as_str().is_some_and(|s| s.starts_with("10.0.0.")),
        "{services}"
    );
}

/// Graceful shutdown ends watch streams; the open-watchers gauge follows them.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn shutdown_ends_watches(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let mut w = srv
        .watch(&format!("{}?watch&heartbeat=0", K::Role.all_collection()))
        .await;
    assert_eq!(w.status, 200);
    let metrics = srv.raw(Method::GET, "/metrics", None, &[]).await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("krake_api_open_watchers") && l.ends_with(" 1")),
        "one open watcher:\n{metrics}"
    );
    srv.create(K::Role, NS, "r").await;
    w.expect("ADDED", "r").await;
    srv.shutdown();
    let end = w.next_line(std::time::Duration::from_secs(10)).await;
    assert_eq!(end, Line::End, "the watch stream ends on shutdown");
}

/// Objects written by upstream Krake (Python JSON, older field sets) are served as they
/// are; keys that do not match the kind's template are skipped, as upstream's
/// watcher and listing skip them.
#[tokio::test]
async fn upstream_data_in_etcd() {
    let srv = TestServer::etcd().await;
    let mut w = srv
        .watch(&format!("{}?watch&heartbeat=0", K::Role.all_collection()))
        .await;
    let mut client = srv.etcd_client().await;
    // The 1.0.1 wheel wrote no `inherit_labels`.
    let legacy = r#"{"api": "core", "kind": "Role", "metadata": {"name": "legacy", "namespace": null, "labels": {}, "finalizers": [], "uid": "436de7b0-9439-41f1-b3c7-d30c0af20136", "created": "2026-11-21T09:02:37.560425+00:00", "modified": "2026-11-21T09:02:37.560425+00:00", "deleted": null, "owners": []}, "rules": [{"api": "", "resources": [""], "namespaces": [""], "verbs": ["get"]}]}"#;
    let put = client
        .put("/core/roles/legacy", legacy, None)
        .await
        .expect("etcd put");
    let revision = put.header().expect("header").revision();
    client
        .put("/core/roles/a/b", "{}", None)
        .await
        .expect("etcd put");
    client
        .put("/core/roles/", "not json", None)
        .await
        .expect("etcd put");

    let event = w.expect("ADDED", "legacy").await;
    let got = srv.get_ok(&K::Role.object(NS, "legacy")).await;
    assert_eq!(event, got);
    assert_eq!(
        got["metadata"]["uid"],
        "436de7b0-9439-41f1-b3c7-d30c0af20136"
    );
    assert_eq!(
        got["metadata"]["created"],
        "2026-11-21T09:02:37.560425+00:00"
    );
    assert_eq!(got["metadata"]["inherit_labels"], json!(false));
    assert_eq!(rv(&got), revision.to_string());
    let names = srv.list_names(&K::Role.all_collection()).await;
    assert_eq!(
        names,
        vec![(None, "legacy".to_string())],
        "foreign keys are skipped"
    );

    // It can be updated and deleted through the API.
    let mut body = got.clone();
    K::Role.mutate(&mut body);
    let updated = srv.put_ok(&K::Role.object(NS, "legacy"), &body).await;
    assert_eq!(updated["rules"], body["rules"]);
    assert_eq!(w.expect("MODIFIED", "legacy").await, updated);
    let created = srv.create(K::Role, NS, "new").await;
    assert_eq!(w.expect("ADDED", "new").await, created);
}

/// The API survives an etcd outage: requests fail with a 5xx problem while etcd is down,
/// and everything (including watches) works again once it is back.
#[tokio::test]
async fn etcd_outage() {
    let mut srv = TestServer::with_config(Backend::Etcd, |c| {
        c.request_timeout = std::time::Duration::from_secs(10)
    })
    .await;
    srv.create(K::Role, NS, "before").await;
    srv.etcd.as_mut().unwrap().stop();
    let r = srv.get(&K::Role.object(NS, "before")).await;
    assert!(r.0.is_server_error(), "etcd down: {} {}", r.0, r.2);
    assert_problem_type(&r.1);
    let ready = srv.raw(Method::GET, "/readyz", None, &[]).await;
    assert_eq!(ready.status, 503);
    srv.etcd.as_mut().unwrap().restart().await;
    eventually(
        "readiness after the etcd restart",
        std::time::Duration::from_secs(30),
        || async { srv.raw(Method::GET, "/readyz", None, &[]).await.status == 200 },
    )
    .await;
    assert_eq!(
        srv.get_ok(&K::Role.object(NS, "before")).await["metadata"]["name"],
        "before"
    );
    let mut w = srv
        .watch(&format!("{}?watch&heartbeat=0", K::Role.all_collection()))
        .await;
    let created = srv.create(K::Role, NS, "after").await;
    assert_eq!(w.expect("ADDED", "after").await, created);
}

/// API server replicas on one etcd: reads are read-your-writes consistent across
/// replicas, watches on one replica see writes through another, and conditional writes
/// conflict across replicas (design: "API servers are stateless replicas").
#[tokio::test]
async fn replicas_share_etcd() {
    let a = TestServer::etcd().await;
    let b = a.replica().await;
    let mut watch_b = b
        .watch(&format!(
            "{}?watch&heartbeat=0",
            K::Application.collection(NS)
        ))
        .await;
    for i in 0..10 {
        let name = format!("app{i}");
        let created = a.create(K::Application, NS, &name).await;
        assert_eq!(
            b.get_ok(&K::Application.object(NS, &name)).await,
            created,
            "read-your-writes on the other replica"
        );
        let listed = b.get_ok(&K::Application.collection(NS)).await;
        assert_eq!(listed["items"].as_array().unwrap().len(), i + 1);
        assert_eq!(watch_b.expect("ADDED", &name).await, created);
    }
    let path = K::Application.object(NS, "app0");
    let read = a.get_ok(&path).await;
    let mut body = read.clone();
    body["metadata"]["labels"] = json!({"by": "b"});
    let from_b = b.put_ok(&path, &body).await;
    assert_eq!(watch_b.expect("MODIFIED", "app0").await, from_b);
    let mut stale = read.clone();
    stale["metadata"]["labels"] = json!({"by": "a"});
    let r = a.put(&path, &stale).await;
    assert_problem(&r, 409, Some("TRANSACTION_ERROR"), "");
    let (status, _, deleting) = a.delete(&path).await;
    assert_eq!(status, 200);
    assert_eq!(b.get_ok(&path).await, deleting);
}
