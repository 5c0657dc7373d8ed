//! The controller: admits Clusters, and starts, restarts and stops their observations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use krake_client::Client;
use krake_crds::kubernetes::{Cluster, ClusterState};
use krake_member::{MemberClients, MemberConfig};
use krake_runtime::prometheus_client::registry::Registry;
use krake_runtime::{
    Action, CancellationToken, Change, Controller, ControllerConfig, Metrics, ObjectRef, Readiness,
    Reflector, default_error_policy,
};

use crate::error::{Error, Result};
use crate::metrics::ClusterMetrics;
use crate::observer::{Observer, Shared, Target};

/// The controller name in logs and metrics.
pub const NAME: &str = "kubernetes-cluster";

/// How the cluster controller runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Workers, resync, backoff and shutdown grace of the controller (the workers only
    /// start and stop observations; the observations run in tasks of their own).
    pub controller: ControllerConfig,
    /// Time between two reachability probes of a member cluster (default 10 s): an
    /// unreachable cluster becomes OFFLINE within two probe intervals.
    pub probe_interval: Duration,
    /// How long a probe may take (default: half the interval, at most 5 s). Must be
    /// shorter than the interval.
    pub probe_timeout: Option<Duration>,
    /// Member client configuration (timeouts, insecure kubeconfigs).
    pub member: MemberConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            controller: ControllerConfig::default(),
            probe_interval: Duration::from_secs(10),
            probe_timeout: None,
            member: MemberConfig::default(),
        }
    }
}

impl Config {
    /// The probe timeout in force.
    pub fn probe_timeout(&self) -> Duration {
        self.probe_timeout
            .unwrap_or_else(|| (self.probe_interval / 2).min(Duration::from_secs(5)))
    }

    /// Check that the configuration can be used.
    pub fn validate(&self) -> Result<()> {
        if self.controller.concurrency == 0 {
            return Err(Error::Config("concurrency must be at least 1".into()));
        }
        if self.probe_interval.is_zero() {
            return Err(Error::Config("the probe interval must be positive".into()));
        }
        let timeout = self.probe_timeout();
        if timeout.is_zero() || timeout >= self.probe_interval {
            return Err(Error::Config(format!(
                "the probe timeout ({timeout:?}) must be positive and shorter than the probe interval ({:?})",
                self.probe_interval
            )));
        }
        Ok(())
    }
}

/// Whether the controller looks at a Cluster at all: not FAILED, with a kubeconfig.
pub fn accepted(cluster: &Cluster) -> bool {
    cluster.status.state != ClusterState::Failed && !cluster.spec.kubeconfig.is_empty()
}

/// The running observations, by Cluster uid.
#[derive(Default)]
struct Observers {
    running: Mutex<HashMap<String, Observer>>,
}

impl Observers {
    fn running(&self) -> MutexGuard<'_, HashMap<String, Observer>> {
        // Entries are inserted and removed whole: a poisoned map is still consistent.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What reconciles share.
struct Context {
    shared: Shared,
    members: Arc<MemberClients>,
    observers: Arc<Observers>,
}

impl Context {
    /// Stop observing cluster `uid`; with `evict`, also forget its client.
    fn stop(&self, uid: &str, evict: bool, why: &str) {
        let stopped = self.observers.running().remove(uid);
        if stopped.is_some() {
            tracing::info!(cluster_uid = %uid, why, "stopping the observation");
        }
        // The observer is dropped (its task stopped) outside the lock.
        drop(stopped);
        if evict {
            self.members.evict(uid);
        }
    }
}

async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action> {
    let uid = cluster.metadata.uid.as_str();
    if cluster.metadata.deleted.is_some() {
        ctx.stop(uid, true, "deleted");
        return Ok(Action::await_change());
    }
    if !accepted(&cluster) {
        // Upstream leaves a running observer alone here; a FAILED cluster or one whose
        // kubeconfig was removed has nothing left to observe.
        ctx.stop(uid, true, "failed or without kubeconfig");
        return Ok(Action::await_change());
    }
    if matches!(
        cluster.status.state,
        ClusterState::Creating | ClusterState::Reconciling
    ) {
        // The infrastructure controller is changing the cluster: early healthy reports
        // must not flip it to ONLINE.
        ctx.stop(uid, false, "being created or reconciled");
        return Ok(Action::await_change());
    }
    if ctx
        .observers
        .running()
        .get(uid)
        .is_some_and(|o| o.uses(&cluster.spec.kubeconfig))
    {
        return Ok(Action::await_change());
    }
    let member = match ctx.members.for_cluster(&cluster).await {
        Ok(member) => member,
        Err(e) if e.is_kubeconfig_error() => {
            // Retrying cannot help: the next change of the Cluster is reconciled again.
            ctx.stop(uid, true, "unusable kubeconfig");
            tracing::warn!(error = %e, "cannot use the cluster's kubeconfig");
            return Ok(Action::await_change());
        }
        Err(e) => return Err(Error::Member(e)),
    };
    let namespace = cluster.metadata.namespace.clone().unwrap_or_default();
    let target = Target {
        key: ObjectRef::from_obj(cluster.as_ref()),
        namespace,
        name: cluster.metadata.name.clone(),
        uid: uid.to_string(),
        kubeconfig: cluster.spec.kubeconfig.clone(),
        member,
    };
    // The previous observation (of the old kubeconfig) ends before the new one starts.
    let previous = ctx.observers.running().remove(uid);
    if previous.is_some() {
        tracing::info!("kubeconfig changed: restarting the observation");
    }
    drop(previous);
    let observer = Observer::start(ctx.shared.clone(), target);
    ctx.observers.running().insert(uid.to_string(), observer);
    // The Cluster may have been removed while the client was built: the removal handler
    // ran before the observer was registered, so stop it here.
    let key = ObjectRef::from_obj(cluster.as_ref());
    let still_there = ctx
        .shared
        .store
        .get(&key)
        .is_some_and(|c| c.metadata.uid == uid);
    if !still_there {
        ctx.stop(uid, true, "removed while starting");
    }
    Ok(Action::await_change())
}

/// The Kubernetes cluster controller: one observation per admitted Cluster (a node
/// watcher and a reachability probe of its member cluster), started, restarted when the
/// kubeconfig changes, and stopped when the Cluster is deleted, becomes FAILED, loses
/// its kubeconfig or is being created or reconciled by the infrastructure controller.
pub struct ClusterController {
    controller: Controller<Cluster>,
    ctx: Arc<Context>,
}

impl std::fmt::Debug for ClusterController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterController").finish_non_exhaustive()
    }
}

