//! The runtime's integration tests, linked as one test binary (one link instead of one per
//! file).

mod common;

mod api_server;
mod controller;
mod reflector;
