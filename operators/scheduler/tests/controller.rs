//! The scheduler against a real in-process Krake API server (embedded store).

use std::time::Duration;

use krake_api_server::{Config as ApiConfig, RunningServer};
use krake_client::{Client, ClientConfig};
use krake_crds::core::{GlobalMetric, GlobalMetricsProvider, ReasonCode};
use krake_crds::fixtures::kubeconfig;
use krake_crds::infrastructure::{Cloud, GlobalCloud};
use krake_crds::kubernetes::{Application, ApplicationState, Cluster, ClusterState};
use krake_crds::openstack::{MagnumCluster, MagnumClusterState, Project};
use krake_crds::{Resource, ResourceRef};
use krake_runtime::CancellationToken;
use krake_scheduler::Config;
use krake_testkit::eventually;
use serde_json::{Value, json};

const NS: &str = "tenant";
const WAIT: Duration = Duration::from_secs(20);

struct Env {
    client: Client,
    shutdown: CancellationToken,
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An API server and a scheduler re-evaluating every `reschedule_after`.
async fn env(reschedule_after: Duration) -> Env {
    env_with(Config {
        reschedule_after,
        ..Config::default()
    })
    .await
}

async fn env_with(config: Config) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let server = krake_api_server::start(ApiConfig::for_embedded(dir.path()))
        .await
        .expect("API server starts");
    let client = Client::new(ClientConfig {
        timeout: Duration::from_secs(10),
        ..ClientConfig::new(format!("http://{}", server.addr))
    })
    .unwrap();
    let shutdown = CancellationToken::new();
    let config = Config {
        worker_count: 2,
        metrics_timeout: Duration::from_secs(2),
        ..config
    };
    let scheduler_client = client.clone();
    let token = shutdown.clone();
    tokio::spawn(async move {
        krake_scheduler::run(scheduler_client, config, token)
            .await
            .expect("scheduler runs");
    });
    Env {
        client,
        shutdown,
        _server: server,
        _dir: dir,
    }
}

fn parse<R: Resource>(value: Value) -> R {
    serde_json::from_value(value).unwrap()
}

/// A registered cluster, set ONLINE (as the cluster observer does).
async fn online_cluster(client: &Client, name: &str, labels: Value, metrics: Value) -> Cluster {
    let mut cluster = Cluster::test(NS, name);
    cluster.metadata.labels = labels.as_object().cloned().unwrap_or_default();
    cluster.spec.metrics = serde_json::from_value(metrics).unwrap();
    let created = client.api::<Cluster>().create(&cluster).await.unwrap();
    client
        .api::<Cluster>()
        .update_status(&created.online())
        .await
        .unwrap()
}

async fn create_app(client: &Client, name: &str, spec_extra: Value) -> Application {
    let mut spec = json!({
        "manifest": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
            "spec": {"containers": [{"name": "echo", "image": "hashicorp/http-echo"}]}}],
        "constraints": {"cluster": {}}
    });
    for (k, v) in spec_extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let app: Application = parse(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": spec
    }));
    client.api::<Application>().create(&app).await.unwrap()
}

async fn get<R: Resource>(client: &Client, namespace: Option<&str>, name: &str) -> R {
    client.api::<R>().get(namespace, name).await.unwrap()
}

/// The application once it is bound to `cluster`.
async fn bound_to(client: &Client, app: &str, cluster: &str, timeout: Duration) -> Application {
    eventually(&format!("{app} bound to {cluster}"), timeout, || async {
        let a: Application = get(client, Some(NS), app).await;
        (a.status.scheduled_to.as_ref().map(|r| r.name.as_str()) == Some(cluster)).then_some(a)
    })
    .await
}

fn cluster_ref(name: &str) -> ResourceRef {
    ResourceRef {
        api: "kubernetes".into(),
        namespace: Some(NS.into()),
        kind: "Cluster".into(),
        name: name.into(),
    }
}

async fn static_metrics(client: &Client, values: Value) {
    let provider: GlobalMetricsProvider = parse(json!({
        "metadata": {"name": "static"},
        "spec": {"type": "static", "static": {"metrics": values.clone()}}
    }));
    client
        .api::<GlobalMetricsProvider>()
        .create(&provider)
        .await
        .unwrap();
    for name in values.as_object().unwrap().keys() {
        let metric: GlobalMetric = parse(json!({
            "metadata": {"name": format!("heat-{name}")},
            "spec": {"allowed_values": [], "min": 0, "max": 1,
                     "provider": {"name": "static", "metric": name}}
        }));
        client.api::<GlobalMetric>().create(&metric).await.unwrap();
    }
}

