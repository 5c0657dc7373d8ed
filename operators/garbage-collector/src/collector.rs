//! The collector: fourteen reflectors feeding the ownership graph, a work queue of
//! objects in cascade deletion, and workers acting on [`Graph::decide`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use krake_client::{Api, Client};
use krake_crds::{KindInfo, KindVisitor, Resource, visit_kinds};
use krake_runtime::{
    Action, ApiSource, CancellationToken, Change, ControllerConfig, ControllerMetrics, Metrics,
    ObjectRef, Readiness, Reflector, ReflectorConfig, WorkQueue, finalizer, run_workers,
};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::graph::{Decision, Graph, NodeState};
use crate::kinds::{CASCADE_DELETION, NodeId, is_cascading};

/// The controller name in logs and metrics.
pub const NAME: &str = "garbage-collector";

/// DELETE requests sent at once for the dependents of one object.
const DELETE_CONCURRENCY: usize = 8;

/// How the garbage collector runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Concurrency, resync interval, per-object backoff and shutdown grace, as for any
    /// controller. The resync examines every object in cascade deletion again, whatever
    /// events arrived (level-based safety net).
    pub controller: ControllerConfig,
    /// An object waiting for its dependents is examined again after this delay at the
    /// latest (normally earlier: whenever a dependent changes or disappears).
    pub wait_requeue: Duration,
    /// Reflector behaviour (backoff, periodic re-list).
    pub reflector: ReflectorConfig,
}

impl Default for Config {
    /// The default controller configuration, waiting objects looked at again after
    /// 30 s at the latest, default reflectors.
    fn default() -> Self {
        Config {
            controller: ControllerConfig::default(),
            wait_requeue: Duration::from_secs(30),
            reflector: ReflectorConfig::default(),
        }
    }
}

