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

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use krake_client::Client;
use krake_client::transport::{Transport, TransportConfig};
use krake_crds::Resource;
use krake_crds::core::{
    GlobalMetric, GlobalMetricsProvider, Metric, MetricRef, MetricSpec, MetricsProvider,
    MetricsProviderSpec,
};
use krake_crds::infrastructure::{Cloud, GlobalCloud};
use krake_crds::kubernetes::{Application, Cluster};
use krake_crds::openstack::{MagnumCluster, Project};
use krake_runtime::{
    CancellationToken, Change, Controller, ControllerConfig, ObjectKey, Reflector, Store,
};

use crate::config::Config;
use crate::error::Result;
use crate::metrics::{Location, MetricsOutcome, MetricsSource, MetricsStatus, fetch_metrics};
use crate::model::AnyCloud;
use crate::providers::Providers;
use crate::scoring::{Chooser, RandomChooser};

/// Metric definitions read from reflector stores.
#[derive(Debug, Clone)]
pub(crate) struct StoreMetricsSource {
    metrics: Store<Metric>,
    global_metrics: Store<GlobalMetric>,
    providers: Store<MetricsProvider>,
    global_providers: Store<GlobalMetricsProvider>,
}

#[async_trait]
impl MetricsSource for StoreMetricsSource {
    async fn metric(&self, location: &Location) -> Result<Option<MetricSpec>> {
        Ok(match location {
            Location::Namespaced { namespace, name } => self
                .metrics
                .get_named(Some(namespace), name)
                .map(|m| m.spec.clone()),
            Location::Global { name } => self
                .global_metrics
                .get_named(None, name)
                .map(|m| m.spec.clone()),
        })
    }

    async fn provider(&self, location: &Location) -> Result<Option<MetricsProviderSpec>> {
        Ok(match location {
            Location::Namespaced { namespace, name } => self
                .providers
                .get_named(Some(namespace), name)
                .map(|p| p.spec.clone()),
            Location::Global { name } => self
                .global_providers
                .get_named(None, name)
                .map(|p| p.spec.clone()),
        })
    }
}

/// Everything the handlers share.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) config: Config,
    pub(crate) providers: Providers,
    pub(crate) chooser: Arc<dyn Chooser>,
    pub(crate) apps: Store<Application>,
    pub(crate) clusters: Store<Cluster>,
    pub(crate) clouds: Store<Cloud>,
    pub(crate) global_clouds: Store<GlobalCloud>,
    pub(crate) projects: Store<Project>,
    pub(crate) metrics: StoreMetricsSource,
    /// When each placed application was last evaluated (periodic re-evaluation timer,
    /// independent of watch events).
    pub(crate) evaluated: Mutex<HashMap<ObjectKey, DateTime<Utc>>>,
}

impl Context {
    /// The namespaced clouds of `namespace` and every global cloud.
    pub(crate) fn clouds_for(&self, namespace: Option<&str>) -> Vec<AnyCloud> {
        let mut clouds: Vec<AnyCloud> = self
            .clouds
            .filter(|c| c.metadata.namespace.as_deref() == namespace)
            .into_iter()
            .map(|c| AnyCloud::Namespaced(c.as_ref().clone()))
            .collect();
        clouds.extend(
            self.global_clouds
                .list()
                .into_iter()
                .map(|c| AnyCloud::Global(c.as_ref().clone())),
        );
        clouds
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
        let meta = resource.metadata();
        tracing::info!(
            kind = R::KIND,
            namespace = meta.namespace.as_deref().unwrap_or(""),
            name = %meta.name,
            ?update,
            "metrics status changed"
        );
        if let Err(e) = self.client.api::<R>().update_status(&updated).await {
            tracing::warn!(kind = R::KIND, name = %meta.name, error = %e, "cannot write metrics status");
        }
    }

    /// Forget the re-evaluation timer of an application.
    pub(crate) fn forget(&self, key: &ObjectKey) {
        self.evaluated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Record that an application was evaluated at `now`.
    pub(crate) fn mark_evaluated(&self, key: ObjectKey, now: DateTime<Utc>) {
        self.evaluated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, now);
    }

