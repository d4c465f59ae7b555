//! The CLI's side of the admin API: one HTTP/1.1 request per connection over the Unix socket,
//! blocking, with a timeout. Every failure is one line that says what to do.

use super::api::ApiError;
use serde::de::DeserializeOwned;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the CLI waits for an answer. `why` asks every peer task, each bounded by 3 s.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    pub socket: PathBuf,
}

/// Percent-encodes a query value (addresses and prefixes stay readable).
pub fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `?k=v&...` from the pairs that have a value, each value encoded; empty if none has one.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let q: Vec<String> = pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v)))).collect();
    if q.is_empty() { String::new() } else { format!("?{}", q.join("&")) }
}

/// Splits an HTTP/1.1 response into status and body (chunked or not).
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("the answer has no HTTP header")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or("the answer has no HTTP status line")?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or("a chunk size line is cut off")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        if rest.len() < size {
            return Err("a chunk is cut off".into());
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client { socket: socket.to_path_buf() }
    }

    fn connect(&self) -> Result<UnixStream, String> {
        let p = self.socket.display();
        UnixStream::connect(&self.socket).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "{p} does not exist: is `kbgp run` running on this node? (or pass --admin-socket / set \
                 KBGP_ADMIN_SOCKET to where it listens)"
            ),
            std::io::ErrorKind::ConnectionRefused => {
                format!("{p}: nothing listens there (a kbgp that stopped left it behind): is `kbgp run` running?")
            }
            std::io::ErrorKind::PermissionDenied => {
                format!("{p}: permission denied: run as root or as a member of the socket's group")
            }
            _ => format!("{p}: {e}"),
        })
    }

    /// Sends one request; a 2xx answer is decoded as `T`, anything else becomes its error line.
    pub fn call<T: DeserializeOwned>(&self, method: &str, path: &str) -> Result<T, String> {
        let mut s = self.connect()?;
        let _ = s.set_read_timeout(Some(TIMEOUT));
        let _ = s.set_write_timeout(Some(TIMEOUT));
        let req = format!("{method} {path} HTTP/1.1\r\nHost: kbgp\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).map_err(|e| format!("{}: sending the request: {e}", self.socket.display()))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("kbgp did not answer within {} s", TIMEOUT.as_secs())
            }
            _ => format!("{}: reading the answer: {e}", self.socket.display()),
        })?;
        let (status, body) = parse_response(&raw)?;
        if !(200..300).contains(&status) {
            return Err(match serde_json::from_slice::<ApiError>(&body) {
                Ok(ApiError { error, hint: Some(h) }) => format!("{error} ({h})"),
                Ok(ApiError { error, hint: None }) => error,
                Err(_) => format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
            });
        }
        serde_json::from_slice(&body).map_err(|e| {
            format!("kbgp answered something this CLI does not understand ({e}): are the CLI and the daemon the same version?")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_plain_and_chunked() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]").unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"[]"[..]));
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (s, b) = parse_response(raw).unwrap();
        assert_eq!((s, b.as_slice()), (404, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn a_missing_socket_says_what_to_do() {
        let c = Client::new(Path::new("/nonexistent/kbgp.sock"));
        let e = c.call::<serde_json::Value>("GET", "/v1/status").unwrap_err();
        assert!(e.contains("is `kbgp run` running on this node?"), "{e}");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("2001:db8::/64"), "2001:db8::/64");
        assert_eq!(encode("a b&c"), "a%20b%26c");
        assert_eq!(query(&[("target", Some("a b".into())), ("vrouter", None)]), "?target=a%20b");
        assert_eq!(query(&[("vrouter", None)]), "");
    }
}
