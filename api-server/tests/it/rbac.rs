//! `authorization: RBAC` over real HTTP, including where it deliberately differs from
//! upstream: several in-process servers share one embedded store — an always-allow server for the
//! administrator who writes Roles, RoleBindings and objects, and one RBAC server per
//! user (static authentication), so each request is made as a known user against the
//! same data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{K, Resp, StatusCode, assert_problem_exact, eventually};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use krake_api_server::config::{AuthorizationMode, Config};
use krake_api_server::server::{RunningServer, open_store, start_with_store};
use krake_api_server::storage::Store;
use reqwest::Method;
use serde_json::{Value, json};

const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// One embedded store and the servers started on it.
pub(crate) struct Env {
    pub(crate) store: Arc<dyn Store>,
    servers: Vec<RunningServer>,
    dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        for server in &self.servers {
            server.shutdown();
        }
    }
}

/// A client of one server.
#[derive(Clone)]
pub(crate) struct Api {
    base: String,
    http: reqwest::Client,
}

impl Env {
    pub(crate) async fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("krake-rbac-")
            .tempdir()
            .expect("temporary directory");
        let store = open_store(&Config::for_embedded(dir.path().join("data")))
            .await
            .expect("embedded store");
        Env {
            store,
            servers: Vec::new(),
            dir,
        }
    }

    async fn server(&mut self, user: Option<&str>, mode: AuthorizationMode) -> Api {
        let mut config = Config::for_embedded(self.dir.path().join("data"));
        config.log_level = "warn".into();
        config.static_user = user.map(str::to_string);
        config.authorization = mode;
        let server = start_with_store(config, self.store.clone())
            .await
            .expect("the API server starts");
        let api = Api {
            base: format!("http://{}", server.addr),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
        };
        self.servers.push(server);
        api.wait_ready().await;
        api
    }

    /// The administrator (always-allow), who writes roles, bindings and objects.
    pub(crate) async fn admin(&mut self) -> Api {
        self.server(Some("admin"), AuthorizationMode::AlwaysAllow)
            .await
    }

    /// An RBAC server on which every request is `user`.
    pub(crate) async fn user(&mut self, user: &str) -> Api {
        self.server(Some(user), AuthorizationMode::Rbac).await
    }
}

impl Api {
    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("response body");
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let (status, _, value) = self.send(method.clone(), path, body).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {value}");
        value
    }

    pub(crate) async fn create(&self, kind: K, ns: &str, name: &str) -> Value {
        self.ok(Method::POST, &kind.collection(ns), Some(&kind.sample(name)))
            .await
    }

    async fn names(&self, path: &str) -> Vec<String> {
        let list = self.ok(Method::GET, path, None).await;
        let mut names: Vec<String> = list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["metadata"]["namespace"].as_str().unwrap_or("-"),
                    o["metadata"]["name"].as_str().expect("name")
                )
            })
            .collect();
        names.sort();
        names
    }

    async fn watch(&self, path: &str) -> Watch {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("watch request");
        assert_eq!(response.status(), StatusCode::OK, "watch {path}");
        Watch {
            stream: Box::pin(response.bytes_stream()),
            buf: Vec::new(),
        }
    }

    async fn me(&self) -> Value {
        self.ok(Method::GET, "/me", None).await
    }
}

/// An NDJSON watch stream.
struct Watch {
    stream: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: Vec<u8>,
}

impl Watch {
    /// The next event (heartbeats skipped), or `None` when nothing arrives in `timeout`.
    async fn next_event(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.len() > 1 {
                    return Some(serde_json::from_slice(&line).expect("JSON event"));
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.extend_from_slice(&chunk),
                Ok(_) => panic!("the watch stream ended"),
                Err(_) => return None,
            }
        }
    }

    /// `namespace/name` of the next event.
    async fn next_name(&mut self) -> String {
        let event = self
            .next_event(EVENT_TIMEOUT)
            .await
            .expect("a watch event in time");
        format!(
            "{}/{}",
            event["object"]["metadata"]["namespace"]
                .as_str()
                .unwrap_or("-"),
            event["object"]["metadata"]["name"].as_str().expect("name")
        )
    }
}

