//! The listener: plain HTTP or TLS (HTTP/2 and HTTP/1.1), each connection's client
//! certificate identity attached to its requests, and stopping and restarting on the same
//! address, which is how a member cluster becomes unreachable (connection refused) and
//! comes back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::auth::{PeerUser, common_name};
use crate::error::{Error, Result};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

struct Running {
    stop: CancellationToken,
}

/// A server on a fixed address that can stop and start listening.
pub struct Server {
    addr: SocketAddr,
    app: axum::Router,
    tls: Option<Arc<ServerConfig>>,
    running: Mutex<Option<Running>>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Bind `addr` (port 0: any free port) and start serving `app`.
    pub async fn start(
        addr: SocketAddr,
        app: axum::Router,
        tls: Option<Arc<ServerConfig>>,
    ) -> Result<Self> {
        let listener = bind(addr).await?;
        let addr = listener.local_addr().map_err(|source| Error::Io {
            what: "local address".into(),
            source,
        })?;
        let server = Server {
            addr,
            app,
            tls,
            running: Mutex::new(None),
            tasks: TaskTracker::new(),
        };
        server.serve(listener).await;
        Ok(server)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server is listening.
    pub async fn is_listening(&self) -> bool {
        self.running.lock().await.is_some()
    }

    async fn serve(&self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let app = self.app.clone();
        let acceptor = self.tls.clone().map(TlsAcceptor::from);
        let tasks = self.tasks.clone();
        let token = stop.clone();
        self.tasks.spawn(async move {
            let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
            loop {
                let (stream, peer) = tokio::select! {
                    _ = token.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    },
                };
                let _ = stream.set_nodelay(true);
                let builder = builder.clone();
                let app = app.clone();
                let acceptor = acceptor.clone();
                let token = token.clone();
                tasks.spawn(async move {
                    let served = async {
                        match acceptor {
                            None => {
                                let service = with_peer(app, PeerUser(None));
                                builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .await
                            }
                            Some(acceptor) => {
                                let stream = match tokio::time::timeout(
                                    HANDSHAKE_TIMEOUT,
                                    acceptor.accept(stream),
                                )
                                .await
                                {
                                    Ok(Ok(s)) => s,
                                    Ok(Err(e)) => {
                                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                        return Ok(());
                                    }
                                    Err(_) => return Ok(()),
                                };
                                let user = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .and_then(|c| common_name(c));
                                let service = with_peer(app, PeerUser(user));
                                builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .await
                            }
                        }
                    };
                    // Stopping cuts every connection at once, as a vanished host would.
                    tokio::select! {
                        _ = token.cancelled() => {}
                        result = served => if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    }
                });
            }
        });
        *self.running.lock().await = Some(Running { stop });
    }

    /// Stop listening and cut every open connection: clients get "connection refused".
    pub async fn stop_listening(&self) {
        if let Some(running) = self.running.lock().await.take() {
            running.stop.cancel();
        }
        // The accept loop and the connections end promptly once cancelled.
        self.wait_idle().await;
    }

    async fn wait_idle(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        self.tasks.reopen();
    }

    /// Listen again on the same address.
    pub async fn start_listening(&self) -> Result<()> {
        if self.is_listening().await {
            return Ok(());
        }
        let listener = bind(self.addr).await?;
        self.serve(listener).await;
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    // The port was ours a moment ago; a restart may race the kernel's cleanup briefly.
    let mut attempt = 0;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if attempt < 50 && e.kind() == std::io::ErrorKind::AddrInUse => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(source) => {
                return Err(Error::Io {
                    what: format!("bind {addr}"),
                    source,
                });
            }
        }
    }
}

fn with_peer(
    app: axum::Router,
    peer: PeerUser,
) -> TowerToHyperService<
    tower::util::MapRequest<
        axum::Router,
        impl FnMut(Request<Incoming>) -> Request<Incoming> + Clone,
    >,
> {
    TowerToHyperService::new(app.map_request(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        request
    }))
}
