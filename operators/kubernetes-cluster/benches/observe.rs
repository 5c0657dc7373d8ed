//! Benchmark of the Kubernetes cluster controller. Run with:
//!
//! ```sh
//! cargo bench -p krake-kubernetes-cluster --bench observe
//! ```
//!
//! Everything runs in this process on loopback: an in-process Krake API server
//! (embedded store), kube-doubles over TLS as member clusters, and the controller
//! ([`ClusterController`], 10 s probes, so that node changes travel through the watch).
//! Printed as Markdown rows for `docs/benchmarks.md`:
//!
//! 1. **Node change → Cluster state in Krake**: 100 changes of one node's `Ready`
//!    condition (True/False alternately) on one member cluster; latency from the change
//!    in the double to the Cluster's new state arriving on a Krake API watch.
//! 2. **200 member clusters** (one double, one Cluster each): time until all are ONLINE,
//!    TCP connections from this process to the double, observation tasks, and this
//!    process's RSS growth (which also holds the double's 200 watches and the API
//!    server's objects: an upper bound for the controller); then the same after deleting
//!    them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use krake_client::{Client, ClientConfig, WatchEvent};
use krake_crds::Metadata;
use krake_crds::kubernetes::{Cluster, ClusterSpec, ClusterState};
use krake_kubernetes_cluster::{ClusterController, Config};
use krake_runtime::CancellationToken;
use kube_double::{KubeDouble, Options};
use serde_json::{Map, Value};

const NS: &str = "bench";
const CHANGES: usize = 100;
const CLUSTERS: usize = 200;

fn kubeconfig(double: &KubeDouble) -> Map<String, Value> {
    match double.kubeconfig() {
        Value::Object(map) => map,
        other => panic!("a kubeconfig object, got {other}"),
    }
}

fn cluster(name: &str, kubeconfig: Map<String, Value>) -> Cluster {
    Cluster {
        api: "kubernetes".into(),
        kind: "Cluster".into(),
        metadata: Metadata {
            namespace: Some(NS.into()),
            ..Metadata::named(name)
        },
        spec: ClusterSpec::with_kubeconfig(kubeconfig),
        status: Default::default(),
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count_in_state(client: &Client, state: ClusterState) -> usize {
    let list = client.api::<Cluster>().list(Some(NS)).await.unwrap();
    list.items
        .iter()
        .filter(|c| c.status.state == state)
        .count()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let server = krake_api_server::start(krake_api_server::Config::for_embedded(dir.path()))
        .await
        .expect("API server starts");
    let client = Client::new(ClientConfig::new(format!("http://{}", server.addr))).unwrap();
    let controller = ClusterController::new(
        &client,
        Config {
            probe_interval: Duration::from_secs(10),
            ..Config::default()
        },
    )
    .unwrap();
    let metrics = controller.cluster_metrics();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(controller.run(shutdown.clone()));

    // 1. Node change → state in Krake.
    let double = KubeDouble::start(Options::default()).await.unwrap();
    double
        .set_node_conditions("node-1", &[("Ready", "True")])
        .unwrap();
    let created = client
        .api::<Cluster>()
        .create(&cluster("latency", kubeconfig(&double)))
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<(Instant, ClusterState)>>> = Arc::default();
    {
        let seen = seen.clone();
        let mut events = client
            .api::<Cluster>()
            .watch(Some(NS), created.metadata.resource_version.as_deref());
        tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let Ok(WatchEvent::Modified(c)) = event {
                    seen.lock().unwrap().push((Instant::now(), c.status.state));
                }
            }
        });
    }
    let last_state = || seen.lock().unwrap().last().map(|(_, s)| *s);
    wait_until("ONLINE", Duration::from_secs(30), async || {
        last_state() == Some(ClusterState::Online)
    })
    .await;
    let mut latencies = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let (ready, expected) = if i % 2 == 0 {
            ("False", ClusterState::Notready)
        } else {
            ("True", ClusterState::Online)
        };
        let before = seen.lock().unwrap().len();
        let start = Instant::now();
        double
            .set_node_conditions("node-1", &[("Ready", ready)])
            .unwrap();
        wait_until("the new state", Duration::from_secs(30), async || {
            seen.lock().unwrap()[before..]
                .iter()
                .any(|(_, s)| *s == expected)
        })
        .await;
        let at = seen.lock().unwrap()[before..]
            .iter()
            .find(|(_, s)| *s == expected)
            .map(|(t, _)| *t)
            .unwrap();
        latencies.push(at - start);
    }
    latencies.sort();
    println!(
        "| node condition change → Cluster state on a Krake watch ({CHANGES} changes) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
    );

    // 2. 200 member clusters.
    let many = KubeDouble::start(Options::default()).await.unwrap();
    many.set_node_conditions("node-1", &[("Ready", "True")])
        .unwrap();
    let port = many.addr().port();
    let rss_before = rss_kib();
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let start = Instant::now();
    for i in 0..CLUSTERS {
        client
            .api::<Cluster>()
            .create(&cluster(&format!("m{i}"), kubeconfig(&many)))
            .await
            .unwrap();
    }
    wait_until("all ONLINE", Duration::from_secs(300), async || {
        count_in_state(&client, ClusterState::Online).await == CLUSTERS + 1
    })
    .await;
    let online_after = start.elapsed();
    // Let the initial lists and writes settle before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "| {CLUSTERS} clusters: created one by one → all ONLINE | {:.2} s |",
        online_after.as_secs_f64()
    );
    println!(
        "| {CLUSTERS} clusters: connections to the member API server, observation tasks | {} connections, {} tasks (process tasks +{}) |",
        connections_to(port),
        metrics.observer_tasks() - 1,
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            .saturating_sub(tasks_before),
    );
    println!(
        "| {CLUSTERS} clusters: RSS growth of the process (controller + double + API server) | {:.1} MB |",
        rss_kib().saturating_sub(rss_before) as f64 / 1024.0
    );
    for i in 0..CLUSTERS {
        client
            .api::<Cluster>()
            .delete(Some(NS), &format!("m{i}"), true)
            .await
            .unwrap();
    }
    wait_until("connections closed", Duration::from_secs(60), async || {
        connections_to(port) == 0 && metrics.observer_tasks() == 1
    })
    .await;
    println!(
        "| {CLUSTERS} clusters deleted | {} connections, {} observation tasks left |",
        connections_to(port),
        metrics.observer_tasks() - 1
    );
    shutdown.cancel();
    let _ = running.await;
}
