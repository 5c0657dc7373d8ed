//! Request parameters shared by the handlers: path parameters, query parameters in
//! request order, the validated URL namespace and JSON bodies.

use std::collections::HashMap;

use axum::extract::Path;
use bytes::Bytes;
use krake_crds::Resource;
use krake_crds::validation::is_valid_resource_name;
use serde_json::Value;

use crate::error::Error;

/// Path parameters (`ns`, `name`); empty on routes without parameters.
pub type Params = HashMap<String, String>;

/// Extractor of [`Params`] that also works on routes without parameters.
pub struct PathParams(pub Params);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PathParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(PathParams(
            <Path<Params> as axum::extract::FromRequestParts<S>>::from_request_parts(parts, state)
                .await
                .map(|p| p.0)
                .unwrap_or_default(),
        ))
    }
}

/// Query parameters in request order.
pub type QueryParams = Vec<(String, String)>;

/// The value of a query parameter.
pub fn query_param<'a>(query: &'a QueryParams, name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The validated URL namespace (`None` for global kinds). Upstream accepts any string and
/// then cannot read the object back; we reject names that break the rule.
pub fn url_namespace<R: Resource>(params: &Params) -> Result<Option<String>, Error> {
    if !R::NAMESPACED {
        return Ok(None);
    }
    match params.get("ns") {
        Some(ns) if is_valid_resource_name(ns) => Ok(Some(ns.clone())),
        Some(ns) => Err(Error::InvalidPath(format!(
            "Invalid namespace '{ns}' in URL: Invalid character in resource namespace."
        ))),
        None => Ok(None),
    }
}

/// The `{name}` path parameter of an object route.
pub fn url_name(params: &Params) -> Result<&str, Error> {
    params
        .get("name")
        .map(String::as_str)
        .ok_or_else(|| Error::Internal("route without {name}".into()))
}

/// Parse a request body as JSON: not JSON at all is 415, as upstream; a number that
/// would be altered by decoding (an integer beyond 64 bits, a float beyond `f64`) is 422
/// at its path instead of being stored rounded.
pub fn parse_json(body: &Bytes) -> Result<Value, Error> {
    krake_crds::decode::parse_body(body).map_err(|e| match e {
        krake_crds::decode::BodyError::NotJson => Error::UnsupportedMediaType,
        krake_crds::decode::BodyError::Invalid(errors) => Error::Validation(errors),
    })
}
