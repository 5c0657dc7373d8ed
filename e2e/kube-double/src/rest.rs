//! The REST front: authentication and faults, then routing by path to discovery or to a
//! resource (collection, object, `status` or `scale` subresource) and by method to the
//! store. Bodies are JSON or YAML; every error leaves through [`Error::into_response`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::App;
use crate::apply;
use crate::auth::PeerUser;
use crate::discovery;
use crate::error::{Error, Reason, Result};
use crate::kinds::Kind;
use crate::openapi;
use crate::patch;
use crate::select::{Filter, Selector};
use crate::store::{DeleteOpts, Deleted, WriteCtx};
use crate::watch::{self, WatchRequest};

/// Largest accepted request body (a real server's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Default watch duration when the client sets none (a real server picks 30-60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

type Query = HashMap<String, String>;

/// A patch, ready to apply to the current object.
type PatchFn = Box<dyn FnOnce(&mut Value) -> Result<()>>;

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(serde_json::to_vec(value).unwrap_or_default()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn ok(value: &Value) -> Result<Response<Body>> {
    Ok(json_response(StatusCode::OK, value))
}

fn not_found_path() -> Error {
    Error::Status {
        reason: Reason::NotFound,
        message: "the server could not find the requested resource".into(),
        details: None,
    }
}

fn method_not_allowed(method: &Method) -> Error {
    Error::status(
        Reason::MethodNotAllowed,
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

/// The handler of every request.
pub async fn handle(State(app): State<Arc<App>>, request: Request) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::debug_span!("request", %method, %path);
    match serve(&app, request).instrument(span).await {
        Ok(r) => {
            tracing::debug!(%method, %path, status = r.status().as_u16(), "answered");
            r
        }
        Err(e) => {
            tracing::debug!(%method, %path, error = %e, "refused");
            e.into_response()
        }
    }
}

async fn serve(app: &Arc<App>, request: Request) -> Result<Response<Body>> {
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<PeerUser>()
        .cloned()
        .unwrap_or_default();
    let user = app.tokens.authenticate(&parts.headers, &peer)?;
    let path = parts.uri.path().to_string();
    if path == crate::control::PATH {
        let bytes = read_body(body).await?;
        return crate::control::handle(app, &parts.method, &bytes).await;
    }
    app.faults.before_request().await?;
    let query: Query = parts
        .uri
        .query()
        .map(|q| {
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
                .map(|v| v.0.into_iter().filter(|(k, _)| !k.is_empty()).collect())
                .unwrap_or_else(|_| {
                    q.split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
        })
        .unwrap_or_default();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let get = parts.method == Method::GET;
    match segments.as_slice() {
        ["version"] if get => ok(&discovery::version()),
        ["healthz" | "livez" | "readyz"] if get => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Ok(r)
        }
        ["api"] if get => {
            if discovery::wants_aggregated(&accept) {
                Ok(aggregated(&discovery::aggregated(&app.store.kinds(), true)))
            } else {
                ok(&discovery::core_versions(&app.server_address()))
            }
        }
        ["apis"] if get => {
            if discovery::wants_aggregated(&accept) {
                Ok(aggregated(&discovery::aggregated(
                    &app.store.kinds(),
                    false,
                )))
            } else {
                ok(&discovery::group_list(&app.store.kinds()))
            }
        }
        ["api", "v1"] if get => {
            ok(&discovery::resource_list(&app.store.kinds(), "", "v1")
                .ok_or_else(not_found_path)?)
        }
        ["apis", group] if get => {
            ok(&discovery::group(&app.store.kinds(), group).ok_or_else(not_found_path)?)
        }
        ["apis", group, version] if get => {
            ok(
                &discovery::resource_list(&app.store.kinds(), group, version)
                    .ok_or_else(not_found_path)?,
            )
        }
        ["api", "v1", rest @ ..] if !rest.is_empty() => {
            let body = read_body(body).await?;
            resource(
                app,
                &parts.method,
                &parts.headers,
                &query,
                &user,
                &accept,
                "",
                "v1",
                rest,
                body,
            )
            .await
        }
        ["apis", group, version, rest @ ..] if !rest.is_empty() => {
            let body = read_body(body).await?;
            resource(
                app,
                &parts.method,
                &parts.headers,
                &query,
                &user,
                &accept,
                group,
                version,
                rest,
                body,
            )
            .await
        }
        ["openapi", "v3"] if get => ok(&openapi::v3_root(&app.store.kinds())),
        ["openapi", "v3", rest @ ..] if get => ok(&openapi::v3_group_version(
            &app.store.kinds(),
            &rest.join("/"),
        )
        .ok_or_else(not_found_path)?),
        ["openapi", "v2"] if get => {
            if accept.contains("protobuf") {
                let mut r = Response::new(Body::from(openapi::v2_protobuf()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(openapi::V2_PROTOBUF),
                );
                Ok(r)
            } else {
                ok(&openapi::v2_json())
            }
        }
        _ => Err(not_found_path()),
    }
}

fn aggregated(value: &Value) -> Response<Body> {
    let mut r = json_response(StatusCode::OK, value);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
    );
    r
}

async fn read_body(body: Body) -> Result<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Error::status(
            Reason::BadRequest,
            "the request body is too large or could not be read",
        )
    })
}

