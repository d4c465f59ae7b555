//! The admin API (`admin/api.rs` lists the paths): HTTP/1.1 and JSON on a Unix socket, so
//! only local users with access to the socket file can use it, and nothing listens on the
//! network. Read-only except `reset` and `refresh` of one peer.
//!
//! The daemon keeps a [`View`] up to date (the plan, the World it came from, the peer tasks);
//! every request reads it, and asks the peer tasks what only they know (session state,
//! tables), each with a timeout so one stuck task cannot hang the CLI.

use super::peer::{Cmd, PeerCmd};
use crate::admin::api::{self, ApiError};
use crate::config::World;
use crate::metrics::Metrics;
use crate::plan::why::{WhyPeer, why};
use crate::plan::{PeerKey, Plan, Step};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info};

/// How long a request waits for one peer task.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// What the daemon runs, as the admin API sees it.
pub struct View {
    pub node: String,
    pub source: String,
    pub started_at: u64,
    pub plan: Arc<Plan>,
    pub world: Arc<World>,
    /// Set while the newest configuration is rejected and the last good one runs.
    pub config_error: Option<String>,
    /// The peers, each with the driver's command channel.
    pub peers: Vec<(PeerKey, mpsc::Sender<Cmd>)>,
    /// The VirtualIPs' health checks, as of their last result.
    pub health: Vec<crate::plan::why::HealthView>,
    /// Where namespaced configuration is read from (for previews of other configurations).
    pub namespaces: crate::config::Namespaces,
}

pub type SharedView = Arc<RwLock<View>>;

impl View {
    pub fn new(node: String, source: String, namespaces: crate::config::Namespaces) -> SharedView {
        Arc::new(RwLock::new(View {
            node,
            source,
            started_at: api::unix_now(),
            plan: Arc::new(Plan::default()),
            world: Arc::new(World::default()),
            config_error: None,
            peers: Vec::new(),
            health: Vec::new(),
            namespaces,
        }))
    }
}

type Reply = Response<Full<Bytes>>;

fn json<T: Serialize>(status: StatusCode, v: &T) -> Reply {
    let body = serde_json::to_vec_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    r
}

/// A failed request: status, message and what to do about it.
struct Failure(StatusCode, String, Option<String>);

impl Failure {
    fn bad(msg: impl Into<String>) -> Failure {
        Failure(StatusCode::BAD_REQUEST, msg.into(), None)
    }
}

type Answer = Result<Reply, Failure>;

fn query(req: &Request<hyper::body::Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect()
}

fn parse_bool(q: &HashMap<String, String>, k: &str) -> Result<bool, Failure> {
    match q.get(k).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(o) => Err(Failure::bad(format!("{k}={o}: use true or false"))),
    }
}

fn parse_vrouter(q: &HashMap<String, String>) -> Result<Option<u32>, Failure> {
    q.get("vrouter")
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.trim_start_matches("AS").parse().map_err(|_| Failure::bad(format!("vrouter={v}: an ASN, e.g. 65005")))
        })
        .transpose()
}

fn peer_list(view: &View) -> String {
    if view.peers.is_empty() {
        return "this node has no peers".into();
    }
    let v: Vec<String> = view.peers.iter().map(|(k, _)| format!("{} (AS{})", k.address, k.local_asn)).collect();
    format!("peers: {}", v.join(", "))
}

/// The peers a request is about: all, or those with this address (and virtual router).
fn select(
    view: &View,
    address: Option<IpAddr>,
    vrouter: Option<u32>,
    one: bool,
) -> Result<Vec<(PeerKey, mpsc::Sender<Cmd>)>, Failure> {
    let v: Vec<_> = view
        .peers
        .iter()
        .filter(|(k, _)| address.is_none_or(|a| a == k.address) && vrouter.is_none_or(|a| a == k.local_asn))
        .cloned()
        .collect();
    if let Some(a) = address {
        if v.is_empty() {
            let which = vrouter.map(|r| format!(" in virtual router AS{r}")).unwrap_or_default();
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no peer {a}{which} on node {}", view.node),
                Some(peer_list(view)),
            ));
        }
        if one && v.len() > 1 {
            let asns: Vec<String> = v.iter().map(|(k, _)| k.local_asn.to_string()).collect();
            return Err(Failure::bad(format!(
                "peer {a} is a neighbor of {} virtual routers (AS {}): say which with --vrouter",
                v.len(),
                asns.join(", ")
            )));
        }
    }
    Ok(v)
}

