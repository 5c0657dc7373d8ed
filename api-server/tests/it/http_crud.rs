//! The resource contract of every persisted kind (create, read, list, update, status,
//! delete, finalizers, as upstream Krake answers them),
//! table-driven over the fourteen kinds and run against both storage backends.

use crate::common::*;
use rstest::rstest;
use serde_json::{Value, json};

fn other_ns(kind: K) -> &'static str {
    if kind.namespaced() { "ns2" } else { "ns1" }
}

fn already_exists(kind: K, name: &str, ns: &str) -> String {
    if kind.namespaced() {
        format!(
            "{} '{name}' already exists in namespace '{ns}'",
            kind.kind()
        )
    } else {
        format!("{} '{name}' already exists", kind.kind())
    }
}

fn not_found(kind: K, name: &str, ns: &str) -> String {
    if kind.namespaced() {
        format!(
            "'{}' '{name}' does not exist in namespace '{ns}'",
            kind.kind()
        )
    } else {
        format!(
            "'{}' '{name}' does not exist in namespace None",
            kind.kind()
        )
    }
}

#[rstest]
#[tokio::test]
async fn resource_lifecycle(#[values(Backend::Embedded, Backend::Etcd)] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for kind in all_kinds() {
        // Printed with the output of a failing test: which kind failed.
        eprintln!("kind {}/{}", kind.api(), kind.kind());
        lifecycle_of(&srv, kind).await;
    }
}

