//! Start, run and stop one API server instance.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use krake_crds::Resource;
use krake_crds::core::{
    GlobalMetric, GlobalMetricsProvider, Metric, MetricsProvider, Role, RoleBinding,
};
use krake_crds::infrastructure::{
    Cloud, GlobalCloud, GlobalInfrastructureProvider, InfrastructureProvider,
};
use krake_crds::kubernetes::{Application, Cluster};
use krake_crds::openstack::{MagnumCluster, Project};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthenticatorChain, AuthorizerContext, authorizer_from_config};
use crate::config::{Config, StorageConfig};
use crate::error::Error;
use crate::metrics::{InstrumentedStore, Metrics};
use crate::state::{AppState, Shared};
use crate::storage::Store;
use crate::storage::embedded::EmbeddedStore;
use crate::storage::etcd::EtcdStore;
use crate::watch::renderer;
use crate::watch_cache::WatchCache;

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
        StorageConfig::Etcd { endpoints } => {
            Arc::new(EtcdStore::connect(endpoints.clone(), Duration::from_secs(5)).await?)
        }
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

fn add_cache<R: Resource>(
    caches: &mut HashMap<String, Arc<WatchCache>>,
    store: &Arc<dyn Store>,
    capacity: usize,
) {
    let prefix = R::prefix(None);
    caches.insert(
        prefix.clone(),
        WatchCache::new(prefix, store.clone(), renderer::<R>(), capacity),
    );
}

/// Bind and start serving; returns once the socket listens.
pub async fn start(config: Config) -> Result<RunningServer, Error> {
    let store = open_store(&config).await?;
    start_with_store(config, store).await
}

/// Bind and start serving on an already opened store.
pub async fn start_with_store(
    config: Config,
    store: Arc<dyn Store>,
) -> Result<RunningServer, Error> {
    if config.tls.is_some() {
        return Err(Error::Internal("TLS serving is not implemented yet".into()));
    }
    let metrics = Metrics::new();
    let store: Arc<dyn Store> = Arc::new(InstrumentedStore::new(store, metrics.clone()));
    let shutdown = CancellationToken::new();
    let capacity = config.watch_cache_events;
    let mut caches = HashMap::new();
    add_cache::<Role>(&mut caches, &store, capacity);
    add_cache::<RoleBinding>(&mut caches, &store, capacity);
    add_cache::<GlobalMetric>(&mut caches, &store, capacity);
    add_cache::<Metric>(&mut caches, &store, capacity);
    add_cache::<GlobalMetricsProvider>(&mut caches, &store, capacity);
    add_cache::<MetricsProvider>(&mut caches, &store, capacity);
    add_cache::<Application>(&mut caches, &store, capacity);
    add_cache::<Cluster>(&mut caches, &store, capacity);
    add_cache::<Project>(&mut caches, &store, capacity);
    add_cache::<MagnumCluster>(&mut caches, &store, capacity);
    add_cache::<GlobalInfrastructureProvider>(&mut caches, &store, capacity);
    add_cache::<InfrastructureProvider>(&mut caches, &store, capacity);
    add_cache::<GlobalCloud>(&mut caches, &store, capacity);
    add_cache::<Cloud>(&mut caches, &store, capacity);
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
    let state = AppState(Arc::new(Shared {
        store,
        authenticators: AuthenticatorChain::from_config(&config),
        authorizer,
        config,
        metrics,
        caches,
        shutdown: shutdown.clone(),
    }));
    let app = crate::routes::router(state);
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await
    });
    tracing::info!(%addr, "Krake API server listening");
    Ok(RunningServer {
        addr,
        shutdown,
        task,
    })
}
