//! The observation of one member cluster: a kube-runtime watcher on its Nodes and a
//! periodic reachability probe, both in one task, writing the Cluster's status through
//! the Krake API when the state or the nodes change.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use krake_client::Client;
use krake_crds::Timestamp;
use krake_crds::kubernetes::{Cluster, ClusterNode, ClusterState};
use krake_member::MemberCluster;
use krake_runtime::{CancellationToken, ObjectRef, Store};
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde_json::{Map, Value};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::metrics::ClusterMetrics;
use crate::state::{Observation, cluster_node, next_status};

/// Status writes attempted after conflicts before waiting for the next observation.
const WRITE_ATTEMPTS: usize = 3;

/// What the observation of one cluster needs.
pub(crate) struct Target {
    pub(crate) key: ObjectRef<Cluster>,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) kubeconfig: Map<String, Value>,
    pub(crate) member: Arc<MemberCluster>,
}

/// Shared by every observation.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) store: Store<Cluster>,
    pub(crate) metrics: ClusterMetrics,
    pub(crate) probe_interval: Duration,
    pub(crate) probe_timeout: Duration,
}

/// The state the metric of one cluster shows, and whether its observation stopped
/// (then the task must not set it again).
#[derive(Default)]
struct MetricState {
    state: Option<ClusterState>,
    stopped: bool,
}

/// A running observation. Dropping it stops the task (cancelled, then aborted) and
/// removes the cluster's metric series: there is no way to leave a task behind.
pub(crate) struct Observer {
    kubeconfig: Map<String, Value>,
    token: CancellationToken,
    task: JoinHandle<()>,
    metric: Arc<Mutex<MetricState>>,
    metrics: ClusterMetrics,
    namespace: String,
    name: String,
}

impl Observer {
    /// Start observing `target`.
    pub(crate) fn start(shared: Shared, target: Target) -> Observer {
        let token = CancellationToken::new();
        let metric = Arc::new(Mutex::new(MetricState::default()));
        let span = tracing::info_span!(
            "cluster_observer",
            namespace = %target.namespace,
            name = %target.name,
            server = %target.member.server(),
        );
        Observer {
            kubeconfig: target.kubeconfig.clone(),
            token: token.clone(),
            metric: metric.clone(),
            metrics: shared.metrics.clone(),
            namespace: target.namespace.clone(),
            name: target.name.clone(),
            task: tokio::spawn(
                Task {
                    shared: shared.clone(),
                    target,
                    metric,
                    nodes: BTreeMap::new(),
                    buffer: None,
                    synced: false,
                    degraded: false,
                    reachable: None,
                    last_written: None,
                }
                .run(token)
                .instrument(span),
            ),
        }
    }

    /// Whether this observation uses `kubeconfig`.
    pub(crate) fn uses(&self, kubeconfig: &Map<String, Value>) -> bool {
        &self.kubeconfig == kubeconfig
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.token.cancel();
        self.task.abort();
        let mut metric = self.metric.lock().unwrap_or_else(|e| e.into_inner());
        metric.stopped = true;
        self.metrics.forget(
            &self.namespace,
            &self.name,
            metric.state.map(|s| s.as_str()),
        );
    }
}

type NodeEvents = Pin<Box<dyn Stream<Item = Result<watcher::Event<Node>, watcher::Error>> + Send>>;

/// The task's state.
struct Task {
    shared: Shared,
    target: Target,
    metric: Arc<Mutex<MetricState>>,
    /// The nodes, by name (the order Kubernetes lists them in).
    nodes: BTreeMap<String, ClusterNode>,
    /// Nodes of a watcher re-list in progress (`Init` .. `InitDone`).
    buffer: Option<BTreeMap<String, ClusterNode>>,
    /// Whether the watcher listed once since it was (re)started.
    synced: bool,
    /// Whether the watcher failed since its last event: `nodes` may be stale.
    degraded: bool,
    /// The last probe's outcome.
    reachable: Option<bool>,
    /// The Cluster as returned by our last write (the store may not have it yet).
    last_written: Option<Cluster>,
}

