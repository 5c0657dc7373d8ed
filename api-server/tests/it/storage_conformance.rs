//! Storage conformance: one suite of behaviours, written once against the `Store` trait
//! and run against every backend (the embedded store on a temporary directory, and a real
//! etcd process per test). Backend-specific behaviour (persistence across reopen, history
//! limit, lagging watchers, etcd outages) follows the shared cases.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use krake_api_server::error::Error;
use krake_api_server::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use krake_api_server::storage::etcd::EtcdStore;
use krake_api_server::storage::{KeyValue, Store, WatchEvent, WatchStream, WriteOutcome};
use krake_testkit::etcd::EtcdServer;

/// How long a test waits for an event that must come.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A backend under test, with whatever must stay alive while it is used.
struct Backend {
    store: Arc<dyn Store>,
    compactor: Compactor,
    _keep_alive: Box<dyn Any + Send>,
}

/// Drops history before a revision, the backend's own way.
enum Compactor {
    Embedded(EmbeddedStore),
    Etcd(Box<etcd_client::Client>),
}

impl Backend {
    async fn embedded() -> Backend {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path().join("store.redb"), 1_000)
            .await
            .expect("open the embedded store");
        Backend {
            store: Arc::new(store.clone()),
            compactor: Compactor::Embedded(store),
            _keep_alive: Box::new(dir),
        }
    }

    async fn etcd() -> Backend {
        let server = EtcdServer::start().await;
        let store = EtcdStore::connect(vec![server.endpoint()], Duration::from_secs(5))
            .await
            .expect("connect to etcd");
        let client = etcd_client::Client::connect([server.endpoint()], None)
            .await
            .expect("connect the compaction client");
        Backend {
            store: Arc::new(store),
            compactor: Compactor::Etcd(Box::new(client)),
            _keep_alive: Box::new(server),
        }
    }

    /// Make every revision before `revision` unavailable to watches.
    async fn compact(&self, revision: i64) {
        match &self.compactor {
            Compactor::Embedded(store) => store.compact(revision).await.expect("compact"),
            Compactor::Etcd(client) => {
                let options = etcd_client::CompactionOptions::new().with_physical();
                let mut client = client.as_ref().clone();
                client
                    .compact(revision, Some(options))
                    .await
                    .expect("compact");
            }
        }
    }
}

/// Generate one `#[tokio::test]` per backend per case.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::embedded().await;
                    super::$case(&backend).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::Backend::etcd().await;
                    super::$case(&backend).await;
                }
            )*
        }
    };
}

conformance!(
    create_then_get,
    create_on_existing_key_conflicts,
    update_with_current_revision,
    update_with_stale_revision_conflicts,
    update_or_delete_of_missing_key_conflicts,
    delete_with_current_and_stale_revision,
    list_by_prefix,
    watch_from_now,
    watch_replays_history,
    watch_before_compaction_fails,
    versions_count_writes,
    concurrent_conditional_updates,
    watcher_receives_burst_in_order,
    values_over_the_limit_are_refused_before_the_write,
);

// ---------------------------------------------------------------------------------------
// Helpers

#[track_caller]
fn written(outcome: WriteOutcome) -> i64 {
    match outcome {
        WriteOutcome::Written(revision) => revision,
        WriteOutcome::Conflict => panic!("expected the write to succeed, got a conflict"),
    }
}

async fn must_get(store: &dyn Store, key: &str) -> KeyValue {
    store
        .get(key)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{key} missing"))
}

