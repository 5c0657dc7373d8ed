//! The API's OpenAPI 3.1 document, generated from the route table the router is built from
//! ([`super::routes`]) and from the `schemars` schemas of the types the handlers decode and
//! encode: a route cannot be served without being described, and a schema cannot drift
//! from its type.

use axum::http::Method;
use krake_crds::kinds::KindInfo;
use krake_crds::validation::RESOURCE_NAME_PATTERN;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::problem::Problem;
use crate::kinds::ApiKind;

/// A function adding the schema of one type to the generator, returning a reference to it.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The [`SchemaFn`] of `T`.
pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What the document needs to know about a persisted kind.
#[derive(Clone, Copy)]
pub struct KindDoc {
    /// Names and flags.
    pub info: KindInfo,
    /// `?blocking` is honoured on create and delete.
    pub blocking: bool,
    /// `?force=True` is honoured on delete.
    pub force_delete: bool,
    /// The object's schema.
    pub schema: SchemaFn,
}

impl KindDoc {
    /// The description of kind `R`.
    pub fn of<R: ApiKind>() -> Self {
        KindDoc {
            info: KindInfo::of::<R>(),
            blocking: R::BLOCKING,
            force_delete: R::FORCE_DELETE,
            schema: schema_of::<R>,
        }
    }
}

/// What a route does: the operation of the document.
#[derive(Clone, Copy)]
pub enum Operation {
    /// POST on a collection.
    Create(KindDoc),
    /// GET on a namespace's (or a global kind's) collection: list or watch.
    List(KindDoc),
    /// GET on a namespaced kind's collection across all namespaces: list or watch.
    ListAllNamespaces(KindDoc),
    /// GET on an object.
    Read(KindDoc),
    /// PUT on an object.
    Update(KindDoc),
    /// PUT on an object's `status`.
    UpdateStatus(KindDoc),
    /// DELETE on an object.
    Delete(KindDoc),
    /// PUT on another subresource (`binding`, `complete`, ...), with its body type
    /// (`None`: the body is ignored).
    Subresource {
        /// The kind.
        kind: KindDoc,
        /// The subresource's path segment.
        name: &'static str,
        /// Its body.
        body: Option<SchemaFn>,
        /// What it does.
        summary: &'static str,
    },
    /// `GET /`.
    Version,
    /// `GET /me`.
    Me,
    /// `GET /release`.
    Release,
    /// `GET /openapi/v3`.
    OpenApi,
    /// `GET /livez`.
    Livez,
    /// `GET /readyz`.
    Readyz,
    /// `GET /metrics`.
    Metrics,
}

/// One route: method, path template (axum's syntax, which is OpenAPI's) and operation.
pub struct RouteDoc {
    /// HTTP method.
    pub method: Method,
    /// Path template, e.g. `/kubernetes/namespaces/{ns}/applications/{name}`.
    pub path: String,
    /// What it does.
    pub operation: Operation,
}

/// The problem responses, by status: (component name, description).
const PROBLEMS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "Malformed request, or a rejected update (`UPDATE_ERROR`).",
    ),
    (
        401,
        "Unauthorized",
        "No user authenticated, an invalid token, or a wrong hook token.",
    ),
    (403, "Forbidden", "The authorizer denied the request."),
    (
        404,
        "NotFound",
        "No such object (`NOT_FOUND_ERROR`), or no such route.",
    ),
    (
        409,
        "Conflict",
        "The name exists (`RESOURCE_ALREADY_EXISTS`), a concurrent write (`TRANSACTION_ERROR`), or a rejected update (`UPDATE_ERROR`).",
    ),
    (
        410,
        "Gone",
        "The requested `resource_version` is older than the history kept: re-list.",
    ),
    (
        413,
        "PayloadTooLarge",
        "The request body is larger than the server's limit.",
    ),
    (415, "UnsupportedMediaType", "The request body is not JSON."),
    (
        422,
        "UnprocessableEntity",
        "The body, a query parameter or a path segment failed validation.",
    ),
    (
        503,
        "ServiceUnavailable",
        "Storage or identity provider unreachable, or the request timed out.",
    ),
    (
        504,
        "GatewayTimeout",
        "A `blocking` request did not see the awaited state in time.",
    ),
];

