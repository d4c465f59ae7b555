//! # daemon — the thin tokio layer
//!
//! Loads the World, plans, and hands each plan to the peer driver. Reloads on
//! SIGHUP and when the file changes, applying only the difference: peers whose settings did
//! not change keep their session and get the new routes; changed peers are restarted; removed
//! peers get a Cease. SIGTERM / SIGINT send every peer a Cease with the shutdown
//! communication "shutdown" (RFC 9003) and exit 0.
//!
//! | file | what |
//! |---|---|
//! | `peer.rs` | the driver of every peer: sockets, time and plans in, the sans-IO cores decide |
//! | `conn.rs` | connecting, framing reads, queued writes |
//! | `listener.rs` | accepting connections from configured peers |
//! | `local_addr.rs` | next hop of the other address family |
//! | `http.rs` | `/metrics`, `/healthz`, `/readyz` |
//! | `node_status.rs` | Kubernetes mode: this node's BGPNodeStatus, Events on Services |
//! | `health.rs` | the VirtualIP health checks (HTTPS, HTTP, TCP), one task each, into `health::Monitor` |
//! | `iface_addr.rs` | a VirtualIP's address on a local interface (rtnetlink) |
//! | `admin.rs` | the admin API on a Unix socket (`kbgp peers`, `routes`, `why`, `reset`, `refresh`) |

pub mod admin;
pub mod bfd;
pub mod conn;
pub mod health;
pub mod http;
pub mod iface_addr;
pub mod listener;
pub mod local_addr;
pub mod node_status;
pub mod peer;
pub mod restart_state;

use crate::config::{Namespaces, World};
use crate::ipam;
use crate::metrics::Metrics;
use crate::plan::{self, Plan};
use crate::source::FileSource;
use crate::wire::Notification;
use crate::wire::error::cease_sub;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

pub struct RunOptions {
    /// Files or directories, read as one World.
    pub config: Vec<PathBuf>,
    pub node: Option<String>,
    pub metrics_addr: SocketAddr,
    /// How often the file is checked for changes.
    pub watch_interval: Duration,
    /// Kubernetes mode: how long watch events are gathered before a new World is planned.
    pub coalesce_window: Duration,
    /// Where namespaced configuration is read from (`--bgp-secrets-namespace`,
    /// `--metallb-namespace`).
    pub namespaces: Namespaces,
    /// `--lb-class`: the only loadBalancerClass handled (`None`: classless, kbgp's, Cilium's).
    pub lb_class: Option<String>,
    /// Kubernetes mode: take part in the LB IPAM controller's election.
    pub lb_ipam: Option<ipam::controller::Options>,
    /// Where the admin API listens; `None`: nowhere.
    pub admin_socket: Option<PathBuf>,
    /// Kubernetes mode: the BGPNodeStatus writer and Service Events.
    pub node_status: node_status::Options,
    /// What SIGTERM / SIGINT do to the routes at the peers.
    pub on_shutdown: crate::session::peer::Shutdown,
    /// Where the restart state lives (see [`restart_state`]); `None`: kbgp never says it
    /// restarted.
    pub state_dir: Option<PathBuf>,
}

/// The message of the Cease sent on SIGTERM / SIGINT.
pub const SHUTDOWN_MESSAGE: &str = "shutdown";

