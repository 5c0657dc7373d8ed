//! The HTTP surface: every route of upstream's API, the operations endpoints, and the
//! middleware stack (observation, problem documents, CORS, authentication).

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, extract::DefaultBodyLimit};
use tracing::Instrument;

use super::problem::{problem_response, problems};
use super::state::{AppState, json_response};
use super::{resources, subresources};
use crate::auth::{Caller, rbac};
use crate::error::Error;
use crate::kinds::ApiKind;

/// The version reported by `GET /` (upstream's, for client compatibility).
pub const KRAKE_VERSION: &str = "1.0.1";

fn kind_routes<R: ApiKind>(router: Router<AppState>) -> Router<AppState> {
    let (collection, object) = if R::NAMESPACED {
        let collection = format!("/{}/namespaces/{{ns}}/{}", R::API, R::PLURAL);
        (collection.clone(), format!("{collection}/{{name}}"))
    } else {
        let collection = format!("/{}/{}", R::API, R::PLURAL);
        (collection.clone(), format!("{collection}/{{name}}"))
    };
    let mut router = router
        .route(
            &collection,
            post(resources::create::<R>).get(resources::list::<R>),
        )
        .route(
            &object,
            get(resources::read::<R>)
                .put(resources::update::<R>)
                .delete(resources::delete::<R>),
        );
    if R::NAMESPACED {
        // Its own handler: a namespaced collection route never lists across namespaces.
        router = router.route(
            &format!("/{}/{}", R::API, R::PLURAL),
            get(resources::list_all::<R>),
        );
    }
    if R::HAS_STATUS {
        router = router.route(
            &format!("{object}/status"),
            put(resources::update_status::<R>),
        );
    }
    router
}

/// Build the complete application.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    macro_rules! all_kind_routes {
        ($($kind:ty),*) => { $( router = kind_routes::<$kind>(router); )* };
    }
    krake_crds::for_each_kind!(all_kind_routes);
    let apps = "/kubernetes/namespaces/{ns}/applications/{name}";
    router = router
        .route(
            &format!("{apps}/binding"),
            put(subresources::application_binding),
        )
        .route(
            &format!("{apps}/complete"),
            put(subresources::application_complete),
        )
        .route(
            &format!("{apps}/shutdown"),
            put(subresources::application_shutdown),
        )
        .route(
            &format!("{apps}/retry"),
            put(subresources::application_retry),
        )
        .route(
            "/kubernetes/namespaces/{ns}/clusters/{name}/binding",
            put(subresources::cluster_binding),
        )
        .route(
            "/openstack/namespaces/{ns}/magnumclusters/{name}/binding",
            put(subresources::magnum_cluster_binding),
        )
        .route("/", get(version))
        .route("/me", get(me))
        .route("/release", get(release))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found);

    // One limit: a body the store could not hold is refused before it is read whole (the
    // stored encoding, checked again before every write, differs by a few hundred bytes).
    let max_body = state.store.max_value_bytes();
    router
        .layer(from_fn_with_state(state.clone(), authenticate))
        .layer(from_fn_with_state(state.clone(), cors))
        .layer(from_fn_with_state(
            state.clone(),
            super::deadline::body_deadline,
        ))
        .layer(from_fn_with_state(state.clone(), problems))
        .layer(from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn not_found() -> Response {
    problem_response(StatusCode::NOT_FOUND, "about:blank", None, "404: Not Found")
}

async fn version() -> Response {
    json_response(
        StatusCode::OK,
        krake_crds::json::to_vec(&serde_json::json!({"version": KRAKE_VERSION})),
    )
}

/// `/me`: the user and the sorted unique role names of every RoleBinding
/// naming the user, whether or not those Roles exist. Under RBAC the authorizer's index
/// answers; otherwise the bindings are read from storage.
async fn me(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Error> {
    let roles = match state.authorizer.user_roles(&caller.user) {
        Some(roles) => roles,
        None => rbac::bound_roles(&*state.store, &caller.user).await?,
    };
    Ok(json_response(
        StatusCode::OK,
        krake_crds::json::to_vec(&serde_json::json!({"user": caller.user, "roles": roles})),
    ))
}

async fn release() -> Response {
    json_response(
        StatusCode::ACCEPTED,
        krake_crds::json::to_vec(&"You released the Krake."),
    )
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store_ok = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.store.current_revision(),
    )
    .await;
    let caches_ok = state.caches.values().all(|c| c.is_established());
    match store_ok {
        Ok(Ok(_)) if caches_ok && !state.authorizer.is_ready() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "authorization data not loaded\n",
        )
            .into_response(),
        Ok(Ok(_)) if caches_ok => (StatusCode::OK, "ok\n").into_response(),
        Ok(Ok(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "watch caches not established\n",
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("storage unreachable: {e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "storage unreachable: timeout\n",
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Paths that need no authentication: probes and metrics scraping.
fn is_operations_path(path: &str) -> bool {
    matches!(path, "/livez" | "/readyz" | "/metrics")
}

/// Tracing span, request metrics and the per-request time limit.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().clone();
    // Watches stream for as long as the client wants; `blocking` requests have their own
    // time limit (`blocking_timeout`).
    let is_long = request.uri().query().is_some_and(|q| {
        q.split('&').any(|p| {
            p == "watch"
                || p.starts_with("watch=")
                || (p.starts_with("blocking=") && p != "blocking=False")
        })
    });
    let span = tracing::info_span!("request", method = %method, path = %request.uri().path(), route = %route);
    let limit = state.config.request_timeout;
    let response = async {
        if is_long {
            next.run(request).await
        } else {
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(r) => r,
                Err(_) => problem_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "about:blank",
                    None,
                    "503: Request timed out",
                ),
            }
        }
    }
    .instrument(span.clone())
    .await;
    let elapsed = start.elapsed();
    let status = response.status();
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        )
    });
    state
        .metrics
        .observe_request(&route, method.as_str(), status.as_u16(), elapsed);
    response
}

