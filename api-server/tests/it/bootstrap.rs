//! `krake-api bootstrap` (loading roles and objects from YAML files): the binary run as a process against an embedded data
//! directory (and once against a real etcd); results checked in the store and through the
//! API. The rollback of replaced objects is also checked at library level with a store
//! that fails on demand.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use crate::common::{K, StatusCode};
use async_trait::async_trait;
use krake_api_server::Error;
use krake_api_server::bootstrap::{self, BootstrapError, Document};
use krake_api_server::config::{AuthorizationMode, Config, StorageConfig};
use krake_api_server::server::{RunningServer, open_store};
use krake_api_server::storage::{KeyValue, Store, WatchStream, WriteOutcome};
use krake_testkit::etcd::EtcdServer;
use krake_testkit::eventually;
use krake_testkit::users::CONTROLLER_USERS;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const BASE_ROLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bootstrap/base_roles.yaml");

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::Builder::new()
                .prefix("krake-bootstrap-")
                .tempdir()
                .expect("temporary directory"),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write input file");
        path.display().to_string()
    }

    /// `krake-api bootstrap ARGS` on this directory's embedded store.
    async fn bootstrap(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let data = self.data().display().to_string();
        let mut all = vec!["bootstrap", "--data-dir", data.as_str()];
        all.extend_from_slice(args);
        run(self.dir.path(), &all, stdin).await
    }

    /// The stored value of `key` (`None` when absent). The store is closed again, so
    /// that the next bootstrap process can open it.
    async fn stored(&self, key: &str) -> Option<Value> {
        let store = open_store(&Config::for_embedded(self.data()))
            .await
            .expect("open the embedded store");
        let kv = store.get(key).await.expect("read");
        kv.map(|kv| serde_json::from_slice(&kv.value).expect("stored JSON"))
    }
}

