//! The Krake garbage collector: cascading deletion along `metadata.owners`
//! through the `cascade_deletion` finalizer.
//!
//! * [`graph`]: the in-memory ownership graph and the pure cascade decision
//!   ([`graph::Graph::decide`]), correct for chains, diamonds and cycles;
//! * [`GarbageCollector`] / [`run`]: fourteen reflectors (every kind, all namespaces)
//!   feeding the graph, and workers deleting dependents and removing the finalizer
//!   through the Krake API, with per-object exponential backoff.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use krake_client::{Client, ClientConfig};
//! use krake_garbage_collector::Config;
//! use krake_runtime::CancellationToken;
//!
//! let client = Client::new(ClientConfig::new("http://localhost:8080"))?;
//! let shutdown = CancellationToken::new();
//! krake_garbage_collector::run(client, Config::default(), shutdown).await?;
//! # Ok(()) }
//! ```

mod collector;
mod error;
pub mod graph;
mod kinds;

pub use collector::{Config, GarbageCollector, NAME, run};
pub use error::{Error, Result};
pub use kinds::{CASCADE_DELETION, NodeId, is_cascading};
