//! Kind-specific subresources: bindings (scheduler decisions) and the Application hook
//! endpoints `complete`, `shutdown` and `retry`, with upstream's semantics.

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use krake_crds::infrastructure::CloudBinding;
use krake_crds::kubernetes::{
    Application, ApplicationState, Cluster, ClusterBinding, Complete, Shutdown,
};
use krake_crds::openstack::{MagnumCluster, MagnumClusterBinding};
use krake_crds::{Resource, ResourceRef, Timestamp, decode_request};

use super::params::{ObjectPath, parse_json};
use super::state::{AppState, authorize_route, object_response};
use crate::auth::{Caller, Verb};
use crate::error::Error;
use crate::storage::codec::Loaded;

fn authorize_sub<R: Resource>(
    state: &AppState,
    caller: &Caller,
    path: &ObjectPath<R>,
    sub: &str,
) -> Result<(), Error> {
    let resource = format!("{}/{}", R::PLURAL, sub);
    authorize_route::<R>(state, caller, path.namespace(), &resource, Verb::Update)
}

/// Load, change and conditionally write an object, retrying on concurrent writes.
async fn modify<R: Resource>(
    state: &AppState,
    namespace: Option<&str>,
    name: &str,
    change: impl Fn(&mut R) -> Result<(), Error>,
) -> Result<Response, Error> {
    state
        .objects
        .retrying(|| async {
            let Loaded {
                mut object,
                revision,
            } = state.objects.load::<R>(namespace, name).await?;
            change(&mut object)?;
            Ok(state
                .objects
                .write(&mut object, revision)
                .await?
                .map(|_| object_response(&object)))
        })
        .await
}

fn add_owner(owners: &mut Vec<ResourceRef>, owner: &ResourceRef) {
    if !owners.contains(owner) {
        owners.push(owner.clone());
    }
}

/// PUT `…/applications/{name}/binding`: the scheduler's decision.
pub async fn application_binding(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<Application>,
    body: Bytes,
) -> Result<Response, Error> {
    authorize_sub::<Application>(&state, &caller, &path, "binding")?;
    let (namespace, name) = (path.namespace(), path.name());
    let binding: ClusterBinding = decode_request(parse_json(&body)?)?;
    modify::<Application>(&state, namespace, name, |app| {
        let now = Timestamp::now();
        app.status.scheduled = Some(now);
        app.status.kube_controller_triggered = Some(now);
        app.status.scheduled_to = Some(binding.cluster.clone());
        add_owner(&mut app.metadata.owners, &binding.cluster);
        Ok(())
    })
    .await
}

/// PUT `…/clusters/{name}/binding`: a Cluster bound to a Cloud.
pub async fn cluster_binding(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<Cluster>,
    body: Bytes,
) -> Result<Response, Error> {
    authorize_sub::<Cluster>(&state, &caller, &path, "binding")?;
    let (namespace, name) = (path.namespace(), path.name());
    let binding: CloudBinding = decode_request(parse_json(&body)?)?;
    modify::<Cluster>(&state, namespace, name, |cluster| {
        cluster.status.scheduled = Some(Timestamp::now());
        cluster.status.scheduled_to = Some(binding.cloud.clone());
        add_owner(&mut cluster.metadata.owners, &binding.cloud);
        Ok(())
    })
    .await
}

/// PUT `…/magnumclusters/{name}/binding`. Upstream loads before parsing here (404 first).
pub async fn magnum_cluster_binding(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<MagnumCluster>,
    body: Bytes,
) -> Result<Response, Error> {
    authorize_sub::<MagnumCluster>(&state, &caller, &path, "binding")?;
    let (namespace, name) = (path.namespace(), path.name());
    state.objects.load::<MagnumCluster>(namespace, name).await?;
    let binding: MagnumClusterBinding = decode_request(parse_json(&body)?)?;
    modify::<MagnumCluster>(&state, namespace, name, |cluster| {
        cluster.status.project = Some(binding.project.clone());
        cluster.status.template = Some(binding.template.clone());
        add_owner(&mut cluster.metadata.owners, &binding.project);
        Ok(())
    })
    .await
}

fn invalid_token() -> Error {
    Error::Unauthorized("No token has been provided or the provided one is invalid.".into())
}

/// PUT `…/applications/{name}/complete`: the workload reports completion.
pub async fn application_complete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<Application>,
    body: Bytes,
) -> Result<Response, Error> {
    authorize_sub::<Application>(&state, &caller, &path, "complete")?;
    let (namespace, name) = (path.namespace(), path.name());
    let complete: Complete = decode_request(parse_json(&body)?)?;
    modify::<Application>(&state, namespace, name, |app| {
        match (&app.status.complete_token, &complete.token) {
            (Some(expected), Some(given)) if expected == given => {}
            _ => return Err(invalid_token()),
        }
        app.status.state = ApplicationState::ReadyForAction;
        app.metadata.deleted = Some(Timestamp::now());
        Ok(())
    })
    .await
}

/// PUT `…/applications/{name}/shutdown`: the workload finished its shutdown.
pub async fn application_shutdown(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<Application>,
    body: Bytes,
) -> Result<Response, Error> {
    authorize_sub::<Application>(&state, &caller, &path, "shutdown")?;
    let (namespace, name) = (path.namespace(), path.name());
    let shutdown: Shutdown = decode_request(parse_json(&body)?)?;
    modify::<Application>(&state, namespace, name, |app| {
        match (&app.status.shutdown_token, &shutdown.token) {
            (Some(expected), Some(given)) if expected == given => {}
            _ => return Err(invalid_token()),
        }
        if matches!(
            app.status.state,
            ApplicationState::WaitingForCleaning | ApplicationState::Degraded
        ) {
            app.status.state = ApplicationState::ReadyForAction;
            app.status.shutdown_grace_period = None;
        }
        Ok(())
    })
    .await
}

/// PUT `…/applications/{name}/retry`: retry a failed migration or deletion.
pub async fn application_retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    path: ObjectPath<Application>,
) -> Result<Response, Error> {
    // Upstream checks `applications/status` for this endpoint.
    authorize_sub::<Application>(&state, &caller, &path, "status")?;
    let (namespace, name) = (path.namespace(), path.name());
    modify::<Application>(&state, namespace, name, |app| {
        if app.status.state != ApplicationState::Degraded {
            return Err(Error::bad_update("No migration or deletion retry needed"));
        }
        app.status.state = ApplicationState::WaitingForCleaning;
        app.status.shutdown_grace_period = None;
        Ok(())
    })
    .await
}
