//! Reflectors and controllers against a real in-process API server (embedded store),
//! real clock.

use std::future::ready;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use krake_api_server::Config;
use krake_api_server::config::StorageConfig;
use krake_api_server::server::{open_store, start_with_store};
use krake_client::transport::{Transport, TransportConfig};
use krake_client::{Api, Client, ClientConfig};
use krake_crds::Metadata;
use krake_crds::core::Role;
use krake_runtime::{
    Action, ApiSource, Backoff, CancellationToken, Controller, ControllerConfig, Metrics,
    OpsServer, Readiness, Reflector, ReflectorConfig, default_error_policy, prometheus_client,
};
use krake_testkit::{eventually, free_port};
use serde_json::json;

fn config(dir: &std::path::Path, port: u16) -> Config {
    let mut config = Config::for_embedded(dir);
    config.bind = SocketAddr::from(([127, 0, 0, 1], port));
    config.storage = StorageConfig::Embedded {
        data_dir: dir.to_path_buf(),
        history_limit: 5,
    };
    config.watch_cache_events = 5;
    config
}

fn api_client(port: u16) -> Client {
    Client::new(ClientConfig {
        timeout: Duration::from_secs(5),
        retries: 0,
        ..ClientConfig::new(format!("http://127.0.0.1:{port}"))
    })
    .unwrap()
}

fn reflector_config() -> ReflectorConfig {
    ReflectorConfig {
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_millis(500)),
        relist_interval: None,
        healthy_watch: Duration::from_secs(1),
    }
}

/// How long a change may take to reach a reflector or a controller.
const WAIT: Duration = Duration::from_secs(15);

fn names(store: &krake_runtime::Store<Role>) -> Vec<String> {
    let mut names: Vec<String> = store
        .list()
        .iter()
        .map(|r| r.metadata.name.clone())
        .collect();
    names.sort();
    names
}

async fn remove_role(api: &Api<Role>, name: &str) {
    api.delete(None, name, false).await.unwrap();
    let mut last = api.get(None, name).await.unwrap();
    last.metadata.finalizers.clear();
    api.update(&last).await.unwrap();
}

#[tokio::test]
async fn reflector_resumes_across_restarts_and_relists_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = open_store(&config(dir.path(), port)).await.unwrap();
    let server = start_with_store(config(dir.path(), port), store.clone())
        .await
        .unwrap();
    let client = api_client(port);
    let roles = client.api::<Role>();
    for name in ["a", "b"] {
        roles
            .create(&Role::new(Metadata::named(name), vec![]))
            .await
            .unwrap();
    }

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::new(&mut registry);
    let reflector = Reflector::new(ApiSource::<Role>::all(&client), reflector_config());
    reflector.set_metrics(&metrics);
    let cache = reflector.store();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let r = reflector.clone();
        let s = shutdown.clone();
        async move { r.run(s).await }
    });
    cache.wait_until_ready().await;
    assert_eq!(names(&cache), ["a", "b"]);
    roles
        .create(&Role::new(Metadata::named("c"), vec![]))
        .await
        .unwrap();
    eventually("c seen", WAIT, || {
        let seen = names(&cache);
        ready(if seen == ["a", "b", "c"] {
            Ok(())
        } else {
            Err(seen)
        })
    })
    .await;

    // API server restart: the reflector reconnects and resumes.
    server.stop().await.unwrap();
    let server = start_with_store(config(dir.path(), port), store.clone())
        .await
        .unwrap();
    roles
        .create(&Role::new(Metadata::named("d"), vec![]))
        .await
        .unwrap();
    eventually("d seen after restart", WAIT, || {
        let seen = names(&cache);
        ready(if seen.contains(&"d".to_string()) {
            Ok(())
        } else {
            Err(seen)
        })
    })
    .await;

    // While the reflector cannot reach the API, b is removed and so many changes happen
    // that the history no longer covers the reflector's revision.
    server.stop().await.unwrap();
    let other_port = free_port();
    let hidden = start_with_store(config(dir.path(), other_port), store.clone())
        .await
        .unwrap();
    let other = api_client(other_port).api::<Role>();
    remove_role(&other, "b").await;
    for i in 0..10 {
        other
            .create(&Role::new(Metadata::named(format!("e{i}")), vec![]))
            .await
            .unwrap();
    }
    hidden.stop().await.unwrap();
    let server = start_with_store(config(dir.path(), port), store.clone())
        .await
        .unwrap();

    // Only a re-list can notice that b is gone (its deletion is out of the history).
    eventually("converged after 410", WAIT, || {
        let n = names(&cache);
        ready(if !n.contains(&"b".to_string()) && n.len() == 13 {
            Ok(())
        } else {
            Err(n)
        })
    })
    .await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(r#"krake_reflector_failures_total{reflector="core/Role",operation="watch"}"#),
        "{text}"
    );

    shutdown.cancel();
    task.await.unwrap();
    server.stop().await.unwrap();
}

