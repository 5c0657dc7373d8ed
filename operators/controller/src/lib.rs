//! The command line of the `krake-controller` binary (flags, environment variables,
//! validation, derived configurations), a library so that deployments such as the Helm
//! chart can be checked against the real parser.

pub mod cli;
