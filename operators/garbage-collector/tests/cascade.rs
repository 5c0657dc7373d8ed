//! The garbage collector against a real in-process Krake API server (embedded store).
//!
//! The collector runs without periodic resync and with a long wait requeue, so every
//! cascade here is driven by watch events alone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use krake_api_server::{Config as ApiConfig, RunningServer};
use krake_client::{Client, ClientConfig, WatchEvent};
use krake_crds::core::Role;
use krake_crds::infrastructure::Cloud;
use krake_crds::kubernetes::{Application, Cluster};
use krake_crds::{Metadata, Resource, ResourceRef};
use krake_garbage_collector::{Config, GarbageCollector};
use krake_runtime::{Backoff, CancellationToken, ControllerConfig, ControllerMetrics, Readiness};
use krake_testkit::eventually;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

const NS: &str = "tenant";
const WAIT: Duration = Duration::from_secs(20);

struct Env {
    client: Client,
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let server = krake_api_server::start(ApiConfig::for_embedded(dir.path()))
        .await
        .expect("API server starts");
    let client = Client::new(ClientConfig {
        timeout: Duration::from_secs(10),
        ..ClientConfig::new(format!("http://{}", server.addr))
    })
    .unwrap();
    Env {
        client,
        _server: server,
        _dir: dir,
    }
}

/// A running collector.
struct Gc {
    shutdown: CancellationToken,
    task: Option<JoinHandle<krake_garbage_collector::Result<()>>>,
    metrics: ControllerMetrics,
    readiness: Readiness,
}

impl Gc {
    async fn start(client: &Client) -> Gc {
        let config = Config {
            controller: ControllerConfig {
                concurrency: 3,
                resync_interval: None,
                backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
                shutdown_grace: Duration::from_secs(5),
            },
            wait_requeue: Duration::from_secs(600),
            ..Config::default()
        };
        let gc = GarbageCollector::new(client, config);
        let metrics = gc.metrics().clone();
        let readiness = gc.readiness();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(gc.run(shutdown.clone()));
        let gc = Gc {
            shutdown,
            task: Some(task),
            metrics,
            readiness,
        };
        eventually("collector ready", WAIT, || async {
            gc.readiness.is_ready().then_some(())
        })
        .await;
        gc
    }

    /// Stop and wait until it stopped.
    async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("collector stops within 10 s")
            .unwrap()
            .expect("collector ends without error");
    }
}

impl Drop for Gc {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn parse<R: Resource>(value: Value) -> R {
    serde_json::from_value(value).unwrap()
}

fn ns_of<R: Resource>() -> Option<&'static str> {
    R::NAMESPACED.then_some(NS)
}

async fn find<R: Resource>(client: &Client, name: &str) -> Option<R> {
    match client.api::<R>().get(ns_of::<R>(), name).await {
        Ok(obj) => Some(obj),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("GET {} {name}: {e}", R::KIND),
    }
}

async fn get<R: Resource>(client: &Client, name: &str) -> R {
    find(client, name)
        .await
        .unwrap_or_else(|| panic!("{} {name} missing", R::KIND))
}

async fn delete<R: Resource>(client: &Client, name: &str) {
    client
        .api::<R>()
        .delete(ns_of::<R>(), name, false)
        .await
        .unwrap();
}

async fn gone<R: Resource>(client: &Client, name: &str) {
    eventually(&format!("{} {name} removed", R::KIND), WAIT, || async {
        find::<R>(client, name).await.is_none().then_some(())
    })
    .await
}

fn reference<R: Resource>(name: &str) -> ResourceRef {
    ResourceRef {
        api: R::API.into(),
        namespace: ns_of::<R>().map(str::to_string),
        kind: R::KIND.into(),
        name: name.into(),
    }
}

async fn cloud(client: &Client, name: &str) -> Cloud {
    let cloud: Cloud = parse(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"type": "openstack", "openstack": {
            "url": "http://keystone:5000/v3",
            "auth": {"type": "password", "password": {
                "user": {"username": "u", "password": "p"}, "project": {"name": "p"}}},
            "infrastructure_provider": {"name": "im"}}}
    }));
    client.api::<Cloud>().create(&cloud).await.unwrap()
}

/// A cluster bound to `cloud` (the binding adds the owner), if any.
async fn cluster(client: &Client, name: &str, cloud: Option<&str>) -> Cluster {
    let created = client
        .api::<Cluster>()
        .create(&Cluster::test(NS, name))
        .await
        .unwrap();
    match cloud {
        Some(cloud) => client
            .bind_cluster(NS, name, reference::<Cloud>(cloud))
            .await
            .unwrap(),
        None => created,
    }
}

