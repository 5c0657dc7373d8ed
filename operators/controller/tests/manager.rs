//! The controllers of `krake-controller all` run in this process by
//! [`krake_controller::manager`], against an in-process Krake API server: no child process.

use std::time::Duration;

use clap::Parser;
use krake_api_server::{Config as ApiConfig, RunningServer};
use krake_client::{Client, ClientConfig};
use krake_controller::Error;
use krake_controller::cli::{Args, Command};
use krake_controller::manager::Manager;
use krake_crds::kubernetes::{Application, Cluster, ClusterState};
use krake_runtime::CancellationToken;
use krake_testkit::eventually;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

async fn api() -> (RunningServer, Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = krake_api_server::start(ApiConfig::for_embedded(dir.path()))
        .await
        .expect("API server starts");
    let client = Client::new(ClientConfig::new(format!("http://{}", server.addr))).unwrap();
    (server, client, dir)
}

/// The command line of `krake-controller <command>` against `server`, ops on any port.
fn args(server: &RunningServer, command: &str) -> Args {
    Args::try_parse_from([
        "krake-controller",
        command,
        "--api-url",
        &format!("http://{}", server.addr),
        "--ops-address",
        "127.0.0.1:0",
    ])
    .unwrap()
}

async fn get(url: String) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

#[tokio::test]
async fn all_controllers_run_in_process_and_stop_on_shutdown() {
    let (server, client, _dir) = api().await;
    let Args { common, command } = args(&server, "all");
    assert_eq!(command, Command::All);
    let shutdown = CancellationToken::new();
    let running = Manager::new(command, &common, &client, shutdown.clone())
        .unwrap()
        .start(common.ops_address)
        .await
        .unwrap();
    let ops = format!("http://{}", running.ops_address());
    // 200 once every controller's caches are synced.
    eventually("ready", WAIT, || async {
        get(format!("{ops}/readyz"))
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;

    // The cluster controller observes the member cluster (a Kubernetes API double) ONLINE;
    // the scheduler then binds an application to it.
    let member = kube_double::KubeDouble::start(kube_double::Options::default())
        .await
        .unwrap();
    member
        .set_node_conditions("node-1", &[("Ready", "True")])
        .unwrap();
    let mut cluster = Cluster::test("ns", "c1");
    cluster.spec.kubeconfig = match member.kubeconfig() {
        serde_json::Value::Object(map) => map,
        other => panic!("a kubeconfig object, got {other}"),
    };
    let clusters = client.api::<Cluster>();
    clusters.create(&cluster).await.unwrap();
    eventually("c1 ONLINE", WAIT, || async {
        let c = clusters.get(Some("ns"), "c1").await.unwrap();
        (c.status.state == ClusterState::Online && c.status.nodes.len() == 1).then_some(())
    })
    .await;
    let app: Application = serde_json::from_value(json!({
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {"manifest": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
            "spec": {"containers": [{"name": "echo", "image": "hashicorp/http-echo"}]}}],
            "constraints": {"cluster": {}}}
    }))
    .unwrap();
    let apps = client.api::<Application>();
    apps.create(&app).await.unwrap();
    eventually("app bound to c1", WAIT, || async {
        let app = apps.get(Some("ns"), "app").await.unwrap();
        app.status.scheduled_to.filter(|r| r.name == "c1")
    })
    .await;

    // The collector deletes the application with the cluster it runs on.
    clusters.delete(Some("ns"), "c1", false).await.unwrap();
    eventually("application removed with its cluster", WAIT, || async {
        match apps.get(Some("ns"), "app").await {
            Err(e) if e.is_not_found() => Ok(()),
            other => Err(other.map(|a| a.metadata.finalizers)),
        }
    })
    .await;

    // Both controllers' reconciles are counted in the one registry.
    eventually("reconciles counted", WAIT, || async {
        let (_, metrics) = get(format!("{ops}/metrics")).await?;
        [
            "garbage-collector",
            "scheduler-applications",
            "kubernetes-cluster",
        ]
        .iter()
        .all(|c| {
            metrics.contains(&format!(
                r#"krake_controller_reconciles_total{{controller="{c}",result="success"}}"#
            ))
        })
        .then_some(())
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(WAIT, running.wait())
        .await
        .expect("stops after shutdown")
        .expect("a requested shutdown is no failure");
    assert!(
        get(format!("{ops}/livez")).await.is_none(),
        "the operations endpoints stop with the controllers"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_controller_stops_the_process_with_its_reason() {
    let (server, client, _dir) = api().await;
    let Args {
        mut common,
        command,
    } = args(&server, "garbage-collector");
    // Accepted by the parser, refused by the collector when it starts.
    common.workers = 0;
    let shutdown = CancellationToken::new();
    let running = Manager::new(command, &common, &client, shutdown.clone())
        .unwrap()
        .start(common.ops_address)
        .await
        .unwrap();
    let error = tokio::time::timeout(WAIT, running.wait())
        .await
        .expect("stops by itself")
        .expect_err("a controller failing at start is a failure");
    assert!(
        matches!(
            &error,
            Error::Failed { controller: "garbage-collector", source }
                if matches!(**source, Error::GarbageCollector(_))
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("concurrency must be at least 1"),
        "{error}"
    );
    assert!(
        shutdown.is_cancelled(),
        "the other controllers are told to stop"
    );
    server.stop().await.unwrap();
}