async fn ask<T>(
    key: &PeerKey,
    tx: &mpsc::Sender<Cmd>,
    cmd: impl FnOnce(oneshot::Sender<T>) -> PeerCmd,
) -> Result<T, Failure> {
    let (reply, rx) = oneshot::channel();
    let gone =
        || Failure(StatusCode::SERVICE_UNAVAILABLE, format!("peer {key} is being reconfigured; try again"), None);
    tx.send_timeout(Cmd::Peer(*key, cmd(reply)), PEER_TIMEOUT).await.map_err(|_| gone())?;
    match tokio::time::timeout(PEER_TIMEOUT, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(gone()),
        Err(_) => Err(Failure(
            StatusCode::GATEWAY_TIMEOUT,
            format!("peer {key} did not answer within {PEER_TIMEOUT:?}"),
            None,
        )),
    }
}

fn status(view: &View, established: usize) -> api::Status {
    let now = api::unix_now();
    api::Status {
        node: view.node.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        source: view.source.clone(),
        started_at: view.started_at,
        uptime_seconds: now.saturating_sub(view.started_at),
        policy: view.plan.policy_name(),
        config_error: view.config_error.clone(),
        peers: view.peers.len(),
        established,
    }
}

async fn peers(view: &SharedView, address: Option<IpAddr>, vrouter: Option<u32>) -> Result<Vec<api::Peer>, Failure> {
    let targets = {
        let v = view.read().map_err(|_| internal())?;
        select(&v, address, vrouter, false)?
    };
    statuses(&targets).await.into_iter().collect()
}

/// Each peer task's status, in the order of `targets` (the view keeps its peers sorted by
/// virtual router and address).
async fn statuses(targets: &[(PeerKey, mpsc::Sender<Cmd>)]) -> Vec<Result<api::Peer, Failure>> {
    let mut out = Vec::with_capacity(targets.len());
    for (k, tx) in targets {
        out.push(ask(k, tx, PeerCmd::Status).await);
    }
    out
}

/// Every peer's status, for the daemon's own reports (BGPNodeStatus); a peer task that does
/// not answer is left out.
pub async fn collect_peers(view: &SharedView) -> Vec<api::Peer> {
    let targets = match view.read() {
        Ok(v) => v.peers.clone(),
        Err(_) => return Vec::new(),
    };
    statuses(&targets).await.into_iter().filter_map(Result::ok).collect()
}

fn internal() -> Failure {
    Failure(StatusCode::INTERNAL_SERVER_ERROR, "the daemon's state is unavailable (a task panicked)".into(), None)
}

fn address_param(q: &HashMap<String, String>) -> Result<Option<IpAddr>, Failure> {
    q.get("peer")
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|_| Failure::bad(format!("peer={p}: an IP address"))))
        .transpose()
}

async fn routes(view: &SharedView, received: bool, q: &HashMap<String, String>) -> Answer {
    let family = match q.get("family").filter(|f| !f.is_empty()) {
        Some(f) => Some(api::parse_family(f).map_err(Failure::bad)?),
        None => None,
    };
    let targets = {
        let v = view.read().map_err(|_| internal())?;
        select(&v, address_param(q)?, parse_vrouter(q)?, false)?
    };
    let mut out = Vec::new();
    for (k, tx) in &targets {
        out.extend(ask(k, tx, |reply| PeerCmd::Table { received, family, reply }).await?);
    }
    out.sort_by_key(|r| (r.vrouter, r.peer, r.prefix, r.path_id));
    Ok(json(StatusCode::OK, &out))
}

/// Adds to each planned peer what its session did with the target.
async fn session_steps(view: &SharedView, p: &mut WhyPeer, vrouter: u32) -> Result<(), Failure> {
    if p.planned.is_empty() {
        return Ok(());
    }
    let targets = {
        let v = view.read().map_err(|_| internal())?;
        select(&v, Some(p.address), Some(vrouter), true)?
    };
    let Some((k, tx)) = targets.first() else { return Ok(()) };
    let st = ask(k, tx, PeerCmd::Status).await?;
    if st.state != "Established" {
        let why = match &st.last_error {
            Some(e) => match &e.hint {
                Some(h) => format!(": {} ({h})", e.text),
                None => format!(": {}", e.text),
            },
            None => String::new(),
        };
        p.steps.push(Step::fail(format!("the session is {}, not Established{why}", st.state)));
        return Ok(());
    }
    let sent = ask(k, tx, |reply| PeerCmd::Table { received: false, family: None, reply }).await?;
    let up = st.uptime_seconds.map(|s| format!(" for {}", crate::admin::render::duration(s))).unwrap_or_default();
    p.steps.push(Step::pass(format!("the session is Established{up}")));
    for &prefix in &p.planned {
        let family = crate::wire::Family::of_prefix(&prefix).label();
        match sent.iter().find(|r| r.prefix == prefix) {
            Some(r) => {
                let nh = r.next_hop.map(|n| format!(" with next hop {n}")).unwrap_or_default();
                p.steps.push(Step::pass(format!("{prefix} has been sent to the peer{nh}")));
            }
            None if !st.families.contains(&family) => p.steps.push(Step::fail(format!(
                "{prefix} cannot be sent: the session did not negotiate {family} (negotiated: {})",
                st.families.join(", ")
            ))),
            None => p
                .steps
                .push(Step::fail(format!("{prefix} is planned but not sent yet: UPDATEs are still being written"))),
        }
    }
    Ok(())
}

