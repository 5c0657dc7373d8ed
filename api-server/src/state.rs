//! Shared state of one API server instance, and the small helpers every handler uses:
//! authorization, loading and writing objects, rendering responses.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use krake_crds::Resource;
use tokio_util::sync::CancellationToken;

use crate::auth::{Access, AuthenticatorChain, Authorizer, Caller};
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::storage::{KeyValue, Store, WriteOutcome};
use crate::watch_cache::WatchCache;

/// State shared by all requests of one server.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

/// The contents of [`AppState`].
pub struct Shared {
    /// The (instrumented) store.
    pub store: Arc<dyn Store>,
    /// Validated configuration.
    pub config: Config,
    /// Authentication chain.
    pub authenticators: AuthenticatorChain,
    /// Authorizer.
    pub authorizer: Arc<dyn Authorizer>,
    /// Metrics registry.
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

/// A loaded object with the revision it was read at.
pub struct Loaded<R> {
    /// The object (with `resource_version` set).
    pub object: R,
    /// Its storage `mod_revision`.
    pub revision: i64,
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

    /// Read one object, or `NotFound`.
    pub async fn load<R: Resource>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Loaded<R>, Error> {
        let key = R::key(namespace, name);
        match self.store.get(&key).await? {
            Some(kv) => Ok(Loaded {
                object: decode_stored::<R>(&kv)?,
                revision: kv.mod_revision,
            }),
            None => Err(Error::NotFound {
                kind: R::KIND,
                name: name.to_string(),
                namespace: namespace.map(str::to_string),
            }),
        }
    }

    /// Conditionally overwrite an object read at `revision`; returns the new revision,
    /// or `None` on a conflicting concurrent write.
    pub async fn write<R: Resource>(
        &self,
        object: &mut R,
        revision: i64,
    ) -> Result<Option<i64>, Error> {
        let key = R::key(
            object.metadata().namespace.as_deref(),
            &object.metadata().name,
        );
        let value = encode_for_storage(object);
        match self.store.update(&key, value, revision).await? {
            WriteOutcome::Written(rev) => {
                object.metadata_mut().resource_version = Some(rev.to_string());
                Ok(Some(rev))
            }
            WriteOutcome::Conflict => Ok(None),
        }
    }

    /// Conditionally remove an object read at `revision`; `None` on conflict.
    pub async fn remove<R: Resource>(
        &self,
        object: &R,
        revision: i64,
    ) -> Result<Option<i64>, Error> {
        let key = R::key(
            object.metadata().namespace.as_deref(),
            &object.metadata().name,
        );
        match self.store.delete(&key, revision).await? {
            WriteOutcome::Written(rev) => Ok(Some(rev)),
            WriteOutcome::Conflict => Ok(None),
        }
    }

    /// Run `attempt` until it does not hit a conflicting concurrent write, at most
    /// `1 + retry_transactions` times (upstream re-runs the whole handler on conflicts).
    pub async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        for _ in 0..=self.config.retry_transactions {
            if let Some(done) = attempt().await? {
                return Ok(done);
            }
        }
        Err(Error::Transaction("Concurrent writes to database".into()))
    }
}

/// Decode a stored value. Stored objects were validated when written, so only the
/// structure is checked here (a corrupt value is a server-side problem, not a client's).
pub fn decode_stored<R: Resource>(kv: &KeyValue) -> Result<R, Error> {
    let mut object: R = serde_json::from_slice(&kv.value).map_err(|e| Error::CorruptObject {
        key: kv.key.clone(),
        reason: e.to_string(),
    })?;
    object.metadata_mut().resource_version = Some(kv.mod_revision.to_string());
    Ok(object)
}

/// The bytes stored for an object: upstream's JSON, without the `resource_version`
/// extension (it is derived from the storage revision on every read).
pub fn encode_for_storage<R: Resource>(object: &mut R) -> Vec<u8> {
    let rv = object.metadata_mut().resource_version.take();
    let bytes = krake_crds::json::to_vec(object);
    object.metadata_mut().resource_version = rv;
    bytes
}

/// A 200 JSON response with upstream's content type.
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
