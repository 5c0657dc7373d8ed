//! The HTTP metrics providers against local servers answering as Prometheus, KSQL and
//! InfluxDB do, including unreachable providers, timeouts and bad payloads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use krake_client::transport::{Transport, TransportConfig};
use krake_crds::core::{
    InfluxSpec, KafkaSpec, MetricRef, MetricSpec, MetricSpecProvider, MetricsProviderSpec,
    PrometheusSpec, ReasonCode,
};
use krake_scheduler::metrics::{
    Location, MetricValue, MetricsOutcome, MetricsSource, ProviderFactory, fetch_metrics,
};
use krake_scheduler::providers::{
    InfluxProvider, KafkaProvider, MetricsProvider, PrometheusProvider, Providers,
};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_millis(500);

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// The URL of a port nobody listens on.
async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn http() -> Transport {
    Transport::new(&TransportConfig::default()).unwrap()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn code(result: Result<f64, krake_scheduler::Error>) -> ReasonCode {
    result.expect_err("query must fail").reason().code
}

/// A Prometheus double: `heat` = 0.42 (also under an encoded query), `missing` has no
/// series, `garbage` is not JSON, `boom` is a 500, `slow` answers after 3 s.
async fn prometheus() -> String {
    async fn query(Query(params): Query<HashMap<String, String>>) -> Response {
        let name = params.get("query").cloned().unwrap_or_default();
        let vector = |result: Value| json!({"status": "success", "data": {"resultType": "vector", "result": result}});
        match name.as_str() {
            "heat" | "rate(heat[5m]) > 0" => json_response(
                StatusCode::OK,
                vector(json!([
                    {"metric": {"__name__": "other"}, "value": [1.0, "9"]},
                    {"metric": {"__name__": name, "zone": "1"}, "value": [1.0, "0.42"]},
                ])),
            ),
            "missing" => json_response(StatusCode::OK, vector(json!([]))),
            "nan-ish" => json_response(
                StatusCode::OK,
                vector(json!([{"metric": {"__name__": "nan-ish"}, "value": [1.0, "abc"]}])),
            ),
            "garbage" => (StatusCode::OK, "<html>not json</html>").into_response(),
            "boom" => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"status": "error", "error": "boom"}),
            ),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                json_response(StatusCode::OK, vector(json!([])))
            }
            _ => json_response(
                StatusCode::BAD_REQUEST,
                json!({"status": "error", "errorType": "bad_data", "error": "unknown"}),
            ),
        }
    }
    serve(Router::new().route("/api/v1/query", get(query))).await
}

#[tokio::test]
async fn prometheus_values_and_failures() {
    let url = prometheus().await;
    let provider = PrometheusProvider::new("prom", &format!("{url}/"), http(), TIMEOUT);
    assert_eq!(provider.query("heat").await.unwrap(), 0.42);
    assert_eq!(provider.query("rate(heat[5m]) > 0").await.unwrap(), 0.42);
    assert_eq!(
        code(provider.query("missing").await),
        ReasonCode::InvalidMetric
    );
    assert_eq!(
        code(provider.query("nan-ish").await),
        ReasonCode::InvalidMetric
    );
    assert_eq!(
        code(provider.query("garbage").await),
        ReasonCode::InvalidMetric
    );
    assert_eq!(
        code(provider.query("boom").await),
        ReasonCode::UnreachableMetricsProvider
    );
    let err = provider.query("boom").await.unwrap_err();
    assert!(err.to_string().contains("prom"), "{err}");
    assert!(err.to_string().contains("500"), "{err}");

    let started = Instant::now();
    assert_eq!(
        code(provider.query("slow").await),
        ReasonCode::UnreachableMetricsProvider
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the query must give up after its timeout, took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unreachable_providers() {
    let url = closed_port().await;
    let prometheus = PrometheusProvider::new("p", &url, http(), TIMEOUT);
    assert_eq!(
        code(prometheus.query("heat").await),
        ReasonCode::UnreachableMetricsProvider
    );
    let kafka = KafkaProvider::new("k", &kafka_spec(&url), http(), TIMEOUT);
    assert_eq!(
        code(kafka.query("heat").await),
        ReasonCode::UnreachableMetricsProvider
    );
    let influx = InfluxProvider::new("i", &influx_spec(&url), http(), TIMEOUT);
    assert_eq!(
        code(influx.query("heat").await),
        ReasonCode::UnreachableMetricsProvider
    );
}

fn kafka_spec(url: &str) -> KafkaSpec {
    KafkaSpec {
        comparison_column: "metric_name".into(),
        value_column: "metric_value".into(),
        table: "zones".into(),
        url: url.into(),
    }
}

/// A KSQL double: checks the statement, answers `heat` = 0.9, no row for other names,
/// an error object for `broken`.
async fn ksql(seen: Arc<Mutex<Vec<Value>>>) -> String {
    let handler = move |headers: HeaderMap, body: String| {
        let seen = seen.clone();
        async move {
            assert_eq!(
                headers.get(header::CONTENT_TYPE).unwrap(),
                "application/json"
            );
            let body: Value = serde_json::from_str(&body).unwrap();
            seen.lock().unwrap().push(body.clone());
            let header = json!({"header": {"queryId": "q1", "schema": "`METRIC_VALUE` DOUBLE"}});
            let ksql = body["ksql"].as_str().unwrap_or_default();
            if ksql.contains("'heat'") {
                json_response(StatusCode::OK, json!([header, {"row": {"columns": [0.9]}}]))
            } else if ksql.contains("'broken'") {
                json_response(
                    StatusCode::OK,
                    json!([header, {"row": {"columns": ["n/a"]}}]),
                )
            } else if ksql.contains("'error'") {
                json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"@type": "statement_error", "message": "no table"}),
                )
            } else {
                json_response(StatusCode::OK, json!([header]))
            }
        }
    };
    serve(Router::new().route("/query", post(handler))).await
}

