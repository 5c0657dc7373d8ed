//! Controller runtime for Krake controllers, modelled on kube-runtime.
//!
//! * [`Reflector`] lists then watches one kind through the Krake API ([`ApiSource`], or
//!   any [`Source`]), resumes watches from the last revision seen, re-lists on 410 and
//!   periodically, backs off between failures, and keeps a [`Store`] (cheaply clonable
//!   reader) up to date, notifying subscribers of every [`Change`].
//! * [`WorkQueue`] deduplicates keys, never hands one key to two workers at once,
//!   supports delayed adds and per-key exponential backoff.
//! * [`Controller`] runs a `reconcile(Arc<R>, Arc<Ctx>) -> Result<Action, E>` over every
//!   object of a kind with bounded concurrency, an error policy (per-key backoff by
//!   default), periodic resync (level-based: a missed event is corrected by the next
//!   resync), secondary kinds that trigger (`watches`, `owns`) or only gate start-up
//!   (`uses`), predicates, readiness and graceful shutdown; [`run_workers`] is its
//!   engine for keys of any type (e.g. the garbage collector's keys across kinds).
//! * [`finalizer()`] runs a reconcile under a finalizer, with Krake's rule that
//!   finalizers are a stack (only the last one's owner acts on a deleted object).
//! * [`Metrics`] (Prometheus, per controller) and the operations endpoints
//!   ([`ops::router`], [`OpsServer`]: `/livez`, `/readyz`, `/metrics`).
//!
//! # Coming from kube-runtime
//!
//! | kube-runtime | krake-runtime |
//! |---|---|
//! | `watcher(api, cfg)` + `reflector(writer, stream)` | [`Reflector`] (runs its own list/watch loop over a [`Source`]) |
//! | `reflector::Store`, `Store::get(&ObjectRef)`, `state()` | [`Store`], [`Store::get`] with [`ObjectRef`], [`Store::list`] |
//! | `Store::wait_until_ready()` | [`Store::wait_until_ready`] |
//! | `ObjectRef::new(name).within(ns)`, `ObjectRef::from_obj` | [`ObjectRef::new`], [`ObjectRef::within`], [`ObjectRef::from_obj`] |
//! | `watcher::Event::{Apply, Delete, Init…}` | [`Change::{Added, Modified { old, new }, Deleted}`](Change) |
//! | `Controller::new(api, watcher_cfg)` | [`Controller::new(name, reflector, config)`](Controller::new) |
//! | `.watches(api, cfg, mapper)` | [`Controller::watches(reflector, mapper)`](Controller::watches) |
//! | `.owns(api, cfg)` | [`Controller::owns(reflector)`](Controller::owns) (via `metadata.owners`) |
//! | `.with_config(Config { concurrency, .. })` | [`ControllerConfig::concurrency`] |
//! | `predicates::generation` + `predicate_filter` | [`Controller::with_predicate`], [`predicates::ignore_status_changes`] |
//! | a store shared with `.watches_stream` only to read it | [`Controller::uses(reflector)`](Controller::uses) |
//! | `.graceful_shutdown_on(fut)` | [`Controller::graceful_shutdown_on`] |
//! | `.run(reconcile, error_policy, ctx)` (a stream) | [`Controller::run`] (a future; results are logged and counted) |
//! | `Action::requeue`, `Action::await_change` | [`Action::requeue`], [`Action::await_change`], plus [`Action::backoff`] |
//! | an `error_policy` written by hand | [`default_error_policy`] (per-key exponential backoff) |
//! | `finalizer(api, name, obj, \|event\| ..)`, `Event::{Apply, Cleanup}` | [`finalizer()`], [`Event`] (never adds the finalizer: [`finalizer::add_finalizer`]) |
//! | `default_backoff()` (jittered) | [`Backoff`] (jittered by default) |
//! | internal scheduler, `reconcile_on` | [`WorkQueue`], [`Controller::queue`] |
//!
//! //! Level-based principle: watches are an optimisation, resync is the safety net.
//! Reconcile functions must be idempotent and derive everything from the current state.

mod backoff;
mod controller;
mod error;
pub mod finalizer;
mod metrics;
pub mod ops;
pub mod predicates;
mod queue;
mod reflector;
mod store;

pub use backoff::Backoff;
pub use controller::{
    Action, Controller, ControllerConfig, ReconcileError, default_error_policy, run_workers,
};
pub use error::Error;
pub use finalizer::{Event, FinalizerError, finalizer};
pub use metrics::{ControllerMetrics, Metrics};
pub use ops::{OpsServer, Readiness};
pub use prometheus_client;
pub use queue::WorkQueue;
pub use reflector::{ApiSource, Reflector, ReflectorConfig, Source};
pub use store::{Change, ObjectRef, Store, Writer};
pub use tokio_util::sync::CancellationToken;
