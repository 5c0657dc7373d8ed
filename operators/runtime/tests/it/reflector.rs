//! Reflector behaviour against the in-memory fake API, with a paused clock.

use std::time::Duration;

use crate::common::{FakeApi, role};
use krake_crds::core::Role;
use krake_runtime::{Backoff, CancellationToken, Change, Reflector, ReflectorConfig};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// Exact backoff delays, so that tests can check instants.
fn config() -> ReflectorConfig {
    ReflectorConfig {
        backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).without_jitter(),
        relist_interval: None,
        healthy_watch: Duration::from_secs(10),
    }
}

fn describe(change: &Change<Role>) -> String {
    match change {
        Change::Added(o) => format!("+{}", o.metadata.name),
        Change::Modified { new, .. } => format!("~{}", new.metadata.name),
        Change::Deleted(o) => format!("-{}", o.metadata.name),
    }
}

async fn next(rx: &mut UnboundedReceiver<Change<Role>>) -> String {
    let change = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a change within 60 s")
        .expect("reflector alive");
    describe(&change)
}

/// Let every runnable task run (the clock only advances when all are idle).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

fn label(store: &krake_runtime::Store<Role>, name: &str) -> Option<String> {
    store
        .get_named(None, name)
        .map(|r| r.metadata.labels["v"].as_str().unwrap().to_string())
}

