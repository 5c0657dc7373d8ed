//! The embedded backend: etcd's data model on a single redb file, for single-binary use
//! and tests.
//!
//! Every successful write is one redb write transaction that checks the condition, bumps
//! the persisted global revision, writes the key and appends the change to a bounded
//! history table (trimmed to the last `history_limit` events). Watches replay from that
//! history and then follow a broadcast channel of live events.
//!
//! A process-wide write lock is held from the start of the write transaction until the
//! event is broadcast, so events reach the channel in revision order; a watch registers
//! under the same lock, which makes "subscribe + snapshot the history" atomic with respect
//! to writes: nothing can fall between the replay and the live part.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::{KeyValue, Store, WatchEvent, WatchStream, WriteOutcome, check_value_size};
use crate::error::Error;

/// A stored key: (create_revision, mod_revision, version, value).
type Record<'a> = (i64, i64, i64, &'a [u8]);
/// A past event: (kind, key, create_revision, mod_revision, version, value). For a put the
/// record is the new value; for a delete it is the value just before the deletion.
type HistoryRecord<'a> = (u8, &'a str, i64, i64, i64, &'a [u8]);

/// Key → record.
const KV: TableDefinition<&str, Record<'static>> = TableDefinition::new("kv");
/// Revision → event.
const HISTORY: TableDefinition<i64, HistoryRecord<'static>> = TableDefinition::new("history");
/// Store-wide counters.
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";

const EVENT_PUT: u8 = 0;
const EVENT_DELETE: u8 = 1;

/// Default number of past events kept for watches that resume from a revision.
pub const DEFAULT_HISTORY_LIMIT: usize = 10_000;

/// Default capacity of the live event channel: how many events a watch consumer may fall
/// behind before its stream is terminated.
pub const DEFAULT_WATCH_BUFFER: usize = 4_096;

/// Default largest value: the same as an etcd with its default `--max-request-bytes` takes,
/// so that objects move between the backends (and tests behave alike on both).
pub const DEFAULT_MAX_VALUE_BYTES: usize =
    super::etcd::max_value_bytes(super::etcd::DEFAULT_MAX_REQUEST_BYTES);