/// Picks the node: the one named, else the only Node in the file.
pub fn resolve_node(named: Option<&str>, world: &World) -> Result<String, String> {
    match named {
        Some(n) => {
            if world.node(n).is_none() {
                return Err(format!(
                    "node {n:?}: no Node document with this name in the file (Nodes: {})",
                    world.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
            Ok(n.to_string())
        }
        None => match world.nodes.as_slice() {
            [one] => Ok(one.name.clone()),
            [] => Err("the file has no Node document: add the Node kbgp runs as".into()),
            many => Err(format!(
                "the file has {} Node documents ({}): pass --node or set NODE_NAME",
                many.len(),
                many.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ")
            )),
        },
    }
}

/// A World made from files, with what came with it.
pub struct FileWorld {
    /// The node kbgp runs as.
    pub node: String,
    /// The World with LB IPAM's assignments applied.
    pub world: Arc<World>,
    pub alloc: ipam::Allocation,
    /// Ignored kinds, IPAM problems.
    pub warnings: Vec<String>,
}

/// Loads and assigns LB IPs the way the cluster's IPAM controller would. Every problem is
/// one line of the error; warnings (ignored kinds, IPAM conflicts) come back.
pub fn load(
    source: &mut FileSource,
    node: Option<&str>,
    namespaces: &Namespaces,
    lb_class: Option<&str>,
) -> Result<FileWorld, String> {
    let mut loaded = source.load().map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))?;
    loaded.world.lb_class = lb_class.map(str::to_owned);
    let node = resolve_node(node, &loaded.world)?;
    let mut warnings = loaded.warnings;
    warnings.extend(loaded.world.scope(namespaces));
    let alloc = ipam::allocate(&loaded.world);
    ipam::apply(&mut loaded.world, &alloc);
    warnings.extend(alloc.problems.iter().map(|p| format!("LB IPAM: {p}")));
    Ok(FileWorld { node, world: Arc::new(loaded.world), alloc, warnings })
}

/// A seed for the random choices of one peer or node (backoff jitter, write delays): its
/// name hashed with a key random per process, so two nodes, or two runs, differ.
fn seed(name: &str) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(name.as_bytes());
    h.finish()
}

struct Daemon {
    metrics: Arc<Metrics>,
    node: String,
    /// The World the running plan comes from.
    world: Option<Arc<World>>,
    /// The task that drives every peer, and where its plans and commands go.
    driver: mpsc::Sender<peer::Cmd>,
    feed: Arc<peer::Feed>,
    driver_task: Option<JoinHandle<()>>,
    listeners: HashMap<u16, listener::Listener>,
    routing: listener::Routing,
    plan: Arc<Plan>,
    view: admin::SharedView,
    on_shutdown: crate::session::peer::Shutdown,
    restart_state: Option<restart_state::RestartState>,
    /// The VirtualIPs' health checks; their verdicts go into every World planned.
    checks: health::Checks,
    /// Shutting down: VirtualIPs carry GRACEFUL_SHUTDOWN.
    draining: bool,
    /// VirtualIP addresses kbgp keeps on local interfaces (`localInterface`).
    local_addrs: Arc<std::sync::Mutex<std::collections::BTreeSet<(String, std::net::IpAddr)>>>,
    /// Stale addresses of WhileHealthy VirtualIPs were cleared (once, at the first plan).
    cleared: bool,
}

/// How long a withdrawn VirtualIP's address stays on the local interface: connections the
/// routers sent before they saw the withdrawal still find it.
pub const ADDRESS_LINGER: Duration = Duration::from_secs(1);

fn addr_error(op: &str, iface: &str, ip: std::net::IpAddr, e: &std::io::Error) {
    let hint = if e.kind() == std::io::ErrorKind::PermissionDenied { " (kbgp needs CAP_NET_ADMIN)" } else { "" };
    warn!("localInterface: cannot {op} {ip} on {iface}: {e}{hint}");
}

impl Daemon {
    /// Plans `world` (the peers and settings here; the routes in the driver, which plans them
    /// straight into its tables) and, when anything changed, hands it to the driver
    /// (`since`: when the change was seen). Says whether anything changed; on error nothing
    /// does (the caller reports it with [`Daemon::rejected`]).
    fn plan(&mut self, world: Arc<World>, since: Instant) -> Result<bool, String> {
        let plan = plan::plan(&self.node, &world).map_err(|e| e.to_string())?;
        self.checks.sync(&world, &self.node)?;
        let world = self.with_health(world);
        self.local_addresses(&world);
        let changed = plan != *self.plan || self.world.as_ref().is_none_or(|w| **w != *world);
        self.metrics.plan_runs.with_label_values(&[if changed { "applied" } else { "unchanged" }]).inc();
        self.show(Some(world.clone()), None);
        if changed {
            for n in &plan.notes {
                warn!("{n}");
            }
            self.apply(Arc::new(plan), world, since);
        }
        Ok(changed)
    }

