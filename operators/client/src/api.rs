//! Typed access to one kind: CRUD, status, list and watch.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::Incoming;
use krake_crds::Resource;
use serde::Deserialize;

use crate::client::Client;
use crate::error::{Error, Result};

/// Heartbeat interval requested for watches (seconds).
pub const WATCH_HEARTBEAT_SECS: u64 = 10;

/// A watch that delivered nothing (not even a heartbeat) for this long is considered
/// dead and ends with [`Error::Transport`].
pub const WATCH_IDLE_TIMEOUT: Duration = Duration::from_secs(3 * WATCH_HEARTBEAT_SECS + 5);

/// Longest watch line accepted (one serialized object).
const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// The objects of a list answer and the revision they were read at.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectList<R> {
    /// The objects, in the server's order.
    pub items: Vec<R>,
    /// The storage revision of the list (extension `metadata.resource_version`); watch
    /// from it to receive every later change. `None` from servers without the extension.
    pub resource_version: Option<String>,
}

/// One change delivered by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<R> {
    /// The object was created.
    Added(R),
    /// The object was changed (including being marked deleted).
    Modified(R),
    /// The object was removed from storage; carries its last stored version, with
    /// `metadata.resource_version` set to the deletion revision.
    Deleted(R),
}

impl<R: Resource> WatchEvent<R> {
    /// The object of the event.
    pub fn object(&self) -> &R {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o,
        }
    }

    /// The object of the event, by value.
    pub fn into_object(self) -> R {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => o,
        }
    }

    /// The revision of the event: resume a watch from it to receive only later changes.
    pub fn resource_version(&self) -> Option<&str> {
        self.object().metadata().resource_version.as_deref()
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", content = "object")]
enum RawEvent<R> {
    #[serde(rename = "ADDED")]
    Added(R),
    #[serde(rename = "MODIFIED")]
    Modified(R),
    #[serde(rename = "DELETED")]
    Deleted(R),
}

/// Parse one non-empty watch line.
pub fn parse_watch_line<R: Resource>(line: &[u8]) -> Result<WatchEvent<R>> {
    let raw: RawEvent<R> = serde_json::from_slice(line)
        .map_err(|e| Error::decode(&format!("watch event of {}", R::KIND), &e))?;
    Ok(match raw {
        RawEvent::Added(o) => WatchEvent::Added(o),
        RawEvent::Modified(o) => WatchEvent::Modified(o),
        RawEvent::Deleted(o) => WatchEvent::Deleted(o),
    })
}

/// A list response decoded straight into typed items: no intermediate
/// `serde_json::Value` tree, whose size is several times the body's (what a reflector's
/// first list of 10,000 objects costs in peak memory).
#[derive(Deserialize)]
#[serde(bound = "R: serde::de::DeserializeOwned")]
struct RawList<R> {
    #[serde(default)]
    metadata: RawListMetadata,
    items: Vec<R>,
}

#[derive(Deserialize, Default)]
struct RawListMetadata {
    #[serde(default)]
    resource_version: Option<String>,
}

/// Percent-encode a path segment (Krake names only use `[A-Za-z0-9_.:-]`, which pass
/// unchanged).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The collection path of `R`: one namespace, or all namespaces (`None`). Global kinds
/// ignore the namespace.
pub fn collection_path<R: Resource>(namespace: Option<&str>) -> String {
    match (R::NAMESPACED, namespace) {
        (true, Some(ns)) => format!("/{}/namespaces/{}/{}", R::API, segment(ns), R::PLURAL),
        _ => format!("/{}/{}", R::API, R::PLURAL),
    }
}

/// The path of one object of `R`; namespaced kinds need a namespace.
pub fn object_path<R: Resource>(namespace: Option<&str>, name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::InvalidRequest(format!("{} without name", R::KIND)));
    }
    if R::NAMESPACED {
        let ns = namespace.filter(|ns| !ns.is_empty()).ok_or_else(|| {
            Error::InvalidRequest(format!("{} '{name}' needs a namespace", R::KIND))
        })?;
        Ok(format!(
            "/{}/namespaces/{}/{}/{}",
            R::API,
            segment(ns),
            R::PLURAL,
            segment(name)
        ))
    } else {
        Ok(format!("/{}/{}/{}", R::API, R::PLURAL, segment(name)))
    }
}

/// Typed access to kind `R`. Obtain one with [`Client::api`]; cheap to clone.
///
/// Namespaces are given per call; for global kinds they are ignored.
pub struct Api<R> {
    client: Client,
    _kind: PhantomData<fn() -> R>,
}

