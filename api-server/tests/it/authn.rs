//! Authentication over real HTTP: anonymous access, the
//! static user, Keystone, Keycloak and OpenID Connect JWTs, the identity cache, and
//! several authenticators tried in order. Identity providers are small fake servers
//! answering as the real ones do.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use krake_api_server::config::{Config, KeycloakConfig, KeystoneConfig, OidcConfig};
use krake_api_server::server::RunningServer;
use serde_json::{Value, json};

const PROBLEM_BASE: &str =
    "https://rak-n-rok.readthedocs.io/projects/krake/en/latest/user/problem.html";

// ---------------------------------------------------------------------------------------
// The API server under test.

struct Api {
    server: RunningServer,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.shutdown();
    }
}

/// A problem or JSON answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

impl Api {
    /// Anonymous access disallowed; `configure` adds authenticators.
    async fn start(configure: impl FnOnce(&mut Config)) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_embedded(dir.path().join("data"));
        config.allow_anonymous = false;
        configure(&mut config);
        let server = krake_api_server::start(config).await.unwrap();
        Api {
            base: format!("http://{}", server.addr),
            server,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    async fn get(&self, path: &str, authorization: Option<&str>) -> Answer {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// The user `/me` reports, or the failed answer.
    async fn me(&self, authorization: Option<&str>) -> Result<String, Answer> {
        let answer = self.get("/me", authorization).await;
        if answer.status == 200 {
            Ok(answer.body["user"].as_str().unwrap().to_string())
        } else {
            Err(answer)
        }
    }
}

fn assert_problem(answer: &Answer, status: u16, title: Option<&str>, detail: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(
        answer.content_type.starts_with("application/problem+json"),
        "{}",
        answer.content_type
    );
    let mut expected = json!({
        "type": "about:blank",
        "status": status,
        "detail": detail,
    });
    if let Some(title) = title {
        let fragment = title.to_lowercase().replace('_', "-");
        expected["type"] = json!(format!("{PROBLEM_BASE}#{fragment}"));
        expected["title"] = json!(title);
    }
    assert_eq!(answer.body, expected);
}

/// A URL on which nothing listens.
fn unreachable_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}{path}")
}

/// A JSON body (axum's `json` feature is not enabled in this workspace).
struct Json(Value);

impl IntoResponse for Json {
    fn into_response(self) -> Response {
        (
            [("content-type", "application/json")],
            serde_json::to_vec(&self.0).unwrap(),
        )
            .into_response()
    }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------------------
// Fake Keystone and Keycloak: a table of valid tokens, a call counter, and the token
// `explode`, which makes them fail with 500.

#[derive(Default)]
struct FakeIdp {
    users: Mutex<HashMap<String, String>>,
    calls: AtomicUsize,
    mismatched_headers: AtomicUsize,
}

impl FakeIdp {
    fn with_user(token: &str, user: &str) -> Arc<FakeIdp> {
        let idp = Arc::new(FakeIdp::default());
        idp.users
            .lock()
            .unwrap()
            .insert(token.to_string(), user.to_string());
        idp
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn user(&self, token: &str) -> Option<String> {
        self.users.lock().unwrap().get(token).cloned()
    }
}

async fn keystone_tokens(State(idp): State<Arc<FakeIdp>>, headers: HeaderMap) -> Response {
    idp.calls.fetch_add(1, Ordering::SeqCst);
    let auth = headers.get("x-auth-token").map(|v| v.to_str().unwrap());
    let subject = headers.get("x-subject-token").map(|v| v.to_str().unwrap());
    if auth.is_none() || auth != subject {
        idp.mismatched_headers.fetch_add(1, Ordering::SeqCst);
    }
    let token = subject.unwrap_or_default();
    if token == "explode" {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    match idp.user(token) {
        Some(user) => (
            StatusCode::OK,
            [("x-subject-token", token.to_string())],
            Json(json!({"token": {
                "methods": ["password"],
                "user": {"domain": {"id": "default", "name": "Default"}, "id": "u1", "name": user},
                "expires_at": "2099-01-01T00:00:00.000000Z",
            }})),
        )
            .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {
                "code": 401,
                "message": "The request you have made requires authentication.",
                "title": "Unauthorized",
            }})),
        )
            .into_response(),
    }
}