    /// `world` with what the health checks say now.
    fn with_health(&self, mut world: Arc<World>) -> Arc<World> {
        let h = self.checks.health(self.draining);
        if *world.vip_health != h {
            Arc::make_mut(&mut world).vip_health = Arc::new(h);
        }
        world
    }

    /// Puts the addresses of the VirtualIPs that should be local on their interfaces now
    /// (before their routes are announced) and takes the others off after [`ADDRESS_LINGER`]
    /// (after their routes are withdrawn).
    fn local_addresses(&mut self, world: &World) {
        use crate::config::vip::Manage;
        let Some(node) = world.node(&self.node) else { return };
        let mut wanted = std::collections::BTreeSet::new();
        let mut stale = Vec::new();
        for v in world.virtual_ips_for(node) {
            let Some(li) = &v.local_interface else { continue };
            let keep = match li.manage {
                Manage::Always => true,
                Manage::WhileHealthy => v.up(&world.vip_health) && !self.draining,
                Manage::Never => false,
            };
            for a in &v.addresses {
                if keep {
                    wanted.insert((li.name.clone(), *a));
                } else if li.manage == Manage::WhileHealthy && !self.cleared {
                    stale.push((li.name.clone(), *a));
                }
            }
        }
        self.cleared = true;
        for (iface, ip) in stale {
            if let Err(e) = iface_addr::remove(&iface, ip) {
                addr_error("remove", &iface, ip, &e);
            }
        }
        let Ok(mut held) = self.local_addrs.lock() else { return };
        for (iface, ip) in wanted.difference(&held) {
            match iface_addr::add(iface, *ip) {
                Ok(()) => info!(%ip, iface = %iface, "VirtualIP address added"),
                Err(e) => addr_error("add", iface, *ip, &e),
            }
        }
        let gone: Vec<(String, std::net::IpAddr)> = held.difference(&wanted).cloned().collect();
        *held = wanted;
        drop(held);
        if !gone.is_empty() {
            let held = self.local_addrs.clone();
            tokio::spawn(async move {
                tokio::time::sleep(ADDRESS_LINGER).await;
                let back = held.lock().map(|h| h.clone()).unwrap_or_default();
                for (iface, ip) in gone.iter().filter(|g| !back.contains(g)) {
                    match iface_addr::remove(iface, *ip) {
                        Ok(()) => info!(%ip, iface = %iface, "VirtualIP address removed"),
                        Err(e) => addr_error("remove", iface, *ip, &e),
                    }
                }
            });
        }
    }

    /// The checks' latest results, for `kbgp why`.
    fn show_health(&self) {
        let views = self.checks.views(tokio::time::Instant::now().into_std());
        if let Ok(mut v) = self.view.write() {
            v.health = views;
        }
    }

    /// A health verdict changed (or draining started): the running World again, with it.
    fn replan_health(&mut self) {
        let Some(world) = self.world.clone() else { return };
        if let Err(e) = self.plan(world, Instant::now()) {
            error!("cannot plan after a health check changed: {e}");
        }
    }

