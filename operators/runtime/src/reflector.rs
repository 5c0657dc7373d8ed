//! Reflector: keeps a [`Store`] in sync with the API by listing, then watching from the
//! list's revision, resuming after disconnections from the last revision seen,
//! re-listing when the server no longer has that revision (410) and backing off
//! between failures.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use krake_client::{Api, Client, Error as ClientError, ObjectList, WatchEvent};
use krake_crds::Resource;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::store::{Change, Store, Writer};

/// Where a reflector lists and watches objects (the Krake API through [`ApiSource`], or
/// a fake in tests).
pub trait Source<R>: Send + Sync + 'static {
    /// List every object, with the list's revision.
    fn list(&self) -> BoxFuture<'static, Result<ObjectList<R>, ClientError>>;

    /// Watch changes after `resource_version` (or from now when `None`). Ending the
    /// stream or yielding an error other than [`ClientError::Decode`] ends the watch;
    /// [`ClientError::Gone`] forces a re-list.
    fn watch(
        &self,
        resource_version: Option<&str>,
    ) -> BoxStream<'static, Result<WatchEvent<R>, ClientError>>;
}

/// The Krake API as a [`Source`]: one namespace, or all namespaces.
pub struct ApiSource<R> {
    api: Api<R>,
    namespace: Option<String>,
}

impl<R> fmt::Debug for ApiSource<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiSource")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl<R: Resource> ApiSource<R> {
    /// Every object of kind `R` (all namespaces).
    pub fn all(client: &Client) -> Self {
        ApiSource {
            api: client.api(),
            namespace: None,
        }
    }

    /// The objects of kind `R` in `namespace`.
    pub fn namespaced(client: &Client, namespace: &str) -> Self {
        ApiSource {
            api: client.api(),
            namespace: Some(namespace.to_string()),
        }
    }
}

impl<R: Resource> Source<R> for ApiSource<R> {
    fn list(&self) -> BoxFuture<'static, Result<ObjectList<R>, ClientError>> {
        let api = self.api.clone();
        let namespace = self.namespace.clone();
        Box::pin(async move { api.list(namespace.as_deref()).await })
    }

    fn watch(
        &self,
        resource_version: Option<&str>,
    ) -> BoxStream<'static, Result<WatchEvent<R>, ClientError>> {
        self.api.watch(self.namespace.as_deref(), resource_version)
    }
}

/// How a reflector behaves.
#[derive(Debug, Clone)]
pub struct ReflectorConfig {
    /// Delays between consecutive failed lists or watches.
    pub backoff: Backoff,
    /// Re-list periodically even when the watch is healthy (the cache refreshes itself;
    /// deletions missed for any reason are corrected). `None` disables.
    pub relist_interval: Option<Duration>,
    /// A watch that lasted at least this long (or delivered an event) counts as healthy:
    /// its end resets the backoff.
    pub healthy_watch: Duration,
}

impl Default for ReflectorConfig {
    /// Backoff 1 s doubling to 30 s, re-list every 30 minutes, watches healthy after
    /// 10 s.
    fn default() -> Self {
        ReflectorConfig {
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            relist_interval: Some(Duration::from_secs(30 * 60)),
            healthy_watch: Duration::from_secs(10),
        }
    }
}

type Handler<R> = Arc<dyn Fn(&Change<R>) + Send + Sync>;

struct Inner<R> {
    name: String,
    source: Box<dyn Source<R>>,
    config: ReflectorConfig,
    writer: Mutex<Writer<R>>,
    store: Store<R>,
    handlers: RwLock<Vec<Handler<R>>>,
    running: AtomicBool,
    metrics: RwLock<Metrics>,
}

/// Keeps a [`Store`] of kind `R` in sync and notifies subscribers of every change.
///
/// Cheap to clone (clones share everything): several controllers can subscribe to one
/// reflector; [`Reflector::run`] runs it once however often it is called.
pub struct Reflector<R> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for Reflector<R> {
    fn clone(&self) -> Self {
        Reflector {
            inner: self.inner.clone(),
        }
    }
}

impl<R> fmt::Debug for Reflector<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reflector")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

enum WatchEnd {
    Shutdown,
    Relist,
    Gone,
    Ended,
    Failed(ClientError),
}

impl<R: Resource> Reflector<R> {
    /// A reflector over `source`.
    pub fn new(source: impl Source<R>, config: ReflectorConfig) -> Self {
        let writer = Writer::new();
        let store = writer.store();
        Reflector {
            inner: Arc::new(Inner {
                name: format!("{}/{}", R::API, R::KIND),
                source: Box::new(source),
                config,
                writer: Mutex::new(writer),
                store,
                handlers: RwLock::new(Vec::new()),
                running: AtomicBool::new(false),
                metrics: RwLock::new(Metrics::unregistered()),
            }),
        }
    }

    /// A reflector of every object of `R` in the Krake API, default configuration.
    pub fn all(client: &Client) -> Self {
        Self::new(ApiSource::all(client), ReflectorConfig::default())
    }

    /// The reflector's name (`api/Kind`), used in logs and metrics.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Count failures in `metrics`.
    pub fn set_metrics(&self, metrics: &Metrics) {
        *self
            .inner
            .metrics
            .write()
            .unwrap_or_else(|e| e.into_inner()) = metrics.clone();
    }

