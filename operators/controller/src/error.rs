//! What can stop the controllers of a process.

/// Why the controllers could not start, or why they stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Krake API client cannot be built from the configuration (URL, certificates).
    #[error(transparent)]
    Client(#[from] krake_client::Error),
    /// The scheduler cannot be built from the configuration.
    #[error("cannot build the scheduler: {0}")]
    Scheduler(#[source] krake_scheduler::Error),
    /// The Kubernetes cluster controller cannot be built from the configuration.
    #[error("cannot build the kubernetes cluster controller: {0}")]
    KubernetesCluster(#[source] krake_kubernetes_cluster::Error),
    /// The garbage collector failed.
    #[error(transparent)]
    GarbageCollector(#[from] krake_garbage_collector::Error),
    /// The operations endpoints cannot be served.
    #[error("cannot serve the operations endpoints: {0}")]
    Ops(#[from] krake_runtime::Error),
    /// A controller ended before the shutdown was asked for.
    #[error("{0} stopped unexpectedly")]
    StoppedUnexpectedly(&'static str),
    /// A controller failed.
    #[error("{controller} failed: {source}")]
    Failed {
        /// The controller's name.
        controller: &'static str,
        /// Its failure.
        source: Box<Error>,
    },
    /// A controller's task panicked.
    #[error("controller task panicked: {0}")]
    Panicked(String),
}
