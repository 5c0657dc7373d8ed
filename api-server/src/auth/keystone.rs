//! OpenStack Keystone token authentication (upstream's `keystone` strategy).
//!
//! The raw `Authorization` header is the token (no `Bearer` prefix handling, like
//! upstream). Keystone is asked `GET {endpoint}/auth/tokens` with the token as both
//! `X-Auth-Token` and `X-Subject-Token`; a 200 answer names the user in
//! `token.user.name`. Any other answer rejects the request (401
//! `INVALID_KEYSTONE_TOKEN`), except 5xx answers and network failures, which make the
//! request fail with 503: an unavailable Keystone never lets a request through.

use std::time::Duration;

use async_trait::async_trait;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use super::Authenticator;
use super::http_client::{HttpClient, HttpResponse, trim_base};
use super::identity_cache::{DEFAULT_CAPACITY, IdentityCache, TokenKey, Verdict};
use crate::config::KeystoneConfig;
use crate::error::{Error, ProblemTitle};

/// The non-empty raw `Authorization` header, if any.
pub(crate) fn raw_authorization(request: &Parts) -> Option<&HeaderValue> {
    request
        .headers
        .get(header::AUTHORIZATION)
        .filter(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// Ask `lookup` about the token unless the cache knows the answer; remember users and
/// rejections (never failures).
pub(crate) async fn cached_lookup<F>(
    provider: &str,
    title: ProblemTitle,
    cache: &IdentityCache<Verdict>,
    token: &HeaderValue,
    lookup: F,
) -> Result<Option<String>, Error>
where
    F: Future<Output = Result<Verdict, Error>>,
{
    let key = TokenKey::of(token.as_bytes());
    let (verdict, cached) = match cache.get(&key) {
        Some(verdict) => (verdict, true),
        None => {
            let verdict = lookup.await.inspect_err(|e| {
                tracing::warn!(provider, token = %key.short(), error = %e, "token lookup failed");
            })?;
            cache.insert(key, verdict.clone());
            (verdict, false)
        }
    };
    match verdict {
        Verdict::User(user) => {
            tracing::debug!(provider, token = %key.short(), %user, cached, "token accepted");
            Ok(Some(user))
        }
        Verdict::Rejected(detail) => {
            tracing::debug!(provider, token = %key.short(), cached, "token rejected");
            Err(Error::InvalidToken {
                title: Some(title),
                detail,
            })
        }
    }
}

/// What an identity provider's non-200 answer means: 5xx → unavailable, else rejected.
pub(crate) fn non_ok_verdict(provider: &str, response: &HttpResponse) -> Result<Verdict, Error> {
    if response.status.is_server_error() {
        return Err(Error::IdentityProviderUnavailable(format!(
            "{provider} answered HTTP {} {}",
            response.status.as_u16(),
            response.reason
        )));
    }
    Ok(Verdict::Rejected(format!(
        "Invalid {provider} token (HTTP {} {})",
        response.status.as_u16(),
        response.reason
    )))
}

/// The user name at `path` in a provider's JSON answer, or 503 (an answer that is not
/// what the provider's API promises is a provider failure, not the client's).
pub(crate) fn user_from_answer(
    provider: &str,
    body: &[u8],
    path: &[&str],
) -> Result<Verdict, Error> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        Error::IdentityProviderUnavailable(format!("{provider} answered with invalid JSON"))
    })?;
    path.iter()
        .try_fold(&value, |v, key| v.get(key))
        .and_then(|v| v.as_str())
        .filter(|user| !user.is_empty())
        .map(|user| Verdict::User(user.to_string()))
        .ok_or_else(|| {
            Error::IdentityProviderUnavailable(format!(
                "{provider} answered without a user name ({})",
                path.join(".")
            ))
        })
}

/// Authenticates `Authorization` tokens with Keystone.
pub struct KeystoneAuthenticator {
    url: String,
    client: HttpClient,
    cache: IdentityCache<Verdict>,
}

impl KeystoneAuthenticator {
    /// Ask the Keystone at `config.endpoint` through `client`; answers are remembered for
    /// `cache_ttl`.
    pub fn new(config: &KeystoneConfig, client: HttpClient, cache_ttl: Duration) -> Self {
        KeystoneAuthenticator {
            url: format!("{}/auth/tokens", trim_base(&config.endpoint)),
            client,
            cache: IdentityCache::new(cache_ttl, DEFAULT_CAPACITY),
        }
    }

    async fn lookup(&self, token: &HeaderValue) -> Result<Verdict, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-auth-token"), token.clone());
        headers.insert(HeaderName::from_static("x-subject-token"), token.clone());
        let response = self.client.get(&self.url, headers).await.map_err(|e| {
            tracing::warn!(error = %e, "Keystone request failed");
            Error::IdentityProviderUnavailable(format!("Keystone {}", e.summary()))
        })?;
        if response.status.as_u16() != 200 {
            return non_ok_verdict("Keystone", &response);
        }
        user_from_answer("Keystone", &response.body, &["token", "user", "name"])
    }
}

#[async_trait]
impl Authenticator for KeystoneAuthenticator {
    async fn authenticate(&self, request: &Parts) -> Result<Option<String>, Error> {
        let Some(token) = raw_authorization(request) else {
            return Ok(None);
        };
        cached_lookup(
            "Keystone",
            ProblemTitle::InvalidKeystoneToken,
            &self.cache,
            token,
            self.lookup(token),
        )
        .await
    }
}
