//! The kind tests, linked as one test binary (one link instead of one per file).

mod common;

mod core_kinds;
mod crd_manifests;
mod kubernetes_kinds;
mod openstack_infrastructure_kinds;
mod resource_table;
mod schemas_drift;