/// A Keystone whose v3 endpoint is `{base}/v3`.
async fn fake_keystone(idp: Arc<FakeIdp>) -> String {
    let router = Router::new()
        .route("/v3/auth/tokens", get(keystone_tokens))
        .with_state(idp);
    format!("{}/v3", serve(router).await)
}

fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(&value[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

async fn keycloak_userinfo(
    State(idp): State<Arc<FakeIdp>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    idp.calls.fetch_add(1, Ordering::SeqCst);
    let form_typed = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes() == b"application/x-www-form-urlencoded");
    let token = body
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "access_token")
        .map(|(_, v)| form_decode(v));
    if token.as_deref() == Some("explode") {
        return (StatusCode::BAD_GATEWAY, "upstream down").into_response();
    }
    match token.and_then(|t| idp.user(&t)).filter(|_| form_typed) {
        Some(user) => Json(json!({
            "sub": "0b2b5c4e",
            "email_verified": false,
            "preferred_username": user,
        }))
        .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(
                "www-authenticate",
                "Bearer realm=\"krake\", error=\"invalid_token\"",
            )],
            Json(json!({
                "error": "invalid_token",
                "error_description": "Token verification failed",
            })),
        )
            .into_response(),
    }
}

/// A Keycloak serving realm `krake`.
async fn fake_keycloak(idp: Arc<FakeIdp>) -> String {
    let router = Router::new()
        .route(
            "/auth/realms/krake/protocol/openid-connect/userinfo",
            post(keycloak_userinfo),
        )
        .with_state(idp);
    serve(router).await
}

// ---------------------------------------------------------------------------------------
// Fake OpenID Connect issuer: discovery document and a rotatable key set.

/// An ECDSA signing key and its public JWK.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    der: Vec<u8>,
    jwk: Value,
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

impl SigningKey {
    fn generate(kid: &str, alg: Algorithm) -> SigningKey {
        let (rcgen_alg, curve, size) = match alg {
            Algorithm::ES256 => (&rcgen::PKCS_ECDSA_P256_SHA256, "P-256", 32),
            Algorithm::ES384 => (&rcgen::PKCS_ECDSA_P384_SHA384, "P-384", 48),
            other => panic!("no test keys for {other:?}"),
        };
        let pair = rcgen::KeyPair::generate_for(rcgen_alg).unwrap();
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 1 + 2 * size);
        assert_eq!(point[0], 4, "uncompressed point");
        let (x, y) = point[1..].split_at(size);
        SigningKey {
            kid: kid.to_string(),
            alg,
            der: pair.serialize_der(),
            jwk: json!({
                "kty": "EC",
                "use": "sig",
                "crv": curve,
                "kid": kid,
                "alg": format!("{alg:?}"),
                "x": base64url(x),
                "y": base64url(y),
            }),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.der)).unwrap()
    }

    /// Signed with this key but naming another key id.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.der)).unwrap()
    }
}

#[derive(Default)]
struct FakeIssuer {
    issuer: Mutex<String>,
    keys: Mutex<Vec<Value>>,
    discovery_calls: AtomicUsize,
    jwks_calls: AtomicUsize,
}

impl FakeIssuer {
    fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn jwks_calls(&self) -> usize {
        self.jwks_calls.load(Ordering::SeqCst)
    }
}

async fn discovery(State(issuer): State<Arc<FakeIssuer>>) -> Response {
    issuer.discovery_calls.fetch_add(1, Ordering::SeqCst);
    let base = issuer.issuer.lock().unwrap().clone();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{base}/protocol/openid-connect/token"),
        "jwks_uri": format!("{base}/protocol/openid-connect/certs"),
        "id_token_signing_alg_values_supported": ["ES256", "ES384", "RS256"],
    }))
    .into_response()
}

async fn certs(State(issuer): State<Arc<FakeIssuer>>) -> Response {
    issuer.jwks_calls.fetch_add(1, Ordering::SeqCst);
    let mut keys = issuer.keys.lock().unwrap().clone();
    // Real issuers also publish keys this server cannot use; they must be skipped.
    keys.push(json!({"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc-1",
        "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
        "e": "AQAB"}));
    keys.push(json!({"kty": "OKP", "crv": "X25519", "kid": "xdh-1", "x": "AA"}));
    Json(json!({"keys": keys})).into_response()
}

