//! The Krake API client: configuration, requests with retries, subresource calls.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request, Response};
use krake_crds::infrastructure::CloudBinding;
use krake_crds::kubernetes::{Application, Cluster, ClusterBinding, Complete, Shutdown};
use krake_crds::openstack::{MagnumCluster, MagnumClusterBinding};
use krake_crds::{Resource, ResourceRef};
use serde::de::DeserializeOwned;

use crate::api::{Api, object_path};
use crate::error::{Error, Result};
use crate::transport::{DEFAULT_TIMEOUT, Transport, TransportConfig};

/// First delay between two attempts of a failed request; doubled each time.
pub const RETRY_INITIAL_DELAY: Duration = Duration::from_millis(200);
/// Longest delay between two attempts of a failed request.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// How to reach the Krake API.
///
/// Build one with [`ClientConfig::new`] (or `..Default::default()`); nothing is read
/// before [`Client::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Base URL of the API (`http://localhost:8080`, `https://krake.example:8443`).
    pub api_url: String,
    /// CA bundle (PEM) trusted for the API server's certificate; the platform's roots
    /// when `None`.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for TLS client authentication; its common name is the
    /// Krake user (e.g. `system:scheduler`). Requires `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Time limit of one request (for watches: until the response headers arrive).
    pub timeout: Duration,
    /// Extra attempts after a transport error, time-out or 5xx answer (exponential
    /// backoff from [`RETRY_INITIAL_DELAY`] to [`RETRY_MAX_DELAY`]). 4xx answers are
    /// never retried. Watches are not retried (the reflector resumes them). A retried
    /// create whose first attempt did reach the server answers 409 (already exists).
    pub retries: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig::new("http://localhost:8080")
    }
}

impl ClientConfig {
    /// Plain configuration for `api_url`: platform roots, no client certificate, 30 s
    /// time limit, 3 retries.
    pub fn new(api_url: impl Into<String>) -> Self {
        ClientConfig {
            api_url: api_url.into(),
            ca: None,
            client_cert: None,
            client_key: None,
            timeout: DEFAULT_TIMEOUT,
            retries: 3,
        }
    }
}

struct Inner {
    transport: Transport,
    base: String,
    timeout: Duration,
    retries: u32,
}

