//! Request parameters shared by the handlers: the typed paths of a kind's collection and
//! objects (validated namespace and name) and JSON bodies.

use std::marker::PhantomData;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use bytes::Bytes;
use krake_crds::Resource;
use krake_crds::validation::is_valid_resource_name;
use serde_json::Value;

use crate::error::Error;

/// The path of a collection route of kind `R`: the namespace of namespaced kinds.
///
/// Extraction fails with a 422 problem (before the handler, hence before authorization)
/// when a segment does not percent-decode to UTF-8 or breaks the name rule: a failure
/// never degrades into "no namespace", which the authorizer would read as a global or
/// all-namespaces request. The all-namespaces list has a handler of its own.
#[derive(Debug)]
pub struct CollectionPath<R> {
    /// `Some` exactly when `R` is namespaced (checked on extraction).
    namespace: Option<String>,
    kind: PhantomData<fn() -> R>,
}

impl<R: Resource> CollectionPath<R> {
    /// The namespace (`None` exactly for global kinds).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}

/// The path of an object route of kind `R` (and of its subresources): the namespace of
/// namespaced kinds and the name, validated as for [`CollectionPath`].
#[derive(Debug)]
pub struct ObjectPath<R> {
    /// `Some` exactly when `R` is namespaced (checked on extraction).
    namespace: Option<String>,
    name: String,
    kind: PhantomData<fn() -> R>,
}

impl<R: Resource> ObjectPath<R> {
    /// The namespace (`None` exactly for global kinds).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<R: Resource, S: Send + Sync> FromRequestParts<S> for CollectionPath<R> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let params = path_params(parts, state).await?;
        Ok(CollectionPath {
            namespace: namespace_of::<R>(&params)?,
            kind: PhantomData,
        })
    }
}

impl<R: Resource, S: Send + Sync> FromRequestParts<S> for ObjectPath<R> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let params = path_params(parts, state).await?;
        let namespace = namespace_of::<R>(&params)?;
        let name = match lookup(&params, "name") {
            Some(name) if is_valid_resource_name(name) => name.to_string(),
            Some(name) => {
                return Err(Error::InvalidPath(format!(
                    "Invalid name '{name}' in URL: Invalid character in resource name."
                )));
            }
            None => {
                return Err(Error::Internal(format!(
                    "{} route without {{name}}",
                    R::KIND
                )));
            }
        };
        Ok(ObjectPath {
            namespace,
            name,
            kind: PhantomData,
        })
    }
}

/// The percent-decoded path parameters of the matched route.
async fn path_params<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<RawPathParams, Error> {
    RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|rejection| match rejection {
            RawPathParamsRejection::InvalidUtf8InPathParam(_) => Error::InvalidPath(
                "Invalid URL: a path segment is not valid UTF-8 once percent-decoded.".into(),
            ),
            // Every matched route records its parameters, even none.
            other => Error::Internal(format!("path parameters unavailable: {other}")),
        })
}

fn lookup<'a>(params: &'a RawPathParams, key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// The validated URL namespace of kind `R`. Upstream accepts any string and then cannot
/// read the object back; we reject names that break the rule.
fn namespace_of<R: Resource>(params: &RawPathParams) -> Result<Option<String>, Error> {
    match (R::NAMESPACED, lookup(params, "ns")) {
        (true, Some(ns)) if is_valid_resource_name(ns) => Ok(Some(ns.to_string())),
        (true, Some(ns)) => Err(Error::InvalidPath(format!(
            "Invalid namespace '{ns}' in URL: Invalid character in resource namespace."
        ))),
        (false, None) => Ok(None),
        // The routes are built from `R::NAMESPACED`: a mismatch is a wiring mistake.
        (true, None) => Err(Error::Internal(format!("{} route without {{ns}}", R::KIND))),
        (false, Some(_)) => Err(Error::Internal(format!("{} route with {{ns}}", R::KIND))),
    }
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