pub(crate) fn role(name: &str, rules: Value) -> Value {
    json!({"api": "core", "kind": "Role", "metadata": {"name": name}, "rules": rules})
}

pub(crate) fn rule(api: &str, resources: &[&str], namespaces: &[&str], verbs: &[&str]) -> Value {
    json!({"api": api, "resources": resources, "namespaces": namespaces, "verbs": verbs})
}

pub(crate) fn binding(name: &str, users: &[&str], roles: &[&str]) -> Value {
    json!({"api": "core", "kind": "RoleBinding", "metadata": {"name": name}, "users": users, "roles": roles})
}

/// Bind `roles` to `users` through the API as `admin`.
pub(crate) async fn bind(admin: &Api, name: &str, users: &[&str], roles: &[&str]) {
    admin
        .ok(
            Method::POST,
            "/core/rolebindings",
            Some(&binding(name, users, roles)),
        )
        .await;
}

pub(crate) async fn put_role(admin: &Api, body: &Value) {
    let name = body["metadata"]["name"].as_str().expect("name");
    let (status, _, _) = admin.send(Method::POST, "/core/roles", Some(body)).await;
    if status == StatusCode::CONFLICT {
        let mut current = admin
            .ok(Method::GET, &format!("/core/roles/{name}"), None)
            .await;
        current["rules"] = body["rules"].clone();
        admin
            .ok(Method::PUT, &format!("/core/roles/{name}"), Some(&current))
            .await;
    } else {
        assert_eq!(status, StatusCode::OK, "create role {name}");
    }
}

/// DELETE, then remove the finalizers as the garbage collector would: the object leaves
/// the store. (Until then a Role or RoleBinding in deletion still counts, as upstream.)
async fn delete_fully(admin: &Api, path: &str) {
    let mut object = admin.ok(Method::DELETE, path, None).await;
    object["metadata"]["finalizers"] = json!([]);
    admin.ok(Method::PUT, path, Some(&object)).await;
    assert_eq!(
        admin.get(path).await.0,
        StatusCode::NOT_FOUND,
        "{path} is gone"
    );
}

fn assert_forbidden(resp: &Resp, what: &str) {
    assert_eq!(resp.0, StatusCode::FORBIDDEN, "{what}: {}", resp.2);
    assert_problem_exact(resp, 403, None, "403: Forbidden");
}

fn assert_allowed(resp: &Resp, what: &str) {
    assert!(
        resp.0 != StatusCode::FORBIDDEN && resp.0 != StatusCode::UNAUTHORIZED,
        "{what}: expected to pass authorization, got {} {}",
        resp.0,
        resp.2
    );
}

/// An object of `kind` as a full PUT body with a changed status (status subresources).
async fn status_body(admin: &Api, kind: K, ns: &str, name: &str) -> Value {
    admin.ok(Method::GET, &kind.object(ns, name), None).await
}

/// Who (client, name), method, path, body, and the status when authorization must pass
/// (`None`: 403).
type Case<'a> = (
    &'a Api,
    &'static str,
    Method,
    String,
    Option<Value>,
    Option<u16>,
);