    /// Hands the driver the World (it applies only the difference, and skips to the newest
    /// one when it is busy), and sets up listeners and the view.
    fn apply(&mut self, plan: Arc<Plan>, world: Arc<World>, since: Instant) {
        self.feed.push(world.clone(), since);
        self.world = Some(world);
        // Listeners and the routing of inbound connections.
        let mut routes = HashMap::new();
        let mut ports = HashSet::new();
        let mut keys: HashMap<u16, HashMap<std::net::IpAddr, crate::config::secret::SecretValue>> = HashMap::new();
        for (v, p) in plan.peers() {
            if let Some(port) = v.listen_port {
                ports.insert(port);
                routes.insert((port, p.key.address), p.key);
                if let crate::session::config::Auth::Md5(k) = &p.settings.auth {
                    keys.entry(port).or_default().insert(p.key.address, k.clone());
                }
            }
        }
        if let Ok(mut r) = self.routing.lock() {
            *r = routes;
        }
        self.listeners.retain(|port, l| {
            let keep = ports.contains(port);
            if !keep {
                l.task.abort();
            }
            keep
        });
        for port in ports {
            if let std::collections::hash_map::Entry::Vacant(e) = self.listeners.entry(port) {
                match listener::spawn(port, self.routing.clone(), self.driver.clone()) {
                    Ok(t) => {
                        info!(port, "listening for BGP connections");
                        e.insert(t);
                    }
                    Err(err) => error!(port, "cannot listen for BGP connections: {err}"),
                }
            }
        }
        let none = HashMap::new();
        for (port, l) in &mut self.listeners {
            l.set_keys(*port, keys.get(port).unwrap_or(&none));
        }
        if let Ok(mut v) = self.view.write() {
            v.plan = plan.clone();
            v.peers = plan.peers().map(|(_, p)| (p.key, self.driver.clone())).collect();
            v.peers.sort_by_key(|(k, _)| (k.local_asn, k.address));
        }
        self.plan = plan;
    }

    /// A World (or file) that could not be planned: the running plan stays, and says why.
    fn rejected(&self, error: String) {
        self.metrics.plan_runs.with_label_values(&["failed"]).inc();
        self.show(None, Some(error));
    }

    /// Shows the World the running plan comes from, and whether a newer one was rejected.
    fn show(&self, world: Option<Arc<World>>, config_error: Option<String>) {
        self.metrics.config_error.set(config_error.is_some() as i64);
        if let Ok(mut v) = self.view.write() {
            if let Some(w) = world {
                v.world = w;
            }
            v.config_error = config_error;
        }
    }

    /// VirtualIPs go first, on purpose and explicitly, so that no peer keeps one through
    /// graceful restart: announced with GRACEFUL_SHUTDOWN for their drain time, then
    /// withdrawn; the driver applies that World before it closes any session.
    async fn withdraw_virtual_ips(&mut self) {
        let Some(world) = self.world.clone() else { return };
        let announced: Vec<&crate::config::VirtualIp> = match world.node(&self.node) {
            Some(n) => world.virtual_ips_for(n).filter(|v| v.up(&world.vip_health)).collect(),
            None => Vec::new(),
        };
        if announced.is_empty() {
            return;
        }
        let drain = announced.iter().map(|v| v.drain).max().unwrap_or_default();
        if !drain.is_zero() {
            info!(seconds = drain.as_secs(), "draining the VirtualIPs with GRACEFUL_SHUTDOWN before withdrawing them");
            self.draining = true;
            self.replan_health();
            tokio::time::sleep(drain).await;
        }
        info!(count = announced.len(), "withdrawing the VirtualIPs before closing the sessions");
        let mut w = (*world).clone();
        w.virtual_ips.clear();
        w.vip_health = Arc::new(Default::default());
        let since = Instant::now();
        self.feed.push(Arc::new(w), since);
    }

