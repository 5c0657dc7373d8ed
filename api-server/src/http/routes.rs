//! The HTTP surface: every route of upstream's API, the operations endpoints, and the
//! middleware stack (observation, problem documents, CORS, authentication).

use std::sync::LazyLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, extract::DefaultBodyLimit};
use tracing::Instrument;

use super::openapi::{self, KindDoc, Operation, RouteDoc, schema_of};
use super::problem::{problem_response, problems};
use super::state::{AppState, json_response};
use super::{resources, subresources};
use crate::auth::{Caller, rbac};
use crate::error::Error;
use crate::kinds::ApiKind;
use krake_crds::infrastructure::CloudBinding;
use krake_crds::kubernetes::{Application, Cluster, ClusterBinding, Complete, Shutdown};
use krake_crds::openstack::{MagnumCluster, MagnumClusterBinding};

/// The version reported by `GET /` (upstream's, for client compatibility).
pub const KRAKE_VERSION: &str = "1.0.1";

/// The routes of the API, each registered with the operation the OpenAPI document
/// describes: the router and the document are built from this one table.
pub(crate) struct RouteTable {
    routes: Vec<(RouteDoc, MethodRouter<AppState>)>,
}

impl RouteTable {
    /// Register `handler` for `method` on `path`.
    fn add<H, T>(&mut self, method: Method, path: &str, operation: Operation, handler: H)
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method the router serves");
        self.routes.push((
            RouteDoc {
                method,
                path: path.to_string(),
                operation,
            },
            on(filter, handler),
        ));
    }

    fn kind<R: ApiKind>(&mut self) {
        let kind = KindDoc::of::<R>();
        let (collection, object) = if R::NAMESPACED {
            let collection = format!("/{}/namespaces/{{ns}}/{}", R::API, R::PLURAL);
            (collection.clone(), format!("{collection}/{{name}}"))
        } else {
            let collection = format!("/{}/{}", R::API, R::PLURAL);
            (collection.clone(), format!("{collection}/{{name}}"))
        };
        self.add(
            Method::POST,
            &collection,
            Operation::Create(kind),
            resources::create::<R>,
        );
        self.add(
            Method::GET,
            &collection,
            Operation::List(kind),
            resources::list::<R>,
        );
        if R::NAMESPACED {
            self.add(
                Method::GET,
                &format!("/{}/{}", R::API, R::PLURAL),
                Operation::ListAllNamespaces(kind),
                // Its own handler: a namespaced collection route never lists across namespaces.
                resources::list_all::<R>,
            );
        }
        self.add(
            Method::GET,
            &object,
            Operation::Read(kind),
            resources::read::<R>,
        );
        self.add(
            Method::PUT,
            &object,
            Operation::Update(kind),
            resources::update::<R>,
        );
        self.add(
            Method::DELETE,
            &object,
            Operation::Delete(kind),
            resources::delete::<R>,
        );
        if R::HAS_STATUS {
            self.add(
                Method::PUT,
                &format!("{object}/status"),
                Operation::UpdateStatus(kind),
                resources::update_status::<R>,
            );
        }
    }

    /// Every route of the API.
    pub(crate) fn new() -> Self {
        let mut table = RouteTable { routes: Vec::new() };
        macro_rules! all_kinds {
            ($($kind:ty),*) => { $( table.kind::<$kind>(); )* };
        }
        krake_crds::for_each_kind!(all_kinds);
        let app = KindDoc::of::<Application>();
        let apps = "/kubernetes/namespaces/{ns}/applications/{name}";
        table.add(
            Method::PUT,
            &format!("{apps}/binding"),
            Operation::Subresource {
                kind: app,
                name: "binding",
                body: Some(schema_of::<ClusterBinding>),
                summary: "Bind an Application to a Cluster (the scheduler's decision).",
            },
            subresources::application_binding,
        );
        table.add(
            Method::PUT,
            &format!("{apps}/complete"),
            Operation::Subresource {
                kind: app,
                name: "complete",
                body: Some(schema_of::<Complete>),
                summary: "The workload reports completion (with its `complete` token).",
            },
            subresources::application_complete,
        );
        table.add(
            Method::PUT,
            &format!("{apps}/shutdown"),
            Operation::Subresource {
                kind: app,
                name: "shutdown",
                body: Some(schema_of::<Shutdown>),
                summary: "The workload finished its shutdown (with its `shutdown` token).",
            },
            subresources::application_shutdown,
        );
        table.add(
            Method::PUT,
            &format!("{apps}/retry"),
            Operation::Subresource {
                kind: app,
                name: "retry",
                body: None,
                summary: "Retry the migration or deletion of a DEGRADED Application (the body is ignored).",
            },
            subresources::application_retry,
        );
        table.add(
            Method::PUT,
            "/kubernetes/namespaces/{ns}/clusters/{name}/binding",
            Operation::Subresource {
                kind: KindDoc::of::<Cluster>(),
                name: "binding",
                body: Some(schema_of::<CloudBinding>),
                summary: "Bind a Cluster to a Cloud (the scheduler's decision).",
            },
            subresources::cluster_binding,
        );
        table.add(
            Method::PUT,
            "/openstack/namespaces/{ns}/magnumclusters/{name}/binding",
            Operation::Subresource {
                kind: KindDoc::of::<MagnumCluster>(),
                name: "binding",
                body: Some(schema_of::<MagnumClusterBinding>),
                summary: "Bind a MagnumCluster to a Project (the scheduler's decision).",
            },
            subresources::magnum_cluster_binding,
        );
        table.add(Method::GET, "/", Operation::Version, version);
        table.add(Method::GET, "/me", Operation::Me, me);
        table.add(Method::GET, "/release", Operation::Release, release);
        table.add(Method::GET, OPENAPI_PATH, Operation::OpenApi, openapi);
        table.add(Method::GET, "/livez", Operation::Livez, livez);
        table.add(Method::GET, "/readyz", Operation::Readyz, readyz);
        table.add(Method::GET, "/metrics", Operation::Metrics, metrics);
        table
    }

    /// `(method, path)` of every route, in registration order.
    pub(crate) fn routes(&self) -> Vec<(Method, String)> {
        self.routes
            .iter()
            .map(|(doc, _)| (doc.method.clone(), doc.path.clone()))
            .collect()
    }

    /// The OpenAPI document of these routes.
    pub(crate) fn openapi(&self) -> serde_json::Value {
        let docs: Vec<&RouteDoc> = self.routes.iter().map(|(doc, _)| doc).collect();
        openapi::document(&docs, KRAKE_VERSION)
    }
}

