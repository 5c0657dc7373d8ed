//! The Krake users the deployment knows by name.

/// The controllers' users: each has a role and a role binding of the same name in the
/// API server's base roles (`api-server/bootstrap/base_roles.yaml`), besides
/// `system:admin`.
pub const CONTROLLER_USERS: [&str; 8] = [
    "system:scheduler",
    "system:gc",
    "system:kubernetes-application",
    "system:kubernetes-cluster",
    "system:infrastructure",
    "system:complete-hook",
    "system:shutdown-hook",
    "system:magnum",
];
