//! A small Kubernetes API server stand-in over TLS (CA from the project's PKI, server
//! certificate with an IP SAN, bearer-token and client-certificate authentication), with
//! the discovery endpoints and fault modes the tests need, and kubeconfig builders.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use krake_api_server::pki::{CertificateAuthority, Issued};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Token the stand-in accepts.
pub const TOKEN: &str = "s3cr3t-t0ken-do-not-log";

/// The PKI of a test: a CA, a server certificate for 127.0.0.1 and a client certificate.
pub struct Pki {
    pub ca: CertificateAuthority,
    pub server: Issued,
    pub client: Issued,
}

impl Pki {
    pub fn new() -> Pki {
        let ca = CertificateAuthority::new("member-ca").unwrap();
        let server = ca
            .issue_server("member-apiserver", &["127.0.0.1".to_string()])
            .unwrap();
        let client = ca.issue_client("krake").unwrap();
        Pki { ca, server, client }
    }
}

/// How the stand-in answers.
#[derive(Default)]
pub struct Behaviour {
    /// Accept TCP connections and never start TLS.
    pub hang_handshake: AtomicBool,
    /// Complete TLS and never answer requests.
    pub hang_requests: AtomicBool,
    /// Answer every request with this status (with a `Status` body), 0 = normally.
    pub fail_with: AtomicU16,
}

/// A running stand-in; stops when dropped.
pub struct FakeApi {
    pub url: String,
    pub ca_pem: String,
    /// `METHOD path` of every request that reached the HTTP layer.
    pub requests: Arc<Mutex<Vec<String>>>,
    /// `Some("krake")` for each request over a connection with a verified client
    /// certificate, `None` for the others.
    pub peers: Arc<Mutex<Vec<Option<String>>>>,
    pub behaviour: Arc<Behaviour>,
    /// Kinds served in `example.com/v1`: (kind, plural, namespaced).
    pub example_kinds: Arc<Mutex<Vec<(String, String, bool)>>>,
    task: JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApi {
    pub async fn start(pki: &Pki) -> FakeApi {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(pki.ca.cert_der().to_vec()))
            .unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(pki.server.cert_der.clone())],
                PrivateKeyDer::from_pem_slice(pki.server.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let peers = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Behaviour::default());
        let example_kinds = Arc::new(Mutex::new(vec![(
            "Widget".to_string(),
            "widgets".to_string(),
            true,
        )]));
        let state = (
            requests.clone(),
            peers.clone(),
            behaviour.clone(),
            example_kinds.clone(),
        );
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                if state.2.hang_handshake.load(Ordering::SeqCst) {
                    held.push(tcp);
                    continue;
                }
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let peer = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .filter(|c| !c.is_empty())
                        // rustls verified it against the test CA, which issued only
                        // the client certificate of user `krake`.
                        .map(|_| "krake".to_string());
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        let peer = peer.clone();
                        async move { Ok::<_, Infallible>(handle(req, peer, state).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        FakeApi {
            url,
            ca_pem: pki.ca.cert_pem().to_string(),
            requests,
            peers,
            behaviour,
            example_kinds,
            task,
        }
    }

    /// Requests so far whose line starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with(prefix))
            .count()
    }
}

type State = (
    Arc<Mutex<Vec<String>>>,
    Arc<Mutex<Vec<Option<String>>>>,
    Arc<Behaviour>,
    Arc<Mutex<Vec<(String, String, bool)>>>,
);

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn status(code: u16, reason: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::from_u16(code).unwrap(),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": reason, "reason": reason, "code": code}),
    )
}

fn resource(name: &str, kind: &str, namespaced: bool) -> Value {
    json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced,
           "kind": kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
}

async fn handle(
    req: Request<Incoming>,
    peer: Option<String>,
    (requests, peers, behaviour, example_kinds): State,
) -> Response<Full<Bytes>> {
    requests
        .lock()
        .unwrap()
        .push(format!("{} {}", req.method(), req.uri().path()));
    peers.lock().unwrap().push(peer.clone());
    if behaviour.hang_requests.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let fail = behaviour.fail_with.load(Ordering::SeqCst);
    if fail != 0 {
        return status(fail, "ServiceUnavailable");
    }
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(TOKEN) && peer.as_deref() != Some("krake") {
        return status(401, "Unauthorized");
    }
    match req.uri().path() {
        "/version" => json_response(
            StatusCode::OK,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "0",
                   "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                   "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        "/api/v1" => json_response(
            StatusCode::OK,
            json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                resource("pods", "Pod", true), resource("pods/status", "Pod", true),
                resource("nodes", "Node", false), resource("namespaces", "Namespace", false)]}),
        ),
        "/apis/example.com/v1" => {
            let kinds = example_kinds.lock().unwrap().clone();
            json_response(
                StatusCode::OK,
                json!({"kind": "APIResourceList", "groupVersion": "example.com/v1",
                       "resources": kinds.iter().map(|(k, p, n)| resource(p, k, *n)).collect::<Vec<_>>()}),
            )
        }
        _ => status(404, "NotFound"),
    }
}

fn b64(data: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A kubeconfig for `server` with CA data and a bearer token.
pub fn kubeconfig_token(server: &str, ca_pem: &str, token: &str) -> Map<String, Value> {
    krake_crds::fixtures::kubeconfig_tls_token(server, ca_pem, token)
}

/// A kubeconfig for `server` with CA data and a client certificate.
pub fn kubeconfig_client_cert(server: &str, ca_pem: &str, client: &Issued) -> Map<String, Value> {
    object(json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "m", "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "contexts": [{"name": "m", "context": {"cluster": "m", "user": "krake", "namespace": "apps"}}],
        "current-context": "m",
        "users": [{"name": "krake", "user": {
            "client-certificate-data": b64(&client.cert_pem),
            "client-key-data": b64(&client.key_pem)}}]
    }))
}
