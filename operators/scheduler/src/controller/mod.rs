//! The scheduler controller: three handlers over krake-runtime controllers, writing the
//! decisions of [`crate::application`], [`crate::cluster`] and [`crate::magnum`] through
//! the Krake API.
//!
//! Every object is read from reflector stores (no per-decision list calls); every
//! status write of a stored object is conditional on its `resource_version`, so a
//! decision taken on a stale snapshot fails with a conflict and is retried on fresh data
//! (per-key exponential backoff) instead of overwriting a newer status.

mod applications;
mod clusters;
mod magnum;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use krake_client::Client;
use krake_client::transport::{Transport, TransportConfig};
use krake_crds::Resource;
use krake_crds::core::{GlobalMetric, GlobalMetricsProvider, Metric, MetricRef, MetricsProvider};
use krake_crds::infrastructure::{Cloud, GlobalCloud};
use krake_crds::kubernetes::{Application, Cluster};
use krake_crds::openstack::{MagnumCluster, Project};
use krake_runtime::{
    CancellationToken, Change, Controller, ControllerConfig, Metrics, ObjectRef, Readiness,
    Reflector, Store, default_error_policy,
};

use crate::candidates::{CandidateStores, Candidates, StoreMetricsSource};
use crate::config::Config;
use crate::error::Result;
use crate::metrics::{MetricsOutcome, MetricsStatus, MetricsStatusUpdate, fetch_metrics};
use crate::model::AnyCloud;
use crate::providers::Providers;
use crate::scoring::{Chooser, RandomChooser};

/// Everything the handlers share.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) config: Config,
    pub(crate) providers: Providers,
    pub(crate) chooser: Arc<dyn Chooser>,
    pub(crate) apps: Store<Application>,
    pub(crate) clusters: Store<Cluster>,
    pub(crate) projects: Store<Project>,
    pub(crate) metrics: StoreMetricsSource,
    /// Cluster candidates per namespace, shared by the application handler's decisions.
    pub(crate) candidates: Candidates,
    /// When each placed application was last evaluated (periodic re-evaluation timer,
    /// independent of watch events).
    pub(crate) evaluated: Arc<Mutex<HashMap<ObjectRef<Application>, DateTime<Utc>>>>,
}

impl Context {
    /// The namespaced clouds of `namespace` and every global cloud.
    pub(crate) fn clouds_for(&self, namespace: Option<&str>) -> Vec<AnyCloud> {
        self.candidates.stores().clouds_for(namespace)
    }

    /// Fetch the metrics of a resource.
    pub(crate) async fn fetch(
        &self,
        namespace: Option<&str>,
        metrics: &[MetricRef],
    ) -> Result<MetricsOutcome> {
        if metrics.is_empty() {
            return Ok(MetricsOutcome::NoMetrics);
        }
        fetch_metrics(namespace, metrics, &self.metrics, &self.providers).await
    }

    /// Write the metric-driven status change of `resource`, if `outcome` calls for one.
    /// A failed write is logged, not fatal: the decision goes on, the next pass writes
    /// again.
    pub(crate) async fn write_metrics_status<R, S>(
        &self,
        resource: &R,
        outcome: &MetricsOutcome,
        status: impl Fn(&mut R) -> &mut S,
    ) where
        R: Resource,
        S: MetricsStatus,
    {
        let mut updated = resource.clone();
        let Some(update) = status(&mut updated).update_from(outcome) else {
            return;
        };
        self.write_status_change(&updated, &update).await;
    }

    /// Write `changed`, whose status `update` changed. A failed write is logged, not
    /// fatal.
    pub(crate) async fn write_status_change<R: Resource>(
        &self,
        changed: &R,
        update: &MetricsStatusUpdate,
    ) {
        let meta = changed.metadata();
        tracing::info!(
            kind = R::KIND,
            namespace = meta.namespace.as_deref().unwrap_or(""),
            name = %meta.name,
            ?update,
            "metrics status changed"
        );
        if let Err(e) = self.client.api::<R>().update_status(changed).await {
            tracing::warn!(kind = R::KIND, name = %meta.name, error = %e, "cannot write metrics status");
        }
    }