async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(error))) => panic!("watch failed: {error}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

/// Assert that nothing arrives for a while (a missing filter would show up here).
async fn assert_quiet(stream: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

fn kv(key: &str, value: &[u8], create_revision: i64, mod_revision: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
        version,
    }
}

// ---------------------------------------------------------------------------------------
// Shared cases

async fn create_then_get(backend: &Backend) {
    let store = &*backend.store;
    let before = store.current_revision().await.expect("revision");
    let rev = written(
        store
            .create("/core/roles/r1", b"{\"a\":1}".to_vec())
            .await
            .expect("create"),
    );
    assert!(rev > before, "revision {rev} not after {before}");
    assert_eq!(
        must_get(store, "/core/roles/r1").await,
        kv("/core/roles/r1", b"{\"a\":1}", rev, rev, 1)
    );
    assert_eq!(store.get("/core/roles/r2").await.expect("get"), None);
    assert_eq!(
        store.get("/core/roles/r").await.expect("get"),
        None,
        "get is not a prefix read"
    );
    assert_eq!(store.current_revision().await.expect("revision"), rev);
}

async fn values_over_the_limit_are_refused_before_the_write(backend: &Backend) {
    let store = &*backend.store;
    let limit = store.max_value_bytes();
    // Both backends take etcd's default limit minus the request envelope.
    assert_eq!(limit, 1_572_864 - 4096);
    let key = "/core/roles/big";
    let rev = written(
        store
            .create(key, vec![b'a'; limit])
            .await
            .expect("a value of exactly the limit"),
    );
    let before = store.current_revision().await.expect("revision");
    match store.update(key, vec![b'b'; limit + 1], rev).await {
        Err(Error::ObjectTooLarge { size, limit: l }) => {
            assert_eq!((size, l), (Some(limit + 1), limit));
        }
        other => panic!("update over the limit: {other:?}"),
    }
    match store
        .create("/core/roles/bigger", vec![b'c'; limit + 1])
        .await
    {
        Err(Error::ObjectTooLarge { .. }) => {}
        other => panic!("create over the limit: {other:?}"),
    }
    assert_eq!(store.current_revision().await.expect("revision"), before);
    assert_eq!(must_get(store, key).await.value, vec![b'a'; limit]);
    assert_eq!(store.get("/core/roles/bigger").await.expect("get"), None);
}

async fn create_on_existing_key_conflicts(backend: &Backend) {
    let store = &*backend.store;
    let rev = written(
        store
            .create("/k/a", b"first".to_vec())
            .await
            .expect("create"),
    );
    assert_eq!(
        store
            .create("/k/a", b"second".to_vec())
            .await
            .expect("create"),
        WriteOutcome::Conflict
    );
    assert_eq!(
        must_get(store, "/k/a").await,
        kv("/k/a", b"first", rev, rev, 1)
    );
    assert_eq!(
        store.current_revision().await.expect("revision"),
        rev,
        "a failed create must not bump the revision"
    );
}

async fn update_with_current_revision(backend: &Backend) {
    let store = &*backend.store;
    let created = written(store.create("/k/a", b"v1".to_vec()).await.expect("create"));
    let updated = written(
        store
            .update("/k/a", b"v2".to_vec(), created)
            .await
            .expect("update"),
    );
    assert!(updated > created);
    assert_eq!(
        must_get(store, "/k/a").await,
        kv("/k/a", b"v2", created, updated, 2)
    );
    assert_eq!(store.current_revision().await.expect("revision"), updated);
}

async fn update_with_stale_revision_conflicts(backend: &Backend) {
    let store = &*backend.store;
    let created = written(store.create("/k/a", b"v1".to_vec()).await.expect("create"));
    let updated = written(
        store
            .update("/k/a", b"v2".to_vec(), created)
            .await
            .expect("update"),
    );
    for stale in [created, 0, updated + 1] {
        assert_eq!(
            store
                .update("/k/a", b"v3".to_vec(), stale)
                .await
                .expect("update"),
            WriteOutcome::Conflict,
            "update expecting revision {stale}"
        );
    }
    assert_eq!(
        must_get(store, "/k/a").await,
        kv("/k/a", b"v2", created, updated, 2)
    );
    assert_eq!(store.current_revision().await.expect("revision"), updated);
}

async fn update_or_delete_of_missing_key_conflicts(backend: &Backend) {
    let store = &*backend.store;
    for expected in [0, 1, 5] {
        assert_eq!(
            store
                .update("/k/missing", b"x".to_vec(), expected)
                .await
                .expect("update"),
            WriteOutcome::Conflict,
            "update expecting {expected}"
        );
        assert_eq!(
            store.delete("/k/missing", expected).await.expect("delete"),
            WriteOutcome::Conflict,
            "delete expecting {expected}"
        );
    }
    assert_eq!(
        store.get("/k/missing").await.expect("get"),
        None,
        "an update must never create"
    );

    // A deleted key is missing too, even for its last revision.
    let created = written(
        store
            .create("/k/gone", b"x".to_vec())
            .await
            .expect("create"),
    );
    written(store.delete("/k/gone", created).await.expect("delete"));
    assert_eq!(
        store
            .update("/k/gone", b"y".to_vec(), created)
            .await
            .expect("update"),
        WriteOutcome::Conflict
    );
    assert_eq!(
        store.delete("/k/gone", created).await.expect("delete"),
        WriteOutcome::Conflict
    );
    assert_eq!(store.get("/k/gone").await.expect("get"), None);
}

async fn delete_with_current_and_stale_revision(backend: &Backend) {
    let store = &*backend.store;
    let created = written(store.create("/k/a", b"v1".to_vec()).await.expect("create"));
    let updated = written(
        store
            .update("/k/a", b"v2".to_vec(), created)
            .await
            .expect("update"),
    );
    assert_eq!(
        store.delete("/k/a", created).await.expect("delete"),
        WriteOutcome::Conflict
    );
    assert_eq!(
        must_get(store, "/k/a").await,
        kv("/k/a", b"v2", created, updated, 2)
    );

    let deleted = written(store.delete("/k/a", updated).await.expect("delete"));
    assert!(deleted > updated);
    assert_eq!(store.get("/k/a").await.expect("get"), None);
    assert_eq!(store.current_revision().await.expect("revision"), deleted);

    // Re-creation starts a new life: new create revision, version 1.
    let recreated = written(store.create("/k/a", b"v3".to_vec()).await.expect("create"));
    assert!(recreated > deleted);
    assert_eq!(
        must_get(store, "/k/a").await,
        kv("/k/a", b"v3", recreated, recreated, 1)
    );
}

async fn list_by_prefix(backend: &Backend) {
    let store = &*backend.store;
    // Written out of order, with prefix siblings that must not match `/l/ns/`.
    let keys = [
        "/l/ns/b",
        "/l/ns2/a",
        "/l/ns/a",
        "/l/nsx",
        "/l/ns/c",
        "/l/n",
        "/l/ns/a/b",
    ];
    let mut revisions = Vec::new();
    for key in keys {
        revisions.push(written(
            store
                .create(key, key.as_bytes().to_vec())
                .await
                .expect("create"),
        ));
    }
    // One more write to a listed key, so mod revisions differ from create revisions.
    let first = store.get("/l/ns/a").await.expect("get").expect("present");
    let bumped = written(
        store
            .update("/l/ns/a", b"new".to_vec(), first.mod_revision)
            .await
            .expect("update"),
    );

    let (items, revision) = store.list("/l/ns/").await.expect("list");
    let listed: Vec<&str> = items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(listed, ["/l/ns/a", "/l/ns/a/b", "/l/ns/b", "/l/ns/c"]);
    assert_eq!(items[0].value, b"new");
    assert_eq!(items[0].mod_revision, bumped);
    assert_eq!(items[0].version, 2);
    assert!(
        items.iter().all(|kv| kv.mod_revision <= revision),
        "{items:?} at {revision}"
    );
    assert_eq!(revision, bumped, "no other write happened since");

    let (all, _) = store.list("/l/").await.expect("list");
    let all: Vec<&str> = all.iter().map(|kv| kv.key.as_str()).collect();
    let mut sorted = keys.to_vec();
    sorted.sort();
    assert_eq!(all, sorted, "byte order");

    let (none, revision) = store.list("/l/nothing/").await.expect("list");
    assert!(none.is_empty());
    assert_eq!(
        revision, bumped,
        "an empty list still reports the store revision"
    );
    assert!(revisions.iter().all(|r| *r <= revision));
}

async fn watch_from_now(backend: &Backend) {
    let store = &*backend.store;
    // Existing keys are not replayed by a watch from now.
    written(
        store
            .create("/w/ns/old", b"old".to_vec())
            .await
            .expect("create"),
    );
    let mut stream = store.watch("/w/ns/", None).await.expect("watch");

    written(
        store
            .create("/w/ns2/a", b"sibling".to_vec())
            .await
            .expect("create"),
    );
    let created = written(
        store
            .create("/w/ns/a", b"v1".to_vec())
            .await
            .expect("create"),
    );
    let updated = written(
        store
            .update("/w/ns/a", b"v2".to_vec(), created)
            .await
            .expect("update"),
    );
    let deleted = written(store.delete("/w/ns/a", updated).await.expect("delete"));

    let added = next_event(&mut stream).await;
    assert_eq!(
        added,
        WatchEvent::Put {
            kv: kv("/w/ns/a", b"v1", created, created, 1)
        }
    );
    let WatchEvent::Put { kv: ref added_kv } = added else {
        unreachable!()
    };
    assert_eq!(added_kv.create_revision, added_kv.mod_revision, "ADDED");

    let modified = next_event(&mut stream).await;
    assert_eq!(
        modified,
        WatchEvent::Put {
            kv: kv("/w/ns/a", b"v2", created, updated, 2)
        }
    );

    let removed = next_event(&mut stream).await;
    assert_eq!(
        removed,
        WatchEvent::Delete {
            key: "/w/ns/a".into(),
            revision: deleted,
            prev: Some(kv("/w/ns/a", b"v2", created, updated, 2)),
        }
    );
    assert_eq!(removed.revision(), deleted);
    assert_eq!(removed.key(), "/w/ns/a");
    assert_quiet(&mut stream).await;
}

async fn watch_replays_history(backend: &Backend) {
    let store = &*backend.store;
    let r1 = written(store.create("/h/a", b"a1".to_vec()).await.expect("create"));
    written(
        store
            .create("/other/x", b"x".to_vec())
            .await
            .expect("create"),
    );
    let r2 = written(store.create("/h/b", b"b1".to_vec()).await.expect("create"));
    let r3 = written(
        store
            .update("/h/a", b"a2".to_vec(), r1)
            .await
            .expect("update"),
    );
    let r4 = written(store.delete("/h/b", r2).await.expect("delete"));
    let expected = vec![
        WatchEvent::Put {
            kv: kv("/h/a", b"a1", r1, r1, 1),
        },
        WatchEvent::Put {
            kv: kv("/h/b", b"b1", r2, r2, 1),
        },
        WatchEvent::Put {
            kv: kv("/h/a", b"a2", r1, r3, 2),
        },
        WatchEvent::Delete {
            key: "/h/b".into(),
            revision: r4,
            prev: Some(kv("/h/b", b"b1", r2, r2, 1)),
        },
    ];

    let mut stream = store.watch("/h/", Some(r1)).await.expect("watch");
    for want in &expected {
        assert_eq!(&next_event(&mut stream).await, want);
    }
    assert_quiet(&mut stream).await;
    // The replay continues live.
    let r5 = written(
        store
            .update("/h/a", b"a3".to_vec(), r3)
            .await
            .expect("update"),
    );
    assert_eq!(
        next_event(&mut stream).await,
        WatchEvent::Put {
            kv: kv("/h/a", b"a3", r1, r5, 3)
        }
    );

    // From the middle: exactly the suffix.
    let mut suffix = store.watch("/h/", Some(r3)).await.expect("watch");
    assert_eq!(next_event(&mut suffix).await, expected[2]);
    assert_eq!(next_event(&mut suffix).await, expected[3]);
    assert_eq!(next_event(&mut suffix).await.revision(), r5);
    assert_quiet(&mut suffix).await;

    // From the future: nothing until that revision is reached.
    let current = store.current_revision().await.expect("revision");
    let mut future = store.watch("/h/", Some(current + 2)).await.expect("watch");
    let skipped = written(store.create("/h/c", b"c".to_vec()).await.expect("create"));
    assert_eq!(skipped, current + 1);
    let seen = written(store.create("/h/d", b"d".to_vec()).await.expect("create"));
    let event = next_event(&mut future).await;
    assert_eq!((event.key(), event.revision()), ("/h/d", seen));
}

async fn watch_before_compaction_fails(backend: &Backend) {
    let store = &*backend.store;
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(written(
            store
                .create(&format!("/c/{i}"), b"x".to_vec())
                .await
                .expect("create"),
        ));
    }
    backend.compact(revisions[3]).await;

    match store.watch("/c/", Some(revisions[0])).await {
        Err(Error::Compacted { requested, oldest }) => {
            assert_eq!(requested, revisions[0]);
            assert_eq!(oldest, revisions[3]);
        }
        Err(other) => panic!("expected Compacted, got {other}"),
        Ok(_) => panic!("expected Compacted, the watch was established"),
    }
    // The oldest kept revision is still available.
    let mut stream = store.watch("/c/", Some(revisions[3])).await.expect("watch");
    assert_eq!(next_event(&mut stream).await.key(), "/c/3");
    assert_eq!(next_event(&mut stream).await.key(), "/c/4");
    assert_quiet(&mut stream).await;
    // Reads are unaffected.
    assert_eq!(store.list("/c/").await.expect("list").0.len(), 5);
}

