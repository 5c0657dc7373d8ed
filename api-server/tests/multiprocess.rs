//! Multi-process tests: real `krake-api` processes on a real etcd or the embedded store.
//! Read-your-writes across two servers, restarts mid-traffic, graceful shutdown.
//!
//! A test binary of its own, outside `tests/it/`: it starts and kills server processes
//! with timing assumptions that the in-process tests running alongside would disturb.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use krake_testkit::api_server::ApiServerProcess;
use krake_testkit::etcd::EtcdServer;
use krake_testkit::http;
use serde_json::{Value, json};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_krake-api"))
}

fn application(name: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "manifest": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}],
            "constraints": {"cluster": {}}
        }
    })
}

fn apps_url(base: &str) -> String {
    format!("{base}/kubernetes/namespaces/ns1/applications")
}

#[tokio::test]
async fn a_write_through_one_server_is_read_through_another() {
    let etcd = EtcdServer::start().await;
    let endpoint = etcd.endpoint();
    let args = ["--etcd-endpoints", endpoint.as_str()];
    let a = ApiServerProcess::start(binary(), &args).await;
    let b = ApiServerProcess::start(binary(), &args).await;
    let client = reqwest::Client::new();

    for i in 0..20 {
        let name = format!("app{i}");
        let created = http::create(&client, &apps_url(&a.url()), &application(&name)).await;
        // Immediately, with no delay: a linearizable read through the other server.
        let read = client
            .get(format!("{}/{name}", apps_url(&b.url())))
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "write through A not visible through B");
        let read: Value = read.json().await.unwrap();
        assert_eq!(read, created);

        let mut changed = read.clone();
        changed["metadata"]["labels"] = json!({"round": i.to_string()});
        let updated = client
            .put(format!("{}/{name}", apps_url(&b.url())))
            .json(&changed)
            .send()
            .await
            .unwrap();
        assert_eq!(updated.status(), 200);
        let listed = http::get(&client, &apps_url(&a.url())).await;
        let item = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .cloned()
            .unwrap();
        assert_eq!(item["metadata"]["labels"]["round"], i.to_string());
    }
}

