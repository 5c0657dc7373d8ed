//! Path extraction: a namespace or name segment that does not percent-decode to UTF-8, or
//! that breaks the name rule, is refused with a 422 problem before authorization, on
//! every route shape of every kind. Such a request never reaches a handler without its
//! namespace (which the authorizer would read as a global or all-namespaces request),
//! never answers 500, and never writes.

use std::time::Duration;

use crate::common::{K, Resp, all_kinds, assert_problem_type};
use crate::rbac::{Api, Env, bind, put_role, role, rule};
use krake_api_server::storage::Store;
use reqwest::Method;
use serde_json::{Value, json};

/// Segments that do not percent-decode to UTF-8.
const UNDECODABLE: [&str; 4] = ["%FF", "%C0%AF", "a%80b", "%ED%A0%80"];

/// Segments that decode, but to no valid namespace or name.
fn invalid() -> Vec<String> {
    vec![
        "a%20b".into(),
        "a%2Fb".into(),
        "-x".into(),
        "a%00b".into(),
        "x".repeat(300),
    ]
}

fn bad_segments() -> Vec<String> {
    UNDECODABLE
        .iter()
        .map(|s| s.to_string())
        .chain(invalid())
        .collect()
}

/// A request that must end (a watch that wrongly started would stream forever).
async fn send(api: &Api, method: Method, path: &str, body: Option<&Value>) -> Resp {
    tokio::time::timeout(
        Duration::from_secs(20),
        api.send(method.clone(), path, body),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {path}: no complete answer in time"))
}

fn assert_refused(resp: &Resp, what: &str, status: u16) {
    assert_eq!(resp.0.as_u16(), status, "{what}: {}", resp.2);
    assert_problem_type(&resp.1);
    assert_eq!(resp.2["status"], status, "{what}: problem body {}", resp.2);
    assert!(
        resp.2["detail"].is_string(),
        "{what}: problem body {}",
        resp.2
    );
}

/// Every route shape of `kind` with `bad` in the namespace position (namespaced kinds)
/// and in the name position; method, path, body and the expected status.
fn cases(kind: K, bad: &str) -> Vec<(Method, String, Option<Value>, u16)> {
    let sample = kind.sample("x");
    let mut cases = Vec::new();
    if kind.namespaced() {
        let collection = format!("/{}/namespaces/{bad}/{}", kind.api(), kind.plural());
        let object = format!("{collection}/x");
        cases.extend([
            (Method::POST, collection.clone(), Some(sample.clone()), 422),
            (Method::GET, collection.clone(), None, 422),
            (
                Method::GET,
                format!("{collection}?watch&heartbeat=0"),
                None,
                422,
            ),
            (Method::GET, object.clone(), None, 422),
            (Method::PUT, object.clone(), Some(sample.clone()), 422),
            (Method::DELETE, object.clone(), None, 422),
        ]);
        if kind.has_status() {
            cases.push((
                Method::PUT,
                format!("{object}/status"),
                Some(sample.clone()),
                422,
            ));
        }
        // The all-namespaces list has no segment; one more is no route at all.
        cases.push((
            Method::GET,
            format!("{}/{bad}", kind.all_collection()),
            None,
            404,
        ));
    }
    let object = kind.object("dev", bad);
    cases.extend([
        (Method::GET, object.clone(), None, 422),
        (Method::PUT, object.clone(), Some(sample.clone()), 422),
        (Method::DELETE, object.clone(), None, 422),
        (
            Method::DELETE,
            format!("{object}?force=True&blocking=deleted"),
            None,
            422,
        ),
    ]);
    if kind.has_status() {
        cases.push((Method::PUT, format!("{object}/status"), Some(sample), 422));
    }
    cases
}

/// Every key and value under `/`, and the store revision.
async fn snapshot(store: &dyn Store) -> (Vec<(String, Vec<u8>)>, i64) {
    let (kvs, _) = store.list("/").await.expect("list the store");
    let revision = store.current_revision().await.expect("store revision");
    (
        kvs.into_iter().map(|kv| (kv.key, kv.value)).collect(),
        revision,
    )
}

#[tokio::test]
async fn bad_path_segments_are_refused_on_every_route_of_every_kind() {
    let mut env = Env::new().await;
    let admin = env.admin().await;
    // One object per kind, so that a request reaching a handler would find something.
    for kind in all_kinds() {
        admin.create(kind, "dev", "x").await;
    }
    let before = snapshot(&*env.store).await;
    for kind in all_kinds() {
        for bad in bad_segments() {
            for (method, path, body, status) in cases(kind, &bad) {
                let what = format!("{} {method} {path}", kind.kind());
                let resp = send(&admin, method, &path, body.as_ref()).await;
                assert_refused(&resp, &what, status);
                if status == 422 {
                    let detail = resp.2["detail"].as_str().unwrap_or_default();
                    assert!(detail.contains("URL"), "{what}: detail {detail:?}");
                }
            }
        }
    }
    assert!(
        snapshot(&*env.store).await == before,
        "a refused request changed the store"
    );
}

/// The bypass itself: a user who may create only in `dev` stores nothing through a
/// segment that cannot be decoded (before the fix: authorized with no namespace and
/// stored with `namespace: null`), and sees nothing of other namespaces.
#[tokio::test]
async fn a_user_limited_to_one_namespace_cannot_escape_it_through_bad_segments() {
    let mut env = Env::new().await;
    let admin = env.admin().await;
    for ns in ["dev", "prod"] {
        admin.create(K::Application, ns, "app").await;
    }
    put_role(
        &admin,
        &role(
            "dev-apps",
            json!([rule(
                "kubernetes",
                &["applications"],
                &["dev"],
                &["create", "list", "get", "update", "delete"]
            )]),
        ),
    )
    .await;
    bind(&admin, "dave", &["dave"], &["dev-apps"]).await;
    let dave = env.user("dave").await;
    // The fixture grants what it should: dave creates in dev, not in prod.
    dave.create(K::Application, "dev", "mine").await;
    let prod = send(
        &dave,
        Method::POST,
        &K::Application.collection("prod"),
        Some(&K::Application.sample("evil")),
    )
    .await;
    assert_eq!(prod.0.as_u16(), 403, "{}", prod.2);

    let before = snapshot(&*env.store).await;
    let mut evil = K::Application.sample("evil");
    evil["metadata"]["namespace"] = Value::Null;
    for bad in bad_segments() {
        for (method, path, body, status) in cases(K::Application, &bad) {
            let body = match (&method, body) {
                (&Method::POST, Some(_)) => Some(evil.clone()),
                (_, body) => body,
            };
            let what = format!("dave: {method} {path}");
            let resp = send(&dave, method, &path, body.as_ref()).await;
            assert_refused(&resp, &what, status);
        }
    }
    let after = snapshot(&*env.store).await;
    assert!(
        after == before,
        "a refused request of dave changed the store"
    );
    let keys: Vec<&str> = after.0.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.iter()
            .filter(|k| k.starts_with("/kubernetes/applications/"))
            .all(|k| k.split('/').count() == 5),
        "an application stored without a namespace: {keys:?}"
    );
}
