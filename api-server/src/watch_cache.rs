//! The watch cache: one storage watch per resource kind feeds every HTTP watcher of that
//! kind. Each event is decoded and rendered to its NDJSON line once, kept in a ring for
//! resumption (`?watch&resource_version=N`) and fanned out through a bounded broadcast
//! channel. A watcher that falls behind the channel is cut off instead of slowing the
//! others.
//!
//! The ring is bounded by bytes (and by a count): the oldest events are evicted first, so
//! a kind with large objects keeps fewer events instead of growing without bound. A resume
//! point older than the ring is served from the store's own history (etcd's until it is
//! compacted, the embedded store's `--history-limit` events); when the store no longer
//! has it either, the watch answers 410 Gone and the client re-lists.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use krake_crds::Resource;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::storage::codec::decode_stored;
use crate::storage::{Store, WatchEvent, WatchStream};

/// Event type of the Krake watch protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// First write of a key.
    Added,
    /// Later write of a key.
    Modified,
    /// Removal of a key; the object is its last stored version.
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One event, decoded and rendered once for all watchers.
#[derive(Debug, Clone)]
pub struct CachedEvent {
    /// Storage revision of the change.
    pub revision: i64,
    /// Storage key of the object.
    pub key: String,
    /// Namespace parsed from the key (`None` for global kinds).
    pub namespace: Option<String>,
    pub event_type: EventType,
    /// State name of the object's status, when it has one.
    pub state: Option<&'static str>,
    /// The complete NDJSON line (`{"type": ..., "object": ...}\n`).
    pub line: Bytes,
    /// The object's JSON, a slice of `line`.
    pub object: Bytes,
}

/// Turns a storage event into a cached event; `Ok(None)` skips keys that do not match the
/// kind's key template.
pub type Renderer = Arc<dyn Fn(&WatchEvent) -> Result<Option<CachedEvent>, Error> + Send + Sync>;

/// The renderer of kind `R` for the watch cache: decode once, serialize the line once.
pub fn renderer<R: Resource>() -> Renderer {
    Arc::new(|event: &WatchEvent| {
        let Some((namespace, _)) = R::parse_key(event.key()) else {
            return Ok(None);
        };
        let namespace = namespace.map(str::to_string);
        let (event_type, object) = match event {
            WatchEvent::Put { kv } => {
                let t = if kv.create_revision == kv.mod_revision {
                    EventType::Added
                } else {
                    EventType::Modified
                };
                (t, decode_stored::<R>(kv)?)
            }
            WatchEvent::Delete {
                prev: Some(prev),
                revision,
                ..
            } => {
                let mut object = decode_stored::<R>(prev)?;
                // The deletion revision lets a client resume after this event.
                object.metadata_mut().resource_version = Some(revision.to_string());
                (EventType::Deleted, object)
            }
            WatchEvent::Delete {
                prev: None, key, ..
            } => {
                tracing::warn!(key = %key, "deletion without the previous value; event skipped");
                return Ok(None);
            }
        };
        let head = format!("{{\"type\": \"{}\", \"object\": ", event_type.as_str());
        let body = krake_crds::json::to_vec(&object);
        let mut line = Vec::with_capacity(head.len() + body.len() + 2);
        line.extend_from_slice(head.as_bytes());
        line.extend_from_slice(&body);
        line.extend_from_slice(b"}\n");
        let line = Bytes::from(line);
        let object_bytes = line.slice(head.len()..head.len() + body.len());
        Ok(Some(CachedEvent {
            revision: event.revision(),
            key: event.key().to_string(),
            namespace,
            event_type,
            state: object.state_name(),
            line,
            object: object_bytes,
        }))
    })
}

/// Where a new subscription starts.
pub enum Subscription {
    /// Replay these events, then follow the receiver.
    Cached {
        /// Events after the requested revision still in the ring.
        replay: Vec<Arc<CachedEvent>>,
        /// Live events.
        live: broadcast::Receiver<Arc<CachedEvent>>,
    },
    /// The requested revision is older than the ring; the caller must read the storage
    /// history directly.
    TooOld,
}

impl CachedEvent {
    /// The memory the event holds, as counted against the cache's byte bound.
    pub fn size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.line.len()
            + self.key.len()
            + self.namespace.as_ref().map_or(0, String::len)
    }
}

/// How much history one cache keeps; whichever bound is reached first evicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most events kept.
    pub events: usize,
    /// Most bytes of events kept (see [`CachedEvent::size`]).
    pub bytes: usize,
}

/// The metrics of one cache (registered by the server under the kind's label; unregistered
/// ones by default).
#[derive(Debug, Clone, Default)]
pub struct CacheMetrics {
    /// Bytes of events currently kept.
    pub bytes: Gauge,
    /// Events evicted to stay within the bounds.
    pub evictions: Counter,
}

struct Ring {
    events: VecDeque<Arc<CachedEvent>>,
    /// Sum of the sizes of `events`.
    bytes: usize,
    /// Every event with a revision above this one is in `events` (or not yet happened).
    covered_from: i64,
    sender: broadcast::Sender<Arc<CachedEvent>>,
}

