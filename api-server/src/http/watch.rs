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
use tokio::sync::{broadcast, mpsc};

use super::state::AppState;
use crate::auth::NamespaceScope;
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
    /// The next event; `None` ends the stream (broken watch, or a watcher too slow to
    /// keep up, which must re-list).
    async fn next(&mut self) -> Option<Arc<CachedEvent>> {
        match self {
            Source::Cache {
                replay,
                live,
                after,
            } => loop {
                if let Some(event) = replay.next() {
                    return Some(event);
                }
                match live.recv().await {
                    Ok(e) if e.revision <= *after => continue,
                    Ok(e) => return Some(e),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::info!(missed = n, "disconnecting a watcher that fell behind");
                        return None;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
            Source::Store { stream, render } => loop {
                match stream.next().await? {
                    Ok(event) => match render(&event) {
                        Ok(Some(e)) => return Some(Arc::new(e)),
                        Ok(None) => continue,
                        Err(e) => {
                            tracing::error!(error = %e, "undecodable stored object in watch");
                            continue;
                        }
                    },
                    Err(e) => {
                        tracing::info!(error = %e, "storage watch ended");
                        return None;
                    }
                }
            },
        }
    }
}

/// Hand a chunk to the response body; `false` when the client is gone, stopped reading
/// for longer than `patience`, or the server is shutting down.
async fn deliver(
    tx: &mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
    shutdown: &tokio_util::sync::CancellationToken,
    patience: Duration,
    chunk: Bytes,
) -> bool {
    tokio::select! {
        sent = tokio::time::timeout(patience, tx.send(Ok(chunk))) => match sent {
            Ok(sent) => sent.is_ok(),
            Err(_) => {
                tracing::info!("disconnecting a watcher that stopped reading");
                false
            }
        },
        _ = shutdown.cancelled() => false,
    }
}

/// Open a watch on kind `R` (optionally one namespace), delivering only objects whose
/// namespace is in `scope` (fixed for the watcher's lifetime). Headers are only sent once
/// the watch is established, so a client that got them cannot miss a later write.
pub async fn watch<R: Resource>(
    state: AppState,
    namespace: Option<String>,
    scope: NamespaceScope,
    options: WatchOptions,
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

    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    let shutdown = state.shutdown.clone();
    let metrics = state.metrics.clone();
    let patience = state.config.watch_send_timeout;
    metrics.open_watchers.inc();
    tokio::spawn(async move {
        let mut source = source;
        let mut heartbeat = options
            .heartbeat
            .map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
        loop {
            let next_beat = async {
                match heartbeat.as_mut() {
                    Some(i) => {
                        i.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tx.closed() => break,
                _ = next_beat => {
                    if !deliver(&tx, &shutdown, patience, Bytes::from_static(b"\n")).await {
                        break;
                    }
                }
                event = source.next() => {
                    let Some(event) = event else { break };
                    if (namespace.is_some() && event.namespace != namespace)
                        || !scope.contains(event.namespace.as_deref())
                    {
                        continue;
                    }
                    if !deliver(&tx, &shutdown, patience, event.line.clone()).await {
                        break;
                    }
                }
            }
        }
        metrics.open_watchers.dec();
    });

    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}
