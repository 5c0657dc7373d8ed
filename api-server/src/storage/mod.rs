//! Storage behind one trait, with an etcd backend (production) and an embedded redb
//! backend (single binary, tests). Both follow etcd's model: one global revision bumped by
//! every write, per-key create/mod revisions and versions, conditional transactions and
//! watches that can start at a past revision while it is still in the history.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;

use crate::error::Error;

pub(crate) mod codec;
pub mod embedded;
pub mod etcd;
pub(crate) mod instrumented;

/// One stored key with its revisions, as etcd reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The full key, e.g. `/kubernetes/applications/ns1/app1`.
    pub key: String,
    /// The stored bytes (JSON text of the object).
    pub value: Vec<u8>,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
    /// Number of writes to the key since its creation (1 after creation).
    pub version: i64,
}

/// A change observed by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The key was created or overwritten. `kv.create_revision == kv.mod_revision` on creation.
    Put {
        /// The new value.
        kv: KeyValue,
    },
    /// The key was removed at `revision`; `prev` is the last stored version of the key.
    Delete {
        /// The removed key.
        key: String,
        /// Revision of the deletion.
        revision: i64,
        /// The value the key had just before the deletion, when still known.
        prev: Option<KeyValue>,
    },
}

impl WatchEvent {
    /// The revision at which the event happened.
    pub fn revision(&self) -> i64 {
        match self {
            WatchEvent::Put { kv } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
        }
    }

    /// The key concerned.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put { kv } => &kv.key,
            WatchEvent::Delete { key, .. } => key,
        }
    }
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write happened; the new revision of the store (= the key's new `mod_revision`).
    Written(i64),
    /// The condition failed (key exists on create; revision changed or key missing on
    /// update/delete). Nothing was written.
    Conflict,
}

/// A stream of watch events in revision order. It ends (or yields an error) when the
/// underlying watch breaks; the consumer then restarts from its last revision.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Error>> + Send>>;

/// A key-value store with etcd's semantics.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Read one key (linearizable).
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, Error>;

    /// Read every key starting with `prefix`, in byte-lexicographic key order, with the
    /// store revision the listing reflects.
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Error>;

    /// Write `value` under `key` only if the key does not exist.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<WriteOutcome, Error>;

    /// Overwrite `key` only if its `mod_revision` is still `expected_mod_revision`.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: i64,
    ) -> Result<WriteOutcome, Error>;

    /// Delete `key` only if its `mod_revision` is still `expected_mod_revision`.
    async fn delete(&self, key: &str, expected_mod_revision: i64) -> Result<WriteOutcome, Error>;

    /// Watch every key under `prefix`. With `start_revision`, replay every event at or
    /// after that revision first (`Error::Compacted` when the history no longer holds it);
    /// without, deliver events after the current revision. The returned future resolves
    /// once the watch is established, so no later write can be missed.
    async fn watch(&self, prefix: &str, start_revision: Option<i64>) -> Result<WatchStream, Error>;

    /// The current revision of the store; also serves as a reachability probe.
    async fn current_revision(&self) -> Result<i64, Error>;

    /// The largest value `create` and `update` accept, in bytes. Larger values fail with
    /// [`Error::ObjectTooLarge`] before anything is written; the HTTP body limit is the same
    /// number, so there is one limit, the store's.
    fn max_value_bytes(&self) -> usize;
}

/// `Err(ObjectTooLarge)` when `value` exceeds `limit`: the check every backend makes before
/// a write.
pub(crate) fn check_value_size(value: &[u8], limit: usize) -> Result<(), Error> {
    if value.len() > limit {
        return Err(Error::ObjectTooLarge {
            size: Some(value.len()),
            limit,
        });
    }
    Ok(())
}
