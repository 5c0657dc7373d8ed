//! The one error type of the crate.

/// What can go wrong in the garbage collector. Reconcile errors are retried with
/// per-key exponential backoff; none is terminal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used.
    #[error("invalid garbage collector configuration: {0}")]
    Config(String),
    /// A Krake API call failed.
    #[error(transparent)]
    Client(#[from] krake_client::Error),
    /// Removing the finalizer kept conflicting with concurrent writes.
    #[error("{object}: {attempts} conditional updates in a row conflicted with concurrent writes")]
    Conflicts {
        /// The object.
        object: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl From<krake_runtime::FinalizerError<Error>> for Error {
    fn from(error: krake_runtime::FinalizerError<Error>) -> Self {
        use krake_runtime::FinalizerError;
        match error {
            FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
            FinalizerError::Update(e) => Error::Client(e),
            FinalizerError::Conflicts { object, attempts } => Error::Conflicts { object, attempts },
        }
    }
}

impl krake_runtime::ReconcileError for Error {
    fn kind(&self) -> String {
        match self {
            Error::Config(_) => "config".into(),
            Error::Client(e) => e.kind(),
            Error::Conflicts { .. } => "conflict".into(),
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