#[tokio::test(start_paused = true)]
async fn lists_then_watches_from_the_list_revision() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "1"));
    api.put(role("b", "1"));
    let list_rev = api.revision();

    let reflector = Reflector::new(api.clone(), config());
    let mut changes = reflector.subscribe();
    let store = reflector.store();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let r = reflector.clone();
        let s = shutdown.clone();
        async move { r.run(s).await }
    });

    store.wait_until_ready().await;
    assert_eq!(store.len(), 2);
    assert_eq!(next(&mut changes).await, "+a");
    assert_eq!(next(&mut changes).await, "+b");

    api.put(role("a", "2"));
    assert_eq!(next(&mut changes).await, "~a");
    assert_eq!(label(&store, "a").as_deref(), Some("2"));
    api.remove("b");
    assert_eq!(next(&mut changes).await, "-b");
    assert!(store.get_named(None, "b").is_none());

    assert_eq!(
        api.calls(),
        vec!["list".to_string(), format!("watch {list_rev}")]
    );

    // A second run of the same reflector does not start a second loop.
    let again = tokio::spawn({
        let r = reflector.clone();
        let s = shutdown.clone();
        async move { r.run(s).await }
    });
    settle().await;
    assert_eq!(api.calls().len(), 2);

    shutdown.cancel();
    task.await.unwrap();
    again.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn resumes_from_the_last_revision_after_a_disconnection() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "1"));
    let reflector = Reflector::new(api.clone(), config());
    let mut changes = reflector.subscribe();
    let store = reflector.store();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let r = reflector.clone();
        let s = shutdown.clone();
        async move { r.run(s).await }
    });
    assert_eq!(next(&mut changes).await, "+a");
    let rev_b = api.put(role("b", "1"));
    assert_eq!(next(&mut changes).await, "+b");

    // The stream ends; changes happen before the reflector reconnects.
    api.disconnect_watchers();
    api.put(role("a", "2"));
    api.remove("b");
    assert_eq!(next(&mut changes).await, "~a");
    assert_eq!(next(&mut changes).await, "-b");
    assert_eq!(label(&store, "a").as_deref(), Some("2"));

    // Resumed from the revision of the last event seen, without a re-list.
    let calls = api.calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "list").count(),
        1,
        "{calls:?}"
    );
    assert_eq!(calls.last().unwrap(), &format!("watch {rev_b}"));
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn relists_after_410_and_reports_what_vanished() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "1"));
    api.put(role("b", "1"));
    let reflector = Reflector::new(api.clone(), config());
    let mut changes = reflector.subscribe();
    let store = reflector.store();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let r = reflector.clone();
        let s = shutdown.clone();
        async move { r.run(s).await }
    });
    assert_eq!(next(&mut changes).await, "+a");
    assert_eq!(next(&mut changes).await, "+b");

    // While disconnected: b removed, c created, a changed, and the history is lost.
    api.disconnect_watchers();
    api.remove("b");
    api.put(role("c", "1"));
    api.put(role("a", "2"));
    api.compact();

    let mut seen = vec![
        next(&mut changes).await,
        next(&mut changes).await,
        next(&mut changes).await,
    ];
    seen.sort();
    assert_eq!(seen, vec!["+c", "-b", "~a"]);
    let mut names: Vec<String> = store
        .list()
        .iter()
        .map(|r| r.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, vec!["a", "c"]);

    let calls = api.calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "list").count(),
        2,
        "{calls:?}"
    );
    // After the re-list it watches from the new list's revision.
    assert_eq!(calls.last().unwrap(), &format!("watch {}", api.revision()));

    // And keeps following changes.
    api.put(role("d", "1"));
    assert_eq!(next(&mut changes).await, "+d");
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failed_lists_back_off_exponentially() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "1"));
    api.fail_lists(5);
    let reflector = Reflector::new(api.clone(), config());
    let store = reflector.store();
    let shutdown = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn({
        let r = reflector.clone();
        let s = shutdown.clone();
        async move { r.run(s).await }
    });
    store.wait_until_ready().await;
    // 1 + 2 + 4 + 8 + 8 (cap) seconds of backoff before the sixth list succeeds.
    assert_eq!(start.elapsed(), Duration::from_secs(23));
    assert_eq!(api.calls().iter().filter(|c| *c == "list").count(), 6);
    assert_eq!(store.len(), 1);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn watches_that_end_at_once_back_off_and_healthy_ones_reset() {
    let api = FakeApi::<Role>::new();
    let reflector = Reflector::new(api.clone(), config());
    let store = reflector.store();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let r = reflector.clone();
        let s = shutdown.clone();
        async move { r.run(s).await }
    });
    store.wait_until_ready().await;
    settle().await;
    let watches = || {
        api.calls()
            .iter()
            .filter(|c| c.starts_with("watch"))
            .count()
    };
    assert_eq!(watches(), 1);

    // Each watch is cut right away (no event, short-lived): reconnects after 1, 2, 4 s.
    let mut reconnects = Vec::new();
    let mut last = Instant::now();
    for _ in 0..3 {
        let before = watches();
        api.disconnect_watchers();
        while watches() == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        reconnects.push((Instant::now() - last).as_millis() / 100 * 100);
        last = Instant::now();
    }
    assert_eq!(reconnects, vec![1000, 2000, 4000]);

    // A watch that delivered an event is healthy: its end is followed at once.
    api.put(role("x", "1"));
    settle().await;
    let before = watches();
    api.disconnect_watchers();
    let cut = Instant::now();
    while watches() == before {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        cut.elapsed() < Duration::from_millis(200),
        "{:?}",
        cut.elapsed()
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn periodic_relist_corrects_a_cache_that_missed_events() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "1"));
    let reflector = Reflector::new(
        api.clone(),
        ReflectorConfig {
            relist_interval: Some(Duration::from_secs(60)),
            ..config()
        },
    );
    let store = reflector.store();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let r = reflector.clone();
        let s = shutdown.clone();
        async move { r.run(s).await }
    });
    store.wait_until_ready().await;
    settle().await;
    // An event is lost: the watch never reports this change.
    api.put_silently(role("a", "2"));
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(label(&store, "a").as_deref(), Some("1"));
    // The periodic re-list repairs the cache.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(label(&store, "a").as_deref(), Some("2"));
    assert_eq!(api.calls().iter().filter(|c| *c == "list").count(), 2);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_reflector_can_run_again_after_its_task_was_dropped() {
    let api = FakeApi::<Role>::new();
    api.put(role("a", "1"));
    let reflector = Reflector::new(api.clone(), config());
    let task = tokio::spawn({
        let r = reflector.clone();
        async move { r.run(CancellationToken::new()).await }
    });
    reflector.store().wait_until_ready().await;
    settle().await;
    task.abort();
    let _ = task.await;
    let lists = || api.calls().iter().filter(|c| *c == "list").count();
    assert_eq!(lists(), 1);

    api.put(role("b", "1"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let r = reflector.clone();
        let s = shutdown.clone();
        async move { r.run(s).await }
    });
    settle().await;
    assert_eq!(lists(), 2, "a new run lists again");
    assert!(reflector.store().get_named(None, "b").is_some());
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn default_retries_are_jittered_so_reflectors_do_not_retry_in_lockstep() {
    assert!(ReflectorConfig::default().backoff.jitter);
    // Five reflectors whose API fails twice: with the default backoff (1 s doubling)
    // each is listed after 1 + 2 s at most and half that at least, at its own instant.
    let start = Instant::now();
    let mut reflectors = Vec::new();
    let shutdown = CancellationToken::new();
    for _ in 0..5 {
        let api = FakeApi::<Role>::new();
        api.fail_lists(2);
        let reflector = Reflector::new(
            api,
            ReflectorConfig {
                relist_interval: None,
                ..ReflectorConfig::default()
            },
        );
        tokio::spawn({
            let r = reflector.clone();
            let s = shutdown.clone();
            async move { r.run(s).await }
        });
        reflectors.push(reflector.store());
    }
    let mut synced_at = vec![None; reflectors.len()];
    while synced_at.iter().any(Option::is_none) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        for (i, store) in reflectors.iter().enumerate() {
            if store.is_synced() && synced_at[i].is_none() {
                synced_at[i] = Some(start.elapsed());
            }
        }
        assert!(start.elapsed() < Duration::from_secs(4), "{synced_at:?}");
    }
    let synced_at: Vec<Duration> = synced_at.into_iter().map(Option::unwrap).collect();
    for at in &synced_at {
        assert!(
            *at >= Duration::from_millis(1500) && *at <= Duration::from_millis(3010),
            "{synced_at:?}"
        );
    }
    assert!(
        synced_at.iter().any(|at| *at != synced_at[0]),
        "all retried at once: {synced_at:?}"
    );
    shutdown.cancel();
}
