//! The Prometheus provider against a real Prometheus server (Debian package
//! `prometheus`, installed by `hack/install-tools.sh`) scraping a tiny exporter served
//! by the test. The test fails, never skips, when the binary is missing.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use krake_client::transport::{Transport, TransportConfig};
use krake_crds::core::ReasonCode;
use krake_scheduler::providers::{MetricsProvider, PrometheusProvider};
use krake_testkit::free_port;

fn prometheus_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("prometheus"));
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the `prometheus` binary is required by this test but was not found in PATH: \
         install it with `hack/install-tools.sh` (Debian package `prometheus`)"
    );
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Query until `expected` is returned (Prometheus needs a few scrapes).
async fn wait_for(provider: &PrometheusProvider, name: &str, expected: f64, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = provider.query(name).await;
        if got.as_ref().ok() == Some(&expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never answered {expected} for {name} (last: {got:?}); log:\n{}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn prometheus_provider_against_a_real_server() {
    let binary = prometheus_binary();

    // The exporter: one gauge whose value the test changes.
    let value = Arc::new(Mutex::new(0.42_f64));
    let exported = value.clone();
    let exporter = Router::new().route(
        "/metrics",
        get(move || {
            let v = *exported.lock().unwrap();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    format!("# TYPE krake_test_heat gauge\nkrake_test_heat {v}\n"),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, exporter).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: krake-test\n    static_configs:\n      \
             - targets: ['{exporter_addr}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.path().join("prometheus.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut child = tokio::process::Command::new(&binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));

    let http = Transport::new(&TransportConfig::default()).unwrap();
    let provider = PrometheusProvider::new(
        "real",
        &format!("http://127.0.0.1:{port}"),
        http,
        Duration::from_secs(5),
    );
    wait_for(&provider, "krake_test_heat", 0.42, &log).await;

    // A new value is picked up at the next scrapes.
    *value.lock().unwrap() = 0.5;
    wait_for(&provider, "krake_test_heat", 0.5, &log).await;

    // A series Prometheus does not have.
    let err = provider.query("krake_test_absent").await.unwrap_err();
    assert_eq!(err.reason().code, ReasonCode::InvalidMetric, "{err}");

    child.kill().await.unwrap();
    // Once stopped, the provider is unreachable.
    let err = provider.query("krake_test_heat").await.unwrap_err();
    assert_eq!(
        err.reason().code,
        ReasonCode::UnreachableMetricsProvider,
        "{err}"
    );
}
