//! Query parameters, parsed and bounded up front per route class: a handler gets typed
//! options or a 422 problem before it changes anything. Parameters a route does not know
//! are ignored, as upstream does; a known parameter given twice is refused (which of the
//! two would win is not the client's guess to make).

use std::time::Duration;

use axum::extract::{FromRequestParts, Query};
use axum::http::Uri;
use axum::http::request::Parts;

use crate::error::Error;
use crate::kinds::ApiKind;

/// Longest heartbeat interval: a day. Longer ones are as good as none (`heartbeat=0`),
/// and the bound keeps the timer arithmetic far from overflowing.
pub const MAX_HEARTBEAT_SECS: u64 = 86_400;

/// Heartbeat interval when the client does not choose one.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// The query parameters in request order, percent-decoded (lossily: a parameter this
/// server knows is ASCII, so a mangled byte can only make it invalid, never valid).
#[derive(Debug, Default)]
pub struct RawQuery(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for RawQuery {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        RawQuery::from_uri(&parts.uri)
    }
}

impl RawQuery {
    /// Split the query string of `uri`.
    pub fn from_uri(uri: &Uri) -> Result<Self, Error> {
        Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|Query(pairs)| RawQuery(pairs))
            .map_err(|_| Error::InvalidQuery("Invalid query string".into()))
    }

    /// The value of a known parameter, refusing it when given more than once.
    fn single(&self, name: &str) -> Result<Option<&str>, Error> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        let first = values.next();
        if values.next().is_some() {
            return Err(invalid_query(name, "Must be given at most once."));
        }
        Ok(first.map(String::as_str))
    }
}

/// A 422 problem whose detail is upstream's `{"query": {field: [message]}}`.
pub fn invalid_query(field: &str, message: &str) -> Error {
    Error::InvalidQuery(krake_crds::json::to_string(
        &serde_json::json!({"query": {field: [message]}}),
    ))
}

/// Options of a GET on a collection: a list, or a watch with `?watch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions {
    /// `?watch` is present (whatever its value, as upstream).
    pub watch: bool,
    /// Heartbeat interval; `None` disables heartbeats.
    pub heartbeat: Option<Duration>,
    /// Replay changes after this revision.
    pub resource_version: Option<i64>,
}

impl ListOptions {
    /// Parse `watch`, `heartbeat` (validated even without `watch`, as upstream) and
    /// `resource_version`.
    pub fn parse(query: &RawQuery) -> Result<Self, Error> {
        let watch = query.single("watch")?.is_some();
        let heartbeat = match query.single("heartbeat")? {
            None => Some(DEFAULT_HEARTBEAT),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(0) => None,
                Ok(n) if (1..=MAX_HEARTBEAT_SECS as i64).contains(&n) => {
                    Some(Duration::from_secs(n as u64))
                }
                Ok(_) => {
                    return Err(invalid_query(
                        "heartbeat",
                        &format!(
                            "Must be greater than or equal to 0 and less than or equal to {MAX_HEARTBEAT_SECS}."
                        ),
                    ));
                }
                Err(_) => return Err(invalid_query("heartbeat", "Not a valid integer.")),
            },
        };
        let resource_version = match query.single("resource_version")? {
            None | Some("") => None,
            // Digits only: no sign, no spaces, no `+`; within the revisions a store has.
            Some(v) if v.bytes().all(|b| b.is_ascii_digit()) => match v.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(invalid_query(
                        "resource_version",
                        "Not a valid revision: out of range.",
                    ));
                }
            },
            Some(_) => {
                return Err(invalid_query(
                    "resource_version",
                    "Not a valid revision: a non-negative integer is expected.",
                ));
            }
        };
        Ok(ListOptions {
            watch,
            heartbeat,
            resource_version,
        })
    }
}

/// Options of a POST on a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// `?blocking=<state>`: answer once the object reaches this state (upper case).
    pub blocking: Option<String>,
}

impl CreateOptions {
    /// Parse `blocking` (kinds that support it; others ignore it, as upstream).
    pub fn parse<R: ApiKind>(query: &RawQuery) -> Result<Self, Error> {
        Ok(CreateOptions {
            blocking: blocking::<R>(query)?,
        })
    }
}

/// Options of a DELETE on an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOptions {
    /// `?blocking=<state>`: answer once the object reaches this state, or with
    /// `blocking=deleted` once it is removed.
    pub blocking: Option<String>,
    /// `?force=True` (exactly): remove at once.
    pub force: bool,
}