#[tokio::test]
async fn first_placement_through_the_binding() {
    let env = env(Duration::from_secs(60)).await;
    let c = &env.client;
    online_cluster(c, "italy", json!({"location": "IT"}), json!([])).await;
    online_cluster(c, "germany", json!({"location": "DE"}), json!([])).await;
    // Same labels in another namespace: never used.
    let mut foreign: Cluster = parse(json!({
        "metadata": {"name": "foreign", "namespace": "other", "labels": {"location": "DE"}},
        "spec": {"constraints": {"cloud": {}}, "kubeconfig": kubeconfig()}
    }));
    foreign = c.api::<Cluster>().create(&foreign).await.unwrap();
    foreign.status.state = ClusterState::Online;
    c.api::<Cluster>().update_status(&foreign).await.unwrap();

    let created = create_app(
        c,
        "app",
        json!({"constraints": {"cluster": {"labels": ["location is DE"]}}}),
    )
    .await;
    let app = bound_to(c, "app", "germany", WAIT).await;
    assert_eq!(app.status.scheduled_to, Some(cluster_ref("germany")));
    let scheduled = app.status.scheduled.expect("scheduled set");
    let kct = app.status.kube_controller_triggered.expect("kct set");
    assert!(scheduled > created.metadata.created);
    assert!(kct >= app.metadata.modified, "the update is released");
    assert!(app.metadata.owners.contains(&cluster_ref("germany")));

    // Nothing changes afterwards: the decision is silent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later: Application = get(c, Some(NS), "app").await;
    assert_eq!(later.status.scheduled, Some(scheduled));
    assert_eq!(later.status.kube_controller_triggered, Some(kct));
}

#[tokio::test]
async fn no_cluster_degrades_then_schedules_when_one_appears() {
    let env = env(Duration::from_secs(60)).await;
    let c = &env.client;
    create_app(c, "app", json!({})).await;
    let degraded = eventually("DEGRADED", WAIT, || async {
        let a: Application = get(c, Some(NS), "app").await;
        (a.status.state == ApplicationState::Degraded).then_some(a)
    })
    .await;
    let reason = degraded.status.reason.expect("reason");
    assert_eq!(reason.code, ReasonCode::NoSuitableResource);
    assert_eq!(reason.message, "No matching Kubernetes cluster found");
    assert_eq!(degraded.status.retries, Some(-1));
    assert!(degraded.status.scheduled_retry.is_some());
    assert!(degraded.status.scheduled_to.is_none());

    online_cluster(c, "late", json!({}), json!([])).await;
    bound_to(c, "app", "late", WAIT).await;
}

#[tokio::test]
async fn backoff_limit_one_degrades_then_fails() {
    let env = env(Duration::from_secs(60)).await;
    let c = &env.client;
    create_app(c, "app", json!({"backoff_limit": 1})).await;
    let failed = eventually("FAILED", WAIT, || async {
        let a: Application = get(c, Some(NS), "app").await;
        (a.status.state == ApplicationState::Failed).then_some(a)
    })
    .await;
    assert_eq!(failed.status.retries, Some(0));
    assert_eq!(
        failed.status.reason.unwrap().code,
        ReasonCode::NoSuitableResource
    );
    // FAILED is terminal for the scheduler: a cluster appearing changes nothing.
    online_cluster(c, "late", json!({}), json!([])).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a: Application = get(c, Some(NS), "app").await;
    assert!(a.status.scheduled_to.is_none());
}

#[tokio::test]
async fn migrates_at_once_when_the_current_cluster_stops_matching() {
    // A long interval: the migration must not wait for the periodic re-evaluation.
    let env = env(Duration::from_secs(600)).await;
    let c = &env.client;
    online_cluster(c, "first", json!({"location": "DE"}), json!([])).await;
    create_app(
        c,
        "app",
        json!({"constraints": {"cluster": {"labels": ["location = DE"]}}}),
    )
    .await;
    let placed = bound_to(c, "app", "first", WAIT).await;
    online_cluster(c, "second", json!({"location": "DE"}), json!([])).await;
    let mut first: Cluster = get(c, Some(NS), "first").await;
    first.metadata.labels.insert("location".into(), json!("IT"));
    c.api::<Cluster>().update(&first).await.unwrap();

    let moved = bound_to(c, "app", "second", Duration::from_secs(15)).await;
    assert!(moved.status.scheduled > placed.status.scheduled);
    assert!(moved.status.kube_controller_triggered > placed.status.kube_controller_triggered);
}