fn parse_object(headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = content_type.split(';').next().unwrap_or("").trim();
    match base {
        "application/json" | "" => serde_json::from_slice(body).map_err(|e| {
            Error::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        }),
        "application/yaml" => parse_yaml(body),
        other => Err(Error::status(
            Reason::UnsupportedMediaType,
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other})"
            ),
        )),
    }
}

fn parse_yaml(body: &[u8]) -> Result<Value> {
    let text =
        std::str::from_utf8(body).map_err(|_| Error::bad_request("the body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| Error::bad_request(format!("error decoding YAML: {e}")))
}

fn flag(query: &Query, key: &str) -> bool {
    matches!(query.get(key).map(String::as_str), Some("true" | "1"))
}

fn dry_run(query: &Query) -> Result<bool> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(Error::bad_request(format!(
            "unsupported dryRun value {other:?}: only All is supported"
        ))),
    }
}

fn manager(query: &Query, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    // As a real server does: the User-Agent up to its first '/'.
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

/// Render a stored object in the client's version (CRDs may serve several).
fn render(kind: &Kind, version: &str, object: &Value) -> Value {
    let mut o = object.clone();
    if o.is_object() {
        o["apiVersion"] = json!(kind.api_version(version));
    }
    o
}

fn partial_metadata(accept: &str) -> bool {
    accept.contains("as=PartialObjectMetadata")
}

fn as_metadata(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object.get("metadata")})
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    app: &Arc<App>,
    method: &Method,
    headers: &HeaderMap,
    query: &Query,
    user: &str,
    accept: &str,
    group: &str,
    version: &str,
    rest: &[&str],
    body: bytes::Bytes,
) -> Result<Response<Body>> {
    // `namespaces/{ns}/{resource}...`, except the namespace object's own subresources.
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, tail @ ..]
            if !(group.is_empty() && tail.is_empty() && matches!(*r, "status" | "finalize")) =>
        {
            (Some(*ns), {
                let mut v = vec![*r];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(not_found_path()),
    };
    let kind = app
        .store
        .kind(group, version, plural)
        .ok_or_else(not_found_path)?;
    if namespace.is_some() && !kind.namespaced {
        return Err(not_found_path());
    }
    if kind.namespaced && namespace.is_none() && (name.is_some() || *method != Method::GET) {
        return Err(not_found_path());
    }
    let api_version = kind.api_version(version);
    let ctx = WriteCtx {
        manager: manager(query, headers),
        subresource: None,
        dry_run: dry_run(query)?,
        api_version: api_version.clone(),
        apply: false,
    };
    tracing::trace!(%user, "authenticated");
    let store = &app.store;
    match (name, sub) {
        (None, _) => match *method {
            Method::GET if flag(query, "watch") => {
                let request = WatchRequest {
                    kind: kind.clone(),
                    version: version.to_string(),
                    namespace: namespace.map(str::to_string),
                    filter: filter(query)?,
                    resource_version: parse_rv(query.get("resourceVersion"))?,
                    bookmarks: flag(query, "allowWatchBookmarks"),
                    send_initial_events: flag(query, "sendInitialEvents"),
                    timeout: query
                        .get("timeoutSeconds")
                        .and_then(|t| t.parse().ok())
                        .map(Duration::from_secs)
                        .unwrap_or(DEFAULT_WATCH_TIMEOUT),
                    bookmark_interval: app.bookmark_interval,
                };
                let mut response = Response::new(watch::stream(store, request));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache, private"),
                );
                Ok(response)
            }
            Method::GET => {
                let limit = query.get("limit").and_then(|l| l.parse().ok());
                let page = store.list(
                    &kind,
                    namespace,
                    &filter(query)?,
                    limit,
                    query.get("continue").map(String::as_str),
                )?;
                let meta_only = partial_metadata(accept);
                let items: Vec<Value> = page
                    .items
                    .iter()
                    .map(|o| {
                        if meta_only {
                            as_metadata(o)
                        } else {
                            render(&kind, version, o)
                        }
                    })
                    .collect();
                let mut metadata = json!({"resourceVersion": page.rv.to_string()});
                if let Some(c) = page.continue_token {
                    metadata["continue"] = json!(c);
                }
                if let Some(n) = page.remaining {
                    metadata["remainingItemCount"] = json!(n);
                }
                let (list_kind, list_api) = if meta_only {
                    (
                        "PartialObjectMetadataList".to_string(),
                        "meta.k8s.io/v1".to_string(),
                    )
                } else {
                    (kind.list_kind.clone(), api_version.clone())
                };
                ok(
                    &json!({"kind": list_kind, "apiVersion": list_api, "metadata": metadata, "items": items}),
                )
            }
            Method::POST => {
                let object = parse_object(headers, &body)?;
                check_type(&kind, &api_version, &object)?;
                check_namespace(&object, namespace)?;
                let warnings = field_validation(&kind, query, &object)?;
                let created = store.create(&kind, namespace, object, &ctx)?;
                Ok(with_warnings(
                    json_response(StatusCode::CREATED, &render(&kind, version, &created)),
                    &warnings,
                ))
            }
            Method::DELETE => {
                let page = store.list(&kind, namespace, &filter(query)?, None, None)?;
                let opts = delete_opts(query, &body)?;
                let mut deleted = Vec::new();
                for item in page.items {
                    let n = item
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let ns = item.pointer("/metadata/namespace").and_then(Value::as_str);
                    match store.delete(&kind, ns, n, &opts) {
                        Ok(Deleted::Gone(o) | Deleted::Pending(o)) => {
                            deleted.push(render(&kind, version, &o))
                        }
                        Err(e) if e.reason() == Reason::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                ok(
                    &json!({"kind": kind.list_kind, "apiVersion": api_version, "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": deleted}),
                )
            }
            _ => Err(method_not_allowed(method)),
        },
        (Some(name), None) => match *method {
            Method::GET => {
                let o = store.get(&kind, namespace, name)?;
                ok(&if partial_metadata(accept) {
                    as_metadata(&o)
                } else {
                    render(&kind, version, &o)
                })
            }
            Method::PUT => {
                let object = parse_object(headers, &body)?;
                check_type(&kind, &api_version, &object)?;
                check_namespace(&object, namespace)?;
                check_name(&object, name)?;
                let warnings = field_validation(&kind, query, &object)?;
                let (o, _) = store.write(&kind, namespace, name, false, &ctx, |_| Ok(object))?;
                Ok(with_warnings(
                    json_response(StatusCode::OK, &render(&kind, version, &o)),
                    &warnings,
                ))
            }
            Method::PATCH => patch_object(
                app, &kind, version, namespace, name, headers, query, ctx, &body,
            ),
            Method::DELETE => {
                match store.delete(&kind, namespace, name, &delete_opts(query, &body)?)? {
                    Deleted::Pending(o) => ok(&render(&kind, version, &o)),
                    Deleted::Gone(o) => ok(&json!({
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {"name": name, "group": kind.group, "kind": kind.plural, "uid": o.pointer("/metadata/uid")},
                    })),
                }
            }
            _ => Err(method_not_allowed(method)),
        },
        (Some(name), Some("status")) if kind.status => {
            let ctx = WriteCtx {
                subresource: Some("status".into()),
                ..ctx
            };
            match *method {
                Method::GET => ok(&render(&kind, version, &store.get(&kind, namespace, name)?)),
                Method::PUT => {
                    let object = parse_object(headers, &body)?;
                    check_type(&kind, &api_version, &object)?;
                    check_name(&object, name)?;
                    let (o, _) =
                        store.write(&kind, namespace, name, false, &ctx, |_| Ok(object))?;
                    ok(&render(&kind, version, &o))
                }
                Method::PATCH => patch_object(
                    app, &kind, version, namespace, name, headers, query, ctx, &body,
                ),
                _ => Err(method_not_allowed(method)),
            }
        }
        (Some(name), Some("scale")) if kind.scale.is_some() => {
            scale(app, &kind, namespace, name, method, headers, ctx, &body)
        }
        _ => Err(not_found_path()),
    }
}

fn parse_rv(rv: Option<&String>) -> Result<Option<u64>> {
    match rv.map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| Error::bad_request(format!("invalid resource version \"{s}\""))),
    }
}