/// Tuning of an [`EmbeddedStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Number of most recent events kept in the persisted history (at least 1). Watches
    /// starting before the oldest kept event fail with [`Error::Compacted`].
    pub history_limit: usize,
    /// Capacity of the live event channel (at least 1). A watch consumer lagging further
    /// behind gets an error and must watch again from its last revision; writers never wait.
    pub watch_buffer: usize,
    /// Largest value `create` and `update` accept, in bytes.
    pub max_value_bytes: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            history_limit: DEFAULT_HISTORY_LIMIT,
            watch_buffer: DEFAULT_WATCH_BUFFER,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// The embedded store. Cheap to clone; clones share the database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// Serializes writes and watch registration (see the module documentation).
    write_lock: Mutex<()>,
    /// The last committed revision, readable without a transaction.
    revision: AtomicI64,
    events: broadcast::Sender<Arc<WatchEvent>>,
    history_limit: usize,
    max_value_bytes: usize,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("revision", &self.inner.revision.load(Ordering::SeqCst))
            .field("history_limit", &self.inner.history_limit)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Open (or create) the store file at `path`, keeping the last `history_limit` events.
    pub async fn open(path: impl AsRef<Path>, history_limit: usize) -> Result<Self, Error> {
        Self::open_with(
            path,
            EmbeddedOptions {
                history_limit,
                ..EmbeddedOptions::default()
            },
        )
        .await
    }

    /// Open (or create) the store file at `path` with explicit options.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: EmbeddedOptions,
    ) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        blocking(move || {
            let db = Database::create(&path).map_err(|e| {
                Error::Internal(format!(
                    "embedded store: cannot open {}: {e}",
                    path.display()
                ))
            })?;
            Self::init(db, options)
        })
        .await
    }

    /// A store that lives in memory only and is lost when dropped. Part of the public API
    /// because the storage conformance suite (`tests/storage_conformance.rs`) runs on it.
    pub async fn in_memory(options: EmbeddedOptions) -> Result<Self, Error> {
        blocking(move || {
            let db = Database::builder()
                .create_with_backend(InMemoryBackend::new())
                .map_err(internal)?;
            Self::init(db, options)
        })
        .await
    }

    fn init(db: Database, options: EmbeddedOptions) -> Result<Self, Error> {
        let history_limit = options.history_limit.max(1);
        let txn = db.begin_write().map_err(internal)?;
        let revision = {
            // Opening creates the tables on first use, so readers can always open them.
            txn.open_table(KV).map_err(internal)?;
            let mut history = txn.open_table(HISTORY).map_err(internal)?;
            let meta = txn.open_table(META).map_err(internal)?;
            let revision = meta
                .get(META_REVISION)
                .map_err(internal)?
                .map(|g| g.value())
                .unwrap_or(0);
            // The limit may have been lowered since the file was last opened.
            trim_history(&mut history, revision + 1 - history_limit as i64)?;
            revision
        };
        txn.commit().map_err(internal)?;
        let (events, _) = broadcast::channel(options.watch_buffer.max(1));
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                write_lock: Mutex::new(()),
                revision: AtomicI64::new(revision),
                events,
                history_limit,
                max_value_bytes: options.max_value_bytes,
            }),
        })
    }

    /// Drop history events older than `revision`, like etcd's compaction: watches may then
    /// start at `revision` at the earliest. Fails for a revision after the current one + 1.
    pub async fn compact(&self, revision: i64) -> Result<(), Error> {
        let inner = self.inner.clone();
        blocking(move || {
            let _guard = inner.lock();
            let current = inner.revision.load(Ordering::SeqCst);
            if revision > current + 1 {
                return Err(Error::Internal(format!(
                    "embedded store: cannot compact at future revision {revision} (current {current})"
                )));
            }
            let txn = inner.db.begin_write().map_err(internal)?;
            trim_history(&mut txn.open_table(HISTORY).map_err(internal)?, revision)?;
            txn.commit().map_err(internal)
        })
        .await
    }

    /// The configured history limit.
    pub fn history_limit(&self) -> usize {
        self.inner.history_limit
    }

    async fn write(&self, key: &str, op: Op) -> Result<WriteOutcome, Error> {
        let inner = self.inner.clone();
        let key = key.to_string();
        blocking(move || inner.write(&key, op)).await
    }
}

/// A conditional write.
enum Op {
    Create(Vec<u8>),
    Update(Vec<u8>, i64),
    Delete(i64),
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, ()> {
        // A panic while holding the lock dropped (= aborted) its redb transaction, so the
        // data behind the lock is consistent and poisoning can be ignored.
        self.write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, key: &str, op: Op) -> Result<WriteOutcome, Error> {
        let _guard = self.lock();
        let txn = self.db.begin_write().map_err(internal)?;
        match self.apply(&txn, key, op)? {
            None => {
                txn.abort().map_err(internal)?;
                Ok(WriteOutcome::Conflict)
            }
            Some(event) => {
                txn.commit().map_err(internal)?;
                let revision = event.revision();
                self.revision.store(revision, Ordering::SeqCst);
                // No receiver is fine: nobody watches.
                let _ = self.events.send(Arc::new(event));
                Ok(WriteOutcome::Written(revision))
            }
        }
    }

