//! Errors of the HTTP layer itself, sent over raw TCP: requests hyper cannot parse (bad
//! framing, a URI or header section over its limits), bodies over the limit or broken
//! mid-way. Every one is answered with a problem document like any other error.

use std::time::Duration;

use crate::common::*;
use rstest::rstest;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One parsed HTTP/1 response.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Assert a problem document with `status`.
    fn assert_problem(&self, status: u16, what: &str) -> Value {
        let body = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{what}: body {body:?}");
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/problem+json"),
            "{what}: content type {ct:?}, body {body:?}"
        );
        let problem: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: problem body {body:?} is not JSON: {e}"));
        assert_eq!(problem["status"], status, "{what}: {problem}");
        assert!(problem["type"].is_string(), "{what}: {problem}");
        assert!(problem["detail"].is_string(), "{what}: {problem}");
        problem
    }
}

/// Read one response from `stream` (`buf` keeps what was read past it).
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status_line = lines.next().expect("status line");
                let status: u16 = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.parse().expect("content-length"))
                    .unwrap_or_else(|| panic!("response without content-length: {head}"));
                while buf.len() < end + 4 + length {
                    let mut chunk = [0u8; 8192];
                    let n = stream.read(&mut chunk).await.expect("read the body");
                    assert!(n > 0, "connection closed inside the body");
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                return RawResponse {
                    status,
                    headers,
                    body,
                };
            }
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.expect("read the response");
            assert!(
                n > 0,
                "connection closed without a (complete) response: {:?}",
                String::from_utf8_lossy(buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response in time")
}

/// Send `request` on a fresh connection and read the one response.
async fn exchange(srv: &TestServer, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request).await;
    read_response(&mut stream, &mut Vec::new()).await
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn requests_hyper_cannot_parse_get_problem_documents(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let long_uri = format!(
        "GET /core/roles?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    // Exactly hyper's default read buffer, unterminated: hyper gives up at that size
    // having read every byte sent (unread bytes would make the close a reset, which can
    // destroy the answer before the client reads it).
    let head = "GET /core/roles HTTP/1.1\r\nHost: x\r\nX-Big: ";
    let big_header = format!("{head}{}", "b".repeat(8192 + 4096 * 100 - head.len()));
    let many_headers = format!(
        "GET /core/roles HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..200)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage request line", b"NOT HTTP AT ALL\r\n\r\n".to_vec(), 400),
        (
            "space in a header name",
            b"GET /core/roles HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".to_vec(),
            400,
        ),
        (
            "invalid content-length",
            b"POST /core/roles HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
            400,
        ),
        (
            "conflicting content-lengths",
            b"POST /core/roles HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
                .to_vec(),
            400,
        ),
        (
            "unknown transfer coding",
            b"POST /core/roles HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            400,
        ),
        ("URI too long", long_uri.into_bytes(), 414),
        ("header section too large", big_header.into_bytes(), 431),
        ("too many headers", many_headers.into_bytes(), 431),
    ];
    for (what, request, status) in cases {
        exchange(&srv, &request).await.assert_problem(status, what);
    }
}

#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn broken_bodies_get_problem_documents(#[case] backend: Backend) {
    // Bodies over the limit (413 problems, by length and chunked) are the size-limit tests'.
    let srv = TestServer::start(backend).await;
    // A chunked body whose framing breaks half-way.
    let r = exchange(
        &srv,
        b"POST /core/roles HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\nZZ\r\n\r\n",
    )
    .await;
    let problem = r.assert_problem(400, "broken chunked body");
    assert_eq!(problem["detail"], "400: Bad Request");
    assert_eq!(srv.list_names(&K::Role.all_collection()).await, vec![]);
}

/// hyper's own error after a served request on the same connection.
#[rstest]
#[case::embedded(Backend::Embedded)]
#[case::etcd(Backend::Etcd)]
#[tokio::test]
async fn a_bad_request_after_a_good_one_on_one_connection(#[case] backend: Backend) {
    let srv = TestServer::start(backend).await;
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let mut buf = Vec::new();
    stream
        .write_all(b"GET /core/roles HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut stream, &mut buf).await;
    assert_eq!(
        first.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&first.body)
    );
    assert!(
        first
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json"))
    );
    let _ = stream
        .write_all(b"GET /core/roles HTTP/1.1\r\nHo st: x\r\n\r\n")
        .await;
    read_response(&mut stream, &mut buf)
        .await
        .assert_problem(400, "bad request after a good one");
    // The server closes the connection after it.
    let mut rest = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut rest))
        .await
        .expect("the connection closes")
        .unwrap_or(0);
    assert_eq!(n, 0, "unexpected bytes after the error: {:?}", &rest[..n]);
}
