//! A strict Kubernetes API test double: a real HTTP(S) server that speaks the Kubernetes
//! REST conventions kube-rs and kubectl rely on (discovery, CRUD with resourceVersion
//! conflicts, server-side apply with managed fields, list/watch with bookmarks and 410,
//! `Status` errors with exact reasons), reached through a kubeconfig, with faults tests can
//! inject (unreachable, slow, 5xx, hang) and nodes whose conditions tests set.
//!
//! ```no_run
//! # async fn example() -> Result<(), kube_double::Error> {
//! let double = kube_double::KubeDouble::start(kube_double::Options::default()).await?;
//! let kubeconfig = double.kubeconfig(); // JSON, valid YAML: give it to kubectl or kube-rs
//! double.set_node_conditions("node-1", &[("Ready", "True")])?;
//! double.set_reachable(false).await?; // connection refused until set_reachable(true)
//! # Ok(()) }
//! ```

pub mod apply;
pub mod auth;
pub mod control;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod kinds;
pub mod openapi;
pub mod patch;
pub mod rest;
pub mod select;
pub mod server;
pub mod store;
pub mod validate;
pub mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tokio_util::task::TaskTracker;

pub use error::{Error, Reason, Result};
pub use faults::Fault;
pub use store::Store;

use auth::{Pki, Tokens};
use faults::Faults;
use server::Server;
use store::WriteCtx;

/// The user of the default credentials.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// How the double starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Serve HTTPS with the double's own CA and certificates.
    pub tls: bool,
    /// The admin's bearer token (a random one when `None`).
    pub token: Option<String>,
    /// How many changes watches can replay; older versions are answered with 410.
    pub history: usize,
    /// Time between watch bookmarks.
    pub bookmark_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            token: None,
            history: 1000,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// The state every request sees.
pub struct App {
    /// The objects.
    pub store: Store,
    /// Accepted bearer tokens.
    pub tokens: Tokens,
    /// Injected faults.
    pub faults: Faults,
    bookmark_interval: Duration,
    address: OnceLock<String>,
    server: OnceLock<Weak<Server>>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    fn server_address(&self) -> String {
        self.address.get().cloned().unwrap_or_default()
    }

    /// Stop listening for `duration`, then listen again (the control endpoint's
    /// `unreachable`). The answer to the control request goes out first.
    fn unreachable_for(&self, duration: Duration) {
        let Some(server) = self.server.get().and_then(Weak::upgrade) else {
            return;
        };
        self.tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            server.stop_listening().await;
            tokio::time::sleep(duration).await;
            if let Err(e) = server.start_listening().await {
                tracing::error!(error = %e, "cannot listen again");
            }
        });
    }
}

/// A running double.
pub struct KubeDouble {
    app: Arc<App>,
    server: Arc<Server>,
    pki: Option<Pki>,
    token: String,
    admin_cert: Option<auth::Issued>,
}

impl std::fmt::Debug for KubeDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDouble")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A credential for a kubeconfig.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A bearer token.
    Token(String),
    /// A client certificate and key (PEM).
    ClientCert {
        /// Certificate (PEM).
        cert_pem: String,
        /// Key (PEM).
        key_pem: String,
    },
    /// Nothing (every request is 401).
    Anonymous,
}

