//! Generic handlers for every persisted kind: create, read, list, update, status update
//! and delete, in upstream's processing order: authorize, then parse the body, then load
//! the stored object (so a forbidden request never learns whether an object exists, and a
//! malformed body is reported before a missing object).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use krake_crds::{Resource, Timestamp, ValidationErrors, decode, decode_create};
use serde_json::Value;
use tokio::sync::broadcast;

use super::params::{CollectionPath, ObjectPath, parse_json};
use super::query::{CreateOptions, DeleteOptions, ListOptions, RawQuery};
use super::state::{AppState, authorize_route, json_response, object_response};
use super::watch;
use crate::auth::{Caller, NamespaceScope, Verb};
use crate::conn::ConnectionHandle;
use crate::error::Error;
use crate::kinds::ApiKind;
use crate::storage::WriteOutcome;
use crate::storage::codec::{Loaded, decode_stored, encode_for_storage, initialize_new};
use crate::watch_cache::{CachedEvent, EventType, Subscription};

const READ_ONLY_METADATA: [&str; 4] = ["uid", "created", "modified", "deleted"];

/// A full-object PUT body: the decoded object plus which read-only parts the client
/// omitted (accepted, unlike upstream, and taken from the stored object).
struct PutBody {
    value: Value,
    omitted_status: bool,
    omitted_metadata: Vec<&'static str>,
    resource_version: Option<String>,
}

impl PutBody {
    fn parse<R: Resource>(body: &Bytes, status_required: bool) -> Result<(Self, R), Error> {
        let value = parse_json(body)?;
        let mut probe = value.clone();
        let mut omitted_status = false;
        let mut omitted_metadata = Vec::new();
        let mut resource_version = None;
        if let Value::Object(map) = &mut probe {
            if R::HAS_STATUS && !map.contains_key("status") {
                if status_required {
                    return Err(
                        ValidationErrors::at("status", "Missing data for required field.").into(),
                    );
                }
                omitted_status = true;
                map.insert("status".into(), Value::Object(Default::default()));
            }
            if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                for key in READ_ONLY_METADATA {
                    if !meta.contains_key(key) {
                        omitted_metadata.push(key);
                    }
                }
                match meta.remove("resource_version") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => resource_version = Some(s),
                    Some(_) => {
                        return Err(ValidationErrors::at(
                            "metadata.resource_version",
                            "Not a valid string.",
                        )
                        .into());
                    }
                }
            }
        }
        let decoded = decode::<R>(probe)?;
        Ok((
            PutBody {
                value,
                omitted_status,
                omitted_metadata,
                resource_version,
            },
            decoded,
        ))
    }

    /// The body with omitted read-only parts taken from `stored`.
    fn complete<R: Resource>(&self, stored: &R) -> Result<R, Error> {
        let mut value = self.value.clone();
        let stored_value =
            serde_json::to_value(stored).map_err(|e| Error::Internal(e.to_string()))?;
        if let (Value::Object(map), Value::Object(stored_map)) = (&mut value, &stored_value) {
            if self.omitted_status
                && let Some(status) = stored_map.get("status")
            {
                map.insert("status".into(), status.clone());
            }
            if let (Some(Value::Object(meta)), Some(Value::Object(stored_meta))) =
                (map.get_mut("metadata"), stored_map.get("metadata"))
            {
                meta.remove("resource_version");
                for key in &self.omitted_metadata {
                    if let Some(v) = stored_meta.get(*key) {
                        meta.insert((*key).to_string(), v.clone());
                    }
                }
            }
        }
        Ok(decode::<R>(value)?)
    }

    fn check_precondition(&self, revision: i64) -> Result<(), Error> {
        match &self.resource_version {
            Some(rv) if rv != &revision.to_string() => Err(Error::Transaction(format!(
                "The object has been modified: resource_version {rv} is not the current {revision}; read it again and retry."
            ))),
            _ => Ok(()),
        }
    }
}

fn immutable(field: &str) -> Error {
    Error::bad_update(format!("Trying to update an immutable field: {field}"))
}

