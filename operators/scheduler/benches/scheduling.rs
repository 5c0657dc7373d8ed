//! Benchmark of the scheduler (issue "Controller runtime, Krake client, scheduler and
//! garbage collector"). Run with:
//!
//! ```sh
//! cargo bench -p krake-scheduler --bench scheduling
//! ```
//!
//! Three measurements, printed as Markdown rows for `docs/benchmarks.md`:
//!
//! 1. **Decision throughput**, in process, no network: 10,000 Applications over 1,000
//!    ONLINE Clusters with 5 metrics each, served by static metrics providers. A
//!    decision is the application handler's path (`schedule` in
//!    `src/controller/applications.rs`) up to, not including, the binding request:
//!    admission and gates, the namespace's cluster candidates
//!    ([`Candidates::of_namespace`]: inherited values and fetched metrics, rebuilt from
//!    the reflector stores whenever they are stale), filtering, scoring, choice and the
//!    write decision. Measured with the default `metrics_max_age` (metric values reused
//!    for 10 s, so the run includes the rebuilds a busy scheduler does), with one worker
//!    and with the default `worker_count` (5); then with `metrics_max_age = 0` (the
//!    candidates are rebuilt for every decision: 5,000 metric resolutions, each distinct
//!    provider query made once); then the filtering and scoring alone
//!    (`select_placement`).
//! 2. **Create → binding latency** at 100 creates/s: a real etcd and a release
//!    `krake-api` process (`krake_testkit`), the scheduler ([`Scheduler`], default config)
//!    running in this process, 20 ONLINE clusters with 5 static metrics each.
//! 3. **RSS of a reflector store with 10,000 Applications**: this binary re-executes
//!    itself as a bare controller process (runtime + client + one `Reflector`) and reads
//!    its own `VmRSS` before and after the store is synced. Before the sync, the same
//!    process makes 10,000 in-memory copies of one stored Application and keeps them:
//!    the size of the typed objects without any list buffer, for comparison.
//!
//! Every request loop is bounded in count and time; everything runs on loopback.
//!
//! The `krake-api` binary is `$KRAKE_API_BIN` if set, else built with
//! `cargo build --release -p krake-api-server --bin krake-api` into this target
//! directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use krake_client::transport::{Transport, TransportConfig};
use krake_client::{Client, ClientConfig, WatchEvent};
use krake_crds::Resource;
use krake_crds::core::{GlobalMetric, GlobalMetricsProvider, Metric, MetricsProvider};
use krake_crds::fixtures::kubeconfig;
use krake_crds::infrastructure::{Cloud, GlobalCloud};
use krake_crds::kubernetes::{Application, Cluster, ClusterState};
use krake_runtime::{CancellationToken, Reflector, Store, Writer};
use krake_scheduler::application::{
    Admission, Gate, Placement, RetryGate, Write, admit_application, decision_write, retry_gate,
    scheduling_gate, select_placement, waiting_cluster,
};
use krake_scheduler::candidates::{CandidateStores, Candidates, StoreMetricsSource};
use krake_scheduler::providers::Providers;
use krake_scheduler::scoring::RandomChooser;
use krake_scheduler::{Config, Scheduler};
use krake_testkit::api_server::ApiServerProcess;
use krake_testkit::etcd::EtcdServer;
use serde_json::{Value, json};

/// Clusters in the decision benchmark.
const CLUSTERS: usize = 1_000;
/// Applications decided in the decision benchmark, and cached in the RSS measurement.
const APPS: usize = 10_000;
/// Metrics referenced by every cluster.
const METRICS_PER_CLUSTER: usize = 5;
/// `GlobalMetric` definitions the clusters pick their metrics from.
const METRIC_DEFINITIONS: usize = 25;
/// Static `GlobalMetricsProvider`s serving them.
const PROVIDERS: usize = 5;
/// Time limit of one decision-throughput run (the run stops early, and says so).
const DECISION_TIME_LIMIT: Duration = Duration::from_secs(120);
/// Decisions measured with `metrics_max_age = 0` (each one rebuilds the candidates).
const UNCACHED_DECISIONS: usize = 200;