#[tokio::test]
async fn rbac_matrix() {
    let mut env = Env::new().await;
    let admin = env.admin().await;
    for ns in ["dev", "prod"] {
        admin.create(K::Application, ns, "app").await;
        admin.create(K::Cluster, ns, "c").await;
        admin.create(K::Project, ns, "p").await;
        admin.create(K::Metric, ns, "m").await;
        admin.create(K::MetricsProvider, ns, "mp").await;
    }
    admin.create(K::Role, "-", "some-role").await;
    admin.create(K::GlobalMetric, "-", "gm").await;

    for r in [
        role(
            "dev-apps",
            json!([rule(
                "kubernetes",
                &["applications"],
                &["dev"],
                &["create", "list", "get", "update", "delete"]
            )]),
        ),
        role(
            "dev-app-status",
            json!([rule(
                "kubernetes",
                &["applications/status"],
                &["dev"],
                &["update"]
            )]),
        ),
        // `""` api: every API with these resources.
        role(
            "any-api",
            json!([rule("", &["metrics", "clusters"], &["prod"], &["get"])]),
        ),
        // `""` resource: every resource of the API, subresources included.
        role(
            "any-resource",
            json!([rule("openstack", &[""], &["dev"], &["list", "update"])]),
        ),
        // `""` namespace: every namespace.
        role(
            "any-namespace",
            json!([rule("core", &["metricsproviders"], &[""], &["get"])]),
        ),
        // No namespaces: still grants global kinds, never a namespace.
        role(
            "no-namespaces",
            json!([rule("core", &["roles", "metrics"], &[], &["get"])]),
        ),
        // `*` has no special meaning.
        role("star", json!([rule("*", &["*"], &["*"], &["get", "list"])])),
    ] {
        put_role(&admin, &r).await;
    }
    for b in [
        binding("alice", &["alice"], &["dev-apps", "dev-app-status"]),
        binding("dave", &["dave"], &["dev-apps"]),
        binding("bob", &["bob"], &["any-api", "any-resource"]),
        binding("carol", &["carol"], &["any-namespace", "no-namespaces"]),
        binding("ghost", &["ghost"], &["does-not-exist"]),
        binding("star", &["star"], &["star"]),
    ] {
        admin.ok(Method::POST, "/core/rolebindings", Some(&b)).await;
    }

    let alice = env.user("alice").await;
    let dave = env.user("dave").await;
    let bob = env.user("bob").await;
    let carol = env.user("carol").await;
    let ghost = env.user("ghost").await;
    let star = env.user("star").await;
    let eve = env.user("eve").await;

    let app = |ns: &str| K::Application.object(ns, "app");
    let dev_status = status_body(&admin, K::Application, "dev", "app").await;
    let prod_status = status_body(&admin, K::Application, "prod", "app").await;
    let binding_body = json!({"api": "kubernetes", "kind": "ClusterBinding", "cluster": {"api": "kubernetes", "kind": "Cluster", "namespace": "dev", "name": "c"}});

    // (who, method, path, body, allowed, expected status when allowed)
    let cases: Vec<Case<'_>> = vec![
        // alice: applications in dev (all verbs) and applications/status in dev.
        (&alice, "alice", Method::GET, app("dev"), None, Some(200)),
        (&alice, "alice", Method::GET, app("prod"), None, None),
        (
            &alice,
            "alice",
            Method::GET,
            K::Application.collection("dev"),
            None,
            Some(200),
        ),
        (
            &alice,
            "alice",
            Method::GET,
            K::Application.collection("prod"),
            None,
            None,
        ),
        (
            &alice,
            "alice",
            Method::POST,
            K::Application.collection("dev"),
            Some(K::Application.sample("new")),
            Some(200),
        ),
        (
            &alice,
            "alice",
            Method::POST,
            K::Application.collection("prod"),
            Some(K::Application.sample("new")),
            None,
        ),
        (
            &alice,
            "alice",
            Method::PUT,
            format!("{}/status", app("dev")),
            Some(dev_status.clone()),
            Some(200),
        ),
        (
            &alice,
            "alice",
            Method::PUT,
            format!("{}/status", app("prod")),
            Some(prod_status.clone()),
            None,
        ),
        // retry is authorized as applications/status update (400: not DEGRADED).
        (
            &alice,
            "alice",
            Method::PUT,
            format!("{}/retry", app("dev")),
            None,
            Some(400),
        ),
        (
            &alice,
            "alice",
            Method::PUT,
            format!("{}/binding", app("dev")),
            Some(binding_body.clone()),
            None,
        ),
        (
            &alice,
            "alice",
            Method::PUT,
            format!("{}/complete", app("dev")),
            Some(json!({"token": "x"})),
            None,
        ),
        (
            &alice,
            "alice",
            Method::PUT,
            format!("{}/shutdown", app("dev")),
            Some(json!({"token": "x"})),
            None,
        ),
        (
            &alice,
            "alice",
            Method::GET,
            K::Cluster.object("dev", "c"),
            None,
            None,
        ),
        (
            &alice,
            "alice",
            Method::GET,
            K::Project.collection("dev"),
            None,
            None,
        ),
        (
            &alice,
            "alice",
            Method::GET,
            K::Role.all_collection(),
            None,
            None,
        ),
        // No namespace on the all-namespaces route: granted regardless of the namespaces.
        (
            &alice,
            "alice",
            Method::GET,
            K::Application.all_collection(),
            None,
            Some(200),
        ),
        (
            &alice,
            "alice",
            Method::DELETE,
            K::Application.object("dev", "new"),
            None,
            Some(200),
        ),
        (&alice, "alice", Method::DELETE, app("prod"), None, None),
        // dave: `applications` does not grant `applications/status`.
        (
            &dave,
            "dave",
            Method::PUT,
            format!("{}/status", app("dev")),
            Some(dev_status.clone()),
            None,
        ),
        (
            &dave,
            "dave",
            Method::PUT,
            format!("{}/retry", app("dev")),
            None,
            None,
        ),
        (
            &dave,
            "dave",
            Method::PUT,
            app("dev"),
            Some(json!("not an object")),
            Some(422),
        ),
        // bob: `""` api (metrics in core, clusters in kubernetes, get in prod) ...
        (
            &bob,
            "bob",
            Method::GET,
            K::Metric.object("prod", "m"),
            None,
            Some(200),
        ),
        (
            &bob,
            "bob",
            Method::GET,
            K::Cluster.object("prod", "c"),
            None,
            Some(200),
        ),
        (
            &bob,
            "bob",
            Method::GET,
            K::Cluster.object("dev", "c"),
            None,
            None,
        ),
        (
            &bob,
            "bob",
            Method::GET,
            K::Cluster.collection("prod"),
            None,
            None,
        ),
        (
            &bob,
            "bob",
            Method::GET,
            K::GlobalMetric.object("-", "gm"),
            None,
            None,
        ),
        // ... and `""` resource in openstack/dev: any resource and subresource, list+update.
        (
            &bob,
            "bob",
            Method::GET,
            K::Project.collection("dev"),
            None,
            Some(200),
        ),
        (
            &bob,
            "bob",
            Method::GET,
            K::MagnumCluster.collection("dev"),
            None,
            Some(200),
        ),
        (
            &bob,
            "bob",
            Method::PUT,
            format!("{}/status", K::Project.object("dev", "p")),
            Some(json!("x")),
            Some(422),
        ),
        (
            &bob,
            "bob",
            Method::PUT,
            format!("{}/binding", K::MagnumCluster.object("dev", "missing")),
            Some(json!({})),
            Some(404),
        ),
        (
            &bob,
            "bob",
            Method::GET,
            K::Project.object("dev", "p"),
            None,
            None,
        ),
        (
            &bob,
            "bob",
            Method::GET,
            K::Project.collection("prod"),
            None,
            None,
        ),
        (
            &bob,
            "bob",
            Method::DELETE,
            K::Project.object("dev", "p"),
            None,
            None,
        ),
        // carol: `""` namespace, and an empty namespaces list.
        (
            &carol,
            "carol",
            Method::GET,
            K::MetricsProvider.object("prod", "mp"),
            None,
            Some(200),
        ),
        (
            &carol,
            "carol",
            Method::GET,
            K::MetricsProvider.object("other", "missing"),
            None,
            Some(404),
        ),
        (
            &carol,
            "carol",
            Method::GET,
            K::MetricsProvider.collection("dev"),
            None,
            None,
        ),
        (
            &carol,
            "carol",
            Method::GET,
            K::Role.object("-", "some-role"),
            None,
            Some(200),
        ),
        (
            &carol,
            "carol",
            Method::GET,
            K::Role.object("-", "missing"),
            None,
            Some(404),
        ),
        (
            &carol,
            "carol",
            Method::GET,
            K::Metric.object("dev", "m"),
            None,
            None,
        ),
        (
            &carol,
            "carol",
            Method::GET,
            K::RoleBinding.object("-", "alice"),
            None,
            None,
        ),
        // A binding to a missing role grants nothing; `*` is no wildcard.
        (
            &ghost,
            "ghost",
            Method::GET,
            K::Role.all_collection(),
            None,
            None,
        ),
        (
            &star,
            "star",
            Method::GET,
            K::Role.all_collection(),
            None,
            None,
        ),
        (&star, "star", Method::GET, app("dev"), None, None),
        // Unknown user: forbidden everywhere, even for objects that do not exist.
        (&eve, "eve", Method::GET, app("dev"), None, None),
        (
            &eve,
            "eve",
            Method::GET,
            K::Application.object("dev", "missing"),
            None,
            None,
        ),
        (
            &eve,
            "eve",
            Method::POST,
            K::Role.all_collection(),
            Some(json!("garbage")),
            None,
        ),
    ];
    for (api, user, method, path, body, expected) in &cases {
        let resp = api.send(method.clone(), path, body.as_ref()).await;
        let what = format!("{user}: {method} {path}");
        match expected {
            Some(status) => {
                assert_allowed(&resp, &what);
                assert_eq!(resp.0.as_u16(), *status, "{what}: {}", resp.2);
            }
            None => assert_forbidden(&resp, &what),
        }
    }
    // The denied create and delete did nothing.
    admin.ok(Method::GET, &app("prod"), None).await;
    assert_eq!(
        admin.get(&K::Application.object("prod", "new")).await.0,
        404
    );
}

