//! Fixtures: a real Krake API server (embedded store), kube-doubles over TLS, the cluster
//! controller in process, and observers of a Cluster's state changes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use krake_api_server::{Config as ApiConfig, RunningServer};
use krake_client::{Client, ClientConfig, WatchEvent};
use krake_crds::Metadata;
use krake_crds::kubernetes::{Cluster, ClusterSpec, ClusterState};
use krake_kubernetes_cluster::{ClusterController, ClusterMetrics, Config};
use krake_member::MemberClients;
use krake_runtime::{Backoff, CancellationToken, ControllerConfig, Readiness};
use krake_testkit::eventually;
use kube_double::{KubeDouble, Options};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

/// Namespace of every Cluster.
pub const NS: &str = "tenant";
/// Longest wait for anything that should happen soon.
pub const WAIT: Duration = Duration::from_secs(20);

/// A Krake API server and a client of it.
pub struct Env {
    pub client: Client,
    pub api_port: u16,
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

pub async fn env() -> Env {
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
        api_port: server.addr.port(),
        _server: server,
        _dir: dir,
    }
}

/// A TLS double with one Ready node.
pub async fn double(node: &str) -> KubeDouble {
    let double = KubeDouble::start(Options {
        bookmark_interval: Duration::from_millis(500),
        ..Options::default()
    })
    .await
    .expect("the double starts");
    double
        .set_node_conditions(node, &[("Ready", "True"), ("MemoryPressure", "False")])
        .unwrap();
    double
}

/// The admin kubeconfig of a double, as a Cluster stores it.
pub fn kubeconfig(double: &KubeDouble) -> Map<String, Value> {
    match double.kubeconfig() {
        Value::Object(map) => map,
        other => panic!("a kubeconfig object, got {other}"),
    }
}

/// The cluster controller, running in process.
pub struct Ctl {
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    pub metrics: ClusterMetrics,
    pub members: Arc<MemberClients>,
}

impl Ctl {
    /// Start with this probe interval (probe timeout: half of it).
    pub async fn start(client: &Client, probe_interval: Duration) -> Ctl {
        let config = Config {
            controller: ControllerConfig {
                concurrency: 4,
                resync_interval: Some(Duration::from_secs(60)),
                backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
                shutdown_grace: Duration::from_secs(5),
            },
            probe_interval,
            ..Config::default()
        };
        let controller = ClusterController::new(client, config).expect("a valid configuration");
        let metrics = controller.cluster_metrics();
        let members = controller.member_clients();
        let readiness: Readiness = controller.readiness();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(controller.run(shutdown.clone()));
        eventually("controller ready", WAIT, || async { readiness.is_ready() }).await;
        Ctl {
            shutdown,
            task: Some(task),
            metrics,
            members,
        }
    }

    /// Stop and wait until it stopped (every observation with it).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the controller stops within 10 s")
            .unwrap();
        assert_eq!(
            self.metrics.observer_tasks(),
            0,
            "observations outlive the controller"
        );
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Create Cluster `name` with `kubeconfig`.
pub async fn create(client: &Client, name: &str, kubeconfig: Map<String, Value>) -> Cluster {
    let cluster = Cluster {
        api: "kubernetes".into(),
        kind: "Cluster".into(),
        metadata: Metadata {
            namespace: Some(NS.into()),
            ..Metadata::named(name)
        },
        spec: ClusterSpec::with_kubeconfig(kubeconfig),
        status: Default::default(),
    };
    client.api::<Cluster>().create(&cluster).await.unwrap()
}

pub async fn find(client: &Client, name: &str) -> Option<Cluster> {
    match client.api::<Cluster>().get(Some(NS), name).await {
        Ok(c) => Some(c),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("GET cluster {name}: {e}"),
    }
}

pub async fn get(client: &Client, name: &str) -> Cluster {
    find(client, name).await.expect("the cluster exists")
}

/// Wait until Cluster `name` is in `state` (at most `timeout`); returns it.
pub async fn state_is(
    client: &Client,
    name: &str,
    state: ClusterState,
    timeout: Duration,
) -> Cluster {
    eventually(&format!("{name} {}", state.as_str()), timeout, || async {
        let cluster = get(client, name).await;
        if cluster.status.state == state {
            Ok(cluster)
        } else {
            Err(cluster.status.state)
        }
    })
    .await
}

/// The names and conditions (`type=status`) of `status.nodes`.
pub fn nodes(cluster: &Cluster) -> Vec<(String, Vec<String>)> {
    cluster
        .status
        .nodes
        .iter()
        .map(|n| {
            let conditions = n
                .status
                .as_ref()
                .map(|s| {
                    s.conditions
                        .iter()
                        .map(|c| format!("{}={}", c.r#type, c.status))
                        .collect()
                })
                .unwrap_or_default();
            (n.metadata.name.clone(), conditions)
        })
        .collect()
}

/// Every state Cluster `name` goes through, in order, as the Krake API's watch reports
/// them (consecutive duplicates collapsed).
pub struct StateLog {
    states: Arc<Mutex<Vec<ClusterState>>>,
    task: JoinHandle<()>,
}

impl StateLog {
    pub async fn start(client: &Client, name: &str) -> StateLog {
        let current = get(client, name).await;
        let states = Arc::new(Mutex::new(vec![current.status.state]));
        let rv = current.metadata.resource_version.clone();
        let mut events = client.api::<Cluster>().watch(Some(NS), rv.as_deref());
        let log = states.clone();
        let name = name.to_string();
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                let Ok(WatchEvent::Modified(c) | WatchEvent::Added(c)) = event else {
                    continue;
                };
                if c.metadata.name != name {
                    continue;
                }
                let mut log = log.lock().unwrap();
                if log.last() != Some(&c.status.state) {
                    log.push(c.status.state);
                }
            }
        });
        StateLog { states, task }
    }

    pub fn states(&self) -> Vec<ClusterState> {
        self.states.lock().unwrap().clone()
    }
}

impl Drop for StateLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Established TCP connections of this process's network namespace to `port` on
/// 127.0.0.1 (client ends only: the member connections of the controller).
pub fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp readable");
    let remote = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && fields[2] == remote && fields[3] == "01"
        })
        .count()
}