const CORS_METHODS: [&str; 5] = ["DELETE", "GET", "OPTIONS", "POST", "PUT"];

/// CORS as upstream (aiohttp-cors with one configured origin): preflights are answered
/// here, before authentication; actual requests from the origin get the allow headers.
async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let allowed = state.config.cors_origin.as_str();
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let origin_ok = |o: &str| allowed == "*" || allowed == o;
    if request.method() == Method::OPTIONS {
        return preflight(request.headers(), origin.as_deref(), origin_ok);
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin.filter(|o| origin_ok(o))
        && let Ok(value) = HeaderValue::from_str(&origin)
    {
        response
            .headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    response
}

fn preflight(
    headers: &HeaderMap,
    origin: Option<&str>,
    origin_ok: impl Fn(&str) -> bool,
) -> Response {
    let Some(origin) = origin else {
        return Error::CorsRejected("origin header is not specified in the request".into())
            .into_response();
    };
    if !origin_ok(origin) {
        return Error::CorsRejected(format!("origin '{origin}' is not allowed")).into_response();
    }
    let method = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !CORS_METHODS.contains(&method) {
        return Error::CorsRejected(format!(
            "request method '{method}' is not allowed for '{origin}' origin"
        ))
        .into_response();
    }
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    if let Ok(v) = HeaderValue::from_str(method) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if let Some(requested) = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        && let Ok(v) = HeaderValue::from_str(&requested.to_uppercase())
    {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    response
}

/// Run the authenticator chain; unauthenticated requests stop here with 401.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if is_operations_path(request.uri().path()) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    match state.authenticators.authenticate(&parts).await {
        Ok(caller) => {
            parts.extensions.insert(caller);
            request = Request::from_parts(parts, body);
            next.run(request).await
        }
        Err(e) => {
            if let Error::Unauthorized(reason) = &e {
                // Upstream also uses the reason as the HTTP reason phrase; HTTP/1.1 clients
                // only see the standard phrase, the body carries the detail.
                tracing::debug!(reason = %reason, "unauthenticated request");
            }
            e.into_response()
        }
    }
}
