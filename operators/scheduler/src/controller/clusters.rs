//! The cluster handler: Clusters to be created → Clouds, and the clean-up of unused
//! automatically created clusters.

use std::sync::Arc;

use chrono::Utc;
use krake_crds::kubernetes::Cluster;
use krake_runtime::{Action, ObjectRef};

use super::applications::cloud_candidates;
use super::{Context, until};
use crate::application::auto_cluster_unused;
use crate::cluster::{cluster_failure_status, cluster_needs_cloud, select_cloud};
use crate::error::{Error, Result};

/// Reconcile one cluster.
pub(super) async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action> {
    if cluster_needs_cloud(&cluster) {
        return schedule(&cluster, &ctx).await;
    }
    if cluster.spec.auto_generated
        && cluster.metadata.deleted.is_none()
        && cluster.status.scheduled_to.is_some()
    {
        return retain_or_delete(&cluster, &ctx).await;
    }
    Ok(Action::await_change())
}

async fn schedule(cluster: &Cluster, ctx: &Context) -> Result<Action> {
    let key = ObjectRef::from_obj(cluster);
    let namespace = cluster.metadata.namespace.as_deref().unwrap_or_default();
    let clouds = ctx.clouds_for(Some(namespace));
    let candidates = cloud_candidates(ctx, &clouds).await?;
    match select_cloud(cluster, &candidates, ctx.chooser.as_ref()) {
        Ok(cloud) => {
            ctx.client
                .bind_cluster(namespace, &cluster.metadata.name, cloud.clone())
                .await?;
            tracing::info!(cluster = %key, cloud = %cloud.name, kind = %cloud.kind, "cluster bound");
            if cluster.spec.auto_generated {
                Ok(Action::requeue(ctx.config.deletion_retention))
            } else {
                Ok(Action::await_change())
            }
        }
        Err(error @ Error::NoSuitableResource(_)) => {
            let mut failed = cluster.clone();
            failed.status = cluster_failure_status(cluster, &error);
            ctx.client.api::<Cluster>().update_status(&failed).await?;
            tracing::info!(cluster = %key, %error, "no cloud for the cluster");
            Ok(Action::await_change())
        }
        Err(error) => Err(error),
    }
}

/// An automatically created cluster is deleted once it is older than the retention
/// time and no application of its namespace is scheduled to it, runs on it or waits
/// for it.
async fn retain_or_delete(cluster: &Cluster, ctx: &Context) -> Result<Action> {
    let now = Utc::now();
    let retention =
        chrono::Duration::from_std(ctx.config.deletion_retention).unwrap_or(chrono::Duration::MAX);
    let keep_until = cluster.metadata.created.to_utc() + retention;
    if keep_until > now {
        return Ok(Action::requeue(until(keep_until, now)));
    }
    let apps: Vec<_> = ctx
        .apps
        .filter(|a| a.metadata.namespace == cluster.metadata.namespace)
        .iter()
        .map(|a| a.as_ref().clone())
        .collect();
    if !auto_cluster_unused(cluster, &apps) {
        return Ok(Action::requeue(ctx.config.deletion_retention));
    }
    let namespace = cluster.metadata.namespace.as_deref();
    ctx.client
        .api::<Cluster>()
        .delete(namespace, &cluster.metadata.name, false)
        .await?;
    tracing::info!(cluster = %ObjectRef::from_obj(cluster), "unused automatically created cluster deleted");
    Ok(Action::await_change())
}
