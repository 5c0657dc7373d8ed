//! `krake-controller` as a child process against an in-process Krake API server.

use std::process::Stdio;
use std::time::{Duration, Instant};

use krake_api_server::{Config as ApiConfig, RunningServer};
use krake_client::{Client, ClientConfig};
use krake_crds::core::Role;
use krake_crds::kubernetes::{Application, Cluster};
use krake_crds::{Metadata, Resource};
use krake_testkit::{eventually, free_port};
use serde_json::json;
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_krake-controller");
const WAIT: Duration = Duration::from_secs(20);

struct Api {
    server: RunningServer,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let server = krake_api_server::start(ApiConfig::for_embedded(dir.path()))
        .await
        .expect("API server starts");
    let client = Client::new(ClientConfig::new(format!("http://{}", server.addr))).unwrap();
    Api {
        server,
        client,
        _dir: dir,
    }
}

/// A running `krake-controller` (killed on drop).
struct Process {
    child: Child,
    ops: String,
}

impl Process {
    fn start(api_url: &str, args: &[&str]) -> Process {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--api-url", api_url, "--log-level", "warn"]);
        Process::spawn(&all, &[])
    }

    /// `krake-controller args` with `envs`, operations endpoints on a free port.
    fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Process {
        let port = free_port();
        let child = Command::new(BINARY)
            .args(args)
            .env("KRAKE_CONTROLLER_OPS_ADDRESS", format!("127.0.0.1:{port}"))
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("krake-controller starts");
        Process {
            child,
            ops: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Status and body of `GET <ops>/<path>`; `None` while nothing answers.
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.ops))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    async fn wait_status(&self, path: &str, expected: u16) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((status, body)) = self.get(path).await
                && status == expected
            {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never answered {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then the exit status (bounded wait).
    async fn terminate(mut self) -> std::process::ExitStatus {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "exited before SIGTERM"
        );
        let pid = self.child.id().expect("still running");
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits within 15 s of SIGTERM")
            .unwrap()
    }
}

async fn exists<R: Resource>(client: &Client, namespace: Option<&str>, name: &str) -> bool {
    match client.api::<R>().get(namespace, name).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("{e}"),
    }
}

/// A deleted role is removed by a running collector.
async fn collector_removes_a_deleted_role(client: &Client, name: &str) {
    let roles = client.api::<Role>();
    roles
        .create(&Role::new(Metadata::named(name), vec![]))
        .await
        .unwrap();
    roles.delete(None, name, false).await.unwrap();
    eventually(&format!("role {name} removed"), WAIT, || async {
        (!exists::<Role>(client, None, name).await).then_some(())
    })
    .await;
}

