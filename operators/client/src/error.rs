//! The one error type of the crate.

use std::time::Duration;

/// Everything that can go wrong talking to the Krake API (or, through
/// [`crate::transport`], to any HTTP endpoint).
///
/// Messages never contain request or response bodies of objects (which may hold
/// kubeconfigs, tokens or keys), only problem details written by the server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The API answered with an error status (problem+json, RFC 7807) other than the
    /// ones with their own variant.
    #[error("API error {status}{}: {detail}", title.as_deref().map(|t| format!(" {t}")).unwrap_or_default())]
    Api {
        /// HTTP status code.
        status: u16,
        /// Problem title (`UPDATE_ERROR`, ...), when the server sent one.
        title: Option<String>,
        /// Problem detail (or the start of a non-problem body).
        detail: String,
    },
    /// 404: the object (or route) does not exist.
    #[error("not found: {detail}")]
    NotFound {
        /// Problem detail.
        detail: String,
    },
    /// 409: the object already exists, a conditional update lost against a concurrent
    /// write (stale `metadata.resource_version`), or a finalizer rule was violated.
    #[error("conflict{}: {detail}", title.as_deref().map(|t| format!(" {t}")).unwrap_or_default())]
    Conflict {
        /// Problem title (`RESOURCE_ALREADY_EXISTS`, `TRANSACTION_ERROR`, `UPDATE_ERROR`).
        title: Option<String>,
        /// Problem detail.
        detail: String,
    },
    /// 410 on a watch: the requested `resource_version` is older than the history the
    /// server keeps. List again and watch from the list's revision.
    #[error("gone: {detail}")]
    Gone {
        /// Problem detail.
        detail: String,
    },
    /// The request could not be sent or the response not received (connection refused,
    /// reset, TLS handshake failure, stream cut).
    #[error("transport error: {0}")]
    Transport(String),
    /// No (complete) response within the time limit.
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    /// A response body could not be decoded.
    #[error("cannot decode response: {0}")]
    Decode(String),
    /// The client configuration cannot be used (unreadable certificate, bad URL, ...).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The request cannot be built (e.g. a namespaced object without namespace).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl Error {
    /// The HTTP status of an answered request.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::NotFound { .. } => Some(404),
            Error::Conflict { .. } => Some(409),
            Error::Gone { .. } => Some(410),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed: transport errors, time-outs and
    /// server errors (5xx). Client errors (4xx) are never retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport(_) | Error::Timeout(_) => true,
            Error::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// `true` for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// `true` for [`Error::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// A short, stable name of the error class, for metrics labels
    /// (`not_found`, `conflict`, `api_422`, `transport`, ...).
    pub fn kind(&self) -> String {
        match self {
            Error::Api { status, .. } => format!("api_{status}"),
            Error::NotFound { .. } => "not_found".into(),
            Error::Conflict { .. } => "conflict".into(),
            Error::Gone { .. } => "gone".into(),
            Error::Transport(_) => "transport".into(),
            Error::Timeout(_) => "timeout".into(),
            Error::Decode(_) => "decode".into(),
            Error::Config(_) => "config".into(),
            Error::InvalidRequest(_) => "invalid_request".into(),
        }
    }

    /// A [`Error::Decode`] for a JSON decoding failure of `what`. Quoted values in
    /// serde's message (which could be secrets: tokens, keys) are elided; field names
    /// and positions are kept.
    pub fn decode(what: &str, err: &serde_json::Error) -> Error {
        Error::Decode(format!("{what}: {}", redact_quoted(&err.to_string())))
    }

    /// Map an error response (status and body) to an error, parsing problem+json.
    pub fn from_response(status: u16, body: &[u8]) -> Error {
        #[derive(serde::Deserialize)]
        struct Problem {
            #[serde(default)]
            title: Option<String>,
            #[serde(default)]
            detail: Option<String>,
        }
        let (title, detail) = match serde_json::from_slice::<Problem>(body) {
            Ok(p) => (p.title, p.detail.unwrap_or_default()),
            Err(_) => (None, truncated_text(body)),
        };
        match status {
            404 => Error::NotFound { detail },
            409 => Error::Conflict { title, detail },
            410 => Error::Gone { detail },
            _ => Error::Api {
                status,
                title,
                detail,
            },
        }
    }
}

/// Replace the content of every `"..."` with `…`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quotes = false;
    for c in message.chars() {
        if c == '"' {
            if in_quotes {
                out.push('…');
            }
            in_quotes = !in_quotes;
            out.push(c);
        } else if !in_quotes {
            out.push(c);
        }
    }
    out
}

/// The start of a non-JSON body, as text, for error messages.
fn truncated_text(body: &[u8]) -> String {
    const MAX: usize = 256;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]);
    let mut text = text.trim().replace('\n', " ");
    if body.len() > MAX {
        text.push_str("...");
    }
    text
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_is_parsed() {
        let body = br#"{"type": "about:blank", "title": "UPDATE_ERROR", "status": 400, "detail": "The body contained no update."}"#;
        match Error::from_response(400, body) {
            Error::Api {
                status,
                title,
                detail,
            } => {
                assert_eq!(status, 400);
                assert_eq!(title.as_deref(), Some("UPDATE_ERROR"));
                assert_eq!(detail, "The body contained no update.");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(Error::from_response(404, b"{}").is_not_found());
        assert!(Error::from_response(409, b"{}").is_conflict());
        assert!(matches!(
            Error::from_response(410, b"{}"),
            Error::Gone { .. }
        ));
    }

    #[test]
    fn non_json_bodies_are_truncated_text() {
        let body = "500 Internal Server Error\n\nServer got itself in trouble";
        let err = Error::from_response(500, body.as_bytes());
        assert!(err.is_retryable());
        assert_eq!(err.status(), Some(500));
        match err {
            Error::Api { detail, title, .. } => {
                assert_eq!(title, None);
                assert_eq!(
                    detail,
                    "500 Internal Server Error  Server got itself in trouble"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let long = vec![b'x'; 1000];
        let Error::Api { detail, .. } = Error::from_response(502, &long) else {
            panic!()
        };
        assert_eq!(detail.len(), 259);
    }

    #[test]
    fn decode_errors_elide_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Kubeconfig {
            users: std::collections::BTreeMap<String, String>,
        }
        let err = serde_json::from_str::<Kubeconfig>(r#"{"users": "token-s3cr3t"}"#).unwrap_err();
        let message = Error::decode("Cluster", &err).to_string();
        assert!(!message.contains("s3cr3t"), "{message}");
        assert!(message.contains("Cluster"), "{message}");
        assert!(message.contains("line 1"), "{message}");
        let err = serde_json::from_str::<Kubeconfig>("{}").unwrap_err();
        assert!(
            Error::decode("x", &err)
                .to_string()
                .contains("missing field `users`")
        );
    }

    #[test]
    fn retry_classification() {
        assert!(Error::Transport("reset".into()).is_retryable());
        assert!(Error::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!Error::from_response(422, b"{}").is_retryable());
        assert!(!Error::from_response(404, b"{}").is_retryable());
        assert!(!Error::from_response(409, b"{}").is_retryable());
        assert!(Error::from_response(503, b"{}").is_retryable());
        assert_eq!(Error::from_response(422, b"{}").kind(), "api_422");
    }
}
