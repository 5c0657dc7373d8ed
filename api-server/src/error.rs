//! The API server's one error type, and its single mapping to HTTP problem documents
//! (RFC 7807, `application/problem+json`) in the shape upstream Krake emits.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use krake_crds::ValidationErrors;
use serde::Serialize;

/// Problem titles of upstream Krake, serialized by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[allow(clippy::enum_variant_names)]
pub enum ProblemTitle {
    /// Object not found.
    #[serde(rename = "NOT_FOUND_ERROR")]
    NotFoundError,
    /// Concurrent write conflict.
    #[serde(rename = "TRANSACTION_ERROR")]
    TransactionError,
    /// Rejected update.
    #[serde(rename = "UPDATE_ERROR")]
    UpdateError,
    /// Create of an existing name.
    #[serde(rename = "RESOURCE_ALREADY_EXISTS")]
    ResourceAlreadyExists,
    /// Keystone rejected the token.
    #[serde(rename = "INVALID_KEYSTONE_TOKEN")]
    InvalidKeystoneToken,
    /// Keycloak rejected the token.
    #[serde(rename = "INVALID_KEYCLOAK_TOKEN")]
    InvalidKeycloakToken,
}

impl ProblemTitle {
    /// The fragment of the problem `type` URI (`<problem_base_url>#not-found-error`).
    pub fn fragment(self) -> &'static str {
        match self {
            ProblemTitle::NotFoundError => "not-found-error",
            ProblemTitle::TransactionError => "transaction-error",
            ProblemTitle::UpdateError => "update-error",
            ProblemTitle::ResourceAlreadyExists => "resource-already-exists",
            ProblemTitle::InvalidKeystoneToken => "invalid-keystone-token",
            ProblemTitle::InvalidKeycloakToken => "invalid-keycloak-token",
        }
    }
}

/// Everything that can go wrong in the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("'{kind}' '{name}' does not exist in namespace {}", namespace.as_deref().map(|n| format!("'{n}'")).unwrap_or_else(|| "None".into()))]
    NotFound {
        /// Kind name.
        kind: &'static str,
        /// Object name.
        name: String,
        /// Namespace, `None` for global kinds.
        namespace: Option<String>,
    },
    /// Create of a name that exists.
    #[error("{kind} '{name}' already exists{}", namespace.as_deref().map(|n| format!(" in namespace '{n}'")).unwrap_or_default())]
    AlreadyExists {
        /// Kind name.
        kind: &'static str,
        /// Object name.
        name: String,
        /// Namespace, `None` for global kinds.
        namespace: Option<String>,
    },
    /// A rejected update (no-op, immutable field, finalizer rules, retry state): 400 or 409.
    #[error("{message}")]
    Update {
        /// HTTP status: 400 or 409.
        status: StatusCode,
        /// Problem detail.
        message: String,
    },
    /// Conditional writes kept failing, or a client's `resource_version` is stale.
    #[error("{0}")]
    Transaction(String),
    /// The request body is not JSON.
    #[error("415: Unsupported Media Type")]
    UnsupportedMediaType,
    /// The request body failed validation.
    #[error("{0}")]
    Validation(ValidationErrors),
    /// A query parameter is invalid.
    #[error("{0}")]
    InvalidQuery(String),
    /// A URL path segment (namespace, name) is invalid.
    #[error("{0}")]
    InvalidPath(String),
    /// An object (request body or stored encoding) is larger than the store accepts; checked
    /// before anything is written.
    #[error("413: The object is {} than the {limit} bytes the store accepts", size.map(|s| format!("{s} bytes, more")).unwrap_or_else(|| "larger".into()))]
    ObjectTooLarge {
        /// The object's size, when known (a request body is not read beyond the limit).
        size: Option<usize>,
        /// The largest storable object, in bytes.
        limit: usize,
    },
    /// Nobody authenticated the request, or a hook token is wrong.
    #[error("401: {0}")]
    Unauthorized(String),
    /// An identity provider rejected the presented token (detail as upstream, e.g.
    /// `Invalid Keystone token (HTTP 401 Unauthorized)`).
    #[error("{detail}")]
    InvalidToken {
        /// Problem title (`None` for OIDC JWTs, which upstream does not know).
        title: Option<ProblemTitle>,
        /// Problem detail.
        detail: String,
    },
    /// An identity provider cannot be reached: never a silent allow.
    #[error("503: Identity provider unavailable: {0}")]
    IdentityProviderUnavailable(String),
    /// The authorizer denied the request.
    #[error("403: Forbidden")]
    Forbidden,
    /// A CORS preflight request was rejected.
    #[error("CORS preflight request failed: {0}")]
    CorsRejected(String),
    /// The requested watch revision is older than the history kept.
    #[error(
        "The requested resource_version {requested} is too old; the oldest available is {oldest}. Re-list and watch again."
    )]
    Compacted {
        /// The first revision the client asked for.
        requested: i64,
        /// The oldest revision still available.
        oldest: i64,
    },
    /// The requested watch revision is newer than the store's current revision.
    #[error(
        "Too large resource version: {requested}, the current revision is {current}. Re-list and watch again."
    )]
    ResourceVersionTooLarge {
        /// The revision the client asked for.
        requested: i64,
        /// The store's current revision.
        current: i64,
    },
    /// A `blocking` request did not see the awaited state in time.
    #[error("Timed out after {0} s waiting for the requested state")]
    BlockingTimeout(u64),
    /// The request body did not arrive within the body read time.
    #[error("408: Request body not received in time")]
    RequestBodyTimeout,
    /// The server serves as many connections as it may; a new one is refused.
    #[error("503: Too many connections; retry later")]
    TooManyConnections,
    /// The storage backend cannot be reached.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(String),
    /// A stored value could not be decoded.
    #[error("stored object at {key} is invalid: {reason}")]
    CorruptObject {
        /// The storage key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Any other server-side failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Error::Validation(errors)
    }
}

