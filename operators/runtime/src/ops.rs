//! Operations endpoints every controller binary serves: `/livez`, `/readyz`, `/metrics`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use krake_crds::Resource;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::store::Store;

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// A set of readiness checks; ready when all pass (an empty set is ready). Clones share
/// the set.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<Vec<Check>>>,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readiness")
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Readiness {
    /// An empty set (ready).
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a check.
    pub fn add_check(&self, check: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(check));
    }

    /// Ready only once `store` is synced.
    pub fn add_store<R: Resource>(&self, store: &Store<R>) {
        let store = store.clone();
        self.add_check(move || store.is_synced());
    }

    /// Ready only when `other` is ready too (e.g. one process readiness made of several
    /// controllers).
    pub fn add(&self, other: &Readiness) {
        let other = other.clone();
        self.add_check(move || other.is_ready());
    }

    /// Whether every check passes.
    pub fn is_ready(&self) -> bool {
        let checks: Vec<Check> = self
            .checks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        checks.iter().all(|check| check())
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Readiness,
    registry: Arc<Registry>,
}

/// The operations router: `/livez` (always 200 while the process serves), `/readyz`
/// (200 when `readiness` holds, else 503) and `/metrics` (OpenMetrics text of
/// `registry`). Merge it into another router or serve it with [`OpsServer`].
pub fn router(readiness: Readiness, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(OpsState {
            readiness,
            registry,
        })
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<OpsState>) -> Response {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced\n").into_response()
    }
}

async fn metrics(State(state): State<OpsState>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        tracing::error!(error = %e, "cannot encode metrics");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// A running operations server.
#[derive(Debug)]
pub struct OpsServer {
    addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl OpsServer {
    /// Bind `addr` (port 0 for any) and serve [`router`] until `shutdown` is cancelled.
    pub async fn start(
        addr: SocketAddr,
        readiness: Readiness,
        registry: Arc<Registry>,
        shutdown: CancellationToken,
    ) -> Result<Self, Error> {
        Self::serve(addr, router(readiness, registry), shutdown).await
    }

    /// Bind `addr` and serve `router` (e.g. [`router`] merged with more routes) until
    /// `shutdown` is cancelled.
    pub async fn serve(
        addr: SocketAddr,
        router: Router,
        shutdown: CancellationToken,
    ) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        tracing::info!(%addr, "operations endpoints listening");
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        });
        Ok(OpsServer { addr, task })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wait until the server stopped.
    pub async fn wait(self) -> Result<(), Error> {
        match self.task.await {
            Ok(result) => result.map_err(Error::Serve),
            Err(e) => Err(Error::Serve(std::io::Error::other(e.to_string()))),
        }
    }
}
