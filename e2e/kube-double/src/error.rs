//! The crate's one error type and its mapping to HTTP: every failure a client can see is a
//! Kubernetes `Status` object with the exact `reason` string a real API server uses, because
//! clients (kube-rs's `is_not_found()`, kubectl) match on that string, not on the code.

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// The `reason` of a failure `Status`, as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 400.
    BadRequest,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 406.
    NotAcceptable,
    /// 409, the name is taken.
    AlreadyExists,
    /// 409, a stale resourceVersion or a field-manager conflict.
    Conflict,
    /// 410, a resource that is gone.
    Gone,
    /// 410, a resourceVersion or continue token too old.
    Expired,
    /// 415.
    UnsupportedMediaType,
    /// 422.
    Invalid,
    /// 500.
    InternalError,
    /// 503.
    ServiceUnavailable,
    /// 504.
    Timeout,
}

impl Reason {
    /// The reason string of the `Status` object.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Expired => "Expired",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
            Reason::Timeout => "Timeout",
        }
    }

    /// The HTTP status code that goes with the reason.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::NotAcceptable => 406,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Gone | Reason::Expired => 410,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::InternalError => 500,
            Reason::ServiceUnavailable => 503,
            Reason::Timeout => 504,
        }
    }
}

/// Everything that can go wrong in the double.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request the API refuses: answered with a failure `Status`.
    #[error("{} ({}): {message}", reason.as_str(), reason.code())]
    Status {
        /// The reason string.
        reason: Reason,
        /// The human-readable message.
        message: String,
        /// `details` of the Status (name, group, kind, causes), if any.
        details: Option<Value>,
    },
    /// Certificates could not be made.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// TLS configuration refused by rustls.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A socket or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Short for `Result<T, Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `resource.group` form used in messages (`deployments.apps`, `pods`).
pub fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl Error {
    /// A failure with this reason and message and no details.
    pub fn status(reason: Reason, message: impl Into<String>) -> Self {
        Error::Status {
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(reason: Reason, message: String, details: Value) -> Self {
        Error::Status {
            reason,
            message,
            details: Some(details),
        }
    }

    /// `<resource> "<name>" not found`.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::with_details(
            Reason::NotFound,
            format!("{} \"{name}\" not found", qualified(group, plural)),
            json!({"name": name, "group": group, "kind": plural}),
        )
    }

    /// `<resource> "<name>" already exists`.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::with_details(
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", qualified(group, plural)),
            json!({"name": name, "group": group, "kind": plural}),
        )
    }

    /// A stale resourceVersion (or a failed precondition).
    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        Self::with_details(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, plural)
            ),
            json!({"name": name, "group": group, "kind": plural}),
        )
    }

    /// The stale-resourceVersion conflict.
    pub fn stale(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict(
            group,
            plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// A field-manager conflict of server-side apply: `fields` are `(manager, field path)`.
    pub fn apply_conflict(
        group: &str,
        plural: &str,
        name: &str,
        fields: &[(String, String)],
    ) -> Self {
        let causes: Vec<Value> = fields
            .iter()
            .map(|(manager, field)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{manager}\""), "field": field})
            })
            .collect();
        let list: Vec<String> = fields
            .iter()
            .map(|(manager, field)| format!("- {manager}: {field}"))
            .collect();
        let count = fields.len();
        Self::with_details(
            Reason::Conflict,
            format!(
                "Apply failed with {count} conflict{}: {}",
                if count == 1 { "" } else { "s" },
                list.join("\n")
            ),
            json!({"name": name, "group": group, "kind": plural, "causes": causes}),
        )
    }

    /// `<Kind>.<group> "<name>" is invalid: <field>: <message>` with one cause per field.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: &[(String, String)]) -> Self {
        let what = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let rendered: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let message = if rendered.len() == 1 {
            format!("{what} \"{name}\" is invalid: {}", rendered[0])
        } else {
            format!("{what} \"{name}\" is invalid: [{}]", rendered.join(", "))
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|(field, message)| {
                let reason = if message.starts_with("Required value") {
                    "FieldValueRequired"
                } else if message.starts_with("Forbidden") {
                    "FieldValueForbidden"
                } else if message.starts_with("Unsupported value") {
                    "FieldValueNotSupported"
                } else {
                    "FieldValueInvalid"
                };
                json!({"reason": reason, "message": message, "field": field})
            })
            .collect();
        Self::with_details(
            Reason::Invalid,
            message,
            json!({"name": name, "group": group, "kind": kind, "causes": causes}),
        )
    }

    /// 400 with this message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::status(Reason::BadRequest, message)
    }

    /// The reason of a `Status` error, `InternalError` for the others.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Status { reason, .. } => *reason,
            _ => Reason::InternalError,
        }
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let (reason, message, details) = match self {
            Error::Status {
                reason,
                message,
                details,
            } => (*reason, message.clone(), details.clone()),
            // Internal failures say what failed without leaking key material or paths.
            other => (Reason::InternalError, other.to_string(), None),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason.as_str(),
            "code": reason.code(),
        });
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }

    /// The HTTP response: the `Status` as JSON with its code.
    pub fn into_response(self) -> Response<Body> {
        let code = self.reason().code();
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() =
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
