//! Clients that hold connections without making progress are cut off within the
//! configured times: headers sent byte by byte, idle keep-alive connections, stalled
//! uploads, too many connections, and watchers that never read (HTTP/1.1 and HTTP/2).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use krake_api_server::Config;
use krake_api_server::server::RunningServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{big_metric, eventually, open_watchers};

/// A server on the embedded store with `tweak`ed limits.
async fn server(tweak: impl FnOnce(&mut Config)) -> (RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_embedded(dir.path());
    config.log_level = "warn".into();
    tweak(&mut config);
    let server = krake_api_server::start(config).await.unwrap();
    (server, dir)
}

/// Read until the server closes the connection (end of stream or reset); what was read.
/// Panics if it stays open for `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 1 << 16];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => panic!(
                "connection still open after {limit:?} ({} bytes read)",
                received.len()
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// One complete HTTP/1.1 response on a keep-alive connection: its head and body text.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("no response")
            .unwrap();
        assert!(n > 0, "closed before a complete response: {text}");
        received.extend_from_slice(&buffer[..n]);
    }
}

#[tokio::test]
async fn headers_sent_byte_by_byte_are_cut_off_after_the_header_read_timeout() {
    let (server, _dir) = server(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Always a little more, never the end of the headers.
    let (mut reader, mut writer) = stream.into_split();
    let drip = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buffer))
        .await
        .expect("a client sending headers forever was not cut off");
    assert!(matches!(read, Ok(0) | Err(_)), "answered: {read:?}");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "closed too early: {elapsed:?}"
    );
    drip.abort();
    // A client that sends its headers in time is served.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let (server, _dir) = server(|c| {
        c.header_read_timeout = Duration::from_secs(30);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // Used twice with pauses shorter than the idle time: kept.
    for _ in 0..2 {
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle_since = Instant::now();
    read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let idle = idle_since.elapsed();
    // Closed by the idle time (1 s), long before the header read time (30 s).
    assert!(
        idle >= Duration::from_millis(400),
        "closed too early: {idle:?}"
    );
    assert!(idle < Duration::from_secs(10));

    // A connection that never sends anything is bounded by the header read time.
    server.stop().await.unwrap();
    let (server, _dir) = server_with_header_timeout_only().await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    read_until_closed(&mut silent, Duration::from_secs(10)).await;
    server.stop().await.unwrap();
}

async fn server_with_header_timeout_only() -> (RunningServer, tempfile::TempDir) {
    server(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(60);
    })
    .await
}

#[tokio::test]
async fn a_stalled_upload_gets_408_problem() {
    let (server, _dir) = server(|c| {
        c.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let start = Instant::now();
    stream
        .write_all(
            b"POST /core/roles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"metadata\": {\"na",
        )
        .await
        .unwrap();
    let response =
        String::from_utf8(read_until_closed(&mut stream, Duration::from_secs(10)).await).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(900));
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{response}"
    );
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let problem: Value = serde_json::from_str(body).unwrap();
    assert_eq!(problem["status"], 408);
    assert_eq!(problem["detail"], "408: Request body not received in time");
    // Nothing was created.
    let listed: Value = reqwest::get(format!("http://{}/core/roles", server.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"], json!([]));
    server.stop().await.unwrap();
}

/// `GET /livez` on a new connection: the status line and the rest of the response.
async fn livez(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    String::from_utf8(read_until_closed(&mut stream, Duration::from_secs(10)).await).unwrap()
}

#[tokio::test]
async fn connections_beyond_the_maximum_get_503_with_retry_after_until_some_close() {
    let (server, _dir) = server(|c| {
        c.max_connections = 2;
    })
    .await;
    // Two served keep-alive connections take both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    for _ in 0..3 {
        let refused = livez(server.addr).await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        let lower = refused.to_ascii_lowercase();
        assert!(lower.contains("retry-after: 1\r\n"), "{refused}");
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{refused}"
        );
        let body = &refused[refused.find("\r\n\r\n").unwrap() + 4..];
        let problem: Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 503);
    }
    // The held connections are still served.
    let stream = &mut held[0];
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(stream).await.starts_with("HTTP/1.1 200"));
    // One closes: new connections are served again.
    drop(held.pop());
    eventually(
        "a new connection to be served",
        Duration::from_secs(10),
        || async {
            let answer = livez(server.addr).await;
            answer
                .starts_with("HTTP/1.1 200")
                .then_some(())
                .ok_or(answer)
        },
    )
    .await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_watcher_that_never_reads_is_disconnected_over_http1_and_http2() {
    let (server, _dir) = server(|c| {
        c.watch_send_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = server.addr;
    let path = "/core/namespaces/ns/metrics?watch&heartbeat=0";

    // HTTP/1.1, keep-alive: reads the response head, then never again.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut h1 = socket.connect(addr).await.unwrap();
    h1.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    h1.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    // HTTP/2 (prior knowledge): the response is open, its body never polled.
    let h2_client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let mut h2 = h2_client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert_eq!(h2.status(), 200);
    assert_eq!(open_watchers(&format!("http://{addr}")).await, 2.0);

    let client = reqwest::Client::new();
    for i in 0..150 {
        let r = client
            .post(format!("http://{addr}/core/namespaces/ns/metrics"))
            .json(&big_metric(&format!("m{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if i % 10 == 9 && open_watchers(&format!("http://{addr}")).await == 0.0 {
            break;
        }
    }
    eventually(
        "both stalled watchers to be dropped",
        Duration::from_secs(20),
        || async {
            let open = open_watchers(&format!("http://{addr}")).await;
            (open == 0.0).then_some(()).ok_or(open)
        },
    )
    .await;

    // HTTP/1.1: the connection is closed, the response cut off (no final chunk), although
    // the client never read and never closed.
    let received = read_until_closed(&mut h1, Duration::from_secs(10)).await;
    assert!(
        !received.ends_with(b"\r\n0\r\n\r\n"),
        "the response ended normally: the server waited for the client to read it all"
    );
    // HTTP/2: the response fails instead of ending normally.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match h2.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the HTTP/2 response is still open");
    assert!(ended.is_err(), "the HTTP/2 response ended normally");
    server.stop().await.unwrap();
}
