//! The client against a real in-process API server (embedded store).

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use krake_api_server::config::StorageConfig;
use krake_api_server::{Config, RunningServer};
use krake_client::{Client, ClientConfig, Error, Method, WatchEvent};
use krake_crds::core::Role;
use krake_crds::kubernetes::{Application, ApplicationState, Cluster};
use krake_crds::{Metadata, Resource, ResourceRef};
use serde_json::json;

async fn start(config: Config) -> (RunningServer, Client) {
    let server = krake_api_server::start(config)
        .await
        .expect("API server starts");
    let client = Client::new(ClientConfig {
        timeout: Duration::from_secs(10),
        retries: 0,
        ..ClientConfig::new(format!("http://{}", server.addr))
    })
    .unwrap();
    (server, client)
}

async fn server(dir: &Path) -> (RunningServer, Client) {
    start(Config::for_embedded(dir)).await
}

fn role(name: &str) -> Role {
    Role::new(Metadata::named(name), vec![])
}

fn app(namespace: &str, name: &str) -> Application {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "constraints": {"cluster": {"labels": ["location is DE"]}},
            "manifest": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
                          "spec": {"containers": [{"name": "echo", "image": "hashicorp/http-echo"}]}}]
        }
    }))
    .unwrap()
}

fn cluster(namespace: &str, name: &str) -> Cluster {
    Cluster::test(namespace, name).label("location", "DE")
}