#[tokio::test]
async fn anonymous_is_unauthorized() {
    let mut env = Env::new().await;
    let admin = env.admin().await;
    // Even a binding naming system:anonymous grants nothing.
    put_role(
        &admin,
        &role("all", json!([rule("", &[""], &[""], &["get", "list"])])),
    )
    .await;
    bind(&admin, "anon", &["system:anonymous"], &["all"]).await;
    let anonymous = env.server(None, AuthorizationMode::Rbac).await;
    for path in [
        K::Role.all_collection(),
        K::Application.collection("dev"),
        K::Application.object("dev", "x"),
    ] {
        let resp = anonymous.get(&path).await;
        assert_problem_exact(&resp, 401, None, "401: Unauthorized");
    }
    // Non-resource routes are not authorized.
    assert_eq!(
        anonymous.me().await,
        json!({"user": "system:anonymous", "roles": ["all"]})
    );
    assert_eq!(anonymous.get("/").await.0, 200);
}

#[tokio::test]
async fn role_changes_take_effect_without_restart() {
    let mut env = Env::new().await;
    let admin = env.admin().await;
    admin.create(K::Application, "dev", "app").await;
    let frank = env.user("frank").await;
    let path = K::Application.object("dev", "app");
    let status_of = |api: Api, path: String| async move { api.get(&path).await.0 };
    let wait_for = |want: StatusCode, what: &'static str| {
        let frank = frank.clone();
        let path = path.clone();
        async move {
            eventually(what, Duration::from_secs(10), || {
                let frank = frank.clone();
                let path = path.clone();
                async move {
                    let status = status_of(frank, path).await;
                    if status == want { Ok(()) } else { Err(status) }
                }
            })
            .await
        }
    };
    assert_eq!(frank.get(&path).await.0, StatusCode::FORBIDDEN);
    assert_eq!(frank.me().await["roles"], json!([]));

    // A binding first (to a role that does not exist yet), then the role.
    bind(&admin, "frank", &["frank"], &["reader"]).await;
    eventually("the binding in /me", Duration::from_secs(10), || {
        let frank = frank.clone();
        async move {
            let roles = frank.me().await["roles"].clone();
            if roles == json!(["reader"]) {
                Ok(())
            } else {
                Err(roles)
            }
        }
    })
    .await;
    assert_eq!(frank.get(&path).await.0, StatusCode::FORBIDDEN);
    put_role(
        &admin,
        &role(
            "reader",
            json!([rule("kubernetes", &["applications"], &["dev"], &["get"])]),
        ),
    )
    .await;
    wait_for(StatusCode::OK, "the new role to grant").await;

    // The role loses the verb.
    put_role(
        &admin,
        &role(
            "reader",
            json!([rule("kubernetes", &["applications"], &["dev"], &["list"])]),
        ),
    )
    .await;
    wait_for(StatusCode::FORBIDDEN, "the changed role to deny").await;

    // Back, then the role is deleted.
    put_role(
        &admin,
        &role(
            "reader",
            json!([rule("kubernetes", &["applications"], &["dev"], &["get"])]),
        ),
    )
    .await;
    wait_for(StatusCode::OK, "the restored role to grant").await;
    delete_fully(&admin, "/core/roles/reader").await;
    wait_for(StatusCode::FORBIDDEN, "the deleted role to deny").await;

    // Role again, then the binding loses the user, then the binding is deleted.
    put_role(
        &admin,
        &role(
            "reader",
            json!([rule("kubernetes", &["applications"], &["dev"], &["get"])]),
        ),
    )
    .await;
    wait_for(StatusCode::OK, "the re-created role to grant").await;
    let mut b = admin
        .ok(Method::GET, "/core/rolebindings/frank", None)
        .await;
    b["users"] = json!(["someone-else"]);
    admin
        .ok(Method::PUT, "/core/rolebindings/frank", Some(&b))
        .await;
    wait_for(StatusCode::FORBIDDEN, "the user removed from the binding").await;
    assert_eq!(frank.me().await["roles"], json!([]));
    b = admin
        .ok(Method::GET, "/core/rolebindings/frank", None)
        .await;
    b["users"] = json!(["frank"]);
    admin
        .ok(Method::PUT, "/core/rolebindings/frank", Some(&b))
        .await;
    wait_for(StatusCode::OK, "the user back in the binding").await;
    delete_fully(&admin, "/core/rolebindings/frank").await;
    wait_for(StatusCode::FORBIDDEN, "the deleted binding").await;
}