    async fn shutdown(mut self) {
        self.withdraw_virtual_ips().await;
        let n = Notification::cease(cease_sub::ADMINISTRATIVE_SHUTDOWN, SHUTDOWN_MESSAGE);
        let mode = self.on_shutdown;
        let _ = self.driver.send(peer::Cmd::Shutdown(n, mode)).await;
        if let Some(t) = self.driver_task.take() {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), t).await.is_err() {
                abort.abort();
            }
        }
        for (_, l) in self.listeners.drain() {
            l.task.abort();
        }
        if let Some(s) = self.restart_state.take() {
            s.finish(mode == crate::session::peer::Shutdown::Keep);
        }
        let held = self.local_addrs.lock().map(|mut h| std::mem::take(&mut *h)).unwrap_or_default();
        if !held.is_empty() {
            tokio::time::sleep(ADDRESS_LINGER).await;
            for (iface, ip) in held {
                if let Err(e) = iface_addr::remove(&iface, ip) {
                    addr_error("remove", &iface, ip, &e);
                }
            }
        }
    }
}

/// Counts a World loaded from files, with the LB IPAM assignments made for it.
fn took(metrics: &Metrics, alloc: &ipam::Allocation) {
    metrics.world_updates.with_label_values(&["files"]).inc();
    metrics.set_pools(alloc);
    metrics.ipam_leader.set(1);
    metrics.last_sync.set(crate::admin::api::unix_now() as i64);
}

/// SIGTERM, SIGINT and SIGHUP.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals, String> {
        let s = |k: SignalKind, name: &str| signal(k).map_err(|e| format!("{name} handler: {e}"));
        Ok(Signals {
            term: s(SignalKind::terminate(), "SIGTERM")?,
            int: s(SignalKind::interrupt(), "SIGINT")?,
            hup: s(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}

impl Daemon {
    fn new(metrics: Arc<Metrics>, view: admin::SharedView, node: &str, opts: &RunOptions) -> Daemon {
        let restarted = opts.state_dir.as_deref().and_then(restart_state::previous);
        if let Some(ago) = restarted {
            info!(
                "restarting: the previous kbgp was alive {} s ago; neighbors with graceful restart get the Restart State bit",
                ago.as_secs()
            );
        }
        let restart_state = opts.state_dir.as_deref().and_then(|dir| match restart_state::RestartState::start(dir) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(dir = %dir.display(), "--state-dir: {e}; a restart will not be announced with the Restart State bit");
                None
            }
        });
        let (driver, feed, task) = peer::spawn(node, metrics.clone(), seed, restarted);
        let metrics_for_checks = metrics.clone();
        Daemon {
            metrics,
            node: node.to_string(),
            world: None,
            driver,
            feed,
            driver_task: Some(task),
            listeners: HashMap::new(),
            routing: Default::default(),
            plan: Arc::new(Plan::default()),
            view,
            on_shutdown: opts.on_shutdown,
            restart_state,
            checks: health::Checks::new(metrics_for_checks),
            draining: false,
            local_addrs: Default::default(),
            cleared: false,
        }
    }
}

/// Serves the admin API when asked to; an unusable socket stops the start.
fn serve_admin(
    opts: &RunOptions,
    view: &admin::SharedView,
    metrics: &Arc<Metrics>,
) -> Result<Option<admin::AdminServer>, String> {
    match &opts.admin_socket {
        None => Ok(None),
        Some(p) => admin::serve(p, view.clone(), metrics.clone()).map(Some).map_err(|e| {
            if e.starts_with("another process") {
                format!("--admin-socket: {e}")
            } else {
                format!("--admin-socket: {e} (give it a writable directory, or pass --admin-socket none)")
            }
        }),
    }
}

/// Runs the speaker until SIGTERM or SIGINT: from files when `opts.config` names some, else
/// from the Kubernetes API server.
pub async fn run(opts: RunOptions) -> Result<(), String> {
    if opts.config.is_empty() { run_kubernetes(opts).await } else { run_files(opts).await }
}