    /// Check the condition and stage the write; `None` when the condition fails.
    fn apply(
        &self,
        txn: &WriteTransaction,
        key: &str,
        op: Op,
    ) -> Result<Option<WatchEvent>, Error> {
        let mut kv = txn.open_table(KV).map_err(internal)?;
        let current = kv
            .get(key)
            .map_err(internal)?
            .map(|g| to_key_value(key, g.value()));
        let mut meta = txn.open_table(META).map_err(internal)?;
        let revision = meta
            .get(META_REVISION)
            .map_err(internal)?
            .map(|g| g.value())
            .unwrap_or(0)
            + 1;
        let event = match (op, current) {
            (Op::Create(value), None) => WatchEvent::Put {
                kv: KeyValue {
                    key: key.to_string(),
                    value,
                    create_revision: revision,
                    mod_revision: revision,
                    version: 1,
                },
            },
            (Op::Update(value, expected), Some(cur)) if cur.mod_revision == expected => {
                WatchEvent::Put {
                    kv: KeyValue {
                        key: key.to_string(),
                        value,
                        create_revision: cur.create_revision,
                        mod_revision: revision,
                        version: cur.version + 1,
                    },
                }
            }
            (Op::Delete(expected), Some(cur)) if cur.mod_revision == expected => {
                WatchEvent::Delete {
                    key: key.to_string(),
                    revision,
                    prev: Some(cur),
                }
            }
            _ => return Ok(None),
        };
        let mut history = txn.open_table(HISTORY).map_err(internal)?;
        match &event {
            WatchEvent::Put { kv: new } => {
                kv.insert(
                    key,
                    (
                        new.create_revision,
                        new.mod_revision,
                        new.version,
                        new.value.as_slice(),
                    ),
                )
                .map_err(internal)?;
                history
                    .insert(
                        revision,
                        (
                            EVENT_PUT,
                            key,
                            new.create_revision,
                            new.mod_revision,
                            new.version,
                            new.value.as_slice(),
                        ),
                    )
                    .map_err(internal)?;
            }
            WatchEvent::Delete { prev, .. } => {
                kv.remove(key).map_err(internal)?;
                let prev = prev
                    .as_ref()
                    .expect("a delete event is built with its previous value");
                history
                    .insert(
                        revision,
                        (
                            EVENT_DELETE,
                            key,
                            prev.create_revision,
                            prev.mod_revision,
                            prev.version,
                            prev.value.as_slice(),
                        ),
                    )
                    .map_err(internal)?;
            }
        }
        meta.insert(META_REVISION, revision).map_err(internal)?;
        trim_history(&mut history, revision + 1 - self.history_limit as i64)?;
        Ok(Some(event))
    }

    /// Register a watch: subscribe to live events and replay the history from `start`.
    fn register_watch(&self, prefix: &str, start: Option<i64>) -> Result<Registration, Error> {
        let (receiver, snapshot, current) = {
            let _guard = self.lock();
            let receiver = self.events.subscribe();
            let current = self.revision.load(Ordering::SeqCst);
            // A read transaction is a snapshot: taken under the lock it holds exactly the
            // events up to `current`, and every later one goes through `receiver`. The
            // (possibly long) replay itself runs after the lock is released.
            let snapshot = match start {
                Some(_) => Some(self.db.begin_read().map_err(internal)?),
                None => None,
            };
            (receiver, snapshot, current)
        };
        let mut replay = Vec::new();
        if let (Some(start), Some(snapshot)) = (start, snapshot) {
            let history = snapshot.open_table(HISTORY).map_err(internal)?;
            // Revisions are contiguous, so an empty history means every past event is gone.
            let oldest = history
                .first()
                .map_err(internal)?
                .map(|(rev, _)| rev.value())
                .unwrap_or(current + 1);
            if start < oldest {
                return Err(Error::Compacted {
                    requested: start,
                    oldest,
                });
            }
            for entry in history.range(start..).map_err(internal)? {
                let (revision, record) = entry.map_err(internal)?;
                let (_, key, ..) = record.value();
                if key.starts_with(prefix) {
                    replay.push(to_event(revision.value(), record.value()));
                }
            }
        }
        let next = (current + 1).max(start.unwrap_or(0));
        Ok(Registration {
            replay,
            receiver,
            next,
        })
    }
}

/// A registered watch.
struct Registration {
    /// Past events to deliver first.
    replay: Vec<WatchEvent>,
    /// Live events, from the registration on.
    receiver: broadcast::Receiver<Arc<WatchEvent>>,
    /// The first revision the live part may deliver.
    next: i64,
}

/// Remove history events before `keep_from`.
fn trim_history(
    history: &mut redb::Table<'_, i64, HistoryRecord<'static>>,
    keep_from: i64,
) -> Result<(), Error> {
    loop {
        let first = history
            .first()
            .map_err(internal)?
            .map(|(rev, _)| rev.value());
        match first {
            Some(rev) if rev < keep_from => {
                history.pop_first().map_err(internal)?;
            }
            _ => return Ok(()),
        }
    }
}

