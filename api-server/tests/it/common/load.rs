//! Objects and readings for the tests of slow and stuck clients.

use serde_json::{Value, json};

/// A Metric of about 80 KiB (1000 labels): a few dozen of its events fill every buffer
/// between the server and a client that does not read.
pub fn big_metric(name: &str) -> Value {
    let labels: serde_json::Map<String, Value> = (0..1000)
        .map(|i| (format!("label-{i:03}"), json!("x".repeat(50))))
        .collect();
    json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"allowed_values": [], "min": 0, "max": 1, "provider": {"name": "p", "metric": "m"}}
    })
}

/// The value of the unlabelled sample `name` in a Prometheus text exposition.
pub fn metric_value(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The open watchers of the plain-HTTP server at `base` (`http://host:port`).
pub async fn open_watchers(base: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metric_value(&text, "krake_api_open_watchers").expect("open_watchers metric")
}
