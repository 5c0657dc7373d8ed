//! Retry policy and time limits against a scripted HTTP/1.1 server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use krake_client::transport::{Transport, TransportConfig};
use krake_client::{Client, ClientConfig, Error};
use krake_crds::core::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ROLE: &str = r#"{"api": "core", "kind": "Role", "metadata": {"name": "r"}, "rules": []}"#;

/// Serve `responses(n)` (status line + body) for the n-th request (0-based); `None`
/// never answers. Returns the base URL and the request counter.
async fn scripted(
    responses: impl Fn(usize) -> Option<(&'static str, &'static str)> + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let responses = Arc::new(responses);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let responses = responses.clone();
            tokio::spawn(async move {
                // Read the request head and body (closing with unread data would reset
                // the connection).
                let mut buf = vec![0u8; 65536];
                let mut read = 0;
                let head_end = loop {
                    if let Some(p) = buf[..read].windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    match socket.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => read += k,
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while read < head_end + length {
                    match socket.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => read += k,
                    }
                }
                match responses(n) {
                    Some((status, body)) => {
                        let response = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    None => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                }
            });
        }
    });
    (url, count)
}

fn client(url: &str, retries: u32, timeout: Duration) -> Client {
    Client::new(ClientConfig {
        retries,
        timeout,
        ..ClientConfig::new(url)
    })
    .unwrap()
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let (url, count) = scripted(|n| {
        if n < 2 {
            Some((
                "503 Service Unavailable",
                r#"{"status": 503, "detail": "storage unavailable"}"#,
            ))
        } else {
            Some(("200 OK", ROLE))
        }
    })
    .await;
    let role = client(&url, 3, Duration::from_secs(5))
        .api::<Role>()
        .get(None, "r")
        .await
        .unwrap();
    assert_eq!(role.metadata.name, "r");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (url, count) = scripted(|_| Some(("500 Internal Server Error", "oops"))).await;
    let start = Instant::now();
    let err = client(&url, 2, Duration::from_secs(5))
        .api::<Role>()
        .get(None, "r")
        .await
        .unwrap_err();
    match err {
        Error::Api { status, detail, .. } => {
            assert_eq!(status, 500);
            assert_eq!(detail, "oops");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(count.load(Ordering::SeqCst), 3);
    // Backoff between attempts: 200 ms then 400 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let (url, count) = scripted(|_| {
        Some((
            "422 Unprocessable Entity",
            r#"{"type": "about:blank", "status": 422, "detail": "{'metadata': ...}"}"#,
        ))
    })
    .await;
    let err = client(&url, 5, Duration::from_secs(5))
        .api::<Role>()
        .get(None, "r")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { status: 422, .. }), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1);

    let (url, count) =
        scripted(|_| Some(("409 Conflict", r#"{"title": "TRANSACTION_ERROR"}"#))).await;
    let err = client(&url, 5, Duration::from_secs(5))
        .api::<Role>()
        .get(None, "r")
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn time_limit_per_request_and_retry_after_timeout() {
    // First request hangs, second answers.
    let (url, count) = scripted(|n| if n == 0 { None } else { Some(("200 OK", ROLE)) }).await;
    let start = Instant::now();
    let role = client(&url, 1, Duration::from_millis(300))
        .api::<Role>()
        .get(None, "r")
        .await
        .unwrap();
    assert_eq!(role.metadata.name, "r");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert!(start.elapsed() >= Duration::from_millis(300));

    let (url, _) = scripted(|_| None).await;
    let err = client(&url, 0, Duration::from_millis(200))
        .api::<Role>()
        .get(None, "r")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
}

#[tokio::test]
async fn transport_helpers_return_status_and_body() {
    let (url, _) = scripted(|n| {
        if n == 0 {
            Some(("200 OK", r#"{"data": [1, 2]}"#))
        } else {
            Some(("404 Not Found", r#"{"error": "no"}"#))
        }
    })
    .await;
    let http = Transport::new(&TransportConfig::default()).unwrap();
    let ok = http
        .get_json(&format!("{url}/q"), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(ok.status.is_success());
    let value: serde_json::Value = ok.json().unwrap();
    assert_eq!(value["data"][1], 2);
    let missing = http
        .post_json(
            &format!("{url}/q"),
            &serde_json::json!({"q": 1}),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(missing.status.as_u16(), 404);
    assert!(
        missing
            .into_json::<serde_json::Value>()
            .unwrap_err()
            .is_not_found()
    );
}
