//! The watch protocol of upstream Krake: NDJSON event lines on a chunked response,
//! empty-line heartbeats, plus our resumption extension `?watch&resource_version=N`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use krake_crds::Resource;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::state::AppState;
use crate::auth::NamespaceScope;
use crate::conn::ConnectionHandle;
use crate::error::Error;
use crate::storage::WatchStream;
use crate::watch_cache::{CachedEvent, Renderer, Subscription};

/// Validated query parameters of a watch request.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// Heartbeat interval; `None` disables heartbeats.
    pub heartbeat: Option<Duration>,
    /// Replay changes after this revision.
    pub resource_version: Option<i64>,
}

enum Source {
    /// `after`: the client already has every change up to this revision (the cache may
    /// lag behind the store the client listed from, so live events can be older).
    Cache {
        replay: std::vec::IntoIter<Arc<CachedEvent>>,
        live: broadcast::Receiver<Arc<CachedEvent>>,
        after: i64,
    },
    Store {
        stream: WatchStream,
        render: Renderer,
    },
}

impl Source {
    /// The next event; `Ok(None)` ends the stream (broken watch), `Err(TooSlow)` too (a
    /// watcher too slow to keep up, which must re-list).
    async fn next(&mut self) -> Result<Option<Arc<CachedEvent>>, TooSlow> {
        match self {
            Source::Cache {
                replay,
                live,
                after,
            } => loop {
                if let Some(event) = replay.next() {
                    return Ok(Some(event));
                }
                match live.recv().await {
                    Ok(e) if e.revision <= *after => continue,
                    Ok(e) => return Ok(Some(e)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::info!(missed = n, "disconnecting a watcher that fell behind");
                        return Err(TooSlow);
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(None),
                }
            },
            Source::Store { stream, render } => loop {
                let Some(item) = stream.next().await else {
                    return Ok(None);
                };
                match item {
                    Ok(event) => match render(&event) {
                        Ok(Some(e)) => return Ok(Some(Arc::new(e))),
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::error!(error = %e, "undecodable stored object in watch");
                            continue;
                        }
                    },
                    Err(e) => {
                        tracing::info!(error = %e, "storage watch ended");
                        return Ok(None);
                    }
                }
            },
        }
    }
}

/// A watcher that cannot keep up: its response is cut off, not ended.
struct TooSlow;

/// Hand a chunk to the response body; `Ok(false)` when the client is gone or the server
/// is shutting down, `Err(TooSlow)` when the client stopped reading for longer than
/// `patience`.
async fn deliver(
    tx: &mpsc::Sender<Bytes>,
    shutdown: &tokio_util::sync::CancellationToken,
    patience: Duration,
    chunk: Bytes,
) -> Result<bool, TooSlow> {
    tokio::select! {
        sent = tokio::time::timeout(patience, tx.send(chunk)) => match sent {
            Ok(sent) => Ok(sent.is_ok()),
            Err(_) => {
                tracing::info!("disconnecting a watcher that stopped reading");
                Err(TooSlow)
            }
        },
        _ = shutdown.cancelled() => Ok(false),
    }
}

/// Cut off the response of a watcher too slow to keep up. Ending it normally would leave
/// its unsent events queued for as long as the client holds the connection: the body
/// fails instead (HTTP/2 resets the stream when it next polls the body) and, over
/// HTTP/1.1 or when an HTTP/2 client does not even take the reset within `patience`,
/// the connection is closed, which frees everything queued for it.
async fn cut_off(
    cut: &tokio_util::sync::CancellationToken,
    body_gone: oneshot::Receiver<()>,
    connection: Option<&ConnectionHandle>,
    shutdown: &tokio_util::sync::CancellationToken,
    patience: Duration,
) {
    cut.cancel();
    let Some(connection) = connection else {
        return;
    };
    if connection.version() == axum::http::Version::HTTP_2 {
        tokio::select! {
            _ = body_gone => return,
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(patience) => {}
        }
    }
    connection.close();
}