/// Clusters in the latency benchmark.
const LATENCY_CLUSTERS: usize = 20;
/// Creates per second in the latency benchmark.
const CREATE_RATE: u64 = 100;
/// Measured creates (30 s at 100/s), after `WARMUP_CREATES` unmeasured ones.
const LATENCY_CREATES: usize = 3_000;
const WARMUP_CREATES: usize = 100;
/// How long bindings are waited for after the last create.
const BINDING_WAIT: Duration = Duration::from_secs(120);

/// Child-process mode of the RSS measurement: the API URL to reflect.
const RSS_CHILD_ENV: &str = "KRAKE_SCHEDULING_BENCH_RSS_CHILD";
const RSS_CHILD_LIMIT: Duration = Duration::from_secs(180);

const DECISION_NS: &str = "decisions";
const LATENCY_NS: &str = "latency";
const RSS_NS: &str = "rss";

fn parse<R: Resource>(value: Value) -> R {
    serde_json::from_value(value).expect("valid object")
}

/// Raw value of provider metric `raw{k}`, in `[0, 100]`.
fn raw_value(k: usize) -> f64 {
    (k * 37 % 100) as f64 + 0.5
}

/// Static provider `static-{p}` serving `raw{k}` for every `k ≡ p (mod PROVIDERS)`.
fn provider(p: usize) -> GlobalMetricsProvider {
    let metrics: serde_json::Map<String, Value> = (0..METRIC_DEFINITIONS)
        .filter(|k| k % PROVIDERS == p)
        .map(|k| (format!("raw{k}"), json!(raw_value(k))))
        .collect();
    parse(json!({
        "metadata": {"name": format!("static-{p}")},
        "spec": {"type": "static", "static": {"metrics": metrics}}
    }))
}

/// `GlobalMetric` `m{k}` (0..100, normalised to 0..1).
fn metric(k: usize) -> GlobalMetric {
    parse(json!({
        "metadata": {"name": format!("m{k}")},
        "spec": {"allowed_values": [], "min": 0, "max": 100,
                 "provider": {"name": format!("static-{}", k % PROVIDERS), "metric": format!("raw{k}")}}
    }))
}

const LOCATIONS: [&str; 4] = ["DE", "FR", "IT", "NL"];

/// Cluster `c{i}`: a location and a tier label, five distinct metrics with weights 1–4.
fn cluster(i: usize, namespace: &str) -> Cluster {
    let metrics: Vec<Value> = (0..METRICS_PER_CLUSTER)
        .map(|j| {
            json!({"name": format!("m{}", (i * 7 + j * 3) % METRIC_DEFINITIONS),
                   "weight": 1 + (i + j) % 4, "namespaced": false})
        })
        .collect();
    parse(json!({
        "metadata": {"name": format!("c{i}"), "namespace": namespace,
                     "labels": {"location": LOCATIONS[i % 4], "tier": if (i / 4).is_multiple_of(2) { "gold" } else { "silver" }}},
        "spec": {"constraints": {"cloud": {}}, "kubeconfig": kubeconfig(), "metrics": metrics}
    }))
}

/// Application `name`; its cluster constraints depend on `i % 4`: none (every cluster
/// matches), one location (1/4 of the clusters), two locations and a tier (1/4), or a
/// location exclusion plus a metric constraint (a few percent).
fn application(name: &str, namespace: &str, i: usize) -> Application {
    let constraints = match i % 4 {
        0 => json!({}),
        1 => json!({"labels": ["location is DE"]}),
        2 => json!({"labels": ["location in (DE, FR)", "tier = gold"]}),
        _ => json!({"labels": ["location != IT"], "metrics": ["m1 > 0.5"]}),
    };
    parse(json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
        "spec": {
            "manifest": [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                   "template": {"metadata": {"labels": {"app": "web"}},
                                                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}],
            "constraints": {"cluster": constraints}
        }
    }))
}

