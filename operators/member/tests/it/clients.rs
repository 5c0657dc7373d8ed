//! Clients built from kubeconfigs talk to a real HTTPS server; the cache reuses, rebuilds
//! and evicts them; timeouts and the absence of retries hold.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::*;
use krake_member::{MemberClients, MemberConfig, MemberError, Timeouts};
use serde_json::{Value, json};

fn members() -> MemberClients {
    MemberClients::new(MemberConfig::default())
}

#[tokio::test]
async fn token_and_ca_data_over_tls() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    let member = members()
        .get("uid-1", &kubeconfig_token(&api.url, &api.ca_pem, TOKEN))
        .await
        .unwrap();
    let version = member.client().apiserver_version().await.unwrap();
    assert_eq!(version.git_version, "v1.33.0");
    assert_eq!(api.count("GET /version"), 1);
    assert_eq!(*api.peers.lock().unwrap(), vec![None]);
}

#[tokio::test]
async fn client_certificate_over_tls() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    let member = members()
        .get(
            "uid-1",
            &kubeconfig_client_cert(&api.url, &api.ca_pem, &pki.client),
        )
        .await
        .unwrap();
    member.client().apiserver_version().await.unwrap();
    member.watch_client().apiserver_version().await.unwrap();
    assert_eq!(member.default_namespace(), "apps");
    assert_eq!(
        *api.peers.lock().unwrap(),
        vec![Some("krake".to_string()), Some("krake".to_string())]
    );
}

#[tokio::test]
async fn a_wrong_token_is_a_401_and_an_unknown_ca_a_tls_error() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    let members = members();
    let wrong = members
        .get("uid-1", &kubeconfig_token(&api.url, &api.ca_pem, "wrong"))
        .await
        .unwrap();
    match wrong.client().apiserver_version().await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 401),
        other => panic!("{other:?}"),
    }
    let other_ca = Pki::new();
    let untrusted = members
        .get(
            "uid-2",
            &kubeconfig_token(&api.url, other_ca.ca.cert_pem(), TOKEN),
        )
        .await
        .unwrap();
    let err = untrusted.client().apiserver_version().await.unwrap_err();
    assert!(!matches!(err, kube::Error::Api(_)), "{err:?}");
    assert_eq!(
        api.count("GET"),
        1,
        "no request over an unverified connection"
    );
}

#[tokio::test]
async fn insecure_skip_tls_verify_is_allowed_by_default_and_refusable() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    let mut kc = Value::Object(kubeconfig_token(&api.url, &api.ca_pem, TOKEN));
    let cluster = kc["clusters"][0]["cluster"].as_object_mut().unwrap();
    cluster.remove("certificate-authority-data");
    cluster.insert("insecure-skip-tls-verify".into(), json!(true));
    let Value::Object(kc) = kc else {
        unreachable!()
    };
    let member = members().get("uid-1", &kc).await.unwrap();
    member.client().apiserver_version().await.unwrap();

    let strict = MemberClients::new(MemberConfig {
        allow_insecure_skip_tls_verify: false,
        ..MemberConfig::default()
    });
    match strict.get("uid-1", &kc).await {
        Err(MemberError::UnsupportedKey { key, .. }) => {
            assert_eq!(key, "insecure-skip-tls-verify")
        }
        other => panic!("{other:?}"),
    }
    assert!(strict.is_empty());
}

#[tokio::test]
async fn the_cache_reuses_rebuilds_on_kubeconfig_change_and_evicts() {
    let pki = Pki::new();
    let a = FakeApi::start(&pki).await;
    let b = FakeApi::start(&pki).await;
    let members = members();
    let kc_a = kubeconfig_token(&a.url, &a.ca_pem, TOKEN);

    let first = members.get("uid-1", &kc_a).await.unwrap();
    let again = members.get("uid-1", &kc_a).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "same kubeconfig, same client");

    // The same kubeconfig with its keys in another order is the same kubeconfig.
    let mut reordered: Vec<(String, Value)> = kc_a.clone().into_iter().collect();
    reordered.reverse();
    let reordered = reordered.into_iter().collect();
    assert!(Arc::ptr_eq(
        &first,
        &members.get("uid-1", &reordered).await.unwrap()
    ));

    // Another cluster with the same kubeconfig has its own client.
    let other = members.get("uid-2", &kc_a).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &other));

    // The kubeconfig changes to another server: a new client, which talks to it.
    let moved = members
        .get("uid-1", &kubeconfig_token(&b.url, &b.ca_pem, TOKEN))
        .await
        .unwrap();
    assert!(!Arc::ptr_eq(&first, &moved));
    moved.client().apiserver_version().await.unwrap();
    assert_eq!((a.count("GET /version"), b.count("GET /version")), (0, 1));
    assert!(Arc::ptr_eq(&moved, &members.cached("uid-1").unwrap()));

    assert!(members.evict("uid-1"));
    assert!(!members.evict("uid-1"));
    assert!(members.cached("uid-1").is_none());
    assert_eq!(members.uids(), vec!["uid-2".to_string()]);
}

fn quick() -> MemberClients {
    MemberClients::new(MemberConfig {
        timeouts: Timeouts {
            connect: Duration::from_millis(500),
            read: Duration::from_millis(500),
            write: Duration::from_millis(500),
        },
        ..MemberConfig::default()
    })
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timely_error() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    api.behaviour.hang_requests.store(true, Ordering::SeqCst);
    let member = quick()
        .get("uid-1", &kubeconfig_token(&api.url, &api.ca_pem, TOKEN))
        .await
        .unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), member.client().apiserver_version())
        .await
        .expect("the client's own read timeout fires");
    assert!(result.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        api.count("GET /version"),
        1,
        "the request reached the server"
    );
}

#[tokio::test]
async fn a_server_that_never_completes_tls_is_a_timely_error() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    api.behaviour.hang_handshake.store(true, Ordering::SeqCst);
    let member = quick()
        .get("uid-1", &kubeconfig_token(&api.url, &api.ca_pem, TOKEN))
        .await
        .unwrap();
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), member.client().apiserver_version())
        .await
        .expect("the client's own connect timeout fires");
    assert!(result.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_errors_are_not_retried_by_the_client() {
    let pki = Pki::new();
    let api = FakeApi::start(&pki).await;
    api.behaviour.fail_with.store(503, Ordering::SeqCst);
    let member = members()
        .get("uid-1", &kubeconfig_token(&api.url, &api.ca_pem, TOKEN))
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), member.client().apiserver_version())
        .await
        .expect("no retries with backoff behind the caller's back");
    match result {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 503),
        other => panic!("{other:?}"),
    }
    api.behaviour.fail_with.store(429, Ordering::SeqCst);
    member.client().apiserver_version().await.unwrap_err();
    assert_eq!(api.count("GET /version"), 2, "one request per call");
}
