//! The API server's black-box tests, linked as one test binary (one link instead of one
//! per file, which matters on small build machines). `multiprocess.rs` stays a binary of
//! its own.

mod common;

mod authn;
mod bootstrap;
mod cluster_kubeconfig;
mod http_core;
mod http_crud;
mod http_errors;
mod http_infrastructure;
mod http_integers;
mod http_kubernetes;
mod http_layer_errors;
mod http_misc;
mod http_openstack;
mod http_paths;
mod http_query;
mod http_shapes;
mod http_tosca;
mod http_watch;
mod rbac;
mod size_limits;
mod storage_conformance;
mod tls;
mod transaction_retry;
mod upstream_data;
mod watch_cache_bytes;
mod watch_slow_consumer;
