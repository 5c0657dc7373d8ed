//! The Krake API server: upstream Krake's REST API (wire- and data-compatible) on etcd or
//! an embedded store, with a watch cache, resumable watches and operations endpoints.
//!
//! The modules are layered; each imports only from the layers below it, which
//! `tests/module_layers.rs` checks: `error`, `config` and `metrics`; `storage` (with the
//! object codec); `watch_cache`; `auth` and `tls`; `conn` (connections and their time limits); `kinds` and `http` (state, parameters,
//! handlers, routes, problem documents); `server`. The `krake-api` subcommands use
//! `bootstrap` (on top of `storage`) and `pki` (on top of nothing).

pub(crate) mod auth;
pub mod bootstrap;
pub mod config;
pub(crate) mod conn;
pub mod error;
pub(crate) mod http;
pub(crate) mod kinds;
pub(crate) mod metrics;
pub mod pki;
pub mod server;
pub mod storage;
pub(crate) mod tls;
pub(crate) mod watch_cache;
pub(crate) mod wire;

pub use config::Config;
pub use error::Error;
pub use http::routes::{OPENAPI_PATH, api_routes, openapi_document, render_openapi_document};
pub use server::{RunningServer, start};