/// POST on a collection.
pub async fn create<R: ApiKind>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: CollectionPath<R>,
    query: RawQuery,
    body: Bytes,
) -> Result<Response, Error> {
    authorize_route::<R>(&state, &caller, path.namespace(), R::PLURAL, Verb::Create)?;
    // Refused before anything is written.
    let CreateOptions { blocking } = CreateOptions::parse::<R>(&query)?;
    let mut object = decode_create::<R>(parse_json(&body)?)?;
    let namespace = path.namespace().map(str::to_string);
    initialize_new(&mut object, namespace.clone());
    let name = object.metadata().name.clone();
    let key = R::key(namespace.as_deref(), &name);

    let waiter = match &blocking {
        Some(_) => Some(BlockingWait::subscribe::<R>(&state, &key).await?),
        None => None,
    };

    match state
        .store
        .create(&key, encode_for_storage(&mut object))
        .await?
    {
        WriteOutcome::Written(rev) => {
            object.metadata_mut().resource_version = Some(rev.to_string())
        }
        WriteOutcome::Conflict => {
            return Err(Error::AlreadyExists {
                kind: R::KIND,
                name,
                namespace,
            });
        }
    }
    tracing::info!(kind = R::KIND, name = %object.metadata().name, namespace = ?namespace, "created");
    match (blocking, waiter) {
        (Some(wanted), Some(waiter)) => waiter.wait_for_state(&state, &wanted, object).await,
        _ => Ok(object_response(&object)),
    }
}

/// GET on an object.
pub async fn read<R: ApiKind>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<R>,
) -> Result<Response, Error> {
    authorize_route::<R>(&state, &caller, path.namespace(), R::PLURAL, Verb::Get)?;
    let loaded = state
        .objects
        .load::<R>(path.namespace(), path.name())
        .await?;
    Ok(object_response(&loaded.object))
}

/// GET on a collection (of a namespace for namespaced kinds): a list, or a watch with
/// `?watch`.
pub async fn list<R: ApiKind>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: CollectionPath<R>,
    query: RawQuery,
    connection: Option<Extension<ConnectionHandle>>,
) -> Result<Response, Error> {
    let connection = connection.map(|Extension(c)| c);
    list_or_watch::<R>(state, caller, path.namespace(), query, connection).await
}

/// GET on the all-namespaces collection of a namespaced kind: only the namespaces the
/// caller may list (upstream shows all).
pub async fn list_all<R: ApiKind>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: RawQuery,
    connection: Option<Extension<ConnectionHandle>>,
) -> Result<Response, Error> {
    let connection = connection.map(|Extension(c)| c);
    list_or_watch::<R>(state, caller, None, query, connection).await
}

/// A list or watch of kind `R` in `namespace`; across all namespaces when a namespaced
/// kind has none (only [`list_all`] passes none for those).
async fn list_or_watch<R: ApiKind>(
    state: AppState,
    caller: Caller,
    namespace: Option<&str>,
    query: RawQuery,
    connection: Option<ConnectionHandle>,
) -> Result<Response, Error> {
    authorize_route::<R>(&state, &caller, namespace, R::PLURAL, Verb::List)?;
    let options = ListOptions::parse(&query)?;
    let scope = if R::NAMESPACED && namespace.is_none() {
        state
            .authorizer
            .visible_namespaces(&caller, R::API, R::PLURAL)
    } else {
        NamespaceScope::All
    };
    if options.watch {
        let watch_options = watch::WatchOptions {
            heartbeat: options.heartbeat,
            resource_version: options.resource_version,
        };
        return watch::watch::<R>(
            state,
            namespace.map(str::to_string),
            scope,
            watch_options,
            connection,
        )
        .await;
    }
    let (kvs, revision) = state.store.list(&R::prefix(namespace)).await?;
    // Items are decoded and written one at a time, so a large list never holds every
    // decoded object at once; the output is the list object upstream sends.
    let mut body =
        Vec::with_capacity(kvs.iter().map(|kv| kv.value.len() + 32).sum::<usize>() + 128);
    body.extend_from_slice(
        format!(
            "{{\"api\": \"{}\", \"kind\": \"{}List\", \"metadata\": {{\"resource_version\": \"{revision}\"}}, \"items\": [",
            R::API,
            R::KIND
        )
        .as_bytes(),
    );
    let mut first = true;
    for kv in &kvs {
        match R::parse_key(&kv.key) {
            Some((ns, _)) if scope.contains(ns) => {}
            _ => continue,
        }
        // One undecodable stored object must not make its whole namespace unlistable:
        // it is left out, logged with its key and counted
        // (`krake_api_undecodable_stored_objects_total`); reading it alone answers 500.
        let object = match decode_stored::<R>(kv) {
            Ok(object) => object,
            Err(e) => {
                tracing::error!(kind = R::KIND, key = %kv.key, error = %e, "undecodable stored object left out of a list");
                state.metrics.undecodable_object(R::KIND);
                continue;
            }
        };
        if !first {
            body.extend_from_slice(b", ");
        }
        first = false;
        krake_crds::json::write_to(&mut body, &object);
    }
    body.extend_from_slice(b"]}");
    Ok(json_response(StatusCode::OK, body))
}

