//! TLS: server verification against a CA bundle and client-certificate authentication
//! against an API server started with `config.tls`.

use std::time::Duration;

use krake_api_server::Config;
use krake_api_server::config::TlsConfig;
use krake_client::{Client, ClientConfig, Error, Method};
use krake_testkit::pki::{DevPki, write_dev_pki};

async fn pki(dir: &std::path::Path) -> DevPki {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || write_dev_pki(&dir, &[]))
        .await
        .unwrap()
        .expect("development PKI")
}

fn client(url: &str, config: impl FnOnce(&mut ClientConfig)) -> Result<Client, Error> {
    let mut c = ClientConfig::new(url);
    c.timeout = Duration::from_secs(10);
    c.retries = 0;
    config(&mut c);
    Client::new(c)
}

#[tokio::test]
async fn client_certificate_identifies_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(&dir.path().join("pki")).await;
    let mut config = Config::for_embedded(dir.path().join("data"));
    config.tls = Some(TlsConfig {
        cert: pki.server.cert.clone(),
        key: pki.server.key.clone(),
        client_ca: Some(pki.ca_cert.clone()),
    });
    config.allow_anonymous = false;
    let server = krake_api_server::start(config)
        .await
        .expect("TLS server starts");
    let url = format!("https://localhost:{}", server.addr.port());
    let scheduler = pki
        .client("system:scheduler")
        .expect("scheduler certificate");

    // Trusted CA + client certificate: authenticated as the certificate's CN.
    let authenticated = client(&url, |c| {
        c.ca = Some(pki.ca_cert.clone());
        c.client_cert = Some(scheduler.cert.clone());
        c.client_key = Some(scheduler.key.clone());
    })
    .unwrap();
    let me: serde_json::Value = authenticated
        .request_json(Method::GET, "/me", None)
        .await
        .unwrap();
    assert_eq!(me["user"], "system:scheduler");
    // Typed calls work over TLS too (HTTP/2 or HTTP/1.1, whatever ALPN chose).
    let roles = authenticated
        .api::<krake_crds::core::Role>()
        .list(None)
        .await
        .unwrap();
    assert!(roles.items.is_empty());

    // Trusted CA without client certificate: anonymous access is off → 401.
    let anonymous = client(&url, |c| c.ca = Some(pki.ca_cert.clone())).unwrap();
    match anonymous
        .request_json::<serde_json::Value>(Method::GET, "/me", None)
        .await
        .unwrap_err()
    {
        Error::Api { status, .. } => assert_eq!(status, 401),
        other => panic!("expected 401, got {other:?}"),
    }

    // The platform roots do not trust the development CA: TLS handshake fails.
    let untrusting = client(&url, |_| {}).unwrap();
    let err = untrusting
        .request_json::<serde_json::Value>(Method::GET, "/me", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");

    // Another user's certificate is another identity.
    let admin = pki.client("system:admin").unwrap();
    let admin_client = client(&url, |c| {
        c.ca = Some(pki.ca_cert.clone());
        c.client_cert = Some(admin.cert.clone());
        c.client_key = Some(admin.key.clone());
    })
    .unwrap();
    let me: serde_json::Value = admin_client
        .request_json(Method::GET, "/me", None)
        .await
        .unwrap();
    assert_eq!(me["user"], "system:admin");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unusable_tls_files_fail_at_construction() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path()).await;
    let scheduler = pki.client("system:scheduler").unwrap();
    let admin = pki.client("system:admin").unwrap();

    let missing_key = client("https://localhost:1", |c| {
        c.client_cert = Some(scheduler.cert.clone());
        c.client_key = Some(dir.path().join("nope-key.pem"));
    })
    .unwrap_err();
    assert!(
        matches!(&missing_key, Error::Config(m) if m.contains("nope-key.pem")),
        "{missing_key}"
    );

    let cert_without_key = client("https://localhost:1", |c| {
        c.client_cert = Some(scheduler.cert.clone());
    })
    .unwrap_err();
    assert!(matches!(cert_without_key, Error::Config(_)));

    // A key that does not belong to the certificate.
    let mismatch = client("https://localhost:1", |c| {
        c.client_cert = Some(scheduler.cert.clone());
        c.client_key = Some(admin.key.clone());
    })
    .unwrap_err();
    assert!(
        matches!(&mismatch, Error::Config(m) if m.contains("does not fit")),
        "{mismatch}"
    );

    // A certificate file given as key: no private key inside. The message names the file
    // but never echoes its content.
    let not_a_key = client("https://localhost:1", |c| {
        c.client_cert = Some(scheduler.cert.clone());
        c.client_key = Some(scheduler.cert.clone());
    })
    .unwrap_err();
    let message = not_a_key.to_string();
    assert!(message.contains("no valid private key"), "{message}");
    assert!(!message.contains("BEGIN"), "{message}");

    assert!(matches!(
        client("ftp://localhost", |_| {}),
        Err(Error::Config(_))
    ));
    assert!(matches!(client("not a url", |_| {}), Err(Error::Config(_))));
}
