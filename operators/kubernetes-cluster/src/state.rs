//! The state rules of the cluster observer, without I/O: what a Cluster's status becomes
//! after one observation of its member cluster.

use k8s_openapi::api::core::v1::Node;
use krake_crds::Timestamp;
use krake_crds::kubernetes::{
    ClusterNode, ClusterNodeCondition, ClusterNodeMetadata, ClusterNodeStatus, ClusterState,
    ClusterStatus,
};

/// What the observer saw of a member cluster.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    /// The API server did not answer, or answered with a non-2xx status.
    Unreachable,
    /// The API server answered; these are its nodes (ordered by name).
    Nodes(&'a [ClusterNode]),
}

/// A node as Krake reports it in `status.nodes`: its name and its conditions' `type`,
/// `status`, `reason` and `message` (missing strings become empty).
pub fn cluster_node(node: &Node) -> ClusterNode {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|conditions| {
            conditions
                .iter()
                .map(|c| ClusterNodeCondition {
                    message: c.message.clone().unwrap_or_default(),
                    reason: c.reason.clone().unwrap_or_default(),
                    status: c.status.clone(),
                    r#type: c.type_.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    ClusterNode {
        api: krake_crds::kubernetes::API.to_string(),
        kind: "ClusterNode".to_string(),
        metadata: ClusterNodeMetadata {
            name: node.metadata.name.clone().unwrap_or_default(),
        },
        status: Some(ClusterNodeStatus { conditions }),
    }
}

/// The health the nodes report: the first node condition (nodes and conditions in
/// order) whose type ends with `pressure` (any case) with status `True` gives
/// UNHEALTHY, a `Ready` condition whose status is not `True` gives NOTREADY; no such
/// condition gives ONLINE.
pub fn node_health(nodes: &[ClusterNode]) -> ClusterState {
    for node in nodes {
        let Some(status) = &node.status else { continue };
        for condition in &status.conditions {
            if condition.r#type.to_lowercase().ends_with("pressure") && condition.status == "True" {
                return ClusterState::Unhealthy;
            }
            if condition.r#type == "Ready" && condition.status != "True" {
                return ClusterState::Notready;
            }
        }
    }
    ClusterState::Online
}

/// The state after `observation` of a cluster in state `current`:
///
/// 1. unreachable: OFFLINE;
/// 2. FAILING_METRICS is kept (only the scheduler clears it);
/// 3. OFFLINE becomes CONNECTING (one observation as stepping stone);
/// 4. else the nodes' health ([`node_health`]).
pub fn next_state(current: ClusterState, observation: Observation<'_>) -> ClusterState {
    match observation {
        Observation::Unreachable => ClusterState::Offline,
        Observation::Nodes(_) if current == ClusterState::FailingMetrics => current,
        Observation::Nodes(_) if current == ClusterState::Offline => ClusterState::Connecting,
        Observation::Nodes(nodes) => node_health(nodes),
    }
}

