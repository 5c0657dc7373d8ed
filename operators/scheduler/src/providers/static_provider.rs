//! The `static` provider: values written in the provider's spec.

use async_trait::async_trait;
use krake_crds::OrderedMap;
use krake_crds::core::StaticSpec;

use super::{MetricsProvider, invalid};
use crate::error::ProviderError;

/// Metric values fixed in `spec.static.metrics`.
#[derive(Debug, Clone)]
pub struct StaticProvider {
    name: String,
    metrics: OrderedMap<f64>,
}

impl StaticProvider {
    /// The provider resource `name` with its spec.
    pub fn new(name: &str, spec: &StaticSpec) -> Self {
        StaticProvider {
            name: name.to_string(),
            metrics: spec.metrics.clone(),
        }
    }
}

#[async_trait]
impl MetricsProvider for StaticProvider {
    async fn query(&self, metric_name: &str) -> Result<f64, ProviderError> {
        self.metrics.get(metric_name).copied().ok_or_else(|| {
            invalid(
                metric_name,
                format!("not provided by static metrics provider {}", self.name),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use krake_crds::core::ReasonCode;

    use super::*;

    #[tokio::test]
    async fn static_values_and_missing_metric() {
        let spec = StaticSpec {
            metrics: [("heat", 0.5), ("cost", 3.0)].into_iter().collect(),
        };
        let provider = StaticProvider::new("zone", &spec);
        assert_eq!(provider.query("heat").await.unwrap(), 0.5);
        assert_eq!(provider.query("cost").await.unwrap(), 3.0);
        let err = provider.query("latency").await.unwrap_err();
        assert_eq!(err.reason().code, ReasonCode::InvalidMetric);
        assert!(err.to_string().contains("zone"), "{err}");
    }
}