#[tokio::test]
async fn me_lists_bound_roles_with_and_without_rbac() {
    let mut env = Env::new().await;
    let admin = env.admin().await;
    for b in [
        binding("b1", &["alice", "bob"], &["zeta", "alpha"]),
        binding("b2", &["alice"], &["alpha", "missing-role"]),
        binding("b3", &["bob"], &["only-bob"]),
    ] {
        admin.ok(Method::POST, "/core/rolebindings", Some(&b)).await;
    }
    let expected = json!({"user": "alice", "roles": ["alpha", "missing-role", "zeta"]});
    // RBAC: from the index.
    let rbac = env.user("alice").await;
    assert_eq!(rbac.me().await, expected);
    // always-allow: from storage.
    let plain = env
        .server(Some("alice"), AuthorizationMode::AlwaysAllow)
        .await;
    assert_eq!(plain.me().await, expected);
    assert_eq!(admin.me().await, json!({"user": "admin", "roles": []}));
}

#[tokio::test]
async fn all_namespaces_list_and_watch_show_only_listable_namespaces() {
    let mut env = Env::new().await;
    let admin = env.admin().await;
    let before = admin.create(K::Cluster, "prod", "c1").await;
    let before_rv = before["metadata"]["resource_version"]
        .as_str()
        .expect("resource_version")
        .to_string();
    admin.create(K::Application, "dev", "a1").await;
    admin.create(K::Application, "prod", "p1").await;
    admin.create(K::Application, "qa", "q1").await;
    for r in [
        role(
            "dev-lister",
            json!([
                rule("kubernetes", &["applications"], &["dev"], &["list"]),
                // `get` in prod does not make prod listable.
                rule("kubernetes", &["applications"], &["prod"], &["get"]),
                rule("kubernetes", &["clusters"], &[], &["list"]),
            ]),
        ),
        role("root", json!([rule("", &[""], &[""], &["list"])])),
    ] {
        put_role(&admin, &r).await;
    }
    bind(&admin, "dev", &["dev-user"], &["dev-lister"]).await;
    bind(&admin, "root", &["root-user"], &["root"]).await;
    let dev = env.user("dev-user").await;
    let root = env.user("root-user").await;

    let all = K::Application.all_collection();
    assert_eq!(dev.names(&all).await, vec!["dev/a1"]);
    assert_eq!(root.names(&all).await, vec!["dev/a1", "prod/p1", "qa/q1"]);
    // A list rule without namespaces: the route is allowed, but nothing is visible.
    assert!(dev.names(&K::Cluster.all_collection()).await.is_empty());
    assert_eq!(
        root.names(&K::Cluster.all_collection()).await,
        vec!["prod/c1"]
    );
    // The namespace routes keep their rules.
    assert_forbidden(
        &dev.get(&K::Application.collection("prod")).await,
        "list prod",
    );
    assert_eq!(
        dev.names(&K::Application.collection("dev")).await,
        vec!["dev/a1"]
    );

    // Watches: live events and resumed history are filtered the same way.
    let mut dev_watch = dev.watch(&format!("{all}?watch&heartbeat=1")).await;
    let mut root_watch = root.watch(&format!("{all}?watch&heartbeat=1")).await;
    let mut dev_resumed = dev
        .watch(&format!(
            "{all}?watch&heartbeat=1&resource_version={before_rv}"
        ))
        .await;
    // The history after `before_rv` (read from storage: these objects predate the
    // server's watch cache) holds dev/a1, prod/p1 and qa/q1: only dev/a1 is visible.
    assert_eq!(dev_resumed.next_name().await, "dev/a1");
    admin.create(K::Application, "prod", "p2").await;
    admin.create(K::Application, "dev", "a2").await;
    assert_eq!(dev_watch.next_name().await, "dev/a2");
    assert_eq!(root_watch.next_name().await, "prod/p2");
    assert_eq!(root_watch.next_name().await, "dev/a2");
    assert_eq!(dev_resumed.next_name().await, "dev/a2");

    // A watcher's scope is fixed when it opens: granting prod later does not widen it.
    put_role(
        &admin,
        &role(
            "dev-lister",
            json!([rule(
                "kubernetes",
                &["applications"],
                &["dev", "prod"],
                &["list"]
            )]),
        ),
    )
    .await;
    eventually("prod to become listable", Duration::from_secs(10), || {
        let dev = dev.clone();
        let all = all.clone();
        async move {
            let names = dev.names(&all).await;
            if names.len() == 4 { Ok(()) } else { Err(names) }
        }
    })
    .await;
    let mut widened = dev.watch(&format!("{all}?watch&heartbeat=1")).await;
    admin.create(K::Application, "prod", "p3").await;
    admin.create(K::Application, "dev", "a3").await;
    assert_eq!(widened.next_name().await, "prod/p3");
    assert_eq!(widened.next_name().await, "dev/a3");
    assert_eq!(dev_watch.next_name().await, "dev/a3");
    assert!(
        dev_watch
            .next_event(Duration::from_millis(300))
            .await
            .is_none()
    );
}