fn to_key_value(
    key: &str,
    (create_revision, mod_revision, version, value): Record<'_>,
) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value.to_vec(),
        create_revision,
        mod_revision,
        version,
    }
}

fn to_event(
    revision: i64,
    (kind, key, create, modified, version, value): HistoryRecord<'_>,
) -> WatchEvent {
    let kv = to_key_value(key, (create, modified, version, value));
    if kind == EVENT_DELETE {
        WatchEvent::Delete {
            key: key.to_string(),
            revision,
            prev: Some(kv),
        }
    } else {
        WatchEvent::Put { kv }
    }
}

fn internal(error: impl fmt::Display) -> Error {
    Error::Internal(format!("embedded store: {error}"))
}

/// Run redb work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("embedded store task failed: {e}")))?
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        let inner = self.inner.clone();
        let key = key.to_string();
        blocking(move || {
            let txn = inner.db.begin_read().map_err(internal)?;
            let kv = txn.open_table(KV).map_err(internal)?;
            let found = kv
                .get(key.as_str())
                .map_err(internal)?
                .map(|g| to_key_value(&key, g.value()));
            Ok(found)
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Error> {
        let inner = self.inner.clone();
        let prefix = prefix.to_string();
        blocking(move || {
            let txn = inner.db.begin_read().map_err(internal)?;
            // The revision comes from the same snapshot as the keys.
            let revision = txn
                .open_table(META)
                .map_err(internal)?
                .get(META_REVISION)
                .map_err(internal)?
                .map(|g| g.value())
                .unwrap_or(0);
            let kv = txn.open_table(KV).map_err(internal)?;
            let mut items = Vec::new();
            for entry in kv.range(prefix.as_str()..).map_err(internal)? {
                let (key, record) = entry.map_err(internal)?;
                let key = key.value();
                // Keys are ordered bytewise, so the prefix range is contiguous.
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                items.push(to_key_value(key, record.value()));
            }
            Ok((items, revision))
        })
        .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<WriteOutcome, Error> {
        check_value_size(&value, self.inner.max_value_bytes)?;
        self.write(key, Op::Create(value)).await
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: i64,
    ) -> Result<WriteOutcome, Error> {
        check_value_size(&value, self.inner.max_value_bytes)?;
        self.write(key, Op::Update(value, expected_mod_revision))
            .await
    }

    async fn delete(&self, key: &str, expected_mod_revision: i64) -> Result<WriteOutcome, Error> {
        self.write(key, Op::Delete(expected_mod_revision)).await
    }

    async fn watch(&self, prefix: &str, start_revision: Option<i64>) -> Result<WatchStream, Error> {
        let inner = self.inner.clone();
        let prefix = prefix.to_string();
        // Like etcd, revision 0 (or below) means "from now".
        let start = start_revision.filter(|rev| *rev > 0);
        let Registration {
            replay,
            receiver,
            next,
        } = {
            let prefix = prefix.clone();
            blocking(move || inner.register_watch(&prefix, start)).await?
        };
        let live = futures::stream::unfold(Some((receiver, next, prefix)), |state| async move {
            let (mut receiver, next, prefix) = state?;
            loop {
                match receiver.recv().await {
                    Ok(event) => {
                        // Events before `next` were replayed already (or precede the start).
                        if event.revision() < next || !event.key().starts_with(prefix.as_str()) {
                            continue;
                        }
                        let following = event.revision() + 1;
                        return Some((
                            Ok(WatchEvent::clone(&event)),
                            Some((receiver, following, prefix)),
                        ));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        let error = Error::StorageUnavailable(format!(
                            "watch fell behind by {missed} events; watch again from revision {next}"
                        ));
                        return Some((Err(error), None));
                    }
                    // The store was dropped.
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        Ok(Box::pin(
            futures::stream::iter(replay.into_iter().map(Ok)).chain(live),
        ))
    }

    async fn current_revision(&self) -> Result<i64, Error> {
        Ok(self.inner.revision.load(Ordering::SeqCst))
    }

    fn max_value_bytes(&self) -> usize {
        self.inner.max_value_bytes
    }
}
