//! Reading a streaming watch response line by line.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// How long a watch event may take to arrive.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One line read from a watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Text(String),
    Timeout,
    End,
}

/// A streaming watch response.
pub struct Watch {
    pub status: StatusCode,
    pub headers: HeaderMap,
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: Vec<u8>,
    ended: bool,
}

impl Watch {
    /// Read the body of `response` as a watch stream.
    pub fn new(response: reqwest::Response) -> Watch {
        Watch {
            status: response.status(),
            headers: response.headers().clone(),
            stream: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
            ended: false,
        }
    }

    /// The next line (without its `\n`; empty for a heartbeat).
    pub async fn next_line(&mut self, timeout: Duration) -> Line {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                return Line::Text(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            }
            if self.ended {
                return Line::End;
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Line::Timeout,
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(Some(Err(_))) | Ok(None) => self.ended = true,
            }
        }
    }

    /// The next event (heartbeat lines skipped), parsed; panics on timeout or end.
    pub async fn next_event(&mut self) -> Value {
        loop {
            match self.next_line(EVENT_TIMEOUT).await {
                Line::Text(t) if t.is_empty() => continue,
                Line::Text(t) => {
                    return serde_json::from_str(&t)
                        .unwrap_or_else(|e| panic!("watch line is not JSON ({e}): {t}"));
                }
                other => panic!("expected a watch event, got {other:?}"),
            }
        }
    }

    /// The next event, which must be of `event_type` for object `name`; its object.
    pub async fn expect(&mut self, event_type: &str, name: &str) -> Value {
        let event = self.next_event().await;
        assert_eq!(event["type"], event_type, "unexpected event: {event}");
        assert_eq!(
            event["object"]["metadata"]["name"], name,
            "unexpected event: {event}"
        );
        event["object"].clone()
    }

    /// No event (heartbeats allowed) arrives within `period`.
    pub async fn expect_quiet(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_line(left).await {
                Line::Text(t) if t.is_empty() => continue,
                Line::Text(t) => panic!("unexpected watch event: {t}"),
                Line::Timeout => return,
                Line::End => panic!("the watch stream ended"),
            }
        }
    }
}
