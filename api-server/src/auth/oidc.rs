//! OpenID Connect JWT authentication, verified locally against the issuer's published
//! keys (an extension of upstream Krake).
//!
//! Which requests it handles: only those whose `Authorization` header is
//! `Bearer <token>` where `<token>` has the shape of a JWT (three dot-separated parts
//! whose first part is a JOSE header naming a known algorithm). Every other header —
//! upstream's raw Keystone or Keycloak tokens, opaque `Bearer` tokens — passes to the
//! next authenticator, so Keystone/Keycloak and OIDC can be enabled together: clients
//! send `Bearer <JWT>` for OIDC and the raw token for Keystone/Keycloak. A JWT-shaped
//! `Bearer` token that fails verification is rejected (401), never passed on.
//!
//! Verification: the algorithm must be one of RS256, RS384, RS512, ES256, ES384, PS256
//! and fit the issuer's key (key type, curve, and the key's `alg` when it names one);
//! the key is taken from the issuer's JWKS by the token's `kid` (keys in the token
//! itself are ignored); `iss` must equal the configured issuer, `aud` must contain the
//! configured audience, `exp` must be in the future and `nbf` (if present) in the past,
//! both with 30 s of leeway; the user is the configured claim, which must be a string.
//!
//! The JWKS comes from the configured URL or from the issuer's
//! `/.well-known/openid-configuration` (`jwks_uri`). It is fetched on first use, kept for
//! the identity cache TTL, and fetched again early when a token names an unknown `kid`
//! (at most once per 10 s, so random `kid`s cannot make the server hammer the issuer).
//! A key set that cannot be fetched makes requests fail with 503.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};

use super::Authenticator;
use super::http_client::{HttpClient, trim_base};
use super::identity_cache::TokenKey;
use crate::config::OidcConfig;
use crate::error::Error;

/// Signature algorithms accepted in tokens.
pub const ACCEPTED_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
];

/// Shortest time between two key-set fetches caused by unknown `kid`s.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Clock-skew allowance for `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;

/// The issuer's keys as last fetched.
#[derive(Default)]
struct KeySet {
    /// Configured or discovered JWKS URL.
    jwks_uri: Option<String>,
    keys: Vec<Jwk>,
    fetched: Option<Instant>,
    last_unknown_kid_refresh: Option<Instant>,
}

/// Authenticates `Bearer` JWTs issued by one OpenID Connect issuer.
pub struct OidcAuthenticator {
    config: OidcConfig,
    client: HttpClient,
    ttl: Duration,
    keys: tokio::sync::Mutex<KeySet>,
}

/// The token of an `Authorization: Bearer <JWT>` header and its JOSE header.
fn bearer_jwt(request: &Parts) -> Option<(&str, Header)> {
    let value = request.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    if token.split('.').count() != 3 {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    Some((token, header))
}

fn invalid(reason: impl std::fmt::Display) -> Error {
    Error::InvalidToken {
        title: None,
        detail: format!("Invalid OIDC token: {reason}"),
    }
}

fn unavailable(reason: impl std::fmt::Display) -> Error {
    Error::IdentityProviderUnavailable(format!("OIDC issuer: {reason}"))
}

/// Why jsonwebtoken refused a token, in words.
fn describe(error: &jsonwebtoken::errors::Error) -> String {
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
        ErrorKind::InvalidIssuer => "wrong issuer".into(),
        ErrorKind::InvalidAudience => "wrong audience".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::InvalidAlgorithm => "the algorithm does not fit the key".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("claim '{claim}' is missing"),
        ErrorKind::InvalidClaimFormat(claim) => format!("claim '{claim}' is malformed"),
        _ => error.to_string(),
    }
}

