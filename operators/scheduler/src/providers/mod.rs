//! Metrics providers: one async trait, one client per provider type.
//!
//! Every query is bounded by a timeout. Failures are reported with the upstream reason
//! codes: a provider that cannot be reached, answers with an HTTP error or times out is
//! `UNREACHABLE_METRICS_PROVIDER`; a provider that answers without a usable value for the
//! metric is `INVALID_METRIC`.

mod http;
mod influx;
mod kafka;
mod prometheus;
mod static_provider;

use async_trait::async_trait;

pub use http::{
    DEFAULT_QUERY_TIMEOUT, InfluxProvider, KafkaProvider, PrometheusProvider, Providers,
};
pub use influx::{influx_flux_query, parse_influx_csv};
pub use kafka::{kafka_request_body, parse_kafka_response};
pub use prometheus::{parse_prometheus_response, prometheus_query_url};
pub use static_provider::StaticProvider;

use crate::error::{Error, ProviderError};

/// A source of raw metric values.
#[async_trait]
pub trait MetricsProvider: Send + Sync {
    /// The current raw (not normalised) value of `metric_name` at this provider.
    async fn query(&self, metric_name: &str) -> Result<f64, ProviderError>;
}

/// `INVALID_METRIC` for `metric` at a provider.
pub(crate) fn invalid(metric: &str, message: impl Into<String>) -> Error {
    Error::InvalidMetric {
        metric: metric.to_string(),
        message: message.into(),
    }
}

/// Parse a JSON number, or a string holding one, as a float.
pub(crate) fn json_float(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Percent-encode a string for a URL query component (RFC 3986 unreserved characters
/// are kept).
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_table() {
        for (input, expected) in [
            ("up", "up"),
            ("a b", "a%20b"),
            ("rate(x[5m])", "rate%28x%5B5m%5D%29"),
            ("a=b&c", "a%3Db%26c"),
            ("é", "%C3%A9"),
            ("A-z_0.9~", "A-z_0.9~"),
        ] {
            assert_eq!(percent_encode(input), expected);
        }
    }

    #[test]
    fn json_float_table() {
        use serde_json::json;
        for (input, expected) in [
            (json!(1.5), Some(1.5)),
            (json!(2), Some(2.0)),
            (json!("0.25"), Some(0.25)),
            (json!(" 3 "), Some(3.0)),
            (json!("NaN"), Some(f64::NAN)),
            (json!("abc"), None),
            (json!(null), None),
            (json!([1]), None),
        ] {
            let got = json_float(&input);
            match (got, expected) {
                (Some(g), Some(e)) if e.is_nan() => assert!(g.is_nan()),
                (g, e) => assert_eq!(g, e, "{input}"),
            }
        }
    }
}