impl DeleteOptions {
    /// Parse `blocking` and `force` (kinds that support them; others ignore them).
    pub fn parse<R: ApiKind>(query: &RawQuery) -> Result<Self, Error> {
        let force = if R::FORCE_DELETE {
            match query.single("force")? {
                None => false,
                // Exactly `True` forces, as upstream (whose clients send `True`); other
                // spellings of a boolean are accepted as no force, anything else refused.
                Some("True") => true,
                Some(v) if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") => {
                    false
                }
                Some(_) => return Err(invalid_query("force", "Not a valid boolean.")),
            }
        } else {
            false
        };
        Ok(DeleteOptions {
            blocking: blocking::<R>(query)?,
            force,
        })
    }
}

/// `?blocking`: `False` (any case) or absent is no wait; anything else must name a state
/// of the kind, or `deleted` (the object's removal).
fn blocking<R: ApiKind>(query: &RawQuery) -> Result<Option<String>, Error> {
    if !R::BLOCKING {
        return Ok(None);
    }
    match query.single("blocking")? {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(None),
        Some(v) => {
            let wanted = v.to_ascii_uppercase();
            if wanted == "DELETED" || R::is_state(&wanted) {
                Ok(Some(wanted))
            } else {
                Err(invalid_query(
                    "blocking",
                    &format!(
                        "Not a state of {}: expected False, DELETED or one of {}.",
                        R::KIND,
                        R::states().join(", ")
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krake_crds::core::Role;
    use krake_crds::kubernetes::{Application, Cluster};

    impl RawQuery {
        fn parse(query: &str) -> Self {
            RawQuery::from_uri(&format!("/?{query}").parse().unwrap()).unwrap()
        }
    }

    fn detail(error: Error) -> serde_json::Value {
        match error {
            Error::InvalidQuery(d) => serde_json::from_str(&d).unwrap(),
            other => panic!("not a query error: {other:?}"),
        }
    }

    #[test]
    fn list_options_are_bounded() {
        let ok = ListOptions::parse(&RawQuery::parse(
            "watch&heartbeat=86400&resource_version=9223372036854775807",
        ))
        .unwrap();
        assert!(ok.watch);
        assert_eq!(ok.heartbeat, Some(Duration::from_secs(86_400)));
        assert_eq!(ok.resource_version, Some(i64::MAX));
        for bad in [
            "heartbeat=86401",
            "heartbeat=9223372036854775807",
            "heartbeat=-1",
            "heartbeat=1&heartbeat=1",
            "resource_version=-1",
            "resource_version=%2B5",
            "resource_version=9223372036854775808",
            "resource_version=1&resource_version=2",
            "watch&watch",
        ] {
            let error = ListOptions::parse(&RawQuery::parse(bad)).unwrap_err();
            assert!(detail(error)["query"].is_object(), "{bad}");
        }
    }

    #[test]
    fn blocking_names_a_state_of_the_kind() {
        let parse = |q: &str| CreateOptions::parse::<Application>(&RawQuery::parse(q));
        assert_eq!(
            parse("blocking=running").unwrap().blocking.as_deref(),
            Some("RUNNING")
        );
        assert_eq!(parse("blocking=False").unwrap().blocking, None);
        assert_eq!(parse("blocking=false").unwrap().blocking, None);
        assert!(parse("blocking=bogus").is_err());
        assert!(parse("blocking=online").is_err());
        assert!(CreateOptions::parse::<Cluster>(&RawQuery::parse("blocking=online")).is_ok());
        // Kinds without `blocking` ignore it.
        assert_eq!(
            CreateOptions::parse::<Role>(&RawQuery::parse("blocking=bogus"))
                .unwrap()
                .blocking,
            None
        );
        let delete =
            DeleteOptions::parse::<Cluster>(&RawQuery::parse("blocking=deleted&force=True"))
                .unwrap();
        assert_eq!(delete.blocking.as_deref(), Some("DELETED"));
        assert!(delete.force);
        assert!(
            !DeleteOptions::parse::<Cluster>(&RawQuery::parse("force=true"))
                .unwrap()
                .force
        );
        assert!(DeleteOptions::parse::<Cluster>(&RawQuery::parse("force=maybe")).is_err());
    }
}