impl Config {
    /// Check that the configuration can be used.
    pub fn validate(&self) -> Result<()> {
        if self.controller.concurrency == 0 {
            return Err(Error::Config("concurrency must be at least 1".into()));
        }
        if self.controller.resync_interval == Some(Duration::ZERO) {
            return Err(Error::Config(
                "the resync interval must be positive (or disabled)".into(),
            ));
        }
        if self.wait_requeue.is_zero() {
            return Err(Error::Config(
                "the wait requeue delay must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// What the collector shares between reflector handlers and workers.
struct Shared {
    graph: Mutex<Graph<NodeId>>,
    queue: WorkQueue<NodeId>,
}

impl Shared {
    fn graph(&self) -> MutexGuard<'_, Graph<NodeId>> {
        // Graph operations do not panic half-way; a poisoned lock is still consistent.
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Update the graph with a change of one object and queue the objects in cascade
    /// deletion it concerns: itself, and its owners (old and new).
    fn observe<R: Resource>(&self, change: &Change<R>) {
        let mut wake = Vec::new();
        {
            let mut graph = self.graph();
            match change {
                Change::Added(obj) | Change::Modified { new: obj, .. } => {
                    let id = NodeId::of(obj.as_ref());
                    let meta = obj.metadata();
                    let state = NodeState {
                        deleted: meta.deleted.is_some(),
                        cascading: is_cascading(meta),
                    };
                    let previous =
                        graph.upsert(id.clone(), meta.owners.iter().map(NodeId::from_ref), state);
                    let unchanged = previous
                        .as_ref()
                        .is_some_and(|p| p.state == state && p.owners == graph.owners(&id));
                    if !unchanged {
                        if state.cascading {
                            wake.push(id.clone());
                        }
                        let mut owners: Vec<NodeId> = graph.owners(&id).to_vec();
                        if let Some(p) = previous {
                            owners.extend(p.owners);
                        }
                        wake.extend(
                            owners
                                .into_iter()
                                .filter(|o| graph.state(o).is_some_and(|s| s.cascading)),
                        );
                    }
                }
                Change::Deleted(obj) => {
                    let id = NodeId::of(obj.as_ref());
                    if let Some(previous) = graph.remove(&id) {
                        wake.extend(
                            previous
                                .owners
                                .into_iter()
                                .filter(|o| graph.state(o).is_some_and(|s| s.cascading)),
                        );
                    }
                }
            }
        }
        for id in wake {
            self.queue.add(id);
        }
    }
}

/// What happened to the finalizer of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Released {
    /// Removed.
    Removed,
    /// The object is gone.
    Gone,
    /// The object is no longer in cascade deletion (someone else acted).
    NotNeeded,
}

/// The typed operations of one kind, behind a trait object so that keys of every kind
/// share one queue.
trait KindHandle: Send + Sync {
    fn delete(&self, id: NodeId) -> BoxFuture<'static, Result<()>>;
    fn release(&self, id: NodeId) -> BoxFuture<'static, Result<Released>>;
    fn run(&self, shutdown: CancellationToken) -> BoxFuture<'static, ()>;
    fn wait_synced(&self) -> BoxFuture<'static, ()>;
    fn set_metrics(&self, metrics: &Metrics);
}

struct Typed<R> {
    reflector: Reflector<R>,
    api: Api<R>,
}

impl<R: Resource> Typed<R> {
    fn new(client: &Client, config: &ReflectorConfig, shared: &Arc<Shared>) -> Self {
        let reflector = Reflector::new(ApiSource::<R>::all(client), config.clone());
        let shared = shared.clone();
        reflector.on_change(move |change: &Change<R>| shared.observe(change));
        Typed {
            reflector,
            api: client.api(),
        }
    }
}

impl<R: Resource> KindHandle for Typed<R> {
    fn delete(&self, id: NodeId) -> BoxFuture<'static, Result<()>> {
        let api = self.api.clone();
        Box::pin(async move {
            match api.delete(id.namespace.as_deref(), &id.name, false).await {
                Ok(_) => {
                    tracing::debug!(dependent = %id, "dependent marked deleted");
                    Ok(())
                }
                // Already gone: nothing left to delete.
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn release(&self, id: NodeId) -> BoxFuture<'static, Result<Released>> {
        let api = self.api.clone();
        let stored = self
            .reflector
            .store()
            .get(&ObjectRef::new(&id.name).within(id.namespace.as_deref()));
        Box::pin(async move {
            match stored {
                Some(stored) => release_object(&api, &id, stored.as_ref().clone()).await,
                None => Ok(Released::Gone),
            }
        })
    }

    fn run(&self, shutdown: CancellationToken) -> BoxFuture<'static, ()> {
        let reflector = self.reflector.clone();
        Box::pin(async move { reflector.run(shutdown).await })
    }

    fn wait_synced(&self) -> BoxFuture<'static, ()> {
        let store = self.reflector.store();
        Box::pin(async move { store.wait_until_ready().await })
    }

    fn set_metrics(&self, metrics: &Metrics) {
        self.reflector.set_metrics(metrics);
    }
}

/// Remove `cascade_deletion` from `obj` (read at some version) through the runtime's
/// [`finalizer()`] helper: only while it is the last finalizer of the deleted object,
/// with a conditional update retried on conflict. The collector's cleanup (deleting
/// the dependents) happened in earlier passes; the graph decided that none is left.
async fn release_object<R: Resource>(api: &Api<R>, id: &NodeId, obj: R) -> Result<Released> {
    if !is_cascading(obj.metadata()) {
        return Ok(Released::NotNeeded);
    }
    finalizer(api, CASCADE_DELETION, Arc::new(obj), |event| async move {
        match event {
            krake_runtime::Event::Cleanup(_) => {
                tracing::debug!(object = %id, "no dependents left, releasing");
            }
            // Not deleted: nothing to collect (unreachable: checked above).
            krake_runtime::Event::Apply(_) => {}
        }
        Ok::<_, Error>(Action::await_change())
    })
    .await?;
    Ok(Released::Removed)
}

type Kinds = HashMap<(&'static str, &'static str), Arc<dyn KindHandle>>;

/// Registers a reflector for every kind with the graph and the readiness gate.
struct Register<'a> {
    kinds: Kinds,
    readiness: &'a Readiness,
    client: &'a Client,
    config: &'a ReflectorConfig,
    shared: &'a Arc<Shared>,
}

impl KindVisitor for Register<'_> {
    fn visit<R: Resource>(&mut self) {
        let typed = Typed::<R>::new(self.client, self.config, self.shared);
        self.readiness.add_store(&typed.reflector.store());
        self.kinds.insert((R::API, R::KIND), Arc::new(typed));
    }
}

struct Context {
    shared: Arc<Shared>,
    kinds: Arc<Kinds>,
    wait_requeue: Duration,
}

impl Context {
    fn kind(&self, id: &NodeId) -> Option<&Arc<dyn KindHandle>> {
        let info = KindInfo::find(&id.api, &id.kind)?;
        self.kinds.get(&(info.api, info.kind))
    }
}

async fn reconcile(ctx: Arc<Context>, id: NodeId) -> Result<Action> {
    let decision = ctx.shared.graph().decide(&id);
    match decision {
        Decision::Ignore => Ok(Action::await_change()),
        Decision::Wait(blocking) => {
            tracing::debug!(
                dependents = blocking.len(),
                first = %blocking[0],
                "waiting for dependents to be removed"
            );
            Ok(Action::requeue(ctx.wait_requeue))
        }
        Decision::Delete(targets) => {
            tracing::info!(
                dependents = targets.len(),
                first = %targets[0],
                "deleting dependents"
            );
            let results: Vec<Result<()>> = stream::iter(targets)
                .map(|target| match ctx.kind(&target) {
                    Some(kind) => kind.delete(target),
                    // Only watched objects are in the graph; unreachable in practice.
                    None => Box::pin(async { Ok(()) }),
                })
                .buffer_unordered(DELETE_CONCURRENCY)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>>>()?;
            Ok(Action::requeue(ctx.wait_requeue))
        }
        Decision::Release => {
            let Some(kind) = ctx.kind(&id) else {
                return Ok(Action::await_change());
            };
            match kind.release(id.clone()).await? {
                Released::Removed => {
                    tracing::info!("no dependents left, released the {CASCADE_DELETION} finalizer")
                }
                Released::Gone => tracing::debug!("object already gone"),
                Released::NotNeeded => tracing::debug!("object no longer in cascade deletion"),
            }
            Ok(Action::await_change())
        }
    }
}

/// The garbage collector (Krake's, with its bugs fixed): cascading deletion along
/// `metadata.owners` through the `cascade_deletion` finalizer.
///
/// It watches the fourteen kinds in all namespaces and keeps the ownership graph of
/// every existing object in memory, rebuilt from the first list of each kind (so a
/// restart converges on whatever happened meanwhile; nothing is acted on before every
/// kind was listed). An object whose last finalizer is `cascade_deletion` gets its
/// dependents deleted through the API (idempotent `DELETE`s), then, once no dependent
/// is left, its finalizer removed with a conditional `PUT`; the API then removes the
/// object, or the controller of the next finalizer takes over. Owners are examined
/// again whenever a dependent changes or disappears, at every resync, and after
/// `wait_requeue`; errors are retried with per-object exponential backoff.
pub struct GarbageCollector {
    config: Config,
    shared: Arc<Shared>,
    kinds: Arc<Kinds>,
    readiness: Readiness,
    metrics: ControllerMetrics,
}

impl fmt::Debug for GarbageCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GarbageCollector")
            .field("config", &self.config)
            .field("ready", &self.readiness.is_ready())
            .finish_non_exhaustive()
    }
}

