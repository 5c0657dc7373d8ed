//! Start, run and stop one API server instance.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use krake_crds::Resource;
use krake_crds::core::{Role, RoleBinding};
use krake_crds::kinds::{KindVisitor, visit_kinds};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthenticatorChain, AuthorizerContext, authorizer_from_config};
use crate::config::{Config, StorageConfig};
use crate::error::Error;
use crate::http::state::{AppState, Shared};
use crate::metrics::{KindLabels, Metrics};
use crate::storage::Store;
use crate::storage::codec::Objects;
use crate::storage::embedded::EmbeddedStore;
use crate::storage::etcd::EtcdStore;
use crate::storage::instrumented::InstrumentedStore;
use crate::tls::{RELOAD_INTERVAL, ServerTls};
use crate::watch_cache::{CacheLimits, CacheMetrics, WatchCache, renderer};

/// A running server.
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Ask the server to stop: stop accepting, end watch streams, let requests finish.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Wait until the server has stopped.
    pub async fn wait(self) -> Result<(), Error> {
        self.task
            .await
            .map_err(|e| Error::Internal(format!("server task failed: {e}")))?
            .map_err(|e| Error::Internal(format!("server failed: {e}")))
    }

    /// Stop and wait.
    pub async fn stop(self) -> Result<(), Error> {
        self.shutdown();
        self.wait().await
    }
}

/// Open the configured storage backend.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, Error> {
    Ok(match &config.storage {
        StorageConfig::Etcd {
            endpoints,
            max_request_bytes,
        } => Arc::new(
            EtcdStore::connect(endpoints.clone(), Duration::from_secs(5))
                .await?
                .with_max_request_bytes(*max_request_bytes),
        ),
        StorageConfig::Embedded {
            data_dir,
            history_limit,
        } => {
            let dir = data_dir.clone();
            tokio::fs::create_dir_all(&dir).await.map_err(|e| {
                Error::Internal(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            })?;
            Arc::new(EmbeddedStore::open(dir.join("krake.redb"), *history_limit).await?)
        }
    })
}

/// One watch cache per persisted kind, by key prefix.
struct WatchCaches<'a> {
    caches: HashMap<String, Arc<WatchCache>>,
    store: &'a Arc<dyn Store>,
    limits: CacheLimits,
    metrics: &'a Metrics,
}

impl KindVisitor for WatchCaches<'_> {
    fn visit<R: Resource>(&mut self) {
        let prefix = R::prefix(None);
        self.caches.insert(
            prefix.clone(),
            WatchCache::new(
                prefix,
                self.store.clone(),
                renderer::<R>(),
                self.limits,
                cache_metrics(self.metrics, R::KIND),
            ),
        );
    }
}

/// The registered metrics of the watch cache of `kind`.
fn cache_metrics(metrics: &Metrics, kind: &'static str) -> CacheMetrics {
    let labels = KindLabels { kind };
    CacheMetrics {
        bytes: metrics.watch_cache_bytes.get_or_create(&labels).clone(),
        evictions: metrics.watch_cache_evictions.get_or_create(&labels).clone(),
    }
}

/// Bind and start serving; returns once the socket listens.
pub async fn start(config: Config) -> Result<RunningServer, Error> {
    // Certificate problems are reported before the storage is even contacted.
    let tls = load_tls(&config).await?;
    let store = open_store(&config).await?;
    start_serving(config, store, tls).await
}

/// Bind and start serving on an already opened store.
pub async fn start_with_store(
    config: Config,
    store: Arc<dyn Store>,
) -> Result<RunningServer, Error> {
    let tls = load_tls(&config).await?;
    start_serving(config, store, tls).await
}

async fn load_tls(config: &Config) -> Result<Option<ServerTls>, Error> {
    match &config.tls {
        Some(tls) => Ok(Some(ServerTls::load(tls).await?)),
        None => Ok(None),
    }
}

async fn start_serving(
    config: Config,
    store: Arc<dyn Store>,
    tls: Option<ServerTls>,
) -> Result<RunningServer, Error> {
    let metrics = Metrics::new();
    let store: Arc<dyn Store> = Arc::new(InstrumentedStore::new(store, metrics.clone()));
    let shutdown = CancellationToken::new();
    let mut caches = WatchCaches {
        caches: HashMap::new(),
        store: &store,
        limits: CacheLimits {
            events: config.watch_cache_events,
            bytes: config.watch_cache_bytes,
        },
        metrics: &metrics,
    };
    visit_kinds(&mut caches);
    let caches = caches.caches;
    for cache in caches.values() {
        tokio::spawn(cache.clone().run(shutdown.clone()));
    }
    let authorizer = authorizer_from_config(
        &config,
        AuthorizerContext {
            store: store.clone(),
            roles: caches[&Role::prefix(None)].clone(),
            role_bindings: caches[&RoleBinding::prefix(None)].clone(),
            shutdown: shutdown.clone(),
        },
    )?;

    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let limits = connection_limits(&config).await;
    let state = AppState(Arc::new(Shared {
        objects: Objects::new(store.clone(), config.retry_transactions),
        store,
        authenticators: AuthenticatorChain::from_config(&config),
        authorizer,
        config,
        metrics,
        caches,
        shutdown: shutdown.clone(),
    }));
    let app = crate::http::routes::router(state);
    let https = tls.is_some();
    if let Some(tls) = &tls {
        tls.spawn_reloader(RELOAD_INTERVAL, shutdown.clone());
    }
    let task = tokio::spawn(crate::conn::serve(
        listener,
        app,
        tls.map(|tls| tls.acceptor().clone()),
        limits,
        shutdown.clone(),
    ));
    tracing::info!(%addr, https, "Krake API server listening");
    Ok(RunningServer {
        addr,
        shutdown,
        task,
    })
}

/// The connection limits of `config`, with the problem document refused connections get.
async fn connection_limits(config: &Config) -> crate::conn::Limits {
    let refusal =
        crate::http::problem::render(&Error::TooManyConnections, &config.problem_base_url);
    let (mut parts, body) = refusal.into_parts();
    // A freshly rendered problem document is in memory: collecting it cannot fail.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    crate::conn::Limits {
        header_read: config.header_read_timeout,
        idle: config.idle_timeout,
        drain: config.shutdown_drain_timeout,
        max_connections: config.max_connections,
        refusal: (parts.headers, body),
        // hyper's own error responses (bad framing, 414, 431) get problem bodies.
        render_problem: |status, detail| {
            crate::http::problem::problem_body(status, "about:blank", None, detail)
        },
    }
}
