//! The Krake scheduler: binds Applications to Clusters, Clusters to Clouds and
//! MagnumClusters to OpenStack Projects.
//!
//! The decision logic is made of plain functions over `krake-crds` types and fetched
//! metric values, without I/O:
//!
//! * [`matching`]: eligibility and constraint matching;
//! * [`inheritance`]: labels and metrics a cluster inherits from its cloud;
//! * [`scoring`]: score formulas and selection of the best candidate;
//! * [`application`], [`cluster`], [`magnum`]: the three scheduling decisions;
//! * [`metrics`]: resolution, normalisation and the metric-driven status transitions;
//! * [`candidates`]: the clusters of a namespace with their metrics, built from
//!   reflector stores and cached between decisions.
//!
//! [`providers`] queries metrics providers (static, Prometheus, KSQL, InfluxDB), and
//! [`run`] runs the three handlers against the Krake API.
//!
//! # Deviations from upstream (bugs fixed)
//!
//! * The periodic re-evaluation of a placed application has its own timer
//!   (`reschedule_after` after its binding and after its last evaluation); watch events
//!   never postpone it. An application whose cluster stops being ONLINE or matching its
//!   label/custom-resource constraints is re-evaluated at once.
//! * A cluster or cloud without fetched metrics does not match a metric constraint
//!   (no crash); clouds never satisfy custom-resource constraints; no candidate at all is
//!   `NO_SUITABLE_RESOURCE`, not a crash.
//! * Cloud inheritance uses the label keys / metric names the cloud constraints name;
//!   a cloud metric already referenced by the cluster is not added twice.
//! * `max == min` is `INVALID_METRIC`; metrics are fetched only for clusters that could
//!   be eligible; `metrics_reasons` are cleared on recovery; status is only written when
//!   it changes (no ONLINE rewrite of every cloud).
//! * Upstream queries every metric of every cluster for every decision. Here the
//!   [`candidates`] of a namespace (clusters with inherited values and fetched metrics)
//!   are shared by the decisions taken until a cluster, cloud, metric or metrics provider
//!   changes, or for at most `metrics_max_age` (10 s; `0` restores upstream's
//!   behaviour); concurrent decisions of a namespace wait for one build.
//! * A DEGRADED application whose retry time has not come is requeued for that time
//!   (not dropped); FAILED applications are not re-evaluated; a user update of an
//!   application whose placement is held (`migration: false`, migration back-off) is
//!   still released to the application controller.
//! * Status writes are conditional on the object's `resource_version`; API errors are
//!   retried with per-key exponential backoff.
//! * Magnum clusters only use projects of their own namespace (tenant separation, as for
//!   clusters and clouds).

pub mod application;
pub mod candidates;
pub mod cluster;
pub mod config;
mod controller;
pub mod error;
pub mod inheritance;
pub mod magnum;
pub mod matching;
pub mod metrics;
pub mod model;
pub mod providers;
pub mod scoring;

pub use config::Config;
pub use controller::{Scheduler, run};
pub use error::{Error, ProviderError, Result};