/// The cache of one resource kind.
pub struct WatchCache {
    prefix: String,
    store: Arc<dyn Store>,
    render: Renderer,
    limits: CacheLimits,
    metrics: CacheMetrics,
    ring: Mutex<Ring>,
    established: watch::Sender<bool>,
}

impl WatchCache {
    /// A cache for the keys under `prefix`, keeping events within `limits`.
    pub fn new(
        prefix: String,
        store: Arc<dyn Store>,
        render: Renderer,
        limits: CacheLimits,
        metrics: CacheMetrics,
    ) -> Arc<Self> {
        let (sender, _) = broadcast::channel(limits.events.max(16));
        Arc::new(WatchCache {
            prefix,
            store,
            render,
            limits,
            metrics,
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                bytes: 0,
                covered_from: i64::MAX,
                sender,
            }),
            established: watch::channel(false).0,
        })
    }

    /// The storage prefix this cache follows.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The renderer, for watchers reading the storage history directly.
    pub fn renderer(&self) -> &Renderer {
        &self.render
    }

    /// Whether the storage watch is currently established.
    pub fn is_established(&self) -> bool {
        *self.established.borrow()
    }

    /// Follow the storage until `shutdown`, re-establishing the watch after errors.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut next: Option<i64> = None;
        let mut backoff = Duration::from_millis(100);
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                s = self.establish(next) => s,
            };
            let mut stream: WatchStream = match stream {
                Ok(s) => {
                    backoff = Duration::from_millis(100);
                    s
                }
                Err(e) => {
                    tracing::warn!(prefix = %self.prefix, error = %e, "watch cache cannot watch the store; retrying");
                    if matches!(e, Error::Compacted { .. }) {
                        next = None;
                    }
                    self.established.send_replace(false);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            self.established.send_replace(true);
            loop {
                let item = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    item = stream.next() => item,
                };
                match item {
                    Some(Ok(event)) => {
                        next = Some(event.revision() + 1);
                        match (self.render)(&event) {
                            Ok(Some(cached)) => self.push(Arc::new(cached)),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::error!(prefix = %self.prefix, key = event.key(), error = %e, "skipping undecodable stored object")
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(prefix = %self.prefix, error = %e, "storage watch broke; re-establishing");
                        if matches!(e, Error::Compacted { .. }) {
                            next = None;
                        }
                        break;
                    }
                    None => break,
                }
            }
            self.established.send_replace(false);
        }
        self.established.send_replace(false);
    }

    /// Open the storage watch. Without a continuation point (first start, or after a
    /// compaction made the history unusable) the ring restarts from the current revision
    /// and existing subscribers are cut off, since they may have missed events.
    async fn establish(&self, next: Option<i64>) -> Result<WatchStream, Error> {
        match next {
            Some(rev) => self.store.watch(&self.prefix, Some(rev)).await,
            None => {
                let current = self.store.current_revision().await?;
                let stream = self.store.watch(&self.prefix, Some(current + 1)).await?;
                let mut ring = self.ring.lock().expect("watch cache lock poisoned");
                ring.events.clear();
                ring.bytes = 0;
                self.metrics.bytes.set(0);
                ring.covered_from = current;
                let (sender, _) = broadcast::channel(self.limits.events.max(16));
                ring.sender = sender;
                Ok(stream)
            }
        }
    }

    fn push(&self, event: Arc<CachedEvent>) {
        let mut ring = self.ring.lock().expect("watch cache lock poisoned");
        ring.bytes += event.size();
        ring.events.push_back(event.clone());
        // An event larger than the whole bound is evicted at once: it still reaches the
        // live watchers, and resuming before it goes to the store.
        while ring.events.len() > self.limits.events || ring.bytes > self.limits.bytes {
            let Some(evicted) = ring.events.pop_front() else {
                break;
            };
            ring.bytes -= evicted.size();
            ring.covered_from = evicted.revision;
            self.metrics.evictions.inc();
        }
        self.metrics
            .bytes
            .set(i64::try_from(ring.bytes).unwrap_or(i64::MAX));
        // No receiver is not an error: nobody watches this kind right now.
        let _ = ring.sender.send(event);
    }

    /// Wait until the storage watch is established (bounded), so that a subscription
    /// reflects every later write.
    pub async fn wait_established(&self, timeout: Duration) -> Result<(), Error> {
        let mut rx = self.established.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|e| *e))
            .await
            .map_err(|_| {
                Error::StorageUnavailable(format!("watch on {} is not established", self.prefix))
            })?
            .map_err(|_| Error::StorageUnavailable("watch cache stopped".into()))?;
        Ok(())
    }

    /// Subscribe to events after revision `after` (or to every future event).
    pub fn subscribe(&self, after: Option<i64>) -> Subscription {
        let ring = self.ring.lock().expect("watch cache lock poisoned");
        match after {
            None => Subscription::Cached {
                replay: Vec::new(),
                live: ring.sender.subscribe(),
            },
            Some(n) if n >= ring.covered_from => Subscription::Cached {
                replay: ring
                    .events
                    .iter()
                    .filter(|e| e.revision > n)
                    .cloned()
                    .collect(),
                live: ring.sender.subscribe(),
            },
            Some(_) => Subscription::TooOld,
        }
    }
}