fn filter(query: &Query) -> Result<Filter> {
    Ok(Filter {
        labels: Selector::labels(query.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: Selector::fields(query.get("fieldSelector").map(String::as_str).unwrap_or(""))?,
    })
}

fn check_type(kind: &Kind, api_version: &str, object: &Value) -> Result<()> {
    let got_kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let got_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if got_kind.is_empty() {
        return Err(Error::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    if got_kind != kind.kind || got_version != api_version {
        return Err(Error::bad_request(format!(
            "the API version in the data ({got_version}) does not match the expected API version ({api_version}), or the kind ({got_kind}) does not match {}",
            kind.kind
        )));
    }
    Ok(())
}

/// `fieldValidation`: unknown fields of a built-in object are refused (`Strict`),
/// reported in a `Warning` header (`Warn`, the default) or ignored (`Ignore`).
fn field_validation(kind: &Kind, query: &Query, object: &Value) -> Result<Vec<String>> {
    let directive = query
        .get("fieldValidation")
        .map(String::as_str)
        .unwrap_or("Warn");
    if !matches!(directive, "Strict" | "Warn" | "Ignore") {
        return Err(Error::bad_request(format!(
            "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {directive:?}"
        )));
    }
    if directive == "Ignore" || !kind.builtin {
        return Ok(Vec::new());
    }
    let unknown = crate::kinds::unknown_fields(&kind.kind, object);
    if directive == "Strict" && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        return Err(Error::bad_request(format!(
            "strict decoding error: {}",
            list.join(", ")
        )));
    }
    Ok(unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect())
}

fn with_warnings(mut response: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}

fn check_namespace(object: &Value, namespace: Option<&str>) -> Result<()> {
    if let (Some(body_ns), Some(url_ns)) = (
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str),
        namespace,
    ) && !body_ns.is_empty()
        && body_ns != url_ns
    {
        return Err(Error::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn check_name(object: &Value, name: &str) -> Result<()> {
    let body_name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if body_name != name {
        return Err(Error::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

fn delete_opts(query: &Query, body: &[u8]) -> Result<DeleteOpts> {
    let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Error::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let propagation =
        text(options.get("propagationPolicy")).or_else(|| query.get("propagationPolicy").cloned());
    if let Some(p) = &propagation
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(Error::invalid(
            "meta.k8s.io",
            "DeleteOptions",
            "",
            &[(
                "propagationPolicy".into(),
                format!(
                    "Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
            )],
        ));
    }
    let dry_run = options
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == "All"))
        || query.get("dryRun").is_some_and(|d| d == "All");
    Ok(DeleteOpts {
        propagation,
        uid: text(options.pointer("/preconditions/uid")),
        resource_version: text(options.pointer("/preconditions/resourceVersion")),
        dry_run,
    })
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    app: &Arc<App>,
    kind: &Arc<Kind>,
    version: &str,
    namespace: Option<&str>,
    name: &str,
    headers: &HeaderMap,
    query: &Query,
    mut ctx: WriteCtx,
    body: &[u8],
) -> Result<Response<Body>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let force = query.get("force").map(String::as_str);
    let force = match force {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(Error::bad_request(format!("invalid force value {other:?}"))),
    };
    let api_version = kind.api_version(version);
    if content_type == "application/apply-patch+yaml" {
        if query.get("fieldManager").is_none_or(String::is_empty) {
            return Err(Error::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &[(
                    "fieldManager".into(),
                    "Required value: is required for apply patch".into(),
                )],
            ));
        }
        let applied = parse_yaml(body)?;
        if !applied.is_object() {
            return Err(Error::bad_request("the apply body must be an object"));
        }
        check_type(kind, &api_version, &applied)?;
        check_name(&applied, name)?;
        check_namespace(&applied, namespace)?;
        if applied
            .pointer("/metadata/managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(Error::bad_request("metadata.managedFields must be nil"));
        }
        let warnings = field_validation(kind, query, &applied)?;
        ctx.apply = true;
        let upsert = ctx.subresource.is_none();
        let (o, created) = app
            .store
            .write(kind, namespace, name, upsert, &ctx, |current| {
                let mut applied = applied.clone();
                if let Some(rv) = applied
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                {
                    // A resourceVersion in the body is a precondition.
                    let current_rv = current
                        .and_then(|c| c.pointer("/metadata/resourceVersion"))
                        .and_then(Value::as_str);
                    if current_rv != Some(rv) {
                        return Err(Error::stale(&kind.group, &kind.plural, name));
                    }
                }
                if let Some(m) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                apply::apply(kind, current, &applied, &ctx, force)
            })?;
        let code = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Ok(with_warnings(
            json_response(code, &render(kind, version, &o)),
            &warnings,
        ));
    }
    if force {
        return Err(Error::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[(
                "force".into(),
                "Forbidden: may not be specified for non-apply patch".into(),
            )],
        ));
    }
    let patch_doc: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("invalid patch body: {e}")))?;
    let apply_patch: PatchFn = match content_type.as_str() {
        "application/merge-patch+json" => Box::new(move |o| {
            patch::merge_patch(o, &patch_doc);
            Ok(())
        }),
        "application/json-patch+json" => Box::new(move |o| patch::json_patch(o, &patch_doc)),
        "application/strategic-merge-patch+json" if kind.builtin => Box::new(move |o| {
            patch::strategic_merge_patch(o, &patch_doc);
            Ok(())
        }),
        "application/strategic-merge-patch+json" => {
            return Err(Error::status(
                Reason::UnsupportedMediaType,
                "strategic merge patch is not supported for custom resources: use a JSON merge patch or a JSON patch",
            ));
        }
        other => {
            return Err(Error::status(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                ),
            ));
        }
    };
    let (o, _) = app
        .store
        .write(kind, namespace, name, false, &ctx, |current| {
            let mut new = current.cloned().unwrap_or(Value::Null);
            apply_patch(&mut new)?;
            Ok(new)
        })?;
    ok(&render(kind, version, &o))
}

