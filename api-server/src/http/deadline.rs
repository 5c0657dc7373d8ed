//! The time limit of reading a request body: a client whose upload stalls gets 408, as
//! its request never arrived, instead of the failure its handler would report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::conn::DeadlineBody;
use crate::error::Error;

/// Give the request body `body_read_timeout` from now; answer 408 if it runs out.
pub async fn body_deadline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let deadline = tokio::time::Instant::now() + state.config.body_read_timeout;
    let request = request.map(|body| Body::new(DeadlineBody::new(body, deadline, expired.clone())));
    let response = next.run(request).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    // hyper closes the connection after the answer: the rest of the body may still come.
    tracing::debug!("request body not received in time");
    Error::RequestBodyTimeout.into_response()
}
