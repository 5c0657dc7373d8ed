//! Typed async client of the Krake API.
//!
//! * [`Client`] ([`ClientConfig`]): one pooled HTTP(S) connection set to the API, TLS
//!   with a CA bundle and client certificates, a time limit per request, retries with
//!   exponential backoff for transport errors and 5xx answers (4xx never).
//! * [`Api<R>`]: typed `get`, `list` (with the list revision), `create`, `update`
//!   (conditional when `metadata.resource_version` is set), `update_status`, `delete`
//!   and `watch` (NDJSON, resumable from a revision) for every kind `R` of
//!   [`krake_crds`].
//! * Binding subresources and application hooks on [`Client`].
//! * [`Error`]: problem+json answers typed (`NotFound`, `Conflict`, `Gone`, `Api`).
//! * [`transport`]: the HTTP(S) client underneath, usable for other JSON endpoints.
//!
//! ```no_run
//! # async fn example() -> Result<(), krake_client::Error> {
//! use futures::StreamExt;
//! use krake_client::{Client, ClientConfig, WatchEvent};
//! use krake_crds::kubernetes::Application;
//!
//! let client = Client::new(ClientConfig::new("http://localhost:8080"))?;
//! let apps = client.api::<Application>();
//! let list = apps.list(None).await?;
//! let mut events = apps.watch(None, list.resource_version.as_deref());
//! while let Some(event) = events.next().await {
//!     match event? {
//!         WatchEvent::Added(app) | WatchEvent::Modified(app) => println!("{}", app.metadata.name),
//!         WatchEvent::Deleted(app) => println!("gone: {}", app.metadata.name),
//!     }
//! }
//! # Ok(()) }
//! ```

mod api;
mod client;
mod error;
pub mod transport;

pub use api::{
    Api, ObjectList, WATCH_HEARTBEAT_SECS, WATCH_IDLE_TIMEOUT, WatchEvent, collection_path,
    object_path, parse_watch_line,
};
pub use client::{Client, ClientConfig, RETRY_INITIAL_DELAY, RETRY_MAX_DELAY};
pub use error::{Error, Result};
pub use hyper::Method;
