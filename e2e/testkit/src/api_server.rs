//! `krake-api` as a real child process, for multi-process tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// A running `krake-api` process. Killed on drop.
pub struct ApiServerProcess {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
    args: Vec<String>,
}

impl ApiServerProcess {
    /// Start `binary` with `args` plus `--host 127.0.0.1 --port <free>`, and wait until
    /// `/readyz` answers 200.
    pub async fn start(binary: &Path, args: &[&str]) -> ApiServerProcess {
        let mut process = ApiServerProcess {
            child: None,
            port: free_port(),
            binary: binary.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        process.spawn().await;
        process
    }

    async fn spawn(&mut self) {
        let child = Command::new(&self.binary)
            .args(&self.args)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .env("KRAKE_API_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(20)).await;
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("process not running")
    }

    async fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("krake-api exited during start-up: {status}");
            }
            if readyz(self.port).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "krake-api not ready after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Send SIGTERM and wait for the exit (bounded).
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("process not running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("krake-api did not stop within 15 s after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Start again with the same arguments and port.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn().await;
    }
}

async fn readyz(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut stream)) = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    let request =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(
        tokio::time::timeout(Duration::from_millis(2000), stream.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"HTTP/1.1 200"
    )
}

impl Drop for ApiServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
