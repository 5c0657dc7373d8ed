//! Client connections: accepting them within a bound, serving them with time limits on
//! what a client may hold without making progress, and draining them on shutdown within
//! a bounded time.
//!
//! A connection is always in one of three phases: *receiving* a request's headers (from
//! its acceptance, or from the first byte after an idle period), *waiting* for the next
//! request (keep-alive), or *busy* (at least one request or response body in flight). A
//! supervisor next to each connection closes it when the header-read time of a receiving
//! connection or the idle time of a waiting one runs out; busy connections are bounded by
//! the request and body time limits and, for watches, by the watch cache. The phases are
//! tracked for HTTP/1.1 and HTTP/2 alike, which hyper's own header timer (HTTP/1.1 only,
//! and running while a keep-alive connection waits) cannot do.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode, Version};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::wire::ProblemIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::auth::PeerCommonName;

/// Connections being refused at once (503 and close); beyond, an excess connection is
/// closed without an answer, so that refusing never takes many descriptors itself.
const MAX_REFUSING: usize = 64;

/// Time limit of one refusal (TLS handshake, reading the request, writing the 503).
const REFUSAL_TIME: Duration = Duration::from_secs(5);

/// How long a connection and its clients may take, and how many there may be.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From acceptance (TLS handshake included) or the first byte of a request, until its
    /// headers are complete.
    pub header_read: Duration,
    /// Keep-alive time without any request.
    pub idle: Duration,
    /// How long a shutdown waits for requests before closing what remains.
    pub drain: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// The answer to connections beyond `max_connections`: headers (a problem document's
    /// content type, `Retry-After`) and body.
    pub refusal: (HeaderMap, Bytes),
    /// The problem body of hyper's own error responses (bad framing, 414, 431).
    pub render_problem: crate::wire::RenderProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Receiving { since: Instant },
    Waiting { since: Instant },
    Busy,
}

/// What the supervisor of one connection knows about it.
struct ConnState {
    /// Requests whose response has not been fully sent (or dropped) yet.
    in_flight: AtomicUsize,
    phase: Mutex<Phase>,
    changed: Notify,
    close: CancellationToken,
    /// Once a connection spoke HTTP/2, bytes while idle (pings, settings) do not start a
    /// request: only the idle time applies.
    http2: AtomicBool,
}

