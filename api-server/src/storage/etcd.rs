//! The etcd backend (production), over etcd's gRPC API.
//!
//! Keys are the caller's keys verbatim (upstream Krake's layout, no global prefix), so a
//! Rust server can share an etcd with Python components. The connection is lazy: the
//! server starts while etcd is down and each request then fails with
//! [`Error::StorageUnavailable`] after at most the request timeout.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KvClient, Txn, TxnOp,
    WatchClient, WatchOptions, WatchResponse,
};

use super::{KeyValue, Store, WatchEvent, WatchStream, WriteOutcome, check_value_size};
use crate::error::Error;

/// Default bound on every unary request and on establishing a watch.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Default bound on establishing the TCP connection to an endpoint.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// HTTP/2 keep-alive, so that a watch on a dead connection breaks instead of waiting
/// forever. etcd refuses pings more frequent than every 5 s by default.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// etcd's default `--max-request-bytes`: the largest request (after encoding as a raft
/// proposal) an etcd member accepts.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Room a write request needs besides the value: the key appears up to three times in an
/// update's transaction (two comparisons and the put; a key is at most about 540 bytes with
/// the longest namespace and name), plus the protobuf framing and the raft request header
/// (a few dozen bytes). Measured against etcd 3.4: with the longest key (525 bytes) an update
/// of a value of `--max-request-bytes` minus 1700 bytes is accepted, minus 0 is refused; the
/// size-limit tests store a value of exactly the derived limit under that key.
pub const REQUEST_ENVELOPE_BYTES: usize = 4096;

/// The largest value storable in an etcd started with `--max-request-bytes=max_request_bytes`.
pub const fn max_value_bytes(max_request_bytes: usize) -> usize {
    max_request_bytes.saturating_sub(REQUEST_ENVELOPE_BYTES)
}

/// Large lists exceed gRPC's default 4 MiB response limit long before etcd's own limits.
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// The etcd store. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    endpoints: Vec<String>,
    request_timeout: Duration,
    max_request_bytes: usize,
}

