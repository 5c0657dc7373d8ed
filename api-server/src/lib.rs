//! The Krake API server: upstream Krake's REST API (wire- and data-compatible) on etcd or
//! an embedded store, with a watch cache, resumable watches and operations endpoints.

pub mod auth;
pub mod bootstrap;
pub mod config;
pub mod error;
pub mod kinds;
pub mod metrics;
pub mod resources;
pub mod routes;
pub mod server;
pub mod state;
pub mod storage;
pub mod subresources;
pub mod tls;
pub mod watch;
pub mod watch_cache;

pub use config::Config;
pub use error::Error;
pub use server::{RunningServer, start};