/// The status to write after `observation`, or `None` when nothing changes. Nodes are
/// replaced when the cluster answered (kept when it did not); a state change sets
/// `kube_controller_triggered` to `now`.
pub fn next_status(
    current: &ClusterStatus,
    observation: Observation<'_>,
    now: impl FnOnce() -> Timestamp,
) -> Option<ClusterStatus> {
    let state = next_state(current.state, observation);
    let nodes_changed = match observation {
        Observation::Nodes(nodes) => current.nodes.as_slice() != nodes,
        Observation::Unreachable => false,
    };
    if state == current.state && !nodes_changed {
        return None;
    }
    let mut status = current.clone();
    if let Observation::Nodes(nodes) = observation {
        status.nodes = nodes.to_vec();
    }
    if state != current.state {
        status.state = state;
        status.kube_controller_triggered = Some(now());
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, conditions: &[(&str, &str)]) -> ClusterNode {
        ClusterNode {
            api: "kubernetes".into(),
            kind: "ClusterNode".into(),
            metadata: ClusterNodeMetadata { name: name.into() },
            status: Some(ClusterNodeStatus {
                conditions: conditions
                    .iter()
                    .map(|(t, s)| ClusterNodeCondition {
                        message: String::new(),
                        reason: String::new(),
                        status: (*s).into(),
                        r#type: (*t).into(),
                    })
                    .collect(),
            }),
        }
    }

    #[test]
    fn health_rules() {
        use ClusterState::*;
        let healthy = node("a", &[("Ready", "True"), ("MemoryPressure", "False")]);
        assert_eq!(node_health(&[]), Online);
        assert_eq!(node_health(std::slice::from_ref(&healthy)), Online);
        for pressure in ["MemoryPressure", "DiskPressure", "PIDPressure", "xPRESSURE"] {
            let n = node("b", &[("Ready", "True"), (pressure, "True")]);
            assert_eq!(node_health(&[healthy.clone(), n]), Unhealthy, "{pressure}");
        }
        for ready in ["False", "Unknown", "true"] {
            assert_eq!(node_health(&[node("c", &[("Ready", ready)])]), Notready);
        }
        // First hit wins, in node then condition order.
        let both = node("d", &[("Ready", "False"), ("DiskPressure", "True")]);
        assert_eq!(node_health(&[both]), Notready);
        let both = node("d", &[("DiskPressure", "True"), ("Ready", "False")]);
        assert_eq!(node_health(&[both]), Unhealthy);
        // A pressure condition that is not true, or unknown conditions, are fine.
        let fine = node(
            "e",
            &[("NetworkUnavailable", "True"), ("DiskPressure", "Unknown")],
        );
        assert_eq!(node_health(&[fine]), Online);
    }

    #[test]
    fn transitions() {
        use ClusterState::*;
        let ok = [node("a", &[("Ready", "True")])];
        let bad = [node("a", &[("Ready", "False")])];
        assert_eq!(next_state(Pending, Observation::Nodes(&ok)), Online);
        assert_eq!(next_state(Online, Observation::Unreachable), Offline);
        assert_eq!(
            next_state(FailingMetrics, Observation::Unreachable),
            Offline
        );
        assert_eq!(next_state(Offline, Observation::Nodes(&bad)), Connecting);
        assert_eq!(next_state(Connecting, Observation::Nodes(&ok)), Online);
        assert_eq!(next_state(Connecting, Observation::Nodes(&bad)), Notready);
        assert_eq!(
            next_state(FailingMetrics, Observation::Nodes(&bad)),
            FailingMetrics
        );
        assert_eq!(next_state(Notready, Observation::Nodes(&ok)), Online);
    }

    #[test]
    fn writes_only_changes() {
        let ok = [node("a", &[("Ready", "True")])];
        let stamp = || Timestamp::now();
        let pending = ClusterStatus::default();
        let online = next_status(&pending, Observation::Nodes(&ok), stamp).unwrap();
        assert_eq!(online.state, ClusterState::Online);
        assert_eq!(online.nodes, ok);
        assert!(online.kube_controller_triggered.is_some());
        assert_eq!(next_status(&online, Observation::Nodes(&ok), stamp), None);

        // Nodes alone changed: written, trigger time unchanged.
        let more = [ok[0].clone(), node("b", &[("Ready", "True")])];
        let grown = next_status(&online, Observation::Nodes(&more), || {
            panic!("no state change, no new trigger time")
        })
        .unwrap();
        assert_eq!(grown.nodes, more);
        assert_eq!(
            grown.kube_controller_triggered,
            online.kube_controller_triggered
        );

        // Unreachable keeps the nodes; a second one changes nothing.
        let offline = next_status(&grown, Observation::Unreachable, stamp).unwrap();
        assert_eq!(offline.state, ClusterState::Offline);
        assert_eq!(offline.nodes, more);
        assert_eq!(next_status(&offline, Observation::Unreachable, stamp), None);

        // FAILING_METRICS is kept, nodes still follow.
        let mut failing = online.clone();
        failing.state = ClusterState::FailingMetrics;
        let updated = next_status(&failing, Observation::Nodes(&more), stamp).unwrap();
        assert_eq!(updated.state, ClusterState::FailingMetrics);
        assert_eq!(updated.nodes, more);
    }
}
