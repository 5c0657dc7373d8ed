//! Harness of the black-box HTTP tests: an in-process API server on the embedded store or
//! on a real etcd, a small HTTP client, watch stream reading, and one valid sample body per
//! persisted kind (spec §4).
#![allow(dead_code, missing_docs)]

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use krake_api_server::config::{Config, StorageConfig};
use krake_api_server::server::RunningServer;
use krake_testkit::etcd::EtcdServer;
use reqwest::Method;
pub use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// Default `docs.problem_base_url` (upstream's).
pub const PROBLEM_BASE: &str =
    "https://rak-n-rok.readthedocs.io/projects/krake/en/latest/user/problem.html";

/// Time limit for one ordinary request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a watch event may take to arrive.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

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
        let status = response.status();
        let headers = response.headers().clone();
        Watch {
            status,
            headers,
            stream: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
            ended: false,
        }
    }

    /// A direct etcd client (etcd backend only).
    pub async fn etcd_client(&self) -> etcd_client::Client {
        let etcd = self.etcd.as_ref().expect("an etcd-backed server");
        etcd_client::Client::connect([etcd.endpoint()], None)
            .await
            .expect("connect to etcd")
    }
}

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

// ------------------------------------------------------------------------------------
// Assertions

/// Assert a problem document: status, content type, optional title, detail predicate.
pub fn assert_problem(resp: &Resp, status: u16, title: Option<&str>, detail: &str) {
    let (s, headers, body) = resp;
    assert_eq!(s.as_u16(), status, "unexpected status; body: {body}");
    assert_problem_type(headers);
    assert_eq!(body["status"], status, "problem status: {body}");
    match title {
        Some(t) => assert_eq!(body["title"], t, "problem title: {body}"),
        None => assert!(
            body.get("title").is_none_or(Value::is_null),
            "unexpected problem title: {body}"
        ),
    }
    let d = body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("problem without a string detail: {body}"));
    assert!(
        d.contains(detail),
        "problem detail {d:?} does not contain {detail:?}"
    );
}

/// Assert the exact problem detail.
pub fn assert_problem_exact(resp: &Resp, status: u16, title: Option<&str>, detail: &str) {
    assert_problem(resp, status, title, detail);
    assert_eq!(resp.2["detail"], detail, "problem detail: {}", resp.2);
}

/// Assert the content type of a problem document.
pub fn assert_problem_type(headers: &HeaderMap) {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/problem+json"),
        "content type {ct:?} is not application/problem+json"
    );
}

/// Assert a JSON success content type.
pub fn assert_json_type(headers: &HeaderMap) {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(ct, "application/json; charset=utf-8");
}

/// Parse a server timestamp.
pub fn ts(v: &Value) -> krake_crds::Timestamp {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    krake_crds::Timestamp::parse(s).unwrap_or_else(|| panic!("not a timestamp: {s}"))
}

/// Assert a server-generated timestamp (UTC, explicit offset).
pub fn assert_server_ts(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    assert!(
        s.ends_with("+00:00"),
        "server timestamp {s} is not UTC with an offset"
    );
    ts(v);
}

/// `v` without `metadata.resource_version` (and `metadata.modified` when `modified` is false).
pub fn strip(v: &Value, keep_modified: bool) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resource_version");
        if !keep_modified {
            meta.remove("modified");
        }
    }
    v
}

/// The object's resource version (must be a string of digits).
pub fn rv(v: &Value) -> String {
    let s = v["metadata"]["resource_version"]
        .as_str()
        .unwrap_or_else(|| panic!("object without a string metadata.resource_version: {v}"));
    assert!(
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        "resource_version {s:?} is not a revision"
    );
    s.to_string()
}

