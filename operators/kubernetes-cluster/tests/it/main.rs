//! Integration tests of the Kubernetes cluster controller: a real Krake API server
//! (embedded store), kube-doubles over TLS as member clusters, the controller in process.

mod common;
mod metrics;
mod observe;
mod rbac;