/// An issuer at `{base}/realms/krake` publishing `keys`.
async fn fake_issuer(keys: &[&SigningKey]) -> (Arc<FakeIssuer>, String) {
    let state = Arc::new(FakeIssuer::default());
    state.publish(keys);
    let router = Router::new()
        .route(
            "/realms/krake/.well-known/openid-configuration",
            get(discovery),
        )
        .route("/realms/krake/protocol/openid-connect/certs", get(certs))
        .with_state(state.clone());
    let issuer = format!("{}/realms/krake", serve(router).await);
    *state.issuer.lock().unwrap() = issuer.clone();
    (state, issuer)
}

const AUDIENCE: &str = "krake-api";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(issuer: &str, user: &str) -> Value {
    json!({
        "iss": issuer,
        "aud": ["account", AUDIENCE],
        "sub": "f3b1c2d4",
        "exp": now() + 300,
        "iat": now(),
        "preferred_username": user,
    })
}

fn oidc_config(issuer: &str) -> OidcConfig {
    OidcConfig {
        issuer: issuer.to_string(),
        audience: AUDIENCE.to_string(),
        username_claim: "preferred_username".to_string(),
        jwks_uri: None,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------------------
// Anonymous access and the static user.

#[tokio::test]
async fn without_authenticators_and_anonymous_access_every_request_is_401() {
    let api = Api::start(|_| {}).await;
    for path in [
        "/",
        "/me",
        "/kubernetes/namespaces/ns1/applications",
        "/nope",
    ] {
        let answer = api.get(path, None).await;
        assert_problem(&answer, 401, None, "401: No user has been authenticated.");
    }
    // A token nobody checks does not authenticate anybody.
    let answer = api.get("/me", Some("Bearer some-token")).await;
    assert_problem(&answer, 401, None, "401: No user has been authenticated.");
    // Operations endpoints stay open.
    assert_eq!(api.get("/livez", None).await.status, 200);
}

#[tokio::test]
async fn anonymous_access_when_allowed() {
    let api = Api::start(|c| c.allow_anonymous = true).await;
    assert_eq!(api.me(None).await.ok().as_deref(), Some("system:anonymous"));
}

#[tokio::test]
async fn static_user_shows_in_me() {
    let api = Api::start(|c| c.static_user = Some("system:admin".into())).await;
    assert_eq!(api.me(None).await.ok().as_deref(), Some("system:admin"));
    assert_eq!(
        api.me(Some("whatever")).await.ok().as_deref(),
        Some("system:admin")
    );
}

// ---------------------------------------------------------------------------------------
// Keystone.

fn keystone(endpoint: &str) -> Option<KeystoneConfig> {
    Some(KeystoneConfig {
        endpoint: endpoint.to_string(),
    })
}

#[tokio::test]
async fn keystone_valid_token_names_the_user() {
    let idp = FakeIdp::with_user("gAAAAABkeystone-token", "alice");
    let endpoint = fake_keystone(idp.clone()).await;
    let api = Api::start(|c| c.keystone = keystone(&endpoint)).await;
    assert_eq!(
        api.me(Some("gAAAAABkeystone-token")).await.ok().as_deref(),
        Some("alice")
    );
    assert_eq!(idp.calls(), 1);
    assert_eq!(idp.mismatched_headers.load(Ordering::SeqCst), 0);
    // Resource routes see the same user (always-allow).
    let answer = api
        .get(
            "/kubernetes/namespaces/ns1/applications",
            Some("gAAAAABkeystone-token"),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn keystone_trailing_slash_in_endpoint_is_tolerated() {
    let idp = FakeIdp::with_user("tok", "alice");
    let endpoint = fake_keystone(idp.clone()).await;
    let api = Api::start(|c| c.keystone = keystone(&format!("{endpoint}/"))).await;
    assert_eq!(api.me(Some("tok")).await.ok().as_deref(), Some("alice"));
}

#[tokio::test]
async fn keystone_rejected_token_is_401_invalid_keystone_token() {
    let idp = FakeIdp::with_user("good", "alice");
    let endpoint = fake_keystone(idp.clone()).await;
    // Even with anonymous access allowed: a rejected token never becomes anonymous.
    let api = Api::start(|c| {
        c.keystone = keystone(&endpoint);
        c.allow_anonymous = true;
    })
    .await;
    let answer = api.me(Some("bad")).await.unwrap_err();
    assert_problem(
        &answer,
        401,
        Some("INVALID_KEYSTONE_TOKEN"),
        "Invalid Keystone token (HTTP 401 Unauthorized)",
    );
    assert_eq!(idp.calls(), 1);
    // No header: Keystone is not asked, the next step (anonymous) applies.
    assert_eq!(api.me(None).await.ok().as_deref(), Some("system:anonymous"));
    assert_eq!(idp.calls(), 1);
}

#[tokio::test]
async fn keystone_without_header_and_without_anonymous_is_401() {
    let idp = FakeIdp::with_user("good", "alice");
    let endpoint = fake_keystone(idp.clone()).await;
    let api = Api::start(|c| c.keystone = keystone(&endpoint)).await;
    let answer = api.me(None).await.unwrap_err();
    assert_problem(&answer, 401, None, "401: No user has been authenticated.");
    assert_eq!(idp.calls(), 0);
}

#[tokio::test]
async fn keystone_unreachable_or_failing_is_503() {
    let api = Api::start(|c| {
        c.keystone = keystone(&unreachable_url("/v3"));
        c.allow_anonymous = true;
    })
    .await;
    let answer = api.me(Some("tok")).await.unwrap_err();
    assert_problem(
        &answer,
        503,
        None,
        "503: Identity provider unavailable: Keystone cannot be reached",
    );

    let idp = FakeIdp::with_user("good", "alice");
    let endpoint = fake_keystone(idp.clone()).await;
    let api = Api::start(|c| {
        c.keystone = keystone(&endpoint);
        c.allow_anonymous = true;
    })
    .await;
    let answer = api.me(Some("explode")).await.unwrap_err();
    assert_problem(
        &answer,
        503,
        None,
        "503: Identity provider unavailable: Keystone answered HTTP 500 Internal Server Error",
    );
    // Failures are not cached: the next request asks again.
    api.me(Some("explode")).await.unwrap_err();
    assert_eq!(idp.calls(), 2);

    // An https:// endpoint goes through TLS (rustls with ring): a plain-HTTP server
    // there fails the handshake, which is an unreachable provider, not a crash.
    let https = endpoint.replace("http://", "https://");
    let api = Api::start(|c| c.keystone = keystone(&https)).await;
    let answer = api.me(Some("good")).await.unwrap_err();
    assert_problem(
        &answer,
        503,
        None,
        "503: Identity provider unavailable: Keystone cannot be reached",
    );
    assert_eq!(idp.calls(), 2);
}

#[tokio::test]
async fn keystone_answers_are_cached_for_the_ttl() {
    let idp = FakeIdp::with_user("good", "alice");
    let endpoint = fake_keystone(idp.clone()).await;
    let api = Api::start(|c| {
        c.keystone = keystone(&endpoint);
        c.identity_cache_ttl = Duration::from_secs(3);
    })
    .await;
    assert_eq!(api.me(Some("good")).await.ok().as_deref(), Some("alice"));
    assert_eq!(api.me(Some("good")).await.ok().as_deref(), Some("alice"));
    assert_eq!(
        idp.calls(),
        1,
        "the second request within the TTL is cached"
    );
    // Rejections are cached too, with the same answer.
    for _ in 0..2 {
        let answer = api.me(Some("bad")).await.unwrap_err();
        assert_eq!(answer.status, 401);
        assert_eq!(answer.body["title"], "INVALID_KEYSTONE_TOKEN");
    }
    assert_eq!(idp.calls(), 2);

    // The token is revoked at Keystone; after the TTL, Keystone is asked again.
    idp.users.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let answer = api.me(Some("good")).await.unwrap_err();
    assert_eq!(answer.body["title"], "INVALID_KEYSTONE_TOKEN");
    assert_eq!(idp.calls(), 3);
}

// ---------------------------------------------------------------------------------------
// Keycloak.

fn keycloak(endpoint: &str) -> Option<KeycloakConfig> {
    Some(KeycloakConfig {
        endpoint: endpoint.to_string(),
        realm: "krake".to_string(),
    })
}

#[tokio::test]
async fn keycloak_valid_token_names_the_user() {
    // Characters that must be form-encoded reach Keycloak intact.
    let token = "eyJhbGciOi.Jz+/=&x y";
    let idp = FakeIdp::with_user(token, "bob");
    let endpoint = fake_keycloak(idp.clone()).await;
    let api = Api::start(|c| c.keycloak = keycloak(&endpoint)).await;
    assert_eq!(api.me(Some(token)).await.ok().as_deref(), Some("bob"));
    assert_eq!(idp.calls(), 1);
}

#[tokio::test]
async fn keycloak_rejected_token_is_401_invalid_keycloak_token() {
    let idp = FakeIdp::with_user("good", "bob");
    let endpoint = fake_keycloak(idp.clone()).await;
    let api = Api::start(|c| c.keycloak = keycloak(&endpoint)).await;
    let answer = api.me(Some("bad")).await.unwrap_err();
    assert_problem(
        &answer,
        401,
        Some("INVALID_KEYCLOAK_TOKEN"),
        "Invalid Keycloak token (HTTP 401 Unauthorized)",
    );
    assert_eq!(idp.calls(), 1);
}

#[tokio::test]
async fn keycloak_unreachable_or_failing_is_503() {
    let api = Api::start(|c| {
        c.keycloak = keycloak(&unreachable_url(""));
        c.allow_anonymous = true;
    })
    .await;
    let answer = api.me(Some("tok")).await.unwrap_err();
    assert_problem(
        &answer,
        503,
        None,
        "503: Identity provider unavailable: Keycloak cannot be reached",
    );

    let idp = FakeIdp::with_user("good", "bob");
    let endpoint = fake_keycloak(idp.clone()).await;
    let api = Api::start(|c| c.keycloak = keycloak(&endpoint)).await;
    let answer = api.me(Some("explode")).await.unwrap_err();
    assert_problem(
        &answer,
        503,
        None,
        "503: Identity provider unavailable: Keycloak answered HTTP 502 Bad Gateway",
    );
}

// ---------------------------------------------------------------------------------------
// OpenID Connect JWTs.

async fn oidc_api(issuer: &str) -> Api {
    let config = oidc_config(issuer);
    Api::start(move |c| c.oidc = Some(config)).await
}

#[tokio::test]
async fn oidc_valid_jwt_names_the_user_and_keys_are_fetched_once() {
    let key = SigningKey::generate("k1", Algorithm::ES256);
    let (state, issuer) = fake_issuer(&[&key]).await;
    let api = oidc_api(&issuer).await;
    for user in ["carol", "dave"] {
        let token = key.sign(&claims(&issuer, user));
        assert_eq!(
            api.me(Some(&bearer(&token))).await.ok().as_deref(),
            Some(user)
        );
    }
    assert_eq!(state.discovery_calls.load(Ordering::SeqCst), 1);
    assert_eq!(state.jwks_calls(), 1, "the key set is cached");
}

#[tokio::test]
async fn oidc_es384_and_configured_jwks_uri() {
    let key = SigningKey::generate("k384", Algorithm::ES384);
    let (state, issuer) = fake_issuer(&[&key]).await;
    let mut config = oidc_config(&issuer);
    config.jwks_uri = Some(format!("{issuer}/protocol/openid-connect/certs"));
    config.username_claim = "sub".into();
    let api = Api::start(move |c| c.oidc = Some(config)).await;
    let token = key.sign(&claims(&issuer, "erin"));
    assert_eq!(
        api.me(Some(&bearer(&token))).await.ok().as_deref(),
        Some("f3b1c2d4")
    );
    assert_eq!(state.discovery_calls.load(Ordering::SeqCst), 0);
    assert_eq!(state.jwks_calls(), 1);
}

/// `token` must be refused with 401 and `reason`.
async fn assert_oidc_refused(api: &Api, token: &str, reason: &str) {
    let answer = api.me(Some(&bearer(token))).await.unwrap_err();
    assert_problem(&answer, 401, None, &format!("Invalid OIDC token: {reason}"));
}

#[tokio::test]
async fn oidc_expired_jwt_is_401() {
    let key = SigningKey::generate("k1", Algorithm::ES256);
    let (_state, issuer) = fake_issuer(&[&key]).await;
    let api = Api::start({
        let config = oidc_config(&issuer);
        move |c| {
            c.oidc = Some(config);
            // A refused token is refused also when anonymous access is allowed.
            c.allow_anonymous = true;
        }
    })
    .await;
    let mut expired = claims(&issuer, "carol");
    expired["exp"] = json!(now() - 120);
    assert_oidc_refused(&api, &key.sign(&expired), "the token has expired").await;
    // Within the leeway it is still accepted.
    let mut just_expired = claims(&issuer, "carol");
    just_expired["exp"] = json!(now() - 5);
    assert_eq!(
        api.me(Some(&bearer(&key.sign(&just_expired))))
            .await
            .ok()
            .as_deref(),
        Some("carol")
    );
    // Not valid yet.
    let mut future = claims(&issuer, "carol");
    future["nbf"] = json!(now() + 600);
    assert_oidc_refused(&api, &key.sign(&future), "the token is not valid yet").await;
    // Without exp.
    let mut no_exp = claims(&issuer, "carol");
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_oidc_refused(&api, &key.sign(&no_exp), "claim 'exp' is missing").await;
}

#[tokio::test]
async fn oidc_wrong_issuer_is_401() {
    let key = SigningKey::generate("k1", Algorithm::ES256);
    let (_state, issuer) = fake_issuer(&[&key]).await;
    let api = oidc_api(&issuer).await;
    let mut wrong = claims(&issuer, "carol");
    wrong["iss"] = json!(format!("{issuer}/"));
    assert_oidc_refused(&api, &key.sign(&wrong), "wrong issuer").await;
    wrong.as_object_mut().unwrap().remove("iss");
    assert_oidc_refused(&api, &key.sign(&wrong), "claim 'iss' is missing").await;
}

#[tokio::test]
async fn oidc_wrong_audience_is_401() {
    let key = SigningKey::generate("k1", Algorithm::ES256);
    let (_state, issuer) = fake_issuer(&[&key]).await;
    let api = oidc_api(&issuer).await;
    let mut wrong = claims(&issuer, "carol");
    wrong["aud"] = json!("account");
    assert_oidc_refused(&api, &key.sign(&wrong), "wrong audience").await;
    wrong["aud"] = json!(["account", "other"]);
    assert_oidc_refused(&api, &key.sign(&wrong), "wrong audience").await;
    wrong.as_object_mut().unwrap().remove("aud");
    assert_oidc_refused(&api, &key.sign(&wrong), "claim 'aud' is missing").await;
    // A single-string audience that matches is fine.
    let mut single = claims(&issuer, "carol");
    single["aud"] = json!(AUDIENCE);
    assert_eq!(
        api.me(Some(&bearer(&key.sign(&single))))
            .await
            .ok()
            .as_deref(),
        Some("carol")
    );
}

#[tokio::test]
async fn oidc_bad_signature_is_401() {
    let key = SigningKey::generate("k1", Algorithm::ES256);
    let forger = SigningKey::generate("k1", Algorithm::ES256);
    let (_state, issuer) = fake_issuer(&[&key]).await;
    let api = oidc_api(&issuer).await;
    // Signed by another key under the published key id.
    let forged = forger.sign(&claims(&issuer, "mallory"));
    assert_oidc_refused(&api, &forged, "bad signature").await;
    // A genuine token whose claims were altered.
    let genuine = key.sign(&claims(&issuer, "carol"));
    let mut parts: Vec<String> = genuine.split('.').map(str::to_string).collect();
    parts[1] = forged.split('.').nth(1).unwrap().to_string();
    assert_oidc_refused(&api, &parts.join("."), "bad signature").await;
    // An HMAC token "signed" with a public key is refused by algorithm.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(&issuer, "mallory"),
        &EncodingKey::from_secret(key.jwk.to_string().as_bytes()),
    )
    .unwrap();
    assert_oidc_refused(&api, &hs, "algorithm HS256 is not accepted").await;
    // The genuine token is fine.
    assert_eq!(
        api.me(Some(&bearer(&genuine))).await.ok().as_deref(),
        Some("carol")
    );
}

#[tokio::test]
async fn oidc_unknown_kid_refreshes_the_keys_once() {
    let old = SigningKey::generate("2024-01", Algorithm::ES256);
    let new = SigningKey::generate("2024-02", Algorithm::ES256);
    let (state, issuer) = fake_issuer(&[&old]).await;
    let api = oidc_api(&issuer).await;
    let token = old.sign(&claims(&issuer, "carol"));
    assert_eq!(
        api.me(Some(&bearer(&token))).await.ok().as_deref(),
        Some("carol")
    );
    assert_eq!(state.jwks_calls(), 1);

    // The issuer rotates its keys: a token with the new kid makes one refresh.
    state.publish(&[&new]);
    let token = new.sign(&claims(&issuer, "carol"));
    assert_eq!(
        api.me(Some(&bearer(&token))).await.ok().as_deref(),
        Some("carol")
    );
    assert_eq!(state.jwks_calls(), 2);
    assert_eq!(
        api.me(Some(&bearer(&token))).await.ok().as_deref(),
        Some("carol")
    );
    assert_eq!(state.jwks_calls(), 2);

    // Unknown key ids right after a refresh do not make the server fetch again.
    for kid in ["nope-1", "nope-2", "nope-3"] {
        let token = new.sign_as(kid, &claims(&issuer, "carol"));
        assert_oidc_refused(
            &api,
            &token,
            "the issuer has no key with the token's key id",
        )
        .await;
    }
    assert_eq!(state.jwks_calls(), 2, "refreshes are rate-limited");
    // The retired key is gone from the refreshed set.
    let stale = old.sign(&claims(&issuer, "carol"));
    assert_oidc_refused(
        &api,
        &stale,
        "the issuer has no key with the token's key id",
    )
    .await;
}

#[tokio::test]
async fn oidc_username_claim_missing_or_not_a_string_is_401() {
    let key = SigningKey::generate("k1", Algorithm::ES256);
    let (_state, issuer) = fake_issuer(&[&key]).await;
    let api = oidc_api(&issuer).await;
    let mut missing = claims(&issuer, "carol");
    missing
        .as_object_mut()
        .unwrap()
        .remove("preferred_username");
    assert_oidc_refused(
        &api,
        &key.sign(&missing),
        "claim 'preferred_username' is missing",
    )
    .await;
    let mut number = claims(&issuer, "carol");
    number["preferred_username"] = json!(42);
    assert_oidc_refused(
        &api,
        &key.sign(&number),
        "claim 'preferred_username' is not a string",
    )
    .await;
}

#[tokio::test]
async fn oidc_issuer_unreachable_is_503() {
    let key = SigningKey::generate("k1", Algorithm::ES256);
    let issuer = unreachable_url("/realms/krake");
    let api = Api::start({
        let config = oidc_config(&issuer);
        move |c| {
            c.oidc = Some(config);
            c.allow_anonymous = true;
        }
    })
    .await;
    let answer = api
        .me(Some(&bearer(&key.sign(&claims(&issuer, "carol")))))
        .await
        .unwrap_err();
    assert_problem(
        &answer,
        503,
        None,
        "503: Identity provider unavailable: OIDC issuer: the discovery document cannot be reached",
    );
    // Not a JWT: not OIDC's business, so anonymous.
    assert_eq!(
        api.me(Some("Bearer opaque")).await.ok().as_deref(),
        Some("system:anonymous")
    );

    // An issuer whose key set answers 404.
    let (state, issuer) = fake_issuer(&[&key]).await;
    let mut config = oidc_config(&issuer);
    config.jwks_uri = Some(format!("{issuer}/missing"));
    let api = Api::start(move |c| c.oidc = Some(config)).await;
    let answer = api
        .me(Some(&bearer(&key.sign(&claims(&issuer, "carol")))))
        .await
        .unwrap_err();
    assert_problem(
        &answer,
        503,
        None,
        "503: Identity provider unavailable: OIDC issuer: the key set cannot be fetched (HTTP 404 Not Found)",
    );
    assert_eq!(state.jwks_calls(), 0);
}

// ---------------------------------------------------------------------------------------
// Several authenticators at once.

#[tokio::test]
async fn several_authenticators_are_tried_in_order() {
    let key = SigningKey::generate("k1", Algorithm::ES256);
    let (_issuer_state, issuer) = fake_issuer(&[&key]).await;
    let keystone_idp = FakeIdp::with_user("gAAAAABopaque", "alice");
    let keystone_endpoint = fake_keystone(keystone_idp.clone()).await;
    let keycloak_idp = FakeIdp::with_user("keycloak-only", "bob");
    let keycloak_endpoint = fake_keycloak(keycloak_idp.clone()).await;
    let api = Api::start({
        let oidc = oidc_config(&issuer);
        move |c| {
            c.oidc = Some(oidc);
            c.keystone = keystone(&keystone_endpoint);
            c.keycloak = keycloak(&keycloak_endpoint);
        }
    })
    .await;

    // A Bearer JWT is verified locally: Keystone (which would reject it) is not asked.
    let jwt = key.sign(&claims(&issuer, "carol"));
    assert_eq!(
        api.me(Some(&bearer(&jwt))).await.ok().as_deref(),
        Some("carol")
    );
    assert_eq!(keystone_idp.calls(), 0);
    assert_eq!(keycloak_idp.calls(), 0);

    // An opaque token goes to Keystone.
    assert_eq!(
        api.me(Some("gAAAAABopaque")).await.ok().as_deref(),
        Some("alice")
    );
    assert_eq!(keystone_idp.calls(), 1);

    // A refused JWT is refused, not passed on.
    let mut expired = claims(&issuer, "carol");
    expired["exp"] = json!(now() - 600);
    assert_oidc_refused(&api, &key.sign(&expired), "the token has expired").await;
    assert_eq!(keystone_idp.calls(), 1);

    // A JWT without the Bearer scheme is an upstream-style raw token: Keystone's.
    let answer = api.me(Some(&jwt)).await.unwrap_err();
    assert_eq!(answer.body["title"], "INVALID_KEYSTONE_TOKEN");
    assert_eq!(keystone_idp.calls(), 2);

    // Keystone's rejection is final: Keycloak is not asked after it.
    let answer = api.me(Some("keycloak-only")).await.unwrap_err();
    assert_eq!(answer.body["title"], "INVALID_KEYSTONE_TOKEN");
    assert_eq!(keycloak_idp.calls(), 0);
}

#[tokio::test]
async fn keycloak_is_reached_when_keystone_is_not_configured_and_static_wins_over_all() {
    let key = SigningKey::generate("k1", Algorithm::ES256);
    let (_issuer_state, issuer) = fake_issuer(&[&key]).await;
    let keycloak_idp = FakeIdp::with_user("keycloak-token", "bob");
    let keycloak_endpoint = fake_keycloak(keycloak_idp.clone()).await;
    let api = Api::start({
        let oidc = oidc_config(&issuer);
        let endpoint = keycloak_endpoint.clone();
        move |c| {
            c.oidc = Some(oidc);
            c.keycloak = keycloak(&endpoint);
        }
    })
    .await;
    assert_eq!(
        api.me(Some("keycloak-token")).await.ok().as_deref(),
        Some("bob")
    );
    let jwt = key.sign(&claims(&issuer, "carol"));
    assert_eq!(
        api.me(Some(&bearer(&jwt))).await.ok().as_deref(),
        Some("carol")
    );
    assert_eq!(keycloak_idp.calls(), 1);

    // The static user answers every request first (upstream's priority).
    let api = Api::start(move |c| {
        c.static_user = Some("system:admin".into());
        c.keycloak = keycloak(&keycloak_endpoint);
    })
    .await;
    assert_eq!(
        api.me(Some("keycloak-token")).await.ok().as_deref(),
        Some("system:admin")
    );
    assert_eq!(keycloak_idp.calls(), 1);
}