#[tokio::test]
async fn a_watch_on_one_server_sees_writes_through_another() {
    let etcd = EtcdServer::start().await;
    let endpoint = etcd.endpoint();
    let args = ["--etcd-endpoints", endpoint.as_str()];
    let a = ApiServerProcess::start(binary(), &args).await;
    let b = ApiServerProcess::start(binary(), &args).await;
    let client = reqwest::Client::new();
    let mut watch = client
        .get(format!("{}?watch&heartbeat=0", apps_url(&b.url())))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    for i in 0..5 {
        http::create(&client, &apps_url(&a.url()), &application(&format!("w{i}"))).await;
    }
    let mut buffer = String::new();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), watch.chunk())
            .await
            .expect("watch stalled")
            .unwrap()
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(pos) = buffer.find('\n') {
            let line: String = buffer.drain(..=pos).collect();
            if line.trim().is_empty() {
                continue;
            }
            let event: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(event["type"], "ADDED");
            seen.push(
                event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    assert_eq!(seen, vec!["w0", "w1", "w2", "w3", "w4"]);
}

/// Creates under load, SIGTERM, restart on the same store: every acknowledged create is
/// still there.
async fn restart_mid_traffic_loses_nothing(args: &[&str]) {
    let mut server = ApiServerProcess::start(binary(), args).await;
    let url = apps_url(&server.url());
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let url = url.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            for i in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("r{w}-{i}");
                match client.post(&url).json(&application(&name)).send().await {
                    Ok(r) if r.status() == 200 => acknowledged.push(name),
                    // Refused or cut-off requests during shutdown were never acknowledged.
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = server.terminate().await;
    stop.store(true, Ordering::Relaxed);
    assert!(
        status.success(),
        "krake-api exited with {status} on SIGTERM"
    );
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(
        acknowledged.len() > 10,
        "too little traffic before the stop: {}",
        acknowledged.len()
    );

    server.restart().await;
    let listed = http::get(&reqwest::Client::new(), &apps_url(&server.url())).await;
    let names: std::collections::HashSet<String> = http::item_names(&listed).into_iter().collect();
    for name in &acknowledged {
        assert!(
            names.contains(name),
            "acknowledged create of {name} lost across the restart"
        );
    }
}

#[tokio::test]
async fn restart_mid_traffic_on_the_embedded_store_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    restart_mid_traffic_loses_nothing(&["--data-dir", &data]).await;
}

#[tokio::test]
async fn restart_mid_traffic_on_etcd_loses_nothing() {
    let etcd = EtcdServer::start().await;
    let endpoint = etcd.endpoint();
    restart_mid_traffic_loses_nothing(&["--etcd-endpoints", &endpoint]).await;
}

#[tokio::test]
async fn sigterm_closes_watch_streams_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let mut server = ApiServerProcess::start(binary(), &["--data-dir", &data]).await;
    let client = reqwest::Client::new();
    let mut watch = client
        .get(format!("{}?watch&heartbeat=1", apps_url(&server.url())))
        .send()
        .await
        .unwrap();
    assert_eq!(watch.status(), 200);
    let reader = tokio::spawn(async move {
        // Reads heartbeats until the server ends the stream; a clean end is `Ok(None)`.
        loop {
            match watch.chunk().await {
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = server.terminate().await;
    assert!(status.success(), "exit status {status}");
    let ended = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("stream not closed")
        .unwrap();
    assert_eq!(ended, Ok(()), "watch stream was not terminated cleanly");
}

#[test]
fn invalid_configuration_stops_with_a_one_line_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "authorization: bogus\n",
            "Unknown authorization strategy 'bogus'",
        ),
        ("port: [1\n", "not valid YAML"),
        (
            "tls: {enabled: true, cert: /nonexistent/cert.pem, key: /nonexistent/key.pem, client_ca: \"\"}\n",
            "cannot read certificate /nonexistent/cert.pem: No such file",
        ),
    ];
    for (yaml, expected) in cases {
        let path = dir.path().join("api.yaml");
        std::fs::write(&path, yaml).unwrap();
        let output = std::process::Command::new(binary())
            .args(["--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "not one line: {stderr}"
        );
        assert!(stderr.contains(expected), "{stderr}");
    }
    let output = std::process::Command::new(binary())
        .args(["--config", "/nonexistent/api.yaml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read /nonexistent/api.yaml"));
}

/// Upstream's `api.yaml` shape, as upstream's own test configurations write it: disabled
/// strategies keep placeholder endpoints that are no URLs at all.
const UPSTREAM_API_YAML: &str = r#"
port: 8080
etcd: {host: 127.0.0.1, port: 2379, retry_transactions: 0}
docs: {problem_base_url: http://example.com/problem}
tls: {enabled: false, cert: cert_path, key: key_path, client_ca: client_ca_path}
authentication:
  allow_anonymous: true
  cors_origin: http://example.com
  strategy:
    keystone: {enabled: false, endpoint: "not a url"}
    keycloak: {enabled: false, endpoint: "http://[::1", realm: krake}
    oidc: {enabled: false, issuer: "issuer without scheme"}
    static: {enabled: true, name: testuser}
authorization: always-allow
default_roles: []
default_role_bindings: []
log:
  version: 1
  level: INFO
  handlers:
    console: {class: logging.StreamHandler, stream: "ext://sys.stdout"}
"#;

#[tokio::test]
async fn upstream_api_yaml_with_placeholders_in_disabled_strategies_serves() {
    use std::process::Stdio;
    use tokio::io::AsyncReadExt;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("api.yaml");
    std::fs::write(&config, UPSTREAM_API_YAML).unwrap();
    let port = krake_testkit::free_port().to_string();
    let mut child = tokio::process::Command::new(binary())
        .args(["--config", config.to_str().unwrap()])
        .args(["--storage", "embedded", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--host", "127.0.0.1", "--port", &port])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let me = krake_testkit::eventually("the server to answer", Duration::from_secs(20), || {
        let request = client.get(format!("{base}/me"));
        async move {
            match request.send().await {
                Ok(r) if r.status() == 200 => Ok(r.json::<Value>().await.unwrap()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    // The enabled static strategy is in force.
    assert_eq!(me["user"], "testuser");
    http::create(&client, &apps_url(&base), &application("a")).await;

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("no exit after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    for key in [
        "keystone.endpoint 'not a url'",
        "keycloak.endpoint 'http://[::1'",
        "oidc.issuer 'issuer without scheme'",
    ] {
        let line = stderr
            .lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no warning about {key}: {stderr}"));
        assert!(line.contains("WARN"), "{line}");
    }
}

#[test]
fn an_enabled_strategy_with_an_invalid_endpoint_stops_with_a_one_line_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.yaml");
    let yaml = UPSTREAM_API_YAML.replace(
        r#"keystone: {enabled: false, endpoint: "not a url"}"#,
        r#"keystone: {enabled: true, endpoint: "not a url"}"#,
    );
    assert_ne!(yaml, UPSTREAM_API_YAML);
    std::fs::write(&path, yaml).unwrap();
    let output = std::process::Command::new(binary())
        .args(["--config", path.to_str().unwrap(), "--storage", "embedded"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(
        stderr.contains("keystone endpoint 'not a url' is not a valid URL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_with_a_stalled_watch_and_a_half_sent_request_exits_within_the_drain_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_string();
    let mut server = ApiServerProcess::start(
        binary(),
        &[
            "--data-dir",
            &data,
            "--shutdown-drain-timeout",
            "2",
            // Neither the watcher nor the upload is cut off before the stop.
            "--watch-send-timeout",
            "600",
            "--body-read-timeout",
            "60",
        ],
    )
    .await;
    let addr = server.url().trim_start_matches("http://").to_string();
    let metrics = format!("{}/core/namespaces/ns/metrics", server.url());

    // A watcher that reads its response head, then never again, with events queued for
    // it beyond every buffer between it and the server.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut watcher = socket.connect(addr.parse().unwrap()).await.unwrap();
    watcher
        .write_all(b"GET /core/namespaces/ns/metrics?watch&heartbeat=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    watcher.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let labels: serde_json::Map<String, Value> = (0..1000)
        .map(|i| (format!("label-{i:03}"), json!("x".repeat(50))))
        .collect();
    let client = reqwest::Client::new();
    for i in 0..100 {
        let metric = json!({
            "metadata": {"name": format!("m{i}"), "labels": labels},
            "spec": {"allowed_values": [], "min": 0, "max": 1, "provider": {"name": "p", "metric": "m"}}
        });
        http::create(&client, &metrics, &metric).await;
    }

    // A request whose body stops half-way.
    let mut upload = tokio::net::TcpStream::connect(&addr).await.unwrap();
    upload
        .write_all(
            b"POST /core/roles HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"metadata\": {\"na",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let start = std::time::Instant::now();
    let status = server.terminate().await;
    let took = start.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(6),
        "stopping took {took:?} with a drain time of 2 s"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "stopped after {took:?}: the drain did not wait for the requests"
    );
    drop((watcher, upload));
}
