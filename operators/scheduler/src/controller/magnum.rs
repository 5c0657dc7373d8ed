//! The Magnum handler: MagnumClusters → OpenStack Projects.

use std::sync::Arc;

use krake_crds::openstack::{MagnumCluster, Project};
use krake_runtime::{Action, ObjectRef};

use super::Context;
use crate::error::{Error, Result};
use crate::magnum::{
    ProjectCandidate, magnum_failure_status, magnum_needs_project, select_project,
    with_project_values,
};
use crate::model::resource_ref;

/// Reconcile one Magnum cluster.
pub(super) async fn reconcile(cluster: Arc<MagnumCluster>, ctx: Arc<Context>) -> Result<Action> {
    if !magnum_needs_project(&cluster) {
        return Ok(Action::await_change());
    }
    let key = ObjectRef::from_obj(cluster.as_ref());
    let namespace = cluster.metadata.namespace.as_deref().unwrap_or_default();
    let projects = ctx.projects.filter(|p| {
        p.metadata.namespace.as_deref() == Some(namespace) && p.metadata.deleted.is_none()
    });
    let fetches = projects.iter().map(|project| {
        let ctx = &ctx;
        async move {
            let metrics = ctx
                .fetch(project.metadata.namespace.as_deref(), &project.spec.metrics)
                .await?;
            ctx.write_metrics_status(project.as_ref(), &metrics, |p: &mut Project| &mut p.status)
                .await;
            Ok::<_, Error>(ProjectCandidate {
                project: project.as_ref().clone(),
                metrics,
            })
        }
    });
    let candidates = futures::future::join_all(fetches)
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    match select_project(&cluster, &candidates, ctx.chooser.as_ref()) {
        Ok(project) => {
            if let Some(updated) = with_project_values(&cluster, project) {
                ctx.client.api::<MagnumCluster>().update(&updated).await?;
            }
            ctx.client
                .bind_magnum_cluster(
                    namespace,
                    &cluster.metadata.name,
                    resource_ref(project),
                    project.spec.template.clone(),
                )
                .await?;
            tracing::info!(cluster = %key, project = %project.metadata.name, "Magnum cluster bound");
            Ok(Action::await_change())
        }
        Err(error @ Error::NoSuitableResource(_)) => {
            let mut failed = cluster.as_ref().clone();
            failed.status = magnum_failure_status(&cluster, &error);
            ctx.client
                .api::<MagnumCluster>()
                .update_status(&failed)
                .await?;
            tracing::info!(cluster = %key, %error, "no project for the Magnum cluster");
            Ok(Action::await_change())
        }
        Err(error) => Err(error),
    }
}
