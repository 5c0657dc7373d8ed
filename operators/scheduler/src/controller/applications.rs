//! The application handler: Applications → Clusters.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use krake_crds::ResourceRef;
use krake_crds::kubernetes::{Application, ApplicationState, Cluster, ClusterState};
use krake_runtime::{Action, Change, ObjectRef, Store};
use serde_json::{Map, Value};

use super::{Context, until};
use crate::application::{
    Admission, CloudCandidate, Gate, Placement, RetryGate, Write, admit_application, auto_cluster,
    confirmed_status, decision_write, failure_status, hold_write, retry_gate, scheduling_gate,
    select_placement, waiting_cluster, waiting_for_cluster_status,
};
use crate::candidates::Fetched;
use crate::error::{Error, Result};
use crate::inheritance::{bound_cloud, with_inherited_values};
use crate::matching::{custom_resources_match, labels_match};
use crate::model::AnyCloud;

/// Shortest delay between two scheduling attempts of a DEGRADED application (a zero
/// `backoff_delay` must not make the handler spin).
const MIN_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Attempts at creating a cluster with a fresh random name (automatic cluster creation).
const CLUSTER_CREATION_ATTEMPTS: usize = 3;

fn refers_to(reference: &Option<ResourceRef>, cluster: &Cluster) -> bool {
    reference.as_ref().is_some_and(|r| {
        r.kind == "Cluster"
            && r.name == cluster.metadata.name
            && r.namespace == cluster.metadata.namespace
    })
}

/// The applications to look at when a cluster changes: those placed on it (its state,
/// labels or spec changed, or it was deleted), and, when it appears or changes, those of
/// its namespace that are not placed yet or wait for it to be created.
pub(super) fn affected_by_cluster_change(
    apps: &Store<Application>,
    change: &Change<Cluster>,
) -> Vec<ObjectRef<Application>> {
    let (cluster, placed, unplaced) = match change {
        Change::Added(c) => (c, false, true),
        Change::Deleted(c) => (c, true, false),
        Change::Modified { old, new } => {
            let relevant = old.status.state != new.status.state
                || old.metadata.labels != new.metadata.labels
                || old.metadata.deleted != new.metadata.deleted
                || old.spec != new.spec;
            if !relevant {
                return Vec::new();
            }
            (new, true, true)
        }
    };
    apps.filter(|app| {
        app.metadata.namespace == cluster.metadata.namespace
            && app.metadata.deleted.is_none()
            && ((placed && refers_to(&app.status.scheduled_to, cluster))
                || (unplaced && app.status.scheduled_to.is_none())
                || app.status.auto_cluster_create_started.as_deref()
                    == Some(cluster.metadata.name.as_str()))
    })
    .iter()
    .map(|app| ObjectRef::from_obj(app.as_ref()))
    .collect()
}