async fn explain(view: &SharedView, q: &HashMap<String, String>) -> Answer {
    let target = q.get("target").ok_or_else(|| Failure::bad("target=IP-OR-PREFIX is required"))?;
    let target = api::parse_target(target).map_err(Failure::bad)?;
    let mut w = {
        let v = view.read().map_err(|_| internal())?;
        let alloc = crate::ipam::allocate(&v.world);
        let mut w = why(target, &v.world, &alloc, &v.plan);
        let at_target = |name: &str| {
            v.world
                .virtual_ips
                .iter()
                .any(|x| x.name == name && x.prefixes().any(|p| crate::plan::why::relevant(&p, &target)))
        };
        w.health = v.health.iter().filter(|h| at_target(&h.virtual_ip)).cloned().collect();
        w
    };
    for vr in &mut w.vrouters {
        let asn = vr.asn;
        for p in &mut vr.peers {
            session_steps(view, p, asn).await?;
        }
    }
    let targets = {
        let v = view.read().map_err(|_| internal())?;
        v.peers.clone()
    };
    for (k, tx) in &targets {
        let got = ask(k, tx, |reply| PeerCmd::Table { received: true, family: None, reply }).await?;
        for r in got.iter().filter(|r| crate::plan::why::relevant(&r.prefix, &target)) {
            let nh = r.next_hop.map(|n| format!(" via {n}")).unwrap_or_default();
            let path = if r.as_path.is_empty() {
                "an empty AS path (from this AS)".to_string()
            } else {
                format!("AS path {}", r.as_path)
            };
            w.learned.push(format!("peer {} sends {}{nh} with {path}", k.address, r.prefix));
        }
    }
    w.conclude();
    Ok(json(StatusCode::OK, &w))
}

/// The largest configuration a preview takes (a million Services fit in far less).
const MAX_PREVIEW: usize = 256 << 20;

/// `POST /v1/diff`: what the configuration in the body would change at this node's peers.
/// `mode=replace` (default): it is the whole configuration, as the files of `kbgp run`;
/// `mode=overlay`: its objects go over the running World (a cluster's live objects).
async fn preview(view: &SharedView, body: hyper::body::Incoming, q: &HashMap<String, String>) -> Answer {
    use http_body_util::BodyExt;
    let overlay = match q.get("mode").map(String::as_str) {
        None | Some("replace") => false,
        Some("overlay") => true,
        Some(o) => return Err(Failure::bad(format!("mode={o}: replace or overlay"))),
    };
    let bytes = http_body_util::Limited::new(body, MAX_PREVIEW)
        .collect()
        .await
        .map_err(|e| Failure::bad(format!("cannot read the configuration: {e}")))?
        .to_bytes();
    let text = std::str::from_utf8(&bytes).map_err(|_| Failure::bad("the configuration is not UTF-8 text"))?;
    let loaded = crate::config::load_str(text, "the configuration").map_err(|errs| {
        Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "),
            Some("`kbgp check FILE...` lists every problem".into()),
        )
    })?;
    let (node, old, namespaces) = {
        let v = view.read().map_err(|_| internal())?;
        (v.node.clone(), v.world.clone(), v.namespaces.clone())
    };
    let mut warnings = loaded.warnings;
    let mut new = loaded.world;
    warnings.extend(new.scope(&namespaces));
    if overlay {
        let mut w = (*old).clone();
        w.overlay(new);
        new = w;
    }
    new.vip_health = old.vip_health.clone();
    new.lb_class = old.lb_class.clone();
    let alloc = crate::ipam::allocate(&new);
    crate::ipam::apply(&mut new, &alloc);
    warnings.extend(alloc.problems.iter().map(|p| format!("LB IPAM: {p}")));
    let diff = crate::plan::diff::diff(&node, old, Arc::new(new))
        .map_err(|e| Failure(StatusCode::UNPROCESSABLE_ENTITY, format!("the configuration cannot run: {e}"), None))?;
    Ok(json(StatusCode::OK, &api::Preview { diff, warnings }))
}