fn get_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(object, |v, f| v.get(f))
}

fn set_path(object: &mut Value, path: &str, value: Value) {
    let fields: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    let Some((last, parents)) = fields.split_last() else {
        return;
    };
    let mut v = object;
    for f in parents {
        if !v.get(*f).is_some_and(Value::is_object) {
            v[*f] = json!({});
        }
        v = &mut v[*f];
    }
    v[*last] = value;
}

fn selector_string(selector: Option<&Value>) -> String {
    let Some(s) = selector else {
        return String::new();
    };
    if let Some(text) = s.as_str() {
        return text.to_string();
    }
    let mut parts: Vec<String> = s
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in s
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => parts.push(format!("{key} in ({})", values.join(","))),
            Some("NotIn") => parts.push(format!("{key} notin ({})", values.join(","))),
            Some("Exists") => parts.push(key.to_string()),
            Some("DoesNotExist") => parts.push(format!("!{key}")),
            _ => {}
        }
    }
    parts.join(",")
}

/// The `autoscaling/v1` Scale view of an object.
fn scale_of(kind: &Kind, object: &Value) -> Value {
    let scale = kind
        .scale
        .as_ref()
        .expect("only kinds with a scale subresource");
    let md = object.get("metadata").cloned().unwrap_or(json!({}));
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": md.get("name"),
            "namespace": md.get("namespace"),
            "uid": md.get("uid"),
            "resourceVersion": md.get("resourceVersion"),
            "creationTimestamp": md.get("creationTimestamp"),
        },
        "spec": {"replicas": get_path(object, &scale.spec_replicas).and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": get_path(object, &scale.status_replicas).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(scale.selector.as_deref().and_then(|p| get_path(object, p))),
        },
    })
}