impl GarbageCollector {
    /// A collector using `client`; nothing runs before [`GarbageCollector::run`].
    pub fn new(client: &Client, config: Config) -> Self {
        let queue = WorkQueue::new(config.controller.backoff);
        let shared = Arc::new(Shared {
            graph: Mutex::new(Graph::new()),
            queue,
        });
        let readiness = Readiness::new();
        let mut register = Register {
            kinds: Kinds::new(),
            readiness: &readiness,
            client,
            config: &config.reflector,
            shared: &shared,
        };
        visit_kinds(&mut register);
        let kinds = register.kinds;
        let metrics = Metrics::unregistered().controller(NAME);
        shared.queue.set_depth_gauge(metrics.queue_depth());
        GarbageCollector {
            config,
            shared,
            kinds: Arc::new(kinds),
            readiness,
            metrics,
        }
    }

    /// Record the collector's reconciles, queue depth and reflector failures in
    /// `metrics` (controller label `garbage-collector`).
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = metrics.controller(NAME);
        self.shared
            .queue
            .set_depth_gauge(self.metrics.queue_depth());
        for kind in self.kinds.values() {
            kind.set_metrics(metrics);
        }
        self
    }

    /// Ready once every kind was listed once.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// The collector's metrics handle.
    pub fn metrics(&self) -> &ControllerMetrics {
        &self.metrics
    }

    /// Run until `shutdown` is cancelled; returns once running reconciles finished (or
    /// the shutdown grace period expired). Fails only on an invalid configuration: API
    /// errors are retried.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        self.config.validate()?;
        let GarbageCollector {
            config,
            shared,
            kinds,
            readiness: _,
            metrics,
        } = self;
        // Reflectors stop with the workers, even if those stop for another reason.
        let background_token = shutdown.child_token();
        let mut background = JoinSet::new();
        let mut synced = Vec::new();
        for kind in kinds.values() {
            background.spawn(kind.run(background_token.clone()));
            synced.push(kind.wait_synced());
        }
        let started = Instant::now();
        tokio::select! {
            _ = shutdown.cancelled() => {
                background_token.cancel();
                while background.join_next().await.is_some() {}
                return Ok(());
            }
            _ = futures::future::join_all(synced) => {}
        }
        let objects = shared.graph().len();
        tracing::info!(
            controller = NAME,
            objects,
            seconds = started.elapsed().as_secs_f64(),
            concurrency = config.controller.concurrency,
            "every kind listed, ownership graph built; starting workers"
        );
        for id in shared.graph().cascading() {
            shared.queue.add(id);
        }

        if let Some(interval) = config.controller.resync_interval {
            let shared = shared.clone();
            let token = background_token.clone();
            background.spawn(async move {
                let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = ticks.tick() => {}
                    }
                    let cascading = shared.graph().cascading();
                    tracing::debug!(controller = NAME, objects = cascading.len(), "resync");
                    for id in cascading {
                        shared.queue.add(id);
                    }
                }
            });
        }

        let ctx = Arc::new(Context {
            shared: shared.clone(),
            kinds,
            wait_requeue: config.wait_requeue,
        });
        run_workers(
            shared.queue.clone(),
            config.controller.concurrency,
            metrics,
            shutdown.clone(),
            config.controller.shutdown_grace,
            move |id: NodeId| Some(reconcile(ctx.clone(), id)),
        )
        .await;
        background_token.cancel();
        while background.join_next().await.is_some() {}
        tracing::info!(controller = NAME, "stopped");
        Ok(())
    }
}