/// Whether `jwk` can verify signatures made with `alg`.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return false;
    }
    if let Some(key_alg) = jwk.common.key_algorithm
        && Algorithm::try_from(key_alg).ok() != Some(alg)
    {
        return false;
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(params) => matches!(
            (&params.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        _ => false,
    }
}

impl OidcAuthenticator {
    /// Verify tokens of `config.issuer`, fetching its keys through `client`; the key set
    /// is kept for `key_ttl`.
    pub fn new(config: &OidcConfig, client: HttpClient, key_ttl: Duration) -> Self {
        OidcAuthenticator {
            keys: tokio::sync::Mutex::new(KeySet {
                jwks_uri: config.jwks_uri.clone(),
                ..KeySet::default()
            }),
            config: config.clone(),
            client,
            ttl: key_ttl,
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation
    }

    /// GET a JSON document from the issuer; anything but a 200 JSON answer is a failure.
    async fn fetch_json(&self, what: &str, url: &str) -> Result<serde_json::Value, Error> {
        let response = self.client.get(url, HeaderMap::new()).await.map_err(|e| {
            tracing::warn!(error = %e, "fetching the OIDC {what} failed");
            unavailable(format!("the {what} {}", e.summary()))
        })?;
        if response.status.as_u16() != 200 {
            tracing::warn!(url, status = %response.status, "fetching the OIDC {what} failed");
            return Err(unavailable(format!(
                "the {what} cannot be fetched (HTTP {} {})",
                response.status.as_u16(),
                response.reason
            )));
        }
        serde_json::from_slice(&response.body)
            .map_err(|_| unavailable(format!("the {what} is not JSON")))
    }

    /// The JWKS URL from the issuer's discovery document.
    async fn discover(&self) -> Result<String, Error> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            trim_base(&self.config.issuer)
        );
        let document = self.fetch_json("discovery document", &url).await?;
        document
            .get("jwks_uri")
            .and_then(|v| v.as_str())
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(str::to_string)
            .ok_or_else(|| unavailable("the discovery document has no usable jwks_uri"))
    }

    /// Fetch the key set (discovering its URL first if needed).
    async fn refresh(&self, keys: &mut KeySet) -> Result<(), Error> {
        let uri = match &keys.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                keys.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let document = self.fetch_json("key set", &uri).await?;
        let Some(list) = document.get("keys").and_then(|k| k.as_array()) else {
            return Err(unavailable("the key set has no 'keys' list"));
        };
        // Keys of unknown types are skipped, not fatal: issuers publish many kinds.
        keys.keys = list
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .collect();
        keys.fetched = Some(Instant::now());
        tracing::info!(
            published = list.len(),
            usable = keys.keys.len(),
            "fetched the OIDC issuer's signing keys"
        );
        Ok(())
    }

    /// The keys that may have signed a token naming `kid`.
    async fn candidate_keys(&self, kid: Option<&str>) -> Result<Vec<Jwk>, Error> {
        let mut keys = self.keys.lock().await;
        let now = Instant::now();
        let mut just_fetched = false;
        if keys
            .fetched
            .is_none_or(|fetched| now.duration_since(fetched) >= self.ttl)
        {
            self.refresh(&mut keys).await?;
            just_fetched = true;
        }
        let Some(kid) = kid else {
            return Ok(keys.keys.clone());
        };
        let find = |keys: &KeySet| {
            keys.keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid))
                .cloned()
        };
        if let Some(key) = find(&keys) {
            return Ok(vec![key]);
        }
        let may_refresh = !just_fetched
            && keys
                .last_unknown_kid_refresh
                .is_none_or(|last| now.duration_since(last) >= MIN_REFRESH_INTERVAL);
        if may_refresh {
            keys.last_unknown_kid_refresh = Some(now);
            tracing::info!("a token names an unknown key id: fetching the issuer's keys");
            self.refresh(&mut keys).await?;
            if let Some(key) = find(&keys) {
                return Ok(vec![key]);
            }
        }
        Err(invalid("the issuer has no key with the token's key id"))
    }

    async fn verify(&self, token: &str, header: &Header) -> Result<String, Error> {
        let alg = header.alg;
        if !ACCEPTED_ALGORITHMS.contains(&alg) {
            return Err(invalid(format!("algorithm {alg:?} is not accepted")));
        }
        let candidates = self.candidate_keys(header.kid.as_deref()).await?;
        let validation = self.validation(alg);
        let mut failure = None;
        for jwk in candidates.iter().filter(|k| key_fits(k, alg)) {
            let key = match DecodingKey::from_jwk(jwk) {
                Ok(key) => key,
                Err(e) => {
                    failure = Some(format!("the issuer's key is unusable: {}", describe(&e)));
                    continue;
                }
            };
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key,
                &validation,
            ) {
                Ok(data) => {
                    return match data.claims.get(&self.config.username_claim) {
                        Some(serde_json::Value::String(user)) if !user.is_empty() => {
                            Ok(user.clone())
                        }
                        Some(serde_json::Value::String(_)) => Err(invalid(format!(
                            "claim '{}' is empty",
                            self.config.username_claim
                        ))),
                        Some(_) => Err(invalid(format!(
                            "claim '{}' is not a string",
                            self.config.username_claim
                        ))),
                        None => Err(invalid(format!(
                            "claim '{}' is missing",
                            self.config.username_claim
                        ))),
                    };
                }
                // Without a `kid`, several keys may be tried.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {
                    failure = Some(describe(&e));
                }
                Err(e) => return Err(invalid(describe(&e))),
            }
        }
        Err(invalid(failure.unwrap_or_else(|| {
            format!("the issuer has no key for algorithm {alg:?}")
        })))
    }
}

