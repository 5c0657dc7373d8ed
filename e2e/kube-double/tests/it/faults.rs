//! Fault injection: unreachable and back on the same port, slow, 5xx, hang, node
//! conditions set by the test, and the binary's control endpoint.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, WatchEvent, WatchParams};
use kube_double::{Fault, Options};
use serde_json::json;

use crate::common::{api_error, client, double, double_with};

#[tokio::test]
async fn unreachable_refuses_connections_and_comes_back_on_the_same_port() {
    let double = double().await;
    let c = client(&double).await;
    let addr = double.addr();
    c.apiserver_version().await.unwrap();
    double.set_reachable(false).await.unwrap();
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    match c.apiserver_version().await {
        Err(kube::Error::Api(s)) => panic!("expected a transport error, got API status {s:?}"),
        Err(_) => {}
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
    double.set_reachable(true).await.unwrap();
    assert_eq!(double.addr(), addr);
    c.apiserver_version().await.expect("back on the same port");
}

#[tokio::test]
async fn slow_5xx_and_hang() {
    let double = double().await;
    let namespaces: Api<Namespace> = Api::all(client(&double).await);

    double.set_fault(Fault::Slow(Duration::from_millis(400)));
    let start = Instant::now();
    namespaces.get("default").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(400));

    for (code, reason) in [
        (503, "ServiceUnavailable"),
        (500, "InternalError"),
        (504, "Timeout"),
    ] {
        double.set_fault(Fault::Status(code));
        let status = api_error(namespaces.get("default").await);
        assert_eq!((status.code, status.reason.as_str()), (code, reason));
    }

    double.set_fault(Fault::Hang);
    let hung = tokio::time::timeout(Duration::from_millis(500), namespaces.get("default")).await;
    assert!(hung.is_err(), "no answer while hanging");
    let pending = tokio::spawn({
        let namespaces = namespaces.clone();
        async move { namespaces.get("default").await }
    });
    double.set_fault(Fault::None);
    pending
        .await
        .unwrap()
        .expect("answered once the hang is cleared");
}

#[tokio::test]
async fn node_conditions_set_by_the_test_are_seen_and_watched() {
    let double = double().await;
    let nodes: Api<Node> = Api::all(client(&double).await);
    let stored = double
        .set_node_conditions("node-1", &[("Ready", "True"), ("MemoryPressure", "False")])
        .unwrap();
    let rv = stored["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let node = nodes.get("node-1").await.unwrap();
    let conditions = node.status.unwrap().conditions.unwrap();
    assert_eq!(
        conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect::<Vec<_>>(),
        vec![("Ready", "True"), ("MemoryPressure", "False")]
    );

    let mut events = nodes
        .watch(&WatchParams::default().timeout(5).disable_bookmarks(), &rv)
        .await
        .unwrap()
        .boxed();
    double
        .set_node_conditions("node-1", &[("Ready", "False")])
        .unwrap();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Modified(n)) => {
            let c = n.status.unwrap().conditions.unwrap();
            assert_eq!(
                (c[0].type_.as_str(), c[0].status.as_str()),
                ("Ready", "False")
            );
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
}

#[tokio::test]
async fn the_control_endpoint_injects_faults() {
    let double = double_with(Options {
        tls: false,
        ..Options::default()
    })
    .await;
    let http = reqwest::Client::new();
    let control = format!("{}/kube-double/faults", double.url());
    let post = |body: serde_json::Value| {
        http.post(&control)
            .bearer_auth(double.token())
            .json(&body)
            .send()
    };
    assert_eq!(
        post(json!({"fault": "status", "code": 503}))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let r = http
        .get(format!("{}/api/v1/namespaces", double.url()))
        .bearer_auth(double.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        post(json!({"fault": "none"}))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let r = http
        .get(format!("{}/api/v1/namespaces", double.url()))
        .bearer_auth(double.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        post(json!({"fault": "bogus"}))
            .await
            .unwrap()
            .status()
            .as_u16(),
        400
    );
    let r = http
        .post(&control)
        .json(&json!({"fault": "hang"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "the control endpoint needs credentials"
    );
}
