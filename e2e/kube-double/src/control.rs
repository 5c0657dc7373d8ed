//! The HTTP control endpoint of the binary (`POST /kube-double/faults`), so that a person or
//! a script can inject the faults tests inject through the library:
//! `{"fault": "none" | "slow" | "status" | "hang" | "unreachable", "delayMs": 500,
//! "code": 503, "seconds": 5}`. It needs the same credentials as the API and is never
//! subject to the faults themselves.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Response, header};
use serde_json::{Value, json};

use crate::App;
use crate::error::{Error, Reason, Result};
use crate::faults::Fault;

/// Where the endpoint lives.
pub const PATH: &str = "/kube-double/faults";

/// Serve one control request.
pub async fn handle(app: &Arc<App>, method: &Method, body: &[u8]) -> Result<Response<Body>> {
    if *method == Method::GET {
        return Ok(answer(&json!({"fault": format!("{:?}", app.faults.get())})));
    }
    if *method != Method::POST {
        return Err(Error::status(Reason::MethodNotAllowed, "use GET or POST"));
    }
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("invalid JSON: {e}")))?;
    let number = |f: &str| request.get(f).and_then(Value::as_u64);
    let fault = match request.get("fault").and_then(Value::as_str) {
        Some("none") => Fault::None,
        Some("slow") => Fault::Slow(Duration::from_millis(number("delayMs").unwrap_or(1000))),
        Some("status") => Fault::Status(
            number("code")
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(503),
        ),
        Some("hang") => Fault::Hang,
        Some("unreachable") => {
            let seconds = number("seconds").ok_or_else(|| Error::bad_request("unreachable needs \"seconds\": the server cannot be told to come back once it stops listening"))?;
            app.unreachable_for(Duration::from_secs(seconds));
            return Ok(answer(&json!({"fault": "unreachable", "seconds": seconds})));
        }
        other => {
            return Err(Error::bad_request(format!(
                "unknown fault {other:?}: use none, slow, status, hang or unreachable"
            )));
        }
    };
    app.faults.set(fault);
    Ok(answer(&json!({"fault": format!("{fault:?}")})))
}

fn answer(value: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(value.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