impl Error {
    /// A 400 `UPDATE_ERROR`.
    pub fn bad_update(message: impl Into<String>) -> Self {
        Error::Update {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// A 409 `UPDATE_ERROR`.
    pub fn conflicting_update(message: impl Into<String>) -> Self {
        Error::Update {
            status: StatusCode::CONFLICT,
            message: message.into(),
        }
    }

    /// HTTP status and optional Krake problem title.
    pub fn status_and_title(&self) -> (StatusCode, Option<ProblemTitle>) {
        use ProblemTitle::*;
        match self {
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, Some(NotFoundError)),
            Error::AlreadyExists { .. } => (StatusCode::CONFLICT, Some(ResourceAlreadyExists)),
            Error::Update { status, .. } => (*status, Some(UpdateError)),
            Error::Transaction(_) => (StatusCode::CONFLICT, Some(TransactionError)),
            Error::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
            Error::Validation(_) | Error::InvalidQuery(_) | Error::InvalidPath(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, None)
            }
            Error::ObjectTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, None),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, None),
            Error::InvalidToken { title, .. } => (StatusCode::UNAUTHORIZED, *title),
            Error::IdentityProviderUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
            Error::Forbidden | Error::CorsRejected(_) => (StatusCode::FORBIDDEN, None),
            Error::Compacted { .. } | Error::ResourceVersionTooLarge { .. } => {
                (StatusCode::GONE, None)
            }
            Error::BlockingTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, None),
            Error::RequestBodyTimeout => (StatusCode::REQUEST_TIMEOUT, None),
            Error::TooManyConnections => (StatusCode::SERVICE_UNAVAILABLE, None),
            Error::StorageUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
            Error::CorruptObject { .. } | Error::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        }
    }

    /// The problem `detail`: the message, prefixed by the status code where upstream
    /// prefixes it. Server-side failures get fixed details: their messages carry backend
    /// text (etcd's or redb's errors, keys, decoding positions) that is logged, never sent.
    pub fn detail(&self) -> String {
        match self {
            Error::StorageUnavailable(_) => {
                "503: The storage is unavailable; retry later.".to_string()
            }
            Error::CorruptObject { .. } => "500: A stored object cannot be read.".to_string(),
            Error::Internal(_) => "500: Internal Server Error".to_string(),
            Error::Compacted { .. }
            | Error::ResourceVersionTooLarge { .. }
            | Error::BlockingTimeout(_) => {
                format!("{}: {}", self.status_and_title().0.as_u16(), self)
            }
            _ => self.to_string(),
        }
    }
}

impl IntoResponse for Error {
    /// Only the status, with the error in the response extensions: the problem document
    /// needs the configured problem base URL, so the `problems` middleware renders it (and
    /// logs server-side failures) in one place.
    fn into_response(self) -> Response {
        let mut response = self.status_and_title().0.into_response();
        response.extensions_mut().insert(Arc::new(self));
        response
    }
}