fn store_of<R: Resource>(objects: impl IntoIterator<Item = R>) -> Store<R> {
    let mut writer = Writer::new();
    for object in objects {
        writer.upsert(object);
    }
    writer.mark_synced();
    writer.store()
}

/// The application handler's decision state: the scheduler's own [`Candidates`] over
/// stores as its reflectors would hold them.
struct Decider {
    config: Config,
    candidates: Candidates,
}

impl Decider {
    fn new(metrics_max_age: Duration) -> Decider {
        let clusters = (0..CLUSTERS).map(|i| {
            let mut c = cluster(i, DECISION_NS);
            c.status.state = ClusterState::Online;
            c
        });
        let config = Config {
            metrics_max_age,
            ..Config::default()
        };
        let providers = Providers::new(
            Transport::new(&TransportConfig::default()).expect("HTTP transport"),
            config.metrics_timeout,
        );
        let stores = CandidateStores {
            clusters: store_of(clusters),
            clouds: store_of::<Cloud>([]),
            global_clouds: store_of::<GlobalCloud>([]),
            metrics: StoreMetricsSource::new(
                store_of::<Metric>([]),
                store_of((0..METRIC_DEFINITIONS).map(metric)),
                store_of::<MetricsProvider>([]),
                store_of((0..PROVIDERS).map(provider)),
            ),
        };
        Decider {
            candidates: Candidates::new(stores, Arc::new(providers), config.metrics_max_age),
            config,
        }
    }

    /// One complete decision, up to the binding request.
    async fn decide(&self, app: &Application) -> Placement {
        let now = Utc::now();
        assert_eq!(admit_application(app), Admission::Schedule);
        assert_eq!(retry_gate(app, now), RetryGate::Now);
        assert_eq!(scheduling_gate(app, now), Gate::Proceed);
        assert!(waiting_cluster(app, None).is_none());
        let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
        let fetched = self
            .candidates
            .of_namespace(namespace)
            .await
            .expect("stores never fail");
        assert!(fetched.status_writes.is_empty(), "every metric resolves");
        let placement = select_placement(
            app,
            &fetched.candidates.clusters,
            &[],
            now,
            &self.config,
            &RandomChooser,
        )
        .expect("every application has a matching cluster");
        let Placement::Cluster(target) = &placement else {
            panic!("no cloud exists");
        };
        assert!(matches!(decision_write(app, target), Write::Bind(_)));
        placement
    }
}

struct Throughput {
    decisions: usize,
    elapsed: Duration,
    /// Distinct clusters chosen (sanity: scoring spreads over the best clusters).
    distinct: usize,
}

impl Throughput {
    fn per_sec(&self) -> f64 {
        self.decisions as f64 / self.elapsed.as_secs_f64()
    }

    fn row(&self, what: &str, planned: usize) -> String {
        let partial = if self.decisions < planned {
            format!(" (stopped after {DECISION_TIME_LIMIT:?})")
        } else {
            String::new()
        };
        format!(
            "| {what} | {:.0} decisions/s ({} decisions in {:.2} s{partial}; {:.3} ms each; {} distinct clusters chosen) |",
            self.per_sec(),
            self.decisions,
            self.elapsed.as_secs_f64(),
            self.elapsed.as_secs_f64() * 1000.0 / self.decisions as f64,
            self.distinct,
        )
    }
}

fn throughput(mut chosen: Vec<String>, elapsed: Duration) -> Throughput {
    let decisions = chosen.len();
    chosen.sort();
    chosen.dedup();
    Throughput {
        decisions,
        elapsed,
        distinct: chosen.len(),
    }
}