impl ConnState {
    fn new(accepted: Instant) -> Arc<Self> {
        Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            phase: Mutex::new(Phase::Receiving { since: accepted }),
            changed: Notify::new(),
            close: CancellationToken::new(),
            http2: AtomicBool::new(false),
        })
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        // The critical sections cannot panic; a poisoned lock still holds a valid phase.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request_started(self: &Arc<Self>, version: Version) -> InFlight {
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        let mut phase = self.phase();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        *phase = Phase::Busy;
        drop(phase);
        self.changed.notify_one();
        InFlight(self.clone())
    }

    fn bytes_received(&self) {
        if self.in_flight.load(Ordering::Relaxed) > 0 || self.http2.load(Ordering::Relaxed) {
            return;
        }
        let mut phase = self.phase();
        if let Phase::Waiting { .. } = *phase {
            *phase = Phase::Receiving {
                since: Instant::now(),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// Resolves when the connection has been receiving or waiting for too long.
    async fn expired(&self, limits: &Limits) -> &'static str {
        loop {
            let phase = *self.phase();
            let deadline = match phase {
                Phase::Busy => None,
                Phase::Receiving { since } => Some((since + limits.header_read, "header read")),
                Phase::Waiting { since } => Some((since + limits.idle, "idle")),
            };
            match deadline {
                None => self.changed.notified().await,
                Some((at, why)) => {
                    tokio::select! {
                        _ = self.changed.notified() => {}
                        _ = tokio::time::sleep_until(at) => {
                            if *self.phase() == phase {
                                return why;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One request in flight on a connection, until its response body is done or dropped.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            *phase = Phase::Waiting {
                since: Instant::now(),
            };
        }
        drop(phase);
        self.0.changed.notify_one();
    }
}

/// The connection a request came on, in the request's extensions.
#[derive(Clone)]
pub struct ConnectionHandle {
    state: Arc<ConnState>,
    version: Version,
}

impl ConnectionHandle {
    /// The HTTP version of the request.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Close the connection now, with whatever it still has to send: the only way to
    /// free a response a client stopped reading (the bytes are queued below the body, out
    /// of the handler's reach).
    pub fn close(&self) {
        tracing::debug!("closing the connection of a dropped response");
        self.state.close.cancel();
    }
}

/// A response body that keeps its request in flight until it is done.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The accepted stream, telling the supervisor when bytes arrive.
struct Tracked<S> {
    inner: S,
    state: Arc<ConnState>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_received();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accept connections until `shutdown`, within `limits.max_connections`; then let open
/// connections finish their requests (watch streams end on the same token) for at most
/// `limits.drain`, close what remains and return.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The supervisor bounds header reading for both protocols (see the module comment).
    builder.http1().header_read_timeout(None);
    builder.http2().enable_connect_protocol();
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let tasks = TaskTracker::new();
    // Cancelled when the drain time is over: every connection closes at once.
    let force = CancellationToken::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let accepted = Instant::now();
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let connection = Connection {
                    app: app.clone(),
                    builder: builder.clone(),
                    limits: limits.clone(),
                    shutdown: shutdown.clone(),
                    force: force.clone(),
                    peer,
                    accepted,
                };
                let tls = tls.clone();
                tasks.spawn(async move {
                    connection.run(stream, tls).await;
                    drop(slot);
                });
            }
            Err(_) => match refusing.clone().try_acquire_owned() {
                Ok(permit) => {
                    tracing::warn!(%peer, max = limits.max_connections, "too many connections: refusing one");
                    let refusal = limits.refusal.clone();
                    let tls = tls.clone();
                    let force = force.clone();
                    tasks.spawn(async move {
                        tokio::select! {
                            _ = tokio::time::timeout(REFUSAL_TIME, refuse(stream, tls, refusal)) => {}
                            _ = force.cancelled() => {}
                        }
                        drop(permit);
                    });
                }
                Err(_) => {
                    tracing::warn!(%peer, "too many connections: closing one without an answer");
                    drop(stream);
                }
            },
        }
    }
    drop(listener);
    tasks.close();
    if tokio::time::timeout(limits.drain, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tasks.len(),
            drain = ?limits.drain,
            "shutdown drain time is over: closing the remaining connections"
        );
        force.cancel();
        tasks.wait().await;
    }
    Ok(())
}

/// One accepted connection and what serving it needs.
struct Connection {
    app: axum::Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
    force: CancellationToken,
    peer: SocketAddr,
    accepted: Instant,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let state = ConnState::new(self.accepted);
        match tls {
            None => {
                self.serve(
                    Tracked {
                        inner: stream,
                        state: state.clone(),
                    },
                    state,
                    PeerCommonName(None),
                )
                .await
            }
            Some(acceptor) => {
                // The handshake counts toward the time to send the first request's headers.
                let deadline = self.accepted + self.limits.header_read;
                let stream = tokio::select! {
                    // Stopping: a connection without a finished handshake has no requests.
                    _ = self.shutdown.cancelled() => return,
                    result = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => match result {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                            return;
                        }
                    },
                };
                let user = crate::tls::peer_common_name(stream.get_ref().1);
                self.serve(
                    Tracked {
                        inner: stream,
                        state: state.clone(),
                    },
                    state,
                    PeerCommonName(user),
                )
                .await
            }
        }
    }

    async fn serve<S>(self, io: Tracked<S>, state: Arc<ConnState>, user: PeerCommonName)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let service = {
            let state = state.clone();
            let app = self.app.clone();
            TowerToHyperService::new(tower::service_fn(move |mut request: Request<Incoming>| {
                let version = request.version();
                let in_flight = state.request_started(version);
                request.extensions_mut().insert(user.clone());
                request.extensions_mut().insert(ConnectionHandle {
                    state: state.clone(),
                    version,
                });
                let response = app.clone().oneshot(request);
                async move {
                    let response = response.await?;
                    Ok::<_, Infallible>(response.map(|inner| TrackedBody {
                        inner,
                        _in_flight: in_flight,
                    }))
                }
            }))
        };
        let connection = self.builder.serve_connection_with_upgrades(
            TokioIo::new(ProblemIo::new(io, self.limits.render_problem)),
            service,
        );
        tokio::pin!(connection);
        let mut stopping = false;
        let outcome = loop {
            tokio::select! {
                result = connection.as_mut() => break result.err().map(|e| e.to_string()),
                _ = self.shutdown.cancelled(), if !stopping => {
                    // Idle connections close, busy ones after their current requests.
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = state.close.cancelled() => break Some("closed by the server".into()),
                _ = self.force.cancelled() => break Some("shutdown drain time over".into()),
                why = state.expired(&self.limits) => break Some(format!("{why} time over")),
            }
        };
        if let Some(reason) = outcome {
            tracing::debug!(peer = %self.peer, %reason, "connection ended");
        }
    }
}

/// Answer every request of an excess connection with the refusal (503, `Retry-After`)
/// and close it after the first answer.
async fn refuse(stream: TcpStream, tls: Option<TlsAcceptor>, refusal: (HeaderMap, Bytes)) {
    let answered = Arc::new(Notify::new());
    let service = {
        let answered = answered.clone();
        TowerToHyperService::new(tower::service_fn(move |_: Request<Incoming>| {
            answered.notify_one();
            let (headers, body) = refusal.clone();
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            *response.headers_mut() = headers;
            std::future::ready(Ok::<_, Infallible>(response))
        }))
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(false);
    match tls {
        None => serve_refusal(&builder, TokioIo::new(stream), service, &answered).await,
        Some(acceptor) => {
            if let Ok(stream) = acceptor.accept(stream).await {
                serve_refusal(&builder, TokioIo::new(stream), service, &answered).await;
            }
        }
    }
}

async fn serve_refusal<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    answered: &Notify,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        // HTTP/2 keeps a connection open after an answer: ask it to go away.
        _ = answered.notified() => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// Errors of `accept` other than a dropped connection (e.g. too many open files) are
/// logged, and accepting pauses briefly instead of spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept connections");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A request body that fails once its deadline is over, recording that it did: the
/// request is then answered 408 instead of whatever its handler made of the failure.
pub struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    /// `inner`, failing after `deadline`; `expired` is set when it does.
    pub fn new(inner: Body, deadline: Instant, expired: Arc<AtomicBool>) -> Self {
        DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            expired,
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body not received in time",
            )))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