/// Run a garbage collector with `config` against the API of `client` until `shutdown`
/// is cancelled (see [`GarbageCollector`]).
pub async fn run(client: Client, config: Config, shutdown: CancellationToken) -> Result<()> {
    GarbageCollector::new(&client, config).run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use krake_client::ClientConfig;
    use krake_crds::Metadata;
    use krake_crds::core::Role;

    async fn server() -> (krake_api_server::RunningServer, Client, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let server = krake_api_server::start(krake_api_server::Config::for_embedded(dir.path()))
            .await
            .unwrap();
        let client = Client::new(ClientConfig::new(format!("http://{}", server.addr))).unwrap();
        (server, client, dir)
    }

    fn id(name: &str) -> NodeId {
        NodeId {
            api: "core".into(),
            kind: "Role".into(),
            namespace: None,
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn deleting_or_releasing_a_missing_object_is_no_error() {
        let (_server, client, _dir) = server().await;
        let shared = Arc::new(Shared {
            graph: Mutex::new(Graph::new()),
            queue: WorkQueue::new(krake_runtime::Backoff::default()),
        });
        let roles = Typed::<Role>::new(&client, &ReflectorConfig::default(), &shared);
        roles.delete(id("ghost")).await.unwrap();
        assert_eq!(roles.release(id("ghost")).await.unwrap(), Released::Gone);

        // A stale copy of an object removed meanwhile.
        let api = client.api::<Role>();
        api.create(&Role::new(Metadata::named("r"), vec![]))
            .await
            .unwrap();
        let stale = api.delete(None, "r", false).await.unwrap();
        let mut last = api.get(None, "r").await.unwrap();
        last.metadata.finalizers.clear();
        api.update(&last).await.unwrap();
        // The conditional update finds nothing: no error, nothing recreated.
        release_object(&api, &id("r"), stale).await.unwrap();
        assert!(api.get(None, "r").await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn finalizer_removal_is_conditional_and_retried_on_conflict() {
        let (_server, client, _dir) = server().await;
        let api = client.api::<Role>();
        let mut meta = Metadata::named("r");
        meta.finalizers = vec!["other".into()];
        api.create(&Role::new(meta, vec![])).await.unwrap();
        let stale = api.delete(None, "r", false).await.unwrap();
        assert!(is_cascading(&stale.metadata));
        // Someone changes the object after our read.
        let mut fresh = api.get(None, "r").await.unwrap();
        fresh.metadata.labels.insert("touched".into(), "yes".into());
        api.update(&fresh).await.unwrap();

        let mut blind = stale.clone();
        blind.metadata.finalizers.pop();
        assert!(api.update(&blind).await.unwrap_err().is_conflict());
        assert_eq!(
            release_object(&api, &id("r"), stale.clone()).await.unwrap(),
            Released::Removed
        );
        let now = api.get(None, "r").await.unwrap();
        assert_eq!(now.metadata.finalizers, ["other"]);
        assert_eq!(now.metadata.labels.get("touched"), Some(&"yes".into()));
        // Already released: nothing to do (the finalizer of the next owner stays).
        release_object(&api, &id("r"), stale).await.unwrap();
        let now = api.get(None, "r").await.unwrap();
        assert_eq!(now.metadata.finalizers, ["other"]);
    }
}
