//! Controller runtime for Krake controllers, modelled on kube-runtime.
//!
//! * [`Reflector`] lists then watches one kind through the Krake API ([`ApiSource`], or
//!   any [`Source`]), resumes watches from the last revision seen, re-lists on 410 and
//!   periodically, backs off between failures, and keeps a [`Store`] (cheaply clonable
//!   reader) up to date, notifying subscribers of every [`Change`].
//! * [`WorkQueue`] deduplicates keys, never hands one key to two workers at once,
//!   supports delayed adds and per-key exponential backoff.
//! * [`Controller`] runs a `reconcile(Arc<R>, Arc<Ctx>) -> Result<Action, E>` over every
//!   object of a kind with bounded concurrency, per-key backoff on errors, periodic
//!   resync (level-based: a missed event is corrected by the next resync), readiness
//!   and graceful shutdown; [`run_workers`] is its engine for keys of any type (e.g.
//!   the garbage collector's keys across kinds).
//! * [`Metrics`] (Prometheus, per controller) and the operations endpoints
//!   ([`ops::router`], [`OpsServer`]: `/livez`, `/readyz`, `/metrics`).
//!
//! Level-based principle: watches are an optimisation, resync is the safety net.
//! Reconcile functions must be idempotent and derive everything from the current state.

mod backoff;
mod controller;
mod error;
mod metrics;
pub mod ops;
mod queue;
mod reflector;
mod store;

pub use backoff::Backoff;
pub use controller::{Action, Controller, ControllerConfig, ReconcileError, run_workers};
pub use error::Error;
pub use metrics::{ControllerMetrics, Metrics};
pub use ops::{OpsServer, Readiness};
pub use prometheus_client;
pub use queue::WorkQueue;
pub use reflector::{ApiSource, Reflector, ReflectorConfig, Source};
pub use store::{Change, ObjectKey, Store, Writer};
pub use tokio_util::sync::CancellationToken;
