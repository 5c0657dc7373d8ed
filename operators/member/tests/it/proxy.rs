//! Proxy variables of the environment are not used: requests go straight to the member
//! cluster. Checked in a child process, since the environment is per process and
//! changing it in a multi-threaded test binary is not sound.

use std::time::Duration;

use crate::common::*;
use krake_member::{MemberClients, MemberConfig};
use tokio::net::TcpListener;

const KUBECONFIG_VAR: &str = "KRAKE_MEMBER_TEST_KUBECONFIG";

#[tokio::test]
async fn proxy_variables_of_the_environment_are_ignored() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    // A "proxy" that records whether anyone connects to it.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let kubeconfig = kubeconfig_token(&api.url, &api.ca_pem, TOKEN);
    let output = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "proxy::child_connects_with_proxy_variables_set",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(
            KUBECONFIG_VAR,
            serde_json::Value::Object(kubeconfig).to_string(),
        )
        .env("HTTPS_PROXY", &proxy_url)
        .env("https_proxy", &proxy_url)
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env("all_proxy", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        api.count("GET /version"),
        2,
        "both clients went to the server"
    );
    // `timeout` polls `accept` once before the deadline: a connection made by the
    // child would be waiting in the backlog.
    assert!(
        tokio::time::timeout(Duration::ZERO, proxy.accept())
            .await
            .is_err(),
        "the client connected to the environment's proxy"
    );
}

/// Run by `proxy_variables_of_the_environment_are_ignored` in a child process whose
/// environment names a proxy.
#[tokio::test]
#[ignore = "run by proxy_variables_of_the_environment_are_ignored in a child process"]
async fn child_connects_with_proxy_variables_set() {
    let kubeconfig = std::env::var(KUBECONFIG_VAR).expect("run by the parent test");
    let serde_json::Value::Object(kubeconfig) = serde_json::from_str(&kubeconfig).unwrap() else {
        panic!("not a kubeconfig")
    };
    assert!(std::env::var("HTTPS_PROXY").is_ok());
    let member = MemberClients::new(MemberConfig::default())
        .get("uid-1", &kubeconfig)
        .await
        .unwrap();
    member.client().apiserver_version().await.unwrap();
    member
        .watch_client()
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}
