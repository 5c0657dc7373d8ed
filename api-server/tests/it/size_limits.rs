//! One object size limit, the store's: the request body limit and the check of the stored
//! encoding before every write agree with what the backend really stores (etcd's
//! `--max-request-bytes`, measured here against a real etcd with the longest key), over it
//! is a 413 problem with nothing written, and no problem detail carries backend text.

use std::time::Duration;

use krake_api_server::config::StorageConfig;
use krake_api_server::storage::embedded::DEFAULT_MAX_VALUE_BYTES;
use rstest::rstest;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

const LIMIT: usize = DEFAULT_MAX_VALUE_BYTES;
const NS: &str = "ns1";

/// The longest namespace and names (255 characters), so that on etcd the key takes as much
/// of the request as it ever can.
fn long(prefix: &str) -> String {
    format!("{prefix}{}", "n".repeat(255 - prefix.len()))
}

fn metric(name: &str, padding: usize) -> Value {
    let mut body = K::Metric.sample(name);
    body["spec"]["provider"]["metric"] = json!("x".repeat(padding));
    body
}

fn body_len(body: &Value) -> usize {
    serde_json::to_vec(body).unwrap().len()
}

fn metric_padding(object: &Value) -> usize {
    object["spec"]["provider"]["metric"]
        .as_str()
        .expect("the metric name")
        .len()
}

/// The size in the 413 detail `The object is N bytes, ...`.
fn reported_size(detail: &str) -> usize {
    let rest = detail
        .split("The object is ")
        .nth(1)
        .unwrap_or_else(|| panic!("no size in {detail:?}"));
    rest.split(' ').next().unwrap().parse().expect("a size")
}

/// Backend text that must never reach a client.
fn assert_no_backend_text(problem: &Value) {
    let detail = problem["detail"].as_str().expect("a detail").to_lowercase();
    for word in [
        "etcd",
        "grpc",
        "redb",
        "transport",
        "127.0.0.1",
        "status:",
        "tonic",
        "/core/",
        "line ",
        "column",
        "expected",
    ] {
        assert!(!detail.contains(word), "backend text {word:?} in {problem}");
    }
}

/// Objects up to exactly the limit are stored and read back, by POST and by a PUT that grows
/// them; one byte more is a 413 with nothing written and the old object intact.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn objects_up_to_the_limit_are_stored_and_one_byte_more_is_413(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let ns = long("ns-");
    let collection = K::Metric.collection(&ns);
    let names = [long("m0-"), long("m1-"), long("m2-")];

    // A body of exactly the limit passes the body limit; its encoding (with uid and
    // timestamps) does not fit, and the 413 tells its size, hence the encoding's overhead.
    let body_overhead = body_len(&metric(&names[0], 0));
    let r = srv
        .post(&collection, &metric(&names[0], LIMIT - body_overhead))
        .await;
    assert_problem(&r, 413, None, "413: The object is ");
    assert_no_backend_text(&r.2);
    let stored_overhead = reported_size(r.2["detail"].as_str().unwrap()) - (LIMIT - body_overhead);
    assert!(stored_overhead > body_overhead, "{stored_overhead}");
    assert_eq!(srv.get(&K::Metric.object(&ns, &names[0])).await.0, 404);

    // Exactly the limit: stored and read back.
    let at_limit = LIMIT - stored_overhead;
    let created = srv
        .create_body(K::Metric, &ns, &metric(&names[0], at_limit))
        .await;
    let read = srv.get_ok(&K::Metric.object(&ns, &names[0])).await;
    assert_eq!(read, created);
    assert_eq!(metric_padding(&read), at_limit);

    // One byte more: 413 before the write.
    let r = srv
        .post(&collection, &metric(&names[1], at_limit + 1))
        .await;
    assert_problem(&r, 413, None, &format!("{} bytes", LIMIT + 1));
    assert_no_backend_text(&r.2);
    assert_eq!(srv.get(&K::Metric.object(&ns, &names[1])).await.0, 404);

    // A PUT growing an object to exactly the limit (an update's transaction holds the key
    // three times) is stored; one byte more is refused and the old object stays.
    srv.create_body(K::Metric, &ns, &metric(&names[2], 10))
        .await;
    let object = K::Metric.object(&ns, &names[2]);
    let mut grow = metric(&names[2], at_limit);
    grow["metadata"]["namespace"] = json!(ns);
    let (status, _, grown) = srv.put(&object, &grow).await;
    assert_eq!(status, 200, "{grown}");
    assert_eq!(metric_padding(&grown), at_limit);
    grow["spec"]["provider"]["metric"] = json!("y".repeat(at_limit + 1));
    let r = srv.put(&object, &grow).await;
    assert_problem(&r, 413, None, &format!("{} bytes", LIMIT + 1));
    assert_no_backend_text(&r.2);
    assert_eq!(srv.get_ok(&object).await, grown);

    // The list holds both stored objects whole.
    let list = srv.get_ok(&collection).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

