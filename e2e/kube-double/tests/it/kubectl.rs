//! The double as kubectl sees it: the `kube-double` binary over TLS, driven by the real
//! kubectl through the kubeconfig the binary writes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::kubectl;

/// The binary, started on a free port with TLS; killed on drop.
struct Binary {
    _child: Child,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

async fn start_binary() -> Binary {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-double"))
        .args(["--listen", "127.0.0.1:0", "--tls", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the kube-double binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // It prints its URL once the kubeconfig is written and it serves.
    let url = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the binary reports its URL")
        .unwrap()
        .expect("a URL line");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    Binary {
        _child: child,
        kubeconfig,
        dir,
    }
}

impl Binary {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl());
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        c
    }

    /// Run kubectl; its stdout, or a panic with its stderr.
    async fn run(&self, args: &[&str]) -> String {
        let output = tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}\n{stdout}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.run(&all).await).expect("kubectl prints JSON")
    }

    fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports:
        - containerPort: 80
";

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn kubectl_applies_gets_watches_scales_and_deletes() {
    let double = start_binary().await;
    let manifest = double.file("web.yaml", DEPLOYMENT);

    let out = double
        .run(&["apply", "--server-side", "-f", path_arg(&manifest)])
        .await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let again = double
        .run(&["apply", "--server-side", "-f", path_arg(&manifest)])
        .await;
    assert!(
        again.contains("deployment.apps/web serverside-applied"),
        "{again}"
    );

    let web = double
        .json(&["get", "deployment", "web", "--show-managed-fields"])
        .await;
    assert_eq!(web["spec"]["replicas"], 2);
    assert_eq!(
        web["metadata"]["generation"], 1,
        "the second apply was a no-op"
    );
    let managers: Vec<&str> = web["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, vec!["kubectl"]);

    // A watch prints the current object first; read one line, then stop it.
    let mut watch = double
        .command(&["get", "deployments", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("a watch line")
        .unwrap();
    assert_eq!(first.as_deref(), Some("deployment.apps/web"));
    watch.kill().await.unwrap();

    let out = double
        .run(&["scale", "deployment", "web", "--replicas=4"])
        .await;
    assert!(out.contains("deployment.apps/web scaled"), "{out}");
    assert_eq!(
        double.json(&["get", "deployment", "web"]).await["spec"]["replicas"],
        4
    );

    let resources = double.run(&["api-resources"]).await;
    for expected in [
        "deployments",
        "customresourcedefinitions",
        "clusterrolebindings",
        "persistentvolumeclaims",
    ] {
        assert!(resources.contains(expected), "{expected} in\n{resources}");
    }
    let namespaced = double
        .run(&["api-resources", "--namespaced=false", "-o", "name"])
        .await;
    assert!(namespaced.lines().any(|l| l == "nodes"), "{namespaced}");
    assert!(!namespaced.lines().any(|l| l == "pods"), "{namespaced}");

    let out = double.run(&["delete", "deployment", "web"]).await;
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    let output = double
        .command(&["get", "deployment", "web"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn kubectl_waits_for_a_deletion_held_by_a_finalizer() {
    let double = start_binary().await;
    let manifest = double.file(
        "held.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: default\n  finalizers: [example.com/hold]\ndata:\n  a: \"1\"\n",
    );
    double
        .run(&["apply", "--server-side", "-f", path_arg(&manifest)])
        .await;
    double
        .run(&["delete", "configmap", "held", "--wait=false"])
        .await;
    let held = double.json(&["get", "configmap", "held"]).await;
    assert!(held["metadata"]["deletionTimestamp"].is_string());

    let waiter = double
        .command(&["wait", "--for=delete", "configmap/held", "--timeout=60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the waiter its watch, then release the finalizer.
    double
        .run(&[
            "patch",
            "configmap",
            "held",
            "--type=merge",
            "-p",
            "{\"metadata\":{\"finalizers\":null}}",
        ])
        .await;
    let output = tokio::time::timeout(Duration::from_secs(60), waiter.wait_with_output())
        .await
        .expect("wait returns")
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
