//! The HTTP providers (Prometheus, KSQL, InfluxDB) over [`Transport`], and the
//! [`Providers`] factory building a client for any provider spec.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use krake_client::Method;
use krake_client::transport::{HttpResponse, Transport};
use krake_crds::core::{InfluxSpec, KafkaSpec, MetricsProviderSpec};

use super::{
    MetricsProvider, StaticProvider, influx_flux_query, invalid, kafka_request_body,
    parse_influx_csv, parse_kafka_response, parse_prometheus_response, percent_encode,
    prometheus_query_url,
};
use crate::error::{Error, ProviderError};
use crate::metrics::{Location, ProviderFactory};

/// Default time limit of one provider query (upstream: 20 s).
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(20);

fn unreachable(provider: &str, message: impl Into<String>) -> Error {
    Error::UnreachableMetricsProvider {
        provider: provider.to_string(),
        message: message.into(),
    }
}

/// A response with a success status, or `UNREACHABLE_METRICS_PROVIDER`.
fn checked(
    provider: &str,
    response: Result<HttpResponse, krake_client::Error>,
) -> Result<HttpResponse, ProviderError> {
    let response = response.map_err(|e| unreachable(provider, e.to_string()))?;
    if !response.status.is_success() {
        return Err(unreachable(
            provider,
            format!("HTTP status {}", response.status),
        ));
    }
    Ok(response)
}

fn json_body(metric: &str, response: &HttpResponse) -> Result<serde_json::Value, ProviderError> {
    response
        .json()
        .map_err(|e| invalid(metric, format!("unparsable response: {e}")))
}

/// A Prometheus server (`spec.prometheus.url`).
#[derive(Debug, Clone)]
pub struct PrometheusProvider {
    name: String,
    url: String,
    http: Transport,
    timeout: Duration,
}

impl PrometheusProvider {
    /// The provider resource `name` at `url`.
    pub fn new(name: &str, url: &str, http: Transport, timeout: Duration) -> Self {
        PrometheusProvider {
            name: name.to_string(),
            url: url.to_string(),
            http,
            timeout,
        }
    }
}

#[async_trait]
impl MetricsProvider for PrometheusProvider {
    async fn query(&self, metric_name: &str) -> Result<f64, ProviderError> {
        let url = prometheus_query_url(&self.url, metric_name);
        let response = checked(&self.name, self.http.get_json(&url, self.timeout).await)?;
        parse_prometheus_response(&json_body(metric_name, &response)?, metric_name)
    }
}

/// A KSQL server (`spec.kafka`).
#[derive(Debug, Clone)]
pub struct KafkaProvider {
    name: String,
    spec: KafkaSpec,
    http: Transport,
    timeout: Duration,
}

impl KafkaProvider {
    /// The provider resource `name` with its spec.
    pub fn new(name: &str, spec: &KafkaSpec, http: Transport, timeout: Duration) -> Self {
        KafkaProvider {
            name: name.to_string(),
            spec: spec.clone(),
            http,
            timeout,
        }
    }
}

#[async_trait]
impl MetricsProvider for KafkaProvider {
    async fn query(&self, metric_name: &str) -> Result<f64, ProviderError> {
        let url = format!("{}/query", self.spec.url.trim_end_matches('/'));
        let body = kafka_request_body(&self.spec, metric_name);
        let response = checked(
            &self.name,
            self.http.post_json(&url, &body, self.timeout).await,
        )?;
        parse_kafka_response(&json_body(metric_name, &response)?, metric_name)
    }
}

/// An InfluxDB 2 server (`spec.influx`), queried with Flux over HTTP.
#[derive(Clone)]
pub struct InfluxProvider {
    name: String,
    spec: InfluxSpec,
    http: Transport,
    timeout: Duration,
}

impl std::fmt::Debug for InfluxProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret.
        f.debug_struct("InfluxProvider")
            .field("name", &self.name)
            .field("url", &self.spec.url)
            .field("org", &self.spec.org)
            .field("bucket", &self.spec.bucket)
            .finish_non_exhaustive()
    }
}

impl InfluxProvider {
    /// The provider resource `name` with its spec.
    pub fn new(name: &str, spec: &InfluxSpec, http: Transport, timeout: Duration) -> Self {
        InfluxProvider {
            name: name.to_string(),
            spec: spec.clone(),
            http,
            timeout,
        }
    }
}

#[async_trait]
impl MetricsProvider for InfluxProvider {
    async fn query(&self, metric_name: &str) -> Result<f64, ProviderError> {
        let url = format!(
            "{}/api/v2/query?org={}",
            self.spec.url.trim_end_matches('/'),
            percent_encode(&self.spec.org)
        );
        let authorization = format!("Token {}", self.spec.token);
        let flux = influx_flux_query(&self.spec.bucket, metric_name);
        let response = self
            .http
            .request(
                Method::POST,
                &url,
                &[
                    ("authorization", authorization.as_str()),
                    ("content-type", "application/vnd.flux"),
                    ("accept", "application/csv"),
                ],
                Some(flux.into_bytes().into()),
                self.timeout,
            )
            .await;
        let response = checked(&self.name, response)?;
        let body = std::str::from_utf8(&response.body)
            .map_err(|_| invalid(metric_name, "InfluxDB response is not UTF-8"))?;
        parse_influx_csv(body, metric_name)
    }
}

/// Builds provider clients sharing one HTTP transport and query timeout.
#[derive(Debug, Clone)]
pub struct Providers {
    http: Transport,
    timeout: Duration,
}

impl Providers {
    /// Clients using `http`, each query limited to `timeout`.
    pub fn new(http: Transport, timeout: Duration) -> Self {
        Providers { http, timeout }
    }
}

impl ProviderFactory for Providers {
    fn provider(
        &self,
        location: &Location,
        spec: &MetricsProviderSpec,
    ) -> Arc<dyn MetricsProvider> {
        let name = location.name();
        let http = self.http.clone();
        match spec {
            MetricsProviderSpec::Static(s) => Arc::new(StaticProvider::new(name, s)),
            MetricsProviderSpec::Prometheus(p) => {
                Arc::new(PrometheusProvider::new(name, &p.url, http, self.timeout))
            }
            MetricsProviderSpec::Kafka(k) => {
                Arc::new(KafkaProvider::new(name, k, http, self.timeout))
            }
            MetricsProviderSpec::Influx(i) => {
                Arc::new(InfluxProvider::new(name, i, http, self.timeout))
            }
        }
    }
}
