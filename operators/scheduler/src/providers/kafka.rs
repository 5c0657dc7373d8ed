//! The `kafka` provider: a KSQL pull query `POST {url}/query`.

use krake_crds::core::KafkaSpec;
use serde_json::{Value, json};

use super::{invalid, json_float};
use crate::error::ProviderError;

/// The KSQL request body reading `metric_name` from the provider's table.
pub fn kafka_request_body(spec: &KafkaSpec, metric_name: &str) -> Value {
    let name = metric_name.replace('\'', "''");
    json!({
        "ksql": format!(
            "SELECT {} FROM {} WHERE {} = '{}';",
            spec.value_column, spec.table, spec.comparison_column, name
        ),
        "streamsProperties": {},
    })
}

/// The value of a KSQL response: `body[1].row.columns[0]` (element 0 is the header).
pub fn parse_kafka_response(body: &Value, metric_name: &str) -> Result<f64, ProviderError> {
    if let Some(message) = body.get("message").and_then(Value::as_str) {
        return Err(invalid(metric_name, format!("KSQL error: {message}")));
    }
    let raw = body
        .pointer("/1/row/columns/0")
        .ok_or_else(|| invalid(metric_name, "no row for the metric in the KSQL table"))?;
    json_float(raw).ok_or_else(|| invalid(metric_name, format!("unparsable value {raw}")))
}

#[cfg(test)]
mod tests {
    use krake_crds::core::ReasonCode;

    use super::*;

    fn spec() -> KafkaSpec {
        KafkaSpec {
            comparison_column: "metric_name".into(),
            value_column: "metric_value".into(),
            table: "heat_demand_zones_metrics".into(),
            url: "http://ksql:8088".into(),
        }
    }

    #[test]
    fn request_body_is_upstreams() {
        assert_eq!(
            kafka_request_body(&spec(), "heat_demand_zone_1"),
            json!({
                "ksql": "SELECT metric_value FROM heat_demand_zones_metrics WHERE metric_name = 'heat_demand_zone_1';",
                "streamsProperties": {}
            })
        );
        let quoted = kafka_request_body(&spec(), "a'b");
        assert!(quoted["ksql"].as_str().unwrap().contains("= 'a''b';"));
    }

    #[test]
    fn response_table() {
        let header = json!({"header": {"queryId": "q", "schema": "`METRIC_VALUE` DOUBLE"}});
        let cases = [
            (json!([header, {"row": {"columns": [0.9]}}]), Some(0.9)),
            (json!([header, {"row": {"columns": ["12"]}}]), Some(12.0)),
            (json!([header, {"row": {"columns": [3, "x"]}}]), Some(3.0)),
            (json!([header]), None),
            (json!([header, {"row": {"columns": []}}]), None),
            (json!([header, {"row": {"columns": [null]}}]), None),
            (json!([header, {"row": {"columns": ["abc"]}}]), None),
            (
                json!({"@type": "statement_error", "message": "table not found"}),
                None,
            ),
            (json!({}), None),
        ];
        for (body, expected) in cases {
            let got = parse_kafka_response(&body, "m");
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