/// `workers` tasks deciding the applications in turn, bounded by `apps` and
/// `DECISION_TIME_LIMIT`.
async fn decide_all(
    decider: Arc<Decider>,
    apps: Arc<Vec<Application>>,
    workers: usize,
) -> Throughput {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (decider, apps, next) = (decider.clone(), apps.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut chosen = Vec::new();
            while start.elapsed() < DECISION_TIME_LIMIT {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(app) = apps.get(i) else { break };
                if let Placement::Cluster(c) = decider.decide(app).await {
                    chosen.push(c.name);
                }
            }
            chosen
        }));
    }
    let mut chosen = Vec::new();
    for task in tasks {
        chosen.extend(task.await.expect("decision task"));
    }
    throughput(chosen, start.elapsed())
}

/// Filtering and scoring alone: `select_placement` over candidates fetched once.
async fn select_only(decider: &Decider, apps: &[Application]) -> Throughput {
    let fetched = decider
        .candidates
        .of_namespace(DECISION_NS)
        .await
        .expect("stores never fail");
    let now = Utc::now();
    let start = Instant::now();
    let mut chosen = Vec::new();
    for app in apps {
        if start.elapsed() >= DECISION_TIME_LIMIT {
            break;
        }
        let placement = select_placement(
            app,
            &fetched.candidates.clusters,
            &[],
            now,
            &decider.config,
            &RandomChooser,
        )
        .expect("every application has a matching cluster");
        if let Placement::Cluster(c) = placement {
            chosen.push(c.name);
        }
    }
    throughput(chosen, start.elapsed())
}

struct Latencies {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn latencies(mut samples: Vec<Duration>) -> Latencies {
    samples.sort();
    if samples.is_empty() {
        return Latencies {
            count: 0,
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
            max_ms: f64::NAN,
        };
    }
    let pick = |q: f64| {
        samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
    };
    Latencies {
        count: samples.len(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
    }
}

fn client(url: &str) -> Client {
    Client::new(ClientConfig {
        timeout: Duration::from_secs(10),
        ..ClientConfig::new(url)
    })
    .expect("client")
}

/// `$KRAKE_API_BIN`, or `krake-api` built in release mode into this target directory.
fn krake_api_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KRAKE_API_BIN") {
        return PathBuf::from(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "krake-api-server",
            "--bin",
            "krake-api",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build of krake-api failed");
    // This binary is <target>/release/deps/scheduling-<hash>.
    let exe = std::env::current_exe().expect("current executable");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/release directory");
    let binary = release.join("krake-api");
    assert!(binary.is_file(), "{} not built", binary.display());
    binary
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// Child mode: a bare controller process syncing one Application reflector.
///
/// 1. Runtime and client, connection opened by a GET of one stored Application
///    (`latency/app0`, bound): `base`.
/// 2. `APPS` in-memory copies of that Application, kept alive: `copies` (the size of the
///    typed objects alone, without any list buffer).
/// 3. One `Reflector<Application>` over every Application, synced: `synced`.
///
/// Prints `RSS <base kB> <copies kB> <synced kB> <objects> <JSON bytes per object>`.
fn rss_child(url: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = client(url);
        let template = client
            .api::<Application>()
            .get(Some(LATENCY_NS), "app0")
            .await
            .expect("API reachable");
        let reflector = Reflector::<Application>::all(&client);
        let store = reflector.store();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let base = rss_kb(std::process::id());
        let copies: Vec<Application> = (0..APPS).map(|_| template.clone()).collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let with_copies = rss_kb(std::process::id());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { reflector.run(shutdown).await }
        });
        tokio::time::timeout(Duration::from_secs(120), store.wait_until_ready())
            .await
            .expect("store synced within 120 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let synced = rss_kb(std::process::id());
        let objects = store.list();
        let json_bytes: usize = objects
            .iter()
            .map(|a| serde_json::to_vec(a.as_ref()).map_or(0, |v| v.len()))
            .sum();
        println!(
            "RSS {base} {with_copies} {synced} {} {}",
            store.len(),
            json_bytes / objects.len().max(1)
        );
        assert_eq!(copies.len(), APPS);
        shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    });
}