impl<R> Clone for Api<R> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            _kind: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for Api<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("kind", &std::any::type_name::<R>())
            .finish_non_exhaustive()
    }
}

impl<R: Resource> Api<R> {
    /// Typed access to kind `R` through `client`.
    pub fn new(client: Client) -> Self {
        Api {
            client,
            _kind: PhantomData,
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn own_path(obj: &R) -> Result<String> {
        let meta = obj.metadata();
        object_path::<R>(meta.namespace.as_deref(), &meta.name)
    }

    /// `GET` one object.
    pub async fn get(&self, namespace: Option<&str>, name: &str) -> Result<R> {
        let path = object_path::<R>(namespace, name)?;
        self.client.request_json(Method::GET, &path, None).await
    }

    /// `GET` the objects of one namespace, or of all namespaces (`None`), with the list
    /// revision.
    pub async fn list(&self, namespace: Option<&str>) -> Result<ObjectList<R>> {
        let path = collection_path::<R>(namespace);
        let raw: RawList<R> = self.client.request_json(Method::GET, &path, None).await?;
        Ok(ObjectList {
            items: raw.items,
            resource_version: raw.metadata.resource_version,
        })
    }

    /// `POST` a new object into its `metadata.namespace` (required for namespaced kinds).
    pub async fn create(&self, obj: &R) -> Result<R> {
        let meta = obj.metadata();
        if R::NAMESPACED && meta.namespace.as_deref().is_none_or(str::is_empty) {
            return Err(Error::InvalidRequest(format!(
                "{} '{}' needs a namespace",
                R::KIND,
                meta.name
            )));
        }
        let path = collection_path::<R>(meta.namespace.as_deref());
        self.client
            .request_json(Method::POST, &path, Some(krake_crds::json::to_vec(obj)))
            .await
    }

    /// Full-object `PUT` (spec, labels, owners, finalizers). When
    /// `metadata.resource_version` is set the update is conditional: a concurrent
    /// change gives [`Error::Conflict`].
    pub async fn update(&self, obj: &R) -> Result<R> {
        let path = Self::own_path(obj)?;
        self.client
            .request_json(Method::PUT, &path, Some(krake_crds::json::to_vec(obj)))
            .await
    }

    /// `PUT …/status`: replace the status (conditional like [`Api::update`]).
    pub async fn update_status(&self, obj: &R) -> Result<R> {
        if !R::HAS_STATUS {
            return Err(Error::InvalidRequest(format!("{} has no status", R::KIND)));
        }
        let path = format!("{}/status", Self::own_path(obj)?);
        self.client
            .request_json(Method::PUT, &path, Some(krake_crds::json::to_vec(obj)))
            .await
    }

    /// `DELETE` one object: marks it deleted (finalizers run), or with `force` removes
    /// it at once (Applications and Clusters only).
    pub async fn delete(&self, namespace: Option<&str>, name: &str, force: bool) -> Result<R> {
        let mut path = object_path::<R>(namespace, name)?;
        if force {
            path.push_str("?force=True");
        }
        self.client.request_json(Method::DELETE, &path, None).await
    }

    /// Watch one namespace or all namespaces (`None`). With `resource_version`, the
    /// server first replays every change after that revision; a revision older than the
    /// server's history ends the stream with [`Error::Gone`].
    ///
    /// The request is sent when the stream is first polled. The stream ends when the
    /// server closes it; transport errors (including [`WATCH_IDLE_TIMEOUT`] without
    /// even a heartbeat) end it after one `Err`. Undecodable lines yield an
    /// [`Error::Decode`] item and the stream goes on. Heartbeats (empty lines) are
    /// skipped.
    pub fn watch(
        &self,
        namespace: Option<&str>,
        resource_version: Option<&str>,
    ) -> BoxStream<'static, Result<WatchEvent<R>>> {
        let mut path = format!(
            "{}?watch&heartbeat={WATCH_HEARTBEAT_SECS}",
            collection_path::<R>(namespace)
        );
        if let Some(rv) = resource_version {
            path.push_str("&resource_version=");
            path.push_str(&segment(rv));
        }
        let state = WatchState::Connect {
            client: self.client.clone(),
            path,
        };
        stream::unfold(state, next_event::<R>).boxed()
    }
}

enum WatchState {
    Connect { client: Client, path: String },
    Reading { body: Incoming, buf: BytesMut },
    Done,
}

async fn next_event<R: Resource>(
    mut state: WatchState,
) -> Option<(Result<WatchEvent<R>>, WatchState)> {
    loop {
        match state {
            WatchState::Done => return None,
            WatchState::Connect { client, path } => match client.open_stream(&path).await {
                Ok(response) => {
                    state = WatchState::Reading {
                        body: response.into_body(),
                        buf: BytesMut::new(),
                    };
                }
                Err(err) => return Some((Err(err), WatchState::Done)),
            },
            WatchState::Reading { mut body, mut buf } => {
                if let Some(line) = take_line(&mut buf) {
                    let event = parse_watch_line::<R>(&line);
                    return Some((event, WatchState::Reading { body, buf }));
                }
                if buf.len() > MAX_LINE_BYTES {
                    return Some((
                        Err(Error::Decode(format!(
                            "watch line longer than {MAX_LINE_BYTES} bytes"
                        ))),
                        WatchState::Done,
                    ));
                }
                match tokio::time::timeout(WATCH_IDLE_TIMEOUT, body.frame()).await {
                    Err(_) => {
                        return Some((
                            Err(Error::Transport(format!(
                                "watch silent for {WATCH_IDLE_TIMEOUT:?} (no event, no heartbeat)"
                            ))),
                            WatchState::Done,
                        ));
                    }
                    Ok(None) => {
                        // End of stream: a last line without newline still counts.
                        let rest = buf.split().freeze();
                        if rest.iter().all(u8::is_ascii_whitespace) {
                            return None;
                        }
                        return Some((parse_watch_line::<R>(&rest), WatchState::Done));
                    }
                    Ok(Some(Err(err))) => {
                        return Some((
                            Err(Error::Transport(format!("watch stream: {err}"))),
                            WatchState::Done,
                        ));
                    }
                    Ok(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            buf.extend_from_slice(data.chunk());
                        }
                        state = WatchState::Reading { body, buf };
                    }
                }
            }
        }
    }
}

