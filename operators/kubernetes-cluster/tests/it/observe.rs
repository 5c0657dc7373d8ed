//! States and transitions of observed clusters, against kube-doubles over TLS.

use std::time::Duration;

use krake_crds::kubernetes::{Cluster, ClusterState};
use kube_double::Fault;
use tokio::time::Instant;

use crate::common::*;

/// Node changes must show through the watch: with probes this rare, only the watch
/// can report them within the test's waits.
const RARE_PROBES: Duration = Duration::from_secs(60);
/// How fast a node change must show in Krake.
const NODE_CHANGE: Duration = Duration::from_secs(1);

#[tokio::test]
async fn node_conditions_drive_the_state_through_the_watch() {
    let env = env().await;
    let double = double("node-1").await;
    let _ctl = Ctl::start(&env.client, RARE_PROBES).await;
    let created = create(&env.client, "c1", kubeconfig(&double)).await;
    assert_eq!(created.status.state, ClusterState::Pending);

    let online = state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    assert_eq!(
        nodes(&online),
        vec![(
            "node-1".to_string(),
            vec!["Ready=True".to_string(), "MemoryPressure=False".to_string()]
        )]
    );
    let node = &online.status.nodes[0];
    assert_eq!(node.api, "kubernetes");
    assert_eq!(node.kind, "ClusterNode");
    let ready = &node.status.as_ref().unwrap().conditions[0];
    assert_eq!(ready.reason, "KubeDoubleReadyTrue");
    assert_eq!(ready.message, "set by the test: Ready=True");
    let first_trigger = online.status.kube_controller_triggered;
    assert!(first_trigger.is_some());

    let changes: [(&[(&str, &str)], ClusterState); 4] = [
        (
            &[("Ready", "True"), ("MemoryPressure", "True")],
            ClusterState::Unhealthy,
        ),
        (
            &[("Ready", "False"), ("MemoryPressure", "False")],
            ClusterState::Notready,
        ),
        (
            &[("Ready", "True"), ("PIDPressure", "True")],
            ClusterState::Unhealthy,
        ),
        (
            &[("Ready", "True"), ("MemoryPressure", "False")],
            ClusterState::Online,
        ),
    ];
    let mut last_trigger = first_trigger;
    for (conditions, expected) in changes {
        let start = Instant::now();
        double.set_node_conditions("node-1", conditions).unwrap();
        // Generous for a loaded machine; the elapsed time is checked below.
        let cluster = state_is(&env.client, "c1", expected, Duration::from_secs(5)).await;
        let elapsed = start.elapsed();
        assert!(
            elapsed <= NODE_CHANGE,
            "{} took {elapsed:?} to show",
            expected.as_str()
        );
        assert_ne!(cluster.status.kube_controller_triggered, last_trigger);
        last_trigger = cluster.status.kube_controller_triggered;
        let expected_conditions: Vec<String> =
            conditions.iter().map(|(t, s)| format!("{t}={s}")).collect();
        assert_eq!(nodes(&cluster)[0].1, expected_conditions);
    }

    // A second node: the nodes change, the state does not, the trigger time stays.
    double
        .set_node_conditions("node-2", &[("Ready", "True")])
        .unwrap();
    let grown = eventually_nodes(&env.client, "c1", 2).await;
    assert_eq!(grown.status.state, ClusterState::Online);
    assert_eq!(grown.status.kube_controller_triggered, last_trigger);
}

async fn eventually_nodes(client: &krake_client::Client, name: &str, count: usize) -> Cluster {
    krake_testkit::eventually(&format!("{count} nodes"), WAIT, || async {
        let c = get(client, name).await;
        if c.status.nodes.len() == count {
            Ok(c)
        } else {
            Err(nodes(&c))
        }
    })
    .await
}

#[tokio::test]
async fn unreachable_goes_offline_within_two_probes_and_comes_back_through_connecting() {
    let env = env().await;
    let double = double("node-1").await;
    let probe = Duration::from_millis(600);
    let _ctl = Ctl::start(&env.client, probe).await;
    create(&env.client, "c1", kubeconfig(&double)).await;
    state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    let log = StateLog::start(&env.client, "c1").await;

    // Connection refused.
    let start = Instant::now();
    double.set_reachable(false).await.unwrap();
    state_is(&env.client, "c1", ClusterState::Offline, WAIT).await;
    let elapsed = start.elapsed();
    assert!(elapsed <= 2 * probe, "OFFLINE after {elapsed:?}");
    double.set_reachable(true).await.unwrap();
    state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    assert_eq!(
        log.states(),
        vec![
            ClusterState::Online,
            ClusterState::Offline,
            ClusterState::Connecting,
            ClusterState::Online
        ]
    );

    // A black hole: the server accepts requests and never answers; the open watch
    // stays silent. Only the probe can notice.
    let start = Instant::now();
    double.set_fault(Fault::Hang);
    state_is(&env.client, "c1", ClusterState::Offline, WAIT).await;
    let elapsed = start.elapsed();
    assert!(elapsed <= 2 * probe, "OFFLINE after {elapsed:?}");

    // Errors: any non-2xx answer is OFFLINE too; recovery goes through CONNECTING.
    double.set_fault(Fault::Status(500));
    tokio::time::sleep(probe).await; // at least one probe answered with 500
    assert_eq!(
        get(&env.client, "c1").await.status.state,
        ClusterState::Offline
    );
    double.set_fault(Fault::None);
    state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    assert_eq!(
        log.states()[3..],
        [
            ClusterState::Online,
            ClusterState::Offline,
            ClusterState::Connecting,
            ClusterState::Online
        ]
    );
}

