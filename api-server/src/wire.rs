//! Problem documents for the errors hyper answers by itself.
//!
//! A request that cannot be parsed as HTTP/1 (bad framing, a URI or header section over
//! hyper's limits) never reaches the application: hyper writes a bare `400`, `414` or `431`
//! head with `content-length: 0` and closes the connection. [`ProblemIo`] wraps the
//! connection stream and gives those heads the problem+json body every other error of
//! the server has. It recognizes them by their exact shape at the end of a write: an
//! error status line, `content-length: 0`, at most `connection: close` and `date`
//! headers, and nothing after the head. None of the application's responses looks like that (its errors always carry a
//! problem body, and its bodies are JSON, which holds no raw CR LF).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Renders the problem document of an error status with this detail (the HTTP layer's
/// renderer, passed in so that connections need not know the HTTP modules).
pub type RenderProblem = fn(StatusCode, &str) -> Vec<u8>;

/// A connection stream whose hyper-generated error responses get a problem body.
#[derive(Debug)]
pub struct ProblemIo<T> {
    inner: T,
    render: RenderProblem,
    /// Rewritten bytes accepted from hyper but not yet written to `inner`.
    pending: Vec<u8>,
    /// How much of `pending` is written.
    sent: usize,
}

impl<T> ProblemIo<T> {
    /// Wrap an accepted connection (plain TCP, or TLS after the handshake).
    pub fn new(inner: T, render: RenderProblem) -> Self {
        ProblemIo {
            inner,
            render,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> ProblemIo<T> {
    /// Write out `pending`; ready once all of it is written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Accept `bufs` whole when they end with hyper's bare error head, keeping the
    /// rewritten bytes in `pending`; `None` when they are to be written unchanged.
    fn rewrite(&mut self, bufs: &[IoSlice<'_>]) -> Option<usize> {
        let last = bufs.iter().rposition(|b| !b.is_empty())?;
        let (start, replacement) = bare_error_head(&bufs[last], self.render)?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut pending = Vec::with_capacity(total + replacement.len());
        for buf in &bufs[..last] {
            pending.extend_from_slice(buf);
        }
        pending.extend_from_slice(&bufs[last][..start]);
        pending.extend_from_slice(&replacement);
        self.pending = pending;
        self.sent = 0;
        Some(total)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        if let Some(accepted) = self.rewrite(&[IoSlice::new(buf)]) {
            // Best effort now; flush and shutdown finish it.
            if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(accepted));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_drain(cx))?;
        if let Some(accepted) = self.rewrite(bufs) {
            if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(accepted));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Where hyper's bare error head starts in `buf` (it must end `buf`), and the complete
/// response to send instead.
fn bare_error_head(buf: &[u8], render: RenderProblem) -> Option<(usize, Vec<u8>)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let start = buf.windows(7).rposition(|w| w == b"HTTP/1.")?;
    let head = std::str::from_utf8(&buf[start..]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let code: u16 = status_line.get(9..12)?.parse().ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    // hyper's own head: `content-length: 0`, and at most `connection: close` and `date`.
    let mut zero_length = false;
    let mut date = None;
    loop {
        match lines.next()? {
            "" => break,
            "content-length: 0" => zero_length = true,
            "connection: close" => {}
            line if line.starts_with("date: ") => date = Some(line),
            _ => return None,
        }
    }
    // What remains is the empty string after the final CR LF.
    if !zero_length || lines.next() != Some("") || lines.next().is_some() {
        return None;
    }
    let detail = match status {
        StatusCode::BAD_REQUEST => "400: Bad Request: the request is not valid HTTP".to_string(),
        _ => format!(
            "{}: {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    };
    let body = render(status, &detail);
    let mut response = format!(
        "{status_line}\r\ncontent-type: application/problem+json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    if let Some(date) = date {
        response.push_str(date);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    let mut response = response.into_bytes();
    response.extend_from_slice(&body);
    Some((start, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(status: StatusCode, detail: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"status": status.as_u16(), "detail": detail}))
            .unwrap()
    }

    #[test]
    fn bare_error_heads_get_a_problem_body() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Jan 2030 00:00:00 GMT\r\n\r\n";
        let (start, response) = bare_error_head(head, render).expect("recognized");
        assert_eq!(start, 0);
        let text = String::from_utf8(response).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("date: Tue, 01 Jan 2030"));
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 431);

        // After an earlier response in the same write.
        let mut two = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        two.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        let (start, _) = bare_error_head(&two, render).expect("recognized");
        assert_eq!(&two[start..start + 12], b"HTTP/1.1 400");
    }

    #[test]
    fn other_writes_pass_unchanged() {
        for buf in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 9\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nmore",
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-other: 1\r\n\r\n",
            b"{\"type\": \"ADDED\"}\n",
            b"0\r\n\r\n",
        ] {
            assert!(bare_error_head(buf, render).is_none(), "{}", String::from_utf8_lossy(buf));
        }
    }
}