    /// The store this reflector fills.
    pub fn store(&self) -> Store<R> {
        self.inner.store.clone()
    }

    /// Call `handler` with every change, after the store was updated, on the reflector
    /// task (keep it short and non-blocking: e.g. add keys to a queue). Subscribe
    /// before [`Reflector::run`] to see the initial list as additions.
    pub fn on_change(&self, handler: impl Fn(&Change<R>) + Send + Sync + 'static) {
        self.inner
            .handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(handler));
    }

    /// Receive every change through an unbounded channel (see [`Reflector::on_change`]).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change<R>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.on_change(move |change| {
            let _ = tx.send(change.clone());
        });
        rx
    }

    fn notify(&self, changes: &[Change<R>]) {
        if changes.is_empty() {
            return;
        }
        let handlers: Vec<Handler<R>> = self
            .inner
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for change in changes {
            for handler in &handlers {
                handler(change);
            }
        }
    }

    fn failure(&self, operation: &'static str) {
        self.inner
            .metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .reflector_failure(&self.inner.name, operation);
    }

    /// Run until `shutdown` is cancelled. A second concurrent call only waits for
    /// `shutdown` (the reflector runs once).
    pub async fn run(&self, shutdown: CancellationToken) {
        if self.inner.running.swap(true, Ordering::SeqCst) {
            shutdown.cancelled().await;
            return;
        }
        // Reset the flag however this future ends (also when it is dropped), so that
        // the reflector can be run again later.
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _running = Running(&self.inner.running);
        self.run_loop(&shutdown).await;
    }

    async fn sleep(&self, delay: Duration, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    async fn run_loop(&self, shutdown: &CancellationToken) {
        let name = self.inner.name.clone();
        let config = self.inner.config.clone();
        let mut resource_version: Option<String> = None;
        let mut need_list = true;
        let mut failures: u32 = 0;
        let mut listed_at = Instant::now();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            if need_list {
                let result = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = self.inner.source.list() => r,
                };
                match result {
                    Ok(list) => {
                        let count = list.items.len();
                        let changes = {
                            let mut writer =
                                self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
                            let changes = writer.replace(list.items);
                            writer.mark_synced();
                            changes
                        };
                        tracing::debug!(
                            reflector = %name,
                            objects = count,
                            changes = changes.len(),
                            resource_version = list.resource_version.as_deref().unwrap_or(""),
                            "listed"
                        );
                        self.notify(&changes);
                        resource_version = list.resource_version;
                        need_list = false;
                        failures = 0;
                        listed_at = Instant::now();
                    }
                    Err(err) => {
                        failures = failures.saturating_add(1);
                        self.failure("list");
                        let delay = config.backoff.delay(failures);
                        tracing::warn!(reflector = %name, error = %err, retry_in = ?delay, "list failed");
                        if !self.sleep(delay, shutdown).await {
                            return;
                        }
                        continue;
                    }
                }
            }

            let started = Instant::now();
            let mut received = false;
            let mut stream = self.inner.source.watch(resource_version.as_deref());
            let relist_at = config.relist_interval.map(|i| listed_at + i);
            let end = loop {
                let relist = async {
                    match relist_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let item = tokio::select! {
                    _ = shutdown.cancelled() => break WatchEnd::Shutdown,
                    _ = relist => break WatchEnd::Relist,
                    item = stream.next() => item,
                };
                match item {
                    None => break WatchEnd::Ended,
                    Some(Ok(event)) => {
                        received = true;
                        if let Some(rv) = event.resource_version() {
                            resource_version = Some(rv.to_string());
                        }
                        let change = self
                            .inner
                            .writer
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .apply(event);
                        if let Some(change) = change {
                            self.notify(std::slice::from_ref(&change));
                        }
                    }
                    Some(Err(ClientError::Gone { .. })) => break WatchEnd::Gone,
                    Some(Err(ClientError::Decode(message))) => {
                        // One undecodable object must not stop the others; the periodic
                        // re-list retries it.
                        self.failure("decode");
                        tracing::warn!(reflector = %name, error = %message, "skipping undecodable watch event");
                    }
                    Some(Err(err)) => break WatchEnd::Failed(err),
                }
            };
            drop(stream);

            let healthy = received || started.elapsed() >= config.healthy_watch;
            match end {
                WatchEnd::Shutdown => return,
                WatchEnd::Relist => {
                    tracing::debug!(reflector = %name, "periodic re-list");
                    need_list = true;
                    continue;
                }
                WatchEnd::Gone => {
                    tracing::info!(
                        reflector = %name,
                        resource_version = resource_version.as_deref().unwrap_or(""),
                        "revision no longer available (410), re-listing"
                    );
                    self.failure("watch");
                    need_list = true;
                    if healthy {
                        failures = 0;
                        continue;
                    }
                }
                WatchEnd::Ended => {
                    tracing::debug!(reflector = %name, "watch ended, resuming");
                }
                WatchEnd::Failed(err) => {
                    self.failure("watch");
                    tracing::warn!(reflector = %name, error = %err, "watch failed, resuming");
                }
            }
            // Without a revision (server without resumption) only a re-list is safe.
            if resource_version.is_none() {
                need_list = true;
            }
            if healthy {
                failures = 0;
            } else {
                failures = failures.saturating_add(1);
                let delay = config.backoff.delay(failures);
                if !self.sleep(delay, shutdown).await {
                    return;
                }
            }
        }
    }
}