/// An application with `finalizers`, bound to each of `clusters` in turn (each binding
/// adds an owner).
async fn application(
    client: &Client,
    name: &str,
    finalizers: &[&str],
    clusters: &[&str],
) -> Application {
    let app: Application = parse(json!({
        "metadata": {"name": name, "namespace": NS, "finalizers": finalizers},
        "spec": {"manifest": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
            "spec": {"containers": [{"name": "echo", "image": "hashicorp/http-echo"}]}}],
            "constraints": {"cluster": {}}}
    }));
    let mut app = client.api::<Application>().create(&app).await.unwrap();
    for cluster in clusters {
        app = client
            .bind_application(NS, name, reference::<Cluster>(cluster))
            .await
            .unwrap();
    }
    app
}

async fn role(client: &Client, name: &str, owners: &[&str], finalizers: &[&str]) -> Role {
    let mut meta = Metadata::named(name);
    meta.owners = owners.iter().map(|o| reference::<Role>(o)).collect();
    meta.finalizers = finalizers.iter().map(|f| f.to_string()).collect();
    client
        .api::<Role>()
        .create(&Role::new(meta, vec![]))
        .await
        .unwrap()
}

/// The order in which objects disappear from storage (`Kind/name`), from watches
/// started at the current revision of each kind.
#[derive(Clone, Default)]
struct Removals(Arc<Mutex<Vec<String>>>);

impl Removals {
    async fn watch<R: Resource>(&self, client: &Client) {
        let api = client.api::<R>();
        let list = api.list(None).await.unwrap();
        let mut events = api.watch(None, list.resource_version.as_deref());
        let log = self.0.clone();
        tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                if let WatchEvent::Deleted(obj) = event {
                    log.lock()
                        .unwrap()
                        .push(format!("{}/{}", R::KIND, obj.metadata().name));
                }
            }
        });
    }

    fn position(&self, what: &str) -> usize {
        let log = self.0.lock().unwrap();
        log.iter()
            .position(|r| r == what)
            .unwrap_or_else(|| panic!("{what} not removed; removals: {log:?}"))
    }

    async fn wait_for(&self, what: &str) {
        eventually(&format!("removal of {what} observed"), WAIT, || async {
            self.0
                .lock()
                .unwrap()
                .iter()
                .any(|r| r == what)
                .then_some(())
        })
        .await
    }

    fn before(&self, first: &str, then: &str) {
        assert!(
            self.position(first) < self.position(then),
            "{first} removed after {then}: {:?}",
            self.0.lock().unwrap()
        );
    }
}

/// Marked deleted, and the collector is done with it: `finalizers` are left.
fn released(meta: &Metadata, finalizers: &[&str]) -> bool {
    meta.deleted.is_some() && meta.finalizers == finalizers
}

/// The collector's reconcile counts stay the same for a while: nothing loops.
async fn settles(gc: &Gc) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = gc.metrics.counts();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gc.metrics.counts(), before, "the collector keeps working");
    assert_eq!(before.1, 0, "failed reconciles: {before:?}");
}

