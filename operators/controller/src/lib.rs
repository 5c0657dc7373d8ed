//! The Krake controllers of the `krake-controller` binary, as a library: the command line
//! (flags, environment variables, validation, derived configurations; deployments such as
//! the Helm chart are checked against this parser) and the [`manager`] that runs the chosen
//! controllers with their operations endpoints, testable without a process.

pub mod cli;
mod error;
pub mod manager;

pub use error::Error;
