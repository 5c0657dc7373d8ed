//! Conflicting concurrent writes: a request is re-run
//! `retry_transactions` extra times, then answers 409 `TRANSACTION_ERROR`. The conflicts
//! are injected by a store wrapper around the real embedded store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use krake_api_server::Config;
use krake_api_server::error::Error;
use krake_api_server::server::start_with_store;
use krake_api_server::storage::embedded::EmbeddedStore;
use krake_api_server::storage::{KeyValue, Store, WatchStream, WriteOutcome};
use serde_json::{Value, json};

/// Makes the next `conflicts` conditional updates fail as if someone else wrote first.
struct Contended {
    inner: Arc<dyn Store>,
    conflicts: AtomicUsize,
    update_attempts: AtomicUsize,
}

#[async_trait]
impl Store for Contended {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Error> {
        self.inner.list(prefix).await
    }
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<WriteOutcome, Error> {
        self.inner.create(key, value).await
    }
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: i64,
    ) -> Result<WriteOutcome, Error> {
        self.update_attempts.fetch_add(1, Ordering::SeqCst);
        if self
            .conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Ok(WriteOutcome::Conflict);
        }
        self.inner.update(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: i64) -> Result<WriteOutcome, Error> {
        self.inner.delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, start: Option<i64>) -> Result<WatchStream, Error> {
        self.inner.watch(prefix, start).await
    }
    async fn current_revision(&self) -> Result<i64, Error> {
        self.inner.current_revision().await
    }
    fn max_value_bytes(&self) -> usize {
        self.inner.max_value_bytes()
    }
}

async fn setup(
    retry_transactions: u32,
) -> (
    krake_api_server::RunningServer,
    Arc<Contended>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(dir.path().join("db.redb"), 1000)
            .await
            .unwrap(),
    );
    let store = Arc::new(Contended {
        inner,
        conflicts: AtomicUsize::new(0),
        update_attempts: AtomicUsize::new(0),
    });
    let mut config = Config::for_embedded(dir.path());
    config.retry_transactions = retry_transactions;
    let server = start_with_store(config, store.clone()).await.unwrap();
    (server, store, dir)
}

async fn create_role(base: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/core/roles"))
        .json(&json!({"metadata": {"name": "r1"}, "rules": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_conflict_within_the_retry_budget_is_absorbed() {
    let (server, store, _dir) = setup(2).await;
    let base = format!("http://{}", server.addr);
    let mut role = create_role(&base).await;
    role["metadata"]["labels"] = json!({"a": "b"});
    role["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resource_version");
    store.conflicts.store(2, Ordering::SeqCst);
    let r = reqwest::Client::new()
        .put(format!("{base}/core/roles/r1"))
        .json(&role)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        store.update_attempts.load(Ordering::SeqCst),
        3,
        "1 attempt + 2 retries"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["metadata"]["labels"]["a"], "b");
}

#[tokio::test]
async fn conflicts_beyond_the_retry_budget_give_409_transaction_error() {
    let (server, store, _dir) = setup(1).await;
    let base = format!("http://{}", server.addr);
    let mut role = create_role(&base).await;
    role["metadata"]["labels"] = json!({"a": "b"});
    store.conflicts.store(100, Ordering::SeqCst);
    role["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resource_version");
    let r = reqwest::Client::new()
        .put(format!("{base}/core/roles/r1"))
        .json(&role)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        store.update_attempts.load(Ordering::SeqCst),
        2,
        "1 attempt + retry_transactions (1)"
    );
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["title"], "TRANSACTION_ERROR");
    assert_eq!(problem["detail"], "Concurrent writes to database");
    // Nothing was written.
    let stored: Value = reqwest::get(format!("{base}/core/roles/r1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["metadata"]["labels"], json!({}));
}

#[tokio::test]
async fn a_stale_resource_version_is_not_retried() {
    let (server, store, _dir) = setup(3).await;
    let base = format!("http://{}", server.addr);
    let mut role = create_role(&base).await;
    role["metadata"]["labels"] = json!({"a": "b"});
    role["metadata"]["resource_version"] = json!("0");
    let r = reqwest::Client::new()
        .put(format!("{base}/core/roles/r1"))
        .json(&role)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        store.update_attempts.load(Ordering::SeqCst),
        0,
        "a failed precondition writes nothing"
    );
}
