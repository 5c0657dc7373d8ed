//! Loopback ports for servers started by tests.

use std::net::TcpListener;

/// A loopback port that was free a moment ago (bound, then released).
///
/// Another process may take it before the caller binds it; servers started on it should
/// retry on a new port when that matters (as [`crate::etcd::EtcdServer::start`] does).
///
/// # Panics
/// When no loopback port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("no free loopback port")
}
