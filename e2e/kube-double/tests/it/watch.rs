//! Watches: raw event streams (resume, bookmarks, 410 in-stream, selectors, timeout) and
//! kube-runtime's `watcher` (initial list, live events, relist after a compaction).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube_double::store::WriteCtx;
use serde_json::json;

use crate::common::{client, double};

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

fn rv_of(cm: &ConfigMap) -> String {
    cm.metadata.resource_version.clone().unwrap()
}

#[tokio::test]
async fn a_watch_resumes_after_a_version_with_bookmarks_and_selector_transitions() {
    let double = double().await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&double).await, "default");
    let first = cms
        .create(&PostParams::default(), &cm("one", json!({"app": "x"})))
        .await
        .unwrap();
    let params = WatchParams::default()
        .labels("app=x")
        .timeout(3)
        .disable_bookmarks();
    let mut events = cms.watch(&params, &rv_of(&first)).await.unwrap().boxed();

    cms.create(&PostParams::default(), &cm("two", json!({"app": "x"})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("ignored", json!({"app": "y"})))
        .await
        .unwrap();
    cms.patch(
        "one",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    cms.delete("two", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match events
            .try_next()
            .await
            .unwrap()
            .expect("the stream goes on")
        {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            other => panic!("unexpected {other:?}"),
        }
    }
    // "one" left the selection: reported as deleted, as a real server does.
    assert_eq!(seen, vec!["ADDED two", "DELETED one", "DELETED two"]);
    // Nothing else, and the stream ends at its timeout.
    assert!(events.try_next().await.unwrap().is_none());

    let bookmarks = WatchParams::default().timeout(5);
    let mut events = cms
        .watch(&bookmarks, &double.store().resource_version().to_string())
        .await
        .unwrap()
        .boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Bookmark(b)) => assert!(!b.metadata.resource_version.is_empty()),
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn a_compacted_version_is_a_410_error_event_in_the_stream() {
    let double = double().await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&double).await, "default");
    let first = cms
        .create(&PostParams::default(), &cm("one", json!({})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("two", json!({})))
        .await
        .unwrap();
    double.compact();
    let mut events = cms
        .watch(&WatchParams::default().disable_bookmarks(), &rv_of(&first))
        .await
        .expect("HTTP 200, as a real server")
        .boxed();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Error(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(
        events.try_next().await.unwrap().is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test]
async fn the_runtime_watcher_lists_follows_and_relists_after_410() {
    let double = double().await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&double).await, "default");
    cms.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("doomed", json!({})))
        .await
        .unwrap();
    let config = watcher::Config::default().page_size(1);
    let mut events = watcher(cms.clone(), config).default_backoff().boxed();

    let mut initial = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Init => {}
            watcher::Event::InitApply(o) => initial.push(o.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(initial, vec!["before", "doomed"], "paged initial list");

    cms.create(&PostParams::default(), &cm("live", json!({})))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        watcher::Event::Apply(o) => assert_eq!(o.metadata.name.as_deref(), Some("live")),
        other => panic!("unexpected {other:?}"),
    }

    // While the watcher is cut off: a change, a deletion, and the history compacted.
    double.set_reachable(false).await.unwrap();
    let kind = double.store().kind("", "v1", "configmaps").unwrap();
    let ctx = WriteCtx {
        manager: "test".into(),
        api_version: "v1".into(),
        ..WriteCtx::default()
    };
    double
        .store()
        .create(
            &kind,
            Some("default"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "offline"}}),
            &ctx,
        )
        .unwrap();
    double
        .store()
        .delete(&kind, Some("default"), "doomed", &Default::default())
        .unwrap();
    double.compact();
    double.set_reachable(true).await.unwrap();

    let mut relisted = Vec::new();
    let mut restarted = false;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("the watcher recovers")
            .unwrap();
        match event {
            Ok(watcher::Event::Init) => restarted = true,
            Ok(watcher::Event::InitApply(o)) => relisted.push(o.metadata.name.unwrap()),
            Ok(watcher::Event::InitDone) => break,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {} // connection refused while unreachable: retried with backoff
        }
    }
    assert!(restarted, "a 410 makes the watcher relist");
    assert_eq!(relisted, vec!["before", "live", "offline"]);
}
