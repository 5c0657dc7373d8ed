//! The test double's tests, against the real server: kube-rs (`Discovery`, `watcher`,
//! `Api<DynamicObject>`, typed `Api<Deployment>`) and the real `kubectl` binary.

mod apply;
mod common;
mod crud;
mod discovery;
mod faults;
mod kubectl;
mod server;
mod watch;
