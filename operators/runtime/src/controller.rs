//! Controllers: reconcile every object of a kind with bounded concurrency, per-key
//! backoff on error, periodic resync and graceful shutdown.

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
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
use crate::store::{Change, ObjectRef, Store};

/// What to do with a key after a reconcile: the result of a successful reconcile, or
/// of the error policy after a failed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    next: Next,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    AwaitChange,
    RequeueAfter(Duration),
    Backoff,
}

impl Action {
    /// Reconcile again after `delay` (earlier if the object changes).
    pub fn requeue(delay: Duration) -> Self {
        Action {
            next: Next::RequeueAfter(delay),
        }
    }

    /// Reconcile again only when the object changes (or at the next resync).
    pub fn await_change() -> Self {
        Action {
            next: Next::AwaitChange,
        }
    }

    /// Reconcile again after the key's per-key exponential backoff delay
    /// ([`ControllerConfig::backoff`]), which grows with each consecutive backoff of the
    /// key; until then, changes of the object do not cut the wait. What
    /// [`default_error_policy`] answers to every error. Returned by a successful
    /// reconcile it also backs off (without resetting the key's failures).
    pub fn backoff() -> Self {
        Action {
            next: Next::Backoff,
        }
    }

    /// The requested fixed delay, if any.
    pub fn requeue_after(&self) -> Option<Duration> {
        match self.next {
            Next::RequeueAfter(delay) => Some(delay),
            Next::AwaitChange | Next::Backoff => None,
        }
    }

    /// Whether this is [`Action::backoff`].
    pub fn is_backoff(&self) -> bool {
        self.next == Next::Backoff
    }
}

/// The error policy that keeps the runtime's default: every failed reconcile is retried
/// after the key's exponential backoff delay ([`Action::backoff`]). Pass it as the
/// `error_policy` of [`Controller::run`], as the example on [`Controller`] does.
pub fn default_error_policy<R, E, C>(_object: Arc<R>, _error: &E, _ctx: Arc<C>) -> Action {
    Action::backoff()
}

