//! The end-to-end checks of the kind suite (`hack/e2e-checks.sh`, curl + jq) against an
//! API server whose storage was bootstrapped with the base roles, and a `krake-controller
//! all` child process, with a Kubernetes API double as member cluster: the script itself
//! is exercised here, where no Kubernetes cluster can run, so that the kind suite only
//! adds the cluster and the chart.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use krake_api_server::Config as ApiConfig;
use krake_api_server::bootstrap;
use krake_api_server::server::open_store;
use krake_testkit::free_port;
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_krake-controller");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("operators/controller is two levels below the repository")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kind_suite_checks_pass_against_real_processes() {
    let dir = tempfile::tempdir().unwrap();
    let config = ApiConfig::for_embedded(dir.path().join("data"));
    {
        let roles = repo().join("api-server/bootstrap/base_roles.yaml");
        let text = std::fs::read_to_string(&roles).unwrap();
        let documents = bootstrap::parse_documents("base_roles.yaml", &text).unwrap();
        let store = open_store(&config).await.expect("open the embedded store");
        bootstrap::bootstrap(store.as_ref(), &documents, false)
            .await
            .expect("base roles written");
    }
    let server = krake_api_server::start(config)
        .await
        .expect("API server starts");
    let api = format!("http://{}", server.addr);
    let _controllers = Command::new(BINARY)
        .args(["all", "--api-url", &api, "--log-level", "warn"])
        .env(
            "KRAKE_CONTROLLER_OPS_ADDRESS",
            format!("127.0.0.1:{}", free_port()),
        )
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("krake-controller starts");

    // The member cluster: a Kubernetes API double over TLS with one Ready node, observed
    // by the cluster controller of `all`.
    let member = kube_double::KubeDouble::start(kube_double::Options::default())
        .await
        .expect("the double starts");
    member
        .set_node_conditions("node-1", &[("Ready", "True")])
        .unwrap();
    let kubeconfig = dir.path().join("kubeconfig.json");
    member.write_kubeconfig(&kubeconfig).unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(240),
        Command::new(repo().join("hack/e2e-checks.sh"))
            .arg(&api)
            .arg(&kubeconfig)
            .output(),
    )
    .await
    .expect("the checks finish within 240 s")
    .expect("run hack/e2e-checks.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "hack/e2e-checks.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for check in [
        "ok: base roles loaded",
        "ok: the scheduler bound the application",
        "ok: the binding made the cluster an owner",
        "ok: cascading deletion removed the application",
        "ok: the cluster is gone",
    ] {
        assert!(stdout.contains(check), "missing {check:?} in:\n{stdout}");
    }
    server.shutdown();
}
