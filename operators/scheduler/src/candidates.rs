//! The cluster candidates of a namespace: every cluster of the namespace with the values
//! it inherits from its cloud and its fetched metrics, built from reflector stores and
//! shared by the decisions taken while it is fresh.
//!
//! Building the candidates queries a metrics provider for every metric of every
//! cluster: with 1,000 clusters of 5 metrics, 5,000 queries, which upstream repeats for
//! every decision. Here a set is reused until one of the stores it was built from changes
//! (any cluster, cloud, metric or metrics provider: [`Store::generation`]) or it is older
//! than `metrics_max_age`. One build per namespace runs at a time; the other decisions of
//! that namespace wait for its result instead of querying the providers again. Within a
//! build each distinct query (provider, metric) is made once, however many clusters use
//! the metric, and at most 64 clusters are fetched at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use krake_crds::core::{
    GlobalMetric, GlobalMetricsProvider, Metric, MetricSpec, MetricsProvider, MetricsProviderSpec,
};
use krake_crds::infrastructure::{Cloud, GlobalCloud};
use krake_crds::kubernetes::{Cluster, ClusterState};
use krake_runtime::Store;

use crate::application::ClusterCandidate;
use crate::error::{ProviderError, Result};
use crate::inheritance::{bound_cloud, with_inherited_values};
use crate::metrics::{
    Location, MetricsOutcome, MetricsSource, MetricsStatus, MetricsStatusUpdate, ProviderFactory,
    fetch_metrics, metrics_status_update,
};
use crate::model::AnyCloud;
use crate::providers::MetricsProvider as MetricsProviderClient;

/// Metric and metrics-provider definitions read from reflector stores.
#[derive(Debug, Clone)]
pub struct StoreMetricsSource {
    metrics: Store<Metric>,
    global_metrics: Store<GlobalMetric>,
    providers: Store<MetricsProvider>,
    global_providers: Store<GlobalMetricsProvider>,
}

impl StoreMetricsSource {
    /// Definitions read from these stores.
    pub fn new(
        metrics: Store<Metric>,
        global_metrics: Store<GlobalMetric>,
        providers: Store<MetricsProvider>,
        global_providers: Store<GlobalMetricsProvider>,
    ) -> Self {
        StoreMetricsSource {
            metrics,
            global_metrics,
            providers,
            global_providers,
        }
    }

