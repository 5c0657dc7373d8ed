//! Problem documents (RFC 7807, `application/problem+json`) in the shape upstream Krake
//! emits, rendered in one place: the `problems` middleware turns every [`Error`] a handler
//! or an inner middleware returned, and every error response of the framework itself
//! (unknown route, wrong method, oversized or malformed request), into a problem document.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

use super::state::AppState;
use crate::error::{Error, ProblemTitle};

/// A problem document (RFC 7807): the body of every error response.
#[derive(Serialize, JsonSchema)]
pub struct Problem<'a> {
    /// A URI naming the problem type; `about:blank` when it has no title.
    #[serde(rename = "type")]
    pub type_: &'a str,
    /// Krake's problem title, for problems that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<ProblemTitle>,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong.
    pub detail: &'a str,
}

/// Serialize a problem document.
pub fn problem_response(
    status: StatusCode,
    type_: &str,
    title: Option<ProblemTitle>,
    detail: &str,
) -> Response {
    let body = problem_body(status, type_, title, detail);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json; charset=utf-8"),
    );
    response
}

/// The JSON body of a problem document.
pub fn problem_body(
    status: StatusCode,
    type_: &str,
    title: Option<ProblemTitle>,
    detail: &str,
) -> Vec<u8> {
    krake_crds::json::to_vec(&Problem {
        type_,
        title,
        status: status.as_u16(),
        detail,
    })
}

/// The problem document of `error`; titled problems get a `type` under
/// `problem_base_url` (`about:blank` when it is empty or the problem has no title).
pub fn render(error: &Error, problem_base_url: &str) -> Response {
    let (status, title) = error.status_and_title();
    let type_ = match title {
        Some(t) if !problem_base_url.is_empty() => {
            format!("{problem_base_url}#{}", t.fragment())
        }
        _ => "about:blank".to_string(),
    };
    problem_response(status, &type_, title, &error.detail())
}

/// Render the errors of everything inside this middleware as problem documents, logging
/// server-side failures once.
pub async fn problems(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(error) = response.extensions().get::<Arc<Error>>().cloned() {
        if response.status().is_server_error() {
            tracing::error!(error = %error, "request failed");
        }
        return render(&error, &state.config.problem_base_url);
    }
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        // axum's body limit, which is the store's object limit: say so, with the number.
        let error = Error::ObjectTooLarge {
            size: None,
            limit: state.store.max_value_bytes(),
        };
        return render(&error, &state.config.problem_base_url);
    }
    framework_problem(response)
}

/// axum's own error responses (404, 405 with its `Allow` header, 413, an unreadable
/// body) as problem documents; problem documents and successes pass unchanged.
fn framework_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    // Query strings and paths are parsed by our own extractors; what is left of axum's
    // 400s is a request body that could not be read (e.g. broken chunked framing).
    let detail = format!(
        "{}: {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut problem = problem_response(status, "about:blank", None, &detail);
    if let Some(allow) = parts.headers.remove(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn titled_problems_get_a_type_under_the_base() {
        let error = Error::NotFound {
            kind: "Role",
            name: "r".into(),
            namespace: None,
        };
        let problem = body(render(&error, "https://docs.example/problem.html")).await;
        assert_eq!(
            problem["type"],
            "https://docs.example/problem.html#not-found-error"
        );
        assert_eq!(problem["title"], "NOT_FOUND_ERROR");
        assert_eq!(problem["status"], 404);
        assert_eq!(body(render(&error, "")).await["type"], "about:blank");
        let untitled = body(render(&Error::Forbidden, "https://docs.example/p")).await;
        assert_eq!(untitled["type"], "about:blank");
        assert!(untitled.get("title").is_none());
    }

    #[tokio::test]
    async fn an_error_response_carries_the_error_until_rendered() {
        let response = Error::Forbidden.into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.extensions().get::<Arc<Error>>().is_some());
        let framework = framework_problem(StatusCode::BAD_REQUEST.into_response());
        assert_eq!(framework.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body(framework).await["detail"], "400: Bad Request");
    }
}
