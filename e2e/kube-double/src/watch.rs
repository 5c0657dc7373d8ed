//! Watch streams: one JSON event per line (`{"type","object"}`), from a resourceVersion
//! (replayed from the store's history) or from now (after ADDED events for the current
//! objects), label/field selectors with the transitions a real server reports (an object
//! leaving the selection is DELETED), periodic BOOKMARKs when asked, the in-stream 410
//! `Expired` ERROR event for a compacted version, and the end after `timeoutSeconds`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::error::{Error, Reason};
use crate::kinds::Kind;
use crate::select::Filter;
use crate::store::{Change, ChangeType, Store};

/// What a watch request asks for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// The kind.
    pub kind: Arc<Kind>,
    /// The version the client uses (objects are rendered in it).
    pub version: String,
    /// The namespace, `None` for all.
    pub namespace: Option<String>,
    /// Selectors.
    pub filter: Filter,
    /// `resourceVersion`: `None` or 0 = from now, with the current objects first.
    pub resource_version: Option<u64>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`: current objects, then a bookmark marking their end.
    pub send_initial_events: bool,
    /// When the stream ends.
    pub timeout: Duration,
    /// Time between bookmarks.
    pub bookmark_interval: Duration,
}

struct State {
    request: WatchRequest,
    pending: VecDeque<Bytes>,
    receiver: Option<broadcast::Receiver<Arc<Change>>>,
    deadline: Instant,
    next_bookmark: Instant,
    last_rv: u64,
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn expired(requested: u64, oldest: u64) -> Bytes {
    let status = Error::status(
        Reason::Expired,
        format!("too old resource version: {requested} ({oldest})"),
    )
    .to_status();
    line("ERROR", &status)
}

impl State {
    fn render(&self, object: &Value) -> Value {
        let mut o = object.clone();
        o["apiVersion"] = json!(self.request.kind.api_version(&self.request.version));
        o
    }

    fn in_scope(&self, change: &Change) -> bool {
        let k = &self.request.kind;
        change.key.group == k.group
            && change.key.plural == k.plural
            && self
                .request
                .namespace
                .as_deref()
                .is_none_or(|ns| !k.namespaced || change.key.namespace == ns)
    }

    fn event(&self, change: &Change) -> Option<Bytes> {
        if !self.in_scope(change) {
            return None;
        }
        let matches = |o: &Value| self.request.filter.matches(o);
        let now = matches(&change.object);
        let kind = match change.change {
            ChangeType::Added => now.then_some("ADDED"),
            ChangeType::Deleted => now.then_some("DELETED"),
            ChangeType::Modified => {
                let before = change.previous.as_ref().is_some_and(matches);
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(line(kind, &self.render(&change.object)))
    }

    fn bookmark(&self, initial_events_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            "BOOKMARK",
            &json!({
                "kind": self.request.kind.kind,
                "apiVersion": self.request.kind.api_version(&self.request.version),
                "metadata": metadata,
            }),
        )
    }

    async fn next(&mut self) -> Option<Bytes> {
        if let Some(l) = self.pending.pop_front() {
            return Some(l);
        }
        loop {
            let receiver = self.receiver.as_mut()?;
            let bookmark_at = if self.request.bookmarks {
                self.next_bookmark
            } else {
                self.deadline
            };
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = tokio::time::sleep_until(bookmark_at), if self.request.bookmarks => {
                    self.next_bookmark = Instant::now() + self.request.bookmark_interval;
                    return Some(self.bookmark(false));
                }
                received = receiver.recv() => match received {
                    Ok(change) => {
                        if change.rv <= self.last_rv {
                            continue;
                        }
                        self.last_rv = change.rv;
                        if let Some(l) = self.event(&change) {
                            return Some(l);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow a reader: its history is gone, as after a compaction.
                        self.receiver = None;
                        return Some(expired(self.last_rv, self.last_rv + 1));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

/// The body of a watch response.
pub fn stream(store: &Store, request: WatchRequest) -> axum::body::Body {
    let now = Instant::now();
    let mut state = State {
        deadline: now + request.timeout,
        next_bookmark: now + request.bookmark_interval,
        pending: VecDeque::new(),
        receiver: None,
        last_rv: 0,
        request,
    };
    let from = state.request.resource_version.filter(|rv| *rv > 0);
    match from {
        Some(rv) if !state.request.send_initial_events => match store.watch_from(Some(rv)) {
            Ok((backlog, receiver)) => {
                state.last_rv = rv;
                for change in backlog {
                    state.last_rv = change.rv;
                    if let Some(l) = state.event(&change) {
                        state.pending.push_back(l);
                    }
                }
                state.receiver = Some(receiver);
            }
            Err(too_old) => {
                state
                    .pending
                    .push_back(expired(too_old.requested, too_old.oldest));
            }
        },
        _ => {
            let (items, rv, receiver) =
                store.snapshot(&state.request.kind, state.request.namespace.as_deref());
            state.last_rv = rv;
            for item in items.iter().filter(|o| state.request.filter.matches(o)) {
                let rendered = state.render(item);
                state.pending.push_back(line("ADDED", &rendered));
            }
            if state.request.send_initial_events {
                state.pending.push_back(state.bookmark(true));
            }
            state.receiver = Some(receiver);
        }
    }
    let events = futures::stream::unfold(state, |mut state| async move {
        state.next().await.map(|l| (Ok::<_, Infallible>(l), state))
    });
    axum::body::Body::from_stream(events)
}
