//! Numbers at and beyond the 64-bit boundaries: what can be stored exactly is stored
//! exactly, everything else is refused with 422 at its path, never silently altered
//! (`-9223372036854775809` once became `-9223372036854775808`). One test per class of
//! number field: required integers, optional integers, integers of a status, lists of
//! integers, floats and free-form content.

use crate::common::*;
use serde_json::Value;

const NS: &str = "ns1";
const PLACEHOLDER: &str = "@@number@@";

/// The JSON text of `body` with the value at `pointer` replaced by the literal `number`
/// (a `Value` cannot hold the literals under test).
fn with_literal(body: &Value, pointer: &str, number: &str) -> Vec<u8> {
    let mut b = body.clone();
    *b.pointer_mut(pointer).expect("path exists") = Value::String(PLACEHOLDER.into());
    serde_json::to_string(&b)
        .expect("JSON")
        .replace(&format!("\"{PLACEHOLDER}\""), number)
        .into_bytes()
}

/// Limits every integer class accepts and stores exactly.
const EXACT_INTEGERS: &[(&str, i64)] = &[
    ("9223372036854775807", i64::MAX),
    ("-9223372036854775808", i64::MIN),
    ("0", 0),
    ("5.0", 5),
    ("1e3", 1000),
    ("\"-9223372036854775808\"", i64::MIN),
];

/// Literals beyond the 64-bit range: refused wherever they appear.
const BEYOND_64_BITS: &[&str] = &[
    "-9223372036854775809",
    "18446744073709551616",
    "-99999999999999999999999",
    "1e400",
    "-1e400",
];

/// Literals a JSON decoder keeps, but that are no `i64` (typed integers refuse them).
const NOT_I64: &[&str] = &[
    "9223372036854775808",
    "18446744073709551615",
    "5.5",
    "9.3e18",
    "-9.3e18",
    "9223372036854775808.0",
    "\"9223372036854775808\"",
    "\"-9223372036854775809\"",
];

/// POST `sample` named `name` with `number` at `pointer`: the response.
async fn post_number(
    srv: &TestServer,
    kind: K,
    sample: &Value,
    name: &str,
    pointer: &str,
    number: &str,
) -> Resp {
    let mut sample = sample.clone();
    sample["metadata"]["name"] = name.into();
    let body = with_literal(&sample, pointer, number);
    let r = srv.post_raw(&kind.collection(NS), &body).await;
    (r.status, r.headers.clone(), r.json())
}

/// Every integer literal class against the integer field at `pointer` of `sample`.
async fn check_integer_field(
    srv: &TestServer,
    kind: K,
    sample: &Value,
    pointer: &str,
    field: &str,
) {
    for (i, (literal, expected)) in EXACT_INTEGERS.iter().enumerate() {
        let name = format!("ok{i}");
        let r = post_number(srv, kind, sample, &name, pointer, literal).await;
        assert_eq!(r.0, 200, "{field} = {literal}: {}", r.2);
        let got = srv.get_ok(&kind.object(NS, &name)).await;
        assert_eq!(
            got.pointer(pointer).and_then(Value::as_i64),
            Some(*expected),
            "{field} = {literal} stored as {:?}",
            got.pointer(pointer)
        );
    }
    for literal in BEYOND_64_BITS {
        let r = post_number(srv, kind, sample, "refused", pointer, literal).await;
        assert_problem(&r, 422, None, field);
        assert_problem(&r, 422, None, "Number out of range.");
    }
    for literal in NOT_I64 {
        let r = post_number(srv, kind, sample, "refused", pointer, literal).await;
        assert_problem(&r, 422, None, field);
        assert_problem(&r, 422, None, "Not a valid integer.");
    }
    assert_eq!(
        srv.list_names(&kind.collection(NS)).await.len(),
        EXACT_INTEGERS.len(),
        "only the exact values were stored"
    );
}

#[tokio::test]
async fn required_integers() {
    let srv = TestServer::embedded().await;
    // `backoff_delay` has a default, but once sent it must be an integer.
    let mut sample = K::Application.sample("x");
    sample["spec"]["backoff_delay"] = 1.into();
    check_integer_field(
        &srv,
        K::Application,
        &sample,
        "/spec/backoff_delay",
        "backoff_delay",
    )
    .await;
}

#[tokio::test]
async fn optional_integers() {
    let srv = TestServer::embedded().await;
    let sample = K::MagnumCluster.sample("x");
    check_integer_field(
        &srv,
        K::MagnumCluster,
        &sample,
        "/spec/node_count",
        "node_count",
    )
    .await;
}

