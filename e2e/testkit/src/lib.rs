//! Test support shared by the test suites of every crate: real etcd processes started on
//! free ports, the API server as a child process, a development PKI, polling until a
//! condition holds, the lookup of external programs, and (later, next to this crate in
//! `e2e/`) the Kubernetes API test double.

pub mod api_server;
pub mod etcd;
pub mod http;
pub mod net;
pub mod pki;
pub mod tools;
pub mod users;
pub mod wait;

pub use net::free_port;
pub use wait::eventually;