/// What the child measured.
struct Rss {
    base_kb: u64,
    copies_kb: u64,
    synced_kb: u64,
    cached: usize,
    json_bytes: usize,
}

/// Run the child mode of this binary and parse its line.
fn measure_rss(url: &str) -> Rss {
    let exe = std::env::current_exe().expect("current executable");
    let mut child = Command::new(exe)
        .env(RSS_CHILD_ENV, url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the RSS child");
    let deadline = Instant::now() + RSS_CHILD_LIMIT;
    loop {
        if child.try_wait().expect("child status").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("RSS child did not finish within {RSS_CHILD_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("child output");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("RSS "))
        .unwrap_or_else(|| panic!("no RSS line from the child: {text}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    Rss {
        base_kb: fields[1].parse().expect("base"),
        copies_kb: fields[2].parse().expect("with copies"),
        synced_kb: fields[3].parse().expect("synced"),
        cached: fields[4].parse().expect("count"),
        json_bytes: fields[5].parse().expect("JSON size"),
    }
}

/// Create `total` objects over 16 concurrent tasks (setup, unmeasured).
async fn create_all<R: Resource>(client: &Client, objects: Vec<R>) {
    let objects = Arc::new(Mutex::new(objects));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, objects) = (client.clone(), objects.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let next = objects.lock().expect("queue").pop();
                let Some(object) = next else { break };
                client.api::<R>().create(&object).await.expect("create");
            }
        }));
    }
    for task in tasks {
        task.await.expect("create task");
    }
}

struct LatencyRun {
    offered: f64,
    create: Latencies,
    observed: Latencies,
    server: Latencies,
    bound: usize,
}

/// Create `count` applications named `{prefix}{i}` at `CREATE_RATE`/s (open loop) and
/// time each until a watch shows its binding.
async fn create_and_bind(client: &Client, prefix: &str, count: usize) -> LatencyRun {
    let api = client.api::<Application>();
    let list = api.list(Some(LATENCY_NS)).await.expect("list");
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let prefix = prefix.to_string();

    // The watcher: first event of each measured application with `scheduled_to` set.
    let watcher = {
        let api = api.clone();
        let prefix = prefix.clone();
        let mut version = list.resource_version.clone();
        tokio::spawn(async move {
            let mut bound: HashMap<String, Instant> = HashMap::new();
            let deadline =
                Instant::now() + Duration::from_secs(count as u64 / CREATE_RATE) + BINDING_WAIT;
            let mut reconnects = 0;
            'watch: while bound.len() < count && Instant::now() < deadline && reconnects < 10 {
                let mut events = api.watch(Some(LATENCY_NS), version.as_deref());
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, events.next()).await {
                        Ok(Some(Ok(event))) => {
                            version = event.resource_version().map(str::to_string);
                            let app = match event {
                                WatchEvent::Added(a) | WatchEvent::Modified(a) => a,
                                WatchEvent::Deleted(_) => continue,
                            };
                            if app.metadata.name.starts_with(&prefix)
                                && app.status.scheduled_to.is_some()
                            {
                                bound.entry(app.metadata.name).or_insert_with(Instant::now);
                                if bound.len() == count {
                                    break 'watch;
                                }
                            }
                        }
                        Ok(Some(Err(_))) | Ok(None) => {
                            reconnects += 1;
                            continue 'watch;
                        }
                        Err(_) => break 'watch,
                    }
                }
            }
            bound
        })
    };
    // Let the watch connect before the first create.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / CREATE_RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut creates = Vec::with_capacity(count);
    for i in 0..count {
        ticker.tick().await;
        let (api, sent) = (api.clone(), sent.clone());
        let app = application(&format!("{prefix}{i}"), LATENCY_NS, 1);
        creates.push(tokio::spawn(async move {
            let t = Instant::now();
            sent.lock()
                .expect("sent")
                .insert(app.metadata.name.clone(), t);
            api.create(&app).await.expect("create");
            t.elapsed()
        }));
    }
    let offered = count as f64 / start.elapsed().as_secs_f64();
    let mut create_latencies = Vec::with_capacity(count);
    for task in creates {
        create_latencies.push(task.await.expect("create task"));
    }
    let bound = watcher.await.expect("watcher");
    let sent = sent.lock().expect("sent").clone();
    let observed: Vec<Duration> = bound
        .iter()
        .filter_map(|(name, at)| sent.get(name).map(|t| at.saturating_duration_since(*t)))
        .collect();

    // Server clock: `status.scheduled` (set by the binding) − `metadata.created`.
    let stored = api.list(Some(LATENCY_NS)).await.expect("list");
    let server: Vec<Duration> = stored
        .items
        .iter()
        .filter(|a| a.metadata.name.starts_with(&prefix))
        .filter_map(|a| {
            let scheduled = a.status.scheduled?.to_utc();
            (scheduled - a.metadata.created.to_utc()).to_std().ok()
        })
        .collect();
    LatencyRun {
        offered,
        create: latencies(create_latencies),
        observed: latencies(observed),
        server: latencies(server),
        bound: bound.len(),
    }
}

