//! The watch cache is bounded by bytes: large updates evict the oldest events (reported in
//! the metrics), and a watch resumed from before the evicted range still gets every event
//! in order from the store's history, or 410 Gone once the store lost it too.

use std::time::Duration;

use krake_api_server::config::StorageConfig;
use rstest::rstest;
use serde_json::{Value, json};

use crate::common::*;

const NS: &str = "ns1";
/// The per-kind bound of these tests.
const CACHE_BYTES: usize = 512 * 1024;
/// Each update carries this much, so a few updates exceed the bound.
const PADDING: usize = 128 * 1024;

fn metric(name: &str, fill: char) -> Value {
    let mut body = K::Metric.sample(name);
    body["metadata"]["namespace"] = json!(NS);
    body["spec"]["provider"]["metric"] = json!(fill.to_string().repeat(PADDING));
    body
}

/// The value of the sample `name{kind="Metric"}` in the server's metrics.
async fn metric_sample(srv: &TestServer, name: &str) -> u64 {
    let text = srv
        .raw(reqwest::Method::GET, "/metrics", None, &[])
        .await
        .text();
    let prefix = format!("{name}{{kind=\"Metric\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {prefix} in the metrics:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}

/// Create a Metric and update it `updates` times with large bodies; every stored version.
async fn large_updates(srv: &TestServer, name: &str, updates: usize) -> Vec<Value> {
    let object = K::Metric.object(NS, name);
    let mut versions = vec![srv.create_body(K::Metric, NS, &metric(name, 'a')).await];
    for i in 0..updates {
        let fill = char::from(b'b' + (i % 20) as u8);
        let (status, _, updated) = srv.put(&object, &metric(name, fill)).await;
        assert_eq!(status, 200, "{updated}");
        versions.push(updated);
    }
    versions
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn large_updates_keep_the_cache_within_its_byte_bound(#[case] backend: Backend) {
    let srv = TestServer::with_config(backend, |c| c.watch_cache_bytes = CACHE_BYTES).await;
    let updates = 24;
    large_updates(&srv, "big", updates).await;
    // The cache follows the store asynchronously: wait until it saw the last update.
    let evictions = eventually(
        "the watch cache evicts the old events",
        Duration::from_secs(20),
        || async {
            let evicted = metric_sample(&srv, "krake_api_watch_cache_evictions_total").await;
            (evicted + 3 >= updates as u64).then_some(evicted)
        },
    )
    .await;
    assert!(evictions <= updates as u64, "{evictions}");
    let held = metric_sample(&srv, "krake_api_watch_cache_bytes").await;
    assert!(held as usize <= CACHE_BYTES, "{held} bytes held");
    // At least the last events are kept (each one is within the bound).
    assert!(held as usize >= 2 * PADDING, "{held} bytes held");
}

/// A resume point before the evicted range is served from the store, every event in order,
/// then the live ones; once the store has lost it too, 410 Gone.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn a_watch_resumed_before_the_evicted_range_gets_every_event(#[case] backend: Backend) {
    let srv = TestServer::with_config(backend, |c| {
        c.watch_cache_bytes = CACHE_BYTES;
        if let StorageConfig::Embedded { history_limit, .. } = &mut c.storage {
            *history_limit = 30;
        }
    })
    .await;
    let collection = K::Metric.collection(NS);
    let versions = large_updates(&srv, "big", 12).await;
    eventually(
        "the watch cache evicts the old events",
        Duration::from_secs(20),
        || async {
            (metric_sample(&srv, "krake_api_watch_cache_evictions_total").await >= 6).then_some(())
        },
    )
    .await;

    let mut w = srv
        .watch(&format!(
            "{collection}?watch&heartbeat=0&resource_version={}",
            rv(&versions[0])
        ))
        .await;
    assert_eq!(w.status, 200);
    for version in &versions[1..] {
        assert_eq!(&w.expect("MODIFIED", "big").await, version);
    }
    let late = srv.create_body(K::Metric, NS, &metric("late", 'z')).await;
    assert_eq!(w.expect("ADDED", "late").await, late);
    drop(w);

    // The store loses the start of the history: compaction on etcd, the history limit
    // (30 events) on the embedded store.
    let last = large_updates(&srv, "more", 30).await.pop().unwrap();
    if backend == Backend::Etcd {
        let revision: i64 = rv(&last).parse().unwrap();
        srv.etcd_client()
            .await
            .compact(
                revision,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .expect("compact etcd");
    }
    let r = srv
        .get(&format!(
            "{collection}?watch&heartbeat=0&resource_version={}",
            rv(&versions[0])
        ))
        .await;
    assert_problem(&r, 410, None, "410: ");
}
