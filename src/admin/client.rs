//! The CLI's side of the admin API: one HTTP/1.1 request per connection over the Unix socket
//! (hyper's client on a small runtime of its own), with a timeout. Every failure is one line
//! that says what to do.

use super::api::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the CLI waits for an answer. `why` asks every peer task, each bounded by 3 s.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Client {
    pub socket: PathBuf,
}

/// `?k=v&...` from the pairs that have a value, each value form-encoded; empty if none has
/// one.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
            any = true;
        }
    }
    if any { format!("?{}", q.finish()) } else { String::new() }
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client { socket: socket.to_path_buf() }
    }

    fn connect_error(&self, e: std::io::Error) -> String {
        let p = self.socket.display();
        match e.kind() {
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
        }
    }

    /// One request; its status and body.
    async fn send(&self, method: &str, path: &str, body: Vec<u8>) -> Result<(u16, Bytes), String> {
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|e| self.connect_error(e))?;
        let p = self.socket.display();
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{p}: {e}"))?;
        let driver = tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "kbgp")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot make the request: {e}"))?;
        let resp = sender.send_request(req).await.map_err(|e| format!("{p}: sending the request: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| format!("{p}: reading the answer: {e}"))?.to_bytes();
        drop(sender);
        let _ = driver.await;
        Ok((status, body))
    }

    /// Sends one request; a 2xx answer is decoded as `T`, anything else becomes its error line.
    pub fn call<T: DeserializeOwned>(&self, method: &str, path: &str) -> Result<T, String> {
        self.call_with(method, path, Vec::new())
    }

    /// [`call`](Self::call) with a request body.
    pub fn call_with<T: DeserializeOwned>(&self, method: &str, path: &str, body: Vec<u8>) -> Result<T, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the client's runtime: {e}"))?;
        let (status, body) = rt
            .block_on(async { tokio::time::timeout(TIMEOUT, self.send(method, path, body)).await })
            .map_err(|_| format!("kbgp did not answer within {} s", TIMEOUT.as_secs()))??;
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
    fn a_missing_socket_says_what_to_do() {
        let c = Client::new(Path::new("/nonexistent/kbgp.sock"));
        let e = c.call::<serde_json::Value>("GET", "/v1/status").unwrap_err();
        assert!(e.contains("is `kbgp run` running on this node?"), "{e}");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query(&[("target", Some("2001:db8::/64".into()))]), "?target=2001%3Adb8%3A%3A%2F64");
        assert_eq!(query(&[("target", Some("a b&c".into())), ("vrouter", None)]), "?target=a+b%26c");
        assert_eq!(query(&[("a", Some("1".into())), ("b", Some("2".into()))]), "?a=1&b=2");
        assert_eq!(query(&[("vrouter", None)]), "");
        // What the daemon decodes.
        let back: Vec<(String, String)> =
            form_urlencoded::parse(b"target=2001%3Adb8%3A%3A%2F64&x=a+b%26c").into_owned().collect();
        assert_eq!(back, [("target".into(), "2001:db8::/64".into()), ("x".into(), "a b&c".into())]);
    }
}
