//! Controllers: reconcile every object of a kind with bounded concurrency, per-key
//! backoff on error, periodic resync and graceful shutdown.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use krake_crds::Resource;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::metrics::{ControllerMetrics, Metrics};
use crate::ops::Readiness;
use crate::queue::WorkQueue;
use crate::reflector::Reflector;
use crate::store::{Change, ObjectKey, Store};

/// What to do after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Reconcile again after `delay` (earlier if the object changes).
    pub fn requeue(delay: Duration) -> Self {
        Action {
            requeue_after: Some(delay),
        }
    }

    /// Reconcile again only when the object changes (or at the next resync).
    pub fn await_change() -> Self {
        Action {
            requeue_after: None,
        }
    }

    /// The requested delay, if any.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.requeue_after
    }
}

/// An error returned by a reconcile function. The key is retried with exponential
/// backoff; [`ReconcileError::kind`] labels the error metric.
pub trait ReconcileError: fmt::Display + Send + 'static {
    /// A short, stable class name for the error metric (low cardinality).
    fn kind(&self) -> String {
        "error".to_string()
    }
}

impl ReconcileError for krake_client::Error {
    fn kind(&self) -> String {
        krake_client::Error::kind(self)
    }
}

impl ReconcileError for Box<dyn std::error::Error + Send + Sync> {}

/// How a controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Reconciles running at once (at least 1).
    pub workers: usize,
    /// Every key of the primary store is queued again this often (level-based safety
    /// net: whatever an event missed is corrected). `None` disables.
    pub resync_interval: Option<Duration>,
    /// Per-key backoff after failed reconciles.
    pub backoff: Backoff,
    /// On shutdown, how long running reconciles may take to finish before they are
    /// cancelled.
    pub shutdown_grace: Duration,
}