#[tokio::test]
async fn kafka_values_and_failures() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = ksql(seen.clone()).await;
    let provider = KafkaProvider::new("kafka", &kafka_spec(&url), http(), TIMEOUT);
    assert_eq!(provider.query("heat").await.unwrap(), 0.9);
    assert_eq!(
        seen.lock().unwrap()[0],
        json!({
            "ksql": "SELECT metric_value FROM zones WHERE metric_name = 'heat';",
            "streamsProperties": {}
        })
    );
    assert_eq!(
        code(provider.query("cold").await),
        ReasonCode::InvalidMetric
    );
    assert_eq!(
        code(provider.query("broken").await),
        ReasonCode::InvalidMetric
    );
    assert_eq!(
        code(provider.query("error").await),
        ReasonCode::UnreachableMetricsProvider
    );
}

fn influx_spec(url: &str) -> InfluxSpec {
    InfluxSpec {
        url: url.into(),
        token: "s3cret".into(),
        org: "my org".into(),
        bucket: "krake".into(),
    }
}

const INFLUX_CSV: &str = "#group,false,false,true,true,false,false,true,true\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string\r\n\
#default,_result,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement\r\n\
,,0,2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,2024-01-01T00:59:00Z,0.73,value,heat\r\n\r\n";

/// An InfluxDB double: checks org, token, content type and the Flux query.
async fn influx() -> String {
    async fn query(
        Query(params): Query<HashMap<String, String>>,
        headers: HeaderMap,
        body: String,
    ) -> Response {
        if params.get("org").map(String::as_str) != Some("my org") {
            return (StatusCode::NOT_FOUND, "organization not found").into_response();
        }
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some("Token s3cret")
        {
            return (StatusCode::UNAUTHORIZED, "unauthorized access").into_response();
        }
        assert_eq!(
            headers.get(header::CONTENT_TYPE).unwrap(),
            "application/vnd.flux"
        );
        let csv = |body: &'static str| {
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/csv")], body).into_response()
        };
        if body
            == "from(bucket: \"krake\") |> range(start: -1h) |> filter(fn: (r) => r._measurement == \"heat\") |> last()"
        {
            csv(INFLUX_CSV)
        } else if body.contains("\"garbage\"") {
            csv(",result,table,_value\r\n,,0,not-a-number\r\n")
        } else if body.contains("\"slow\"") {
            tokio::time::sleep(Duration::from_secs(3)).await;
            csv("")
        } else {
            // An empty result: no table at all.
            csv("\r\n")
        }
    }
    serve(Router::new().route("/api/v2/query", post(query))).await
}