/// Statuses every authenticated operation may answer.
const COMMON: &[u16] = &[400, 401, 403, 503];
/// Statuses of operations with a JSON body.
const WITH_BODY: &[u16] = &[413, 415, 422];

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn problem_ref(status: u16) -> Value {
    let (_, name, _) = PROBLEMS
        .iter()
        .find(|(s, _, _)| *s == status)
        .expect("every documented problem status is in PROBLEMS");
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": json_content(schema)})
}

fn path_parameter(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": {"type": "string", "pattern": RESOURCE_NAME_PATTERN},
    })
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn blocking_parameter(action: &str) -> Value {
    query_parameter(
        "blocking",
        &format!(
            "Wait until the object {action} reaches this state (case-insensitive; `DELETED` \
             waits for its removal) and answer with it; `False` does not wait. 504 after the \
             server's blocking timeout."
        ),
        json!({"type": "string"}),
    )
}

/// The generator of the document's schemas: JSON Schema 2020-12 (OpenAPI 3.1's dialect),
/// definitions under `components/schemas`, describing what the server accepts.
fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator()
}

struct Builder {
    generator: SchemaGenerator,
    /// Extra component schemas (list and watch event envelopes).
    extra: Map<String, Value>,
}

impl Builder {
    fn kind_ref(&mut self, kind: &KindDoc) -> Value {
        (kind.schema)(&mut self.generator).to_value()
    }

