//! Errors of the cluster controller.

use krake_member::MemberError;

/// An error of the cluster controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used.
    #[error("invalid cluster controller configuration: {0}")]
    Config(String),
    /// A member cluster client could not be built (retried with backoff).
    #[error("member cluster client: {0}")]
    Member(#[source] MemberError),
}

impl krake_runtime::ReconcileError for Error {
    fn kind(&self) -> String {
        match self {
            Error::Config(_) => "config",
            Error::Member(_) => "member",
        }
        .to_string()
    }
}

/// A result of the cluster controller.
pub type Result<T, E = Error> = std::result::Result<T, E>;
