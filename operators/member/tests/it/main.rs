//! krake-member's tests, linked as one test binary.

mod common;

mod clients;
mod discovery;
mod double;
mod kubeconfig;
mod proxy;
