//! Fixtures: a double per test, kube-rs clients from its kubeconfig, kubectl.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_double::{KubeDouble, Options};
use serde_json::Value;

/// A TLS double with fast bookmarks.
pub async fn double() -> KubeDouble {
    double_with(Options {
        bookmark_interval: Duration::from_millis(200),
        ..Options::default()
    })
    .await
}

/// A double with these options.
pub async fn double_with(options: Options) -> KubeDouble {
    KubeDouble::start(options).await.expect("the double starts")
}

/// A kube-rs client from a kubeconfig (as the controllers build theirs: no proxy from the
/// environment, no retries).
pub async fn client_for(kubeconfig: &Value) -> kube::Client {
    let kubeconfig: Kubeconfig = serde_json::from_value(kubeconfig.clone()).expect("a kubeconfig");
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("a client configuration");
    config.proxy_url = None;
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(5));
    kube::Client::try_from(config).expect("a client")
}

/// The admin client of a double.
pub async fn client(double: &KubeDouble) -> kube::Client {
    client_for(&double.kubeconfig()).await
}

/// The `kubectl` binary (`$KUBECTL`, else on `PATH`): a missing one fails the test.
pub fn kubectl() -> PathBuf {
    krake_testkit::tools::find_program(
        "kubectl",
        "KUBECTL",
        &[PathBuf::from("/usr/bin/kubectl")],
        "install the Debian package kubernetes-client (hack/install-tools.sh)",
    )
}

/// The API error of a kube-rs result.
pub fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A minimal valid Deployment.
pub fn deployment(name: &str, replicas: i32) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
            },
        },
    })
}