impl fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("request_timeout", &self.request_timeout)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Create a client for `endpoints` (`http://host:port` or `host:port`). Does not wait
    /// for etcd: connections are made on first use and re-made after failures. Fails only
    /// for unusable endpoints (none, or not a URI).
    pub async fn connect(endpoints: Vec<String>, connect_timeout: Duration) -> Result<Self, Error> {
        let options = ConnectOptions::new()
            .with_connect_timeout(connect_timeout)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT);
        // Without credentials `connect` only builds the lazy channel; the timeout guards
        // against that ever changing into a network round trip.
        let client =
            tokio::time::timeout(connect_timeout, Client::connect(&endpoints, Some(options)))
                .await
                .map_err(|_| {
                    Error::StorageUnavailable(format!(
                        "connecting to etcd at {endpoints:?} timed out"
                    ))
                })?
                .map_err(|e| match e {
                    etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) => {
                        Error::Internal(format!("invalid etcd endpoints {endpoints:?}: {e}"))
                    }
                    other => Error::StorageUnavailable(format!("etcd at {endpoints:?}: {other}")),
                })?;
        Ok(EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            endpoints,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        })
    }

    /// Size values for an etcd whose `--max-request-bytes` is `max_request_bytes` instead of
    /// [`DEFAULT_MAX_REQUEST_BYTES`]: both settings must be changed together.
    pub fn with_max_request_bytes(mut self, max_request_bytes: usize) -> Self {
        self.max_request_bytes = max_request_bytes;
        self
    }

    /// Bound every request (and watch establishment) by `timeout` instead of
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The per-request timeout in force.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Run one etcd call under the request timeout.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.request_timeout, call).await {
            Ok(result) => result.map_err(|e| map_error(what, e)),
            Err(_) => Err(Error::StorageUnavailable(format!(
                "etcd {what} timed out after {:?}",
                self.request_timeout
            ))),
        }
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<WriteOutcome, Error> {
        let mut kv = self.kv.clone();
        let response = match tokio::time::timeout(self.request_timeout, kv.txn(txn)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) if is_too_large(&e) => {
                // Only when etcd's --max-request-bytes is lower than this server was told:
                // still the client's object that is too large, but the operator must know.
                tracing::warn!(error = %e, max_request_bytes = self.max_request_bytes,
                    "etcd refused a write as too large: is its --max-request-bytes lower than --etcd-max-request-bytes?");
                return Err(Error::ObjectTooLarge {
                    size: None,
                    limit: self.max_value_bytes(),
                });
            }
            Ok(Err(e)) => return Err(map_error(what, e)),
            Err(_) => {
                return Err(Error::StorageUnavailable(format!(
                    "etcd {what} timed out after {:?}",
                    self.request_timeout
                )));
            }
        };
        if !response.succeeded() {
            return Ok(WriteOutcome::Conflict);
        }
        let revision = response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| Error::Internal(format!("etcd {what} response without header")))?;
        Ok(WriteOutcome::Written(revision))
    }

    /// Establish a watch and wait for etcd's confirmation. Returns the stream and the
    /// first revision it may deliver.
    async fn establish(
        &self,
        prefix: &str,
        start: Option<i64>,
    ) -> Result<(etcd_client::WatchStream, i64), Error> {
        let mut options = WatchOptions::new().with_prefix().with_prev_key();
        if let Some(start) = start {
            options = options.with_start_revision(start);
        }
        let mut client = self.watch.clone();
        let mut stream = client
            .watch(prefix, Some(options))
            .await
            .map_err(|e| map_error("watch", e))?;
        let first = loop {
            let response = stream
                .message()
                .await
                .map_err(|e| map_error("watch", e))?
                .ok_or_else(|| {
                    Error::StorageUnavailable("etcd closed the watch before confirming it".into())
                })?;
            if let Some(error) = watch_failure(&response, start.unwrap_or(0)) {
                return Err(error);
            }
            if response.created() {
                break response.header().map(|h| h.revision() + 1).unwrap_or(0);
            }
        };
        let Some(start) = start else {
            return Ok((stream, first));
        };
        // etcd confirms a watch on a compacted revision first and cancels it only when its
        // background sync runs (every 100 ms). A read at `start` tells right away whether
        // that will happen, so the caller gets `Compacted` from `watch` itself.
        let mut kv = self.kv.clone();
        match kv
            .get(
                prefix,
                Some(GetOptions::new().with_revision(start).with_count_only()),
            )
            .await
        {
            Err(etcd_client::Error::GRpcStatus(status))
                if status.message().contains("compacted") =>
            {
                // The cancellation with the compacted revision is certain to follow.
                loop {
                    let response = stream
                        .message()
                        .await
                        .map_err(|e| map_error("watch", e))?
                        .ok_or_else(|| {
                            Error::StorageUnavailable("etcd closed a compacted watch".into())
                        })?;
                    if let Some(error) = watch_failure(&response, start) {
                        return Err(error);
                    }
                }
            }
            // A future revision is fine: the watch waits for it.
            Err(etcd_client::Error::GRpcStatus(status))
                if status.message().contains("future revision") =>
            {
                Ok((stream, start))
            }
            Err(e) => Err(map_error("watch", e)),
            Ok(_) => Ok((stream, start)),
        }
    }
}

/// The error a watch response reports, if any. `next` is the first revision the consumer
/// has not seen yet.
fn watch_failure(response: &WatchResponse, next: i64) -> Option<Error> {
    if response.compact_revision() > 0 {
        return Some(Error::Compacted {
            requested: next,
            oldest: response.compact_revision(),
        });
    }
    if response.canceled() {
        return Some(Error::StorageUnavailable(format!(
            "etcd canceled the watch: {}",
            response.cancel_reason()
        )));
    }
    None
}

/// etcd's refusal of a request over `--max-request-bytes` (`etcdserver: request is too
/// large`), or gRPC's over its message limit. Matched by message: the codes are shared with
/// other failures (a full database is `ResourceExhausted` too).
fn is_too_large(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            message.contains("request is too large") || message.contains("larger than max")
        }
        _ => false,
    }
}

fn map_error(what: &str, error: etcd_client::Error) -> Error {
    match &error {
        // gRPC status codes (numeric, to avoid depending on tonic directly) of requests
        // that etcd rejects as such and that would fail on retry as well: InvalidArgument,
        // NotFound, AlreadyExists, PermissionDenied, FailedPrecondition, OutOfRange,
        // Unimplemented, Internal, DataLoss, Unauthenticated.
        etcd_client::Error::GRpcStatus(status)
            if matches!(
                i32::from(status.code()),
                3 | 5 | 6 | 7 | 9 | 11 | 12 | 13 | 15 | 16
            ) =>
        {
            Error::Internal(format!("etcd {what}: {error}"))
        }
        _ => Error::StorageUnavailable(format!("etcd {what}: {error}")),
    }
}