/// The response body of a watch: the chunks of `rx`, failing once `cut` is cancelled.
/// `_gone` tells the watch task when hyper dropped the body.
fn watch_body(
    mut rx: mpsc::Receiver<Bytes>,
    cut: tokio_util::sync::CancellationToken,
    gone: oneshot::Sender<()>,
) -> Body {
    use std::future::Future;
    let mut failed = false;
    let mut cancelled = Box::pin(cut.cancelled_owned());
    let stream = futures::stream::poll_fn(move |cx| {
        let _gone = &gone;
        if failed {
            return std::task::Poll::Ready(None);
        }
        if cancelled.as_mut().poll(cx).is_ready() {
            failed = true;
            return std::task::Poll::Ready(Some(Err(std::io::Error::other(
                "watcher too slow: response cut off",
            ))));
        }
        rx.poll_recv(cx).map(|chunk| chunk.map(Ok))
    });
    Body::from_stream(stream)
}

/// Open a watch on kind `R` (optionally one namespace), delivering only objects whose
/// namespace is in `scope` (fixed for the watcher's lifetime). Headers are only sent once
/// the watch is established, so a client that got them cannot miss a later write.
pub async fn watch<R: Resource>(
    state: AppState,
    namespace: Option<String>,
    scope: NamespaceScope,
    options: WatchOptions,
    connection: Option<ConnectionHandle>,
) -> Result<Response, Error> {
    let cache = state.cache::<R>()?.clone();
    cache.wait_established(Duration::from_secs(5)).await?;
    // One store round trip per watch: the start point, and the bound of a resume point.
    let current = state.store.current_revision().await?;
    if let Some(requested) = options.resource_version
        && requested > current
    {
        // A revision the store has not reached yet was not handed out by it (another
        // store, a restored backup, a made-up number): replaying "after" it would
        // silently drop every change up to it.
        return Err(Error::ResourceVersionTooLarge { requested, current });
    }
    // Without a resource_version the watch starts at the store's revision, not at the
    // cache's: a write acknowledged before the watch began, which the cache may not have
    // received yet, is not an event of this watch.
    let after = options.resource_version.unwrap_or(current);
    let source = match cache.subscribe(Some(after)) {
        Subscription::Cached { mut replay, live } => {
            replay.retain(|e| {
                (namespace.is_none() || e.namespace == namespace)
                    && scope.contains(e.namespace.as_deref())
            });
            Source::Cache {
                replay: replay.into_iter(),
                live,
                after,
            }
        }
        Subscription::TooOld => {
            let from = after + 1;
            let stream = state
                .store
                .watch(cache.prefix(), Some(from))
                .await
                .map_err(|e| match e {
                    Error::Compacted { oldest, .. } => Error::Compacted {
                        requested: from - 1,
                        oldest,
                    },
                    other => other,
                })?;
            Source::Store {
                stream,
                render: cache.renderer().clone(),
            }
        }
    };

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let cut = tokio_util::sync::CancellationToken::new();
    let (gone_tx, body_gone) = oneshot::channel();
    let shutdown = state.shutdown.clone();
    let metrics = state.metrics.clone();
    let patience = state.config.watch_send_timeout;
    metrics.open_watchers.inc();
    let body = watch_body(rx, cut.clone(), gone_tx);
    tokio::spawn(async move {
        let mut source = source;
        let mut heartbeat = options
            .heartbeat
            .map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
        let ending: Result<(), TooSlow> = loop {
            let next_beat = async {
                match heartbeat.as_mut() {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break Ok(()),
                _ = tx.closed() => break Ok(()),
                _ = next_beat => {
                    match deliver(&tx, &shutdown, patience, Bytes::from_static(b"\n")).await {
                        Ok(true) => {}
                        Ok(false) => break Ok(()),
                        Err(slow) => break Err(slow),
                    }
                }
                event = source.next() => {
                    let event = match event {
                        Ok(Some(event)) => event,
                        Ok(None) => break Ok(()),
                        Err(slow) => break Err(slow),
                    };
                    if (namespace.is_some() && event.namespace != namespace)
                        || !scope.contains(event.namespace.as_deref())
                    {
                        continue;
                    }
                    match deliver(&tx, &shutdown, patience, event.line.clone()).await {
                        Ok(true) => {}
                        Ok(false) => break Ok(()),
                        Err(slow) => break Err(slow),
                    }
                }
            }
        };
        metrics.open_watchers.dec();
        drop(source);
        if ending.is_err() {
            cut_off(&cut, body_gone, connection.as_ref(), &shutdown, patience).await;
        }
        // Dropping the sender last wakes the body, which then sees the cut.
        drop(tx);
    });

    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}