/// Remove and return the first non-empty line of `buf` (without its newline); empty
/// lines (heartbeats) are dropped.
fn take_line(buf: &mut BytesMut) -> Option<Bytes> {
    loop {
        let pos = buf.iter().position(|&b| b == b'\n')?;
        let mut line = buf.split_to(pos + 1).freeze();
        line.truncate(pos);
        if !line.iter().all(u8::is_ascii_whitespace) {
            return Some(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krake_crds::core::Role;
    use krake_crds::kubernetes::Application;

    #[test]
    fn paths() {
        assert_eq!(
            collection_path::<Application>(Some("ns1")),
            "/kubernetes/namespaces/ns1/applications"
        );
        assert_eq!(
            collection_path::<Application>(None),
            "/kubernetes/applications"
        );
        assert_eq!(collection_path::<Role>(Some("ignored")), "/core/roles");
        assert_eq!(
            object_path::<Application>(Some("ns1"), "a:b.c").unwrap(),
            "/kubernetes/namespaces/ns1/applications/a:b.c"
        );
        assert_eq!(
            object_path::<Application>(Some("ns"), "a/b?c").unwrap(),
            "/kubernetes/namespaces/ns/applications/a%2Fb%3Fc"
        );
        assert!(matches!(
            object_path::<Application>(None, "a"),
            Err(Error::InvalidRequest(_))
        ));
        assert_eq!(
            object_path::<Role>(Some("x"), "r").unwrap(),
            "/core/roles/r"
        );
    }

    #[test]
    fn lines_skip_heartbeats() {
        let mut buf = BytesMut::from(&b"\n\n{\"a\": 1}\n  \n{\"b\""[..]);
        assert_eq!(
            take_line(&mut buf).unwrap(),
            Bytes::from_static(b"{\"a\": 1}")
        );
        assert_eq!(take_line(&mut buf), None);
        assert_eq!(&buf[..], b"{\"b\"");
        buf.extend_from_slice(b": 2}\n");
        assert_eq!(
            take_line(&mut buf).unwrap(),
            Bytes::from_static(b"{\"b\": 2}")
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn parse_events() {
        let line = br#"{"type": "DELETED", "object": {"api": "core", "kind": "Role", "metadata": {"name": "r", "resource_version": "7"}, "rules": []}}"#;
        let event = parse_watch_line::<Role>(line).unwrap();
        assert!(matches!(event, WatchEvent::Deleted(_)));
        assert_eq!(event.resource_version(), Some("7"));
        assert_eq!(event.object().metadata.name, "r");

        let bad = br#"{"type": "UPDATED", "object": {}}"#;
        assert!(matches!(
            parse_watch_line::<Role>(bad),
            Err(Error::Decode(_))
        ));
    }
}