#[tokio::test]
async fn better_cluster_wins_at_the_next_reevaluation_despite_event_churn() {
    let interval = Duration::from_secs(3);
    let env = env(interval).await;
    let c = &env.client;
    static_metrics(c, json!({"a": 0.2, "b": 0.9})).await;
    online_cluster(
        c,
        "low",
        json!({}),
        json!([{"name": "heat-a", "weight": 1}]),
    )
    .await;
    create_app(c, "app", json!({})).await;
    let placed = bound_to(c, "app", "low", WAIT).await;
    let first_binding = placed.status.scheduled.unwrap();

    // Something (like an observer) writes the application's status all the time: with
    // upstream's timer reset on every event, the periodic re-evaluation would starve.
    let churn = CancellationToken::new();
    {
        let c = c.clone();
        let churn = churn.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !churn.is_cancelled() {
                let mut a: Application = get(&c, Some(NS), "app").await;
                n += 1;
                a.status.container_health.running_pods = n;
                let _ = c.api::<Application>().update_status(&a).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    online_cluster(
        c,
        "high",
        json!({}),
        json!([{"name": "heat-b", "weight": 1}]),
    )
    .await;
    let moved = bound_to(c, "app", "high", Duration::from_secs(20)).await;
    churn.cancel();
    let second_binding = moved.status.scheduled.unwrap();
    let gap = second_binding.to_utc() - first_binding.to_utc();
    assert!(
        gap >= chrono::Duration::from_std(interval).unwrap(),
        "moved {gap} after the first binding, before the re-evaluation interval"
    );
}

#[tokio::test]
async fn migration_disabled_never_moves_but_releases_updates() {
    let env = env(Duration::from_secs(1)).await;
    let c = &env.client;
    online_cluster(c, "first", json!({"location": "DE"}), json!([])).await;
    create_app(
        c,
        "app",
        json!({"constraints": {"migration": false, "cluster": {"labels": ["location = DE"]}}}),
    )
    .await;
    let placed = bound_to(c, "app", "first", WAIT).await;
    online_cluster(c, "second", json!({"location": "DE"}), json!([])).await;
    let mut first: Cluster = get(c, Some(NS), "first").await;
    first.metadata.labels.insert("location".into(), json!("IT"));
    c.api::<Cluster>().update(&first).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let still: Application = get(c, Some(NS), "app").await;
    assert_eq!(still.status.scheduled_to, Some(cluster_ref("first")));
    assert_eq!(still.status.scheduled, placed.status.scheduled);
    assert_eq!(
        still.status.kube_controller_triggered,
        placed.status.kube_controller_triggered
    );

    // A user update is released to the application controller without moving.
    let mut updated = still.clone();
    updated
        .metadata
        .labels
        .insert("touched".into(), json!("yes"));
    let updated = c.api::<Application>().update(&updated).await.unwrap();
    let confirmed = eventually("update confirmed", WAIT, || async {
        let a: Application = get(c, Some(NS), "app").await;
        a.status
            .kube_controller_triggered
            .is_some_and(|kct| kct >= updated.metadata.modified)
            .then_some(a)
    })
    .await;
    assert_eq!(confirmed.status.scheduled_to, Some(cluster_ref("first")));
    assert_eq!(confirmed.status.scheduled, placed.status.scheduled);
}

#[tokio::test]
async fn failing_metrics_exclude_a_cluster_until_they_recover() {
    let env = env(Duration::from_secs(1)).await;
    let c = &env.client;
    online_cluster(c, "plain", json!({}), json!([])).await;
    online_cluster(
        c,
        "measured",
        json!({}),
        json!([{"name": "heat-x", "weight": 1}]),
    )
    .await;
    create_app(c, "app", json!({})).await;
    bound_to(c, "app", "plain", WAIT).await;
    let failing = eventually("FAILING_METRICS", WAIT, || async {
        let cl: Cluster = get(c, Some(NS), "measured").await;
        (cl.status.state == ClusterState::FailingMetrics).then_some(cl)
    })
    .await;
    assert_eq!(
        failing.status.metrics_reasons.get("heat-x").unwrap().code,
        ReasonCode::UnknownMetric
    );

    // The metric appears: the cluster recovers (reasons cleared) and, having metrics,
    // wins at the next re-evaluation.
    static_metrics(c, json!({"x": 0.5})).await;
    let recovered = eventually("ONLINE again", WAIT, || async {
        let cl: Cluster = get(c, Some(NS), "measured").await;
        (cl.status.state == ClusterState::Online).then_some(cl)
    })
    .await;
    assert!(recovered.status.metrics_reasons.is_empty());
    bound_to(c, "app", "measured", WAIT).await;
}

fn openstack(metrics: Value) -> Value {
    json!({"type": "openstack", "openstack": {
        "url": "http://keystone:5000/v3",
        "auth": {"type": "password", "password": {
            "user": {"username": "u", "password": "p"}, "project": {"name": "p"}}},
        "metrics": metrics,
        "infrastructure_provider": {"name": "im"}}})
}

async fn cluster_to_create(client: &Client, name: &str, cloud_labels: Value) -> Cluster {
    let cluster: Cluster = parse(json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "constraints": {"cloud": {"labels": cloud_labels}},
            "tosca": {"tosca_definitions_version": "tosca_simple_yaml_1_0",
                      "topology_template": {"outputs": {"kubeconfig": {"value": "x"}}}}
        }
    }));
    client.api::<Cluster>().create(&cluster).await.unwrap()
}

