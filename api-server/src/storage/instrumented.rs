//! A store decorator that records the latency and the failures of every storage
//! operation in the server's metrics.

use std::sync::Arc;

use async_trait::async_trait;

use super::{KeyValue, Store, WatchStream, WriteOutcome};
use crate::error::Error;
use crate::metrics::{Metrics, StorageLabels};

/// A store decorator that measures every operation.
pub struct InstrumentedStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl InstrumentedStore {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        InstrumentedStore { inner, metrics }
    }

    async fn measure<T>(
        &self,
        operation: &'static str,
        f: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let start = std::time::Instant::now();
        let result = f.await;
        let labels = StorageLabels { operation };
        self.metrics
            .storage_duration
            .get_or_create(&labels)
            .observe(start.elapsed().as_secs_f64());
        if result.is_err() {
            self.metrics.storage_errors.get_or_create(&labels).inc();
        }
        result
    }
}

#[async_trait]
impl Store for InstrumentedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        self.measure("get", self.inner.get(key)).await
    }
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Error> {
        self.measure("list", self.inner.list(prefix)).await
    }
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<WriteOutcome, Error> {
        self.measure("create", self.inner.create(key, value)).await
    }
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: i64,
    ) -> Result<WriteOutcome, Error> {
        self.measure("update", self.inner.update(key, value, expected))
            .await
    }
    async fn delete(&self, key: &str, expected: i64) -> Result<WriteOutcome, Error> {
        self.measure("delete", self.inner.delete(key, expected))
            .await
    }
    async fn watch(&self, prefix: &str, start: Option<i64>) -> Result<WatchStream, Error> {
        self.measure("watch", self.inner.watch(prefix, start)).await
    }
    async fn current_revision(&self) -> Result<i64, Error> {
        self.measure("revision", self.inner.current_revision())
            .await
    }
    fn max_value_bytes(&self) -> usize {
        self.inner.max_value_bytes()
    }
}