#[allow(clippy::too_many_arguments)]
fn scale(
    app: &Arc<App>,
    kind: &Arc<Kind>,
    namespace: Option<&str>,
    name: &str,
    method: &Method,
    headers: &HeaderMap,
    ctx: WriteCtx,
    body: &[u8],
) -> Result<Response<Body>> {
    let ctx = WriteCtx {
        subresource: Some("scale".into()),
        ..ctx
    };
    let spec_path = kind
        .scale
        .as_ref()
        .map(|s| s.spec_replicas.clone())
        .unwrap_or_default();
    let new_scale = |current: &Value| -> Result<Value> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let base = content_type.split(';').next().unwrap_or("").trim();
        let mut s = scale_of(kind, current);
        match (method.clone(), base) {
            (Method::PUT, _) => s = parse_object(headers, body)?,
            (_, "application/merge-patch+json" | "application/strategic-merge-patch+json") => {
                let p: Value = serde_json::from_slice(body)
                    .map_err(|e| Error::bad_request(format!("invalid patch body: {e}")))?;
                patch::merge_patch(&mut s, &p);
            }
            (_, "application/json-patch+json") => {
                let p: Value = serde_json::from_slice(body)
                    .map_err(|e| Error::bad_request(format!("invalid patch body: {e}")))?;
                patch::json_patch(&mut s, &p)?;
            }
            (_, other) => {
                return Err(Error::status(
                    Reason::UnsupportedMediaType,
                    format!("unsupported patch type {other:?} for the scale subresource"),
                ));
            }
        }
        Ok(s)
    };
    match *method {
        Method::GET => ok(&scale_of(kind, &app.store.get(kind, namespace, name)?)),
        Method::PUT | Method::PATCH => {
            let (o, _) = app
                .store
                .write(kind, namespace, name, false, &ctx, |current| {
                    let current = current.expect("write without upsert passes the current object");
                    let s = new_scale(current)?;
                    let replicas = s.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
                    if !replicas.is_i64() || replicas.as_i64().is_some_and(|r| r < 0) {
                        return Err(Error::invalid(
                            "autoscaling",
                            "Scale",
                            name,
                            &[(
                                "spec.replicas".into(),
                                format!(
                                    "Invalid value: {replicas}: must be greater than or equal to 0"
                                ),
                            )],
                        ));
                    }
                    let mut new = current.clone();
                    set_path(&mut new, &spec_path, replicas);
                    if let Some(rv) = s
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                    {
                        new["metadata"]["resourceVersion"] = json!(rv);
                    }
                    Ok(new)
                })?;
            ok(&scale_of(kind, &o))
        }
        _ => Err(method_not_allowed(method)),
    }
}
