//! A real `etcd` process for tests: started on free loopback ports with a throw-away data
//! directory, killed when dropped.
//!
//! A missing `etcd` binary is a test failure, never a skip: the storage conformance suite
//! and the HTTP tests must run against the real thing in CI.

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::free_port;

/// Environment variable naming the `etcd` binary to use instead of searching `PATH`.
pub const ETCD_BIN_ENV: &str = "KRAKE_TEST_ETCD";

/// How long a start may take before the test fails. Generous because the build machines
/// have two cores and many tests start their own etcd concurrently.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Port collisions between concurrently starting servers are possible (a port picked as
/// free can be taken before etcd binds it), so a failed first start is retried on new ports.
const START_ATTEMPTS: usize = 3;

/// A running single-member etcd cluster on loopback.
#[derive(Debug)]
pub struct EtcdServer {
    binary: PathBuf,
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl EtcdServer {
    /// Start etcd on free ports and wait until it reports healthy.
    ///
    /// # Panics
    /// When the binary is missing or the server does not become healthy in time.
    pub async fn start() -> EtcdServer {
        let binary = find_etcd();
        let dir = tempfile::Builder::new()
            .prefix("krake-etcd-")
            .tempdir()
            .expect("create a temporary directory for etcd");
        let mut server = EtcdServer {
            binary,
            dir,
            client_port: 0,
            peer_port: 0,
            child: None,
        };
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            server.client_port = free_port();
            server.peer_port = free_port();
            match server.spawn_and_wait().await {
                Ok(()) => return server,
                Err(failure) => {
                    server.kill();
                    // A half-initialised data dir would make the next attempt rejoin a
                    // cluster with different peer URLs.
                    let _ = std::fs::remove_dir_all(server.data_dir());
                    last_failure = failure;
                }
            }
        }
        panic!("etcd did not start after {START_ATTEMPTS} attempts: {last_failure}");
    }

    /// The client URL, e.g. `http://127.0.0.1:23790`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The data directory (kept across [`EtcdServer::restart`]).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Whether the process is currently running (not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kill the process, keeping the data directory and ports for [`EtcdServer::restart`].
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Start again after [`EtcdServer::stop`] (or kill and start when still running), with
    /// the same data directory and ports, and wait until healthy.
    ///
    /// # Panics
    /// When the server does not become healthy in time.
    pub async fn restart(&mut self) {
        self.kill();
        // The kernel may keep the old listening socket briefly; etcd fails to bind then, so
        // retry a few times on the same ports instead of failing the test.
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            match self.spawn_and_wait().await {
                Ok(()) => return,
                Err(failure) => {
                    self.kill();
                    last_failure = failure;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        panic!("etcd did not restart: {last_failure}");
    }

    async fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self
            .dir
            .path()
            .join(format!("etcd-{}.log", self.client_port));
        // Appended to, so a failed restart still shows why the previous run ended.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let client_url = self.endpoint();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(&self.binary);
        // The developer's or CI's environment must not reconfigure the test server.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD") {
                command.env_remove(name);
            }
        }
        command
            .arg("--name")
            .arg("krake-test")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("krake-test={peer_url}"))
            .arg("--initial-cluster-state")
            .arg("new")
            // Tests compact explicitly; automatic compaction would make them flaky.
            .arg("--auto-compaction-retention")
            .arg("0")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = command
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.binary.display()))?;
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.client_port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!(
                    "etcd exited with {status}; log:\n{}",
                    log_tail(&log_path)
                ));
            }
            if healthy(addr).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd not healthy after {START_TIMEOUT:?}; log:\n{}",
                    log_tail(&log_path)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            // Reap it so no zombie outlives the test and the ports are released.
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Locate the etcd binary: `$KRAKE_TEST_ETCD`, then `PATH`, then the Debian location.
///
/// # Panics
/// When no binary is found.
pub fn find_etcd() -> PathBuf {
    crate::tools::find_program(
        "etcd",
        ETCD_BIN_ENV,
        &[
            PathBuf::from("/usr/bin/etcd"),
            PathBuf::from("/usr/local/bin/etcd"),
        ],
        "install the Debian package etcd-server (the test command does this)",
    )
}

/// `GET /health` over a raw HTTP/1.0 request, so the test support needs no HTTP client.
async fn healthy(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let response = String::from_utf8_lossy(&response);
        Some(
            response.starts_with("HTTP/1.")
                && response.contains(" 200 ")
                && response.contains("\"health\":\"true\""),
        )
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