#[tokio::test]
async fn garbage_collector_process_serves_ops_collects_and_stops_on_sigterm() {
    let api = api().await;
    let process = Process::start(
        &format!("http://{}", api.server.addr),
        &[
            "garbage-collector",
            "--workers",
            "2",
            "--resync-period",
            "30s",
        ],
    );
    process.wait_status("/readyz", 200).await;
    assert_eq!(process.get("/livez").await.unwrap().0, 200);

    collector_removes_a_deleted_role(&api.client, "doomed").await;

    // The reconcile that removed the role is counted once it returned, which may be
    // after the removal was observed.
    eventually("a successful reconcile counted", WAIT, || async {
        let metrics = process.wait_status("/metrics", 200).await;
        let successes: Option<u64> = metrics
            .lines()
            .find(|l| {
                l.starts_with(
                    r#"krake_controller_reconciles_total{controller="garbage-collector",result="success"}"#,
                )
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok());
        let depth = metrics
            .contains(r#"krake_controller_queue_depth{controller="garbage-collector"}"#);
        if depth && successes.is_some_and(|n| n >= 1) { Ok(()) } else { Err(metrics) }
    })
    .await;

    let status = process.terminate().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test]
async fn not_ready_while_the_api_is_unreachable() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let process = Process::start(&nowhere, &["all"]);
    process.wait_status("/livez", 200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = process.get("/readyz").await.unwrap();
    assert_eq!(status, 503);
    let status = process.terminate().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test]
async fn all_runs_the_scheduler_the_collector_and_the_cluster_controller() {
    let api = api().await;
    let c = &api.client;
    let process = Process::start(&format!("http://{}", api.server.addr), &["all"]);
    process.wait_status("/readyz", 200).await;

    // Kubernetes cluster controller: the member cluster (a Kubernetes API double over TLS)
    // is observed ONLINE with its node; scheduler: an application is bound to it.
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
    c.api::<Cluster>().create(&cluster).await.unwrap();
    eventually("c1 observed ONLINE", WAIT, || async {
        let c1 = c.api::<Cluster>().get(Some("ns"), "c1").await.unwrap();
        (c1.status.state == krake_crds::kubernetes::ClusterState::Online
            && c1.status.nodes.len() == 1)
            .then_some(())
    })
    .await;
    let app: Application = serde_json::from_value(json!({
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {"manifest": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "echo"},
            "spec": {"containers": [{"name": "echo", "image": "hashicorp/http-echo"}]}}],
            "constraints": {"cluster": {}}}
    }))
    .unwrap();
    c.api::<Application>().create(&app).await.unwrap();
    eventually("app bound to c1", WAIT, || async {
        let app = c.api::<Application>().get(Some("ns"), "app").await.unwrap();
        (app.status.scheduled_to.as_ref().map(|r| r.name.as_str()) == Some("c1")).then_some(())
    })
    .await;

    // Collector: deleting the cluster deletes the application bound to it.
    c.api::<Cluster>()
        .delete(Some("ns"), "c1", false)
        .await
        .unwrap();
    eventually("cluster and application removed", WAIT, || async {
        (!exists::<Cluster>(c, Some("ns"), "c1").await
            && !exists::<Application>(c, Some("ns"), "app").await)
            .then_some(())
    })
    .await;

    let metrics = process.wait_status("/metrics", 200).await;
    for controller in [
        "garbage-collector",
        "scheduler-applications",
        "scheduler-clusters",
        "scheduler-magnumclusters",
        "kubernetes-cluster",
    ] {
        let expected = format!(
            r#"krake_controller_reconciles_total{{controller="{controller}",result="success"}}"#
        );
        assert!(
            metrics.contains(&expected),
            "missing {expected} in\n{metrics}"
        );
    }
    // The cluster controller's own metrics: probes were made, the deleted cluster is no
    // longer observed.
    for expected in [
        r#"krake_kubernetes_cluster_probe_duration_seconds_count{result="success"}"#,
        "krake_kubernetes_cluster_observers 0",
        "krake_kubernetes_cluster_watch_restarts_total",
    ] {
        assert!(
            metrics.contains(expected),
            "missing {expected} in\n{metrics}"
        );
    }

    let status = process.terminate().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test]