impl KubeDouble {
    /// Start serving.
    pub async fn start(options: Options) -> Result<Self> {
        let token = options
            .token
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let app = Arc::new(App {
            store: Store::new(options.history),
            tokens: Tokens::default(),
            faults: Faults::default(),
            bookmark_interval: options.bookmark_interval,
            address: OnceLock::new(),
            server: OnceLock::new(),
            tasks: TaskTracker::new(),
        });
        app.tokens.add(&token, ADMIN_USER);
        let (pki, tls, admin_cert) = if options.tls {
            let pki = Pki::new()?;
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            let ip = options.listen.ip();
            if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
                names.push(ip.to_string());
            }
            let server_cert = pki.issue_server(&names)?;
            let config = pki.server_config(&server_cert)?;
            let admin = pki.issue_client(ADMIN_USER)?;
            (Some(pki), Some(config), Some(admin))
        } else {
            (None, None, None)
        };
        let router = axum::Router::new()
            .fallback(rest::handle)
            .with_state(app.clone());
        let server = Arc::new(Server::start(options.listen, router, tls).await?);
        let _ = app.address.set(server.addr().to_string());
        let _ = app.server.set(Arc::downgrade(&server));
        tracing::info!(url = %format!("{}://{}", if pki.is_some() { "https" } else { "http" }, server.addr()), "kube-double serving");
        Ok(KubeDouble {
            app,
            server,
            pki,
            token,
            admin_cert,
        })
    }

    /// The server URL (`https://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.server.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The admin's bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The CA certificate (PEM), with TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.pki.as_ref().map(Pki::ca_pem)
    }

    /// A client certificate for `user` signed by the double's CA (TLS only).
    pub fn issue_client_cert(&self, user: &str) -> Result<Credential> {
        let pki = self
            .pki
            .as_ref()
            .ok_or_else(|| Error::bad_request("client certificates need TLS"))?;
        let issued = pki.issue_client(user)?;
        Ok(Credential::ClientCert {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        })
    }

    /// Accept `token` as `user`.
    pub fn add_token(&self, token: &str, user: &str) {
        self.app.tokens.add(token, user);
    }

    /// The admin kubeconfig: token, and with TLS the CA and the admin client certificate.
    pub fn kubeconfig(&self) -> Value {
        let mut config = self.kubeconfig_with(&Credential::Token(self.token.clone()));
        if let Some(cert) = &self.admin_cert {
            config["users"][0]["user"]["client-certificate-data"] = json!(b64(&cert.cert_pem));
            config["users"][0]["user"]["client-key-data"] = json!(b64(&cert.key_pem));
        }
        config
    }

    /// A kubeconfig for this double with one credential.
    pub fn kubeconfig_with(&self, credential: &Credential) -> Value {
        let mut cluster = json!({"server": self.url()});
        if let Some(pki) = &self.pki {
            cluster["certificate-authority-data"] = json!(b64(pki.ca_pem()));
        }
        let user = match credential {
            Credential::Token(t) => json!({"token": t}),
            Credential::ClientCert { cert_pem, key_pem } => {
                json!({"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)})
            }
            Credential::Anonymous => json!({}),
        };
        json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kube-double", "cluster": cluster}],
            "users": [{"name": "kube-double-user", "user": user}],
            "contexts": [{"name": "kube-double", "context": {"cluster": "kube-double", "user": "kube-double-user", "namespace": "default"}}],
            "current-context": "kube-double",
            "preferences": {},
        })
    }

    /// Write the admin kubeconfig to `path` (mode 0600: it holds credentials).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        write_private(
            path,
            &serde_json::to_string_pretty(&self.kubeconfig()).unwrap_or_default(),
        )
    }

    /// The store, for direct inspection.
    pub fn store(&self) -> &Store {
        &self.app.store
    }

    /// Inject a fault into every API request.
    pub fn set_fault(&self, fault: Fault) {
        self.app.faults.set(fault);
    }

    /// Stop listening (clients get "connection refused", open connections are cut) or
    /// listen again on the same address.
    pub async fn set_reachable(&self, reachable: bool) -> Result<()> {
        if reachable {
            self.server.start_listening().await
        } else {
            self.server.stop_listening().await;
            Ok(())
        }
    }

    /// Forget the change history: watches from any earlier resourceVersion get 410.
    pub fn compact(&self) {
        self.app.store.compact();
    }

    /// Create node `name` or replace its conditions (`(type, status)` pairs), as a
    /// kubelet would, through the status subresource. Returns the stored Node.
    pub fn set_node_conditions(&self, name: &str, conditions: &[(&str, &str)]) -> Result<Value> {
        let conditions: Vec<Value> = conditions
            .iter()
            .map(|(t, s)| {
                json!({"type": t, "status": s, "reason": format!("KubeDouble{t}{s}"), "message": format!("set by the test: {t}={s}"), "lastHeartbeatTime": store::now(), "lastTransitionTime": store::now()})
            })
            .collect();
        self.set_node_status_conditions(name, conditions)
    }

    /// As [`Self::set_node_conditions`], with full condition objects.
    pub fn set_node_status_conditions(&self, name: &str, conditions: Vec<Value>) -> Result<Value> {
        let store = &self.app.store;
        let kind = store.kind("", "v1", "nodes").expect("built-in kind");
        let ctx = WriteCtx {
            manager: "kubelet".into(),
            subresource: Some("status".into()),
            api_version: "v1".into(),
            ..WriteCtx::default()
        };
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"conditions": conditions.clone(), "nodeInfo": {"kubeletVersion": format!("v1.{}.0", discovery::MINOR)}},
        });
        let (stored, _) = store.write(&kind, None, name, true, &ctx, |current| {
            Ok(match current {
                None => node.clone(),
                Some(c) => {
                    let mut new = c.clone();
                    new["status"]["conditions"] = json!(conditions);
                    new
                }
            })
        })?;
        Ok(stored)
    }

    /// Stop serving and wait for every connection to end.
    pub async fn shutdown(self) {
        self.app.tasks.close();
        self.server.stop_listening().await;
    }
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::Io {
        what: format!("write {}", path.display()),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents.as_bytes()).map_err(io)
}