#[tokio::test]
async fn a_changed_kubeconfig_observes_the_new_server() {
    let env = env().await;
    let first = double("node-a").await;
    let second = double("node-b").await;
    let _ctl = Ctl::start(&env.client, RARE_PROBES).await;
    create(&env.client, "c1", kubeconfig(&first)).await;
    let online = state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    assert_eq!(nodes(&online)[0].0, "node-a");

    let mut switched = online.clone();
    switched.spec.kubeconfig = kubeconfig(&second);
    env.client.api::<Cluster>().update(&switched).await.unwrap();
    krake_testkit::eventually("the second server's nodes", WAIT, || async {
        let c = get(&env.client, "c1").await;
        let names: Vec<String> = nodes(&c).into_iter().map(|(n, _)| n).collect();
        if names == ["node-b"] {
            Ok(())
        } else {
            Err(names)
        }
    })
    .await;

    // The old server no longer counts; the new one does, through its watch.
    first
        .set_node_conditions("node-a", &[("Ready", "False")])
        .unwrap();
    second
        .set_node_conditions("node-b", &[("Ready", "True"), ("DiskPressure", "True")])
        .unwrap();
    state_is(&env.client, "c1", ClusterState::Unhealthy, WAIT).await;
    let cluster = get(&env.client, "c1").await;
    assert_eq!(nodes(&cluster)[0].0, "node-b");
    krake_testkit::eventually("the old server's connections closed", WAIT, || async {
        let open = connections_to(first.addr().port());
        if open == 0 { Ok(()) } else { Err(open) }
    })
    .await;
}

#[tokio::test]
async fn failing_metrics_is_kept_while_the_nodes_follow() {
    let env = env().await;
    let double = double("node-1").await;
    let probe = Duration::from_millis(400);
    let _ctl = Ctl::start(&env.client, probe).await;
    create(&env.client, "c1", kubeconfig(&double)).await;
    let mut cluster = state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    // What the scheduler writes when a metric cannot be fetched.
    cluster.status.state = ClusterState::FailingMetrics;
    env.client
        .api::<Cluster>()
        .update_status(&cluster)
        .await
        .unwrap();

    double
        .set_node_conditions("node-1", &[("Ready", "False")])
        .unwrap();
    let changed = krake_testkit::eventually("nodes updated", WAIT, || async {
        let c = get(&env.client, "c1").await;
        if nodes(&c)[0].1 == ["Ready=False"] {
            Ok(c)
        } else {
            Err(nodes(&c))
        }
    })
    .await;
    assert_eq!(changed.status.state, ClusterState::FailingMetrics);
    // Several probes later, still kept.
    tokio::time::sleep(3 * probe).await;
    assert_eq!(
        get(&env.client, "c1").await.status.state,
        ClusterState::FailingMetrics
    );
}

#[tokio::test]
async fn creating_and_failed_clusters_are_not_observed() {
    let env = env().await;
    let double = double("node-1").await;
    let ctl = Ctl::start(&env.client, Duration::from_millis(400)).await;
    let created = create(&env.client, "c1", kubeconfig(&double)).await;
    let mut cluster = state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    assert_eq!(ctl.metrics.observer_tasks(), 1);
    cluster.status.state = ClusterState::Creating;
    env.client
        .api::<Cluster>()
        .update_status(&cluster)
        .await
        .unwrap();
    krake_testkit::eventually("observation stopped", WAIT, || async {
        ctl.metrics.observer_tasks() == 0
    })
    .await;
    // The infrastructure controller's CONNECTING restarts it.
    let mut cluster = get(&env.client, "c1").await;
    assert_eq!(cluster.status.state, ClusterState::Creating);
    cluster.status.state = ClusterState::Connecting;
    env.client
        .api::<Cluster>()
        .update_status(&cluster)
        .await
        .unwrap();
    state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    assert_eq!(ctl.metrics.observer_tasks(), 1);
    assert!(ctl.members.cached(&created.metadata.uid).is_some());
}

