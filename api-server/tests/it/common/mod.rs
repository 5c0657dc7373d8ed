//! Harness of the black-box tests: an in-process API server on the embedded store or on a
//! real etcd with a small HTTP client, watch stream reading, assertions, and one valid
//! sample body per persisted kind.
#![allow(dead_code, missing_docs)]

mod assert;
mod load;
mod samples;
mod server;
mod watch;

pub use assert::*;
pub use krake_testkit::eventually;
pub use load::*;
pub use reqwest::StatusCode;
pub use samples::*;
pub use server::*;
pub use watch::*;