#[tokio::test]
async fn clusters_are_bound_to_namespaced_clouds_first_then_global_ones() {
    let env = env(Duration::from_secs(60)).await;
    let c = &env.client;
    let cloud: Cloud = parse(json!({
        "metadata": {"name": "mine", "namespace": NS, "labels": {"location": "DE"}},
        "spec": openstack(json!([]))
    }));
    c.api::<Cloud>().create(&cloud).await.unwrap();
    let global: GlobalCloud = parse(json!({
        "metadata": {"name": "shared", "labels": {"location": "DE", "tier": "gold"}},
        "spec": openstack(json!([]))
    }));
    c.api::<GlobalCloud>().create(&global).await.unwrap();

    // A cloud whose metric does not exist: FAILING_METRICS with the reason.
    let broken: Cloud = parse(json!({
        "metadata": {"name": "broken", "namespace": NS, "labels": {"location": "PL"}},
        "spec": openstack(json!([{"name": "heat-missing", "weight": 1}]))
    }));
    c.api::<Cloud>().create(&broken).await.unwrap();

    cluster_to_create(c, "a", json!(["location = DE"])).await;
    cluster_to_create(c, "b", json!(["tier = gold"])).await;
    cluster_to_create(c, "c", json!(["location = SK"])).await;

    let a = eventually("a bound", WAIT, || async {
        let cl: Cluster = get(c, Some(NS), "a").await;
        cl.status.scheduled_to.clone()
    })
    .await;
    assert_eq!((a.kind.as_str(), a.name.as_str()), ("Cloud", "mine"));
    assert_eq!(a.namespace.as_deref(), Some(NS));
    let b = eventually("b bound", WAIT, || async {
        let cl: Cluster = get(c, Some(NS), "b").await;
        cl.status.scheduled_to.clone()
    })
    .await;
    assert_eq!(
        (b.kind.as_str(), b.name.as_str()),
        ("GlobalCloud", "shared")
    );
    let failed = eventually("c FAILED", WAIT, || async {
        let cl: Cluster = get(c, Some(NS), "c").await;
        (cl.status.state == ClusterState::Failed).then_some(cl)
    })
    .await;
    assert_eq!(
        failed.status.reason.unwrap().code,
        ReasonCode::NoSuitableResource
    );
    assert!(failed.status.scheduled_to.is_none());
    let broken = eventually("broken cloud FAILING_METRICS", WAIT, || async {
        let cl: Cloud = get(c, Some(NS), "broken").await;
        (cl.status.state == krake_crds::infrastructure::CloudState::FailingMetrics).then_some(cl)
    })
    .await;
    assert_eq!(
        broken
            .status
            .metrics_reasons
            .get("heat-missing")
            .unwrap()
            .code,
        ReasonCode::UnknownMetric
    );
}

