//! A stand-in for kube-apiserver in the control-plane VIP lab (`kbgp-lab apiserver`): HTTPS
//! on one address, `/readyz` answering as a control file says, every other path answering
//! 200 with the node's name, so a client can tell which node served it.
//!
//! The control file is read on each `/readyz` request:
//!
//! | content       | `/readyz` answers                                          |
//! |---------------|------------------------------------------------------------|
//! | missing, `ok` | 200 `ok`                                                   |
//! | `fail`        | 500, as an API server whose etcd is gone                   |
//! | `fail N`      | 500 for the next N requests, then `ok` (the file is rewritten) |
//! | `hang`        | nothing, until the client gives up                         |
//!
//! The rest of the server keeps serving whatever `/readyz` says, as a real API server does
//! while it drains (`--shutdown-delay-duration`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct Options {
    pub listen: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub readyz: PathBuf,
    /// Answered on every path but `/readyz`.
    pub name: String,
}

/// What `/readyz` does for one request, from the control file (rewriting it for `fail N`).
#[derive(Debug, PartialEq, Eq)]
pub enum Readyz {
    Ok,
    Fail,
    Hang,
}

pub fn readyz(control: &Path) -> Readyz {
    let text = std::fs::read_to_string(control).unwrap_or_default();
    let mut words = text.split_whitespace();
    match (words.next(), words.next().map(str::parse::<u32>)) {
        (Some("fail"), None) => Readyz::Fail,
        (Some("fail"), Some(Ok(n))) if n > 0 => {
            let rest = if n == 1 { "ok\n".to_string() } else { format!("fail {}\n", n - 1) };
            let _ = std::fs::write(control, rest);
            Readyz::Fail
        }
        (Some("hang"), _) => Readyz::Hang,
        _ => Readyz::Ok,
    }
}

fn tls_config(o: &Options) -> Result<rustls::ServerConfig, String> {
    let certs = CertificateDer::pem_file_iter(&o.cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", o.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&o.key).map_err(|e| format!("{}: {e}", o.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", o.key.display()))
}

async fn answer(req: Request<hyper::body::Incoming>, o: Arc<Options>) -> Result<Response<Full<Bytes>>, String> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/readyz" {
        return Ok(reply(StatusCode::OK, format!("{}\n", o.name)));
    }
    match readyz(&o.readyz) {
        Readyz::Ok => Ok(reply(StatusCode::OK, "ok".into())),
        Readyz::Fail => Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, "[-]etcd failed: reason withheld\n".into())),
        Readyz::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(reply(StatusCode::SERVICE_UNAVAILABLE, "hung".into()))
        }
    }
}

/// Serves until killed.
pub fn serve(o: Options) -> Result<(), String> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&o)?));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let o = Arc::new(o);
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(o.listen).await.map_err(|e| format!("{}: {e}", o.listen))?;
        eprintln!("{}: serving https://{} (readyz from {})", o.name, o.listen, o.readyz.display());
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let (acceptor, o) = (acceptor.clone(), o.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper::service::service_fn(move |req| answer(req, o.clone()));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    })
}
