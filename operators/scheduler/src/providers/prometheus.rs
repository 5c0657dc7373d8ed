//! The `prometheus` provider: `GET {url}/api/v1/query?query=<name>`.

use serde_json::Value;

use super::{invalid, json_float, percent_encode};
use crate::error::ProviderError;

/// The instant-query URL for `metric_name` at the Prometheus server `base_url`.
pub fn prometheus_query_url(base_url: &str, metric_name: &str) -> String {
    format!(
        "{}/api/v1/query?query={}",
        base_url.trim_end_matches('/'),
        percent_encode(metric_name)
    )
}

/// The value of `metric_name` in an instant-query response: the first entry of
/// `data.result` whose `metric.__name__` is the name, `value[1]` parsed as a float.
/// Anything else is `INVALID_METRIC`.
pub fn parse_prometheus_response(body: &Value, metric_name: &str) -> Result<f64, ProviderError> {
    if body.get("status").and_then(Value::as_str) == Some("error") {
        let message = body.get("error").and_then(Value::as_str).unwrap_or("error");
        return Err(invalid(metric_name, format!("Prometheus error: {message}")));
    }
    let results = body
        .pointer("/data/result")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(metric_name, "Prometheus response without data.result"))?;
    let series = results
        .iter()
        .find(|r| r.pointer("/metric/__name__").and_then(Value::as_str) == Some(metric_name))
        .ok_or_else(|| invalid(metric_name, "no such series at the Prometheus server"))?;
    let raw = series
        .pointer("/value/1")
        .ok_or_else(|| invalid(metric_name, "Prometheus series without value"))?;
    json_float(raw).ok_or_else(|| invalid(metric_name, format!("unparsable value {raw}")))
}

#[cfg(test)]
mod tests {
    use krake_crds::core::ReasonCode;
    use serde_json::json;

    use super::*;

    fn vector(entries: Value) -> Value {
        json!({"status": "success", "data": {"resultType": "vector", "result": entries}})
    }

    #[test]
    fn url_is_encoded() {
        assert_eq!(
            prometheus_query_url("http://p:9090/", "heat demand"),
            "http://p:9090/api/v1/query?query=heat%20demand"
        );
        assert_eq!(
            prometheus_query_url("http://p:9090", "heat"),
            "http://p:9090/api/v1/query?query=heat"
        );
    }

    #[test]
    fn response_table() {
        let cases = [
            (
                vector(
                    json!([{"metric": {"__name__": "heat", "job": "x"}, "value": [1.0, "0.42"]}]),
                ),
                Some(0.42),
            ),
            (
                vector(json!([
                    {"metric": {"__name__": "other"}, "value": [1.0, "9"]},
                    {"metric": {"__name__": "heat"}, "value": [1.0, "7"]},
                    {"metric": {"__name__": "heat"}, "value": [1.0, "8"]},
                ])),
                Some(7.0),
            ),
            (vector(json!([])), None),
            (
                vector(json!([{"metric": {"__name__": "other"}, "value": [1.0, "1"]}])),
                None,
            ),
            (vector(json!([{"metric": {}, "value": [1.0, "1"]}])), None),
            (
                vector(json!([{"metric": {"__name__": "heat"}, "value": [1.0, "abc"]}])),
                None,
            ),
            (
                vector(json!([{"metric": {"__name__": "heat"}, "value": [1.0]}])),
                None,
            ),
            (vector(json!([{"metric": {"__name__": "heat"}}])), None),
            (
                json!({"status": "error", "errorType": "bad_data", "error": "parse error"}),
                None,
            ),
            (json!({"unexpected": true}), None),
            (json!([1, 2]), None),
        ];
        for (body, expected) in cases {
            let got = parse_prometheus_response(&body, "heat");
            match expected {
                Some(v) => assert_eq!(got.unwrap(), v, "{body}"),
                None => assert_eq!(
                    got.expect_err(&body.to_string()).reason().code,
                    ReasonCode::InvalidMetric
                ),
            }
        }
    }
}
