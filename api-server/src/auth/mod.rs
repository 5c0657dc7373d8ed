//! Authentication (a chain of authenticators tried in order) and authorization (one
//! authorizer deciding on api / resource / verb / namespace), as upstream's
//! `authentication` and `authorization` settings describe them.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::request::Parts;

use crate::config::{AuthorizationMode, Config};
use crate::error::Error;
use crate::storage::Store;
use crate::watch_cache::WatchCache;

pub mod http_client;
pub mod identity_cache;
pub mod keycloak;
pub mod keystone;
pub mod oidc;
pub mod rbac;

/// The user name of unauthenticated requests when anonymous access is allowed.
pub const ANONYMOUS: &str = "system:anonymous";

/// The authenticated caller of a request (stored in request extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User name.
    pub user: String,
}

/// The verified client certificate's first subject Common Name, inserted into every
/// request's extensions by the TLS listener (`None` without a verified certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCommonName(pub Option<String>);

/// One way of finding out who sent a request.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// `Ok(Some(user))` when this authenticator recognises the request, `Ok(None)` to let
    /// the next one try, `Err` to reject the request outright (e.g. an invalid token, or
    /// an identity provider that cannot be reached).
    async fn authenticate(&self, request: &Parts) -> Result<Option<String>, Error>;
}

/// Every request is the configured user (upstream's `static` strategy).
pub struct StaticAuthenticator(pub String);

#[async_trait]
impl Authenticator for StaticAuthenticator {
    async fn authenticate(&self, _: &Parts) -> Result<Option<String>, Error> {
        Ok(Some(self.0.clone()))
    }
}

/// The user is the Common Name of the verified client certificate.
pub struct ClientCertificateAuthenticator;

#[async_trait]
impl Authenticator for ClientCertificateAuthenticator {
    async fn authenticate(&self, request: &Parts) -> Result<Option<String>, Error> {
        Ok(request
            .extensions
            .get::<PeerCommonName>()
            .and_then(|cn| cn.0.clone()))
    }
}

/// Authenticators tried in order; the first that returns a user wins.
#[derive(Clone)]
pub struct AuthenticatorChain {
    authenticators: Arc<Vec<Box<dyn Authenticator>>>,
    allow_anonymous: bool,
}

impl AuthenticatorChain {
    /// The chain described by the configuration, in this order: client certificate,
    /// static user (which always answers, like upstream), OpenID Connect JWT, Keystone,
    /// Keycloak.
    ///
    /// The OIDC authenticator only claims `Authorization: Bearer <JWT>` headers and passes
    /// everything else on, so trying it first sends exactly the `Bearer` JWTs to local
    /// verification and every other token (upstream's raw Keystone/Keycloak tokens) to
    /// Keystone, then Keycloak. A token an identity provider rejects is answered with 401
    /// at once (no later authenticator is asked); an unreachable provider gives 503.
    pub fn from_config(config: &Config) -> Self {
        let mut authenticators: Vec<Box<dyn Authenticator>> = Vec::new();
        if config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()) {
            authenticators.push(Box::new(ClientCertificateAuthenticator));
        }
        if let Some(user) = &config.static_user {
            authenticators.push(Box::new(StaticAuthenticator(user.clone())));
        }
        let ttl = config.identity_cache_ttl;
        let client = || http_client::HttpClient::new(http_client::DEFAULT_TIMEOUT);
        if let Some(oidc) = &config.oidc {
            authenticators.push(Box::new(oidc::OidcAuthenticator::new(oidc, client(), ttl)));
        }
        if let Some(keystone) = &config.keystone {
            authenticators.push(Box::new(keystone::KeystoneAuthenticator::new(
                keystone,
                client(),
                ttl,
            )));
        }
        if let Some(keycloak) = &config.keycloak {
            authenticators.push(Box::new(keycloak::KeycloakAuthenticator::new(
                keycloak,
                client(),
                ttl,
            )));
        }
        AuthenticatorChain::new(authenticators, config.allow_anonymous)
    }

    /// A chain of the given authenticators.
    pub fn new(authenticators: Vec<Box<dyn Authenticator>>, allow_anonymous: bool) -> Self {
        AuthenticatorChain {
            authenticators: Arc::new(authenticators),
            allow_anonymous,
        }
    }

    /// Who sent this request. CORS preflights (`OPTIONS`) are always anonymous.
    pub async fn authenticate(&self, request: &Parts) -> Result<Caller, Error> {
        if request.method == axum::http::Method::OPTIONS {
            return Ok(Caller {
                user: ANONYMOUS.to_string(),
            });
        }
        for authenticator in self.authenticators.iter() {
            if let Some(user) = authenticator.authenticate(request).await? {
                return Ok(Caller { user });
            }
        }
        if self.allow_anonymous {
            Ok(Caller {
                user: ANONYMOUS.to_string(),
            })
        } else {
            Err(Error::Unauthorized(
                "No user has been authenticated.".into(),
            ))
        }
    }
}

