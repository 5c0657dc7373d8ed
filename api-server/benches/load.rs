//! Load benchmark of the API server on a real etcd, side by side with raw etcd
//! throughput on the same machine (the physical limit). Run with:
//!
//! ```sh
//! cargo bench -p krake-api-server --bench load
//! ```
//!
//! It starts its own etcd and `krake-api` (release build) processes and prints a Markdown
//! table for `docs/benchmarks.md`. Every request loop is bounded in count and time.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use krake_testkit::api_server::ApiServerProcess;
use krake_testkit::etcd::EtcdServer;
use krake_testkit::http;
use serde_json::{Value, json};
use tokio::sync::Barrier;

const CONCURRENCY: usize = 16;
const CREATES: usize = 4_000;
const GETS: usize = 20_000;
const LIST_ROUNDS: usize = 50;
const WATCHERS: usize = 1_000;
const WATCH_UPDATES: usize = 1_000;
/// Applications stored in total when RSS is measured.
const RSS_OBJECTS: usize = 10_000;

fn application(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "manifest": [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                   "template": {"metadata": {"labels": {"app": "web"}},
                                                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}],
            "constraints": {"cluster": {"labels": ["location is DE"]}}
        }
    })
}

struct Stats {
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn stats(mut latencies: Vec<Duration>, elapsed: Duration) -> Stats {
    latencies.sort();
    let pick = |q: f64| {
        latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
    };
    Stats {
        ops_per_sec: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

/// Run `total` operations over `CONCURRENCY` tasks; each call gets a global index.
async fn concurrently<F, Fut>(total: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(CONCURRENCY));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY {
        let op = op.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut latencies = Vec::new();
            let mut i = t;
            while i < total {
                let s = Instant::now();
                op(i).await;
                latencies.push(s.elapsed());
                i += CONCURRENCY;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    stats(all, start.elapsed())
}

/// Create `count` Applications named `{prefix}{i}` in the collection `url`, over
/// `CONCURRENCY` tasks.
async fn create_applications(
    client: &reqwest::Client,
    url: &str,
    prefix: &str,
    count: usize,
) -> Stats {
    let client = client.clone();
    let url = url.to_string();
    let prefix = prefix.to_string();
    concurrently(count, move |i| {
        let client = client.clone();
        let url = url.clone();
        let body = application(&format!("{prefix}{i}"));
        async move {
            http::create(&client, &url, &body).await;
        }
    })
    .await
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    let etcd = EtcdServer::start().await;
    let endpoint = etcd.endpoint();

    // The limit: etcd create-if-absent transactions (what a Krake create does) at the same
    // concurrency, through one gRPC client.
    let raw = Client::connect([endpoint.as_str()], None)
        .await
        .expect("etcd");
    let value = krake_crds::json::to_vec(&application("raw"));
    let raw_creates = {
        let raw = raw.clone();
        let value = value.clone();
        concurrently(CREATES, move |i| {
            let mut kv = raw.kv_client();
            let value = value.clone();
            async move {
                let key = format!("/bench/raw/{i}");
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key, value, None)]);
                kv.txn(txn).await.expect("etcd txn");
            }
        })
        .await
    };
    let raw_gets = {
        let raw = raw.clone();
        concurrently(GETS, move |_| {
            let mut kv = raw.kv_client();
            async move {
                kv.get("/bench/raw/0", None).await.expect("etcd get");
            }
        })
        .await
    };

    let binary = Path::new(env!("CARGO_BIN_EXE_krake-api"));
    let server = ApiServerProcess::start(
        binary,
        &["--etcd-endpoints", &endpoint, "--log-level", "error"],
    )
    .await;
    let base = server.url();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let apps = format!("{base}/kubernetes/namespaces/bench/applications");

    let creates = create_applications(&client, &apps, "app", CREATES).await;

    let gets = {
        let client = client.clone();
        let url = format!("{apps}/app0");
        concurrently(GETS, move |_| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
            }
        })
        .await
    };

    // LIST of exactly 1,000 Applications in their own namespace.
    let list_ns = format!("{base}/kubernetes/namespaces/list1000/applications");
    create_applications(&client, &list_ns, "l", 1000).await;
    let body: Value = client
        .get(&list_ns)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1000);
    let mut list_latencies = Vec::new();
    let start = Instant::now();
    for _ in 0..LIST_ROUNDS {
        // Time to the complete body; parsing it is the client's cost, not the server's.
        let s = Instant::now();
        let bytes = client
            .get(&list_ns)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        list_latencies.push(s.elapsed());
        assert!(bytes.len() > 1000 * 500);
    }
    let lists = stats(list_latencies, start.elapsed());

    // 1,000 watchers, 1,000 updates of one object: time until every watcher has every event.
    let watch_url = format!("{base}/kubernetes/namespaces/watch/applications?watch&heartbeat=0");
    let target = format!("{base}/kubernetes/namespaces/watch/applications/w");
    let created: Value = client
        .post(format!("{base}/kubernetes/namespaces/watch/applications"))
        .json(&application("w"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut watchers = Vec::new();
    let ready = Arc::new(Barrier::new(WATCHERS + 1));
    for _ in 0..WATCHERS {
        // One connection per watcher, as real controllers have.
        let watch_client = reqwest::Client::new();
        let url = watch_url.clone();
        let ready = ready.clone();
        watchers.push(tokio::spawn(async move {
            let mut response = watch_client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            ready.wait().await;
            let mut seen = 0usize;
            let mut buffer = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(300);
            while seen < WATCH_UPDATES && Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(60), response.chunk()).await {
                    Ok(Ok(Some(chunk))) => {
                        buffer.extend_from_slice(&chunk);
                        while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = buffer.drain(..=pos).collect();
                            if line.len() > 1 {
                                seen += 1;
                            }
                        }
                    }
                    _ => break,
                }
            }
            (seen, Instant::now())
        }));
    }
    ready.wait().await;
    let start = Instant::now();
    let mut object = created;
    for i in 0..WATCH_UPDATES {
        object["metadata"]["labels"] = json!({"round": i.to_string()});
        object["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resource_version");
        let r = client.put(&target).json(&object).send().await.unwrap();
        assert_eq!(r.status(), 200);
        object = r.json().await.unwrap();
    }
    let mut complete = 0usize;
    let mut last = start;
    for w in watchers {
        let (seen, at) = w.await.unwrap();
        if seen == WATCH_UPDATES {
            complete += 1;
        }
        last = last.max(at);
    }
    let fanout = last - start;

    // Memory with 10,000 Applications stored (the steps above stored 5,001).
    let stored_so_far = CREATES + 1000 + 1;
    create_applications(
        &client,
        &format!("{base}/kubernetes/namespaces/rss/applications"),
        "m",
        RSS_OBJECTS - stored_so_far,
    )
    .await;
    let rss = rss_mb(server.pid());
    // And after listing all 10,000 at once (peak buffers of a full list).
    let all: Value = client
        .get(format!("{base}/kubernetes/applications"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), RSS_OBJECTS);
    let rss_after_list = rss_mb(server.pid());

    println!("| Measurement | Krake API | raw etcd (limit) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| creates, concurrency {CONCURRENCY} ({CREATES} ops) | {:.0}/s (p50 {:.2} ms, p99 {:.2} ms) | {:.0}/s (p50 {:.2} ms, p99 {:.2} ms) | {:.0}% |",
        creates.ops_per_sec,
        creates.p50_ms,
        creates.p99_ms,
        raw_creates.ops_per_sec,
        raw_creates.p50_ms,
        raw_creates.p99_ms,
        100.0 * creates.ops_per_sec / raw_creates.ops_per_sec
    );
    println!(
        "| GET one Application, concurrency {CONCURRENCY} ({GETS} ops) | {:.0}/s (p50 {:.2} ms, p99 {:.2} ms) | {:.0}/s (p50 {:.2} ms, p99 {:.2} ms) | {:.0}% |",
        gets.ops_per_sec,
        gets.p50_ms,
        gets.p99_ms,
        raw_gets.ops_per_sec,
        raw_gets.p50_ms,
        raw_gets.p99_ms,
        100.0 * gets.ops_per_sec / raw_gets.ops_per_sec
    );
    println!(
        "| LIST 1,000 Applications ({LIST_ROUNDS} rounds) | p50 {:.2} ms, p99 {:.2} ms | – | – |",
        lists.p50_ms, lists.p99_ms
    );
    println!(
        "| {WATCHERS} watchers × {WATCH_UPDATES} updates | all events to all watchers in {:.2} s; {complete}/{WATCHERS} watchers got every event | – | – |",
        fanout.as_secs_f64()
    );
    println!(
        "| API server RSS with {RSS_OBJECTS} Applications stored | {rss:.1} MB; {rss_after_list:.1} MB after listing all of them | – | – |"
    );
}