async fn versions_count_writes(backend: &Backend) {
    let store = &*backend.store;
    let mut revision = written(store.create("/v/a", b"0".to_vec()).await.expect("create"));
    assert_eq!(must_get(store, "/v/a").await.version, 1);
    for version in 2..=3 {
        revision = written(
            store
                .update("/v/a", version.to_string().into_bytes(), revision)
                .await
                .expect("update"),
        );
        assert_eq!(must_get(store, "/v/a").await.version, version);
    }
    written(store.delete("/v/a", revision).await.expect("delete"));
    assert_eq!(store.get("/v/a").await.expect("get"), None);
    written(
        store
            .create("/v/a", b"again".to_vec())
            .await
            .expect("create"),
    );
    assert_eq!(must_get(store, "/v/a").await.version, 1);
}

async fn concurrent_conditional_updates(backend: &Backend) {
    const WRITERS: usize = 16;
    const ROUNDS: usize = 5;
    let key = "/race/key";
    written(
        backend
            .store
            .create(key, b"start".to_vec())
            .await
            .expect("create"),
    );
    for round in 0..ROUNDS {
        let current = must_get(&*backend.store, key).await;
        // All writers start together from the same read.
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let tasks: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let store = backend.store.clone();
                let barrier = barrier.clone();
                let expected = current.mod_revision;
                tokio::spawn(async move {
                    barrier.wait().await;
                    let value = format!("{round}-{writer}").into_bytes();
                    (
                        value.clone(),
                        store.update(key, value, expected).await.expect("update"),
                    )
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (value, outcome) = task.await.expect("writer task");
            if let WriteOutcome::Written(revision) = outcome {
                winners.push((value, revision));
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one writer wins, got {winners:?}"
        );
        let (value, revision) = winners.pop().expect("one winner");
        let stored = must_get(&*backend.store, key).await;
        assert_eq!(
            stored.value, value,
            "round {round}: the winner's value is stored"
        );
        assert_eq!(stored.mod_revision, revision);
        assert_eq!(stored.version, current.version + 1);
        assert_eq!(stored.create_revision, current.create_revision);
    }
}

async fn watcher_receives_burst_in_order(backend: &Backend) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 25;
    let mut stream = backend.store.watch("/burst/", None).await.expect("watch");
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = backend.store.clone();
            tokio::spawn(async move {
                let mut done = Vec::new();
                for i in 0..PER_WRITER {
                    let key = format!("/burst/{writer}-{i:02}");
                    let revision = written(
                        store
                            .create(&key, key.clone().into_bytes())
                            .await
                            .expect("create"),
                    );
                    done.push((revision, key));
                }
                done
            })
        })
        .collect();
    let mut writes = BTreeSet::new();
    for task in tasks {
        writes.extend(task.await.expect("writer task"));
    }
    assert_eq!(writes.len(), WRITERS * PER_WRITER);

    let mut received = Vec::new();
    for _ in 0..WRITERS * PER_WRITER {
        let event = next_event(&mut stream).await;
        let WatchEvent::Put { kv } = event else {
            panic!("unexpected {event:?}")
        };
        assert_eq!(kv.value, kv.key.as_bytes());
        received.push((kv.mod_revision, kv.key));
    }
    assert!(
        received.windows(2).all(|w| w[0].0 < w[1].0),
        "events in revision order"
    );
    // Sorted by revision, the writes are exactly the received sequence.
    assert_eq!(received, writes.into_iter().collect::<Vec<_>>());
    assert_quiet(&mut stream).await;
}