/// PUT on an object: update of the client-writable fields (spec, labels, finalizers,
/// owners); everything else is immutable or server-managed.
pub async fn update<R: ApiKind>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<R>,
    body: Bytes,
) -> Result<Response, Error> {
    authorize_route::<R>(&state, &caller, path.namespace(), R::PLURAL, Verb::Update)?;
    let (put, _) = PutBody::parse::<R>(&body, false)?;
    let (namespace, name) = (path.namespace(), path.name());
    state
        .objects
        .retrying(|| async {
            let Loaded {
                object: stored,
                revision,
            } = state.objects.load::<R>(namespace, name).await?;
            put.check_precondition(revision)?;
            let body = put.complete(&stored)?;
            let stored_meta = stored.metadata();
            let body_meta = body.metadata();
            if stored_meta.deleted.is_some()
                && !body_meta
                    .finalizers
                    .iter()
                    .all(|f| stored_meta.finalizers.contains(f))
            {
                return Err(Error::conflicting_update(
                    "Finalizers can only be removed if a deletion is in progress.",
                ));
            }
            let mut unchanged = stored.clone();
            unchanged.metadata_mut().resource_version = None;
            if body == unchanged {
                if R::NOOP_UPDATE_OK {
                    return Ok(Some(object_response(&stored)));
                }
                return Err(Error::bad_update("The body contained no update."));
            }
            if body_meta.name != name {
                return Err(immutable("name"));
            }
            if body_meta.namespace != stored_meta.namespace {
                return Err(immutable("namespace"));
            }
            let mut merged = stored.clone();
            merged.merge_spec_from(&body).map_err(|f| immutable(f.0))?;
            {
                let meta = merged.metadata_mut();
                meta.labels = body_meta.labels.clone();
                meta.inherit_labels = body_meta.inherit_labels;
                meta.finalizers = body_meta.finalizers.clone();
                meta.owners = body_meta.owners.clone();
                meta.modified = Timestamp::now();
            }
            let done =
                if merged.metadata().deleted.is_some() && merged.metadata().finalizers.is_empty() {
                    // The last finalizer is gone: the object leaves the store; the answer
                    // carries the removal's revision, as the DELETED event does.
                    state.objects.remove(&merged, revision).await?.map(|rev| {
                        merged.metadata_mut().resource_version = Some(rev.to_string());
                    })
                } else {
                    state
                        .objects
                        .write(&mut merged, revision)
                        .await?
                        .map(|_| ())
                };
            match done {
                Some(()) => Ok(Some(object_response(&merged))),
                None if put.resource_version.is_some() => Err(Error::Transaction(
                    "The object has been modified concurrently; read it again and retry.".into(),
                )),
                None => Ok(None),
            }
        })
        .await
}

/// PUT on `…/status`: replace the status (controllers report through it).
pub async fn update_status<R: ApiKind>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<R>,
    body: Bytes,
) -> Result<Response, Error> {
    let resource = format!("{}/status", R::PLURAL);
    authorize_route::<R>(&state, &caller, path.namespace(), &resource, Verb::Update)?;
    let (put, body) = PutBody::parse::<R>(&body, true)?;
    let (namespace, name) = (path.namespace(), path.name());
    state
        .objects
        .retrying(|| async {
            let Loaded {
                object: mut merged,
                revision,
            } = state.objects.load::<R>(namespace, name).await?;
            put.check_precondition(revision)?;
            merged
                .merge_status_from(&body)
                .map_err(|f| immutable(f.0))?;
            Ok(state
                .objects
                .write(&mut merged, revision)
                .await?
                .map(|_| object_response(&merged)))
        })
        .await
}

