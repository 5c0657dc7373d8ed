//! Test support shared by the test suites of every crate: real etcd processes started on
//! free ports, the API server as a child process, a development PKI, the lookup of
//! external programs, and (later) the Kubernetes API test double.

pub mod api_server;
pub mod etcd;
pub mod pki;
pub mod tools;
