//! The controller's Prometheus metrics.

use std::time::Duration;

use krake_crds::kubernetes::ClusterState;
use krake_runtime::prometheus_client::encoding::text::encode;
use krake_runtime::prometheus_client::registry::Registry;

use crate::common::*;

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).unwrap();
    text
}

#[tokio::test]
async fn probe_latency_state_per_cluster_and_watch_restarts() {
    let env = env().await;
    let double = double("node-1").await;
    let ctl = Ctl::start(&env.client, Duration::from_millis(400)).await;
    let mut registry = Registry::default();
    ctl.metrics.register(&mut registry);
    create(&env.client, "c1", kubeconfig(&double)).await;
    state_is(&env.client, "c1", ClusterState::Online, WAIT).await;
    let state = r#"krake_kubernetes_cluster_state{namespace="tenant",name="c1",state="ONLINE"} 1"#;
    krake_testkit::eventually("state series", WAIT, || async {
        exposition(&registry).contains(state)
    })
    .await;
    let text = exposition(&registry);
    assert!(
        text.contains(r#"krake_kubernetes_cluster_probe_duration_seconds_count{result="success"}"#),
        "{text}"
    );
    assert!(
        text.contains("krake_kubernetes_cluster_observers 1"),
        "{text}"
    );

    // The watch fails while the server is away: counted.
    let restarts = ctl.metrics.watch_restarts();
    double.set_reachable(false).await.unwrap();
    state_is(&env.client, "c1", ClusterState::Offline, WAIT).await;
    krake_testkit::eventually("state series follows", WAIT, || async {
        let text = exposition(&registry);
        text.contains(r#"name="c1",state="OFFLINE"} 1"#) && !text.contains(state)
    })
    .await;
    assert!(ctl.metrics.watch_restarts() > restarts);
    assert!(exposition(&registry).contains(r#"probe_duration_seconds_count{result="failure"}"#));
    double.set_reachable(true).await.unwrap();
    state_is(&env.client, "c1", ClusterState::Online, WAIT).await;

    // A deleted cluster's series goes away (bounded cardinality).
    env.client
        .api::<krake_crds::kubernetes::Cluster>()
        .delete(Some(NS), "c1", false)
        .await
        .unwrap();
    krake_testkit::eventually("series removed", WAIT, || async {
        let text = exposition(&registry);
        !text.contains(r#"name="c1""#) && text.contains("krake_kubernetes_cluster_observers 0")
    })
    .await;
}