/// When the next periodic re-evaluation of a placed application is due:
/// `reschedule_after` after its binding and after its last evaluation by this process.
fn reevaluation_due(
    ctx: &Context,
    key: &ObjectRef<Application>,
    app: &Application,
) -> DateTime<Utc> {
    let after = |t: DateTime<Utc>| {
        t + chrono::Duration::from_std(ctx.config.reschedule_after).unwrap_or(chrono::Duration::MAX)
    };
    let scheduled = app.status.scheduled.map(|s| after(s.to_utc()));
    let evaluated = ctx.last_evaluated(key).map(after);
    scheduled.max(evaluated).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether the cluster an application is placed on is still ONLINE and still matches
/// its label and custom-resource constraints (metric constraints are checked at the
/// periodic re-evaluation).
fn current_cluster_fits(ctx: &Context, app: &Application) -> bool {
    let Some(current) = &app.status.scheduled_to else {
        return false;
    };
    let Some(cluster) = ctx
        .clusters
        .get_named(current.namespace.as_deref(), &current.name)
    else {
        return false;
    };
    if cluster.metadata.deleted.is_some() || cluster.status.state != ClusterState::Online {
        return false;
    }
    let clouds = ctx.clouds_for(cluster.metadata.namespace.as_deref());
    let cluster = with_inherited_values(&cluster, bound_cloud(&cluster, &clouds));
    let constraints = &app.spec.constraints.cluster;
    labels_match(constraints.labels.as_deref(), &cluster.metadata.labels)
        && custom_resources_match(
            &constraints.custom_resources,
            &cluster.spec.custom_resources,
        )
}

/// Reconcile one application.
pub(super) async fn reconcile(app: Arc<Application>, ctx: Arc<Context>) -> Result<Action> {
    let key = ObjectRef::from_obj(app.as_ref());
    let now = Utc::now();
    match admit_application(&app) {
        Admission::Forget | Admission::Ignore => {
            ctx.forget(&key);
            return Ok(Action::await_change());
        }
        Admission::Reevaluate => {
            let due = reevaluation_due(&ctx, &key, &app);
            if due > now && current_cluster_fits(&ctx, &app) {
                return Ok(Action::requeue(until(due, now)));
            }
        }
        Admission::Schedule => {}
    }
    if let RetryGate::At(at) = retry_gate(&app, now) {
        return Ok(Action::requeue(until(at, now).max(MIN_RETRY_DELAY)));
    }
    if scheduling_gate(&app, now) == Gate::Hold {
        if hold_write(&app) == Write::Confirm {
            ctx.client
                .api::<Application>()
                .update_status(&with_status(&app, confirmed_status(&app, now)))
                .await?;
            tracing::info!(app = %key, "update confirmed, placement held");
        }
        ctx.mark_evaluated(key, now);
        let backoff_end = app.status.migration_timeout;
        if app.spec.constraints.migration && backoff_end > now.timestamp() {
            let at = DateTime::<Utc>::from_timestamp(backoff_end, 0).unwrap_or(now);
            return Ok(Action::requeue(until(at, now).max(MIN_RETRY_DELAY)));
        }
        return Ok(Action::await_change());
    }

    match schedule(&app, &ctx, now).await {
        Ok(()) => {
            ctx.mark_evaluated(key, now);
            if app.spec.constraints.migration {
                Ok(Action::requeue(ctx.config.reschedule_after))
            } else {
                Ok(Action::await_change())
            }
        }
        Err(Error::WaitingOnCluster(cluster)) => {
            tracing::debug!(app = %key, %cluster, "waiting for the cluster to be created");
            Ok(Action::requeue(ctx.config.waiting_on_cluster_delay))
        }
        Err(error) if error.is_recorded() => record_failure(&app, &ctx, &error, now).await,
        Err(error) => Err(error),
    }
}

fn with_status(
    app: &Application,
    status: krake_crds::kubernetes::ApplicationStatus,
) -> Application {
    let mut updated = app.clone();
    updated.status = status;
    updated
}

/// Write DEGRADED/FAILED with the reason and retry after the backoff.
/// An application already DEGRADED for the same reason with infinite retries is not
/// rewritten on every attempt.
async fn record_failure(
    app: &Application,
    ctx: &Context,
    error: &Error,
    now: DateTime<Utc>,
) -> Result<Action> {
    let key = ObjectRef::from_obj(app);
    let status = failure_status(app, error, now);
    let unchanged = app.spec.backoff_limit == -1
        && app.status.state == ApplicationState::Degraded
        && status.state == ApplicationState::Degraded
        && app.status.reason == status.reason
        && app.status.retries == status.retries;
    let state = status.state;
    if !unchanged {
        ctx.client
            .api::<Application>()
            .update_status(&with_status(app, status))
            .await?;
        tracing::info!(app = %key, %state, %error, "scheduling failed");
    }
    if state == ApplicationState::Degraded {
        let delay = app
            .spec
            .backoff_delay
            .max(0)
            .saturating_mul(app.spec.backoff.max(0));
        Ok(Action::requeue(
            Duration::from_secs(delay.unsigned_abs()).max(MIN_RETRY_DELAY),
        ))
    } else {
        Ok(Action::await_change())
    }
}

/// Clouds with their metric outcomes (automatic cluster creation); writes the
/// metric-driven status changes.
pub(super) async fn cloud_candidates(
    ctx: &Context,
    clouds: &[AnyCloud],
) -> Result<Vec<CloudCandidate>> {
    let fetches = clouds
        .iter()
        .filter(|c| c.metadata().deleted.is_none())
        .map(|cloud| async move {
            let metrics = ctx.fetch(cloud.namespace(), cloud.metrics()).await?;
            match cloud {
                AnyCloud::Namespaced(c) => {
                    ctx.write_metrics_status(
                        c,
                        &metrics,
                        |c: &mut krake_crds::infrastructure::Cloud| &mut c.status,
                    )
                    .await
                }
                AnyCloud::Global(c) => {
                    ctx.write_metrics_status(
                        c,
                        &metrics,
                        |c: &mut krake_crds::infrastructure::GlobalCloud| &mut c.status,
                    )
                    .await
                }
            }
            Ok(CloudCandidate {
                cloud: cloud.clone(),
                metrics,
            })
        });
    futures::future::join_all(fetches)
        .await
        .into_iter()
        .collect()
}

/// Run the scheduling algorithm and write its decision.
async fn schedule(app: &Application, ctx: &Context, now: DateTime<Utc>) -> Result<()> {
    let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    let name = app.metadata.name.as_str();
    if let Some(ready) = waiting_cluster(
        app,
        app.status
            .auto_cluster_create_started
            .as_deref()
            .and_then(|cluster| ctx.clusters.get_named(Some(namespace), cluster))
            .as_deref(),
    ) {
        let cluster = ready?;
        let mut bound = ctx
            .client
            .bind_application(namespace, name, cluster.clone())
            .await?;
        bound.status.auto_cluster_create_started = None;
        ctx.client
            .api::<Application>()
            .update_status(&bound)
            .await?;
        tracing::info!(app = %format!("{namespace}/{name}"), cluster = %cluster.name, "bound to the created cluster");
        return Ok(());
    }

    let Fetched {
        candidates,
        status_writes,
    } = ctx.candidates.of_namespace(namespace).await?;
    for write in status_writes {
        ctx.write_status_change(&write.cluster, &write.update).await;
    }
    let cloud_candidates = if app.spec.auto_cluster_create {
        cloud_candidates(ctx, &candidates.clouds).await?
    } else {
        Vec::new()
    };
    let placement = select_placement(
        app,
        &candidates.clusters,
        &cloud_candidates,
        now,
        &ctx.config,
        ctx.chooser.as_ref(),
    )?;
    match placement {
        Placement::Cluster(cluster) => match decision_write(app, &cluster) {
            Write::Bind(cluster) => {
                let previous = app.status.scheduled_to.as_ref().map(|r| r.name.clone());
                ctx.client
                    .bind_application(namespace, name, cluster.clone())
                    .await?;
                tracing::info!(
                    app = %format!("{namespace}/{name}"),
                    cluster = %cluster.name,
                    previous = previous.as_deref().unwrap_or(""),
                    "application bound"
                );
            }
            Write::Confirm => {
                ctx.client
                    .api::<Application>()
                    .update_status(&with_status(app, confirmed_status(app, now)))
                    .await?;
                tracing::info!(app = %format!("{namespace}/{name}"), cluster = %cluster.name, "update confirmed");
            }
            Write::Nothing => {
                tracing::debug!(app = %format!("{namespace}/{name}"), cluster = %cluster.name, "placement unchanged");
            }
        },
        Placement::Cloud(cloud) => create_cluster(app, ctx, cloud).await?,
    }
    Ok(())
}

/// The TOSCA template of automatically created clusters (YAML or JSON file).
async fn load_tosca(ctx: &Context) -> Result<Map<String, Value>> {
    let path = ctx.config.tosca_file.as_ref().ok_or_else(|| {
        Error::ClusterCreation(
            "automatic cluster creation needs a TOSCA template (tosca_file)".into(),
        )
    })?;
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| Error::ClusterCreation(format!("cannot read {}: {e}", path.display())))?;
    match serde_saphyr::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::ClusterCreation(format!(
            "{} does not hold a TOSCA template object",
            path.display()
        ))),
        Err(e) => Err(Error::ClusterCreation(format!(
            "invalid TOSCA template {}: {e}",
            path.display()
        ))),
    }
}

