//! The `influx` provider: InfluxDB 2 Flux query API, `POST {url}/api/v2/query?org=<org>`.

use super::invalid;
use crate::error::ProviderError;

/// The Flux query reading the last value of the measurement `metric_name` within the
/// last hour from `bucket`.
pub fn influx_flux_query(bucket: &str, metric_name: &str) -> String {
    format!(
        "from(bucket: \"{}\") |> range(start: -1h) |> filter(fn: (r) => r._measurement == \"{}\") |> last()",
        flux_escape(bucket),
        flux_escape(metric_name)
    )
}

fn flux_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Split one CSV line (RFC 4180 quoting, `""` for a quote inside a quoted field).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The `_value` of the first record of an InfluxDB CSV response (annotated or not).
///
/// Annotation rows (`#datatype`, `#group`, `#default`) are skipped; each table starts
/// with a header row after a blank line. An error table (column `error`), a response
/// without records, or a value that is not a number is `INVALID_METRIC`.
pub fn parse_influx_csv(body: &str, metric_name: &str) -> Result<f64, ProviderError> {
    let mut header: Option<Vec<String>> = None;
    for line in body.lines() {
        if line.trim().is_empty() {
            header = None;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let fields = split_csv_line(line);
        let Some(columns) = &header else {
            header = Some(fields);
            continue;
        };
        if let Some(i) = columns.iter().position(|c| c == "error") {
            let message = fields.get(i).map(String::as_str).unwrap_or("error");
            return Err(invalid(metric_name, format!("InfluxDB error: {message}")));
        }
        let i = columns
            .iter()
            .position(|c| c == "_value")
            .ok_or_else(|| invalid(metric_name, "InfluxDB response without _value column"))?;
        let raw = fields.get(i).map(String::as_str).unwrap_or("");
        return raw
            .trim()
            .parse()
            .map_err(|_| invalid(metric_name, format!("unparsable value {raw:?}")));
    }
    Err(invalid(
        metric_name,
        "no record for the measurement in InfluxDB",
    ))
}

#[cfg(test)]
mod tests {
    use krake_crds::core::ReasonCode;

    use super::*;

    #[test]
    fn flux_query_is_escaped() {
        assert_eq!(
            influx_flux_query("krake", "heat"),
            "from(bucket: \"krake\") |> range(start: -1h) |> filter(fn: (r) => r._measurement == \"heat\") |> last()"
        );
        assert!(influx_flux_query("b", "a\"b").contains("== \"a\\\"b\""));
    }

    #[test]
    fn csv_split_table() {
        assert_eq!(split_csv_line(",a,b"), vec!["", "a", "b"]);
        assert_eq!(split_csv_line("\"x,y\",z"), vec!["x,y", "z"]);
        assert_eq!(
            split_csv_line("\"say \"\"hi\"\"\","),
            vec!["say \"hi\"", ""]
        );
    }

    const ANNOTATED: &str = "#group,false,false,true,true,false,false,true,true\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string\r\n\
#default,_result,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement\r\n\
,,0,2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,2024-01-01T00:59:00Z,0.73,value,heat\r\n\
,,0,2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,2024-01-01T00:59:30Z,0.99,value,heat\r\n\
\r\n";

    #[test]
    fn response_table() {
        let plain =
            ",result,table,_time,_value,_measurement\n,_result,0,2024-01-01T00:00:00Z,42,heat\n";
        let two_tables = "#datatype,string,long,string\n,result,table,_measurement\n\n\
#datatype,string,long,double\n,result,table,_value\n,,1,5.5\n";
        let error = "#datatype,string,string\n,error,reference\n,\"bucket \"\"x\"\" not found\",\n";
        let quoted = ",result,_value,_measurement\n,,\"1.25\",\"heat, hot\"\n";
        let cases: [(&str, Option<f64>); 9] = [
            (ANNOTATED, Some(0.73)),
            (plain, Some(42.0)),
            (two_tables, Some(5.5)),
            (quoted, Some(1.25)),
            (error, None),
            ("", None),
            ("\r\n", None),
            (",result,table,_value\n", None),
            (",result,table,_value\n,,0,abc\n", None),
        ];
        for (body, expected) in cases {
            let got = parse_influx_csv(body, "heat");
            match expected {
                Some(v) => assert_eq!(got.unwrap(), v, "{body:?}"),
                None => assert_eq!(
                    got.expect_err(body).reason().code,
                    ReasonCode::InvalidMetric,
                    "{body:?}"
                ),
            }
        }
        let err = parse_influx_csv(error, "heat").unwrap_err();
        assert!(err.to_string().contains("bucket \"x\" not found"), "{err}");
    }
}