/// Run the binary with `args` in `cwd` (so no stray `api.yaml` is picked up).
async fn run(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_krake-api"));
    command
        .args(args)
        .current_dir(cwd)
        .env("KRAKE_API_LOG_LEVEL", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("start krake-api");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("krake-api bootstrap finishes in time")
        .expect("krake-api output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "bootstrap failed: {}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn assert_failure(output: &Output, message: &str) {
    assert!(
        !output.status.success(),
        "bootstrap unexpectedly succeeded: {}",
        text(&output.stdout)
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(message),
        "stderr does not mention {message:?}: {stderr}"
    );
}

const METRICS_YAML: &str = r#"
api: core
kind: GlobalMetricsProvider
metadata:
  name: static-provider
spec:
  type: static
  static:
    metrics: {load: 0.5}
---
api: core
kind: GlobalMetric
metadata:
  name: load
  # read-only fields and garbage in them are ignored, as on a create
  uid: not-a-uuid
  created: yesterday
spec: {allowed_values: [], min: 0, max: 1, provider: {name: static-provider, metric: load}}
---
api: core
kind: MetricsProvider
metadata: {name: prom, namespace: team-a}
spec: {type: prometheus, prometheus: {url: "http://prometheus:9090"}}
---
api: core
kind: Metric
metadata: {name: latency, namespace: team-a}
spec: {allowed_values: [1, 2], min: 0, max: 100, provider: {name: prom, metric: latency}}
"#;

fn role_yaml(name: &str, verbs: &str) -> String {
    format!(
        "api: core\nkind: Role\nmetadata: {{name: {name}}}\nrules:\n- {{api: kubernetes, resources: [applications], namespaces: [dev], verbs: [{verbs}]}}\n"
    )
}

/// A client of a server on `config`'s store as `user`.
struct Client {
    base: String,
    http: reqwest::Client,
    server: RunningServer,
}

impl Client {
    /// A server on `config`'s storage; with `store`, on that already opened store.
    async fn start(
        mut config: Config,
        store: Option<Arc<dyn Store>>,
        user: &str,
        mode: AuthorizationMode,
    ) -> Client {
        config.log_level = "warn".into();
        config.static_user = Some(user.to_string());
        config.authorization = mode;
        let server = match store {
            Some(store) => krake_api_server::server::start_with_store(config, store).await,
            None => krake_api_server::start(config).await,
        }
        .expect("server starts");
        let client = Client {
            base: format!("http://{}", server.addr),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            server,
        };
        eventually("readiness", std::time::Duration::from_secs(20), || async {
            let r = client
                .http
                .get(format!("{}/readyz", client.base))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == StatusCode::OK => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await;
        client
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let value = response.json().await.unwrap_or(Value::Null);
        (status, value)
    }
}

#[tokio::test]
async fn base_roles_and_objects_load_and_are_served() {
    let dir = Dir::new();
    // Files and standard input in one run.
    let output = dir.bootstrap(&[BASE_ROLES, "-"], Some(METRICS_YAML)).await;
    assert_success(&output);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("created Role 'role:system'"), "{stdout}");
    assert!(
        stdout.contains("created Metric 'latency' in namespace 'team-a'"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 18 + 4, "{stdout}");

    // Served by an RBAC server as system:admin, bound to role:system by base_roles.yaml.
    // Every server of this test shares the one opened store.
    let store = open_store(&Config::for_embedded(dir.data()))
        .await
        .expect("store");
    let admin = Client::start(
        Config::for_embedded(dir.data()),
        Some(store.clone()),
        "system:admin",
        AuthorizationMode::Rbac,
    )
    .await;
    let (status, roles) = admin.send(Method::GET, "/core/roles", None).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    let mut names: Vec<&str> = roles["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["metadata"]["name"].as_str().expect("name"))
        .collect();
    names.sort();
    let mut expected: Vec<String> = CONTROLLER_USERS
        .iter()
        .map(|u| format!("role:{u}"))
        .collect();
    expected.push("role:system".into());
    expected.sort();
    assert_eq!(names, expected);
    let (status, metric) = admin
        .send(Method::GET, "/core/globalmetrics/load", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let uid = metric["metadata"]["uid"].as_str().expect("uid");
    assert!(uuid_like(uid), "generated uid: {uid}");
    assert_ne!(metric["metadata"]["created"], json!("yesterday"));
    assert_eq!(metric["metadata"]["namespace"], Value::Null);
    let (status, metric) = admin
        .send(Method::GET, "/core/namespaces/team-a/metrics/latency", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metric["spec"]["allowed_values"], json!([1, 2]));
    let (_, me) = admin.send(Method::GET, "/me", None).await;
    assert_eq!(
        me,
        json!({"user": "system:admin", "roles": ["role:system"]})
    );
    // Objects a controller works on.
    for (kind, ns, name) in [
        (K::Application, "dev", "app"),
        (K::Cluster, "dev", "cluster"),
        (K::MagnumCluster, "dev", "magnum"),
        (K::Project, "dev", "project"),
        (K::Cloud, "dev", "cloud"),
    ] {
        let (status, body) = admin
            .send(Method::POST, &kind.collection(ns), Some(kind.sample(name)))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    admin.server.stop().await.expect("stop");

    // The controller roles grant what each controller does, and not more.
    let app = "/kubernetes/namespaces/dev/applications/app";
    let cluster = "/kubernetes/namespaces/dev/clusters/cluster";
    let magnum = "/openstack/namespaces/dev/magnumclusters/magnum";
    // (user, method, path, allowed)
    let cases: [(&str, Method, String, bool); 34] = [
        (
            "system:scheduler",
            Method::GET,
            "/kubernetes/applications".into(),
            true,
        ),
        (
            "system:scheduler",
            Method::PUT,
            format!("{app}/binding"),
            true,
        ),
        (
            "system:scheduler",
            Method::PUT,
            format!("{app}/status"),
            true,
        ),
        ("system:scheduler", Method::PUT, app.into(), false),
        ("system:scheduler", Method::DELETE, app.into(), false),
        (
            "system:scheduler",
            Method::POST,
            K::Cluster.collection("dev"),
            true,
        ),
        (
            "system:scheduler",
            Method::PUT,
            format!("{cluster}/binding"),
            true,
        ),
        (
            "system:scheduler",
            Method::PUT,
            format!("{magnum}/binding"),
            true,
        ),
        (
            "system:scheduler",
            Method::GET,
            "/infrastructure/clouds".into(),
            true,
        ),
        (
            "system:scheduler",
            Method::GET,
            "/core/globalmetrics/load".into(),
            true,
        ),
        ("system:scheduler", Method::GET, "/core/roles".into(), false),
        ("system:gc", Method::GET, "/core/rolebindings".into(), true),
        (
            "system:gc",
            Method::DELETE,
            "/infrastructure/namespaces/dev/clouds/x".into(),
            true,
        ),
        ("system:gc", Method::PUT, app.into(), true),
        ("system:gc", Method::PUT, format!("{app}/status"), false),
        (
            "system:gc",
            Method::POST,
            K::Application.collection("dev"),
            false,
        ),
        (
            "system:kubernetes-application",
            Method::PUT,
            app.into(),
            true,
        ),
        (
            "system:kubernetes-application",
            Method::PUT,
            format!("{app}/status"),
            true,
        ),
        (
            "system:kubernetes-application",
            Method::GET,
            cluster.into(),
            true,
        ),
        (
            "system:kubernetes-application",
            Method::PUT,
            format!("{app}/binding"),
            false,
        ),
        (
            "system:kubernetes-application",
            Method::PUT,
            format!("{cluster}/status"),
            false,
        ),
        (
            "system:kubernetes-cluster",
            Method::GET,
            "/kubernetes/clusters".into(),
            true,
        ),
        (
            "system:kubernetes-cluster",
            Method::PUT,
            format!("{cluster}/status"),
            true,
        ),
        (
            "system:kubernetes-cluster",
            Method::PUT,
            cluster.into(),
            false,
        ),
        ("system:infrastructure", Method::PUT, cluster.into(), true),
        (
            "system:infrastructure",
            Method::GET,
            "/infrastructure/globalinfrastructureproviders/im".into(),
            true,
        ),
        (
            "system:infrastructure",
            Method::GET,
            "/kubernetes/applications".into(),
            false,
        ),
        (
            "system:magnum",
            Method::PUT,
            format!("{magnum}/status"),
            true,
        ),
        (
            "system:magnum",
            Method::POST,
            K::Cluster.collection("dev"),
            true,
        ),
        (
            "system:magnum",
            Method::PUT,
            format!("{magnum}/binding"),
            false,
        ),
        (
            "system:complete-hook",
            Method::PUT,
            format!("{app}/complete"),
            true,
        ),
        ("system:complete-hook", Method::GET, app.into(), false),
        (
            "system:shutdown-hook",
            Method::PUT,
            format!("{app}/shutdown"),
            true,
        ),
        (
            "system:shutdown-hook",
            Method::PUT,
            format!("{app}/complete"),
            false,
        ),
    ];
    for user in CONTROLLER_USERS {
        let client = Client::start(
            Config::for_embedded(dir.data()),
            Some(store.clone()),
            user,
            AuthorizationMode::Rbac,
        )
        .await;
        let (_, me) = client.send(Method::GET, "/me", None).await;
        assert_eq!(me, json!({"user": user, "roles": [format!("role:{user}")]}));
        for (_, method, path, allowed) in cases.iter().filter(|c| c.0 == user) {
            // Bodies are deliberately invalid: authorization comes first, so an allowed
            // request fails validation (or finds nothing) instead of changing anything.
            let body = (*method != Method::GET && *method != Method::DELETE).then(|| json!("x"));
            let (status, response) = client.send(method.clone(), path, body).await;
            let forbidden = status == StatusCode::FORBIDDEN;
            assert_eq!(
                !forbidden, *allowed,
                "{user}: {method} {path} -> {status} {response}"
            );
        }
        client.server.stop().await.expect("stop");
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}

#[tokio::test]
async fn existing_objects_fail_without_force_and_are_replaced_with_it() {
    let dir = Dir::new();
    let first = dir.file("first.yaml", &role_yaml("r1", "get"));
    assert_success(&dir.bootstrap(&[&first], None).await);
    let original = dir.stored("/core/roles/r1").await.expect("r1 stored");

    // New objects before and after an existing one.
    let second = dir.file(
        "second.yaml",
        &format!(
            "{}---\napi: core\nkind: RoleBinding\nmetadata: {{name: new-binding}}\nusers: [u]\nroles: [r1]\n---\n{}---\n{}",
            role_yaml("new-before", "get"),
            role_yaml("r1", "get, list, update"),
            role_yaml("new-after", "list"),
        ),
    );
    let output = dir.bootstrap(&[&second], None).await;
    assert_failure(&output, "Role 'r1' already exists");
    assert!(
        text(&output.stderr).contains("rolled back the 2 earlier write(s)"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(dir.stored("/core/roles/new-before").await, None);
    assert_eq!(dir.stored("/core/rolebindings/new-binding").await, None);
    assert_eq!(dir.stored("/core/roles/new-after").await, None);
    assert_eq!(dir.stored("/core/roles/r1").await, Some(original.clone()));

    // --force replaces it (new uid, new rules) and writes the rest.
    let output = dir.bootstrap(&["--force", &second], None).await;
    assert_success(&output);
    assert!(
        text(&output.stdout).contains("replaced Role 'r1'"),
        "{}",
        text(&output.stdout)
    );
    let replaced = dir.stored("/core/roles/r1").await.expect("r1 stored");
    assert_ne!(replaced["metadata"]["uid"], original["metadata"]["uid"]);
    assert_eq!(
        replaced["rules"][0]["verbs"],
        json!(["get", "list", "update"])
    );
    assert!(dir.stored("/core/roles/new-before").await.is_some());
    assert!(dir.stored("/core/rolebindings/new-binding").await.is_some());
    assert!(dir.stored("/core/roles/new-after").await.is_some());
}

#[tokio::test]
async fn an_invalid_document_anywhere_writes_nothing() {
    let dir = Dir::new();
    let valid = format!("{}---\n{}", role_yaml("a", "get"), role_yaml("b", "list"));
    for (name, bad, message) in [
        // Metric without a namespace.
        (
            "no-namespace",
            "api: core\nkind: Metric\nmetadata: {name: m}\nspec: {allowed_values: [], min: 0, max: 1, provider: {name: p, metric: x}}\n",
            "metadata.namespace is required",
        ),
        // Unknown verb.
        (
            "bad-verb",
            "api: core\nkind: Role\nmetadata: {name: c}\nrules: [{api: '', resources: [''], namespaces: [''], verbs: [destroy]}]\n",
            "Invalid enum member destroy",
        ),
        // Missing required field.
        (
            "missing-users",
            "api: core\nkind: RoleBinding\nmetadata: {name: d}\nroles: [a]\n",
            "users",
        ),
        ("not-a-mapping", "- just\n- a list\n", "not a mapping"),
    ] {
        for bad_first in [false, true] {
            let text_in = if bad_first {
                format!("{bad}---\n{valid}")
            } else {
                format!("{valid}---\n{bad}")
            };
            let file = dir.file(&format!("{name}.yaml"), &text_in);
            let output = dir.bootstrap(&[&file], None).await;
            assert_failure(&output, message);
            assert_failure(&output, "nothing written");
            assert_eq!(dir.stored("/core/roles/a").await, None, "{name}");
            assert_eq!(dir.stored("/core/roles/b").await, None, "{name}");
        }
    }
    // Invalid YAML in a second file: the first file is not written either.
    let good = dir.file("good.yaml", &valid);
    let broken = dir.file("broken.yaml", "api: core\nkind: [\n");
    assert_failure(
        &dir.bootstrap(&[&good, &broken], None).await,
        "not valid YAML",
    );
    assert_eq!(dir.stored("/core/roles/a").await, None);
}

#[tokio::test]
async fn non_core_kinds_are_rejected() {
    let dir = Dir::new();
    for (api, kind) in [
        ("kubernetes", "Application"),
        ("infrastructure", "GlobalCloud"),
        ("openstack", "Project"),
        ("kubernetes", "Role"),
        ("core", "Bogus"),
    ] {
        let doc = format!(
            "{}---\napi: {api}\nkind: {kind}\nmetadata: {{name: x, namespace: dev}}\nspec: {{}}\n",
            role_yaml("a", "get")
        );
        let file = dir.file("kinds.yaml", &doc);
        let output = dir.bootstrap(&[&file], None).await;
        assert_failure(&output, &format!("{api}/{kind} cannot be bootstrapped"));
        assert_eq!(dir.stored("/core/roles/a").await, None);
    }
}

#[tokio::test]
async fn bootstrap_on_etcd() {
    let etcd = EtcdServer::start().await;
    let dir = Dir::new();
    let endpoint = etcd.endpoint();
    let file = dir.file("roles.yaml", &role_yaml("r1", "get"));
    let args = [
        "bootstrap",
        "--etcd-endpoints",
        endpoint.as_str(),
        file.as_str(),
    ];
    assert_success(&run(dir.dir.path(), &args, None).await);
    assert_failure(&run(dir.dir.path(), &args, None).await, "already exists");
    let mut config = Config::for_embedded(dir.data());
    config.storage = StorageConfig::Etcd {
        endpoints: vec![endpoint.clone()],
        max_request_bytes: krake_api_server::storage::etcd::DEFAULT_MAX_REQUEST_BYTES,
    };
    let client = Client::start(config, None, "admin", AuthorizationMode::AlwaysAllow).await;
    let (status, role) = client.send(Method::GET, "/core/roles/r1", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(role["rules"][0]["verbs"], json!(["get"]));
    client.server.stop().await.expect("stop");
}

/// A store that fails `create` of one key.
struct FailingStore {
    inner: Arc<dyn Store>,
    fail_key: String,
}

#[async_trait]
impl Store for FailingStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), Error> {
        self.inner.list(prefix).await
    }
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<WriteOutcome, Error> {
        if key == self.fail_key {
            return Err(Error::StorageUnavailable("injected failure".into()));
        }
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Vec<u8>, rev: i64) -> Result<WriteOutcome, Error> {
        self.inner.update(key, value, rev).await
    }
    async fn delete(&self, key: &str, rev: i64) -> Result<WriteOutcome, Error> {
        self.inner.delete(key, rev).await
    }
    async fn watch(&self, prefix: &str, start: Option<i64>) -> Result<WatchStream, Error> {
        self.inner.watch(prefix, start).await
    }
    async fn current_revision(&self) -> Result<i64, Error> {
        self.inner.current_revision().await
    }
    fn max_value_bytes(&self) -> usize {
        self.inner.max_value_bytes()
    }
}

fn documents(yaml: &str) -> Vec<Document> {
    bootstrap::parse_documents("test", yaml).expect("valid YAML")
}

#[tokio::test]
async fn a_failed_write_restores_replaced_objects_and_deletes_inserted_ones() {
    let dir = Dir::new();
    let inner = open_store(&Config::for_embedded(dir.data()))
        .await
        .expect("store");
    bootstrap::bootstrap(&*inner, &documents(&role_yaml("existing", "get")), false)
        .await
        .expect("first bootstrap");
    let before = inner
        .get("/core/roles/existing")
        .await
        .unwrap()
        .expect("stored");

    let store = FailingStore {
        inner: inner.clone(),
        fail_key: "/core/roles/fails".into(),
    };
    // `existing` replaced twice and `new` inserted (then replaced) before the failure.
    let yaml = [
        role_yaml("existing", "list"),
        role_yaml("new", "get"),
        role_yaml("existing", "update"),
        role_yaml("new", "delete"),
        role_yaml("fails", "get"),
    ]
    .join("---\n");
    let err = bootstrap::bootstrap(&store, &documents(&yaml), true)
        .await
        .expect_err("the injected failure");
    match &err {
        BootstrapError::Write {
            reason,
            undone,
            rollback_failures,
        } => {
            assert!(reason.contains("injected failure"), "{reason}");
            assert_eq!(*undone, 4);
            assert!(rollback_failures.is_empty(), "{rollback_failures:?}");
        }
        other => panic!("unexpected error: {other}"),
    }
    let after = inner
        .get("/core/roles/existing")
        .await
        .unwrap()
        .expect("restored");
    assert_eq!(
        text(&after.value),
        text(&before.value),
        "the original object is back"
    );
    assert_eq!(inner.get("/core/roles/new").await.unwrap(), None);
    assert_eq!(inner.get("/core/roles/fails").await.unwrap(), None);
}