#[async_trait]
impl Authenticator for OidcAuthenticator {
    async fn authenticate(&self, request: &Parts) -> Result<Option<String>, Error> {
        let Some((token, header)) = bearer_jwt(request) else {
            return Ok(None);
        };
        let short = TokenKey::of(token).short();
        match self.verify(token, &header).await {
            Ok(user) => {
                tracing::debug!(token = %short, %user, "OIDC token accepted");
                Ok(Some(user))
            }
            Err(e) => {
                tracing::debug!(token = %short, error = %e, "OIDC token refused");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(authorization: &str) -> Parts {
        axum::http::Request::builder()
            .header(header::AUTHORIZATION, authorization)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn only_bearer_jwts_are_claimed() {
        // {"alg":"ES256","kid":"k"} . {} . sig
        let jwt = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsifQ.e30.c2ln";
        let request = parts(&format!("Bearer {jwt}"));
        let (token, header) = bearer_jwt(&request).unwrap();
        assert_eq!(token, jwt);
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some("k"));
        assert!(bearer_jwt(&parts(&format!("bearer  {jwt} "))).is_some());
        // Raw tokens (upstream Keystone/Keycloak style), opaque bearer tokens, other
        // schemes, and dotted strings that are not JWTs are left to others.
        assert!(bearer_jwt(&parts(jwt)).is_none());
        assert!(bearer_jwt(&parts("Bearer gAAAAABopaque")).is_none());
        assert!(bearer_jwt(&parts(&format!("Basic {jwt}"))).is_none());
        assert!(bearer_jwt(&parts("Bearer a.b.c")).is_none());
        assert!(bearer_jwt(&parts(&format!("Bearer {jwt}.x"))).is_none());
    }

    #[test]
    fn keys_must_fit_the_algorithm() {
        let ec: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "a"
        }))
        .unwrap();
        assert!(key_fits(&ec, Algorithm::ES256));
        assert!(!key_fits(&ec, Algorithm::ES384));
        assert!(!key_fits(&ec, Algorithm::RS256));
        let rsa: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "n": "AA", "e": "AQAB", "alg": "RS256"
        }))
        .unwrap();
        assert!(key_fits(&rsa, Algorithm::RS256));
        assert!(!key_fits(&rsa, Algorithm::PS256));
        let enc: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "n": "AA", "e": "AQAB", "use": "enc"
        }))
        .unwrap();
        assert!(!key_fits(&enc, Algorithm::RS256));
        let hmac: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "oct", "k": "c2VjcmV0"
        }))
        .unwrap();
        assert!(!key_fits(&hmac, Algorithm::RS256));
    }
}
