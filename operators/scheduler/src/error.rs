//! The scheduler's error type.

use krake_crds::core::{Reason, ReasonCode};

/// Everything that can go wrong while scheduling a resource or fetching its metrics.
///
/// Each variant maps to the upstream reason code written to `status.reason` (for the
/// scheduled resource) or to `status.metrics_reasons` (for a resource whose metrics
/// failed), see [`Error::reason`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// No cluster, cloud or project satisfies the constraints (`NO_SUITABLE_RESOURCE`).
    #[error("{0}")]
    NoSuitableResource(String),
    /// A metric value is invalid: out of range, not allowed, unparsable, missing at the
    /// provider, or a namespaced metric referenced by a global resource
    /// (`INVALID_METRIC`).
    #[error("Invalid metric {metric}: {message}")]
    InvalidMetric {
        /// Name of the Krake metric (or the provider's metric name).
        metric: String,
        /// What is wrong.
        message: String,
    },
    /// The metrics provider could not be reached, answered with an HTTP error, or timed
    /// out (`UNREACHABLE_METRICS_PROVIDER`).
    #[error("Metrics provider {provider} is unreachable: {message}")]
    UnreachableMetricsProvider {
        /// Name of the metrics provider resource.
        provider: String,
        /// What failed.
        message: String,
    },
    /// The `Metric`/`GlobalMetric` resource does not exist (`UNKNOWN_METRIC`).
    #[error("{0}")]
    UnknownMetric(String),
    /// The `MetricsProvider`/`GlobalMetricsProvider` resource does not exist
    /// (`UNKNOWN_METRICS_PROVIDER`).
    #[error("{0}")]
    UnknownMetricsProvider(String),
    /// The application waits for an automatically created cluster to come online; it
    /// is looked at again later. Nothing is written.
    #[error("Waiting for cluster {0} to be created")]
    WaitingOnCluster(String),
    /// Automatic cluster creation failed; written without reason code, as upstream.
    #[error("{0}")]
    ClusterCreation(String),
    /// A request to the Krake API failed (retried with backoff, nothing written).
    #[error("Krake API error: {0}")]
    Api(String),
}

/// The error of [`crate::providers::MetricsProvider::query`]: the same enum, restricted in
/// practice to [`Error::UnreachableMetricsProvider`] and [`Error::InvalidMetric`].
pub type ProviderError = Error;

impl Error {
    /// The reason code written to the resource's status, if any.
    pub fn reason_code(&self) -> Option<ReasonCode> {
        match self {
            Error::NoSuitableResource(_) => Some(ReasonCode::NoSuitableResource),
            Error::InvalidMetric { .. } => Some(ReasonCode::InvalidMetric),
            Error::UnreachableMetricsProvider { .. } => {
                Some(ReasonCode::UnreachableMetricsProvider)
            }
            Error::UnknownMetric(_) => Some(ReasonCode::UnknownMetric),
            Error::UnknownMetricsProvider(_) => Some(ReasonCode::UnknownMetricsProvider),
            Error::WaitingOnCluster(_) | Error::ClusterCreation(_) | Error::Api(_) => None,
        }
    }

    /// The `{code, message}` written to a status. Errors without an upstream code are
    /// reported as `INTERNAL_ERROR`.
    pub fn reason(&self) -> Reason {
        Reason {
            code: self.reason_code().unwrap_or(ReasonCode::InternalError),
            message: self.to_string(),
        }
    }

    /// Whether the error is a scheduling decision to record in the resource's status
    /// (DEGRADED/FAILED), as opposed to a transient condition retried without a write.
    pub fn is_recorded(&self) -> bool {
        !matches!(self, Error::WaitingOnCluster(_) | Error::Api(_))
    }
}

impl From<krake_client::Error> for Error {
    fn from(e: krake_client::Error) -> Self {
        Error::Api(e.to_string())
    }
}

impl krake_runtime::ReconcileError for Error {
    fn kind(&self) -> String {
        match self {
            Error::NoSuitableResource(_) => "no_suitable_resource",
            Error::InvalidMetric { .. } => "invalid_metric",
            Error::UnreachableMetricsProvider { .. } => "unreachable_metrics_provider",
            Error::UnknownMetric(_) => "unknown_metric",
            Error::UnknownMetricsProvider(_) => "unknown_metrics_provider",
            Error::WaitingOnCluster(_) => "waiting_on_cluster",
            Error::ClusterCreation(_) => "cluster_creation",
            Error::Api(_) => "api",
        }
        .to_string()
    }
}

/// Result with the scheduler's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_follow_upstream() {
        let cases = [
            (
                Error::NoSuitableResource("none".into()),
                ReasonCode::NoSuitableResource,
            ),
            (
                Error::InvalidMetric {
                    metric: "m".into(),
                    message: "x".into(),
                },
                ReasonCode::InvalidMetric,
            ),
            (
                Error::UnreachableMetricsProvider {
                    provider: "p".into(),
                    message: "x".into(),
                },
                ReasonCode::UnreachableMetricsProvider,
            ),
            (Error::UnknownMetric("m".into()), ReasonCode::UnknownMetric),
            (
                Error::UnknownMetricsProvider("p".into()),
                ReasonCode::UnknownMetricsProvider,
            ),
            (
                Error::ClusterCreation("x".into()),
                ReasonCode::InternalError,
            ),
        ];
        for (error, code) in cases {
            let reason = error.reason();
            assert_eq!(reason.code, code, "{error:?}");
            assert_eq!(reason.message, error.to_string());
        }
        assert!(!Error::WaitingOnCluster("c".into()).is_recorded());
        assert!(!Error::Api("down".into()).is_recorded());
        assert!(Error::NoSuitableResource("x".into()).is_recorded());
    }
}