fn rv<R: Resource>(obj: &R) -> i64 {
    obj.metadata()
        .resource_version
        .as_deref()
        .expect("resource_version set")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn crud_of_a_global_kind_with_conditional_update() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    let roles = client.api::<Role>();

    let created = roles.create(&role("r1")).await.unwrap();
    assert!(!created.metadata.uid.is_empty());
    let first_rv = rv(&created);

    let got = roles.get(None, "r1").await.unwrap();
    assert_eq!(got, created);

    let list = roles.list(None).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let list_rv: i64 = list.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(list_rv >= first_rv);

    // Conditional update with the current revision succeeds...
    let mut changed = got.clone();
    changed.metadata.labels.insert("team".into(), json!("a"));
    let updated = roles.update(&changed).await.unwrap();
    assert_eq!(updated.metadata.labels["team"], json!("a"));
    assert!(rv(&updated) > first_rv);

    // ...with a stale one it is a typed conflict and changes nothing.
    let mut stale = got.clone();
    stale.metadata.labels.insert("team".into(), json!("b"));
    let err = roles.update(&stale).await.unwrap_err();
    match &err {
        Error::Conflict { title, detail } => {
            assert_eq!(title.as_deref(), Some("TRANSACTION_ERROR"));
            assert!(detail.contains("resource_version"), "{detail}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        roles.get(None, "r1").await.unwrap().metadata.labels["team"],
        json!("a")
    );

    // Without resource_version the update is unconditional (upstream behaviour).
    stale.metadata.resource_version = None;
    roles.update(&stale).await.unwrap();
    assert_eq!(
        roles.get(None, "r1").await.unwrap().metadata.labels["team"],
        json!("b")
    );

    let deleted = roles.delete(None, "r1", false).await.unwrap();
    assert_eq!(deleted.metadata.name, "r1");
    // Roles have no finalizers to wait for: deleted objects eventually vanish, but
    // marking as deleted is the documented DELETE effect.
    assert!(deleted.metadata.deleted.is_some());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn namespaced_crud_list_scopes_and_force_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    let apps = client.api::<Application>();

    apps.create(&app("ns1", "a1")).await.unwrap();
    apps.create(&app("ns1", "a2")).await.unwrap();
    apps.create(&app("ns2", "a1")).await.unwrap();

    let ns1 = apps.list(Some("ns1")).await.unwrap();
    assert_eq!(ns1.items.len(), 2);
    assert!(
        ns1.items
            .iter()
            .all(|a| a.metadata.namespace.as_deref() == Some("ns1"))
    );
    let all = apps.list(None).await.unwrap();
    assert_eq!(all.items.len(), 3);

    let got = apps.get(Some("ns2"), "a1").await.unwrap();
    assert_eq!(got.metadata.namespace.as_deref(), Some("ns2"));

    // A normal DELETE marks the object and appends the cascade finalizer.
    let marked = apps.delete(Some("ns1"), "a2", false).await.unwrap();
    assert!(marked.metadata.deleted.is_some());
    assert_eq!(
        marked.metadata.finalizers,
        vec!["cascade_deletion".to_string()]
    );
    assert!(apps.get(Some("ns1"), "a2").await.is_ok());
    // force removes it at once.
    apps.delete(Some("ns1"), "a2", true).await.unwrap();
    assert!(
        apps.get(Some("ns1"), "a2")
            .await
            .unwrap_err()
            .is_not_found()
    );

    // A namespaced object without namespace is refused before any request.
    let mut no_ns = app("x", "a3");
    no_ns.metadata.namespace = None;
    assert!(matches!(
        apps.create(&no_ns).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        apps.get(None, "a1").await,
        Err(Error::InvalidRequest(_))
    ));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn problems_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    let apps = client.api::<Application>();

    match apps.get(Some("ns1"), "missing").await.unwrap_err() {
        Error::NotFound { detail } => {
            assert_eq!(
                detail,
                "'Application' 'missing' does not exist in namespace 'ns1'"
            );
        }
        other => panic!("expected not found, got {other:?}"),
    }

    apps.create(&app("ns1", "a1")).await.unwrap();
    match apps.create(&app("ns1", "a1")).await.unwrap_err() {
        Error::Conflict { title, detail } => {
            assert_eq!(title.as_deref(), Some("RESOURCE_ALREADY_EXISTS"));
            assert!(detail.contains("already exists"), "{detail}");
        }
        other => panic!("expected conflict, got {other:?}"),
    }

    // Invalid label: 422 validation problem.
    let mut bad = app("ns1", "a2");
    bad.metadata.labels.insert("bad key!".into(), json!("v"));
    match apps.create(&bad).await.unwrap_err() {
        Error::Api { status, detail, .. } => {
            assert_eq!(status, 422);
            assert!(detail.contains("labels"), "{detail}");
        }
        other => panic!("expected 422, got {other:?}"),
    }

    // A no-op update: 400 UPDATE_ERROR.
    let current = apps.get(Some("ns1"), "a1").await.unwrap();
    match apps.update(&current).await.unwrap_err() {
        Error::Api { status, title, .. } => {
            assert_eq!(status, 400);
            assert_eq!(title.as_deref(), Some("UPDATE_ERROR"));
        }
        other => panic!("expected 400, got {other:?}"),
    }

    // Untyped requests share the error mapping.
    let err = client
        .request_json::<serde_json::Value>(Method::GET, "/no/such/route", None)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let version: serde_json::Value = client.request_json(Method::GET, "/", None).await.unwrap();
    assert!(version.get("version").is_some());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn status_bindings_and_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    let apps = client.api::<Application>();
    let clusters = client.api::<Cluster>();

    let c1 = clusters.create(&cluster("ns1", "c1")).await.unwrap();
    let mut a1 = apps.create(&app("ns1", "a1")).await.unwrap();

    // Status write (conditional on the revision we hold).
    a1.status.state = ApplicationState::Running;
    let written = apps.update_status(&a1).await.unwrap();
    assert_eq!(written.status.state, ApplicationState::Running);
    // Replaying the same (now stale) status write conflicts.
    assert!(apps.update_status(&a1).await.unwrap_err().is_conflict());

    let cluster_ref = ResourceRef {
        api: "kubernetes".into(),
        namespace: Some("ns1".into()),
        kind: "Cluster".into(),
        name: c1.metadata.name.clone(),
    };
    let bound = client
        .bind_application("ns1", "a1", cluster_ref.clone())
        .await
        .unwrap();
    assert_eq!(bound.status.scheduled_to.as_ref(), Some(&cluster_ref));
    assert!(bound.metadata.owners.contains(&cluster_ref));
    assert!(bound.status.scheduled.is_some());

    let cloud_ref = ResourceRef {
        api: "infrastructure".into(),
        namespace: Some("ns1".into()),
        kind: "Cloud".into(),
        name: "cloud1".into(),
    };
    let bound = client
        .bind_cluster("ns1", "c1", cloud_ref.clone())
        .await
        .unwrap();
    assert_eq!(bound.status.scheduled_to.as_ref(), Some(&cloud_ref));
    assert!(bound.metadata.owners.contains(&cloud_ref));

    // Binding a missing object: 404.
    assert!(
        client
            .bind_application("ns1", "missing", cluster_ref.clone())
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Hooks: wrong token → 401; retry outside DEGRADED → 400.
    match client.complete("ns1", "a1", "wrong").await.unwrap_err() {
        Error::Api { status, .. } => assert_eq!(status, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    match client.shutdown("ns1", "a1", "wrong").await.unwrap_err() {
        Error::Api { status, .. } => assert_eq!(status, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    match client.retry("ns1", "a1").await.unwrap_err() {
        Error::Api { status, detail, .. } => {
            assert_eq!(status, 400);
            assert!(
                detail.contains("No migration or deletion retry needed"),
                "{detail}"
            );
        }
        other => panic!("expected 400, got {other:?}"),
    }

    // With the right token the complete hook succeeds.
    let mut current = apps.get(Some("ns1"), "a1").await.unwrap();
    current.status.complete_token = Some("t0ken".into());
    apps.update_status(&current).await.unwrap();
    let completed = client.complete("ns1", "a1", "t0ken").await.unwrap();
    assert_eq!(completed.status.state, ApplicationState::ReadyForAction);
    assert!(completed.metadata.deleted.is_some());

    // DEGRADED apps can be retried.
    let mut current = apps.get(Some("ns1"), "a1").await.unwrap();
    current.status.state = ApplicationState::Degraded;
    apps.update_status(&current).await.unwrap();
    let retried = client.retry("ns1", "a1").await.unwrap();
    assert_eq!(retried.status.state, ApplicationState::WaitingForCleaning);
    server.stop().await.unwrap();
}

async fn next_event<R: Resource>(
    stream: &mut futures::stream::BoxStream<'static, krake_client::Result<WatchEvent<R>>>,
) -> WatchEvent<R> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("event within 10 s")
        .expect("stream open")
        .expect("event, not error")
}

/// Wait until the server counts `n` open watch streams (its `/metrics`).
async fn wait_for_watchers(client: &Client, n: usize) {
    let url = format!("{}/metrics", client.base_url());
    let expected = format!("krake_api_open_watchers {n}");
    for _ in 0..200 {
        let response = client
            .transport()
            .get_json(&url, Duration::from_secs(5))
            .await
            .unwrap();
        if String::from_utf8_lossy(&response.body)
            .lines()
            .any(|l| l == expected)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server never counted {n} open watchers");
}

fn summary<R: Resource>(event: &WatchEvent<R>) -> String {
    let t = match event {
        WatchEvent::Added(_) => "ADDED",
        WatchEvent::Modified(_) => "MODIFIED",
        WatchEvent::Deleted(_) => "DELETED",
    };
    format!("{t} {}", event.object().metadata().name)
}

#[tokio::test]
async fn watch_live_replay_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    let roles = client.api::<Role>();
    let apps = client.api::<Application>();

    // Live watch of one namespace: events of other namespaces are not delivered.
    let mut live = apps.watch(Some("ns1"), None);
    // The request is sent on first poll; make sure it is established before writing.
    let pending = tokio::time::timeout(Duration::from_millis(100), live.next()).await;
    assert!(pending.is_err(), "no event expected yet");
    wait_for_watchers(&client, 1).await;
    apps.create(&app("ns2", "other")).await.unwrap();
    apps.create(&app("ns1", "mine")).await.unwrap();
    assert_eq!(summary(&next_event(&mut live).await), "ADDED mine");

    // Replay from a list revision.
    let start = roles.list(None).await.unwrap().resource_version.unwrap();
    let created = roles.create(&role("w1")).await.unwrap();
    let mut changed = created.clone();
    changed.metadata.labels.insert("x".into(), json!("y"));
    roles.update(&changed).await.unwrap();
    roles.delete(None, "w1", false).await.unwrap(); // marks deleted: MODIFIED
    let mut last = roles.get(None, "w1").await.unwrap();
    last.metadata.finalizers.clear(); // removes the object: DELETED
    roles.update(&last).await.unwrap();

    let mut replay = roles.watch(None, Some(&start));
    let mut events = Vec::new();
    for _ in 0..4 {
        events.push(next_event(&mut replay).await);
    }
    let names: Vec<String> = events.iter().map(summary).collect();
    assert_eq!(
        names,
        vec!["ADDED w1", "MODIFIED w1", "MODIFIED w1", "DELETED w1"]
    );
    let revisions: Vec<i64> = events
        .iter()
        .map(|e| e.resource_version().unwrap().parse().unwrap())
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");

    // Resume after the second event: only the later ones come.
    let mut resumed = roles.watch(None, events[1].resource_version());
    assert_eq!(summary(&next_event(&mut resumed).await), "MODIFIED w1");
    assert_eq!(summary(&next_event(&mut resumed).await), "DELETED w1");
    // Resuming after the last event delivers nothing more until a new change.
    let mut tail = roles.watch(None, events[3].resource_version());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), tail.next())
            .await
            .is_err()
    );
    roles.create(&role("w2")).await.unwrap();
    assert_eq!(summary(&next_event(&mut tail).await), "ADDED w2");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_embedded(dir.path());
    config.storage = StorageConfig::Embedded {
        data_dir: dir.path().to_path_buf(),
        history_limit: 4,
    };
    config.watch_cache_events = 4;
    let (server, client) = start(config).await;
    let roles = client.api::<Role>();

    let start = roles.list(None).await.unwrap().resource_version.unwrap();
    for i in 0..20 {
        roles.create(&role(&format!("r{i}"))).await.unwrap();
    }
    let mut watch = roles.watch(None, Some(&start));
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .expect("one item");
    match first {
        Err(Error::Gone { detail }) => assert!(detail.contains("too old"), "{detail}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    assert!(watch.next().await.is_none(), "the stream ends after Gone");

    // A fresh list and a watch from its revision work.
    let list = roles.list(None).await.unwrap();
    assert_eq!(list.items.len(), 20);
    let mut watch = roles.watch(None, list.resource_version.as_deref());
    roles.create(&role("late")).await.unwrap();
    assert_eq!(summary(&next_event(&mut watch).await), "ADDED late");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn watch_ends_when_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    let roles = client.api::<Role>();
    let mut watch = roles.watch(None, None);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch.next())
            .await
            .is_err()
    );
    server.stop().await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("the stream ends");
    assert!(
        matches!(end, None | Some(Err(Error::Transport(_)))),
        "{end:?}"
    );
}
