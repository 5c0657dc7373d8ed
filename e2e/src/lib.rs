//! Test support shared by the test suites of every crate: real etcd processes started on
//! free ports, and (later) the Kubernetes API test double.

pub mod etcd;
