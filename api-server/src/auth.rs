//! Authentication (a chain of authenticators tried in order) and authorization (one
//! authorizer deciding on api / resource / verb / namespace), spec §10.

use std::sync::Arc;

use axum::http::request::Parts;

use crate::config::{AuthorizationMode, Config};
use crate::error::Error;

/// The user name of unauthenticated requests when anonymous access is allowed.
pub const ANONYMOUS: &str = "system:anonymous";

/// The authenticated caller of a request (stored in request extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User name.
    pub user: String,
}

/// One way of finding out who sent a request.
pub trait Authenticator: Send + Sync {
    /// `Ok(Some(user))` when this authenticator recognises the request, `Ok(None)` to let
    /// the next one try, `Err` to reject the request outright (e.g. an invalid token).
    fn authenticate(&self, request: &Parts) -> Result<Option<String>, Error>;
}

/// Every request is the configured user (upstream's `static` strategy).
pub struct StaticAuthenticator(pub String);

impl Authenticator for StaticAuthenticator {
    fn authenticate(&self, _: &Parts) -> Result<Option<String>, Error> {
        Ok(Some(self.0.clone()))
    }
}

/// Authenticators tried in order; the first that returns a user wins.
#[derive(Clone)]
pub struct AuthenticatorChain {
    authenticators: Arc<Vec<Box<dyn Authenticator>>>,
    allow_anonymous: bool,
}

impl AuthenticatorChain {
    /// The chain described by the configuration.
    pub fn from_config(config: &Config) -> Self {
        let mut authenticators: Vec<Box<dyn Authenticator>> = Vec::new();
        if let Some(user) = &config.static_user {
            authenticators.push(Box::new(StaticAuthenticator(user.clone())));
        }
        AuthenticatorChain { authenticators: Arc::new(authenticators), allow_anonymous: config.allow_anonymous }
    }

    /// Who sent this request. CORS preflights (`OPTIONS`) are always anonymous.
    pub fn authenticate(&self, request: &Parts) -> Result<Caller, Error> {
        for authenticator in self.authenticators.iter() {
            if let Some(user) = authenticator.authenticate(request)? {
                return Ok(Caller { user });
            }
        }
        if self.allow_anonymous || request.method == axum::http::Method::OPTIONS {
            Ok(Caller { user: ANONYMOUS.to_string() })
        } else {
            Err(Error::Unauthorized("No user has been authenticated.".into()))
        }
    }
}

/// RBAC verbs (spec §10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// POST on a collection.
    Create,
    /// GET on a collection (list and watch).
    List,
    /// GET on an object.
    Get,
    /// PUT on an object or a subresource.
    Update,
    /// DELETE on an object.
    Delete,
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access<'a> {
    /// API group.
    pub api: &'a str,
    /// Resource, including the subresource path (`applications/status`).
    pub resource: &'a str,
    /// Verb.
    pub verb: Verb,
    /// URL namespace; `None` for global kinds and all-namespaces lists.
    pub namespace: Option<&'a str>,
}

/// Decides whether a caller may do something.
pub trait Authorizer: Send + Sync {
    /// `Ok(())` when allowed; `Err(Error::Forbidden)` (or 401) otherwise.
    fn authorize(&self, caller: &Caller, access: &Access<'_>) -> Result<(), Error>;
}

/// Allows everything.
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _: &Caller, _: &Access<'_>) -> Result<(), Error> {
        Ok(())
    }
}

/// Denies every protected request.
pub struct AlwaysDeny;

impl Authorizer for AlwaysDeny {
    fn authorize(&self, _: &Caller, _: &Access<'_>) -> Result<(), Error> {
        Err(Error::Forbidden)
    }
}

/// The authorizer described by the configuration.
pub fn authorizer_from_config(config: &Config) -> Arc<dyn Authorizer> {
    match config.authorization {
        AuthorizationMode::AlwaysAllow => Arc::new(AlwaysAllow),
        AuthorizationMode::AlwaysDeny => Arc::new(AlwaysDeny),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str) -> Parts {
        axum::http::Request::builder().method(method).uri("/").body(()).unwrap().into_parts().0
    }

    #[test]
    fn chain_order_and_anonymous_rules() {
        let mut config = Config::for_embedded("/tmp/x");
        config.allow_anonymous = false;
        let chain = AuthenticatorChain::from_config(&config);
        assert!(matches!(chain.authenticate(&parts("GET")), Err(Error::Unauthorized(_))));
        assert_eq!(chain.authenticate(&parts("OPTIONS")).unwrap().user, ANONYMOUS);

        config.static_user = Some("system:admin".into());
        let chain = AuthenticatorChain::from_config(&config);
        assert_eq!(chain.authenticate(&parts("GET")).unwrap().user, "system:admin");

        config.static_user = None;
        config.allow_anonymous = true;
        let chain = AuthenticatorChain::from_config(&config);
        assert_eq!(chain.authenticate(&parts("GET")).unwrap().user, ANONYMOUS);
    }

    #[test]
    fn always_deny_denies() {
        let caller = Caller { user: "u".into() };
        let access = Access { api: "core", resource: "roles", verb: Verb::Get, namespace: None };
        assert!(AlwaysAllow.authorize(&caller, &access).is_ok());
        assert!(matches!(AlwaysDeny.authorize(&caller, &access), Err(Error::Forbidden)));
    }
}
