//! The one error type of the crate.

use std::net::SocketAddr;

/// What can go wrong in the runtime itself (reconcile errors are the controllers' own).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operations server cannot listen.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The operations server failed while serving.
    #[error("operations server failed: {0}")]
    Serve(std::io::Error),
    /// A Krake API call failed.
    #[error(transparent)]
    Client(#[from] krake_client::Error),
}