/// The OpenAPI 3.1 document the server serves at [`OPENAPI_PATH`].
pub fn openapi_document() -> serde_json::Value {
    RouteTable::new().openapi()
}

/// `(method, path template)` of every route the router serves, in registration order.
pub fn api_routes() -> Vec<(Method, String)> {
    RouteTable::new().routes()
}

/// The checked-in file content of the OpenAPI document: pretty JSON with a trailing newline.
pub fn render_openapi_document() -> String {
    let mut s = serde_json::to_string_pretty(&openapi_document()).expect("the document is JSON");
    s.push('\n');
    s
}

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/openapi/v3";

/// The OpenAPI 3.1 document of the API, rendered once.
static OPENAPI_DOCUMENT: LazyLock<Vec<u8>> =
    LazyLock::new(|| krake_crds::json::to_vec(&RouteTable::new().openapi()));

/// `GET /openapi/v3`: readable by every authenticated user, like `/` (kube-apiserver's
/// discovery and OpenAPI endpoints are too).
async fn openapi() -> Response {
    json_response(StatusCode::OK, OPENAPI_DOCUMENT.clone())
}

/// Build the complete application.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (doc, handler) in RouteTable::new().routes {
        // axum merges the method routers of one path.
        router = router.route(&doc.path, handler);
    }
    router = router.fallback(not_found);

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
        Ok(Err(e)) => {
            // Anyone may ask: the backend's error (endpoints, addresses) stays in the log.
            tracing::warn!(error = %e, "readiness: storage unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "storage unreachable\n").into_response()
        }
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