fn main() {
    if let Some(url) = std::env::var_os(RSS_CHILD_ENV) {
        rss_child(&url.to_string_lossy());
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(bench());
}

async fn bench() {
    // Built (or found) first, so that no compilation runs during a measurement.
    let binary = krake_api_binary();
    println!(
        "load average at start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    // 1. Decision throughput.
    let decider = Arc::new(Decider::new(Config::default().metrics_max_age));
    let apps: Arc<Vec<Application>> = Arc::new(
        (0..APPS)
            .map(|i| application(&format!("app{i}"), DECISION_NS, i))
            .collect(),
    );
    // Warm-up (not measured): 200 decisions.
    decide_all(decider.clone(), Arc::new(apps[..200].to_vec()), 1).await;
    let sequential = decide_all(decider.clone(), apps.clone(), 1).await;
    eprintln!("1 worker: {:.0} decisions/s", sequential.per_sec());
    let parallel = decide_all(
        decider.clone(),
        apps.clone(),
        Config::default().worker_count,
    )
    .await;
    eprintln!(
        "{} workers: {:.0} decisions/s",
        Config::default().worker_count,
        parallel.per_sec()
    );
    let selection = select_only(&decider, &apps).await;
    let uncached = decide_all(
        Arc::new(Decider::new(Duration::ZERO)),
        Arc::new(apps[..UNCACHED_DECISIONS].to_vec()),
        1,
    )
    .await;
    eprintln!("metrics_max_age 0: {:.0} decisions/s", uncached.per_sec());
    drop(decider);
    drop(apps);

    // 2. Create → binding latency.
    let etcd = EtcdServer::start().await;
    let server = ApiServerProcess::start(
        &binary,
        &["--etcd-endpoints", &etcd.endpoint(), "--log-level", "error"],
    )
    .await;
    let url = server.url();
    let setup = client(&url);
    create_all(&setup, (0..PROVIDERS).map(provider).collect()).await;
    create_all(&setup, (0..METRIC_DEFINITIONS).map(metric).collect()).await;
    for i in 0..LATENCY_CLUSTERS {
        let mut created = setup
            .api::<Cluster>()
            .create(&cluster(i, LATENCY_NS))
            .await
            .expect("create cluster");
        created.status.state = ClusterState::Online;
        setup
            .api::<Cluster>()
            .update_status(&created)
            .await
            .expect("cluster ONLINE");
    }
    let shutdown = CancellationToken::new();
    let scheduler = Scheduler::new(client(&url), Config::default()).expect("scheduler");
    let readiness = scheduler.readiness();
    let scheduler_task = tokio::spawn(scheduler.run(shutdown.clone()));
    let ready_deadline = Instant::now() + Duration::from_secs(30);
    while !readiness.is_ready() {
        assert!(
            Instant::now() < ready_deadline,
            "scheduler not ready in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let load = client(&url);
    let warmup = create_and_bind(&load, "warm", WARMUP_CREATES).await;
    assert_eq!(warmup.bound, WARMUP_CREATES, "warm-up applications bound");
    let run = create_and_bind(&load, "app", LATENCY_CREATES).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), scheduler_task).await;

    // 3. RSS with 10,000 Applications in a reflector store.
    let stored = WARMUP_CREATES + LATENCY_CREATES;
    create_all(
        &setup,
        (0..APPS - stored)
            .map(|i| application(&format!("r{i}"), RSS_NS, i))
            .collect(),
    )
    .await;
    let rss = measure_rss(&url);
    assert_eq!(rss.cached, APPS, "the child cached every Application");

    println!(
        "load average at end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!();
    println!("| Measurement | Result |");
    println!("|---|---|");
    let default_age = Config::default().metrics_max_age;
    println!(
        "{}",
        sequential.row(
            &format!(
                "decision path, {APPS} Applications × {CLUSTERS} Clusters × {METRICS_PER_CLUSTER} static metrics, `metrics_max_age` {default_age:?}, 1 worker"
            ),
            APPS
        )
    );
    println!(
        "{}",
        parallel.row(
            &format!(
                "same, {} workers (default `worker_count`) on 2 runtime threads",
                Config::default().worker_count
            ),
            APPS
        )
    );
    println!(
        "{}",
        uncached.row(
            &format!(
                "same, `metrics_max_age` 0: candidates rebuilt for every decision ({} metric resolutions, {METRIC_DEFINITIONS} distinct provider queries), 1 worker",
                CLUSTERS * METRICS_PER_CLUSTER
            ),
            UNCACHED_DECISIONS
        )
    );
    println!(
        "{}",
        selection.row(
            "filtering + scoring alone (`select_placement`, metrics fetched once)",
            APPS
        )
    );
    println!(
        "| create → binding, {CREATE_RATE} creates/s offered ({:.1}/s achieved), {LATENCY_CLUSTERS} clusters, observed by a watch | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({}/{LATENCY_CREATES} bound) |",
        run.offered, run.observed.p50_ms, run.observed.p99_ms, run.observed.max_ms, run.bound
    );
    println!(
        "| same, server clock (`status.scheduled` − `metadata.created`) | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples) |",
        run.server.p50_ms, run.server.p99_ms, run.server.max_ms, run.server.count
    );
    println!(
        "| create request alone at that rate | p50 {:.2} ms, p99 {:.2} ms |",
        run.create.p50_ms, run.create.p99_ms
    );
    let mb = |kb: u64| kb as f64 / 1024.0;
    let per_app = |kb: u64| kb as f64 * 1024.0 / APPS as f64;
    let sync = rss.synced_kb.saturating_sub(rss.copies_kb);
    let copies = rss.copies_kb.saturating_sub(rss.base_kb);
    println!(
        "| reflector store with {APPS} Applications ({} JSON bytes each on the wire): VmRSS before → after sync | {:.1} MB → {:.1} MB: +{:.1} MB ({:.0} bytes per Application) |",
        rss.json_bytes,
        mb(rss.copies_kb),
        mb(rss.synced_kb),
        mb(sync),
        per_app(sync)
    );
    println!(
        "| before that, same process: {APPS} in-memory copies of one stored (bound) Application | {:.1} MB → {:.1} MB: +{:.1} MB ({:.0} bytes per Application) |",
        mb(rss.base_kb),
        mb(rss.copies_kb),
        mb(copies),
        per_app(copies)
    );
    drop(server);
    drop(etcd);
}
