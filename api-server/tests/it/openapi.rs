//! The OpenAPI document: served at `/openapi/v3` to every authenticated user, valid
//! OpenAPI 3.1 (`openapi-spec-validator`), describing exactly the routes the router serves,
//! checked in as `api-server/openapi.json`; and requests generated from it by
//! `schemathesis` against a real `krake-api` process on either store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use krake_api_server::config::AuthorizationMode;
use krake_testkit::api_server::ApiServerProcess;
use krake_testkit::etcd::EtcdServer;
use krake_testkit::tools::find_program;
use reqwest::Method;
use serde_json::Value;

use crate::common::*;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(METHOD, path)` of every operation of a document.
fn document_operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| !matches!(k.as_str(), "parameters" | "summary" | "description"))
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_document_is_served_and_checked_in() {
    let server = TestServer::embedded().await;
    let response = server
        .raw(Method::GET, krake_api_server::OPENAPI_PATH, None, &[])
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(
        response.headers["content-type"],
        "application/json; charset=utf-8"
    );
    let served = response.json();
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served, krake_api_server::openapi_document());

    let checked_in =
        std::fs::read_to_string(manifest_dir().join("openapi.json")).unwrap_or_default();
    assert!(
        checked_in == krake_api_server::render_openapi_document(),
        "api-server/openapi.json is out of date; run \
         `cargo run -p krake-api-server --bin krake-api -- openapi --out api-server/openapi.json` \
         (`just generate`)"
    );
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let validator = find_program(
        "openapi-spec-validator",
        "OPENAPI_SPEC_VALIDATOR",
        &[],
        "hack/install-tools.sh installs it (PyPI openapi-spec-validator)",
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, krake_api_server::render_openapi_document()).expect("write");
    let output = tokio::process::Command::new(&validator)
        .arg(&file)
        .output()
        .await
        .expect("run openapi-spec-validator");
    assert!(
        output.status.success(),
        "openapi-spec-validator rejects the document:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The validator must be able to fail: a document with a dangling reference.
    let mut broken = krake_api_server::openapi_document();
    broken["paths"]["/me"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] =
        serde_json::json!({"$ref": "#/components/schemas/Nothing"});
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).expect("write");
    let output = tokio::process::Command::new(&validator)
        .arg(&file)
        .output()
        .await
        .expect("run openapi-spec-validator");
    assert!(
        !output.status.success(),
        "a dangling $ref passed validation"
    );
}

/// The document's operations are the router's routes, both ways: every route the router is
/// built from is documented, and every documented operation is answered by a route (not by
/// the fallback's 404 or a 405).
#[tokio::test]
async fn the_document_describes_exactly_the_routes() {
    let document = krake_api_server::openapi_document();
    let documented = document_operations(&document);
    let routes: BTreeSet<(String, String)> = krake_api_server::api_routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path))
        .collect();
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes without an operation: {undocumented:?}; operations without a route: {unrouted:?}"
    );
    // 14 kinds: 5 routes each, + 8 all-namespaces lists, + 6 status and 6 other
    // subresources, + 7 others (/, /me, /release, /openapi/v3, /livez, /readyz, /metrics).
    assert_eq!(routes.len(), 14 * 5 + 8 + 6 + 6 + 7);

    let server = TestServer::embedded().await;
    for (method, path) in &documented {
        let concrete = path.replace("{ns}", "default").replace("{name}", "missing");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let r = server.raw(method.clone(), &concrete, None, &[]).await;
        let fallback = r.status == StatusCode::NOT_FOUND && r.json()["detail"] == "404: Not Found";
        assert!(
            r.status != StatusCode::METHOD_NOT_ALLOWED && !fallback,
            "{method} {concrete} is documented but not routed: {} {}",
            r.status,
            r.text()
        );
    }
}

/// Like `/`, the document needs an authenticated user but no permission (kube-apiserver
/// lets every authenticated user read its discovery and OpenAPI documents).
#[tokio::test]
async fn the_document_needs_authentication_but_no_permission() {
    let denied = TestServer::with_config(Backend::Embedded, |config| {
        config.authorization = AuthorizationMode::AlwaysDeny;
        config.static_user = Some("nobody".into());
    })
    .await;
    let (status, _, _) = denied.get("/kubernetes/applications").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = denied.get(krake_api_server::OPENAPI_PATH).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let anonymous_refused = TestServer::with_config(Backend::Embedded, |config| {
        config.allow_anonymous = false;
    })
    .await;
    let (status, headers, body) = anonymous_refused.get(krake_api_server::OPENAPI_PATH).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_problem_content_type(&headers);
}

fn assert_problem_content_type(headers: &reqwest::header::HeaderMap) {
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json"),
        "{headers:?}"
    );
}

/// The name of the objects the examples phase creates.
const EXAMPLE: &str = "example";

/// Valid requests for schemathesis' examples phase (generated data rarely passes
/// validation): for every kind, create the test sample named [`EXAMPLE`] (in `default`),
/// read it, update its labels and delete it. Keyed by `"METHOD path-template"`.
fn examples() -> Value {
    let mut examples = serde_json::Map::new();
    for kind in all_kinds() {
        let mut collection_params = serde_json::Map::new();
        if kind.namespaced() {
            collection_params.insert("ns".into(), "default".into());
        }
        let mut object_params = collection_params.clone();
        object_params.insert("name".into(), EXAMPLE.into());
        let body = kind.sample(EXAMPLE);
        let mut updated = body.clone();
        updated["metadata"]["labels"] = serde_json::json!({"example": "updated"});
        // A PUT names the namespace it does not change.
        updated["metadata"]["namespace"] = kind.expected_ns("default");
        let collection = kind.collection("{ns}");
        let object = kind.object("{ns}", "{name}");
        examples.insert(
            format!("POST {collection}"),
            serde_json::json!([{"path_parameters": collection_params, "body": body}]),
        );
        examples.insert(
            format!("GET {object}"),
            serde_json::json!([{"path_parameters": object_params}]),
        );
        examples.insert(
            format!("PUT {object}"),
            serde_json::json!([{"path_parameters": object_params, "body": updated}]),
        );
        examples.insert(
            format!("DELETE {object}"),
            serde_json::json!([{"path_parameters": object_params}]),
        );
    }
    Value::Object(examples)
}

/// Generated test cases per API operation (README: "The OpenAPI document").
const EXAMPLES_PER_OPERATION: u32 = 20;

/// Run schemathesis against a `krake-api` process started with `args`: every operation of
/// the served document, [`EXAMPLES_PER_OPERATION`] generated cases each (plus the
/// coverage phase's boundary cases), failing on any 5xx, any response that does not match
/// the document (status, content type, body schema) or a request the server does not
/// answer in time.
async fn schemathesis_against(args: &[&str]) {
    let schemathesis = find_program(
        "schemathesis",
        "SCHEMATHESIS",
        &[],
        "hack/install-tools.sh installs it (PyPI schemathesis)",
    );
    let data = tempfile::tempdir().expect("temporary directory");
    let mut all_args: Vec<&str> = args.to_vec();
    // No controllers run here: a `blocking` wait would always run into this limit.
    all_args.extend(["--blocking-timeout", "1"]);
    let mut server =
        ApiServerProcess::start(Path::new(env!("CARGO_BIN_EXE_krake-api")), &all_args).await;
    let document_url = format!("{}{}", server.url(), krake_api_server::OPENAPI_PATH);
    let hooks = manifest_dir().join("tests/it/schemathesis_hooks.py");
    let examples = examples();
    let operations = document_operations(&krake_api_server::openapi_document());
    for key in examples.as_object().unwrap().keys() {
        let (method, path) = key.split_once(' ').unwrap();
        assert!(
            operations.contains(&(method.to_string(), path.to_string())),
            "example for an unknown operation {key}"
        );
    }
    let examples_file = data.path().join("examples.json");
    std::fs::write(&examples_file, serde_json::to_vec(&examples).unwrap()).expect("write");
    let run = tokio::process::Command::new(&schemathesis)
        .current_dir(data.path())
        .env("SCHEMATHESIS_HOOKS", &hooks)
        .env("KRAKE_OPENAPI_EXAMPLES", &examples_file)
        .env("NO_COLOR", "1")
        .args(["run", &document_url])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--seed",
            "20260412",
            "--request-timeout",
            "15",
            "--generation-database",
            "none",
            "--suppress-health-check",
            "all",
            "--no-color",
            "--max-examples",
        ])
        .arg(EXAMPLES_PER_OPERATION.to_string())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(400), run)
        .await
        .expect("schemathesis finished within 400 s")
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("passed"),
        "schemathesis ran no test:\n{stdout}\n{stderr}"
    );
    // Still answering after everything it was sent.
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", server.url()))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("the server still answers");
    assert_eq!(ready.status(), StatusCode::OK);
    // The examples ran: every kind's example object exists, marked deleted.
    for kind in all_kinds() {
        let url = format!("{}{}", server.url(), kind.object("default", EXAMPLE));
        let response = client.get(&url).send().await.expect("GET example");
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let object: Value = response.json().await.expect("JSON");
        assert_eq!(
            object["metadata"]["labels"]["example"], "updated",
            "{url}: {object}"
        );
        assert!(!object["metadata"]["deleted"].is_null(), "{url}: {object}");
    }
    let status = server.terminate().await;
    assert!(status.success(), "krake-api exited with {status}");
}

#[tokio::test]
async fn schemathesis_finds_nothing_on_the_embedded_store() {
    let data = tempfile::tempdir().expect("temporary directory");
    let dir = data.path().join("data");
    schemathesis_against(&["--data-dir", dir.to_str().unwrap()]).await;
}

#[tokio::test]
async fn schemathesis_finds_nothing_on_etcd() {
    let etcd = EtcdServer::start().await;
    let endpoint = etcd.endpoint();
    schemathesis_against(&["--etcd-endpoints", &endpoint]).await;
}