/// A cheaply clonable client of the Krake API.
///
/// Typed access to every kind goes through [`Client::api`]; the binding subresources
/// and the application hooks have their own methods.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Build a client. Certificate files are read now: a missing, unreadable or invalid
    /// file, or a URL that is not `http(s)://host[:port][/path]`, is an
    /// [`Error::Config`].
    pub fn new(config: ClientConfig) -> Result<Self> {
        let base = config.api_url.trim_end_matches('/').to_string();
        let uri: hyper::Uri = base
            .parse()
            .map_err(|e| Error::Config(format!("invalid API URL {base:?}: {e}")))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => {
                return Err(Error::Config(format!(
                    "API URL {base:?} must start with http:// or https://"
                )));
            }
        }
        if uri.host().is_none() || uri.query().is_some() {
            return Err(Error::Config(format!("invalid API URL {base:?}")));
        }
        if uri.scheme_str() == Some("http") && config.client_cert.is_some() {
            tracing::warn!(url = %base, "client certificate configured for a plain HTTP API URL");
        }
        let transport = Transport::new(&TransportConfig {
            ca: config.ca,
            client_cert: config.client_cert,
            client_key: config.client_key,
            ..TransportConfig::default()
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                base,
                timeout: config.timeout,
                retries: config.retries,
            }),
        })
    }

    /// The API base URL (without trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    /// The underlying HTTP transport.
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// Typed access to kind `R`.
    pub fn api<R: Resource>(&self) -> Api<R> {
        Api::new(self.clone())
    }

    /// Send `method path` (path and query, starting with `/`) with an optional JSON
    /// body, retrying transport errors and 5xx answers, and decode the JSON answer.
    /// Error answers become the matching [`Error`] variant.
    pub async fn request_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T> {
        let body = body.map(Bytes::from);
        let mut delay = RETRY_INITIAL_DELAY;
        let mut attempt = 0;
        loop {
            let result = self.send_once(&method, path_and_query, body.clone()).await;
            match result {
                Err(err) if err.is_retryable() && attempt < self.inner.retries => {
                    attempt += 1;
                    tracing::debug!(
                        method = %method,
                        path = path_and_query,
                        attempt,
                        error = %err,
                        "request failed, retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX_DELAY);
                }
                Err(err) => return Err(err),
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes)
                        .map_err(|e| Error::decode(&format!("{method} {path_and_query}"), &e));
                }
            }
        }
    }

    fn build(
        &self,
        method: &Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(format!("{}{}", self.inner.base, path_and_query))
            .header(ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Error::InvalidRequest(format!("{method} {path_and_query}: {e}")))
    }

    async fn send_once(
        &self,
        method: &Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes> {
        let request = self.build(method, path_and_query, body)?;
        let response = self
            .inner
            .transport
            .send(request, self.inner.timeout)
            .await?;
        let status = response.status.as_u16();
        tracing::debug!(method = %method, path = path_and_query, status, "krake API request");
        if response.status.is_success() {
            Ok(response.body)
        } else {
            Err(Error::from_response(status, &response.body))
        }
    }

    /// Open a streaming `GET` (watch): returns once the headers arrived; error statuses
    /// are read and mapped to [`Error`]. Not retried.
    pub(crate) async fn open_stream(&self, path_and_query: &str) -> Result<Response<Incoming>> {
        let request = self.build(&Method::GET, path_and_query, None)?;
        let response = self
            .inner
            .transport
            .send_streaming(request, self.inner.timeout)
            .await?;
        let status = response.status();
        tracing::debug!(
            path = path_and_query,
            status = status.as_u16(),
            "krake API watch"
        );
        if status.is_success() {
            return Ok(response);
        }
        use http_body_util::BodyExt;
        let body = tokio::time::timeout(self.inner.timeout, response.into_body().collect())
            .await
            .map_err(|_| Error::Timeout(self.inner.timeout))?
            .map_err(|e| Error::Transport(e.to_string()))?
            .to_bytes();
        Err(Error::from_response(status.as_u16(), &body))
    }

    async fn put_subresource<R: Resource, B: serde::Serialize>(
        &self,
        namespace: &str,
        name: &str,
        subresource: &str,
        body: &B,
    ) -> Result<R> {
        let path = format!("{}/{subresource}", object_path::<R>(Some(namespace), name)?);
        self.request_json(Method::PUT, &path, Some(krake_crds::json::to_vec(body)))
            .await
    }

    /// `PUT …/applications/{name}/binding`: bind an Application to a Cluster.
    pub async fn bind_application(
        &self,
        namespace: &str,
        name: &str,
        cluster: ResourceRef,
    ) -> Result<Application> {
        let body = ClusterBinding {
            api: "kubernetes".into(),
            kind: "ClusterBinding".into(),
            cluster,
        };
        self.put_subresource::<Application, _>(namespace, name, "binding", &body)
            .await
    }

    /// `PUT …/clusters/{name}/binding`: bind a Cluster to a Cloud or GlobalCloud.
    pub async fn bind_cluster(
        &self,
        namespace: &str,
        name: &str,
        cloud: ResourceRef,
    ) -> Result<Cluster> {
        let body = CloudBinding {
            api: "infrastructure".into(),
            kind: "CloudBinding".into(),
            cloud,
        };
        self.put_subresource::<Cluster, _>(namespace, name, "binding", &body)
            .await
    }

    /// `PUT …/magnumclusters/{name}/binding`: bind a MagnumCluster to a Project and a
    /// Magnum template.
    pub async fn bind_magnum_cluster(
        &self,
        namespace: &str,
        name: &str,
        project: ResourceRef,
        template: impl Into<String>,
    ) -> Result<MagnumCluster> {
        let body = MagnumClusterBinding {
            api: "openstack".into(),
            kind: "MagnumClusterBinding".into(),
            project,
            template: template.into(),
        };
        self.put_subresource::<MagnumCluster, _>(namespace, name, "binding", &body)
            .await
    }

    /// `PUT …/applications/{name}/complete` with the application's complete-hook token.
    pub async fn complete(&self, namespace: &str, name: &str, token: &str) -> Result<Application> {
        let body = Complete {
            api: "kubernetes".into(),
            kind: "Complete".into(),
            token: Some(token.to_string()),
        };
        self.put_subresource::<Application, _>(namespace, name, "complete", &body)
            .await
    }

    /// `PUT …/applications/{name}/shutdown` with the application's shutdown-hook token.
    pub async fn shutdown(&self, namespace: &str, name: &str, token: &str) -> Result<Application> {
        let body = Shutdown {
            api: "kubernetes".into(),
            kind: "Shutdown".into(),
            token: Some(token.to_string()),
        };
        self.put_subresource::<Application, _>(namespace, name, "shutdown", &body)
            .await
    }

    /// `PUT …/applications/{name}/retry`: retry the migration or deletion of a DEGRADED
    /// application.
    pub async fn retry(&self, namespace: &str, name: &str) -> Result<Application> {
        self.put_subresource::<Application, _>(namespace, name, "retry", &serde_json::json!({}))
            .await
    }
}