/// An error returned by a reconcile function. What follows is the error policy's
/// [`Action`] (by default, a retry with exponential backoff); [`ReconcileError::kind`]
/// labels the error metric.
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
    /// Reconciles running at once (at least 1; kube-runtime's `concurrency`).
    pub concurrency: usize,
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
    /// 5 reconciles at once, resync every 5 minutes, backoff 500 ms doubling to 60 s
    /// (jittered), 30 s grace.
    fn default() -> Self {
        ControllerConfig {
            concurrency: 5,
            resync_interval: Some(Duration::from_secs(300)),
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Run `concurrency` workers over `queue` until `shutdown` is cancelled (or the queue
/// is closed): each takes a key, calls `handler` and records the outcome.
///
/// `handler(key)` returns `None` when there is nothing to do for the key (e.g. the
/// object vanished; counted as `skipped`), or the reconcile future. Each reconcile runs
/// inside a `reconcile` tracing span (`controller`, `object`); a success forgets the
/// key's failures and honours its [`Action`]; an error (or a panic) re-queues the key
/// with backoff. On shutdown the queue is closed, running reconciles get
/// `shutdown_grace` to finish, then are cancelled.
///
/// This is the engine of [`Controller`], public for controllers whose keys span
/// several kinds (e.g. the garbage collector).
pub async fn run_workers<K, H, Fut, E>(
    queue: WorkQueue<K>,
    concurrency: usize,
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
    run_workers_with_policy(
        queue,
        concurrency,
        metrics,
        shutdown,
        shutdown_grace,
        move |key| {
            handler(key)
                .map(|fut| fut.map(|result| result.map_err(|error| (error, Action::backoff()))))
        },
    )
    .await
}

/// [`run_workers`] whose reconcile futures fail with the error and the [`Action`] the
/// error policy chose for it.
async fn run_workers_with_policy<K, H, Fut, E>(
    queue: WorkQueue<K>,
    concurrency: usize,
    metrics: ControllerMetrics,
    shutdown: CancellationToken,
    shutdown_grace: Duration,
    handler: H,
) where
    K: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
    H: Fn(K) -> Option<Fut> + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, (E, Action)>> + Send + 'static,
    E: ReconcileError,
{
    let handler = Arc::new(handler);
    let mut set = JoinSet::new();
    for _ in 0..concurrency.max(1) {
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

/// Follow `action` for `key`; returns the delay before the next reconcile, if one is
/// scheduled.
fn schedule<K: Clone + Eq + Hash>(
    queue: &WorkQueue<K>,
    key: &K,
    action: Action,
) -> Option<Duration> {
    match action.next {
        Next::AwaitChange => None,
        Next::RequeueAfter(delay) => {
            queue.add_after(key.clone(), delay);
            Some(delay)
        }
        Next::Backoff => Some(queue.requeue_with_backoff(key.clone())),
    }
}

async fn worker<K, H, Fut, E>(queue: WorkQueue<K>, handler: Arc<H>, metrics: ControllerMetrics)
where
    K: Clone + Eq + Hash + fmt::Display + Send + Sync + 'static,
    H: Fn(K) -> Option<Fut> + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, (E, Action)>> + Send + 'static,
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
                if !action.is_backoff() {
                    queue.forget(&key);
                }
                metrics.success(seconds);
                schedule(&queue, &key, action);
                span.in_scope(|| tracing::debug!(?action, seconds, "reconciled"));
            }
            Ok(Err((err, action))) => {
                let kind = err.kind();
                metrics.failure(&kind, seconds);
                let retry = schedule(&queue, &key, action);
                span.in_scope(|| {
                    tracing::warn!(error = %err, kind = %kind, retry_in = ?retry, "reconcile failed")
                });
            }
            // A panic carries no error for the policy: it always backs off.
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
    fn wait_ready(&self) -> BoxFuture<'static, ()>;
    fn set_metrics(&self, metrics: &Metrics);
}

impl<O: Resource> AnyReflector for Reflector<O> {
    fn run(&self, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        let reflector = self.clone();
        Box::pin(async move { reflector.run(shutdown).await })
    }

    fn wait_ready(&self) -> BoxFuture<'static, ()> {
        let store = self.store();
        Box::pin(async move { store.wait_until_ready().await })
    }

    fn set_metrics(&self, metrics: &Metrics) {
        Reflector::set_metrics(self, metrics);
    }
}

type Predicate<R> = Arc<dyn Fn(&R, &R) -> bool + Send + Sync>;

/// The owners of kind `R` of the object `change` concerns, before and after the change
/// (an owner that lost a dependent is concerned too). A reference without namespace
/// means the namespace of the dependent.
fn owners_of<R: Resource, C: Resource>(change: &Change<C>) -> Vec<ObjectRef<R>> {
    let versions: &[&Arc<C>] = match change {
        Change::Added(obj) | Change::Deleted(obj) => &[obj],
        Change::Modified { old, new } => &[old, new],
    };
    let mut owners = Vec::new();
    for obj in versions {
        let meta = obj.metadata();
        for owner in &meta.owners {
            if owner.api != R::API || owner.kind != R::KIND {
                continue;
            }
            let namespace = owner
                .namespace
                .as_deref()
                .filter(|ns| !ns.is_empty())
                .or(meta.namespace.as_deref());
            let key = ObjectRef::new(&owner.name).within(namespace);
            if !owners.contains(&key) {
                owners.push(key);
            }
        }
    }
    owners
}

/// Reconciles every object of kind `R`.
///
/// Keys ([`ObjectRef`]s) are queued when the primary reflector reports an addition or
/// a modification (unless a predicate, [`Controller::with_predicate`], rejects it), when
/// a watched secondary kind maps a change to them ([`Controller::watches`]) or a child
/// names them as owner ([`Controller::owns`]), at every resync, and when a reconcile or
/// the error policy asks for it ([`Action`]). Workers start once every reflector
/// (including those only [`Controller::uses`]) has listed once; a key whose object is
/// no longer in the store is skipped.
///
/// ```no_run
/// # async fn example() -> Result<(), krake_client::Error> {
/// use std::sync::Arc;
/// use krake_client::{Client, ClientConfig};
/// use krake_crds::kubernetes::Application;
/// use krake_runtime::{Action, Controller, ControllerConfig, Reflector, default_error_policy};
/// use tokio_util::sync::CancellationToken;
///
/// let client = Client::new(ClientConfig::new("http://localhost:8080"))?;
/// let apps = Reflector::<Application>::all(&client);
/// let shutdown = CancellationToken::new();
/// Controller::new("example", apps, ControllerConfig::default())
///     .graceful_shutdown_on(shutdown.clone().cancelled_owned())
///     .run(
///         |app: Arc<Application>, client: Arc<Client>| async move {
///             tracing::info!(name = %app.metadata.name, "seen");
///             Ok::<_, krake_client::Error>(Action::await_change())
///         },
///         default_error_policy,
///         Arc::new(client),
///     )
///     .await;
/// # Ok(()) }
/// ```
pub struct Controller<R> {
    name: String,
    reflector: Reflector<R>,
    secondary: Vec<Box<dyn AnyReflector>>,
    queue: WorkQueue<ObjectRef<R>>,
    config: ControllerConfig,
    metrics: ControllerMetrics,
    readiness: Readiness,
    predicates: Arc<RwLock<Vec<Predicate<R>>>>,
    shutdown_signal: Option<BoxFuture<'static, ()>>,
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
        let predicates: Arc<RwLock<Vec<Predicate<R>>>> = Arc::default();
        let trigger = queue.clone();
        let filters = predicates.clone();
        reflector.on_change(move |change: &Change<R>| match change {
            Change::Added(_) => trigger.add(change.object_ref()),
            Change::Modified { old, new } => {
                let wanted = filters
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .all(|predicate| predicate(old, new));
                if wanted {
                    trigger.add(change.object_ref());
                }
            }
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
            predicates,
            shutdown_signal: None,
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

    /// Queue a modified primary object only if `predicate(old, new)` holds (`false`:
    /// the change alone does not trigger a reconcile; e.g.
    /// [`crate::predicates::ignore_status_changes`] so that a controller's own status
    /// writes do not requeue it). Several predicates must all hold. Additions, resyncs,
    /// secondary kinds and requeues are not filtered: the resync still corrects
    /// whatever a filtered change should have caused.
    pub fn with_predicate(
        self,
        predicate: impl Fn(&R, &R) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicates
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(predicate));
        self
    }

    /// Also reconcile when objects of another kind change: `mapper` turns each change
    /// of `reflector` into the references of primary objects to queue (e.g. the
    /// applications bound to a changed cluster). The controller waits for this
    /// reflector's first list too before reconciling.
    pub fn watches<O: Resource>(
        self,
        reflector: Reflector<O>,
        mapper: impl Fn(&Change<O>) -> Vec<ObjectRef<R>> + Send + Sync + 'static,
    ) -> Self {
        let trigger = self.queue.clone();
        reflector.on_change(move |change| {
            for key in mapper(change) {
                trigger.add(key);
            }
        });
        self.uses(reflector)
    }

    /// Reconcile the owners of kind `R` of every changed `Child`: the entries of the
    /// child's `metadata.owners` whose `api` and `kind` are `R`'s (before and after a
    /// modification). Like [`Controller::watches`] with that mapping.
    pub fn owns<Child: Resource>(self, reflector: Reflector<Child>) -> Self {
        self.watches(reflector, owners_of::<R, Child>)
    }

    /// Run `reflector` with the controller and wait for its first list before
    /// reconciling (readiness included), without queueing anything when its objects
    /// change: for kinds the reconcile only reads from the store.
    pub fn uses<O: Resource>(mut self, reflector: Reflector<O>) -> Self {
        self.readiness.add_store(&reflector.store());
        self.secondary.push(Box::new(reflector));
        self
    }

    /// Stop when `signal` completes: no new reconcile starts, running ones get
    /// [`ControllerConfig::shutdown_grace`] to finish, then [`Controller::run`] returns.
    /// Without it, the controller runs until its future is dropped.
    pub fn graceful_shutdown_on(
        mut self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        self.shutdown_signal = Some(Box::pin(signal));
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

    /// The work queue (to queue references from elsewhere).
    pub fn queue(&self) -> WorkQueue<ObjectRef<R>> {
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

    /// Run until the [`Controller::graceful_shutdown_on`] signal: the reflectors, the
    /// resync timer and `config.concurrency` workers calling `reconcile(object, ctx)`.
    /// When a reconcile fails, `error_policy(object, &error, ctx)` chooses what follows
    /// ([`default_error_policy`]: per-key exponential backoff). Returns once running
    /// reconciles finished (or the shutdown grace period expired).
    pub async fn run<C, F, Fut, E, P>(self, reconcile: F, error_policy: P, ctx: Arc<C>)
    where
        C: Send + Sync + 'static,
        F: Fn(Arc<R>, Arc<C>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: ReconcileError,
        P: Fn(Arc<R>, &E, Arc<C>) -> Action + Send + Sync + 'static,
    {
        let Controller {
            name,
            reflector,
            secondary,
            queue,
            config,
            metrics,
            readiness: _,
            predicates: _,
            shutdown_signal,
        } = self;
        let shutdown = CancellationToken::new();
        if let Some(signal) = shutdown_signal {
            let token = shutdown.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = signal => token.cancel(),
                    _ = token.cancelled() => {}
                }
            });
        }
        // However this future ends (also when dropped), the reflectors and timers stop.
        let _stop = shutdown.clone().drop_guard();
        let mut background = JoinSet::new();
        let mut ready = Vec::new();
        {
            let r = reflector.clone();
            let token = shutdown.clone();
            background.spawn(async move { r.run(token).await });
            let store = reflector.store();
            ready
                .push(Box::pin(async move { store.wait_until_ready().await })
                    as BoxFuture<'static, ()>);
        }
        for r in &secondary {
            background.spawn(r.run(shutdown.clone()));
            ready.push(r.wait_ready());
        }

        tokio::select! {
            _ = shutdown.cancelled() => {
                background.shutdown().await;
                return;
            }
            _ = futures::future::join_all(ready) => {}
        }
        tracing::info!(controller = %name, concurrency = config.concurrency, "caches synced, starting workers");

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

        let error_policy = Arc::new(error_policy);
        run_workers_with_policy(
            queue,
            config.concurrency,
            metrics,
            shutdown.clone(),
            config.shutdown_grace,
            move |key: ObjectRef<R>| {
                let obj = store.get(&key)?;
                let fut = reconcile(obj.clone(), ctx.clone());
                let error_policy = error_policy.clone();
                let ctx = ctx.clone();
                Some(async move {
                    fut.await.map_err(|error| {
                        let action = error_policy(obj, &error, ctx);
                        (error, action)
                    })
                })
            },
        )
        .await;
        // Workers only stop on shutdown (or if the queue was closed from outside).
        shutdown.cancel();
        background.shutdown().await;
        tracing::info!(controller = %name, "stopped");
    }
}