#[tokio::test]
async fn chain_is_deleted_bottom_up_and_other_finalizers_are_respected() {
    let env = env().await;
    let c = &env.client;
    cloud(c, "cloud").await;
    cluster(c, "cluster", Some("cloud")).await;
    application(c, "app", &["kubernetes_resources_deletion"], &["cluster"]).await;
    application(c, "plain", &[], &["cluster"]).await;
    let removals = Removals::default();
    removals.watch::<Cloud>(c).await;
    removals.watch::<Cluster>(c).await;
    removals.watch::<Application>(c).await;
    let gc = Gc::start(c).await;

    delete::<Cloud>(c, "cloud").await;
    gone::<Application>(c, "plain").await;
    // The application's own finalizer is now last: the collector is done with it, the
    // application controller's turn has come; everything above waits.
    let app = eventually("cascade_deletion removed from app", WAIT, || async {
        let app: Application = get(c, "app").await;
        released(&app.metadata, &["kubernetes_resources_deletion"]).then_some(app)
    })
    .await;
    assert!(app.metadata.deleted.is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cluster: Cluster = get(c, "cluster").await;
    assert!(cluster.metadata.deleted.is_some());
    assert_eq!(cluster.metadata.finalizers, ["cascade_deletion"]);
    let cloud: Cloud = get(c, "cloud").await;
    assert_eq!(cloud.metadata.finalizers, ["cascade_deletion"]);
    assert_eq!(
        get::<Application>(c, "app").await.metadata.finalizers,
        ["kubernetes_resources_deletion"]
    );

    // The application controller finishes.
    let mut app: Application = get(c, "app").await;
    app.metadata.finalizers.clear();
    c.api::<Application>().update(&app).await.unwrap();

    gone::<Cloud>(c, "cloud").await;
    assert!(find::<Cluster>(c, "cluster").await.is_none());
    removals.wait_for("Cloud/cloud").await;
    removals.before("Application/plain", "Cluster/cluster");
    removals.before("Application/app", "Cluster/cluster");
    removals.before("Cluster/cluster", "Cloud/cloud");
    settles(&gc).await;
    gc.stop().await;
}

#[tokio::test]
async fn diamonds_are_deleted_completely() {
    let env = env().await;
    let c = &env.client;
    // cloud → k1, k2 → shared (owned by both clusters, as during a migration); k1 → solo.
    cloud(c, "cloud").await;
    cluster(c, "k1", Some("cloud")).await;
    cluster(c, "k2", Some("cloud")).await;
    let shared = application(c, "shared", &[], &["k1", "k2"]).await;
    assert_eq!(shared.metadata.owners.len(), 2);
    application(c, "solo", &[], &["k1"]).await;
    // A second diamond under the same owners, deleted from one side only.
    cluster(c, "m1", None).await;
    cluster(c, "m2", None).await;
    application(c, "both", &[], &["m1", "m2"]).await;
    application(c, "m2-only", &[], &["m2"]).await;
    let removals = Removals::default();
    removals.watch::<Cluster>(c).await;
    removals.watch::<Application>(c).await;
    let gc = Gc::start(c).await;

    delete::<Cloud>(c, "cloud").await;
    gone::<Cloud>(c, "cloud").await;
    for app in ["shared", "solo"] {
        assert!(find::<Application>(c, app).await.is_none(), "{app} left");
    }
    for cluster in ["k1", "k2"] {
        assert!(
            find::<Cluster>(c, cluster).await.is_none(),
            "{cluster} left"
        );
    }
    removals.wait_for("Cluster/k2").await;
    removals.before("Application/shared", "Cluster/k1");
    removals.before("Application/shared", "Cluster/k2");
    removals.before("Application/solo", "Cluster/k1");

    // Deleting one owner of a shared dependent deletes the dependent, not the other owner.
    delete::<Cluster>(c, "m1").await;
    gone::<Cluster>(c, "m1").await;
    assert!(find::<Application>(c, "both").await.is_none());
    let m2: Cluster = get(c, "m2").await;
    assert!(m2.metadata.deleted.is_none());
    let other: Application = get(c, "m2-only").await;
    assert!(other.metadata.deleted.is_none());
    settles(&gc).await;
    gc.stop().await;
}

#[tokio::test]
async fn cycles_are_deleted_without_looping_or_dropping_anything() {
    let env = env().await;
    let c = &env.client;
    // a ⇄ b, b → c (outside the cycle); x → y → z → x; self-owned s.
    role(c, "a", &["b"], &[]).await;
    role(c, "b", &["a"], &[]).await;
    role(c, "c", &["b"], &[]).await;
    role(c, "x", &["z"], &[]).await;
    role(c, "y", &["x"], &[]).await;
    role(c, "z", &["y"], &[]).await;
    role(c, "s", &["s"], &[]).await;
    role(c, "bystander", &[], &[]).await;
    let removals = Removals::default();
    removals.watch::<Role>(c).await;
    let gc = Gc::start(c).await;

    delete::<Role>(c, "a").await;
    for name in ["a", "b", "c"] {
        gone::<Role>(c, name).await;
    }
    removals.wait_for("Role/b").await;
    removals.before("Role/c", "Role/a");
    removals.before("Role/c", "Role/b");

    delete::<Role>(c, "y").await;
    for name in ["x", "y", "z"] {
        gone::<Role>(c, name).await;
    }
    delete::<Role>(c, "s").await;
    gone::<Role>(c, "s").await;

    let bystander: Role = get(c, "bystander").await;
    assert!(bystander.metadata.deleted.is_none());
    settles(&gc).await;
    gc.stop().await;
}

#[tokio::test]
async fn owners_deleted_while_the_collector_is_down_converge_after_restart() {
    let env = env().await;
    let c = &env.client;
    cloud(c, "cloud").await;
    cluster(c, "cluster", Some("cloud")).await;
    application(c, "app", &[], &["cluster"]).await;
    application(c, "vanishing", &[], &["cluster"]).await;
    role(c, "lone", &[], &[]).await;

    let gc = Gc::start(c).await;
    gc.stop().await;

    // While it is down: the cloud is deleted, an application vanishes (forced), a
    // role without dependents is deleted.
    delete::<Cloud>(c, "cloud").await;
    c.api::<Application>()
        .delete(Some(NS), "vanishing", true)
        .await
        .unwrap();
    delete::<Role>(c, "lone").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cloud: Cloud = get(c, "cloud").await;
    assert_eq!(cloud.metadata.finalizers, ["cascade_deletion"]);
    let cluster: Cluster = get(c, "cluster").await;
    assert!(
        cluster.metadata.deleted.is_none(),
        "nothing acts without the collector"
    );
    assert_eq!(
        get::<Role>(c, "lone").await.metadata.finalizers,
        ["cascade_deletion"]
    );

    let gc = Gc::start(c).await;
    gone::<Cloud>(c, "cloud").await;
    assert!(find::<Cluster>(c, "cluster").await.is_none());
    assert!(find::<Application>(c, "app").await.is_none());
    gone::<Role>(c, "lone").await;
    settles(&gc).await;
    gc.stop().await;
}

#[tokio::test]
async fn objects_outside_a_cascade_are_untouched() {
    let env = env().await;
    let c = &env.client;
    role(c, "free", &[], &[]).await;
    role(c, "orphan", &["never-existed"], &[]).await;
    cluster(c, "live", None).await;
    application(c, "on-live", &[], &["live"]).await;
    role(c, "guarded", &[], &["other_controller"]).await;
    role(c, "unowned-deleted", &[], &[]).await;
    let gc = Gc::start(c).await;

    // A deleted object without dependents just loses the collector's finalizer.
    delete::<Role>(c, "unowned-deleted").await;
    gone::<Role>(c, "unowned-deleted").await;
    // A finalizer below ours stays.
    delete::<Role>(c, "guarded").await;
    eventually("guarded released by the collector", WAIT, || async {
        let r: Role = get(c, "guarded").await;
        released(&r.metadata, &["other_controller"]).then_some(())
    })
    .await;
    settles(&gc).await;

    for name in ["free", "orphan"] {
        let r: Role = get(c, name).await;
        assert!(r.metadata.deleted.is_none(), "{name} touched");
    }
    let live: Cluster = get(c, "live").await;
    assert!(live.metadata.deleted.is_none());
    let app: Application = get(c, "on-live").await;
    assert!(app.metadata.deleted.is_none());
    gc.stop().await;
}

#[tokio::test]
async fn dependents_vanishing_on_their_own_do_not_block_or_fail() {
    let env = env().await;
    let c = &env.client;
    cluster(c, "cluster", None).await;
    application(
        c,
        "forced",
        &["kubernetes_resources_deletion"],
        &["cluster"],
    )
    .await;
    application(c, "slow", &["kubernetes_resources_deletion"], &["cluster"]).await;
    let gc = Gc::start(c).await;

    delete::<Cluster>(c, "cluster").await;
    eventually("apps released by the collector", WAIT, || async {
        let a: Application = get(c, "forced").await;
        let b: Application = get(c, "slow").await;
        (released(&a.metadata, &["kubernetes_resources_deletion"])
            && released(&b.metadata, &["kubernetes_resources_deletion"]))
        .then_some(())
    })
    .await;
    // One disappears by force, the other normally.
    c.api::<Application>()
        .delete(Some(NS), "forced", true)
        .await
        .unwrap();
    let mut slow: Application = get(c, "slow").await;
    slow.metadata.finalizers.clear();
    c.api::<Application>().update(&slow).await.unwrap();
    gone::<Cluster>(c, "cluster").await;
    settles(&gc).await;
    gc.stop().await;
}

#[tokio::test]
async fn a_dependent_dropping_its_owner_reference_releases_the_owner() {
    let env = env().await;
    let c = &env.client;
    cluster(c, "cluster", None).await;
    application(c, "app", &["kubernetes_resources_deletion"], &["cluster"]).await;
    let gc = Gc::start(c).await;

    delete::<Cluster>(c, "cluster").await;
    let mut app = eventually("app released by the collector", WAIT, || async {
        let a: Application = get(c, "app").await;
        released(&a.metadata, &["kubernetes_resources_deletion"]).then_some(a)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(find::<Cluster>(c, "cluster").await.is_some());
    // The application stops depending on the cluster (owners may change while deleting).
    app.metadata.owners.clear();
    c.api::<Application>().update(&app).await.unwrap();
    gone::<Cluster>(c, "cluster").await;
    let app: Application = get(c, "app").await;
    assert_eq!(app.metadata.finalizers, ["kubernetes_resources_deletion"]);
    settles(&gc).await;
    gc.stop().await;
}
