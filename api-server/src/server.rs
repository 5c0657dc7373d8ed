//! Start, run and stop one API server instance.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use krake_crds::Resource;
use krake_crds::core::{Role, RoleBinding};
use krake_crds::kinds::{KindVisitor, visit_kinds};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower::util::MapRequest;

use crate::auth::{AuthenticatorChain, AuthorizerContext, PeerCommonName, authorizer_from_config};
use crate::config::{Config, StorageConfig};
use crate::error::Error;
use crate::http::state::{AppState, Shared};
// hyper's own error responses (bad framing, 414, 431) get problem bodies.
use crate::http::wire::ProblemIo;
use crate::metrics::{KindLabels, Metrics};
use crate::storage::Store;
use crate::storage::codec::Objects;
use crate::storage::embedded::EmbeddedStore;
use crate::storage::etcd::EtcdStore;
use crate::storage::instrumented::InstrumentedStore;
use crate::tls::{HANDSHAKE_TIMEOUT, RELOAD_INTERVAL, ServerTls};
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
    let task = tokio::spawn(serve(listener, app, tls, shutdown.clone()));
    tracing::info!(%addr, https, "Krake API server listening");
    Ok(RunningServer {
        addr,
        shutdown,
        task,
    })
}

/// Accept connections until `shutdown`, then let every open connection finish its
/// requests (watch streams end on the same token) and return.
async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<ServerTls>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let acceptor = tls.map(|tls| tls.acceptor().clone());
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().enable_connect_protocol();
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let app = app.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let service = with_peer(app, PeerCommonName(None));
                    let connection = builder.serve_connection_with_upgrades(
                        TokioIo::new(ProblemIo::new(stream)),
                        service,
                    );
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = tokio::select! {
                        // Stopping: a connection without a finished handshake has no requests.
                        _ = shutdown.cancelled() => return,
                        result = handshake => match result {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                    };
                    let user = crate::tls::peer_common_name(stream.get_ref().1);
                    let service = with_peer(app, PeerCommonName(user));
                    let connection = builder.serve_connection_with_upgrades(
                        TokioIo::new(ProblemIo::new(stream)),
                        service,
                    );
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The application as a hyper service whose requests carry the connection's client
/// certificate identity.
fn with_peer(
    app: axum::Router,
    peer: PeerCommonName,
) -> TowerToHyperService<
    MapRequest<axum::Router, impl FnMut(Request<Incoming>) -> Request<Incoming> + Clone>,
> {
    TowerToHyperService::new(app.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        request
    }))
}

/// Errors of `accept` other than a dropped connection (e.g. too many open files) are
/// logged, and accepting pauses briefly instead of spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