/// `kbgp run --lb-ipam-only`: the LB IPAM controller alone, no BGP (a small Deployment, one active
/// replica by Lease): it watches Services, pools, Namespaces and every Node and is the only
/// writer of Services' `status.loadBalancer`, pools' status and the configuration kinds'
/// conditions.
pub async fn run_lb_ipam(opts: RunOptions) -> Result<(), String> {
    let lease = opts.lb_ipam.clone().ok_or("lb-ipam needs its Lease settings")?;
    let client = kube::Client::try_default().await.map_err(|e| format!("cannot set up the Kubernetes client: {e}"))?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    serve_metrics(&opts, &metrics, &ready).await?;
    info!(identity = %lease.identity, metrics = %opts.metrics_addr, "kbgp {} LB IPAM controller starting", env!("CARGO_PKG_VERSION"));
    // Every Node: the conditions of the configuration say which nodes a policy selects and
    // where it conflicts. (No endpoints: LB IPAM does not read them.)
    let mut worlds = crate::source::kube::start(
        client.clone(),
        None,
        opts.namespaces.clone(),
        opts.lb_class.clone(),
        opts.coalesce_window,
        metrics.clone(),
    );
    let lease = ipam::controller::Options { conditions: true, ..lease };
    let (stop, task) = ipam::controller::start(client, lease, worlds.clone(), metrics.clone());
    let mut sig = Signals::new()?;
    loop {
        tokio::select! {
            _ = sig.term.recv() => break,
            _ = sig.int.recv() => break,
            _ = sig.hup.recv() => {}
            changed = worlds.changed() => {
                if changed.is_err() {
                    return Err("the Kubernetes watchers stopped".into());
                }
                if worlds.borrow_and_update().is_some() {
                    ready.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    info!("stopping: the Lease is released if this replica holds it");
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    Ok(())
}

async fn serve_metrics(opts: &RunOptions, metrics: &Arc<Metrics>, ready: &Arc<AtomicBool>) -> Result<(), String> {
    http::serve(opts.metrics_addr, metrics.clone(), ready.clone())
        .await
        .map(|_| ())
        .map_err(|e| format!("--metrics-addr {}: {e}", opts.metrics_addr))
}

async fn run_files(opts: RunOptions) -> Result<(), String> {
    let mut source = FileSource::new(opts.config.clone());
    let started = Instant::now();
    let FileWorld { node, world, alloc, warnings } =
        load(&mut source, opts.node.as_deref(), &opts.namespaces, opts.lb_class.as_deref())?;
    for w in &warnings {
        warn!("{w}");
    }
    // Nothing starts on a plan error.
    plan::plan(&node, &world).map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::new());
    let view = admin::View::new(node.clone(), format!("files: {}", source.describe()), opts.namespaces.clone());
    let _admin = serve_admin(&opts, &view, &metrics)?;
    let ready = Arc::new(AtomicBool::new(false));
    serve_metrics(&opts, &metrics, &ready).await?;
    info!(
        node = %node,
        config = %source.describe(),
        metrics = %opts.metrics_addr,
        admin = %opts.admin_socket.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "off".into()),
        "kbgp {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let mut sig = Signals::new()?;
    let mut d = Daemon::new(metrics.clone(), view, &node, &opts);
    took(&metrics, &alloc);
    // The allocation is one entry per address: not kept (kbgp why makes its own).
    drop(alloc);
    peer::release_free_memory();
    d.plan(world, started)?;
    ready.store(true, Ordering::Relaxed);
    let mut tick = tokio::time::interval(opts.watch_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        let reason = tokio::select! {
            _ = sig.term.recv() => { info!("SIGTERM: closing every session"); break; }
            _ = sig.int.recv() => { info!("SIGINT: closing every session"); break; }
            _ = sig.hup.recv() => "SIGHUP",
            changed = d.checks.next() => {
                d.show_health();
                if changed {
                    d.replan_health();
                }
                continue;
            }
            _ = tick.tick() => {
                if !source.changed() {
                    continue;
                }
                "file changed"
            }
        };
        let seen = Instant::now();
        let planned = load(&mut source, Some(&node), &opts.namespaces, opts.lb_class.as_deref()).and_then(|f| {
            for w in &f.warnings {
                warn!("{w}");
            }
            took(&metrics, &f.alloc);
            d.plan(f.world, seen)
        });
        match planned {
            Ok(true) => {
                metrics.config_reloads.with_label_values(&["applied"]).inc();
                info!("{reason}: applied the new configuration");
            }
            Ok(false) => {
                metrics.config_reloads.with_label_values(&["unchanged"]).inc();
                info!("{reason}: configuration unchanged");
            }
            Err(e) => {
                metrics.config_reloads.with_label_values(&["rejected"]).inc();
                for line in e.lines() {
                    error!("{reason}: configuration rejected, keeping the running one: {line}");
                }
                d.rejected(e.lines().next().unwrap_or_default().to_string());
            }
        }
    }
    d.shutdown().await;
    info!("stopped");
    Ok(())
}

/// How long watch events are coalesced before a new World is planned, by default (ms).
pub const DEFAULT_COALESCE_MS: u64 = 100;

async fn run_kubernetes(opts: RunOptions) -> Result<(), String> {
    let node = opts.node.clone().ok_or(
        "Kubernetes mode needs the node's name: set NODE_NAME (from the downward API's spec.nodeName) or pass --node; \
         to run from files, pass --config",
    )?;
    let client = kube::Client::try_default().await.map_err(|e| format!("cannot set up the Kubernetes client: {e}"))?;
    let metrics = Arc::new(Metrics::new());
    let view = admin::View::new(node.clone(), "kubernetes".into(), opts.namespaces.clone());
    let _admin = serve_admin(&opts, &view, &metrics)?;
    let ready = Arc::new(AtomicBool::new(false));
    serve_metrics(&opts, &metrics, &ready).await?;
    info!(node = %node, metrics = %opts.metrics_addr, "kbgp {} starting, watching the Kubernetes API", env!("CARGO_PKG_VERSION"));
    let mut worlds = crate::source::kube::start(
        client.clone(),
        Some(node.clone()),
        opts.namespaces.clone(),
        opts.lb_class.clone(),
        opts.coalesce_window,
        metrics.clone(),
    );
    let controller =
        opts.lb_ipam.clone().map(|o| ipam::controller::start(client.clone(), o, worlds.clone(), metrics.clone()));
    let ns = &opts.node_status;
    let reporter = (ns.node_status || ns.service_events)
        .then(|| node_status::start(client, node.clone(), view.clone(), metrics.clone(), ns.clone()));
    let mut sig = Signals::new()?;
    let mut d = Daemon::new(metrics.clone(), view, &node, &opts);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = sig.term.recv() => { info!("SIGTERM: closing every session"); break; }
            _ = sig.int.recv() => { info!("SIGINT: closing every session"); break; }
            _ = sig.hup.recv() => info!("SIGHUP: nothing to reload, the configuration comes from the API server"),
            changed = d.checks.next() => {
                d.show_health();
                if changed {
                    d.replan_health();
                }
            }
            changed = worlds.changed() => {
                if changed.is_err() {
                    return Err("the Kubernetes watchers stopped".into());
                }
                let Some(snapshot) = worlds.borrow_and_update().clone() else { continue };
                // Update latency counts from the first watch event of the batch.
                metrics.world_updates.with_label_values(&["kubernetes"]).inc();
                match d.plan(snapshot.world, snapshot.since) {
                    Ok(_) => {
                        last_error = None;
                        ready.store(true, Ordering::Relaxed);
                    }
                    // Keep announcing what the last good plan said.
                    Err(e) => {
                        d.rejected(e.clone());
                        if last_error.as_deref() != Some(&e) {
                            error!("cannot plan, keeping the running plan: {e}");
                            last_error = Some(e);
                        }
                    }
                }
            }
        }
    }
    if let Some((stop, task)) = controller {
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let Some((stop, task)) = reporter {
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    d.shutdown().await;
    info!("stopped");
    Ok(())
}
