//! Transport and authentication: TLS with the double's CA, bearer tokens, client
//! certificates, 401 for a wrong or missing credential, exact Status bodies.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube_double::{Credential, Options};
use serde_json::json;

use crate::common::{api_error, client, client_for, double, double_with};

#[tokio::test]
async fn tls_accepts_a_token_or_a_client_certificate_and_refuses_others_with_401() {
    let double = double().await;
    assert!(double.url().starts_with("https://127.0.0.1:"));

    let admin = client(&double).await;
    let version = admin.apiserver_version().await.expect("version over TLS");
    assert_eq!(version.major, "1");

    let token_only =
        client_for(&double.kubeconfig_with(&Credential::Token(double.token().into()))).await;
    Api::<Namespace>::all(token_only)
        .get("default")
        .await
        .expect("token auth");

    let cert = double
        .issue_client_cert("alice")
        .expect("a client certificate");
    let cert_only = client_for(&double.kubeconfig_with(&cert)).await;
    Api::<Namespace>::all(cert_only)
        .get("default")
        .await
        .expect("client certificate auth");

    for credential in [Credential::Token("wrong".into()), Credential::Anonymous] {
        let c = client_for(&double.kubeconfig_with(&credential)).await;
        let status = api_error(Api::<Namespace>::all(c).get("default").await);
        assert_eq!(
            (status.code, status.reason.as_str()),
            (401, "Unauthorized"),
            "{credential:?}"
        );
    }
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let double = double().await;
    let other = double_with(Options::default()).await;
    let foreign = other.issue_client_cert("mallory").unwrap();
    let c = client_for(&double.kubeconfig_with(&foreign)).await;
    // The handshake fails (the certificate is not verified): no request gets through.
    assert!(Api::<Namespace>::all(c).get("default").await.is_err());
}

#[tokio::test]
async fn plain_http_errors_are_exact_status_objects() {
    let double = double_with(Options {
        tls: false,
        ..Options::default()
    })
    .await;
    assert!(double.url().starts_with("http://"));
    let http = reqwest::Client::new();
    let response = http
        .get(format!(
            "{}/api/v1/namespaces/default/configmaps/missing",
            double.url()
        ))
        .bearer_auth(double.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "configmaps \"missing\" not found", "reason": "NotFound",
            "details": {"name": "missing", "group": "", "kind": "configmaps"}, "code": 404,
        })
    );
    let response = http
        .get(format!("{}/api/v1/namespaces", double.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "Unauthorized");

    let response = http
        .put(format!(
            "{}/api/v1/namespaces/default/configmaps",
            double.url()
        ))
        .bearer_auth(double.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "MethodNotAllowed");

    let response = http
        .post(format!(
            "{}/api/v1/namespaces/default/configmaps",
            double.url()
        ))
        .bearer_auth(double.token())
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "UnsupportedMediaType");
}

#[tokio::test]
async fn the_kubeconfig_is_written_private() {
    let double = double().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    double.write_kubeconfig(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(written["clusters"][0]["cluster"]["server"], double.url());
    let c = client_for(&written).await;
    Api::<Namespace>::all(c)
        .get("kube-system")
        .await
        .expect("the written kubeconfig works");
}