/// DELETE on an object: marks it deleted (with the `cascade_deletion` finalizer) so that
/// the garbage collector and controllers clean up first; `?force=True` removes it at once.
pub async fn delete<R: ApiKind>(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<R>,
    query: RawQuery,
) -> Result<Response, Error> {
    authorize_route::<R>(&state, &caller, path.namespace(), R::PLURAL, Verb::Delete)?;
    let DeleteOptions { blocking, force } = DeleteOptions::parse::<R>(&query)?;
    let (namespace, name) = (path.namespace(), path.name());
    let key = R::key(namespace, name);
    let waiter = match &blocking {
        Some(_) => Some(BlockingWait::subscribe::<R>(&state, &key).await?),
        None => None,
    };
    let object = state
        .objects
        .retrying(|| async {
            let Loaded {
                mut object,
                revision,
            } = state.objects.load::<R>(namespace, name).await?;
            if force {
                object.metadata_mut().deleted = Some(Timestamp::now());
                // The answer carries the removal's revision, as the DELETED event does:
                // a client can watch on from it.
                return Ok(state.objects.remove(&object, revision).await?.map(|rev| {
                    object.metadata_mut().resource_version = Some(rev.to_string());
                    object
                }));
            }
            if object.metadata().deleted.is_some() {
                return Ok(Some(object));
            }
            object.metadata_mut().deleted = Some(Timestamp::now());
            object
                .metadata_mut()
                .finalizers
                .push("cascade_deletion".into());
            object.on_delete();
            Ok(state
                .objects
                .write(&mut object, revision)
                .await?
                .map(|_| object))
        })
        .await?;
    tracing::info!(kind = R::KIND, name = %name, namespace = ?namespace, force, "deletion requested");
    match (blocking, waiter) {
        (Some(wanted), Some(waiter)) => waiter.wait_for_state(&state, &wanted, object).await,
        _ => Ok(object_response(&object)),
    }
}

/// A `?blocking` request waiting for its object to reach a state, subscribed before the
/// write so that no event can slip through.
struct BlockingWait {
    key: String,
    replay: Vec<Arc<CachedEvent>>,
    live: broadcast::Receiver<Arc<CachedEvent>>,
}

impl BlockingWait {
    async fn subscribe<R: Resource>(state: &AppState, key: &str) -> Result<Self, Error> {
        let cache = state.cache::<R>()?;
        cache.wait_established(Duration::from_secs(5)).await?;
        match cache.subscribe(None) {
            Subscription::Cached { replay, live } => Ok(BlockingWait {
                key: key.to_string(),
                replay,
                live,
            }),
            Subscription::TooOld => Err(Error::Internal(
                "fresh subscription cannot be too old".into(),
            )),
        }
    }

    /// Wait until the object reaches `wanted` (a state name, or `DELETED` for removal);
    /// answer with the object at that point.
    async fn wait_for_state<R: Resource>(
        mut self,
        state: &AppState,
        wanted: &str,
        requested: R,
    ) -> Result<Response, Error> {
        let timeout = state.config.blocking_timeout;
        let shutdown = state.shutdown.clone();
        let wait = async {
            let mut pending = std::mem::take(&mut self.replay).into_iter();
            loop {
                let event = match pending.next() {
                    Some(e) => e,
                    None => match self.live.recv().await {
                        Ok(e) => e,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => {
                            return Err(Error::StorageUnavailable(
                                "watch closed while blocking".into(),
                            ));
                        }
                    },
                };
                if event.key != self.key {
                    continue;
                }
                if wanted == "DELETED" {
                    if event.event_type == EventType::Deleted {
                        return Ok(None);
                    }
                } else if event.event_type != EventType::Deleted && event.state == Some(wanted) {
                    return Ok(Some(event.object.clone()));
                }
            }
        };
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout, wait) => r.map_err(|_| Error::BlockingTimeout(timeout.as_secs()))?,
            _ = shutdown.cancelled() => return Err(Error::StorageUnavailable("server shutting down".into())),
        }?;
        match outcome {
            Some(object) => Ok(json_response(StatusCode::OK, object.to_vec())),
            None => {
                // Upstream answers with the requested object, its state set to DELETED.
                let mut value =
                    serde_json::to_value(&requested).map_err(|e| Error::Internal(e.to_string()))?;
                if let Some(status) = value.get_mut("status").and_then(Value::as_object_mut) {
                    status.insert("state".into(), Value::String("DELETED".into()));
                }
                Ok(json_response(
                    StatusCode::OK,
                    krake_crds::json::to_vec(&value),
                ))
            }
        }
    }
}