async fn scheduler_alone_runs_and_stops() {
    let api = api().await;
    let process = Process::start(&format!("http://{}", api.server.addr), &["scheduler"]);
    process.wait_status("/readyz", 200).await;
    let status = process.terminate().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[tokio::test]
async fn kubernetes_cluster_alone_follows_a_member_cluster_and_stops() {
    use krake_crds::kubernetes::ClusterState;
    let api = api().await;
    let c = &api.client;
    let member = kube_double::KubeDouble::start(kube_double::Options::default())
        .await
        .unwrap();
    member
        .set_node_conditions("node-1", &[("Ready", "True")])
        .unwrap();
    let process = Process::start(
        &format!("http://{}", api.server.addr),
        &["kubernetes-cluster", "--probe-interval", "500ms"],
    );
    process.wait_status("/readyz", 200).await;
    let mut cluster = Cluster::test("ns", "c1");
    cluster.spec.kubeconfig = match member.kubeconfig() {
        serde_json::Value::Object(map) => map,
        other => panic!("a kubeconfig object, got {other}"),
    };
    c.api::<Cluster>().create(&cluster).await.unwrap();
    let state_is = |state: ClusterState| async move {
        eventually(state.as_str(), WAIT, || async {
            let c1 = c.api::<Cluster>().get(Some("ns"), "c1").await.unwrap();
            if c1.status.state == state {
                Ok(())
            } else {
                Err(c1.status.state)
            }
        })
        .await
    };
    state_is(ClusterState::Online).await;
    member
        .set_node_conditions("node-1", &[("Ready", "False")])
        .unwrap();
    state_is(ClusterState::Notready).await;
    member.set_reachable(false).await.unwrap();
    state_is(ClusterState::Offline).await;
    member.set_reachable(true).await.unwrap();
    state_is(ClusterState::Notready).await;
    let status = process.terminate().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// Exit status and standard error of a run that must end by itself.
async fn run_to_end(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(BINARY)
            .args(args)
            .env_remove("KRAKE_CONTROLLER_API_URL")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("exits by itself")
    .unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn bad_configuration_exits_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let unreadable = dir.path().join("missing-ca.pem");
    let not_pem = dir.path().join("garbage.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "garbage-collector".into(),
                "--tls-ca".into(),
                unreadable.display().to_string(),
            ],
            "missing-ca.pem",
        ),
        (
            vec![
                "garbage-collector".into(),
                "--tls-ca".into(),
                not_pem.display().to_string(),
            ],
            "garbage.pem",
        ),
        (
            vec!["garbage-collector".into(), "--workers".into(), "0".into()],
            "--workers",
        ),
        (
            vec!["all".into(), "--workers".into(), "many".into()],
            "--workers",
        ),
        (
            vec!["all".into(), "--api-url".into(), "ftp://krake".into()],
            "ftp://krake",
        ),
        (
            vec!["scheduler".into(), "--log-format".into(), "yaml".into()],
            "--log-format",
        ),
        (
            vec!["all".into(), "--resync-period".into(), "soon".into()],
            "--resync-period",
        ),
        (
            vec![
                "all".into(),
                "--tls-client-cert".into(),
                not_pem.display().to_string(),
            ],
            "--tls-client-key",
        ),
        (
            vec![
                "kubernetes-cluster".into(),
                "--probe-interval".into(),
                "1s".into(),
                "--probe-timeout".into(),
                "2s".into(),
            ],
            "--probe-interval",
        ),
        (vec!["collect-garbage".into()], "collect-garbage"),
    ];
    for (args, mention) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, stdout, stderr) = run_to_end(&args).await;
        assert!(!status.success(), "{args:?} succeeded");
        assert_eq!(status.code(), Some(2), "{args:?}: {status}");
        assert_eq!(stdout, "", "{args:?}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(
            lines[0].starts_with("krake-controller: "),
            "{args:?}: {stderr}"
        );
        assert!(lines[0].contains(mention), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn environment_variables_configure_the_process() {
    let api = api().await;
    let url = format!("http://{}", api.server.addr);
    let process = Process::spawn(
        &["garbage-collector"],
        &[
            ("KRAKE_CONTROLLER_API_URL", &url),
            ("KRAKE_CONTROLLER_LOG_LEVEL", "warn"),
            ("KRAKE_CONTROLLER_LOG_FORMAT", "json"),
            ("KRAKE_CONTROLLER_WORKERS", "2"),
            ("KRAKE_CONTROLLER_RESYNC_PERIOD", "0"),
        ],
    );
    process.wait_status("/readyz", 200).await;
    collector_removes_a_deleted_role(&api.client, "env-doomed").await;
    let status = process.terminate().await;
    assert!(status.success(), "exit status after SIGTERM: {status}");

    let output = Command::new(BINARY)
        .arg("all")
        .env("KRAKE_CONTROLLER_WORKERS", "0")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--workers"));
}

#[tokio::test]
async fn ops_address_in_use_exits_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (status, _, stderr) = run_to_end(&[
        "garbage-collector",
        "--api-url",
        &nowhere,
        "--ops-address",
        &address,
        "--log-level",
        "error",
    ])
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("krake-controller: cannot serve the operations endpoints"));
    assert!(lines[0].contains(&address), "{stderr}");
}