    fn generations(&self) -> [u64; 4] {
        [
            self.metrics.generation(),
            self.global_metrics.generation(),
            self.providers.generation(),
            self.global_providers.generation(),
        ]
    }
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

/// The stores cluster candidates are built from.
#[derive(Debug, Clone)]
pub struct CandidateStores {
    /// Every Cluster.
    pub clusters: Store<Cluster>,
    /// Every Cloud.
    pub clouds: Store<Cloud>,
    /// Every GlobalCloud.
    pub global_clouds: Store<GlobalCloud>,
    /// Metric and metrics-provider definitions.
    pub metrics: StoreMetricsSource,
}

impl CandidateStores {
    /// The namespaced clouds of `namespace` and every global cloud.
    pub fn clouds_for(&self, namespace: Option<&str>) -> Vec<AnyCloud> {
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

    /// Generations of every store, read before the stores themselves: a change made
    /// during a build leaves the result stale, never wrongly fresh.
    fn generations(&self) -> Generations {
        let [a, b, c, d] = self.metrics.generations();
        [
            self.clusters.generation(),
            self.clouds.generation(),
            self.global_clouds.generation(),
            a,
            b,
            c,
            d,
        ]
    }
}

type Generations = [u64; 7];

/// The cluster candidates of one namespace.
#[derive(Debug)]
pub struct ClusterCandidates {
    /// Every cluster of the namespace, with inherited values and its metric outcome.
    /// Only clusters that could be eligible (not deleted, `ONLINE` or
    /// `FAILING_METRICS`) have their metrics fetched; the others have none.
    pub clusters: Vec<ClusterCandidate>,
    /// The clouds of the namespace and every global cloud.
    pub clouds: Vec<AnyCloud>,
    built: Instant,
    generations: Generations,
}

impl ClusterCandidates {
    fn fresh(&self, generations: &Generations, max_age: Duration) -> bool {
        self.generations == *generations && self.built.elapsed() < max_age
    }
}

/// A metric-driven status change a build found due: the cluster with its
/// new status, to be written by the caller.
#[derive(Debug, Clone)]
pub struct StatusWrite {
    /// The cluster with the change applied (its `resource_version` is the one the
    /// change was computed from, so the write is conditional).
    pub cluster: Cluster,
    /// The change.
    pub update: MetricsStatusUpdate,
}

/// What [`Candidates::of_namespace`] returns.
#[derive(Debug)]
pub struct Fetched {
    /// The candidates.
    pub candidates: Arc<ClusterCandidates>,
    /// Status changes found by the build this call ran; empty when the candidates
    /// were reused (the build that found a change returned it once).
    pub status_writes: Vec<StatusWrite>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<ClusterCandidates>>>>;

/// Clusters whose metrics are fetched at once during a build: bounds the requests in
/// flight to the providers (1,000 clusters of 5 metrics would otherwise open 5,000).
const FETCH_CONCURRENCY: usize = 64;

type Answer = Arc<tokio::sync::OnceCell<std::result::Result<f64, ProviderError>>>;

/// The provider clients and answers of one build.
#[derive(Default)]
struct BuildQueries {
    clients: HashMap<Location, Arc<dyn MetricsProviderClient>>,
    answers: HashMap<(Location, String), Answer>,
}

/// A provider factory that makes each distinct query once per build: clusters commonly
/// share metrics (one global metric used by every cluster), and each cluster would
/// otherwise query the provider for it again.
struct QueryOnce {
    inner: Arc<dyn ProviderFactory>,
    queries: Arc<Mutex<BuildQueries>>,
}

impl ProviderFactory for QueryOnce {
    fn provider(
        &self,
        location: &Location,
        spec: &MetricsProviderSpec,
    ) -> Arc<dyn MetricsProviderClient> {
        let client = self
            .queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clients
            .entry(location.clone())
            .or_insert_with(|| self.inner.provider(location, spec))
            .clone();
        Arc::new(AnsweredOnce {
            location: location.clone(),
            client,
            queries: self.queries.clone(),
        })
    }
}

struct AnsweredOnce {
    location: Location,
    client: Arc<dyn MetricsProviderClient>,
    queries: Arc<Mutex<BuildQueries>>,
}

#[async_trait]
impl MetricsProviderClient for AnsweredOnce {
    async fn query(&self, metric_name: &str) -> std::result::Result<f64, ProviderError> {
        let answer = self
            .queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answers
            .entry((self.location.clone(), metric_name.to_string()))
            .or_default()
            .clone();
        answer
            .get_or_init(|| self.client.query(metric_name))
            .await
            .clone()
    }
}

/// Builds and caches the cluster candidates of each namespace.
pub struct Candidates {
    stores: CandidateStores,
    providers: Arc<dyn ProviderFactory>,
    max_age: Duration,
    cache: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for Candidates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidates")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl Candidates {
    /// Candidates built from `stores`, metrics queried through `providers`, reused for
    /// at most `max_age` (zero: never reused).
    pub fn new(
        stores: CandidateStores,
        providers: Arc<dyn ProviderFactory>,
        max_age: Duration,
    ) -> Self {
        Candidates {
            stores,
            providers,
            max_age,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The stores the candidates are built from.
    pub fn stores(&self) -> &CandidateStores {
        &self.stores
    }

    /// The candidates of `namespace`: reused when fresh, else built (fetching metrics).
    ///
    /// Fails only when a metric definition cannot be read; provider failures are
    /// metric outcomes ([`MetricsOutcome::Failed`]).
    pub async fn of_namespace(&self, namespace: &str) -> Result<Fetched> {
        let slot = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(namespace.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        let generations = self.stores.generations();
        if let Some(current) = slot.as_ref()
            && current.fresh(&generations, self.max_age)
        {
            return Ok(Fetched {
                candidates: current.clone(),
                status_writes: Vec::new(),
            });
        }
        *slot = None;
        self.prune(&generations);
        let (candidates, status_writes) = self.build(namespace, generations).await?;
        let candidates = Arc::new(candidates);
        if !self.max_age.is_zero() {
            *slot = Some(candidates.clone());
        }
        Ok(Fetched {
            candidates,
            status_writes,
        })
    }

    /// Forget the sets of other namespaces that are stale anyway (they hold on to old
    /// objects); sets being built or read are kept.
    fn prune(&self, generations: &Generations) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, slot| match slot.try_lock() {
                Ok(current) => current
                    .as_ref()
                    .is_some_and(|c| c.generations == *generations),
                Err(_) => true,
            });
    }

    async fn build(
        &self,
        namespace: &str,
        generations: Generations,
    ) -> Result<(ClusterCandidates, Vec<StatusWrite>)> {
        let built = Instant::now();
        let clusters = self
            .stores
            .clusters
            .filter(|c| c.metadata.namespace.as_deref() == Some(namespace));
        let clouds = self.stores.clouds_for(Some(namespace));
        let clouds = &clouds;
        let providers = &QueryOnce {
            inner: self.providers.clone(),
            queries: Arc::default(),
        };
        let count = clusters.len();
        let fetches = clusters.into_iter().map(|cluster| async move {
            let inherited = match bound_cloud(&cluster, clouds) {
                None => cluster.clone(),
                cloud => Arc::new(with_inherited_values(&cluster, cloud)),
            };
            let relevant = cluster.metadata.deleted.is_none()
                && matches!(
                    cluster.status.state,
                    ClusterState::Online | ClusterState::FailingMetrics
                );
            if !relevant {
                return Ok((
                    ClusterCandidate {
                        cluster: inherited,
                        metrics: MetricsOutcome::NoMetrics,
                    },
                    None,
                ));
            }
            let metrics = if inherited.spec.metrics.is_empty() {
                MetricsOutcome::NoMetrics
            } else {
                fetch_metrics(
                    Some(namespace),
                    &inherited.spec.metrics,
                    &self.stores.metrics,
                    providers,
                )
                .await?
            };
            let write = metrics_status_update(
                cluster.status.is_failing(),
                cluster.status.metrics_reasons(),
                &metrics,
            )
            .map(|update| {
                let mut changed = cluster.as_ref().clone();
                changed.status.apply(&update);
                StatusWrite {
                    cluster: changed,
                    update,
                }
            });
            Ok::<_, crate::Error>((
                ClusterCandidate {
                    cluster: inherited,
                    metrics,
                },
                write,
            ))
        });
        let mut candidates = Vec::with_capacity(count);
        let mut writes = Vec::new();
        let results: Vec<_> = futures::stream::iter(fetches)
            .buffered(FETCH_CONCURRENCY)
            .collect()
            .await;
        for result in results {
            let (candidate, write) = result?;
            candidates.push(candidate);
            writes.extend(write);
        }
        Ok((
            ClusterCandidates {
                clusters: candidates,
                clouds: clouds.clone(),
                built,
                generations,
            },
            writes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use krake_crds::core::{MetricSpecProvider, ReasonCode, StaticSpec};
    use krake_crds::{Metadata, OrderedMap};
    use krake_runtime::Writer;

    use super::*;
    use crate::model::fixtures::{cluster, global_cloud, metric_ref, metric_spec};
    use crate::model::resource_ref;
    use crate::providers::{MetricsProvider as Provider, StaticProvider};

    /// Static providers whose queries are counted.
    #[derive(Default)]
    struct Counting {
        queries: Arc<AtomicUsize>,
    }

    struct Counted {
        inner: StaticProvider,
        queries: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl Provider for Counted {
        async fn query(&self, metric_name: &str) -> std::result::Result<f64, crate::Error> {
            self.queries.fetch_add(1, Ordering::SeqCst);
            // Give concurrent callers a chance to run while this build is in flight.
            tokio::task::yield_now().await;
            self.inner.query(metric_name).await
        }
    }

    impl ProviderFactory for Counting {
        fn provider(&self, location: &Location, spec: &MetricsProviderSpec) -> Arc<dyn Provider> {
            let MetricsProviderSpec::Static(s) = spec else {
                panic!("static providers only")
            };
            Arc::new(Counted {
                inner: StaticProvider::new(location.name(), s),
                queries: self.queries.clone(),
            })
        }
    }

    struct Fixture {
        clusters: Writer<Cluster>,
        global_clouds: Writer<GlobalCloud>,
        global_metrics: Writer<GlobalMetric>,
        global_providers: Writer<GlobalMetricsProvider>,
        candidates: Candidates,
        queries: Arc<AtomicUsize>,
    }

    fn global_metric(name: &str, raw: &str) -> GlobalMetric {
        let mut spec = metric_spec(0.0, 10.0, &[]);
        spec.provider = MetricSpecProvider {
            name: "static".into(),
            metric: raw.into(),
        };
        GlobalMetric::new(Metadata::named(name), spec)
    }

    fn static_provider(values: &[(&str, f64)]) -> GlobalMetricsProvider {
        GlobalMetricsProvider::new(
            Metadata::named("static"),
            MetricsProviderSpec::Static(StaticSpec {
                metrics: values.iter().map(|(k, v)| (*k, *v)).collect(),
            }),
        )
    }

    /// `n` ONLINE clusters `c0…` in namespace "ns", each with global metrics `load`
    /// (weight 1) and `heat` (weight 2).
    fn measured(name: &str) -> Cluster {
        let mut c = cluster(name, &[]);
        c.spec.metrics = vec![
            metric_ref("load", 1.0, false),
            metric_ref("heat", 2.0, false),
        ];
        c
    }

    fn fixture(n: usize, max_age: Duration) -> Fixture {
        let mut clusters = Writer::new();
        for i in 0..n {
            clusters.upsert(measured(&format!("c{i}")));
        }
        let mut global_metrics = Writer::new();
        global_metrics.upsert(global_metric("load", "raw-load"));
        global_metrics.upsert(global_metric("heat", "raw-heat"));
        let mut global_providers = Writer::new();
        global_providers.upsert(static_provider(&[("raw-load", 5.0), ("raw-heat", 2.0)]));
        let clouds = Writer::<Cloud>::new();
        let global_clouds = Writer::new();
        let factory = Counting::default();
        let queries = factory.queries.clone();
        let stores = CandidateStores {
            clusters: clusters.store(),
            clouds: clouds.store(),
            global_clouds: global_clouds.store(),
            metrics: StoreMetricsSource::new(
                Writer::<Metric>::new().store(),
                global_metrics.store(),
                Writer::<MetricsProvider>::new().store(),
                global_providers.store(),
            ),
        };
        Fixture {
            clusters,
            global_clouds,
            global_metrics,
            global_providers,
            candidates: Candidates::new(stores, Arc::new(factory), max_age),
            queries,
        }
    }

    impl Fixture {
        fn queries(&self) -> usize {
            self.queries.swap(0, Ordering::SeqCst)
        }
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn built_once_then_reused_while_nothing_changes() {
        let f = fixture(3, LONG);
        let first = f.candidates.of_namespace("ns").await.unwrap();
        assert_eq!(
            f.queries(),
            2,
            "two metrics shared by three clusters: queried once each"
        );
        let values: Vec<f64> = first.candidates.clusters[0]
            .metrics
            .values()
            .expect("fetched")
            .iter()
            .map(|m| m.value)
            .collect();
        assert_eq!(values, vec![0.5, 0.2]);
        assert!(first.status_writes.is_empty());
        for _ in 0..5 {
            let again = f.candidates.of_namespace("ns").await.unwrap();
            assert!(Arc::ptr_eq(&first.candidates, &again.candidates));
        }
        assert_eq!(f.queries(), 0);
        // Another namespace has its own (empty) set.
        let other = f.candidates.of_namespace("other").await.unwrap();
        assert!(other.candidates.clusters.is_empty());
    }

    #[tokio::test]
    async fn any_change_of_an_input_store_makes_the_set_stale() {
        let mut f = fixture(2, LONG);
        let mut last = f.candidates.of_namespace("ns").await.unwrap().candidates;
        f.queries();

        // A cluster (here: one of another namespace) changes.
        let mut elsewhere = measured("x");
        elsewhere.metadata.namespace = Some("elsewhere".into());
        f.clusters.upsert(elsewhere);
        let next = f.candidates.of_namespace("ns").await.unwrap().candidates;
        assert!(!Arc::ptr_eq(&last, &next));
        assert_eq!(f.queries(), 2);
        last = next;

        // A metric definition changes: the new bounds are used at once.
        let mut load = global_metric("load", "raw-load");
        load.spec.max = 20.0;
        f.global_metrics.upsert(load);
        let next = f.candidates.of_namespace("ns").await.unwrap().candidates;
        assert!(!Arc::ptr_eq(&last, &next));
        assert_eq!(next.clusters[0].metrics.values().unwrap()[0].value, 0.25);
        last = next;

        // A provider changes.
        f.global_providers
            .upsert(static_provider(&[("raw-load", 10.0), ("raw-heat", 2.0)]));
        let next = f.candidates.of_namespace("ns").await.unwrap().candidates;
        assert!(!Arc::ptr_eq(&last, &next));
        assert_eq!(next.clusters[0].metrics.values().unwrap()[0].value, 0.5);
        last = next;

        // A cloud appears.
        f.global_clouds.upsert(global_cloud("cloud", &[], vec![]));
        let next = f.candidates.of_namespace("ns").await.unwrap().candidates;
        assert!(!Arc::ptr_eq(&last, &next));
        assert_eq!(next.clouds.len(), 1);
    }

    #[tokio::test]
    async fn sets_older_than_the_maximal_age_are_rebuilt() {
        let f = fixture(1, Duration::from_millis(20));
        f.candidates.of_namespace("ns").await.unwrap();
        f.candidates.of_namespace("ns").await.unwrap();
        assert_eq!(f.queries(), 2, "reused within 20 ms");
        std::thread::sleep(Duration::from_millis(30));
        f.candidates.of_namespace("ns").await.unwrap();
        assert_eq!(f.queries(), 2, "fetched again after 20 ms");

        let never = fixture(1, Duration::ZERO);
        for _ in 0..3 {
            never.candidates.of_namespace("ns").await.unwrap();
        }
        assert_eq!(
            never.queries(),
            6,
            "a zero maximal age fetches for every decision"
        );
    }

    #[tokio::test]
    async fn concurrent_decisions_of_a_namespace_share_one_build() {
        let f = fixture(50, LONG);
        let results =
            futures::future::join_all((0..8).map(|_| f.candidates.of_namespace("ns"))).await;
        assert_eq!(f.queries(), 2, "one build for eight concurrent callers");
        let first = results[0].as_ref().unwrap();
        for other in &results {
            assert!(Arc::ptr_eq(
                &first.candidates,
                &other.as_ref().unwrap().candidates
            ));
        }
    }

    #[tokio::test]
    async fn status_changes_are_returned_once_by_the_build_that_found_them() {
        let mut f = fixture(0, LONG);
        // Metrics work again for a FAILING_METRICS cluster: recover.
        let mut recovering = measured("recovering");
        recovering.status.state = ClusterState::FailingMetrics;
        recovering.status.metrics_reasons = [(
            "load",
            krake_crds::core::Reason {
                code: ReasonCode::UnreachableMetricsProvider,
                message: "down".into(),
            },
        )]
        .into_iter()
        .collect::<OrderedMap<_>>();
        f.clusters.upsert(recovering);
        // A metric that does not exist: FAILING_METRICS.
        let mut broken = measured("broken");
        broken.spec.metrics.push(metric_ref("missing", 1.0, false));
        f.clusters.upsert(broken);
        // OFFLINE: not fetched, no change.
        let mut offline = measured("offline");
        offline.status.state = ClusterState::Offline;
        f.clusters.upsert(offline);

        let fetched = f.candidates.of_namespace("ns").await.unwrap();
        assert_eq!(
            f.queries(),
            2,
            "each known metric once; none for the missing one"
        );
        let mut writes: Vec<(String, MetricsStatusUpdate)> = fetched
            .status_writes
            .iter()
            .map(|w| (w.cluster.metadata.name.clone(), w.update.clone()))
            .collect();
        writes.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(writes[0].0, "broken");
        assert!(
            matches!(&writes[0].1, MetricsStatusUpdate::SetFailing(r) if r.get("missing").is_some_and(|r| r.code == ReasonCode::UnknownMetric)),
            "{writes:?}"
        );
        let broken = &fetched
            .status_writes
            .iter()
            .find(|w| w.cluster.metadata.name == "broken")
            .unwrap()
            .cluster;
        assert_eq!(broken.status.state, ClusterState::FailingMetrics);
        assert_eq!(
            writes[1],
            ("recovering".to_string(), MetricsStatusUpdate::Recover)
        );

        let reused = f.candidates.of_namespace("ns").await.unwrap();
        assert!(reused.status_writes.is_empty());
    }

    #[tokio::test]
    async fn clusters_inherit_from_their_bound_cloud_and_are_shared_otherwise() {
        let mut f = fixture(1, LONG);
        let cloud = global_cloud("cloud", &[("location", "DE")], vec![]);
        let mut bound = cluster("bound", &[]);
        bound.metadata.inherit_labels = true;
        bound.status.scheduled_to = Some({
            let mut r = resource_ref(&cloud);
            r.namespace = None;
            r
        });
        f.global_clouds.upsert(cloud);
        f.clusters.upsert(bound);
        let fetched = f.candidates.of_namespace("ns").await.unwrap();
        let by_name = |name: &str| {
            fetched
                .candidates
                .clusters
                .iter()
                .find(|c| c.cluster.metadata.name == name)
                .unwrap()
                .cluster
                .clone()
        };
        assert_eq!(
            by_name("bound").metadata.labels.get("location"),
            Some(&serde_json::json!("DE"))
        );
        let stored = f.clusters.store().get_named(Some("ns"), "c0").unwrap();
        assert!(
            Arc::ptr_eq(&by_name("c0"), &stored),
            "no copy without a cloud"
        );
    }
}