#[tokio::test]
async fn deleted_clusters_stop_their_tasks_and_connections() {
    let env = env().await;
    let double = double("node-1").await;
    let ctl = Ctl::start(&env.client, Duration::from_millis(400)).await;
    let created = create(&env.client, "c1", kubeconfig(&double)).await;
    state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    assert_eq!(ctl.metrics.observer_tasks(), 1);
    assert!(connections_to(double.addr().port()) >= 1);

    // Marked deleted (the garbage collector's finalizer keeps it): no longer observed.
    env.client
        .api::<Cluster>()
        .delete(Some(NS), "c1", false)
        .await
        .unwrap();
    let deleted = get(&env.client, "c1").await;
    assert!(deleted.metadata.deleted.is_some());
    krake_testkit::eventually("observation and connections gone", WAIT, || async {
        let seen = (
            ctl.metrics.observer_tasks(),
            connections_to(double.addr().port()),
            ctl.members.len(),
        );
        if seen == (0, 0, 0) { Ok(()) } else { Err(seen) }
    })
    .await;
    assert!(ctl.members.cached(&created.metadata.uid).is_none());
    // A node change is no longer reported.
    double
        .set_node_conditions("node-1", &[("Ready", "False")])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        get(&env.client, "c1").await.status.state,
        ClusterState::Online
    );
}

#[tokio::test]
async fn many_clusters_at_once_leave_nothing_behind() {
    const CLUSTERS: usize = 50;
    let env = env().await;
    let double = double("node-1").await;
    let port = double.addr().port();
    let ctl = Ctl::start(&env.client, Duration::from_millis(1000)).await;
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let api_baseline = connections_to(env.api_port);
    assert_eq!(connections_to(port), 0);

    let names: Vec<String> = (0..CLUSTERS).map(|i| format!("c{i}")).collect();
    futures::future::join_all(
        names
            .iter()
            .map(|name| create(&env.client, name, kubeconfig(&double))),
    )
    .await;
    krake_testkit::eventually("every cluster ONLINE", Duration::from_secs(60), || async {
        let list = env.client.api::<Cluster>().list(Some(NS)).await.unwrap();
        let online = list
            .items
            .iter()
            .filter(|c| c.status.state == ClusterState::Online)
            .count();
        if online == CLUSTERS {
            Ok(())
        } else {
            Err(online)
        }
    })
    .await;
    assert_eq!(ctl.metrics.observer_tasks(), CLUSTERS as i64);
    assert_eq!(ctl.members.len(), CLUSTERS);
    // Each observed cluster holds its watch connection (plus pooled probe connections).
    assert!(connections_to(port) >= CLUSTERS);

    // A node change reaches every cluster.
    double
        .set_node_conditions("node-1", &[("Ready", "False")])
        .unwrap();
    krake_testkit::eventually("every cluster NOTREADY", WAIT, || async {
        let list = env.client.api::<Cluster>().list(Some(NS)).await.unwrap();
        let count = list
            .items
            .iter()
            .filter(|c| c.status.state == ClusterState::Notready)
            .count();
        if count == CLUSTERS {
            Ok(())
        } else {
            Err(count)
        }
    })
    .await;

    // Removed at once (force): the controller sees them disappear from its store.
    let clusters = env.client.api::<Cluster>();
    futures::future::join_all(
        names
            .iter()
            .map(|name| clusters.delete(Some(NS), name, true)),
    )
    .await
    .into_iter()
    .for_each(|r| {
        r.unwrap();
    });
    krake_testkit::eventually("observations, clients, connections gone", WAIT, || async {
        let seen = (
            ctl.metrics.observer_tasks(),
            ctl.members.len(),
            connections_to(port),
        );
        if seen == (0, 0, 0) { Ok(()) } else { Err(seen) }
    })
    .await;
    // Tasks of the process: back to what they were before the clusters, except for the
    // idle connections the Krake API client keeps in its pool after the concurrent status
    // writes (two tasks each in this process: the client's and the in-process server's).
    krake_testkit::eventually("tasks back to the baseline", WAIT, || async {
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let pooled = connections_to(env.api_port).saturating_sub(api_baseline);
        if alive <= baseline + 2 * pooled {
            Ok(())
        } else {
            Err(format!(
                "{alive} tasks, baseline {baseline}, {pooled} pooled API connections"
            ))
        }
    })
    .await;
}

#[tokio::test]
async fn node_changes_while_the_controller_is_down_converge_after_restart() {
    let env = env().await;
    let double = double("node-1").await;
    let ctl = Ctl::start(&env.client, RARE_PROBES).await;
    create(&env.client, "c1", kubeconfig(&double)).await;
    state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    ctl.stop().await;

    double
        .set_node_conditions("node-1", &[("Ready", "True"), ("DiskPressure", "True")])
        .unwrap();
    double
        .set_node_conditions("node-2", &[("Ready", "True")])
        .unwrap();
    assert_eq!(
        get(&env.client, "c1").await.status.state,
        ClusterState::Online
    );

    let _ctl = Ctl::start(&env.client, RARE_PROBES).await;
    let cluster = state_is(&env.client, "c1", ClusterState::Unhealthy, WAIT).await;
    let names: Vec<String> = nodes(&cluster).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["node-1", "node-2"]);
}