    /// `<Kind>List`: the envelope of a list response.
    fn list_ref(&mut self, kind: &KindDoc) -> Value {
        let item = self.kind_ref(kind);
        let name = format!("{}{}List", capitalized(kind.info.api), kind.info.kind);
        self.extra.entry(name.clone()).or_insert_with(|| {
            json!({
                "type": "object",
                "description": format!("A list of {} objects.", kind.info.kind),
                "required": ["api", "kind", "metadata", "items"],
                "properties": {
                    "api": {"const": kind.info.api},
                    "kind": {"const": format!("{}List", kind.info.kind)},
                    "metadata": {"$ref": "#/components/schemas/ListMetadata"},
                    "items": {"type": "array", "items": item},
                },
            })
        });
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    /// `<Kind>WatchEvent`: one line of a watch stream.
    fn event_ref(&mut self, kind: &KindDoc) -> Value {
        let object = self.kind_ref(kind);
        let name = format!("{}{}WatchEvent", capitalized(kind.info.api), kind.info.kind);
        self.extra.entry(name.clone()).or_insert_with(|| {
            json!({
                "type": "object",
                "description": format!(
                    "One line of a watch stream of {} objects (empty lines are heartbeats).",
                    kind.info.kind
                ),
                "required": ["type", "object"],
                "properties": {
                    "type": {"enum": ["ADDED", "MODIFIED", "DELETED"]},
                    "object": object,
                },
            })
        });
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn operation(&mut self, route: &RouteDoc) -> Value {
        let mut parameters = Vec::new();
        if route.path.contains("{ns}") {
            parameters.push(path_parameter("ns", "The namespace."));
        }
        if route.path.contains("{name}") {
            parameters.push(path_parameter("name", "The object's name."));
        }
        let mut errors: Vec<u16> = COMMON.to_vec();
        if !parameters.is_empty() {
            // An invalid namespace in the URL.
            errors.push(422);
        }
        let mut body = None;
        let mut security = None;
        let (id, summary, success, tag): (String, String, (u16, Value), Option<&str>) = match route
            .operation
        {
            Operation::Create(kind) => {
                let KindInfo {
                    api, kind: name, ..
                } = kind.info;
                body = Some(self.kind_ref(&kind));
                errors.extend(WITH_BODY);
                errors.push(409);
                if kind.blocking {
                    parameters.push(blocking_parameter("created"));
                    errors.push(504);
                }
                (
                    format!("create{}{name}", capitalized(api)),
                    format!(
                        "Create a {name} (read-only metadata and `status` are set by the server)."
                    ),
                    (
                        200,
                        ok(&format!("The created {name}."), self.kind_ref(&kind)),
                    ),
                    Some(api),
                )
            }
            Operation::List(kind) | Operation::ListAllNamespaces(kind) => {
                let all = matches!(route.operation, Operation::ListAllNamespaces(_));
                let KindInfo {
                    api, kind: name, ..
                } = kind.info;
                parameters.extend([
                    query_parameter(
                        "watch",
                        "Present (with any value, even empty): stream the changes as \
                             NDJSON watch events instead of listing.",
                        json!({"type": "string"}),
                    ),
                    query_parameter(
                        "heartbeat",
                        "Seconds between the empty heartbeat lines of a watch; 0 disables \
                             them. Validated even without `watch`.",
                        json!({
                            "type": "integer",
                            "minimum": 0,
                            "maximum": super::query::MAX_HEARTBEAT_SECS,
                            "default": 10,
                        }),
                    ),
                    query_parameter(
                        "resource_version",
                        "With `watch`: replay every change after this revision (a list's \
                             `metadata.resource_version`); 410 when it is older than the history \
                             kept; 410 as well when it is newer than the store's revision.",
                        json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX}),
                    ),
                ]);
                errors.extend([410, 422]);
                let list = self.list_ref(&kind);
                let event = self.event_ref(&kind);
                let suffix = if all { "AllNamespaces" } else { "" };
                (
                    format!("list{}{name}{suffix}", capitalized(api)),
                    if all {
                        format!(
                            "List or watch the {name} objects of every namespace the caller may list."
                        )
                    } else {
                        format!("List or watch {name} objects.")
                    },
                    (
                        200,
                        json!({
                            "description": format!("The {name} objects, or (with `watch`) a stream of changes."),
                            "content": {
                                "application/json": {"schema": list},
                                "application/x-ndjson": {"schema": event},
                            },
                        }),
                    ),
                    Some(api),
                )
            }
            Operation::Read(kind) => {
                let KindInfo {
                    api, kind: name, ..
                } = kind.info;
                errors.push(404);
                (
                    format!("read{}{name}", capitalized(api)),
                    format!("Read a {name}."),
                    (200, ok(&format!("The {name}."), self.kind_ref(&kind))),
                    Some(api),
                )
            }
            Operation::Update(kind) | Operation::UpdateStatus(kind) => {
                let status = matches!(route.operation, Operation::UpdateStatus(_));
                let KindInfo {
                    api, kind: name, ..
                } = kind.info;
                body = Some(self.kind_ref(&kind));
                errors.extend(WITH_BODY);
                errors.extend([404, 409]);
                (
                    format!(
                        "update{}{name}{}",
                        capitalized(api),
                        if status { "Status" } else { "" }
                    ),
                    if status {
                        format!("Replace the status of a {name} (the body is the whole object).")
                    } else {
                        format!(
                            "Update a {name}: labels, finalizers, owners and spec; with \
                                 `metadata.resource_version`, only if unchanged since."
                        )
                    },
                    (
                        200,
                        ok(&format!("The updated {name}."), self.kind_ref(&kind)),
                    ),
                    Some(api),
                )
            }
            Operation::Delete(kind) => {
                let KindInfo {
                    api, kind: name, ..
                } = kind.info;
                errors.extend([404, 409]);
                if kind.blocking {
                    parameters.push(blocking_parameter("deleted"));
                    errors.push(504);
                }
                if kind.force_delete {
                    parameters.push(query_parameter(
                        "force",
                        "`True`: remove the object at once, without waiting for \
                             finalizers; any other value is ignored.",
                        json!({"type": "string"}),
                    ));
                }
                (
                    format!("delete{}{name}", capitalized(api)),
                    format!("Mark a {name} deleted; it is removed once its finalizers are gone."),
                    (
                        200,
                        ok(&format!("The {name} being deleted."), self.kind_ref(&kind)),
                    ),
                    Some(api),
                )
            }
            Operation::Subresource {
                kind,
                name: sub,
                body: sub_body,
                summary,
            } => {
                let KindInfo {
                    api, kind: name, ..
                } = kind.info;
                match sub_body {
                    Some(schema) => {
                        body = Some(schema(&mut self.generator).to_value());
                        errors.extend(WITH_BODY);
                    }
                    None => errors.push(413),
                }
                errors.extend([404, 409]);
                (
                    format!("update{}{name}{}", capitalized(api), capitalized(sub)),
                    summary.to_string(),
                    (
                        200,
                        ok(&format!("The updated {name}."), self.kind_ref(&kind)),
                    ),
                    Some(api),
                )
            }
            Operation::Version => (
                "readVersion".into(),
                "The Krake version the API is compatible with.".into(),
                (
                    200,
                    ok(
                        "The version.",
                        json!({"$ref": "#/components/schemas/Version"}),
                    ),
                ),
                None,
            ),
            Operation::Me => (
                "readMe".into(),
                "The authenticated user and the roles bound to it.".into(),
                (
                    200,
                    ok("The caller.", json!({"$ref": "#/components/schemas/Me"})),
                ),
                None,
            ),
            Operation::Release => (
                "release".into(),
                "Release the Krake.".into(),
                (202, ok("Released.", json!({"type": "string"}))),
                None,
            ),
            Operation::OpenApi => (
                "readOpenApi".into(),
                "This OpenAPI document.".into(),
                (200, ok("The document.", json!({"type": "object"}))),
                None,
            ),
            Operation::Livez | Operation::Readyz | Operation::Metrics => {
                // Probes and scraping need no authentication.
                errors.clear();
                security = Some(json!([]));
                let text = |description: &str, media: &str| json!({"description": description, "content": {media: {"schema": {"type": "string"}}}});
                match route.operation {
                    Operation::Livez => (
                        "livez".into(),
                        "Liveness probe.".into(),
                        (200, text("Alive.", "text/plain")),
                        None,
                    ),
                    Operation::Readyz => (
                        "readyz".into(),
                        "Readiness probe: storage reachable, watch caches established, \
                             authorization data loaded."
                            .into(),
                        (200, text("Ready.", "text/plain")),
                        None,
                    ),
                    _ => (
                        "metrics".into(),
                        "Prometheus metrics.".into(),
                        (200, text("The metrics.", "application/openmetrics-text")),
                        None,
                    ),
                }
            }
        };
        let mut responses = Map::new();
        responses.insert(success.0.to_string(), success.1);
        if matches!(route.operation, Operation::Readyz) {
            responses.insert(
                "503".into(),
                json!({"description": "Not ready (the reason as text).", "content": {"text/plain": {"schema": {"type": "string"}}}}),
            );
        }
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            responses.insert(status.to_string(), problem_ref(status));
        }
        let mut operation = json!({
            "operationId": id,
            "summary": summary,
            "tags": [tag.unwrap_or("meta")],
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(schema) = body {
            operation["requestBody"] = json!({"required": true, "content": json_content(schema)});
        }
        operation["responses"] = Value::Object(responses);
        if let Some(security) = security {
            operation["security"] = security;
        }
        operation
    }
}

/// The OpenAPI 3.1 document of `routes` (every route of the router).
pub fn document(routes: &[&RouteDoc], version: &str) -> Value {
    let mut builder = Builder {
        generator: generator(),
        extra: Map::new(),
    };
    let mut paths = Map::new();
    for route in routes {
        let operation = builder.operation(route);
        let item = paths.entry(route.path.clone()).or_insert_with(|| json!({}));
        item[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    let problem = schema_of::<Problem<'static>>(&mut builder.generator);
    let mut schemas = builder.generator.take_definitions(true);
    schemas.append(&mut builder.extra);
    schemas.insert(
        "ListMetadata".into(),
        json!({
            "type": "object",
            "properties": {"resource_version": {
                "type": "string",
                "description": "The storage revision the list was read at (for `?watch&resource_version=`)."
            }},
        }),
    );
    schemas.insert(
        "Version".into(),
        json!({"type": "object", "required": ["version"], "properties": {"version": {"type": "string"}}}),
    );
    schemas.insert(
        "Me".into(),
        json!({
            "type": "object",
            "required": ["user", "roles"],
            "properties": {
                "user": {"type": "string"},
                "roles": {"type": "array", "items": {"type": "string"}, "description": "Sorted names of the roles bound to the user."},
            },
        }),
    );
    let mut responses = Map::new();
    for (_, name, description) in PROBLEMS {
        responses.insert(
            (*name).to_string(),
            json!({"description": description, "content": {"application/problem+json": {"schema": problem.clone()}}}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Krake API",
            "version": version,
            "description": "Krake's REST API: every route of the server, generated from the \
                types and the route table that serve it. Errors are problem documents \
                (RFC 7807).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "clientCertificate": {"type": "mutualTLS", "description": "A TLS client certificate; its first subject Common Name is the user."},
                "bearerToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "An OpenID Connect ID token."},
                "identityToken": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "A Keystone or Keycloak token, as is."},
            },
        },
        // `{}`: servers that allow anonymous access need no credentials.
        "security": [{}, {"clientCertificate": []}, {"bearerToken": []}, {"identityToken": []}],
    })
}
