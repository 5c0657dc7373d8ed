//! HTTPS serving over real loopback connections: server certificates, optional client
//! certificates as identity, certificate rotation without restart, start-up errors, and
//! the development PKI of `krake-api pki`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use krake_api_server::config::{Config, TlsConfig};
use krake_api_server::pki::{self, CertificateAuthority, Issued};
use krake_api_server::server::RunningServer;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::{big_metric, metric_value};

/// A throw-away PKI written to a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateAuthority,
    server: pki::CertFiles,
    server_cert: Issued,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::new("test CA").unwrap();
        pki::write_file(&dir.path().join("ca.pem"), ca.cert_pem(), false).unwrap();
        let server_cert = ca
            .issue_server("krake-api", &["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let server = server_cert.write(dir.path(), "server").unwrap();
        Pki {
            dir,
            ca,
            server,
            server_cert,
        }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn config(&self, client_ca: bool) -> Config {
        // A fresh data directory per server: a stopped server may still hold its store.
        static SERVERS: AtomicUsize = AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let mut config = Config::for_embedded(self.dir.path().join(format!("data-{n}")));
        config.log_level = "warn".into();
        config.tls = Some(TlsConfig {
            cert: self.server.cert.clone(),
            key: self.server.key.clone(),
            client_ca: client_ca.then(|| self.ca_path()),
        });
        config
    }

    /// A client trusting this PKI's CA, presenting `identity` if any.
    fn client(&self, identity: Option<&Issued>) -> Client {
        Client::new(self.ca.cert_pem(), identity, None)
    }
}

/// A TLS client (ring provider) speaking HTTP/1.1 or HTTP/2 on a fresh connection per
/// request.
struct Client {
    config: Arc<ClientConfig>,
}

/// What one request returned: status, JSON body, and the server's certificate chain.
struct Answer {
    status: StatusCode,
    body: Value,
    text: String,
    server_chain: Vec<CertificateDer<'static>>,
}

impl Client {
    fn new(
        ca_pem: &str,
        identity: Option<&Issued>,
        version: Option<&'static rustls::SupportedProtocolVersion>,
    ) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = ClientConfig::builder_with_provider(provider);
        let builder = match version {
            Some(version) => builder.with_protocol_versions(&[version]),
            None => builder.with_safe_default_protocol_versions(),
        }
        .unwrap()
        .with_root_certificates(roots);
        let mut config = match identity {
            Some(issued) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(issued.cert_der.clone())],
                    PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // Full handshakes only: a resumed session would not show the server's current
        // certificate.
        config.resumption = rustls::client::Resumption::disabled();
        Client {
            config: Arc::new(config),
        }
    }

    async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        TlsConnector::from(self.config.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))
    }

    /// `GET path` on a new connection.
    async fn get(&self, addr: SocketAddr, path: &str) -> Result<Answer, String> {
        tokio::time::timeout(Duration::from_secs(20), self.get_inner(addr, path))
            .await
            .map_err(|_| "timed out".to_string())?
    }

    async fn get_inner(&self, addr: SocketAddr, path: &str) -> Result<Answer, String> {
        let stream = self.connect(addr).await?;
        let (_, connection) = stream.get_ref();
        let server_chain = connection
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.clone().into_owned())
            .collect();
        let h2 = connection.alpn_protocol() == Some(b"h2");
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let io = TokioIo::new(stream);
        let response = if h2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("http2: {e}"))?;
            tokio::spawn(connection);
            let mut request = request;
            *request.uri_mut() = format!("https://localhost{path}").parse().unwrap();
            sender.send_request(request).await
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("http1: {e}"))?;
            tokio::spawn(connection);
            sender.send_request(request).await
        }
        .map_err(|e| format!("request: {e:?}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            text: String::from_utf8_lossy(&body).into_owned(),
            server_chain,
        })
    }
}

async fn start(config: Config) -> RunningServer {
    krake_api_server::start(config)
        .await
        .expect("the API server starts")
}