impl Task {
    fn watch(&self) -> NodeEvents {
        let api: Api<Node> = Api::all(self.target.member.watch_client());
        Box::pin(watcher(api, watcher::Config::default()).default_backoff())
    }

    async fn run(mut self, token: CancellationToken) {
        // Counts this task until its future is dropped (also when aborted).
        struct Running(ClusterMetrics);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.observers().dec();
            }
        }
        self.shared.metrics.observers().inc();
        let _running = Running(self.shared.metrics.clone());
        tracing::info!("observing member cluster");
        let mut events = self.watch();
        let mut ticks = tokio::time::interval(self.shared.probe_interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = token.cancelled() => break,
                _ = ticks.tick() => {
                    let came_back = self.probe().await;
                    if came_back || (self.reachable == Some(true) && self.degraded) {
                        // The watcher may be far into its backoff: start it afresh so that
                        // node changes show at once again.
                        tracing::debug!("restarting the node watch");
                        self.shared.metrics.watch_restart();
                        events = self.watch();
                        self.synced = false;
                        self.degraded = false;
                        self.buffer = None;
                    }
                    self.evaluate().await;
                }
                event = events.next() => match event {
                    Some(Ok(event)) => {
                        self.degraded = false;
                        if self.apply(event) && self.reachable == Some(true) {
                            self.evaluate().await;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "node watch failed");
                        self.shared.metrics.watch_restart();
                        self.degraded = true;
                        // Check reachability now rather than at the next period.
                        if self.reachable == Some(true) {
                            ticks.reset_immediately();
                        }
                    }
                    None => {
                        self.shared.metrics.watch_restart();
                        events = self.watch();
                        self.synced = false;
                    }
                },
            }
        }
        tracing::info!("stopped observing member cluster");
    }

    /// Apply one watcher event; whether the nodes changed (once listed).
    fn apply(&mut self, event: watcher::Event<Node>) -> bool {
        match event {
            watcher::Event::Init => {
                self.buffer = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(node) => {
                let node = cluster_node(&node);
                self.buffer
                    .get_or_insert_default()
                    .insert(node.metadata.name.clone(), node);
                false
            }
            watcher::Event::InitDone => {
                let listed = self.buffer.take().unwrap_or_default();
                self.synced = true;
                let changed = listed != self.nodes;
                self.nodes = listed;
                changed
            }
            watcher::Event::Apply(node) => {
                let node = cluster_node(&node);
                let name = node.metadata.name.clone();
                self.nodes.insert(name, node.clone()) != Some(node)
            }
            watcher::Event::Delete(node) => {
                let name = node.metadata.name.unwrap_or_default();
                self.nodes.remove(&name).is_some()
            }
        }
    }

    /// Probe the API server: list nodes, bounded by the probe timeout. A cheap list
    /// (one item) while the watcher keeps the nodes; the full list otherwise. Returns
    /// whether the cluster came back after a failed probe.
    async fn probe(&mut self) -> bool {
        let api: Api<Node> = Api::all(self.target.member.client());
        let full = !self.synced || self.degraded;
        let params = if full {
            ListParams::default()
        } else {
            ListParams::default().limit(1)
        };
        let start = Instant::now();
        let outcome = tokio::time::timeout(self.shared.probe_timeout, api.list(&params)).await;
        let seconds = start.elapsed().as_secs_f64();
        let ok = match outcome {
            Ok(Ok(list)) => {
                if full {
                    self.nodes = list
                        .items
                        .iter()
                        .map(|n| {
                            let node = cluster_node(n);
                            (node.metadata.name.clone(), node)
                        })
                        .collect();
                }
                true
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "probe failed");
                false
            }
            Err(_) => {
                tracing::debug!(timeout = ?self.shared.probe_timeout, "probe timed out");
                false
            }
        };
        self.shared.metrics.probe(ok, seconds);
        let came_back = ok && self.reachable == Some(false);
        if self.reachable != Some(ok) {
            tracing::info!(reachable = ok, "member cluster reachability changed");
        }
        self.reachable = Some(ok);
        came_back
    }

    /// The Cluster as last known: the newer of the store's and our last write's.
    fn current(&self) -> Option<Cluster> {
        let stored = self
            .shared
            .store
            .get(&self.target.key)
            .filter(|c| c.metadata.uid == self.target.uid);
        let Some(stored) = stored else {
            // Gone from the store: deleted (the controller stops us), unless the store
            // has not seen it yet.
            return self.last_written.clone();
        };
        match &self.last_written {
            Some(written) if revision(written) > revision(&stored) => Some(written.clone()),
            _ => Some(stored.as_ref().clone()),
        }
    }

    /// Write the status the current observation calls for, if it differs.
    async fn evaluate(&mut self) {
        let nodes: Vec<ClusterNode> = self.nodes.values().cloned().collect();
        let observation = match self.reachable {
            Some(true) => Observation::Nodes(&nodes),
            Some(false) => Observation::Unreachable,
            None => return,
        };
        let mut current = self.current();
        for _ in 0..WRITE_ATTEMPTS {
            let Some(cluster) = current.take() else {
                return;
            };
            // An observation of an outdated kubeconfig, or of a cluster the controller no
            // longer observes, must not be written: the controller stops or restarts us.
            if cluster.metadata.deleted.is_some()
                || cluster.spec.kubeconfig != self.target.kubeconfig
                || matches!(
                    cluster.status.state,
                    ClusterState::Creating | ClusterState::Reconciling | ClusterState::Failed
                )
            {
                return;
            }
            self.record_state(cluster.status.state);
            let Some(status) = next_status(&cluster.status, observation, Timestamp::now) else {
                return;
            };
            let mut updated = cluster.clone();
            let (from, to) = (cluster.status.state, status.state);
            updated.status = status;
            match self
                .shared
                .client
                .api::<Cluster>()
                .update_status(&updated)
                .await
            {
                Ok(written) => {
                    if from != to {
                        tracing::info!(
                            from = from.as_str(),
                            to = to.as_str(),
                            "cluster state changed"
                        );
                    } else {
                        tracing::debug!("cluster nodes changed");
                    }
                    self.record_state(written.status.state);
                    self.last_written = Some(written);
                    return;
                }
                Err(e) if e.is_conflict() => {
                    tracing::debug!("status write conflict; reading the cluster again");
                    match self
                        .shared
                        .client
                        .api::<Cluster>()
                        .get(Some(&self.target.namespace), &self.target.name)
                        .await
                    {
                        Ok(fresh) if fresh.metadata.uid == self.target.uid => {
                            self.last_written = Some(fresh.clone());
                            current = Some(fresh);
                        }
                        Ok(_) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the cluster again");
                            return;
                        }
                    }
                }
                Err(e) if e.is_not_found() => return,
                Err(e) => {
                    // The next probe or node change writes again.
                    tracing::warn!(error = %e, "cannot write the cluster status");
                    return;
                }
            }
        }
    }

    fn record_state(&self, state: ClusterState) {
        let mut metric = self.metric.lock().unwrap_or_else(|e| e.into_inner());
        if metric.stopped {
            return;
        }
        // Set even when unchanged: the series heals if an observation of the same
        // Cluster name that stopped meanwhile (restart, re-creation) removed it.
        self.shared.metrics.state(
            &self.target.namespace,
            &self.target.name,
            metric.state.map(|s| s.as_str()),
            state.as_str(),
        );
        metric.state = Some(state);
    }
}

/// The storage revision of an object (0 when unknown), to tell the newer of two copies.
fn revision(cluster: &Cluster) -> u64 {
    cluster
        .metadata
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}
