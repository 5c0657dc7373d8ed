//! Benchmark of the Kubernetes cluster controller. Run with:
//!
//! ```sh
//! cargo bench -p krake-kubernetes-cluster --bench observe
//! ```
//!
//! Parts 1 and 2 run in this process on loopback: an in-process Krake API server
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
//! 3. **The controller in a process of its own**: release binaries `krake-api`
//!    (embedded store), one `kube-double` (TLS, one Ready node) as the API server of
//!    200 member clusters, and `krake-controller kubernetes-cluster` (10 s probes), each
//!    its own process. The controller's `VmRSS` (and peak `VmHWM`) from
//!    `/proc/<pid>/status`, and its sockets (`/proc/<pid>/fd` matched against
//!    `/proc/net/tcp{,6}`): before any Cluster, with 200 ONLINE, after deleting them.
//!    The bench runs `cargo build --release -p krake-api-server -p krake-controller -p
//!    kube-double` first (a no-op when they are current).
//!
//! Part 3 needs the release binaries in this bench's target directory, so run it in
//! the bench (release) profile.

use std::path::{Path, PathBuf};
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
    drop(server);

    // 3. The controller in a process of its own.
    separate_processes().await;
}

/// `<target>/release/<name>`, built by `cargo build --release` of the three packages the
/// process measurement runs, so that no compilation runs during a measurement.
fn release_binaries() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "krake-api-server",
            "-p",
            "krake-controller",
            "-p",
            "kube-double",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build --release -p krake-api-server -p krake-controller -p kube-double failed"
    );
    // This binary is <target>/release/deps/observe-<hash>.
    let exe = std::env::current_exe().expect("current executable");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/release directory")
        .to_path_buf();
    for name in ["krake-api", "krake-controller", "kube-double"] {
        assert!(
            release.join(name).is_file(),
            "{} not built: cargo build --release -p krake-api-server -p krake-controller -p kube-double",
            release.join(name).display()
        );
    }
    release
}

/// `VmRSS` and `VmHWM` (peak) of process `pid`, KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The TCP sockets process `pid` holds open (its `/proc/<pid>/fd` entries matched by
/// inode against `/proc/net/tcp` and `tcp6`).
#[derive(Debug, Default)]
struct Sockets {
    /// Every socket descriptor, TCP or not.
    all: usize,
    /// Established connections to `member_port`.
    to_member: usize,
    /// Established connections to `api_port`.
    to_api: usize,
    /// Other TCP sockets (listening operations endpoint, closing connections).
    other_tcp: usize,
}

fn sockets(pid: u32, member_port: u16, api_port: u16) -> Sockets {
    let mut inodes = std::collections::HashSet::new();
    let mut all = 0;
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in entries.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                all += 1;
                inodes.insert(inode.to_string());
            }
        }
    }
    let mut found = Sockets {
        all,
        ..Sockets::default()
    };
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 || !inodes.contains(fields[9]) {
                continue;
            }
            let remote_port = fields[2]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let established = fields[3] == "01";
            match remote_port {
                Some(p) if established && p == member_port => found.to_member += 1,
                Some(p) if established && p == api_port => found.to_api += 1,
                _ => found.other_tcp += 1,
            }
        }
    }
    found
}

/// Whether `GET /readyz` on `port` answers 200.
async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"HTTP/1.1 200"
    )
}

fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `krake-api` (embedded store), one `kube-double` process as the API server of 200
/// member clusters, and `krake-controller kubernetes-cluster` each in a process of
/// its own; the controller's RSS and sockets before, with and after 200 Clusters.
async fn separate_processes() {
    let release = release_binaries();
    let dir = tempfile::tempdir().unwrap();

    let data = dir.path().join("data");
    let api = krake_testkit::api_server::ApiServerProcess::start(
        &release.join("krake-api"),
        &["--data-dir", data.to_str().unwrap()],
    )
    .await;
    let api_url = api.url();
    let api_port: u16 = api_url.rsplit(':').next().unwrap().parse().unwrap();
    let client = Client::new(ClientConfig::new(api_url.clone())).unwrap();

    let kubeconfig_path = dir.path().join("member.kubeconfig");
    let _member = tokio::process::Command::new(release.join("kube-double"))
        .args(["--listen", "127.0.0.1:0", "--tls", "--kubeconfig-out"])
        .arg(&kubeconfig_path)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start kube-double");
    let mut member_kubeconfig = None;
    wait_until(
        "the kube-double kubeconfig",
        Duration::from_secs(20),
        async || {
            member_kubeconfig = std::fs::read(&kubeconfig_path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok());
            member_kubeconfig.is_some()
        },
    )
    .await;
    let member_kubeconfig = member_kubeconfig.unwrap();
    let member_port: u16 = member_kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .and_then(|s| s.rsplit(':').next())
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("server URL with a port");

    // One node, Ready, as a kubelet would report it.
    let kube_client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(
            serde_json::from_value(Value::Object(member_kubeconfig.clone())).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(kube_client);
    nodes
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    nodes
        .patch_status(
            "node-1",
            &Default::default(),
            &kube::api::Patch::Merge(serde_json::json!({
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}
            })),
        )
        .await
        .unwrap();

    let ops_port = krake_testkit::free_port();
    let controller = tokio::process::Command::new(release.join("krake-controller"))
        .args([
            "kubernetes-cluster",
            "--api-url",
            &api_url,
            "--ops-address",
            &format!("127.0.0.1:{ops_port}"),
            "--log-level",
            "warn",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start krake-controller");
    let pid = controller.id().expect("controller running");
    wait_until(
        "the controller ready",
        Duration::from_secs(20),
        async || ready(ops_port).await,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_idle, _) = memory_kib(pid);
    let idle = sockets(pid, member_port, api_port);

    let start = Instant::now();
    for i in 0..CLUSTERS {
        client
            .api::<Cluster>()
            .create(&cluster(&format!("p{i}"), member_kubeconfig.clone()))
            .await
            .unwrap();
    }
    wait_until("all ONLINE", Duration::from_secs(300), async || {
        count_in_state(&client, ClusterState::Online).await == CLUSTERS
    })
    .await;
    let online_after = start.elapsed();
    // Past the first round of probes (10 s) so that their connections count too.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (rss_online, hwm_online) = memory_kib(pid);
    let online = sockets(pid, member_port, api_port);

    for i in 0..CLUSTERS {
        client
            .api::<Cluster>()
            .delete(Some(NS), &format!("p{i}"), true)
            .await
            .unwrap();
    }
    wait_until(
        "member connections closed",
        Duration::from_secs(60),
        async || sockets(pid, member_port, api_port).to_member == 0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_deleted, hwm) = memory_kib(pid);
    let deleted = sockets(pid, member_port, api_port);

    println!(
        "| separate processes, {CLUSTERS} clusters created one by one → all ONLINE | {:.2} s |",
        online_after.as_secs_f64()
    );
    println!(
        "| controller RSS: no cluster / {CLUSTERS} ONLINE / all deleted | {:.1} MB / {:.1} MB (+{:.1} MB, {:.0} KiB per cluster) / {:.1} MB; peak {:.1} MB ({:.1} MB with 200 ONLINE) |",
        kib_to_mb(rss_idle),
        kib_to_mb(rss_online),
        kib_to_mb(rss_online.saturating_sub(rss_idle)),
        rss_online.saturating_sub(rss_idle) as f64 / CLUSTERS as f64,
        kib_to_mb(rss_deleted),
        kib_to_mb(hwm),
        kib_to_mb(hwm_online),
    );
    for (when, s) in [
        ("no cluster", &idle),
        ("200 ONLINE", &online),
        ("all deleted", &deleted),
    ] {
        println!(
            "| controller sockets, {when} | {} sockets: {} to the member API server, {} to the Krake API, {} other TCP |",
            s.all, s.to_member, s.to_api, s.other_tcp
        );
    }
}