    /// Forget the re-evaluation timer of an application.
    pub(crate) fn forget(&self, key: &ObjectRef<Application>) {
        self.evaluated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Record that an application was evaluated at `now`.
    pub(crate) fn mark_evaluated(&self, key: ObjectRef<Application>, now: DateTime<Utc>) {
        self.evaluated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, now);
    }

    /// When the application was last evaluated, if this process did.
    pub(crate) fn last_evaluated(&self, key: &ObjectRef<Application>) -> Option<DateTime<Utc>> {
        self.evaluated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }
}

/// A non-negative `std` duration from `now` until `at` (zero if past).
pub(crate) fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// The reflectors of metric definitions, used by every handler (they must be listed
/// before metrics can be resolved; the handlers read them from their stores).
#[derive(Clone)]
struct MetricReflectors {
    metrics: Reflector<Metric>,
    global_metrics: Reflector<GlobalMetric>,
    providers: Reflector<MetricsProvider>,
    global_providers: Reflector<GlobalMetricsProvider>,
}

impl MetricReflectors {
    fn used_by<R: Resource>(&self, controller: Controller<R>) -> Controller<R> {
        controller
            .uses(self.metrics.clone())
            .uses(self.global_metrics.clone())
            .uses(self.providers.clone())
            .uses(self.global_providers.clone())
    }
}

/// The scheduler: the application handler (Applications → Clusters), the cluster
/// handler (Clusters → Clouds) and the Magnum handler (MagnumClusters → Projects), each
/// a krake-runtime controller with `config.worker_count` workers.
///
/// Applications are re-evaluated every `config.reschedule_after` by their own timer,
/// which watch events never postpone; an application whose cluster stops matching is
/// re-evaluated at once.
pub struct Scheduler {
    ctx: Context,
    applications: Controller<Application>,
    clusters: Controller<Cluster>,
    magnum_clusters: Controller<MagnumCluster>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("config", &self.ctx.config)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler using the API of `client`. Fails only if the HTTP client of the
    /// metrics providers cannot be built.
    pub fn new(client: Client, config: Config) -> Result<Self> {
        let http = Transport::new(&TransportConfig::default())?;
        let providers = Providers::new(http, config.metrics_timeout);

        let apps = Reflector::<Application>::all(&client);
        let clusters = Reflector::<Cluster>::all(&client);
        let clouds = Reflector::<Cloud>::all(&client);
        let global_clouds = Reflector::<GlobalCloud>::all(&client);
        let magnums = Reflector::<MagnumCluster>::all(&client);
        let projects = Reflector::<Project>::all(&client);
        let definitions = MetricReflectors {
            metrics: Reflector::<Metric>::all(&client),
            global_metrics: Reflector::<GlobalMetric>::all(&client),
            providers: Reflector::<MetricsProvider>::all(&client),
            global_providers: Reflector::<GlobalMetricsProvider>::all(&client),
        };

        let evaluated = Arc::new(Mutex::new(HashMap::new()));
        // Timers of applications removed from storage are dropped.
        {
            let evaluated: Arc<Mutex<HashMap<ObjectRef<Application>, DateTime<Utc>>>> =
                evaluated.clone();
            apps.on_change(move |change| {
                if let Change::Deleted(app) = change {
                    evaluated
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&ObjectRef::from_obj(app.as_ref()));
                }
            });
        }
        let metrics = StoreMetricsSource::new(
            definitions.metrics.store(),
            definitions.global_metrics.store(),
            definitions.providers.store(),
            definitions.global_providers.store(),
        );
        let candidates = Candidates::new(
            CandidateStores {
                clusters: clusters.store(),
                clouds: clouds.store(),
                global_clouds: global_clouds.store(),
                metrics: metrics.clone(),
            },
            Arc::new(providers.clone()),
            config.metrics_max_age,
        );
        let ctx = Context {
            client: client.clone(),
            config: config.clone(),
            providers,
            chooser: Arc::new(RandomChooser),
            apps: apps.store(),
            clusters: clusters.store(),
            projects: projects.store(),
            metrics,
            candidates,
            evaluated,
        };

