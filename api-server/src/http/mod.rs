//! The HTTP layer: the router and its middleware, the handlers, and what they share
//! (state, request parameters, problem documents). Everything below it (authentication,
//! watch caches, storage) knows nothing of HTTP requests.

pub(crate) mod deadline;
pub(crate) mod openapi;
pub(crate) mod params;
pub(crate) mod problem;
pub(crate) mod query;
pub(crate) mod resources;
pub(crate) mod routes;
pub(crate) mod state;
pub(crate) mod subresources;
pub(crate) mod watch;
