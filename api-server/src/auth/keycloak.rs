//! Keycloak token authentication (upstream's `keycloak` strategy).
//!
//! The raw `Authorization` header is the access token (no `Bearer` prefix handling, like
//! upstream). Keycloak is asked
//! `POST {endpoint}/auth/realms/{realm}/protocol/openid-connect/userinfo` with the form
//! field `access_token`; a 200 answer names the user in `preferred_username`. Any other
//! answer rejects the request (401 `INVALID_KEYCLOAK_TOKEN`), except 5xx answers and
//! network failures, which make the request fail with 503.

use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderValue;
use axum::http::request::Parts;

use super::Authenticator;
use super::http_client::{HttpClient, trim_base};
use super::identity_cache::{DEFAULT_CAPACITY, IdentityCache, Verdict};
use super::keystone::{cached_lookup, non_ok_verdict, raw_authorization, user_from_answer};
use crate::config::KeycloakConfig;
use crate::error::{Error, ProblemTitle};

/// Authenticates `Authorization` tokens with Keycloak's userinfo endpoint.
pub struct KeycloakAuthenticator {
    url: String,
    client: HttpClient,
    cache: IdentityCache<Verdict>,
}

impl KeycloakAuthenticator {
    /// Ask the Keycloak at `config.endpoint` (realm `config.realm`) through `client`;
    /// answers are remembered for `cache_ttl`.
    pub fn new(config: &KeycloakConfig, client: HttpClient, cache_ttl: Duration) -> Self {
        KeycloakAuthenticator {
            url: format!(
                "{}/auth/realms/{}/protocol/openid-connect/userinfo",
                trim_base(&config.endpoint),
                config.realm
            ),
            client,
            cache: IdentityCache::new(cache_ttl, DEFAULT_CAPACITY),
        }
    }

    async fn lookup(&self, token: &HeaderValue) -> Result<Verdict, Error> {
        let response = self
            .client
            .post_form(&self.url, &[("access_token", token.as_bytes())])
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "Keycloak request failed");
                Error::IdentityProviderUnavailable(format!("Keycloak {}", e.summary()))
            })?;
        if response.status.as_u16() != 200 {
            return non_ok_verdict("Keycloak", &response);
        }
        user_from_answer("Keycloak", &response.body, &["preferred_username"])
    }
}

#[async_trait]
impl Authenticator for KeycloakAuthenticator {
    async fn authenticate(&self, request: &Parts) -> Result<Option<String>, Error> {
        let Some(token) = raw_authorization(request) else {
            return Ok(None);
        };
        cached_lookup(
            "Keycloak",
            ProblemTitle::InvalidKeycloakToken,
            &self.cache,
            token,
            self.lookup(token),
        )
        .await
    }
}