#[tokio::test]
async fn lists_of_integers() {
    let srv = TestServer::embedded().await;
    let mut sample = K::Metric.sample("x");
    sample["spec"]["allowed_values"] = serde_json::json!([1, 0]);
    for (i, (literal, expected)) in EXACT_INTEGERS.iter().enumerate() {
        let body = with_literal(&sample, "/spec/allowed_values/1", literal);
        let mut body: Value = serde_json::from_slice(&body).expect("JSON");
        body["metadata"]["name"] = format!("ok{i}").into();
        let text = serde_json::to_vec(&body).unwrap();
        let r = srv.post_raw(&K::Metric.collection(NS), &text).await;
        assert_eq!(r.status, 200, "{literal}: {}", r.text());
        assert_eq!(
            r.json()["spec"]["allowed_values"][1].as_i64(),
            Some(*expected)
        );
    }
    for literal in BEYOND_64_BITS.iter().chain(NOT_I64) {
        let body = with_literal(&sample, "/spec/allowed_values/1", literal);
        let r = srv.post_raw(&K::Metric.collection(NS), &body).await;
        let r = (r.status, r.headers.clone(), r.json());
        assert_problem(&r, 422, None, "'allowed_values': {1: [");
    }
}

#[tokio::test]
async fn integers_of_a_status() {
    let srv = TestServer::embedded().await;
    srv.create(K::Application, NS, "a").await;
    let path = format!("{}/status", K::Application.object(NS, "a"));
    let mut current = srv.get_ok(&K::Application.object(NS, "a")).await;
    // Unconditional writes: the body is sent several times.
    current["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("resource_version");
    let pointer = "/status/container_health/desired_pods";
    for (literal, expected) in EXACT_INTEGERS {
        let r = srv
            .put_raw(&path, &with_literal(&current, pointer, literal))
            .await;
        assert_eq!(r.status, 200, "{literal}: {}", r.text());
        let got = srv.get_ok(&K::Application.object(NS, "a")).await;
        assert_eq!(
            got.pointer(pointer).and_then(Value::as_i64),
            Some(*expected)
        );
    }
    let before = srv.get_ok(&K::Application.object(NS, "a")).await;
    for literal in BEYOND_64_BITS.iter().chain(NOT_I64) {
        let r = srv
            .put_raw(&path, &with_literal(&current, pointer, literal))
            .await;
        let r = (r.status, r.headers.clone(), r.json());
        assert_problem(&r, 422, None, "desired_pods");
    }
    assert_eq!(srv.get_ok(&K::Application.object(NS, "a")).await, before);
}

#[tokio::test]
async fn floats() {
    let srv = TestServer::embedded().await;
    let metric = K::Metric.sample("x");
    for (i, (literal, expected)) in [("1.5e300", 1.5e300), ("-0.5", -0.5), ("7", 7.0)]
        .into_iter()
        .enumerate()
    {
        let r = post_number(
            &srv,
            K::Metric,
            &metric,
            &format!("ok{i}"),
            "/spec/min",
            literal,
        )
        .await;
        assert_eq!(r.0, 200, "{literal}: {}", r.2);
        assert_eq!(r.2["spec"]["min"].as_f64(), Some(expected));
    }
    for literal in BEYOND_64_BITS {
        let r = post_number(&srv, K::Metric, &metric, "refused", "/spec/min", literal).await;
        assert_problem(&r, 422, None, "'min': ['Number out of range.']");
    }
}

#[tokio::test]
async fn free_form_content() {
    let srv = TestServer::embedded().await;
    let pointer = "/spec/manifest/0/spec/replicas";
    let mut sample = K::Application.sample("x");
    sample["spec"]["manifest"][0]["spec"]["replicas"] = 1.into();
    for (i, literal) in ["18446744073709551615", "-9223372036854775808", "1.5"]
        .into_iter()
        .enumerate()
    {
        let mut body = sample.clone();
        body["metadata"]["name"] = format!("ok{i}").into();
        let r = srv
            .post_raw(
                &K::Application.collection(NS),
                &with_literal(&body, pointer, literal),
            )
            .await;
        assert_eq!(r.status, 200, "{literal}: {}", r.text());
        let got = srv
            .raw(
                reqwest::Method::GET,
                &K::Application.object(NS, &format!("ok{i}")),
                None,
                &[],
            )
            .await;
        assert!(
            got.text().contains(&format!("\"replicas\": {literal}")),
            "{literal} kept exactly: {}",
            got.text()
        );
    }
    for literal in BEYOND_64_BITS {
        let r = srv
            .post_raw(
                &K::Application.collection(NS),
                &with_literal(&sample, pointer, literal),
            )
            .await;
        let r = (r.status, r.headers.clone(), r.json());
        assert_problem_exact(
            &r,
            422,
            None,
            "{'spec': {'manifest': {0: {'spec': {'replicas': ['Number out of range.']}}}}}",
        );
    }
    assert_eq!(
        srv.list_names(&K::Application.collection(NS)).await.len(),
        3
    );
}
