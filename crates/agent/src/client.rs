//! A small blocking HTTP/1.1 client over the agent's unix socket, for the
//! CLI and tests (one request per connection, `Connection: close`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default socket path for clients.
pub const DEFAULT_SOCKET: &str = "/run/sluice/api.sock";

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Cannot reach the socket.
    #[error("cannot talk to the agent at {path}: {source} (is `sluice serve` running? set --socket or SLUICE_SOCKET)")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The reply is not HTTP.
    #[error("malformed reply from the agent: {0}")]
    Malformed(String),
    /// The agent answered with an error.
    #[error("{message}{}", field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The error sentence.
        message: String,
        /// The offending field.
        field: Option<String>,
    },
}

/// A reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`null` when empty).
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Malformed(e.to_string()))
    }

    /// `Ok(self)` for 2xx, else [`ClientError::Api`].
    pub fn ok(self) -> Result<Reply, ClientError> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let v = self.json().unwrap_or_default();
        Err(ClientError::Api {
            status: self.status,
            message: v["error"]
                .as_str()
                .map_or_else(|| String::from_utf8_lossy(&self.body).into_owned(), str::to_string),
            field: v["field"].as_str().map(str::to_string),
        })
    }
}

/// The client.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the socket at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client { socket: socket.into() }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request; `body` is sent as JSON.
    pub fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Reply, ClientError> {
        let io = |source| ClientError::Io { path: self.socket.clone(), source };
        let mut s = UnixStream::connect(&self.socket).map_err(io)?;
        s.set_read_timeout(Some(Duration::from_secs(60))).map_err(io)?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).map_err(io)?;
        s.write_all(body).map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        parse_reply(&raw)
    }

    /// GET returning JSON, erroring on non-2xx.
    pub fn get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.request("GET", path, None)?.ok()?.json()
    }

    /// POST JSON, erroring on non-2xx.
    pub fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, ClientError> {
        let b = serde_json::to_vec(body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        self.request("POST", path, Some(&b))?.ok()?.json()
    }

    /// DELETE, erroring on non-2xx.
    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.request("DELETE", path, None)?.ok().map(|_| ())
    }
}

fn parse_reply(raw: &[u8]) -> Result<Reply, ClientError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| ClientError::Malformed("no end of headers".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Malformed(format!("bad status line in {head:?}")))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Reply { status, body })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, ClientError> {
    let bad = || ClientError::Malformed("bad chunked body".into());
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
        let size_str = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad())?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or_else(bad)?);
        b = b.get(size + 2..).ok_or_else(bad)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_replies() {
        let r = parse_reply(b"HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (409, b"{}".as_slice()));
        let r = parse_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_reply(b"garbage").is_err());
    }
}
