//! Finalizers, Krake's way (kube-runtime's `finalizer` helper, adapted).
//!
//! Krake treats `metadata.finalizers` as a stack: on DELETE the API sets
//! `metadata.deleted` and appends `cascade_deletion`; each controller acts on a deleted
//! object only while *its* finalizer is the last one, then pops it; the API removes the
//! object once no finalizer is left. While an object is deleted the API accepts only
//! removals of finalizers.

use std::future::Future;
use std::sync::Arc;

use krake_client::Api;
use krake_crds::Resource;

use crate::controller::{Action, ReconcileError};

/// Conditional updates attempted to pop a finalizer before giving up (the reconcile
/// then fails and is retried later).
const REMOVE_ATTEMPTS: u32 = 5;

/// What [`finalizer`] asks the reconcile to do.
#[derive(Debug)]
pub enum Event<R> {
    /// The object is not deleted: bring the world in line with it.
    ///
    /// The finalizer is **not** added here. Krake's API appends `cascade_deletion`
    /// itself on DELETE, and a controller that holds its own finalizer (the Kubernetes
    /// application controller's `kubernetes_resources_deletion`) adds it at the step of
    /// its flow where it starts creating external state, with [`add_finalizer`]; adding
    /// it to every object on sight would block the deletion of objects it never
    /// touched.
    Apply(Arc<R>),
    /// The object is deleted and the finalizer is the last one: release what the
    /// controller holds for it. On success the finalizer is popped.
    Cleanup(Arc<R>),
}

/// Why [`finalizer`] failed.
#[derive(Debug, thiserror::Error)]
pub enum FinalizerError<E> {
    /// The reconcile of [`Event::Apply`] failed.
    #[error("apply failed: {0}")]
    ApplyFailed(#[source] E),
    /// The reconcile of [`Event::Cleanup`] failed; the finalizer stays.
    #[error("cleanup failed: {0}")]
    CleanupFailed(#[source] E),
    /// Removing (or adding) the finalizer failed.
    #[error("cannot update the finalizers: {0}")]
    Update(#[source] krake_client::Error),
    /// Removing the finalizer kept conflicting with concurrent writes.
    #[error("{object}: {attempts} conditional updates in a row conflicted with concurrent writes")]
    Conflicts {
        /// The object (`namespace/name`).
        object: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl<E: ReconcileError> ReconcileError for FinalizerError<E> {
    fn kind(&self) -> String {
        match self {
            FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e.kind(),
            FinalizerError::Update(e) => e.kind(),
            FinalizerError::Conflicts { .. } => "conflict".into(),
        }
    }
}

/// Whether `finalizer` is the one to act on `meta` now: the object is deleted and
/// `finalizer` is the last of its finalizers.
pub fn is_finalizing(meta: &krake_crds::Metadata, finalizer: &str) -> bool {
    meta.deleted.is_some() && meta.finalizers.last().map(String::as_str) == Some(finalizer)
}

/// Reconcile `obj` as the owner of the finalizer `name`:
///
/// * not deleted → `reconcile(Event::Apply(obj))` (the finalizer is not added: see
///   [`Event::Apply`]);
/// * deleted with `name` as its last finalizer → `reconcile(Event::Cleanup(obj))`, then,
///   if that succeeded, `name` is popped with an update conditional on the object's
///   `resource_version`; on a conflict the object is read again and, while `name` is
///   still its last finalizer, popped again (the cleanup is not repeated);
/// * deleted otherwise (another finalizer is last, or `name` is absent) → nothing: the
///   controller of the last finalizer acts first, and its removal is a change that
///   brings the object back here.
///
/// Returns the reconcile's [`Action`] (`await_change` when nothing was done).
pub async fn finalizer<R, F, Fut, E>(
    api: &Api<R>,
    name: &str,
    obj: Arc<R>,
    reconcile: F,
) -> Result<Action, FinalizerError<E>>
where
    R: Resource,
    F: FnOnce(Event<R>) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
{
    let meta = obj.metadata();
    if meta.deleted.is_none() {
        return reconcile(Event::Apply(obj))
            .await
            .map_err(FinalizerError::ApplyFailed);
    }
    if !is_finalizing(meta, name) {
        return Ok(Action::await_change());
    }
    let action = reconcile(Event::Cleanup(obj.clone()))
        .await
        .map_err(FinalizerError::CleanupFailed)?;
    remove_finalizer(api, name, obj.as_ref().clone()).await?;
    Ok(action)
}

/// Pop `name` from `obj` (read at some version) with conditional updates, reading the
/// object again after each conflict while `name` is still the last finalizer.
async fn remove_finalizer<R: Resource, E>(
    api: &Api<R>,
    name: &str,
    mut obj: R,
) -> Result<(), FinalizerError<E>> {
    let namespace = obj.metadata().namespace.clone().filter(|_| R::NAMESPACED);
    let object = match &namespace {
        Some(ns) => format!("{}/{} {ns}/{}", R::API, R::KIND, obj.metadata().name),
        None => format!("{}/{} {}", R::API, R::KIND, obj.metadata().name),
    };
    for _ in 0..REMOVE_ATTEMPTS {
        if !is_finalizing(obj.metadata(), name) {
            tracing::debug!(%object, finalizer = name, "finalizer no longer last, nothing to remove");
            return Ok(());
        }
        obj.metadata_mut().finalizers.pop();
        match api.update(&obj).await {
            Ok(_) => {
                tracing::info!(%object, finalizer = name, "finalizer removed");
                return Ok(());
            }
            Err(e) if e.is_not_found() => {
                tracing::debug!(%object, "object already gone");
                return Ok(());
            }
            Err(e) if e.is_conflict() => {
                tracing::debug!(%object, error = %e, "finalizer removal conflicted, reading again");
                match api.get(namespace.as_deref(), &obj.metadata().name).await {
                    Ok(fresh) => obj = fresh,
                    Err(e) if e.is_not_found() => return Ok(()),
                    Err(e) => return Err(FinalizerError::Update(e)),
                }
            }
            Err(e) => return Err(FinalizerError::Update(e)),
        }
    }
    Err(FinalizerError::Conflicts {
        object,
        attempts: REMOVE_ATTEMPTS,
    })
}

/// Append the finalizer `name` to `obj` unless it is already there (a conditional
/// update); returns the object as stored. For controllers that hold their own
/// finalizer, at the step where they start creating state that must be cleaned up.
/// Fails with a conflict if `obj` is stale, and (the API refuses new finalizers on
/// deleted objects) if it is being deleted.
pub async fn add_finalizer<R: Resource>(
    api: &Api<R>,
    name: &str,
    obj: &R,
) -> Result<R, krake_client::Error> {
    if obj.metadata().finalizers.iter().any(|f| f == name) {
        return Ok(obj.clone());
    }
    let mut updated = obj.clone();
    updated.metadata_mut().finalizers.push(name.to_string());
    api.update(&updated).await
}
