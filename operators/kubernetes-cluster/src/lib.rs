//! The Krake Kubernetes cluster controller (`krake-controller kubernetes-cluster`).
//!
//! For every Cluster with a kubeconfig that is not FAILED ([`accepted`]), and not being
//! created or reconciled by the infrastructure controller (CREATING, RECONCILING), one
//! observation of the member cluster runs in a task of its own:
//!
//! * a kube-runtime [`watcher`](kube::runtime::watcher()) on its Nodes, so that a node
//!   condition change shows in the Cluster's status as soon as the watch event arrives;
//! * a reachability probe every [`Config::probe_interval`] (default 10 s), a node list
//!   bounded by [`Config::probe_timeout`], so that a silent or black-holed API server
//!   (whose watch would only be cut after minutes) is noticed: an unreachable cluster
//!   becomes OFFLINE within two probe intervals. A failed watch triggers a probe at once.
//!
//! The status follows upstream Krake's rules ([`state`]): OFFLINE when the API server
//! does not answer or answers with an error; FAILING_METRICS kept (the scheduler clears
//! it); OFFLINE → CONNECTING for one observation; then UNHEALTHY (a node condition
//! `*Pressure` is `True`), NOTREADY (a node's `Ready` is not `True`) or ONLINE;
//! `status.nodes` lists each node's conditions; `kube_controller_triggered` is set on
//! every state change. The status is written only when the state or the nodes change,
//! conditionally on the Cluster's revision (a conflict re-reads it).
//!
//! A Cluster whose kubeconfig changes is observed anew with the new kubeconfig; a
//! deleted Cluster's observation stops and its member client is evicted from the
//! client cache. Observations are owned by the controller: dropping one stops its task.
//!
//! # Deviations from upstream
//!
//! * Nodes are followed by a watch, not by a full node list every 2 s; the probe lists
//!   one node only while the watch is healthy.
//! * `status.nodes` is written whenever the nodes change, not only with a state change.
//! * A FAILED cluster, or one whose kubeconfig was removed, stops being observed.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use krake_client::{Client, ClientConfig};
//! use krake_kubernetes_cluster::Config;
//! use krake_runtime::CancellationToken;
//!
//! let client = Client::new(ClientConfig::new("http://localhost:8080"))?;
//! krake_kubernetes_cluster::run(client, Config::default(), CancellationToken::new()).await?;
//! # Ok(()) }
//! ```

mod controller;
mod error;
mod metrics;
mod observer;
pub mod state;

pub use controller::{ClusterController, Config, NAME, accepted, run};
pub use error::{Error, Result};
pub use metrics::ClusterMetrics;