        let controller_config = ControllerConfig {
            concurrency: config.worker_count.max(1),
            ..ControllerConfig::default()
        };
        let app_store = apps.store();
        let applications = Controller::new(
            "scheduler-applications",
            apps.clone(),
            controller_config.clone(),
        )
        .watches(clusters.clone(), move |change| {
            applications::affected_by_cluster_change(&app_store, change)
        })
        .uses(clouds.clone())
        .uses(global_clouds.clone());
        let applications = definitions.used_by(applications);

        let cluster_controller =
            Controller::new("scheduler-clusters", clusters, controller_config.clone())
                .uses(clouds)
                .uses(global_clouds)
                .uses(apps);
        let cluster_controller = definitions.used_by(cluster_controller);

        let magnum_clusters =
            Controller::new("scheduler-magnumclusters", magnums, controller_config).uses(projects);
        let magnum_clusters = definitions.used_by(magnum_clusters);

        Ok(Scheduler {
            ctx,
            applications,
            clusters: cluster_controller,
            magnum_clusters,
        })
    }

    /// Break ties between equally good candidates with `chooser` (uniformly at random by
    /// default).
    pub fn with_chooser(mut self, chooser: Arc<dyn Chooser>) -> Self {
        self.ctx.chooser = chooser;
        self
    }

    /// Record the handlers' reconciles, queue depths and reflector failures in
    /// `metrics` (controller labels `scheduler-applications`, `scheduler-clusters`,
    /// `scheduler-magnumclusters`).
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.applications = self.applications.with_metrics(metrics);
        self.clusters = self.clusters.with_metrics(metrics);
        self.magnum_clusters = self.magnum_clusters.with_metrics(metrics);
        self
    }

    /// Ready once every watched kind was listed once.
    pub fn readiness(&self) -> Readiness {
        let readiness = Readiness::new();
        readiness.add(&self.applications.readiness());
        readiness.add(&self.clusters.readiness());
        readiness.add(&self.magnum_clusters.readiness());
        readiness
    }

    /// Run until `shutdown` is cancelled; returns once running reconciles finished (or
    /// the shutdown grace period expired).
    pub async fn run(self, shutdown: CancellationToken) {
        let Scheduler {
            ctx,
            applications,
            clusters,
            magnum_clusters,
        } = self;
        tracing::info!(
            reschedule_after = ?ctx.config.reschedule_after,
            stickiness = ctx.config.stickiness,
            workers = ctx.config.worker_count,
            "scheduler starting"
        );
        let ctx = Arc::new(ctx);
        let stop = || shutdown.clone().cancelled_owned();
        tokio::join!(
            applications.graceful_shutdown_on(stop()).run(
                applications::reconcile,
                default_error_policy,
                ctx.clone()
            ),
            clusters.graceful_shutdown_on(stop()).run(
                clusters::reconcile,
                default_error_policy,
                ctx.clone()
            ),
            magnum_clusters.graceful_shutdown_on(stop()).run(
                magnum::reconcile,
                default_error_policy,
                ctx
            ),
        );
    }
}

/// Run a [`Scheduler`] with `config` against the API of `client` until `shutdown` is
/// cancelled. Fails only if the scheduler cannot be built; API errors are retried.
pub async fn run(client: Client, config: Config, shutdown: CancellationToken) -> Result<()> {
    Scheduler::new(client, config)?.run(shutdown).await;
    Ok(())
}