/// Every key of `expected` is in `actual` with an equal value (recursively for objects).
pub fn assert_subset(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {actual}"));
                assert_subset(ev, av, &format!("{path}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(
                e.len(),
                a.len(),
                "{path}: list lengths differ: {expected} vs {actual}"
            );
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_subset(ev, av, &format!("{path}.{i}"));
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            assert_eq!(e.as_f64(), a.as_f64(), "{path}: {expected} vs {actual}");
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

pub use krake_testkit::eventually;

// ------------------------------------------------------------------------------------
// Kinds

/// The fourteen persisted kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K {
    Role,
    RoleBinding,
    GlobalMetric,
    Metric,
    GlobalMetricsProvider,
    MetricsProvider,
    Application,
    Cluster,
    Project,
    MagnumCluster,
    GlobalInfrastructureProvider,
    InfrastructureProvider,
    GlobalCloud,
    Cloud,
}

/// All kinds.
pub const ALL_KINDS: [K; 14] = [
    K::Role,
    K::RoleBinding,
    K::GlobalMetric,
    K::Metric,
    K::GlobalMetricsProvider,
    K::MetricsProvider,
    K::Application,
    K::Cluster,
    K::Project,
    K::MagnumCluster,
    K::GlobalInfrastructureProvider,
    K::InfrastructureProvider,
    K::GlobalCloud,
    K::Cloud,
];

/// A valid kubeconfig with one context, user and cluster.
pub fn kubeconfig() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c1", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c1", "user": "u1"}}],
        "current-context": "ctx",
        "users": [{"name": "u1", "user": {"token": "secret"}}]
    })
}

/// A valid Application spec.
pub fn application_spec() -> Value {
    json!({
        "manifest": [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"containers": []}}],
        "constraints": {"cluster": {"labels": ["location is DE"], "custom_resources": [], "metrics": ["load > 0.5"]}, "migration": true},
        "hooks": []
    })
}

fn im_spec() -> Value {
    json!({"type": "im", "im": {"url": "http://im.example.com:8800", "username": "user", "password": "secret"}})
}

fn cloud_spec(namespaced_provider: bool) -> Value {
    json!({"type": "openstack", "openstack": {
        "url": "http://keystone.example.com:5000/v3",
        "auth": {"type": "password", "password": {
            "version": "3",
            "user": {"username": "u", "password": "p", "domain_name": "Default"},
            "project": {"name": "proj", "domain_id": "default"}}},
        "metrics": [],
        "infrastructure_provider": {"name": "im1", "namespaced": namespaced_provider}}})
}