/// The verbs of RBAC rules, one per kind of request.
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
    pub verb: Verb,
    /// URL namespace; `None` for global kinds and all-namespaces lists.
    pub namespace: Option<&'a str>,
}

/// Which namespaces' objects a list or watch across all namespaces may return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    /// Every namespace.
    All,
    /// Only these namespaces.
    Only(BTreeSet<String>),
}

impl NamespaceScope {
    /// Whether an object in `namespace` may be returned.
    pub fn contains(&self, namespace: Option<&str>) -> bool {
        match (self, namespace) {
            (NamespaceScope::All, _) => true,
            (NamespaceScope::Only(set), Some(ns)) => set.contains(ns),
            (NamespaceScope::Only(_), None) => false,
        }
    }
}

/// Decides whether a caller may do something.
pub trait Authorizer: Send + Sync {
    /// `Ok(())` when allowed; `Err(Error::Forbidden)` (or 401) otherwise.
    fn authorize(&self, caller: &Caller, access: &Access<'_>) -> Result<(), Error>;

    /// For a list or watch across all namespaces (already authorized): the namespaces
    /// whose objects the caller may see.
    fn visible_namespaces(&self, _caller: &Caller, _api: &str, _resource: &str) -> NamespaceScope {
        NamespaceScope::All
    }

    /// Whether the authorizer can answer yet (RBAC: roles and bindings loaded).
    fn is_ready(&self) -> bool {
        true
    }

    /// The sorted role names bound to `user`, when the authorizer keeps them (RBAC);
    /// `None` lets `/me` read the RoleBindings from storage.
    fn user_roles(&self, _user: &str) -> Option<Vec<String>> {
        None
    }
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

/// What the authorizers may need from the running server.
pub struct AuthorizerContext {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The watch cache of Roles.
    pub roles: Arc<WatchCache>,
    /// The watch cache of RoleBindings.
    pub role_bindings: Arc<WatchCache>,
    /// Cancelled on shutdown.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The authorizer described by the configuration. `RBAC` starts an index of Roles and
/// RoleBindings that follows `context`'s watch caches.
pub fn authorizer_from_config(
    config: &Config,
    context: AuthorizerContext,
) -> Result<Arc<dyn Authorizer>, Error> {
    match config.authorization {
        AuthorizationMode::AlwaysAllow => Ok(Arc::new(AlwaysAllow)),
        AuthorizationMode::AlwaysDeny => Ok(Arc::new(AlwaysDeny)),
        AuthorizationMode::Rbac => Ok(Arc::new(rbac::RbacAuthorizer::new(rbac::RbacIndex::start(
            context.store,
            context.roles,
            context.role_bindings,
            context.shutdown,
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str) -> Parts {
        axum::http::Request::builder()
            .method(method)
            .uri("/")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[tokio::test]
    async fn chain_order_and_anonymous_rules() {
        let mut config = Config::for_embedded("/tmp/x");
        config.allow_anonymous = false;
        let chain = AuthenticatorChain::from_config(&config);
        assert!(matches!(
            chain.authenticate(&parts("GET")).await,
            Err(Error::Unauthorized(_))
        ));
        assert_eq!(
            chain.authenticate(&parts("OPTIONS")).await.unwrap().user,
            ANONYMOUS
        );

        config.static_user = Some("system:admin".into());
        let chain = AuthenticatorChain::from_config(&config);
        assert_eq!(
            chain.authenticate(&parts("GET")).await.unwrap().user,
            "system:admin"
        );

        config.static_user = None;
        config.allow_anonymous = true;
        let chain = AuthenticatorChain::from_config(&config);
        assert_eq!(
            chain.authenticate(&parts("GET")).await.unwrap().user,
            ANONYMOUS
        );
    }

    #[test]
    fn scope_filters_namespaces() {
        let scope = NamespaceScope::Only(["dev".to_string()].into());
        assert!(scope.contains(Some("dev")));
        assert!(!scope.contains(Some("prod")));
        assert!(!scope.contains(None));
        assert!(NamespaceScope::All.contains(Some("prod")));
    }

    #[test]
    fn always_deny_denies() {
        let caller = Caller { user: "u".into() };
        let access = Access {
            api: "core",
            resource: "roles",
            verb: Verb::Get,
            namespace: None,
        };
        assert!(AlwaysAllow.authorize(&caller, &access).is_ok());
        assert!(matches!(
            AlwaysDeny.authorize(&caller, &access),
            Err(Error::Forbidden)
        ));
    }
}
