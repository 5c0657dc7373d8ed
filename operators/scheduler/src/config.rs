//! Scheduler configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::scoring::DEFAULT_STICKINESS;

/// Default of [`Config::metrics_max_age`]: shorter than common Prometheus scrape
/// intervals (15–30 s), so a decision rarely sees an older value than a fresh query would.
pub const DEFAULT_METRICS_MAX_AGE: Duration = Duration::from_secs(10);

/// Configuration of the scheduler's decisions and of its controller loops.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Interval of the periodic re-evaluation of every placed application, and the
    /// window during which a freshly bound application is not moved to a better cluster
    /// (`reschedule_after`, 60 s).
    pub reschedule_after: Duration,
    /// Stickiness weight of the current cluster (0.1).
    pub stickiness: f64,
    /// Concurrent reconciliations per handler (`worker_count`, 5).
    pub worker_count: usize,
    /// Timeout of one metrics-provider query (20 s).
    pub metrics_timeout: Duration,
    /// How long the fetched metrics of a namespace's clusters are reused by later
    /// decisions (10 s; zero fetches them for every decision, as upstream does). A change
    /// of a cluster, cloud, metric or metrics provider makes them stale at once; only
    /// values that change inside the providers are seen up to this late.
    pub metrics_max_age: Duration,
    /// Delay before looking again at an application waiting for an automatically
    /// created cluster (30 s).
    pub waiting_on_cluster_delay: Duration,
    /// TOSCA template of automatically created clusters
    /// (`automatic_cluster_creation.tosca_file`).
    pub tosca_file: Option<PathBuf>,
    /// Time an unused automatically created cluster is kept
    /// (`automatic_cluster_creation.deletion_retention`, 600 s).
    pub deletion_retention: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            reschedule_after: Duration::from_secs(60),
            stickiness: DEFAULT_STICKINESS,
            worker_count: 5,
            metrics_timeout: Duration::from_secs(20),
            metrics_max_age: DEFAULT_METRICS_MAX_AGE,
            waiting_on_cluster_delay: Duration::from_secs(30),
            tosca_file: None,
            deletion_retention: Duration::from_secs(600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_upstreams() {
        let c = Config::default();
        assert_eq!(c.reschedule_after, Duration::from_secs(60));
        assert_eq!(c.stickiness, 0.1);
        assert_eq!(c.worker_count, 5);
        assert_eq!(c.metrics_timeout, Duration::from_secs(20));
        assert_eq!(c.metrics_max_age, Duration::from_secs(10));
        assert_eq!(c.waiting_on_cluster_delay, Duration::from_secs(30));
        assert_eq!(c.deletion_retention, Duration::from_secs(600));
    }
}
