//! The controller as the Krake user `system:kubernetes-cluster` under RBAC with the
//! standard roles (`api-server/bootstrap/base_roles.yaml`): what that role grants is
//! enough for it (list and watch Clusters, read one again, write their status).

use std::path::Path;
use std::time::Duration;

use krake_api_server::bootstrap;
use krake_api_server::config::{AuthorizationMode, Config as ApiConfig};
use krake_api_server::server::{open_store, start_with_store};
use krake_client::{Client, ClientConfig};
use krake_crds::kubernetes::ClusterState;

use crate::common::*;

#[tokio::test]
async fn the_standard_role_of_system_kubernetes_cluster_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ApiConfig::for_embedded(dir.path().join("data"));
    config.log_level = "warn".into();
    let store = open_store(&config).await.expect("the embedded store opens");
    let roles =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../api-server/bootstrap/base_roles.yaml");
    let text = std::fs::read_to_string(&roles).unwrap();
    let documents = bootstrap::parse_documents("base_roles.yaml", &text).unwrap();
    bootstrap::bootstrap(store.as_ref(), &documents, false)
        .await
        .expect("base roles written");

    // The test writes as an administrator; the controller talks to a server on the same
    // store on which every request is `system:kubernetes-cluster`, under RBAC.
    let mut admin_config = config.clone();
    admin_config.static_user = Some("system:admin".into());
    admin_config.authorization = AuthorizationMode::AlwaysAllow;
    let admin_server = start_with_store(admin_config, store.clone()).await.unwrap();
    let mut controller_config = config;
    controller_config.static_user = Some("system:kubernetes-cluster".into());
    controller_config.authorization = AuthorizationMode::Rbac;
    let controller_server = start_with_store(controller_config, store.clone())
        .await
        .unwrap();
    let admin = Client::new(ClientConfig::new(format!("http://{}", admin_server.addr))).unwrap();
    let as_controller = Client::new(ClientConfig::new(format!(
        "http://{}",
        controller_server.addr
    )))
    .unwrap();

    let double = double("node-1").await;
    let _ctl = Ctl::start(&as_controller, Duration::from_millis(500)).await;
    create(&admin, "c1", kubeconfig(&double)).await;
    state_is(&admin, "c1", ClusterState::Online, WAIT).await;
    double
        .set_node_conditions("node-1", &[("Ready", "True"), ("DiskPressure", "True")])
        .unwrap();
    state_is(&admin, "c1", ClusterState::Unhealthy, WAIT).await;
}