#[tokio::test]
async fn labels_inherited_from_the_cloud_are_matched() {
    let env = env(Duration::from_secs(60)).await;
    let c = &env.client;
    let cloud: GlobalCloud = parse(json!({
        "metadata": {"name": "dc", "labels": {"location": "DE"}},
        "spec": openstack(json!([]))
    }));
    c.api::<GlobalCloud>().create(&cloud).await.unwrap();
    online_cluster(c, "plain", json!({"location": "IT"}), json!([])).await;
    // A cluster created on the cloud inherits its labels (cloud wins on conflicts).
    let inheriting: Cluster = parse(json!({
        "metadata": {"name": "inheriting", "namespace": NS, "inherit_labels": true,
                     "labels": {"location": "IT"}},
        "spec": {"constraints": {"cloud": {}}, "kubeconfig": kubeconfig()}
    }));
    c.api::<Cluster>().create(&inheriting).await.unwrap();
    let cloud_ref = ResourceRef {
        api: "infrastructure".into(),
        namespace: None,
        kind: "GlobalCloud".into(),
        name: "dc".into(),
    };
    let mut bound = c.bind_cluster(NS, "inheriting", cloud_ref).await.unwrap();
    bound.status.state = ClusterState::Online;
    c.api::<Cluster>().update_status(&bound).await.unwrap();

    create_app(
        c,
        "app",
        json!({"constraints": {"cluster": {"labels": ["location = DE"]}}}),
    )
    .await;
    bound_to(c, "app", "inheriting", WAIT).await;
}

#[tokio::test]
async fn magnum_clusters_are_bound_to_projects() {
    let env = env(Duration::from_secs(60)).await;
    let c = &env.client;
    for (name, location) in [("p-it", "IT"), ("p-de", "DE")] {
        let project: Project = parse(json!({
            "metadata": {"name": name, "namespace": NS, "labels": {"location": location}},
            "spec": {"url": "http://keystone:5000/v3", "template": format!("tmpl-{name}"),
                     "auth": {"type": "application_credential",
                              "application_credential": {"id": "id", "secret": "s"}}}
        }));
        c.api::<Project>().create(&project).await.unwrap();
    }
    let magnum: MagnumCluster = parse(json!({
        "metadata": {"name": "m", "namespace": NS},
        "spec": {"constraints": {"project": {"labels": ["location = DE"]}}}
    }));
    c.api::<MagnumCluster>().create(&magnum).await.unwrap();
    let lonely: MagnumCluster = parse(json!({
        "metadata": {"name": "lonely", "namespace": NS},
        "spec": {"constraints": {"project": {"labels": ["location = SK"]}}}
    }));
    c.api::<MagnumCluster>().create(&lonely).await.unwrap();

    let bound = eventually("m bound", WAIT, || async {
        let m: MagnumCluster = get(c, Some(NS), "m").await;
        m.status.project.is_some().then_some(m)
    })
    .await;
    assert_eq!(bound.status.project.as_ref().unwrap().name, "p-de");
    assert_eq!(bound.status.template.as_deref(), Some("tmpl-p-de"));
    assert_eq!(bound.metadata.labels.get("location"), Some(&json!("DE")));
    let failed = eventually("lonely FAILED", WAIT, || async {
        let m: MagnumCluster = get(c, Some(NS), "lonely").await;
        (m.status.state == MagnumClusterState::Failed).then_some(m)
    })
    .await;
    assert_eq!(
        failed.status.reason.unwrap().code,
        ReasonCode::NoSuitableResource
    );
}

const TOSCA: &str = "tosca_definitions_version: tosca_simple_yaml_1_0
topology_template:
  outputs:
    kubeconfig:
      value: from-the-infrastructure
";

