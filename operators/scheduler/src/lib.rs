//! The Krake scheduler (spec §4): binds Applications to Clusters, Clusters to Clouds and
//! MagnumClusters to OpenStack Projects.
//!
//! The decision logic is made of plain functions over `krake-crds` types and fetched
//! metric values, without I/O:
//!
//! * [`matching`]: eligibility and constraint matching;
//! * [`inheritance`]: labels and metrics a cluster inherits from its cloud;
//! * [`scoring`]: score formulas and selection of the best candidate;
//! * [`application`], [`cluster`], [`magnum`]: the three scheduling decisions;
//! * [`metrics`]: resolution, normalisation and the metric-driven status transitions.
//!
//! [`providers`] queries metrics providers (static, Prometheus, KSQL, InfluxDB), and
//! [`run`] runs the three handlers against the Krake API.

pub mod application;
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
pub use controller::{run, run_with_chooser};
pub use error::{Error, ProviderError, Result};