/// A body over the limit is a 413 without the server reading it whole: a client announcing
/// 1 GiB (or streaming chunks without end) gets its answer after little more than the limit.
#[rstest]
#[case::embedded_length(Backend::Embedded, false)]
#[case::embedded_chunked(Backend::Embedded, true)]
#[case::etcd_length(Backend::Etcd, false)]
#[case::etcd_chunked(Backend::Etcd, true)]
#[tokio::test]
async fn a_body_far_over_the_limit_is_refused_unread(
    #[case] backend: Backend,
    #[case] chunked: bool,
) {
    let srv = TestServer::start(backend).await;
    let stream = TcpStream::connect(srv.addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", 1u64 << 30)
    };
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: krake\r\nContent-Type: application/json\r\n{framing}\r\n\r\n",
        K::Metric.collection(NS)
    );
    // Twice the limit at most, against 1 GiB (or no end) announced.
    let sending = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..(2 * LIMIT / chunk.len()) {
            if chunked {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                writer.write_all(&chunk).await?;
                writer.write_all(b"\r\n").await?;
            } else {
                writer.write_all(&chunk).await?;
            }
        }
        // Keep the connection open: the answer must not depend on the body's end.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(writer)
    });
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buffer = [0u8; 4096];
        loop {
            let n = reader.read(&mut buffer).await.expect("read the answer");
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&response);
            if let Some(end) = text.find("\r\n\r\n")
                && text[end..].contains('}')
            {
                break;
            }
        }
    })
    .await;
    sending.abort();
    assert!(read.is_ok(), "no answer before the body ended");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.to_lowercase()
            .contains("content-type: application/problem+json"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "413: The object is larger than the {LIMIT} bytes the store accepts"
        )),
        "{text}"
    );
    assert_eq!(srv.list_names(&K::Metric.collection(NS)).await.len(), 0);
}

/// An etcd whose `--max-request-bytes` is lower than the server was told still answers
/// 413 (etcd's refusal is recognised), with no etcd text; a broken etcd is a 503 and a
/// corrupt stored object a 500, both with fixed details; readiness names no backend either.
#[tokio::test]
async fn etcd_refusals_and_failures_carry_no_backend_text() {
    let mut srv = TestServer::with_config(Backend::Etcd, |c| {
        if let StorageConfig::Etcd {
            max_request_bytes, ..
        } = &mut c.storage
        {
            // The test etcd runs with its default (1.5 MiB).
            *max_request_bytes = 4 * 1024 * 1024;
        }
    })
    .await;
    let r = srv
        .post(&K::Metric.collection(NS), &metric("big", 2 * 1024 * 1024))
        .await;
    assert_problem(&r, 413, None, "413: The object is larger than");
    assert_no_backend_text(&r.2);
    assert_eq!(srv.get(&K::Metric.object(NS, "big")).await.0, 404);

    // A value no Krake server wrote.
    let key = format!("/core/metrics/{NS}/corrupt");
    let mut client = srv.etcd_client().await;
    client
        .put(key.as_str(), "{\"api\": \"core\", \"kind\": [1, 2", None)
        .await
        .expect("write into etcd");
    let r = srv.get(&K::Metric.object(NS, "corrupt")).await;
    assert_problem_exact(&r, 500, None, "500: A stored object cannot be read.");
    assert_no_backend_text(&r.2);
    client
        .delete(key.as_str(), None)
        .await
        .expect("delete from etcd");

    srv.etcd.as_mut().expect("the test etcd").stop();
    let r = srv.get(&K::Metric.object(NS, "any")).await;
    assert_problem_exact(
        &r,
        503,
        None,
        "503: The storage is unavailable; retry later.",
    );
    assert_no_backend_text(&r.2);
    let r = srv.post(&K::Metric.collection(NS), &metric("m", 1)).await;
    assert_problem_exact(
        &r,
        503,
        None,
        "503: The storage is unavailable; retry later.",
    );
    let r = srv.get(&K::Metric.collection(NS)).await;
    assert_problem_exact(
        &r,
        503,
        None,
        "503: The storage is unavailable; retry later.",
    );
    // Readiness is public: it says what is wrong, never the backend's words.
    let ready = reqwest::get(format!("http://{}/readyz", srv.addr))
        .await
        .expect("readyz answers");
    assert_eq!(ready.status(), 503);
    let problem: Value = ready.json().await.expect("a problem document");
    assert_no_backend_text(&problem);
}