/// Create a cluster on `cloud` for the application, bind it to that cloud and mark
/// the application WAITING_FOR_CLUSTER_CREATION.
async fn create_cluster(app: &Application, ctx: &Context, cloud: ResourceRef) -> Result<()> {
    let tosca = load_tosca(ctx).await?;
    let namespace = app.metadata.namespace.as_deref().unwrap_or_default();
    for attempt in 1..=CLUSTER_CREATION_ATTEMPTS {
        let name = format!("cluster-{}", 1000 + ctx.chooser.choose(9000));
        let cluster = auto_cluster(app, &name, tosca.clone());
        match ctx.client.api::<Cluster>().create(&cluster).await {
            Ok(_) => {
                if let Err(e) = ctx
                    .client
                    .bind_cluster(namespace, &name, cloud.clone())
                    .await
                {
                    // The cluster handler binds it then.
                    tracing::warn!(cluster = %name, error = %e, "cannot bind the created cluster");
                }
                let mut waiting = app.clone();
                waiting.status = waiting_for_cluster_status(app, &name);
                // Unconditional: a retry after a conflict would create another cluster.
                waiting.metadata.resource_version = None;
                ctx.client
                    .api::<Application>()
                    .update_status(&waiting)
                    .await?;
                tracing::info!(app = %format!("{namespace}/{}", app.metadata.name), cluster = %name, cloud = %cloud.name, "cluster creation started");
                return Err(Error::WaitingOnCluster(name));
            }
            Err(e) => {
                tracing::warn!(cluster = %name, attempt, error = %e, "cannot create cluster");
            }
        }
    }
    Err(Error::ClusterCreation(format!(
        "automatic cluster creation failed after {CLUSTER_CREATION_ATTEMPTS} attempts"
    )))
}