/// Labels every Role with `managed=<desired>`; `desired` lives outside the API.
async fn label_roles(
    role: Arc<Role>,
    ctx: Arc<(Api<Role>, Mutex<String>)>,
) -> Result<Action, krake_client::Error> {
    let (api, desired) = ctx.as_ref();
    let desired = desired.lock().unwrap().clone();
    if role.metadata.deleted.is_some()
        || role.metadata.labels.get("managed") == Some(&json!(desired))
    {
        return Ok(Action::await_change());
    }
    let mut changed = (*role).clone();
    changed
        .metadata
        .labels
        .insert("managed".into(), json!(desired));
    // Conditional on the revision the store holds: a stale cache gives 409 and a retry.
    api.update(&changed).await?;
    Ok(Action::await_change())
}

fn controller_config() -> ControllerConfig {
    ControllerConfig {
        concurrency: 2,
        resync_interval: Some(Duration::from_secs(1)),
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
        shutdown_grace: Duration::from_secs(5),
    }
}

async fn labels(api: &Api<Role>) -> Vec<(String, Option<String>)> {
    let mut out: Vec<_> = api
        .list(None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| {
            (
                r.metadata.name.clone(),
                r.metadata
                    .labels
                    .get("managed")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn controller_repairs_changes_made_while_stopped_and_on_resync() {
    let dir = tempfile::tempdir().unwrap();
    let server = krake_api_server::start(Config::for_embedded(dir.path()))
        .await
        .unwrap();
    let port = server.addr.port();
    let client = api_client(port);
    let roles = client.api::<Role>();
    for name in ["r1", "r2"] {
        roles
            .create(&Role::new(Metadata::named(name), vec![]))
            .await
            .unwrap();
    }
    let ctx = Arc::new((roles.clone(), Mutex::new("v1".to_string())));
    let all = |v: &str| {
        let v = Some(v.to_string());
        move |labels: &Vec<(String, Option<String>)>| labels.iter().all(|(_, l)| *l == v)
    };

    // First run: everything labelled.
    let shutdown = CancellationToken::new();
    let controller = Controller::new("labeller", Reflector::all(&client), controller_config());
    let run = tokio::spawn(
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(label_roles, default_error_policy, ctx.clone()),
    );
    eventually("labelled v1", WAIT, || {
        let roles = roles.clone();
        let check = all("v1");
        async move { check(&labels(&roles).await) }
    })
    .await;
    shutdown.cancel();
    run.await.unwrap();

    // While the controller is stopped: a label removed, a role created.
    let mut r1 = roles.get(None, "r1").await.unwrap();
    r1.metadata.labels.remove("managed");
    roles.update(&r1).await.unwrap();
    roles
        .create(&Role::new(Metadata::named("r3"), vec![]))
        .await
        .unwrap();

    // A new controller repairs both from the initial list.
    let shutdown = CancellationToken::new();
    let controller = Controller::new("labeller", Reflector::all(&client), controller_config());
    let run = tokio::spawn(
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(label_roles, default_error_policy, ctx.clone()),
    );
    eventually("repaired after restart", WAIT, || {
        let roles = roles.clone();
        let check = all("v1");
        async move {
            let l = labels(&roles).await;
            l.len() == 3 && check(&l)
        }
    })
    .await;

    // The desired state changes without any API event: the resync applies it.
    *ctx.1.lock().unwrap() = "v2".to_string();
    eventually("resync applied v2", WAIT, || {
        let roles = roles.clone();
        let check = all("v2");
        async move { check(&labels(&roles).await) }
    })
    .await;
    shutdown.cancel();
    run.await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn ops_endpoints_follow_the_controller() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let client = api_client(port);

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::new(&mut registry);
    let reflector = Reflector::new(ApiSource::<Role>::all(&client), reflector_config());
    let controller = Controller::new("ops", reflector, controller_config()).with_metrics(&metrics);
    let readiness = Readiness::new();
    readiness.add(&controller.readiness());
    let shutdown = CancellationToken::new();
    let ops = OpsServer::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        readiness,
        Arc::new(registry),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", ops.local_addr());
    let http = Transport::new(&TransportConfig::default()).unwrap();
    let get = |path: &str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move { http.get_json(&url, Duration::from_secs(5)).await.unwrap() }
    };

    let ctx = Arc::new((client.api::<Role>(), Mutex::new("v1".to_string())));
    let run = tokio::spawn(
        controller
            .graceful_shutdown_on(shutdown.clone().cancelled_owned())
            .run(label_roles, default_error_policy, ctx),
    );

    // No API server yet: alive, not ready.
    assert_eq!(get("/livez").await.status.as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get("/readyz").await.status.as_u16(), 503);

    let server = krake_api_server::start(config(dir.path(), port))
        .await
        .unwrap();
    client
        .api::<Role>()
        .create(&Role::new(Metadata::named("x"), vec![]))
        .await
        .unwrap();
    eventually("ready once synced", WAIT, || async move {
        get("/readyz").await.status.as_u16() == 200
    })
    .await;
    eventually("x reconciled", WAIT, || async move {
        let body = get("/metrics").await.body;
        String::from_utf8_lossy(&body)
            .contains(r#"krake_controller_reconciles_total{controller="ops",result="success"}"#)
    })
    .await;
    let metrics_response = get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics_response.body).to_string();
    assert!(
        metrics_response.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
    );
    for name in [
        "krake_controller_reconcile_duration_seconds_bucket",
        r#"krake_controller_queue_depth{controller="ops"}"#,
        r#"krake_reflector_failures_total{reflector="core/Role",operation="list"}"#,
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }

    shutdown.cancel();
    run.await.unwrap();
    ops.wait().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn finalizer_acts_only_when_its_finalizer_is_last_and_pops_it_conditionally() {
    use krake_runtime::finalizer::{Event, add_finalizer, finalizer};

    let dir = tempfile::tempdir().unwrap();
    let server = krake_api_server::start(Config::for_embedded(dir.path()))
        .await
        .unwrap();
    let client = api_client(server.addr.port());
    let roles = client.api::<Role>();
    const MINE: &str = "mine";
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let run = |obj: Role| {
        let roles = roles.clone();
        let seen = seen.clone();
        async move {
            finalizer(&roles, MINE, Arc::new(obj), |event| async move {
                let what = match &event {
                    Event::Apply(o) => format!("apply {}", o.metadata.name),
                    Event::Cleanup(o) => format!("cleanup {}", o.metadata.name),
                };
                seen.lock().unwrap().push(what);
                Ok::<_, krake_client::Error>(Action::requeue(Duration::from_secs(7)))
            })
            .await
        }
    };

    // Not deleted: Apply, and the finalizer is not added.
    let created = roles
        .create(&Role::new(Metadata::named("r"), vec![]))
        .await
        .unwrap();
    assert_eq!(
        run(created.clone()).await.unwrap(),
        Action::requeue(Duration::from_secs(7))
    );
    assert!(
        roles
            .get(None, "r")
            .await
            .unwrap()
            .metadata
            .finalizers
            .is_empty()
    );
    // The controller adds it itself, once.
    let added = add_finalizer(&roles, MINE, &created).await.unwrap();
    let again = add_finalizer(&roles, MINE, &added).await.unwrap();
    assert_eq!(again.metadata.finalizers, [MINE]);

    // Deleted: the API appends cascade_deletion, which is now last: not our turn.
    let deleted = roles.delete(None, "r", false).await.unwrap();
    assert_eq!(deleted.metadata.finalizers, [MINE, "cascade_deletion"]);
    assert_eq!(run(deleted).await.unwrap(), Action::await_change());
    assert_eq!(seen.lock().unwrap().as_slice(), ["apply r"]);

    // Once cascade_deletion is gone, ours is last: Cleanup, then popped, although the
    // copy we hold is stale (a conditional update that conflicts is retried).
    let mut current = roles.get(None, "r").await.unwrap();
    current.metadata.finalizers.pop();
    let stale = roles.update(&current).await.unwrap();
    let mut fresh = stale.clone();
    fresh.metadata.finalizers = vec![MINE.into()];
    fresh.metadata.labels.insert("touched".into(), json!("yes"));
    // A concurrent writer may only remove finalizers: relabel through the labels alone.
    roles.update(&fresh).await.unwrap();
    assert_eq!(
        run(stale.clone()).await.unwrap(),
        Action::requeue(Duration::from_secs(7))
    );
    assert_eq!(seen.lock().unwrap().as_slice(), ["apply r", "cleanup r"]);
    // No finalizer left: the API removed the object.
    assert!(roles.get(None, "r").await.unwrap_err().is_not_found());
    // A stale copy of an object already released or gone: cleanup runs again (it must
    // be idempotent), the removal finds nothing to do.
    run(stale).await.unwrap();
}