#[tokio::test]
async fn https_serves_the_version_with_the_configured_certificate() {
    let pki = Pki::new();
    let server = start(pki.config(false)).await;
    let answer = pki.client(None).get(server.addr, "/").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body["version"].is_string(), "{}", answer.body);
    assert_eq!(
        answer.server_chain[0].as_ref(),
        pki.server_cert.cert_der.as_slice()
    );

    // Plain HTTP on the HTTPS port: the handshake fails and the server closes the
    // connection without any HTTP answer (at most a TLS alert record).
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // A reset instead of a clean close is as good: only what was sent before matters.
    let _closed_or_reset = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf))
        .await
        .expect("the server closes a connection that does not speak TLS");
    const TLS_ALERT: u8 = 0x15;
    assert!(
        buf.is_empty() || buf[0] == TLS_ALERT,
        "not a TLS alert or a close: {:?}",
        String::from_utf8_lossy(&buf)
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn http1_and_http2_are_both_served() {
    let pki = Pki::new();
    let server = start(pki.config(false)).await;
    let mut client = ClientConfig::clone(&pki.client(None).config);
    for alpn in [b"http/1.1".to_vec(), b"h2".to_vec()] {
        client.alpn_protocols = vec![alpn.clone()];
        let c = Client {
            config: Arc::new(client.clone()),
        };
        let answer = c.get(server.addr, "/").await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{alpn:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_valid_client_certificate_names_the_user() {
    let pki = Pki::new();
    let mut config = pki.config(true);
    config.allow_anonymous = false;
    let server = start(config).await;
    for user in [pki::ADMIN_USER, "system:scheduler", "system:gc"] {
        let identity = pki.ca.issue_client(user).unwrap();
        let answer = pki
            .client(Some(&identity))
            .get(server.addr, "/me")
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body["user"], user);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_rejected_at_the_handshake() {
    let pki = Pki::new();
    let server = start(pki.config(true)).await;
    let other_ca = CertificateAuthority::new("someone else").unwrap();
    let intruder = other_ca.issue_client(pki::ADMIN_USER).unwrap();

    // TLS 1.3: the client finishes first; the server's alert ends the connection before
    // any request is answered.
    let error = pki
        .client(Some(&intruder))
        .get(server.addr, "/me")
        .await
        .err()
        .expect("the request must fail");
    assert!(error.contains("fatal alert"), "{error}");

    // TLS 1.2: the handshake itself fails.
    let tls12 = Client::new(
        pki.ca.cert_pem(),
        Some(&intruder),
        Some(&rustls::version::TLS12),
    );
    let error = tls12
        .connect(server.addr)
        .await
        .expect_err("the handshake must fail");
    assert!(
        error.starts_with("handshake:") && error.contains("fatal alert"),
        "{error}"
    );

    // The server is unharmed.
    let answer = pki.client(None).get(server.addr, "/").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_client_certificate_the_request_is_anonymous_or_unauthenticated() {
    let pki = Pki::new();
    let mut config = pki.config(true);
    config.allow_anonymous = true;
    let server = start(config).await;
    let answer = pki.client(None).get(server.addr, "/me").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["user"], "system:anonymous");
    server.stop().await.unwrap();

    let mut config = pki.config(true);
    config.allow_anonymous = false;
    let server = start(config).await;
    for path in ["/me", "/"] {
        let answer = pki.client(None).get(server.addr, path).await.unwrap();
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            answer.body["detail"], "401: No user has been authenticated.",
            "{}",
            answer.body
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_client_ca_certificates_are_not_used() {
    let pki = Pki::new();
    let admin = pki.ca.issue_client(pki::ADMIN_USER).unwrap();

    let mut config = pki.config(false);
    config.allow_anonymous = true;
    let server = start(config).await;
    let answer = pki
        .client(Some(&admin))
        .get(server.addr, "/me")
        .await
        .unwrap();
    assert_eq!(answer.body["user"], "system:anonymous");
    server.stop().await.unwrap();

    // Other authenticators name the user.
    let mut config = pki.config(false);
    config.allow_anonymous = false;
    config.static_user = Some("alice".into());
    let server = start(config).await;
    let answer = pki
        .client(Some(&admin))
        .get(server.addr, "/me")
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["user"], "alice");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_rotated_certificate_is_served_to_new_connections_without_restart() {
    let pki = Pki::new();
    let server = start(pki.config(false)).await;
    let client = pki.client(None);
    let before = client.get(server.addr, "/").await.unwrap();
    assert_eq!(
        before.server_chain[0].as_ref(),
        pki.server_cert.cert_der.as_slice()
    );

    let rotated = pki
        .ca
        .issue_server("krake-api-rotated", &["localhost".into()])
        .unwrap();
    assert_ne!(rotated.cert_der, pki.server_cert.cert_der);
    // Overwrite in place; a half-written pair is refused and picked up once complete.
    rotated.write(pki.dir.path(), "server").unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = client.get(server.addr, "/").await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        if answer.server_chain[0].as_ref() == rotated.cert_der.as_slice() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated certificate was not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken replacement keeps the current certificate.
    pki::write_file(&pki.server.key, "garbage", true).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let answer = client.get(server.addr, "/").await.unwrap();
    assert_eq!(answer.server_chain[0].as_ref(), rotated.cert_der.as_slice());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_start_naming_the_file() {
    let pki = Pki::new();
    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let missing = pki.dir.path().join("missing.pem");

    type Tweak = fn(&mut TlsConfig, &Path, &Path);
    let cases: [(Tweak, &Path, &str); 5] = [
        (
            |t, _, m| t.cert = m.to_path_buf(),
            &missing,
            "cannot read certificate",
        ),
        (
            |t, _, m| t.key = m.to_path_buf(),
            &missing,
            "cannot read private key",
        ),
        (
            |t, g, _| t.cert = g.to_path_buf(),
            &garbage,
            "invalid certificate",
        ),
        (
            |t, g, _| t.key = g.to_path_buf(),
            &garbage,
            "invalid private key",
        ),
        (
            |t, g, _| t.client_ca = Some(g.to_path_buf()),
            &garbage,
            "invalid client CA bundle",
        ),
    ];
    for (tweak, path, reason) in cases {
        let mut config = pki.config(true);
        tweak(config.tls.as_mut().unwrap(), &garbage, &missing);
        let error = match krake_api_server::start(config).await {
            Ok(_) => panic!("started with {reason} {}", path.display()),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains(&format!("{reason} {}", path.display())),
            "{error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }
}

#[tokio::test]
async fn the_pki_subcommand_output_is_accepted_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pki");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_krake-api"))
        .args(["pki", "--out"])
        .arg(&out)
        .args(["--host", "krake.example"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut config = Config::for_embedded(dir.path().join("data"));
    config.log_level = "warn".into();
    config.allow_anonymous = false;
    config.tls = Some(TlsConfig {
        cert: out.join("server.pem"),
        key: out.join("server-key.pem"),
        client_ca: Some(out.join("ca.pem")),
    });
    let server = start(config).await;
    let ca = std::fs::read_to_string(out.join("ca.pem")).unwrap();
    for user in std::iter::once(pki::ADMIN_USER).chain(pki::CONTROLLER_USERS) {
        let stem = pki::file_stem(user);
        let identity = Issued {
            cert_pem: std::fs::read_to_string(out.join(format!("{stem}.pem"))).unwrap(),
            cert_der: CertificateDer::from_pem_file(out.join(format!("{stem}.pem")))
                .unwrap()
                .to_vec(),
            key_pem: std::fs::read_to_string(out.join(format!("{stem}-key.pem"))).unwrap(),
        };
        let answer = Client::new(&ca, Some(&identity), None)
            .get(server.addr, "/me")
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{user}: {}", answer.body);
        assert_eq!(answer.body["user"], user);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_header_read_timeout() {
    let pki = Pki::new();
    let mut config = pki.config(false);
    config.header_read_timeout = Duration::from_secs(1);
    let server = start(config).await;
    let start = Instant::now();
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut buffer = [0u8; 64];
    // Well within the handshake limit of 10 s the server had before the header read time.
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buffer),
    )
    .await
    .expect("a connection without a TLS handshake stays open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(start.elapsed() >= Duration::from_millis(900));
    // A handshake in time is served.
    let answer = pki.client(None).get(server.addr, "/livez").await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
}

/// The open watchers of a server, from its metrics.
async fn open_watchers(client: &Client, addr: SocketAddr) -> Option<f64> {
    let answer = client.get(addr, "/metrics").await.ok()?;
    metric_value(&answer.text, "krake_api_open_watchers")
}

#[tokio::test]
async fn a_watcher_that_never_reads_is_disconnected_over_https() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Writes go through a plain server on the same etcd: the watcher's server only
    // serves the watch.
    let etcd = krake_testkit::etcd::EtcdServer::start().await;
    let storage = krake_api_server::config::StorageConfig::Etcd {
        endpoints: vec![etcd.endpoint()],
        max_request_bytes: krake_api_server::storage::etcd::DEFAULT_MAX_REQUEST_BYTES,
    };
    let pki = Pki::new();
    let mut config = pki.config(false);
    config.storage = storage.clone();
    config.watch_send_timeout = Duration::from_secs(1);
    let server = start(config).await;
    let writer_dir = tempfile::tempdir().unwrap();
    let mut writer_config = Config::for_embedded(writer_dir.path());
    writer_config.storage = storage;
    let writer = start(writer_config).await;

    let mut client_config = (*pki.client(None).config).clone();
    client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let mut watcher = TlsConnector::from(Arc::new(client_config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    watcher
        .write_all(
            b"GET /core/namespaces/ns/metrics?watch&heartbeat=0 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    watcher.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let http = reqwest::Client::new();
    let observer = pki.client(None);
    for i in 0..150 {
        let metric = big_metric(&format!("m{i}"));
        let r = http
            .post(format!("http://{}/core/namespaces/ns/metrics", writer.addr))
            .json(&metric)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if i % 10 == 9 && open_watchers(&observer, server.addr).await == Some(0.0) {
            break;
        }
    }
    crate::common::eventually(
        "the stalled watcher to be dropped",
        Duration::from_secs(20),
        || async {
            let open = open_watchers(&observer, server.addr).await;
            (open == Some(0.0)).then_some(()).ok_or(open)
        },
    )
    .await;

    // Closed although the client never read: what it reads now ends before the final
    // chunk of a normally ended response.
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), watcher.read(&mut buffer))
            .await
            .expect("the connection of the dropped watcher is still open")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    assert!(
        !received.ends_with(b"\r\n0\r\n\r\n"),
        "the response ended normally"
    );
}