#[tokio::test]
async fn automatic_cluster_creation_on_the_best_cloud() {
    let tosca_dir = tempfile::tempdir().unwrap();
    let tosca_file = tosca_dir.path().join("cluster.yaml");
    std::fs::write(&tosca_file, TOSCA).unwrap();
    let env = env_with(Config {
        reschedule_after: Duration::from_secs(60),
        tosca_file: Some(tosca_file),
        waiting_on_cluster_delay: Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let c = &env.client;
    static_metrics(c, json!({"good": 0.9, "bad": 0.1})).await;
    for (name, metric) in [("poor", "heat-bad"), ("rich", "heat-good")] {
        let cloud: GlobalCloud = parse(json!({
            "metadata": {"name": name, "labels": {"location": "DE"}},
            "spec": openstack(json!([{"name": metric, "weight": 1}]))
        }));
        c.api::<GlobalCloud>().create(&cloud).await.unwrap();
    }
    create_app(
        c,
        "app",
        json!({"auto_cluster_create": true,
               "constraints": {"cluster": {"labels": ["location = DE"]}}}),
    )
    .await;

    let waiting = eventually("cluster creation started", WAIT, || async {
        let a: Application = get(c, Some(NS), "app").await;
        (a.status.state == ApplicationState::WaitingForClusterCreation).then_some(a)
    })
    .await;
    let name = waiting.status.auto_cluster_create_started.clone().unwrap();
    assert!(name.starts_with("cluster-"), "{name}");
    let created: Cluster = get(c, Some(NS), &name).await;
    assert!(created.spec.auto_generated);
    assert!(created.spec.inherit_metrics && created.metadata.inherit_labels);
    assert_eq!(
        created.spec.tosca["tosca_definitions_version"],
        json!("tosca_simple_yaml_1_0")
    );
    assert_eq!(
        created
            .spec
            .constraints
            .cloud
            .labels
            .as_ref()
            .map(|l| l[0].as_str().to_string()),
        Some("location = DE".to_string())
    );
    let cloud = eventually("created cluster bound to a cloud", WAIT, || async {
        let cl: Cluster = get(c, Some(NS), &name).await;
        cl.status.scheduled_to.clone()
    })
    .await;
    assert_eq!(
        (cloud.kind.as_str(), cloud.name.as_str()),
        ("GlobalCloud", "rich")
    );

    // The infrastructure controller creates it and the observer reports it ONLINE.
    let mut cluster: Cluster = get(c, Some(NS), &name).await;
    cluster.spec.kubeconfig = kubeconfig();
    let mut cluster = c.api::<Cluster>().update(&cluster).await.unwrap();
    cluster.status.state = ClusterState::Online;
    c.api::<Cluster>().update_status(&cluster).await.unwrap();

    bound_to(c, "app", &name, WAIT).await;
    // The binding is followed by the status write clearing the flag.
    let done = eventually("flag cleared", WAIT, || async {
        let a: Application = get(c, Some(NS), "app").await;
        a.status.auto_cluster_create_started.is_none().then_some(a)
    })
    .await;
    assert_eq!(done.status.scheduled_to.unwrap().name, name);
}

#[tokio::test]
async fn scheduler_reports_readiness_and_reconcile_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = krake_api_server::start(ApiConfig::for_embedded(dir.path()))
        .await
        .unwrap();
    let client = Client::new(ClientConfig::new(format!("http://{}", server.addr))).unwrap();
    let mut registry = krake_runtime::prometheus_client::registry::Registry::default();
    let metrics = krake_runtime::Metrics::new(&mut registry);
    let scheduler = krake_scheduler::Scheduler::new(client.clone(), Config::default())
        .unwrap()
        .with_metrics(&metrics);
    let readiness = scheduler.readiness();
    assert!(!readiness.is_ready(), "ready before any list");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(shutdown.clone()));
    eventually("ready", WAIT, || async {
        readiness.is_ready().then_some(())
    })
    .await;

    online_cluster(&client, "a", json!({}), json!([])).await;
    create_app(&client, "app", json!({})).await;
    bound_to(&client, "app", "a", WAIT).await;

    let mut text = String::new();
    krake_runtime::prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("controller=\"scheduler-applications\""),
        "{text}"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(40), task)
        .await
        .expect("the scheduler stops on shutdown")
        .unwrap();
}

#[test]
fn shared_helpers_are_consistent() {
    // Guards the fixtures used above: a registered cluster must validate.
    let cluster: Cluster = parse(json!({
        "metadata": {"name": "x", "namespace": NS},
        "spec": {"constraints": {"cloud": {}}, "kubeconfig": kubeconfig()}
    }));
    let mut errors = krake_crds::ValidationErrors::new();
    cluster.validate(&mut errors);
    assert!(errors.is_empty(), "{errors:?}");
}