fn convert(kv: &etcd_client::KeyValue) -> Result<KeyValue, Error> {
    let key = kv.key_str().map_err(|e| Error::CorruptObject {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        reason: format!("key is not UTF-8: {e}"),
    })?;
    Ok(KeyValue {
        key: key.to_string(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    })
}

fn convert_event(event: &etcd_client::Event) -> Result<WatchEvent, Error> {
    let kv = event
        .kv()
        .ok_or_else(|| Error::Internal("etcd watch event without key".into()))?;
    match event.event_type() {
        EventType::Put => Ok(WatchEvent::Put { kv: convert(kv)? }),
        EventType::Delete => Ok(WatchEvent::Delete {
            key: convert(kv)?.key,
            revision: kv.mod_revision(),
            prev: event.prev_kv().map(convert).transpose()?,
        }),
    }
}

/// State of a running watch stream: the etcd stream (whose request half must stay open,
/// or etcd ends the watch) and events received but not yet yielded.
struct Watching {
    stream: etcd_client::WatchStream,
    pending: VecDeque<WatchEvent>,
    next: i64,
}

impl Watching {
    async fn next_event(mut self) -> Option<(Result<WatchEvent, Error>, Option<Watching>)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.next = event.revision() + 1;
                return Some((Ok(event), Some(self)));
            }
            let response = match self.stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return None,
                Err(e) => return Some((Err(map_error("watch", e)), None)),
            };
            if let Some(error) = watch_failure(&response, self.next) {
                return Some((Err(error), None));
            }
            for event in response.events() {
                match convert_event(event) {
                    Ok(event) => self.pending.push_back(event),
                    Err(error) => return Some((Err(error), None)),
                }
            }
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        let mut kv = self.kv.clone();
        // etcd's default range is linearizable.
        let response = self.call("get", kv.get(key, None)).await?;
        response.kvs().first().map(convert).transpose()
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Error> {
        let mut kv = self.kv.clone();
        // Without a sort option etcd returns keys in ascending byte order.
        let response = self
            .call(
                "list",
                kv.get(prefix, Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        let items = response
            .kvs()
            .iter()
            .map(convert)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, revision))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<WriteOutcome, Error> {
        check_value_size(&value, self.max_value_bytes())?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        self.txn("create", txn).await
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: i64,
    ) -> Result<WriteOutcome, Error> {
        check_value_size(&value, self.max_value_bytes())?;
        // A missing key has mod_revision 0: the version check keeps an update with an
        // expected revision of 0 from creating it.
        let txn = Txn::new()
            .when([
                Compare::version(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision),
            ])
            .and_then([TxnOp::put(key, value, None)]);
        self.txn("update", txn).await
    }

    async fn delete(&self, key: &str, expected_mod_revision: i64) -> Result<WriteOutcome, Error> {
        let txn = Txn::new()
            .when([
                Compare::version(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision),
            ])
            .and_then([TxnOp::delete(key, None)]);
        self.txn("delete", txn).await
    }

    async fn watch(&self, prefix: &str, start_revision: Option<i64>) -> Result<WatchStream, Error> {
        // etcd reads start revision 0 as "from now"; negative ones mean the same here.
        let start = start_revision.filter(|rev| *rev > 0);
        let (stream, next) =
            match tokio::time::timeout(self.request_timeout, self.establish(prefix, start)).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(Error::StorageUnavailable(format!(
                        "establishing an etcd watch timed out after {:?}",
                        self.request_timeout
                    )));
                }
            };
        let state = Watching {
            stream,
            pending: VecDeque::new(),
            next,
        };
        Ok(Box::pin(futures::stream::unfold(
            Some(state),
            |state| async move { state?.next_event().await },
        )))
    }

    async fn current_revision(&self) -> Result<i64, Error> {
        let mut kv = self.kv.clone();
        // A linearizable read needs a leader and a quorum, so this also probes readiness.
        let response = self
            .call(
                "revision",
                kv.get("/", Some(GetOptions::new().with_count_only())),
            )
            .await?;
        response
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| Error::Internal("etcd response without header".into()))
    }

    fn max_value_bytes(&self) -> usize {
        max_value_bytes(self.max_request_bytes)
    }
}