impl K {
    pub fn api(self) -> &'static str {
        match self {
            K::Role
            | K::RoleBinding
            | K::GlobalMetric
            | K::Metric
            | K::GlobalMetricsProvider
            | K::MetricsProvider => "core",
            K::Application | K::Cluster => "kubernetes",
            K::Project | K::MagnumCluster => "openstack",
            K::GlobalInfrastructureProvider
            | K::InfrastructureProvider
            | K::GlobalCloud
            | K::Cloud => "infrastructure",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            K::Role => "Role",
            K::RoleBinding => "RoleBinding",
            K::GlobalMetric => "GlobalMetric",
            K::Metric => "Metric",
            K::GlobalMetricsProvider => "GlobalMetricsProvider",
            K::MetricsProvider => "MetricsProvider",
            K::Application => "Application",
            K::Cluster => "Cluster",
            K::Project => "Project",
            K::MagnumCluster => "MagnumCluster",
            K::GlobalInfrastructureProvider => "GlobalInfrastructureProvider",
            K::InfrastructureProvider => "InfrastructureProvider",
            K::GlobalCloud => "GlobalCloud",
            K::Cloud => "Cloud",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            K::Role => "roles",
            K::RoleBinding => "rolebindings",
            K::GlobalMetric => "globalmetrics",
            K::Metric => "metrics",
            K::GlobalMetricsProvider => "globalmetricsproviders",
            K::MetricsProvider => "metricsproviders",
            K::Application => "applications",
            K::Cluster => "clusters",
            K::Project => "projects",
            K::MagnumCluster => "magnumclusters",
            K::GlobalInfrastructureProvider => "globalinfrastructureproviders",
            K::InfrastructureProvider => "infrastructureproviders",
            K::GlobalCloud => "globalclouds",
            K::Cloud => "clouds",
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            K::Role
                | K::RoleBinding
                | K::GlobalMetric
                | K::GlobalMetricsProvider
                | K::GlobalInfrastructureProvider
                | K::GlobalCloud
        )
    }

    pub fn has_status(self) -> bool {
        matches!(
            self,
            K::Application | K::Cluster | K::Project | K::MagnumCluster | K::GlobalCloud | K::Cloud
        )
    }

    pub fn force_delete(self) -> bool {
        matches!(self, K::Application | K::Cluster)
    }

    /// The collection URL (namespace ignored for global kinds).
    pub fn collection(self, ns: &str) -> String {
        if self.namespaced() {
            format!("/{}/namespaces/{ns}/{}", self.api(), self.plural())
        } else {
            self.all_collection()
        }
    }

    /// The all-namespaces collection URL (the only one of global kinds).
    pub fn all_collection(self) -> String {
        format!("/{}/{}", self.api(), self.plural())
    }

    /// The object URL.
    pub fn object(self, ns: &str, name: &str) -> String {
        format!("{}/{name}", self.collection(ns))
    }

    /// The namespace objects of this kind get when created under `ns`.
    pub fn expected_ns(self, ns: &str) -> Value {
        if self.namespaced() {
            json!(ns)
        } else {
            Value::Null
        }
    }

    /// The top-level keys holding the client-writable content.
    pub fn content_keys(self) -> &'static [&'static str] {
        match self {
            K::Role => &["rules"],
            K::RoleBinding => &["users", "roles"],
            _ => &["spec"],
        }
    }

    /// A valid create body.
    pub fn sample(self, name: &str) -> Value {
        let mut body = json!({"api": self.api(), "kind": self.kind(), "metadata": {"name": name}});
        let map = body.as_object_mut().expect("object");
        match self {
            K::Role => {
                map.insert(
                    "rules".into(),
                    json!([{"api": "kubernetes", "resources": ["applications", "applications/status"], "namespaces": ["dev"], "verbs": ["get", "list"]}]),
                );
            }
            K::RoleBinding => {
                map.insert("users".into(), json!(["alice"]));
                map.insert("roles".into(), json!(["reader"]));
            }
            K::GlobalMetric | K::Metric => {
                map.insert(
                    "spec".into(),
                    json!({"allowed_values": [], "min": 0.0, "max": 1.0, "provider": {"name": "prom", "metric": "node_load1"}}),
                );
            }
            K::GlobalMetricsProvider => {
                map.insert(
                    "spec".into(),
                    json!({"type": "static", "static": {"metrics": {"load": 0.5, "x": 2.0}}}),
                );
            }
            K::MetricsProvider => {
                map.insert(
                    "spec".into(),
                    json!({"type": "prometheus", "prometheus": {"url": "http://prometheus:9090"}}),
                );
            }
            K::Application => {
                map.insert("spec".into(), application_spec());
            }
            K::Cluster => {
                map.insert(
                    "spec".into(),
                    json!({"kubeconfig": kubeconfig(), "custom_resources": [],
                           "constraints": {"cloud": {"labels": ["zone=a"], "metrics": null}},
                           "metrics": [{"name": "load", "weight": 1.5, "namespaced": false}]}),
                );
            }
            K::Project => {
                map.insert(
                    "spec".into(),
                    json!({"url": "http://keystone.example.com:5000/v3",
                           "auth": {"type": "password", "password": {"user": {"id": "uid", "password": "pw"}, "project": {"id": "pid"}}},
                           "template": "magnum-template-uuid", "metrics": []}),
                );
            }
            K::MagnumCluster => {
                map.insert(
                    "spec".into(),
                    json!({"master_count": 1, "node_count": 2, "metrics": [], "constraints": {"project": {"labels": ["a=b"]}}}),
                );
            }
            K::GlobalInfrastructureProvider | K::InfrastructureProvider => {
                map.insert("spec".into(), im_spec());
            }
            K::GlobalCloud => {
                map.insert("spec".into(), cloud_spec(false));
            }
            K::Cloud => {
                map.insert("spec".into(), cloud_spec(true));
            }
        }
        body
    }

    /// Change the client-writable content of a full object (a valid change).
    pub fn mutate(self, obj: &mut Value) {
        match self {
            K::Role => obj["rules"][0]["verbs"] = json!(["get", "list", "update"]),
            K::RoleBinding => obj["users"] = json!(["alice", "bob"]),
            K::GlobalMetric | K::Metric => obj["spec"]["max"] = json!(2.5),
            // Polymorphic container: the type changes.
            K::GlobalMetricsProvider => {
                obj["spec"] =
                    json!({"type": "prometheus", "prometheus": {"url": "http://prometheus:9090"}})
            }
            K::MetricsProvider => {
                obj["spec"]["prometheus"]["url"] = json!("http://other-prometheus:9090")
            }
            K::Application => obj["spec"]["manifest"][0]["metadata"]["name"] = json!("p2"),
            K::Cluster => obj["spec"]["custom_resources"] = json!(["crontabs.stable.example.com"]),
            K::Project => obj["spec"]["template"] = json!("other-template"),
            K::MagnumCluster => obj["spec"]["node_count"] = json!(5),
            K::GlobalInfrastructureProvider | K::InfrastructureProvider => {
                obj["spec"]["im"]["url"] = json!("http://other-im.example.com:8800")
            }
            K::GlobalCloud | K::Cloud => {
                obj["spec"]["openstack"]["url"] = json!("http://other-keystone:5000/v3")
            }
        }
    }

    /// The status of a fresh object (spec §4).
    pub fn default_status(self) -> Option<Value> {
        Some(match self {
            K::Application => json!({
                "reason": null, "state": "PENDING",
                "container_health": {"desired_pods": 0, "running_pods": 0, "completed_pods": 0, "failed_pods": 0},
                "kube_controller_triggered": null, "scheduled": null, "scheduled_to": null, "running_on": null,
                "retries": null, "scheduled_retry": null, "services": {}, "mangled_observer_schema": [],
                "last_observed_manifest": [], "last_applied_manifest": [],
                "complete_token": null, "complete_cert": null, "complete_key": null,
                "shutdown_token": null, "shutdown_cert": null, "shutdown_key": null,
                "shutdown_grace_period": null, "auto_cluster_create_started": null,
                "migration_retries": 0, "migration_timeout": 0}),
            K::Cluster => json!({
                "reason": null, "kube_controller_triggered": null, "state": "PENDING", "metrics_reasons": {},
                "last_applied_tosca": {}, "nodes": [], "cluster_id": null, "scheduled": null,
                "scheduled_to": null, "running_on": null, "retries": 0}),
            K::Project | K::GlobalCloud | K::Cloud => {
                json!({"state": "ONLINE", "metrics_reasons": {}})
            }
            K::MagnumCluster => json!({
                "reason": null, "state": "PENDING", "project": null, "template": null, "cluster_id": null,
                "node_count": null, "api_address": null, "master_addresses": null, "node_addresses": null,
                "cluster": null}),
            _ => return None,
        })
    }

    /// A complete, valid, non-default status.
    pub fn custom_status(self) -> Option<Value> {
        let mut status = self.default_status()?;
        match self {
            K::Application => {
                status["state"] = json!("RUNNING");
                status["reason"] = json!({"code": "KUBERNETES_ERROR", "message": "something"});
                status["services"] = json!({"svc": "10.0.0.1:31234"});
                status["retries"] = json!(3);
                status["running_on"] = json!({"api": "kubernetes", "namespace": "ns1", "kind": "Cluster", "name": "c1"});
            }
            K::Cluster => {
                status["state"] = json!("ONLINE");
                status["cluster_id"] = json!("abc");
                status["retries"] = json!(2);
            }
            K::Project | K::GlobalCloud | K::Cloud => {
                status["state"] = json!("FAILING_METRICS");
                status["metrics_reasons"] =
                    json!({"load": {"code": "UNKNOWN_METRIC", "message": "gone"}});
            }
            K::MagnumCluster => {
                status["state"] = json!("RUNNING");
                status["node_count"] = json!(2);
                status["api_address"] = json!("https://10.0.0.5:6443");
                status["master_addresses"] = json!(["10.0.0.5"]);
            }
            _ => unreachable!(),
        }
        Some(status)
    }
}