async fn act(view: &SharedView, method: &Method, address: &str, action: &str, q: &HashMap<String, String>) -> Answer {
    if method != Method::POST {
        return Err(Failure(StatusCode::METHOD_NOT_ALLOWED, format!("{action} needs POST"), None));
    }
    let address: IpAddr = address.parse().map_err(|_| Failure::bad(format!("{address:?} is not an IP address")))?;
    let targets = {
        let v = view.read().map_err(|_| internal())?;
        select(&v, Some(address), parse_vrouter(q)?, true)?
    };
    let Some((k, tx)) = targets.first() else { return Err(Failure::bad("no such peer")) };
    let r = match action {
        "reset" => {
            let soft = parse_bool(q, "soft")?;
            ask(k, tx, |reply| PeerCmd::Reset { soft, reply }).await?
        }
        _ => ask(k, tx, |reply| PeerCmd::Refresh { reply }).await?,
    };
    match r {
        Ok(message) => {
            info!(peer = %k.address, vrouter = k.local_asn, "admin API: {action}: {message}");
            Ok(json(StatusCode::OK, &api::Done { peer: k.address, vrouter: k.local_asn, message }))
        }
        Err(e) => Err(Failure(StatusCode::CONFLICT, format!("peer {k}: {e}"), None)),
    }
}

async fn handle(req: Request<hyper::body::Incoming>, view: SharedView, metrics: Arc<Metrics>) -> Reply {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let q = query(&req);
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method() == Method::GET;
    let (endpoint, answer): (&str, Answer) = match parts.as_slice() {
        ["v1", "status"] if get => {
            let r = async {
                let ps = peers(&view, None, None).await?;
                let v = view.read().map_err(|_| internal())?;
                Ok(json(StatusCode::OK, &status(&v, ps.iter().filter(|p| p.state == "Established").count())))
            };
            ("status", r.await)
        }
        ["v1", "peers"] if get => {
            let r = async {
                let ps = peers(&view, address_param(&q)?, parse_vrouter(&q)?).await?;
                Ok(json(StatusCode::OK, &ps))
            };
            ("peers", r.await)
        }
        ["v1", "routes", which @ ("advertised" | "received")] if get => {
            ("routes", routes(&view, *which == "received", &q).await)
        }
        ["v1", "why"] if get => ("why", explain(&view, &q).await),
        ["v1", "diff"] if req.method() == Method::POST => ("diff", preview(&view, req.into_body(), &q).await),
        ["v1", "peers", address, action @ ("reset" | "refresh")] => {
            (action, act(&view, req.method(), address, action, &q).await)
        }
        _ => (
            "unknown",
            Err(Failure(
                StatusCode::NOT_FOUND,
                format!("{} {path}: no such endpoint of the admin API v1", req.method()),
                Some("GET /v1/status, /v1/peers, /v1/routes/advertised, /v1/routes/received, /v1/why?target=; POST /v1/diff?mode=replace|overlay, /v1/peers/ADDRESS/reset, /v1/peers/ADDRESS/refresh".into()),
            )),
        ),
    };
    let reply = answer.unwrap_or_else(|Failure(code, error, hint)| json(code, &ApiError { error, hint }));
    metrics.admin_requests.with_label_values(&[endpoint, reply.status().as_str()]).inc();
    reply
}

/// Makes the socket's directory, and removes a socket left by a kbgp that is gone. Another
/// kbgp answering on it is an error: two daemons on one node would fight over the sessions.
fn prepare(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750));
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another process (another kbgp?) serves {}: stop it, or give this one another --admin-socket",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot remove the stale socket {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A bound admin socket; the file is removed when this is dropped.
pub struct AdminServer {
    pub path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` (owner and group may read and write it) and serves in the background.
pub fn serve(path: &Path, view: SharedView, metrics: Arc<Metrics>) -> Result<AdminServer, String> {
    prepare(path)?;
    let listener = UnixListener::bind(path).map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    debug!("admin accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (view, metrics) = (view.clone(), metrics.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let (view, metrics) = (view.clone(), metrics.clone());
                    async move { Ok::<_, Infallible>(handle(req, view, metrics).await) }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
            });
        }
    });
    Ok(AdminServer { path: path.to_path_buf(), task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_socket_is_not_taken_over_and_a_stale_one_is() {
        let dir = std::env::temp_dir().join(format!("kbgp-admin-test-{}", std::process::id()));
        let path = dir.join("sub").join("kbgp.sock");
        prepare(&path).unwrap();
        assert!(path.parent().unwrap().is_dir());
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(prepare(&path).unwrap_err().contains("another process (another kbgp?) serves"));
        drop(live); // the file stays, nobody answers: stale
        prepare(&path).unwrap();
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