// ---------------------------------------------------------------------------------------
// Embedded store only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_reopen_keeps_keys_revision_and_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let (r1, r2, r3) = {
        let store = EmbeddedStore::open(&path, 100).await.expect("open");
        let r1 = written(store.create("/p/a", b"a1".to_vec()).await.expect("create"));
        let r2 = written(store.create("/p/b", b"b1".to_vec()).await.expect("create"));
        let r3 = written(
            store
                .update("/p/a", b"a2".to_vec(), r1)
                .await
                .expect("update"),
        );
        written(store.delete("/p/b", r2).await.expect("delete"));
        (r1, r2, r3)
    };
    let store = EmbeddedStore::open(&path, 100).await.expect("reopen");
    assert_eq!(store.current_revision().await.expect("revision"), r3 + 1);
    assert_eq!(must_get(&store, "/p/a").await, kv("/p/a", b"a2", r1, r3, 2));
    assert_eq!(store.get("/p/b").await.expect("get"), None);
    let (items, revision) = store.list("/p/").await.expect("list");
    assert_eq!(items.len(), 1);
    assert_eq!(revision, r3 + 1);

    let mut stream = store.watch("/p/", Some(r1)).await.expect("watch");
    assert_eq!(
        next_event(&mut stream).await,
        WatchEvent::Put {
            kv: kv("/p/a", b"a1", r1, r1, 1)
        }
    );
    assert_eq!(
        next_event(&mut stream).await,
        WatchEvent::Put {
            kv: kv("/p/b", b"b1", r2, r2, 1)
        }
    );
    assert_eq!(
        next_event(&mut stream).await,
        WatchEvent::Put {
            kv: kv("/p/a", b"a2", r1, r3, 2)
        }
    );
    assert_eq!(
        next_event(&mut stream).await,
        WatchEvent::Delete {
            key: "/p/b".into(),
            revision: r3 + 1,
            prev: Some(kv("/p/b", b"b1", r2, r2, 1))
        }
    );
    // Writes continue the persisted revision sequence.
    assert_eq!(
        written(store.create("/p/c", b"c".to_vec()).await.expect("create")),
        r3 + 2
    );
    assert_eq!(next_event(&mut stream).await.revision(), r3 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_history_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    {
        let store = EmbeddedStore::open(&path, 3).await.expect("open");
        for i in 1..=10 {
            assert_eq!(
                written(
                    store
                        .create(&format!("/b/{i:02}"), b"x".to_vec())
                        .await
                        .expect("create")
                ),
                i
            );
        }
        match store.watch("/b/", Some(7)).await {
            Err(Error::Compacted {
                requested: 7,
                oldest: 8,
            }) => {}
            Err(other) => panic!("expected Compacted {{ 7, 8 }}, got {other:?}"),
            Ok(_) => panic!("expected Compacted, the watch was established"),
        }
        let mut stream = store.watch("/b/", Some(8)).await.expect("watch");
        for revision in 8..=10 {
            assert_eq!(next_event(&mut stream).await.revision(), revision);
        }
    }
    // A lower limit on reopen trims the persisted history.
    let store = EmbeddedStore::open(&path, 2).await.expect("reopen");
    assert_eq!(store.history_limit(), 2);
    assert!(matches!(
        store.watch("/b/", Some(8)).await,
        Err(Error::Compacted {
            requested: 8,
            oldest: 9
        })
    ));
    assert_eq!(
        store.list("/b/").await.expect("list").0.len(),
        10,
        "keys are not history"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_lagging_watcher_is_terminated_without_blocking_writers() {
    let options = EmbeddedOptions {
        history_limit: 1_000,
        watch_buffer: 4,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::in_memory(options).await.expect("open");
    let mut slow = store.watch("/lag/", None).await.expect("watch");
    // Nobody reads while writing: the writes must still complete promptly.
    let writes = async {
        for i in 0..50 {
            written(
                store
                    .create(&format!("/lag/{i:02}"), b"x".to_vec())
                    .await
                    .expect("create"),
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(30), writes)
        .await
        .expect("writers were blocked by a slow watcher");

    let mut delivered = 0;
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, slow.next())
            .await
            .expect("stream stalled")
        {
            Some(Ok(_)) => delivered += 1,
            Some(Err(Error::StorageUnavailable(message))) => {
                assert!(message.contains("fell behind"), "{message}");
                break;
            }
            Some(Err(other)) => panic!("unexpected error {other}"),
            None => panic!("the stream ended without an error after {delivered} events"),
        }
    }
    assert!(delivered < 50);
    assert!(
        slow.next().await.is_none(),
        "the stream ends after the error"
    );

    // The consumer resumes from its last revision through the history.
    let mut resumed = store
        .watch("/lag/", Some(delivered + 1))
        .await
        .expect("watch");
    for revision in delivered + 1..=50 {
        assert_eq!(next_event(&mut resumed).await.revision(), revision);
    }
}

// ---------------------------------------------------------------------------------------
// etcd only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_at_start_connects_lazily_and_fails_fast() {
    // A port nobody listens on.
    let port = krake_testkit::free_port();
    let store = EtcdStore::connect(
        vec![format!("http://127.0.0.1:{port}")],
        Duration::from_secs(1),
    )
    .await
    .expect("connecting must not need etcd")
    .with_request_timeout(Duration::from_secs(2));
    let started = Instant::now();
    assert!(matches!(
        store.get("/k").await,
        Err(Error::StorageUnavailable(_))
    ));
    assert!(matches!(
        store.current_revision().await,
        Err(Error::StorageUnavailable(_))
    ));
    assert!(matches!(
        store.create("/k", b"x".to_vec()).await,
        Err(Error::StorageUnavailable(_))
    ));
    assert!(matches!(
        store.watch("/k/", None).await,
        Err(Error::StorageUnavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_breaks_watches_and_requests_then_recovers() {
    let mut server = EtcdServer::start().await;
    let store = EtcdStore::connect(vec![server.endpoint()], Duration::from_secs(2))
        .await
        .expect("connect")
        .with_request_timeout(Duration::from_secs(2));
    let created = written(store.create("/o/a", b"v1".to_vec()).await.expect("create"));
    let mut stream = store.watch("/o/", None).await.expect("watch");

    server.stop();
    assert!(matches!(
        store.get("/o/a").await,
        Err(Error::StorageUnavailable(_))
    ));
    // The watch breaks: it errs or ends, it does not hang.
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Err(_)) | None) => {}
        Ok(Some(Ok(event))) => panic!("unexpected event {event:?}"),
        Err(_) => panic!("the watch hung after etcd died"),
    }

    server.restart().await;
    // The client reconnects by itself; allow it a few attempts.
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let stored = loop {
        match store.get("/o/a").await {
            Ok(found) => break found,
            Err(error) if Instant::now() < deadline => {
                eprintln!("waiting for reconnection: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("no reconnection: {error}"),
        }
    };
    assert_eq!(
        stored,
        Some(kv("/o/a", b"v1", created, created, 1)),
        "data survives the restart"
    );
    let updated = written(
        store
            .update("/o/a", b"v2".to_vec(), created)
            .await
            .expect("update"),
    );
    // A new watch resumes from the last seen revision.
    let mut resumed = store.watch("/o/", Some(created + 1)).await.expect("watch");
    assert_eq!(next_event(&mut resumed).await.revision(), updated);
}