#[tokio::test]
async fn influx_values_and_failures() {
    let url = influx().await;
    let provider = InfluxProvider::new("influx", &influx_spec(&url), http(), TIMEOUT);
    assert_eq!(provider.query("heat").await.unwrap(), 0.73);
    assert_eq!(
        code(provider.query("cold").await),
        ReasonCode::InvalidMetric
    );
    assert_eq!(
        code(provider.query("garbage").await),
        ReasonCode::InvalidMetric
    );
    let started = Instant::now();
    assert_eq!(
        code(provider.query("slow").await),
        ReasonCode::UnreachableMetricsProvider
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let wrong_token = InfluxSpec {
        token: "nope".into(),
        ..influx_spec(&url)
    };
    let provider = InfluxProvider::new("influx", &wrong_token, http(), TIMEOUT);
    let err = provider.query("heat").await.unwrap_err();
    assert_eq!(err.reason().code, ReasonCode::UnreachableMetricsProvider);
    assert!(!format!("{provider:?}").contains("nope"), "token leaked");
    assert!(err.to_string().contains("401"), "{err}");
}

/// Metric definitions kept in memory.
struct Definitions {
    metrics: HashMap<String, MetricSpec>,
    providers: HashMap<String, MetricsProviderSpec>,
}

#[async_trait]
impl MetricsSource for Definitions {
    async fn metric(&self, location: &Location) -> krake_scheduler::Result<Option<MetricSpec>> {
        Ok(self.metrics.get(location.name()).cloned())
    }
    async fn provider(
        &self,
        location: &Location,
    ) -> krake_scheduler::Result<Option<MetricsProviderSpec>> {
        Ok(self.providers.get(location.name()).cloned())
    }
}

fn metric(provider: &str, name: &str, min: f64, max: f64) -> MetricSpec {
    MetricSpec {
        allowed_values: vec![],
        min,
        max,
        provider: MetricSpecProvider {
            name: provider.into(),
            metric: name.into(),
        },
    }
}

#[tokio::test]
async fn fetch_through_the_provider_factory() {
    let prom = prometheus().await;
    let down = closed_port().await;
    let definitions = Definitions {
        metrics: [
            ("heat".to_string(), metric("prom", "heat", 0.0, 2.0)),
            ("down".to_string(), metric("down", "heat", 0.0, 1.0)),
            ("range".to_string(), metric("prom", "heat", 0.5, 1.0)),
        ]
        .into_iter()
        .collect(),
        providers: [
            (
                "prom".to_string(),
                MetricsProviderSpec::Prometheus(PrometheusSpec { url: prom }),
            ),
            (
                "down".to_string(),
                MetricsProviderSpec::Prometheus(PrometheusSpec { url: down }),
            ),
        ]
        .into_iter()
        .collect(),
    };
    let factory = Providers::new(http(), TIMEOUT);
    let reference = |name: &str| MetricRef {
        name: name.into(),
        weight: 2.0,
        namespaced: false,
    };

    let ok = fetch_metrics(Some("ns"), &[reference("heat")], &definitions, &factory)
        .await
        .unwrap();
    assert_eq!(
        ok,
        MetricsOutcome::Fetched(vec![MetricValue {
            name: "heat".into(),
            weight: 2.0,
            value: 0.21,
        }])
    );

    let failed = fetch_metrics(
        Some("ns"),
        &[reference("heat"), reference("down"), reference("range")],
        &definitions,
        &factory,
    )
    .await
    .unwrap();
    let MetricsOutcome::Failed(reasons) = failed else {
        panic!("expected failure, got {failed:?}")
    };
    assert_eq!(reasons.len(), 2);
    assert_eq!(
        reasons.get("down").unwrap().code,
        ReasonCode::UnreachableMetricsProvider
    );
    assert_eq!(
        reasons.get("range").unwrap().code,
        ReasonCode::InvalidMetric
    );

    // The factory builds the right client for each provider type.
    let static_spec = MetricsProviderSpec::Static(krake_crds::core::StaticSpec {
        metrics: [("x", 4.0)].into_iter().collect(),
    });
    assert_eq!(
        factory
            .provider(&Location::Global { name: "s".into() }, &static_spec)
            .query("x")
            .await
            .unwrap(),
        4.0
    );
}
