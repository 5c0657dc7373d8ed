//! The API server under test, in process, on the embedded store or on a real etcd, and a
//! small HTTP client for it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use krake_api_server::config::{Config, StorageConfig};
use krake_api_server::server::RunningServer;
use krake_api_server::storage::etcd::DEFAULT_MAX_REQUEST_BYTES;
use krake_testkit::etcd::EtcdServer;
use reqwest::Method;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::samples::K;
use super::watch::{EVENT_TIMEOUT, Watch};

/// Default `docs.problem_base_url` (upstream's).
pub const PROBLEM_BASE: &str =
    "https://rak-n-rok.readthedocs.io/projects/krake/en/latest/user/problem.html";

/// Time limit for one ordinary request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Storage backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Etcd,
}

/// Status, headers and JSON body (`Value::Null` when empty, a JSON string holding the raw
/// text when the body is not JSON).
pub type Resp = (StatusCode, HeaderMap, Value);

/// Status, headers and raw body.
pub struct RawResp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        to_value(&self.body)
    }
}

fn to_value(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// A running API server and what it needs (data directory, etcd process).
pub struct TestServer {
    pub backend: Backend,
    pub addr: std::net::SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    server: Option<RunningServer>,
    pub etcd: Option<EtcdServer>,
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.shutdown();
        }
    }
}

impl TestServer {
    /// A server on the embedded store with the test defaults.
    pub async fn embedded() -> TestServer {
        TestServer::start(Backend::Embedded).await
    }

    /// A server on a fresh real etcd with the test defaults.
    pub async fn etcd() -> TestServer {
        TestServer::start(Backend::Etcd).await
    }

    /// A server on `backend` with the test defaults.
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::with_config(backend, |_| {}).await
    }

    /// A server on `backend` whose configuration `tweak` adjusts before the start.
    pub async fn with_config(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("krake-http-")
            .tempdir()
            .expect("temporary directory");
        let mut config = Config::for_embedded(dir.path().join("data"));
        config.log_level = "warn".into();
        let etcd = match backend {
            Backend::Embedded => None,
            Backend::Etcd => {
                let etcd = EtcdServer::start().await;
                config.storage = StorageConfig::Etcd {
                    endpoints: vec![etcd.endpoint()],
                    max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
                };
                Some(etcd)
            }
        };
        tweak(&mut config);
        let server = krake_api_server::server::start(config)
            .await
            .expect("the API server starts");
        let addr = server.addr;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("HTTP client");
        let ts = TestServer {
            backend,
            addr,
            base: format!("http://{addr}"),
            client,
            server: Some(server),
            etcd,
            _dir: dir,
        };
        ts.wait_ready().await;
        ts
    }

    /// Ask the server to stop (graceful shutdown).
    pub fn shutdown(&self) {
        if let Some(server) = &self.server {
            server.shutdown();
        }
    }

    /// A second API server (replica) on the same etcd as this one.
    pub async fn replica(&self) -> TestServer {
        let endpoint = self
            .etcd
            .as_ref()
            .expect("replicas need the etcd backend")
            .endpoint();
        let dir = tempfile::Builder::new()
            .prefix("krake-http-")
            .tempdir()
            .expect("temporary directory");
        let mut config = Config::for_embedded(dir.path().join("data"));
        config.log_level = "warn".into();
        config.storage = StorageConfig::Etcd {
            endpoints: vec![endpoint],
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        };
        let server = krake_api_server::server::start(config)
            .await
            .expect("the replica starts");
        let addr = server.addr;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("HTTP client");
        let ts = TestServer {
            backend: Backend::Etcd,
            addr,
            base: format!("http://{addr}"),
            client,
            server: Some(server),
            etcd: None,
            _dir: dir,
        };
        ts.wait_ready().await;
        ts
    }

    /// Wait until `/readyz` answers 200 (storage reachable, watch caches established).
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self
                .client
                .get(self.url("/readyz"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .map(|r| r.status() == StatusCode::OK)
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the API server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Any request with a raw body and extra headers.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> RawResp {
        let mut request = self
            .client
            .request(method.clone(), self.url(path))
            .timeout(REQUEST_TIMEOUT);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body failed: {e}"));
        RawResp {
            status,
            headers,
            body,
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let body = body.map(|b| serde_json::to_vec(b).expect("serializable body"));
        let r = self.raw(method, path, body, &[]).await;
        let value = to_value(&r.body);
        (r.status, r.headers, value)
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }

    /// POST with a raw (possibly non-JSON) body.
    pub async fn post_raw(&self, path: &str, body: &[u8]) -> RawResp {
        self.raw(Method::POST, path, Some(body.to_vec()), &[]).await
    }

    /// PUT with a raw (possibly non-JSON) body.
    pub async fn put_raw(&self, path: &str, body: &[u8]) -> RawResp {
        self.raw(Method::PUT, path, Some(body.to_vec()), &[]).await
    }

    /// GET that must succeed; the body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, _, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Create an object of `kind` named `name` in `ns` from its sample body; the response.
    pub async fn create(&self, kind: K, ns: &str, name: &str) -> Value {
        self.create_body(kind, ns, &kind.sample(name)).await
    }

    /// Create from an explicit body; the response.
    pub async fn create_body(&self, kind: K, ns: &str, body: &Value) -> Value {
        let (status, _, created) = self.post(&kind.collection(ns), body).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "create {} in {ns}: {created}",
            kind.kind()
        );
        created
    }

    /// PUT that must succeed; the body.
    pub async fn put_ok(&self, path: &str, body: &Value) -> Value {
        let (status, _, response) = self.put(path, body).await;
        assert_eq!(status, StatusCode::OK, "PUT {path}: {response}");
        response
    }

    /// Names of the items of a list response.
    pub async fn list_names(&self, path: &str) -> Vec<(Option<String>, String)> {
        let list = self.get_ok(path).await;
        list["items"]
            .as_array()
            .unwrap_or_else(|| panic!("list {path} has no items: {list}"))
            .iter()
            .map(|o| {
                (
                    o["metadata"]["namespace"].as_str().map(str::to_string),
                    o["metadata"]["name"]
                        .as_str()
                        .expect("item name")
                        .to_string(),
                )
            })
            .collect()
    }

    /// Open a watch stream; panics unless the server answers with headers in time.
    pub async fn watch(&self, path_and_query: &str) -> Watch {
        let response = tokio::time::timeout(
            EVENT_TIMEOUT,
            self.client.get(self.url(path_and_query)).send(),
        )
        .await
        .unwrap_or_else(|_| panic!("watch {path_and_query}: no response headers in time"))
        .unwrap_or_else(|e| panic!("watch {path_and_query} failed: {e}"));
        Watch::new(response)
    }

    /// A direct etcd client (etcd backend only).
    pub async fn etcd_client(&self) -> etcd_client::Client {
        let etcd = self.etcd.as_ref().expect("an etcd-backed server");
        etcd_client::Client::connect([etcd.endpoint()], None)
            .await
            .expect("connect to etcd")
    }
}
