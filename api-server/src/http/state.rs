//! Shared state of one API server instance, and the small helpers every handler uses:
//! authorization and rendering responses.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use krake_crds::Resource;
use tokio_util::sync::CancellationToken;

use crate::auth::{Access, AuthenticatorChain, Authorizer, Caller, Verb};
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::storage::codec::Objects;
use crate::watch_cache::WatchCache;

/// State shared by all requests of one server.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

/// The contents of [`AppState`].
pub struct Shared {
    /// The (instrumented) store, for listings, creations and watches.
    pub store: Arc<dyn Store>,
    /// Typed conditional reads and writes on `store`.
    pub objects: Objects,
    pub config: Config,
    pub authenticators: AuthenticatorChain,
    pub authorizer: Arc<dyn Authorizer>,
    pub metrics: Arc<Metrics>,
    /// One watch cache per kind, by storage prefix (`/kubernetes/applications/`).
    pub caches: HashMap<String, Arc<WatchCache>>,
    /// Cancelled on shutdown; ends watch streams and blocking waits.
    pub shutdown: CancellationToken,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    /// Ask the authorizer.
    pub fn authorize(&self, caller: &Caller, access: Access<'_>) -> Result<(), Error> {
        self.authorizer.authorize(caller, &access)
    }

    /// The watch cache of kind `R`.
    pub fn cache<R: Resource>(&self) -> Result<&Arc<WatchCache>, Error> {
        self.caches
            .get(&R::prefix(None))
            .ok_or_else(|| Error::Internal(format!("no watch cache for {}", R::KIND)))
    }
}

/// Ask the authorizer about `verb` on `resource` (a plural, or `plural/subresource`) of
/// kind `R` in `namespace`: the namespace extracted from the URL by the typed path of the
/// route (`None` for global kinds and the all-namespaces list).
pub fn authorize_route<R: Resource>(
    state: &AppState,
    caller: &Caller,
    namespace: Option<&str>,
    resource: &str,
    verb: Verb,
) -> Result<(), Error> {
    state.authorize(
        caller,
        Access {
            api: R::API,
            resource,
            verb,
            namespace,
        },
    )
}

/// A JSON response with upstream's content type.
pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// Serialize an object as the response body.
pub fn object_response<R: Resource>(object: &R) -> Response {
    json_response(StatusCode::OK, krake_crds::json::to_vec(object))
}