#[cfg(test)]
mod tests {
    use krake_runtime::Writer;

    use super::*;
    use crate::model::fixtures::{app, cluster};
    use crate::model::resource_ref;

    fn keys(mut keys: Vec<ObjectRef<Application>>) -> Vec<String> {
        keys.sort();
        keys.into_iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn cluster_changes_wake_the_applications_concerned() {
        let target = cluster("target", &[]);
        let mut writer = Writer::<Application>::new();
        let mut placed = app("placed");
        placed.status.scheduled_to = Some(resource_ref(&target));
        let mut elsewhere = app("elsewhere");
        elsewhere.status.scheduled_to = Some(resource_ref(&cluster("other", &[])));
        let unplaced = app("unplaced");
        let mut waiting = app("waiting");
        waiting.status.scheduled_to = Some(resource_ref(&cluster("other", &[])));
        waiting.status.auto_cluster_create_started = Some("target".into());
        let mut foreign = app("foreign");
        foreign.metadata.namespace = Some("other".into());
        let mut deleted = app("deleted");
        deleted.metadata.deleted = Some(krake_crds::Timestamp::now());
        for a in [placed, elsewhere, unplaced, waiting, foreign, deleted] {
            writer.upsert(a);
        }
        let apps = writer.store();
        let arc = |c: &Cluster| Arc::new(c.clone());

        assert_eq!(
            keys(affected_by_cluster_change(
                &apps,
                &Change::Added(arc(&target))
            )),
            vec!["ns/unplaced", "ns/waiting"]
        );
        assert_eq!(
            keys(affected_by_cluster_change(
                &apps,
                &Change::Deleted(arc(&target))
            )),
            vec!["ns/placed", "ns/waiting"]
        );
        let mut offline = target.clone();
        offline.status.state = ClusterState::Offline;
        assert_eq!(
            keys(affected_by_cluster_change(
                &apps,
                &Change::Modified {
                    old: arc(&target),
                    new: arc(&offline)
                }
            )),
            vec!["ns/placed", "ns/unplaced", "ns/waiting"]
        );
        // A status change other than the state (nodes, reasons...) wakes nobody.
        let mut nodes = target.clone();
        nodes.status.cluster_id = Some("id".into());
        assert!(
            affected_by_cluster_change(
                &apps,
                &Change::Modified {
                    old: arc(&target),
                    new: arc(&nodes)
                }
            )
            .is_empty()
        );
    }
}