    /// When the application was last evaluated, if this process did.
    pub(crate) fn last_evaluated(&self, key: &ObjectKey) -> Option<DateTime<Utc>> {
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

fn no_keys<R>(_: &Change<R>) -> Vec<ObjectKey> {
    Vec::new()
}

/// The reflectors of metric definitions, watched by every handler (they must be
/// listed before metrics can be resolved).
#[derive(Clone)]
struct MetricReflectors {
    metrics: Reflector<Metric>,
    global_metrics: Reflector<GlobalMetric>,
    providers: Reflector<MetricsProvider>,
    global_providers: Reflector<GlobalMetricsProvider>,
}

impl MetricReflectors {
    fn watched_by<R: Resource>(&self, controller: Controller<R>) -> Controller<R> {
        controller
            .watches(self.metrics.clone(), no_keys)
            .watches(self.global_metrics.clone(), no_keys)
            .watches(self.providers.clone(), no_keys)
            .watches(self.global_providers.clone(), no_keys)
    }
}

/// Run the scheduler until `shutdown` is cancelled: the application handler
/// (Applications → Clusters), the cluster handler (Clusters → Clouds) and the Magnum
/// handler (MagnumClusters → Projects), each with `config.worker_count` workers.
///
/// Applications are re-evaluated every `config.reschedule_after` by their own timer,
/// which watch events never postpone; an application whose cluster stops matching is
/// re-evaluated at once.
pub async fn run(client: Client, config: Config, shutdown: CancellationToken) -> Result<()> {
    run_with_chooser(client, config, Arc::new(RandomChooser), shutdown).await
}

/// [`run`] with an explicit tie-breaking [`Chooser`].
pub async fn run_with_chooser(
    client: Client,
    config: Config,
    chooser: Arc<dyn Chooser>,
    shutdown: CancellationToken,
) -> Result<()> {
    let http = Transport::new(&TransportConfig::default())?;
    let providers = Providers::new(http, config.metrics_timeout);

    let apps = Reflector::<Application>::all(&client);
    let clusters = Reflector::<Cluster>::all(&client);
    let clouds = Reflector::<Cloud>::all(&client);
    let global_clouds = Reflector::<GlobalCloud>::all(&client);
    let magnums = Reflector::<MagnumCluster>::all(&client);
    let projects = Reflector::<Project>::all(&client);
    let metrics = Reflector::<Metric>::all(&client);
    let global_metrics = Reflector::<GlobalMetric>::all(&client);
    let metrics_providers = Reflector::<MetricsProvider>::all(&client);
    let global_metrics_providers = Reflector::<GlobalMetricsProvider>::all(&client);

    let ctx = Arc::new(Context {
        client: client.clone(),
        config: config.clone(),
        providers,
        chooser,
        apps: apps.store(),
        clusters: clusters.store(),
        clouds: clouds.store(),
        global_clouds: global_clouds.store(),
        projects: projects.store(),
        metrics: StoreMetricsSource {
            metrics: metrics.store(),
            global_metrics: global_metrics.store(),
            providers: metrics_providers.store(),
            global_providers: global_metrics_providers.store(),
        },
        evaluated: Mutex::new(HashMap::new()),
    });

    // Timers of applications removed from storage are dropped.
    {
        let ctx = ctx.clone();
        apps.on_change(move |change| {
            if let Change::Deleted(app) = change {
                ctx.forget(&ObjectKey::of(app.as_ref()));
            }
        });
    }

    let controller_config = ControllerConfig {
        workers: config.worker_count.max(1),
        ..ControllerConfig::default()
    };
    let definitions = MetricReflectors {
        metrics,
        global_metrics,
        providers: metrics_providers,
        global_providers: global_metrics_providers,
    };

    let app_store = apps.store();
    let app_controller = Controller::new(
        "scheduler-applications",
        apps.clone(),
        controller_config.clone(),
    )
    .watches(clusters.clone(), move |change| {
        applications::affected_by_cluster_change(&app_store, change)
    })
    .watches(clouds.clone(), no_keys)
    .watches(global_clouds.clone(), no_keys);
    let app_controller = definitions.watched_by(app_controller);

    let cluster_controller = Controller::new(
        "scheduler-clusters",
        clusters.clone(),
        controller_config.clone(),
    )
    .watches(clouds.clone(), no_keys)
    .watches(global_clouds.clone(), no_keys)
    .watches(apps.clone(), no_keys);
    let cluster_controller = definitions.watched_by(cluster_controller);

    let magnum_controller = Controller::new("scheduler-magnumclusters", magnums, controller_config)
        .watches(projects, no_keys);
    let magnum_controller = definitions.watched_by(magnum_controller);

    tracing::info!(
        reschedule_after = ?config.reschedule_after,
        stickiness = config.stickiness,
        workers = config.worker_count,
        "scheduler starting"
    );
    tokio::join!(
        app_controller.run(applications::reconcile, ctx.clone(), shutdown.clone()),
        cluster_controller.run(clusters::reconcile, ctx.clone(), shutdown.clone()),
        magnum_controller.run(magnum::reconcile, ctx, shutdown),
    );
    Ok(())
}