async fn lifecycle_of(srv: &TestServer, kind: K) {
    let ns = "ns1";
    let obj1 = kind.object(ns, "obj1");

    // ---- create: read-only fields, foreign namespace and status in the body are ignored.
    let mut body = kind.sample("obj1");
    body["metadata"]["uid"] = json!("client-uid");
    body["metadata"]["created"] = json!("2000-01-01T00:00:00+00:00");
    body["metadata"]["modified"] = json!("2000-01-01T00:00:00+00:00");
    body["metadata"]["deleted"] = json!("2000-01-01T00:00:00+00:00");
    body["metadata"]["namespace"] = json!("elsewhere");
    body["metadata"]["labels"] = json!({"team": "a", "example.com/tier": "gold"});
    if let Some(status) = kind.custom_status() {
        body["status"] = status;
    }
    let (status, headers, created) = srv.post(&kind.collection(ns), &body).await;
    assert_eq!(status, 200, "create: {created}");
    assert_json_type(&headers);
    assert_eq!(created["api"], kind.api());
    assert_eq!(created["kind"], kind.kind());
    let meta = &created["metadata"];
    assert_eq!(meta["name"], "obj1");
    assert_eq!(
        meta["namespace"],
        kind.expected_ns(ns),
        "namespace is the URL's (null for global kinds)"
    );
    let uid = meta["uid"].as_str().expect("uid");
    assert!(
        !uid.is_empty() && uid != "client-uid",
        "server-generated uid: {uid}"
    );
    assert_eq!(uid.len(), 36, "uid is a UUID: {uid}");
    assert_server_ts(&meta["created"]);
    assert_eq!(meta["created"], meta["modified"]);
    assert_ne!(meta["created"], "2000-01-01T00:00:00+00:00");
    assert_eq!(meta["deleted"], Value::Null);
    assert_eq!(
        meta["labels"],
        json!({"team": "a", "example.com/tier": "gold"})
    );
    assert_eq!(meta["finalizers"], json!([]));
    assert_eq!(meta["owners"], json!([]));
    assert_eq!(meta["inherit_labels"], json!(false));
    rv(&created);
    for key in kind.content_keys() {
        assert_subset(&kind.sample("obj1")[*key], &created[*key], key);
    }
    match kind.default_status() {
        Some(default) => assert_eq!(
            created["status"], default,
            "status is reset to its defaults on create"
        ),
        None => assert!(
            created.get("status").is_none(),
            "kind without status: {created}"
        ),
    }
    assert_eq!(
        srv.get_ok(&obj1).await,
        created,
        "the stored object equals the create response"
    );

    // ---- duplicate create
    let dup = srv.post(&kind.collection(ns), &kind.sample("obj1")).await;
    assert_problem_exact(
        &dup,
        409,
        Some("RESOURCE_ALREADY_EXISTS"),
        &already_exists(kind, "obj1", ns),
    );
    assert_eq!(
        srv.get_ok(&obj1).await,
        created,
        "a failed create leaves the object alone"
    );

    // ---- missing objects
    let missing = srv.get(&kind.object(ns, "missing")).await;
    assert_problem_exact(
        &missing,
        404,
        Some("NOT_FOUND_ERROR"),
        &not_found(kind, "missing", ns),
    );
    assert_eq!(missing.2["type"], format!("{PROBLEM_BASE}#not-found-error"));
    let mut missing_body = kind.sample("missing");
    missing_body["metadata"]["namespace"] = kind.expected_ns(ns);
    let put_missing = srv.put(&kind.object(ns, "missing"), &missing_body).await;
    assert_problem_exact(
        &put_missing,
        404,
        Some("NOT_FOUND_ERROR"),
        &not_found(kind, "missing", ns),
    );
    let delete_missing = srv.delete(&kind.object(ns, "missing")).await;
    assert_problem_exact(
        &delete_missing,
        404,
        Some("NOT_FOUND_ERROR"),
        &not_found(kind, "missing", ns),
    );

    // ---- lists
    let obj2 = srv.create(kind, ns, "obj2").await;
    let obj3 = srv.create(kind, other_ns(kind), "obj3").await;
    let list = srv.get_ok(&kind.collection(ns)).await;
    assert_eq!(list["api"], kind.api());
    assert_eq!(list["kind"], format!("{}List", kind.kind()));
    let list_rv: i64 = list["metadata"]["resource_version"]
        .as_str()
        .unwrap_or_else(|| panic!("list without metadata.resource_version: {list}"))
        .parse()
        .expect("numeric list resource_version");
    let obj3_rv: i64 = rv(&obj3).parse().unwrap();
    assert!(
        list_rv >= obj3_rv,
        "list revision {list_rv} older than the last write {obj3_rv}"
    );
    let items = list["items"].as_array().expect("items");
    if kind.namespaced() {
        assert_eq!(items.len(), 2, "only namespace {ns}: {list}");
        assert_eq!(items[0], created);
        assert_eq!(items[1], obj2);
        let all = srv.get_ok(&kind.all_collection()).await;
        assert_eq!(all["kind"], format!("{}List", kind.kind()));
        assert!(all["metadata"]["resource_version"].is_string());
        assert_eq!(
            all["items"],
            json!([created, obj2, obj3]),
            "every namespace, in key order"
        );
        let other = srv.get_ok(&kind.collection("ns3")).await;
        assert_eq!(other["items"], json!([]));
    } else {
        assert_eq!(list["items"], json!([created, obj2, obj3]));
    }

    // ---- update: client-writable content and labels change, status and read-only fields don't
    let before = srv.get_ok(&obj1).await;
    let mut body = before.clone();
    kind.mutate(&mut body);
    assert_ne!(body, before, "the mutation changes something");
    body["metadata"]["labels"] = json!({"team": "b"});
    body["metadata"]["uid"] = json!("other-uid");
    body["metadata"]["created"] = json!("2001-01-01T00:00:00+00:00");
    if let Some(status) = kind.custom_status() {
        body["status"] = status;
    }
    let updated = srv.put_ok(&obj1, &body).await;
    assert!(
        ts(&updated["metadata"]["modified"]) > ts(&before["metadata"]["modified"]),
        "modified increases: {updated}"
    );
    assert_server_ts(&updated["metadata"]["modified"]);
    assert_eq!(updated["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(
        updated["metadata"]["created"],
        before["metadata"]["created"]
    );
    assert_eq!(updated["metadata"]["labels"], json!({"team": "b"}));
    for key in kind.content_keys() {
        assert_eq!(updated[*key], body[*key], "{key} updated");
    }
    assert!(
        kind.content_keys()
            .iter()
            .any(|key| updated[*key] != before[*key]),
        "content changed"
    );
    assert_eq!(
        updated.get("status"),
        before.get("status"),
        "status unchanged by a spec update"
    );
    assert_ne!(
        rv(&updated),
        rv(&before),
        "a write changes the resource version"
    );
    assert_eq!(srv.get_ok(&obj1).await, updated, "stored equals response");

    // ---- update with a body lacking the read-only fields (uid, created, modified, status)
    let mut minimal = json!({"metadata": {"name": "obj1", "namespace": kind.expected_ns(ns), "labels": {"team": "c"}}});
    for key in kind.content_keys() {
        minimal[*key] = kind.sample("obj1")[*key].clone();
    }
    let updated2 = srv.put_ok(&obj1, &minimal).await;
    for key in kind.content_keys() {
        assert_eq!(updated2[*key], created[*key], "{key} back to the original");
    }
    assert_eq!(updated2["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        updated2["metadata"]["created"],
        created["metadata"]["created"]
    );
    assert_eq!(updated2["metadata"]["labels"], json!({"team": "c"}));
    assert!(ts(&updated2["metadata"]["modified"]) > ts(&updated["metadata"]["modified"]));
    assert_eq!(updated2.get("status"), created.get("status"));

    // ---- no-op update
    let current = srv.get_ok(&obj1).await;
    let noop = srv.put(&obj1, &current).await;
    if kind == K::GlobalMetricsProvider {
        assert_eq!(
            noop.0, 200,
            "upstream answers 200 for GlobalMetricsProvider: {}",
            noop.2
        );
        assert_eq!(noop.2, current);
    } else {
        assert_problem_exact(
            &noop,
            400,
            Some("UPDATE_ERROR"),
            "The body contained no update.",
        );
        assert_eq!(noop.2["type"], format!("{PROBLEM_BASE}#update-error"));
    }
    assert_eq!(
        srv.get_ok(&obj1).await,
        current,
        "a no-op update writes nothing"
    );

    // ---- immutable fields
    let mut body = current.clone();
    body["metadata"]["namespace"] = json!("other");
    kind.mutate(&mut body);
    let r = srv.put(&obj1, &body).await;
    assert_problem_exact(
        &r,
        400,
        Some("UPDATE_ERROR"),
        "Trying to update an immutable field: namespace",
    );
    let mut body = current.clone();
    body["metadata"]["name"] = json!("renamed");
    kind.mutate(&mut body);
    let r = srv.put(&obj1, &body).await;
    assert_problem_exact(
        &r,
        400,
        Some("UPDATE_ERROR"),
        "Trying to update an immutable field: name",
    );
    assert_eq!(
        srv.get_ok(&obj1).await,
        current,
        "rejected updates write nothing"
    );

    // ---- status subresource
    if let Some(custom) = kind.custom_status() {
        let obj2_path = kind.object(ns, "obj2");
        let before = srv.get_ok(&obj2_path).await;
        let mut body = before.clone();
        body["status"] = custom.clone();
        kind.mutate(&mut body);
        body["metadata"]["labels"] = json!({"ignored": "yes"});
        let after = srv.put_ok(&format!("{obj2_path}/status"), &body).await;
        assert_eq!(after["status"], custom, "status replaced");
        assert_eq!(
            strip(&after, true)["metadata"],
            strip(&before, true)["metadata"],
            "metadata unchanged"
        );
        assert_eq!(
            after["metadata"]["modified"], before["metadata"]["modified"],
            "status updates keep modified"
        );
        for key in kind.content_keys() {
            assert_eq!(
                after[*key], before[*key],
                "spec in a status body is ignored"
            );
        }
        assert_ne!(rv(&after), rv(&before));
        assert_eq!(srv.get_ok(&obj2_path).await, after);
        // An identical status body is still accepted (no no-op check).
        let again = srv.put(&format!("{obj2_path}/status"), &after).await;
        assert_eq!(again.0, 200, "{}", again.2);
        assert_eq!(again.2["status"], custom);
        // The status is required in a status update.
        let mut no_status = after.clone();
        no_status.as_object_mut().unwrap().remove("status");
        let r = srv.put(&format!("{obj2_path}/status"), &no_status).await;
        assert_problem(&r, 422, None, "status");
        let r = srv
            .put(&format!("{}/status", kind.object(ns, "missing")), &after)
            .await;
        assert_problem(&r, 404, Some("NOT_FOUND_ERROR"), "does not exist");
    } else {
        let r = srv.put(&format!("{obj1}/status"), &current).await;
        assert_eq!(
            r.0,
            404,
            "no status subresource for {}: {}",
            kind.kind(),
            r.2
        );
    }

    // ---- delete
    let before = srv.get_ok(&obj1).await;
    let (status, _, deleting) = srv.delete(&obj1).await;
    assert_eq!(status, 200, "delete: {deleting}");
    assert_server_ts(&deleting["metadata"]["deleted"]);
    assert_eq!(
        deleting["metadata"]["finalizers"],
        json!(["cascade_deletion"])
    );
    assert_eq!(
        deleting["metadata"]["modified"], before["metadata"]["modified"],
        "delete keeps modified"
    );
    let mut expected = before.clone();
    expected["metadata"]["deleted"] = deleting["metadata"]["deleted"].clone();
    expected["metadata"]["finalizers"] = json!(["cascade_deletion"]);
    assert_eq!(
        strip(&deleting, true),
        strip(&expected, true),
        "delete changes only deleted and finalizers"
    );
    let stored = srv.get_ok(&obj1).await;
    assert_eq!(stored, deleting, "the object stays readable while deleting");
    let listed = srv.get_ok(&kind.collection(ns)).await;
    assert!(
        listed["items"].as_array().unwrap().contains(&deleting),
        "objects in deletion are listed: {listed}"
    );

    // deleting again: unchanged
    let (status, _, again) = srv.delete(&obj1).await;
    assert_eq!(status, 200);
    assert_eq!(again, stored, "a second delete changes nothing");
    assert_eq!(srv.get_ok(&obj1).await, stored);

    // adding a finalizer while deleting
    let mut body = stored.clone();
    body["metadata"]["finalizers"] = json!(["cascade_deletion", "extra"]);
    let r = srv.put(&obj1, &body).await;
    assert_problem_exact(
        &r,
        409,
        Some("UPDATE_ERROR"),
        "Finalizers can only be removed if a deletion is in progress.",
    );
    assert_eq!(srv.get_ok(&obj1).await, stored);

    // removing the last finalizer removes the object
    let mut body = stored.clone();
    body["metadata"]["finalizers"] = json!([]);
    let last = srv.put_ok(&obj1, &body).await;
    assert_eq!(last["metadata"]["finalizers"], json!([]));
    assert_eq!(last["metadata"]["deleted"], stored["metadata"]["deleted"]);
    let gone = srv.get(&obj1).await;
    assert_problem_exact(
        &gone,
        404,
        Some("NOT_FOUND_ERROR"),
        &not_found(kind, "obj1", ns),
    );
    let names = srv.list_names(&kind.collection(ns)).await;
    assert!(
        !names.iter().any(|(_, n)| n == "obj1"),
        "obj1 still listed: {names:?}"
    );

    // ---- force delete
    let forced_path = kind.object(ns, "forced");
    srv.create(kind, ns, "forced").await;
    let (status, _, forced) = srv.delete(&format!("{forced_path}?force=True")).await;
    assert_eq!(status, 200, "{forced}");
    assert_server_ts(&forced["metadata"]["deleted"]);
    if kind.force_delete() {
        assert_eq!(
            forced["metadata"]["finalizers"],
            json!([]),
            "force leaves finalizers alone"
        );
        assert_eq!(
            srv.get(&forced_path).await.0,
            404,
            "force-deleted object is gone"
        );
    } else {
        assert_eq!(
            forced["metadata"]["finalizers"],
            json!(["cascade_deletion"]),
            "force is ignored for {}",
            kind.kind()
        );
        assert_eq!(srv.get_ok(&forced_path).await, forced);
    }
}

/// Finalizers present before the DELETE are kept, `cascade_deletion` goes last, and only
/// removing every finalizer removes the object.
#[rstest]
#[tokio::test]
async fn finalizers_are_removed_one_by_one(
    #[values(Backend::Embedded, Backend::Etcd)] backend: Backend,
    #[values(K::Application, K::Role, K::Cloud)] kind: K,
) {
    let srv = TestServer::start(backend).await;
    let path = kind.object("ns1", "f");
    let mut body = kind.sample("f");
    body["metadata"]["finalizers"] = json!(["kubernetes_resources_deletion"]);
    let created = srv.create_body(kind, "ns1", &body).await;
    assert_eq!(
        created["metadata"]["finalizers"],
        json!(["kubernetes_resources_deletion"])
    );

    let (_, _, deleting) = srv.delete(&path).await;
    assert_eq!(
        deleting["metadata"]["finalizers"],
        json!(["kubernetes_resources_deletion", "cascade_deletion"])
    );

    // Removing one finalizer keeps the object; re-adding it is refused.
    let mut body = deleting.clone();
    body["metadata"]["finalizers"] = json!(["kubernetes_resources_deletion"]);
    let partial = srv.put_ok(&path, &body).await;
    assert_eq!(
        partial["metadata"]["finalizers"],
        json!(["kubernetes_resources_deletion"])
    );
    assert_eq!(srv.get_ok(&path).await, partial);
    let mut body = partial.clone();
    body["metadata"]["finalizers"] = json!(["kubernetes_resources_deletion", "cascade_deletion"]);
    let r = srv.put(&path, &body).await;
    assert_problem_exact(
        &r,
        409,
        Some("UPDATE_ERROR"),
        "Finalizers can only be removed if a deletion is in progress.",
    );

    // Spec changes remain possible while deleting (upstream behaviour).
    let mut body = partial.clone();
    kind.mutate(&mut body);
    let changed = srv.put_ok(&path, &body).await;
    for key in kind.content_keys() {
        assert_eq!(changed[*key], body[*key]);
    }
    assert_eq!(
        changed["metadata"]["deleted"], deleting["metadata"]["deleted"],
        "deleted cannot be cleared"
    );

    let mut body = changed.clone();
    body["metadata"]["finalizers"] = json!([]);
    srv.put_ok(&path, &body).await;
    assert_eq!(srv.get(&path).await.0, 404);
}

/// DELETE appends `cascade_deletion` even when it is already there (upstream quirk Q13).
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn cascade_deletion_is_appended_even_if_present(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let mut body = K::Cluster.sample("c");
    body["metadata"]["finalizers"] = json!(["cascade_deletion"]);
    srv.create_body(K::Cluster, "ns1", &body).await;
    let (status, _, deleting) = srv.delete(&K::Cluster.object("ns1", "c")).await;
    assert_eq!(status, 200);
    assert_eq!(
        deleting["metadata"]["finalizers"],
        json!(["cascade_deletion", "cascade_deletion"])
    );
}

/// Lists come in storage key order: byte order of `<prefix><namespace>/<name>`, so
/// namespace `a-b` sorts before namespace `a`, as with upstream on etcd.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn lists_are_in_key_order(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    for (ns, name) in [("a", "x"), ("a-b", "x"), ("b", "A"), ("a", "B"), ("b", "_")] {
        srv.create(K::Application, ns, name).await;
    }
    let names = srv.list_names(&K::Application.all_collection()).await;
    let expected: Vec<(Option<String>, String)> =
        [("a-b", "x"), ("a", "B"), ("a", "x"), ("b", "A"), ("b", "_")]
            .iter()
            .map(|(n, m)| (Some(n.to_string()), m.to_string()))
            .collect();
    assert_eq!(names, expected);
    for (ns, name) in [("z", "b"), ("z", "a"), ("z", "B")] {
        srv.create(K::Role, ns, &format!("{ns}{name}")).await;
    }
    let names: Vec<String> = srv
        .list_names(&K::Role.all_collection())
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, vec!["zB", "za", "zb"]);
}

/// Responses use Python's JSON separators (`", "` and `": "`).
#[rstest]
#[tokio::test]
async fn responses_use_python_separators(
    #[values(Backend::Embedded, Backend::Etcd)] backend: Backend,
) {
    let srv = TestServer::start(backend).await;
    srv.create(K::Metric, "ns1", "m1").await;
    let r = srv
        .raw(
            reqwest::Method::GET,
            &K::Metric.object("ns1", "m1"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.starts_with("{\"api\": \"core\", \"kind\": \"Metric\", \"metadata\": {"),
        "{text}"
    );
    assert!(
        text.contains("\"min\": 0.0, \"max\": 1.0"),
        "floats stay floats: {text}"
    );
    assert!(!text.contains("\":\""), "no compact separators: {text}");
    let list = srv
        .raw(
            reqwest::Method::GET,
            &K::Metric.collection("ns1"),
            None,
            &[],
        )
        .await;
    assert!(
        list.text()
            .starts_with("{\"api\": \"core\", \"kind\": \"MetricList\", "),
        "{}",
        list.text()
    );
}
