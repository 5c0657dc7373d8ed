//! The development PKI, for the test suites: the API server's (`krake-api pki`), so that
//! tests use exactly the certificates users get.

pub use krake_api_server::pki::*;
