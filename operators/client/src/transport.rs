//! A small HTTP(S) client: hyper-util's pooled client over hyper-rustls (ring provider),
//! HTTP/1.1 and HTTP/2, trust in the platform's roots or in a configured CA bundle, an
//! optional client certificate for TLS client authentication, and a time limit per
//! request.
//!
//! [`crate::Client`] talks to the Krake API through it; other components (e.g. the
//! scheduler's metrics providers) can use it directly for plain JSON calls:
//!
//! ```no_run
//! # async fn example() -> Result<(), krake_client::Error> {
//! use std::time::Duration;
//! use krake_client::transport::{Transport, TransportConfig};
//!
//! let http = Transport::new(&TransportConfig::default())?;
//! let response = http
//!     .get_json("http://prometheus:9090/api/v1/query?query=up", Duration::from_secs(20))
//!     .await?;
//! if response.status.is_success() {
//!     let value: serde_json::Value = response.json()?;
//!     # let _ = value;
//! }
//! # Ok(()) }
//! ```
//!
//! Every rustls object is built with an explicit `ring` provider; no process-wide
//! default provider is installed or relied upon. Key material is never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Default time limit of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default largest response body read into memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024 * 1024;

/// How a [`Transport`] connects.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// CA bundle (PEM) trusted for server certificates; the platform's roots when `None`.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for TLS client authentication; requires
    /// `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Time limit for establishing a TCP connection.
    pub connect_timeout: Duration,
    /// Largest response body read by [`Transport::send`].
    pub max_body_bytes: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            ca: None,
            client_cert: None,
            client_key: None,
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// A fully read HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpResponse {
    /// Decode the body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| Error::decode("response body", &e))
    }

    /// Decode the body as JSON when the status is 2xx; otherwise the error the status
    /// and body describe (problem+json parsed when present).
    pub fn into_json<T: DeserializeOwned>(self) -> Result<T> {
        if self.status.is_success() {
            self.json()
        } else {
            Err(Error::from_response(self.status.as_u16(), &self.body))
        }
    }
}

type Inner = LegacyClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A cheaply clonable, pooled HTTP(S) client.
#[derive(Clone)]
pub struct Transport {
    inner: Inner,
    max_body_bytes: usize,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

impl Transport {
    /// Build a transport; certificate files are read now (blocking file reads), so a
    /// missing or invalid file is reported here.
    pub fn new(config: &TransportConfig) -> Result<Self> {
        let tls = tls_config(config)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = LegacyClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .timer(TokioTimer::new())
            .build(https);
        Ok(Transport {
            inner,
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// Send a request and read the whole response within `timeout`.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<HttpResponse> {
        let max = self.max_body_bytes;
        let exchange = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| Error::Transport(describe(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max)
                .collect()
                .await
                .map_err(|e| Error::Transport(format!("reading the response body: {e}")))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Send a request and return as soon as the response headers arrived (within
    /// `timeout`); the body is streamed without time limit.
    pub async fn send_streaming(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Incoming>> {
        tokio::time::timeout(timeout, self.inner.request(request))
            .await
            .map_err(|_| Error::Timeout(timeout))?
            .map_err(|e| Error::Transport(describe(&e)))
    }

    /// Send `method url` with extra `headers` and an optional body, reading the whole
    /// response within `timeout`.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<HttpResponse> {
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::InvalidRequest(format!("header name {name}: {e}")))?;
            // The value may be a secret (a token): never echo it.
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::InvalidRequest(format!("invalid value of header {name}")))?;
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Error::InvalidRequest(format!("{e}")))?;
        self.send(request, timeout).await
    }

    /// `GET url` accepting JSON; returns the status and body whatever the status.
    pub async fn get_json(&self, url: &str, timeout: Duration) -> Result<HttpResponse> {
        self.request(
            Method::GET,
            url,
            &[(ACCEPT.as_str(), "application/json")],
            None,
            timeout,
        )
        .await
    }

    /// `POST url` with `body` as JSON; returns the status and body whatever the status.
    pub async fn post_json<T: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<HttpResponse> {
        let body = serde_json::to_vec(body).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.request(
            Method::POST,
            url,
            &[
                (ACCEPT.as_str(), "application/json"),
                (CONTENT_TYPE.as_str(), "application/json"),
            ],
            Some(Bytes::from(body)),
            timeout,
        )
        .await
    }
}

/// An error message with its causes (hyper-util's top-level message alone is vague).
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn read_file(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::Config(format!("cannot read {what} {}: {e}", path.display())))
}

/// The rustls client configuration for `config`, built with the ring provider.
pub fn tls_config(config: &TransportConfig) -> Result<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    match &config.ca {
        Some(path) => {
            let pem = read_file("CA bundle", path)?;
            let mut count = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    Error::Config(format!("invalid CA bundle {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    Error::Config(format!("invalid CA certificate in {}: {e}", path.display()))
                })?;
                count += 1;
            }
            if count == 0 {
                return Err(Error::Config(format!(
                    "CA bundle {} holds no certificate",
                    path.display()
                )));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for err in &native.errors {
                tracing::debug!(error = %err, "skipping unreadable platform root certificates");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "loaded platform root certificates");
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS protocol versions: {e}")))?
        .with_root_certificates(roots);

    let tls = match (&config.client_cert, &config.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let pem = read_file("client certificate", cert_path)?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| {
                    Error::Config(format!(
                        "invalid client certificate {}: {e}",
                        cert_path.display()
                    ))
                })?;
            if chain.is_empty() {
                return Err(Error::Config(format!(
                    "client certificate file {} holds no certificate",
                    cert_path.display()
                )));
            }
            let key_pem = read_file("client key", key_path)?;
            // The error of the PEM parser never contains key material, but stay terse.
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
                Error::Config(format!(
                    "client key {} holds no valid private key",
                    key_path.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::Config(format!(
                    "client key {} does not fit certificate {}: {e}",
                    key_path.display(),
                    cert_path.display()
                ))
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(Error::Config(
                "a client certificate needs a client key".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(Error::Config(
                "a client key needs a client certificate".into(),
            ));
        }
    };
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_reported() {
        let config = TransportConfig {
            ca: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let err = Transport::new(&config).unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("/nonexistent/ca.pem")),
            "{err}"
        );

        let config = TransportConfig {
            client_cert: Some("/nonexistent/cert.pem".into()),
            ..Default::default()
        };
        assert!(matches!(Transport::new(&config), Err(Error::Config(_))));
    }

    #[test]
    fn garbage_ca_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let config = TransportConfig {
            ca: Some(ca),
            ..Default::default()
        };
        let err = Transport::new(&config).unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("no certificate")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn connection_refused_is_a_transport_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let http = Transport::new(&TransportConfig::default()).unwrap();
        let err = http
            .get_json(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{err:?}");
    }
}
