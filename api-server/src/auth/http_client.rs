//! The API server's outgoing HTTP(S) client, used to ask identity providers (Keystone,
//! Keycloak, OpenID Connect issuers) about tokens.
//!
//! HTTPS uses rustls with an explicitly chosen `ring` crypto provider (never a
//! process-wide default) and the operating system's trust store (`SSL_CERT_FILE` /
//! `SSL_CERT_DIR` are honoured). Plain `http://` URLs work too. Every call has a time
//! limit covering connection, request and the whole response body.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Default time limit of one outgoing call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response body accepted from an identity provider.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why an outgoing call produced no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The URL (or a header value) cannot be used in a request.
    #[error("invalid request to {url}: {reason}")]
    InvalidRequest {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// Connecting, sending or receiving failed.
    #[error("{url} cannot be reached: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// No complete answer within the time limit.
    #[error("{url} did not answer within {} s", timeout.as_secs_f64())]
    Timeout {
        /// The URL.
        url: String,
        /// The time limit.
        timeout: Duration,
    },
    /// The answer is larger than the client accepts.
    #[error("{url} sent a response body larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge {
        /// The URL.
        url: String,
    },
}

impl HttpError {
    /// A short description without the URL, fit for a client-facing problem detail
    /// (the URL of an internal identity provider is only logged).
    pub fn summary(&self) -> String {
        match self {
            HttpError::InvalidRequest { .. } => "is misconfigured (invalid URL)".to_string(),
            HttpError::Unreachable { .. } => "cannot be reached".to_string(),
            HttpError::Timeout { timeout, .. } => {
                format!("did not answer within {} s", timeout.as_secs_f64())
            }
            HttpError::TooLarge { .. } => "sent an oversized answer".to_string(),
        }
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// The reason phrase the server sent (the standard one when it sent none or the
    /// standard one).
    pub reason: String,
    /// The body.
    pub body: Bytes,
}

/// An HTTP(S) client with a per-call time limit. Cheap to clone (shares its pool).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The rustls client configuration: ring provider, native roots. Built once per process
/// (reading the trust store is slow), shared by every client.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::warn!(%error, "cannot load a system CA certificate");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                tracing::warn!(
                    ignored,
                    "no system CA certificates found: HTTPS identity providers cannot be verified"
                );
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                // ring implements every default protocol version, suite and group.
                .expect("the ring provider supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

impl HttpClient {
    /// A client whose calls each last at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls_config()).clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpClient { client, timeout }
    }

    /// `GET url` with extra headers.
    pub async fn get(&self, url: &str, headers: HeaderMap) -> Result<HttpResponse, HttpError> {
        self.send(Method::GET, url, headers, Bytes::new()).await
    }

    /// `POST url` with an `application/x-www-form-urlencoded` body of `fields`.
    pub async fn post_form(
        &self,
        url: &str,
        fields: &[(&str, &[u8])],
    ) -> Result<HttpResponse, HttpError> {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self.send(Method::POST, url, headers, Bytes::from(body))
            .await
    }

    /// Send one request and read the whole response, within the time limit.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HttpResponse, HttpError> {
        let invalid = |reason: String| HttpError::InvalidRequest {
            url: url.to_string(),
            reason,
        };
        let uri: hyper::Uri = url.parse().map_err(|e| invalid(format!("{e}")))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| invalid(e.to_string()))?;
        request.headers_mut().extend(headers);
        request
            .headers_mut()
            .entry(header::ACCEPT)
            .or_insert(HeaderValue::from_static("application/json"));
        request.headers_mut().insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("krake-api/", env!("CARGO_PKG_VERSION"))),
        );

        let call = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| HttpError::Unreachable {
                        url: url.to_string(),
                        reason: error_chain(&e),
                    })?;
            let status = response.status();
            let reason = response
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
                .or_else(|| status.canonical_reason().map(str::to_string))
                .unwrap_or_default();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::TooLarge {
                            url: url.to_string(),
                        }
                    } else {
                        HttpError::Unreachable {
                            url: url.to_string(),
                            reason: e.to_string(),
                        }
                    }
                })?
                .to_bytes();
            Ok(HttpResponse {
                status,
                reason,
                body,
            })
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout {
                url: url.to_string(),
                timeout: self.timeout,
            }),
        }
    }
}

/// The message of an error and its sources (`client error (Connect): Connection refused`).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    message
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
pub fn form_encode(value: impl AsRef<[u8]>) -> String {
    let value = value.as_ref();
    let mut out = String::with_capacity(value.len());
    for &byte in value {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `endpoint` without trailing slashes, so `{endpoint}/path` has exactly one.
pub fn trim_base(endpoint: &str) -> &str {
    endpoint.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("abc-._*09"), "abc-._*09");
        assert_eq!(form_encode("a b&c=d+e/é"), "a+b%26c%3Dd%2Be%2F%C3%A9");
    }

    #[tokio::test]
    async fn unreachable_and_invalid_urls_are_errors() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let client = HttpClient::new(Duration::from_secs(2));
        let err = client
            .get(&format!("http://127.0.0.1:{port}/x"), HeaderMap::new())
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Unreachable { .. }), "{err}");
        let err = client.get("not a url", HeaderMap::new()).await.unwrap_err();
        assert!(matches!(err, HttpError::InvalidRequest { .. }), "{err}");
    }

    #[tokio::test]
    async fn silent_servers_time_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                held.push(socket);
            }
        });
        let client = HttpClient::new(Duration::from_millis(300));
        let err = client
            .get(&format!("http://{addr}/x"), HeaderMap::new())
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Timeout { .. }), "{err}");
        server.abort();
    }
}