impl Default for ControllerConfig {
    /// 5 workers, resync every 5 minutes, backoff 500 ms doubling to 60 s, 30 s grace.
    fn default() -> Self {
        ControllerConfig {
            workers: 5,
            resync_interval: Some(Duration::from_secs(300)),
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Run `workers` workers over `queue` until `shutdown` is cancelled (or the queue is
/// closed): each takes a key, calls `handler` and records the outcome.
///
/// `handler(key)` returns `None` when there is nothing to do for the key (e.g. the
/// object vanished; counted as `skipped`), or the reconcile future. Each reconcile runs
/// inside a `reconcile` tracing span (`controller`, `object`); a success forgets the
/// key's failures and honours [`Action::requeue_after`]; an error (or a panic) re-queues
/// the key with backoff. On shutdown the queue is closed, running reconciles get
/// `shutdown_grace` to finish, then are cancelled.
///
/// This is the engine of [`Controller`], public for controllers whose keys span
/// several kinds (e.g. the garbage collector).
pub async fn run_workers<K, H, Fut, E>(
    queue: WorkQueue<K>,
    workers: usize,
    metrics: ControllerMetrics,
    shutdown: CancellationToken,
    shutdown_grace: Duration,
    handler: H,
) where
    K: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
    H: Fn(K) -> Option<Fut> + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: ReconcileError,
{
    let handler = Arc::new(handler);
    let mut set = JoinSet::new();
    for _ in 0..workers.max(1) {
        set.spawn(worker(queue.clone(), handler.clone(), metrics.clone()));
    }
    let all_done = async { while set.join_next().await.is_some() {} };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = all_done => return,
    }
    queue.close();
    let in_flight = queue.in_flight();
    if in_flight > 0 {
        tracing::info!(
            controller = metrics.name(),
            in_flight,
            "shutting down, waiting for running reconciles"
        );
    }
    let drained = tokio::time::timeout(shutdown_grace, async {
        while set.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            controller = metrics.name(),
            grace = ?shutdown_grace,
            "reconciles still running after the shutdown grace period; cancelling them"
        );
        set.shutdown().await;
    }
}

async fn worker<K, H, Fut, E>(queue: WorkQueue<K>, handler: Arc<H>, metrics: ControllerMetrics)
where
    K: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
    H: Fn(K) -> Option<Fut> + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: ReconcileError,
{
    while let Some(key) = queue.get().await {
        let span = tracing::info_span!("reconcile", controller = metrics.name(), object = %key);
        let prepared = std::panic::catch_unwind(AssertUnwindSafe(|| handler(key.clone())));
        let start = Instant::now();
        let outcome = match prepared {
            Ok(None) => {
                queue.forget(&key);
                metrics.skipped();
                queue.done(&key);
                continue;
            }
            Ok(Some(fut)) => AssertUnwindSafe(fut.instrument(span.clone()))
                .catch_unwind()
                .await
                .map_err(|_| ()),
            Err(_) => Err(()),
        };
        let seconds = start.elapsed().as_secs_f64();
        match outcome {
            Ok(Ok(action)) => {
                queue.forget(&key);
                metrics.success(seconds);
                if let Some(delay) = action.requeue_after() {
                    queue.add_after(key.clone(), delay);
                }
                span.in_scope(|| tracing::debug!(?action, seconds, "reconciled"));
            }
            Ok(Err(err)) => {
                let kind = err.kind();
                metrics.failure(&kind, seconds);
                let delay = queue.requeue_with_backoff(key.clone());
                span.in_scope(|| {
                    tracing::warn!(error = %err, kind = %kind, retry_in = ?delay, "reconcile failed")
                });
            }
            Err(()) => {
                metrics.failure("panic", seconds);
                let delay = queue.requeue_with_backoff(key.clone());
                span.in_scope(|| tracing::error!(retry_in = ?delay, "reconcile panicked"));
            }
        }
        queue.done(&key);
    }
}

/// A reflector of any kind, for the controller's bookkeeping.
trait AnyReflector: Send + Sync {
    fn run(&self, shutdown: CancellationToken) -> BoxFuture<'static, ()>;
    fn wait_synced(&self) -> BoxFuture<'static, ()>;
    fn set_metrics(&self, metrics: &Metrics);
}

impl<O: Resource> AnyReflector for Reflector<O> {
    fn run(&self, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        let reflector = self.clone();
        Box::pin(async move { reflector.run(shutdown).await })
    }

    fn wait_synced(&self) -> BoxFuture<'static, ()> {
        let store = self.store();
        Box::pin(async move { store.wait_until_synced().await })
    }

    fn set_metrics(&self, metrics: &Metrics) {
        Reflector::set_metrics(self, metrics);
    }
}

/// Reconciles every object of kind `R`.
///
/// Keys (namespace/name) are queued when the primary reflector reports an addition or
/// a modification, when a watched secondary kind maps a change to them
/// ([`Controller::watches`]), at every resync, and when a reconcile asks for it
/// ([`Action::requeue`]) or fails (backoff). Workers start once every reflector has
/// listed once; a key whose object is no longer in the store is skipped.
///
/// ```no_run
/// # async fn example() -> Result<(), krake_client::Error> {
/// use std::sync::Arc;
/// use krake_client::{Client, ClientConfig};
/// use krake_crds::kubernetes::Application;
/// use krake_runtime::{Action, Controller, ControllerConfig, Reflector};
/// use tokio_util::sync::CancellationToken;
///
/// let client = Client::new(ClientConfig::new("http://localhost:8080"))?;
/// let apps = Reflector::<Application>::all(&client);
/// let controller = Controller::new("example", apps, ControllerConfig::default());
/// let shutdown = CancellationToken::new();
/// controller
///     .run(
///         |app: Arc<Application>, client: Arc<Client>| async move {
///             tracing::info!(name = %app.metadata.name, "seen");
///             Ok::<_, krake_client::Error>(Action::await_change())
///         },
///         Arc::new(client),
///         shutdown,
///     )
///     .await;
/// # Ok(()) }
/// ```
pub struct Controller<R> {
    name: String,
    reflector: Reflector<R>,
    secondary: Vec<Box<dyn AnyReflector>>,
    queue: WorkQueue<ObjectKey>,
    config: ControllerConfig,
    metrics: ControllerMetrics,
    readiness: Readiness,
}

impl<R> fmt::Debug for Controller<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<R: Resource> Controller<R> {
    /// A controller named `name` (used in logs and metrics) of the objects `reflector`
    /// maintains. The reflector is run by [`Controller::run`] (sharing it with other
    /// controllers is fine).
    pub fn new(name: impl Into<String>, reflector: Reflector<R>, config: ControllerConfig) -> Self {
        let name = name.into();
        let queue = WorkQueue::new(config.backoff);
        let metrics = Metrics::unregistered().controller(&name);
        queue.set_depth_gauge(metrics.queue_depth());
        let trigger = queue.clone();
        reflector.on_change(move |change: &Change<R>| match change {
            Change::Added(_) | Change::Modified { .. } => trigger.add(change.key()),
            Change::Deleted(_) => {}
        });
        let readiness = Readiness::new();
        readiness.add_store(&reflector.store());
        Controller {
            name,
            reflector,
            secondary: Vec::new(),
            queue,
            config,
            metrics,
            readiness,
        }
    }

    /// Record this controller's metrics (and its reflectors' failures) in `metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = metrics.controller(&self.name);
        self.queue.set_depth_gauge(self.metrics.queue_depth());
        self.reflector.set_metrics(metrics);
        for r in &self.secondary {
            r.set_metrics(metrics);
        }
        self
    }

    /// Also reconcile when objects of another kind change: `mapper` turns each change
    /// of `reflector` into the keys of primary objects to queue (e.g. the applications
    /// bound to a changed cluster). The controller waits for this reflector's first
    /// list too before reconciling.
    pub fn watches<O: Resource>(
        mut self,
        reflector: Reflector<O>,
        mapper: impl Fn(&Change<O>) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Self {
        let trigger = self.queue.clone();
        reflector.on_change(move |change| {
            for key in mapper(change) {
                trigger.add(key);
            }
        });
        self.readiness.add_store(&reflector.store());
        self.secondary.push(Box::new(reflector));
        self
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store of the primary kind.
    pub fn store(&self) -> Store<R> {
        self.reflector.store()
    }

    /// The work queue (to queue keys from elsewhere).
    pub fn queue(&self) -> WorkQueue<ObjectKey> {
        self.queue.clone()
    }

    /// Readiness of the controller: ready once every reflector listed once.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Whether every reflector of the controller listed once.
    pub fn ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// The controller's metrics handle.
    pub fn metrics(&self) -> &ControllerMetrics {
        &self.metrics
    }

    /// Run until `shutdown` is cancelled: the reflectors, the resync timer and
    /// `config.workers` workers calling `reconcile(object, ctx)`. Returns once running
    /// reconciles finished (or the shutdown grace period expired).
    pub async fn run<C, F, Fut, E>(self, reconcile: F, ctx: Arc<C>, shutdown: CancellationToken)
    where
        C: Send + Sync + 'static,
        F: Fn(Arc<R>, Arc<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: ReconcileError,
    {
        let Controller {
            name,
            reflector,
            secondary,
            queue,
            config,
            metrics,
            readiness: _,
        } = self;
        let mut background = JoinSet::new();
        let mut synced = Vec::new();
        {
            let r = reflector.clone();
            let token = shutdown.clone();
            background.spawn(async move { r.run(token).await });
            let store = reflector.store();
            synced
                .push(Box::pin(async move { store.wait_until_synced().await })
                    as BoxFuture<'static, ()>);
        }
        for r in &secondary {
            background.spawn(r.run(shutdown.clone()));
            synced.push(r.wait_synced());
        }

        tokio::select! {
            _ = shutdown.cancelled() => {
                background.shutdown().await;
                return;
            }
            _ = futures::future::join_all(synced) => {}
        }
        tracing::info!(controller = %name, workers = config.workers, "caches synced, starting workers");

        let store = reflector.store();
        if let Some(interval) = config.resync_interval {
            let store = store.clone();
            let queue = queue.clone();
            let token = shutdown.clone();
            let name = name.clone();
            background.spawn(async move {
                let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = ticks.tick() => {}
                    }
                    let keys = store.keys();
                    tracing::debug!(controller = %name, keys = keys.len(), "resync");
                    for key in keys {
                        queue.add(key);
                    }
                }
            });
        }

        run_workers(
            queue,
            config.workers,
            metrics,
            shutdown.clone(),
            config.shutdown_grace,
            move |key: ObjectKey| {
                let obj = store.get(&key)?;
                Some(reconcile(obj, ctx.clone()))
            },
        )
        .await;
        // Workers only stop on shutdown (or if the queue was closed from outside).
        shutdown.cancel();
        background.shutdown().await;
        tracing::info!(controller = %name, "stopped");
    }
}
