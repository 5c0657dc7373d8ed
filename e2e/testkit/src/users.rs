//! The Krake users the deployment knows by name: those of the development PKI.

pub use krake_api_server::pki::{ADMIN_USER, CONTROLLER_USERS};