impl ClusterController {
    /// A controller of every Cluster of the Krake API behind `client`.
    pub fn new(client: &Client, config: Config) -> Result<Self> {
        config.validate()?;
        let reflector = Reflector::<Cluster>::all(client);
        let members = Arc::new(MemberClients::new(config.member.clone()));
        let observers = Arc::new(Observers::default());
        {
            // A Cluster removed from the API stops being observed at once (the queue
            // only sees objects that still exist).
            let observers = observers.clone();
            let members = members.clone();
            reflector.on_change(move |change| {
                if let Change::Deleted(cluster) = change {
                    let uid = &cluster.metadata.uid;
                    let stopped = observers.running().remove(uid);
                    if stopped.is_some() {
                        tracing::info!(cluster_uid = %uid, "cluster removed: stopping the observation");
                    }
                    drop(stopped);
                    members.evict(uid);
                }
            });
        }
        let store = reflector.store();
        let ctx = Arc::new(Context {
            shared: Shared {
                client: client.clone(),
                store,
                metrics: ClusterMetrics::default(),
                probe_interval: config.probe_interval,
                probe_timeout: config.probe_timeout(),
            },
            members,
            observers,
        });
        let controller = Controller::new(NAME, reflector, config.controller);
        Ok(ClusterController { controller, ctx })
    }

    /// Record the controller's metrics in `metrics`, and the cluster metrics
    /// ([`ClusterMetrics`]) in `registry`.
    pub fn with_metrics(mut self, metrics: &Metrics, registry: &mut Registry) -> Self {
        self.controller = self.controller.with_metrics(metrics);
        self.ctx.shared.metrics.register(registry);
        self
    }

    /// Ready once the Clusters were listed.
    pub fn readiness(&self) -> Readiness {
        self.controller.readiness()
    }

    /// The cluster metrics.
    pub fn cluster_metrics(&self) -> ClusterMetrics {
        self.ctx.shared.metrics.clone()
    }

    /// The member client cache (shared with the observations).
    pub fn member_clients(&self) -> Arc<MemberClients> {
        self.ctx.members.clone()
    }

    /// Number of clusters observed now.
    pub fn observed(&self) -> usize {
        self.ctx.observers.running().len()
    }

    /// Run until `shutdown` is cancelled; every observation stops with it.
    pub async fn run(self, shutdown: CancellationToken) {
        let ClusterController { controller, ctx } = self;
        let observers = ctx.observers.clone();
        controller
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(reconcile, default_error_policy, ctx)
            .await;
        let stopped: Vec<Observer> = observers.running().drain().map(|(_, o)| o).collect();
        drop(stopped);
    }
}

/// Run the cluster controller against the API of `client` until `shutdown` is
/// cancelled.
pub async fn run(client: Client, config: Config, shutdown: CancellationToken) -> Result<()> {
    ClusterController::new(&client, config)?.run(shutdown).await;
    Ok(())
}
