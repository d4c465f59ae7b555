//! The driver of every peer: one task that moves bytes between the sockets and the sans-IO
//! cores (`session::Peer`), time into them, and plans into the export groups' shared tables
//! (`rib::OutTable`). All protocol decisions are the cores'; this file only does I/O.
//!
//! Per connection a reader task frames messages into one bounded channel (a slow driver
//! slows the peers through TCP) and a writer task drains an unbounded queue. Control
//! messages (KEEPALIVE, NOTIFICATION, ROUTE-REFRESH) are always queued; UPDATEs are produced
//! only while fewer than [`WRITE_QUEUE`] chunks are in flight, so a peer that stops reading
//! holds at most that much, never a copy of the table. Plans arrive through a watch channel:
//! a busy driver skips to the newest plan, it never misses one.

use super::conn::{self, CLOSE_GRACE, ReadEvent, Write};
use super::local_addr;
use crate::admin::api::{self, unix_now};
use crate::metrics::Metrics;
use crate::plan::{GroupKey, Plan};
use crate::rib::OutTable;
use crate::session::peer::{Io, Peer};
use crate::session::{ConnId, PeerKey};
use crate::wire::error::cease_sub;
use crate::wire::{Family, Notification};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::debug;

/// UPDATE octets per chunk, and chunks in flight per connection.
const FLUSH_CHUNK: usize = 64 * 1024;
pub const WRITE_QUEUE: usize = 4;

/// What the admin API asks a peer.
#[derive(Debug)]
pub enum PeerCmd {
    Status(oneshot::Sender<api::Peer>),
    /// What the peer has from us (`received: false`) or sent us, optionally of one family.
    Table {
        received: bool,
        family: Option<Family>,
        reply: oneshot::Sender<Vec<api::Route>>,
    },
    /// `kbgp reset`, hard or soft.
    Reset {
        soft: bool,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `kbgp refresh`.
    Refresh {
        reply: oneshot::Sender<Result<String, String>>,
    },
}

#[derive(Debug)]
pub enum Cmd {
    Peer(PeerKey, PeerCmd),
    /// A connection a listener accepted from this peer's address.
    Inbound(PeerKey, TcpStream),
    /// Send this Cease to every peer, then end.
    Shutdown(Notification),
}

/// The newest plan and when the change behind it was seen.
pub type PlanFeed = watch::Sender<Option<(Arc<Plan>, Instant)>>;

/// What the socket tasks report.
enum Net {
    Read(PeerKey, ConnId, ReadEvent),
    Written(PeerKey, ConnId),
    Connected(PeerKey, u64, io::Result<TcpStream>),
}

struct Wire {
    tx: mpsc::UnboundedSender<Write>,
    in_flight: usize,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

struct Slot {
    core: Peer,
    group: GroupKey,
    wires: HashMap<ConnId, Wire>,
    connecting: Option<(u64, JoinHandle<()>)>,
    metrics_token: u64,
}

struct Driver {
    metrics: Arc<Metrics>,
    peers: HashMap<PeerKey, Slot>,
    tables: HashMap<GroupKey, OutTable>,
    reads: mpsc::Sender<Net>,
    notes: mpsc::UnboundedSender<Net>,
    attempts: u64,
    seed: fn(&str) -> u64,
    /// Writers of closed connections, still writing their last messages (a NOTIFICATION).
    closing: Vec<JoinHandle<()>>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Starts the driver; it ends after [`Cmd::Shutdown`] once every peer's Cease is written.
pub fn spawn(metrics: Arc<Metrics>, seed: fn(&str) -> u64) -> (mpsc::Sender<Cmd>, PlanFeed, JoinHandle<()>) {
    let (cmd_tx, mut cmds) = mpsc::channel(64);
    let (plan_tx, mut plans) = watch::channel::<Option<(Arc<Plan>, Instant)>>(None);
    let (reads, mut read_rx) = mpsc::channel(1024);
    let (notes, mut note_rx) = mpsc::unbounded_channel();
    let mut d = Driver {
        metrics,
        peers: HashMap::new(),
        tables: HashMap::new(),
        reads,
        notes,
        attempts: 0,
        seed,
        closing: Vec::new(),
    };
    let task = tokio::spawn(async move {
        loop {
            let deadline = d.peers.values().filter_map(|s| s.core.poll_timeout()).min();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Peer(key, c)) => d.ask(key, c),
                    Some(Cmd::Inbound(key, stream)) => d.inbound(key, stream),
                    Some(Cmd::Shutdown(n)) => return d.shutdown(n).await,
                    None => return d.shutdown(Notification::cease(cease_sub::PEER_DECONFIGURED, "")).await,
                },
                Ok(()) = plans.changed() => {
                    let next = plans.borrow_and_update().clone();
                    if let Some((plan, since)) = next {
                        d.apply(&plan, since);
                    }
                }
                Some(n) = read_rx.recv() => d.net(n),
                Some(n) = note_rx.recv() => d.net(n),
                _ = sleep => {
                    let t = now();
                    let due: Vec<PeerKey> = d.peers.iter()
                        .filter(|(_, s)| s.core.poll_timeout().is_some_and(|x| x <= t)).map(|(k, _)| *k).collect();
                    for k in due {
                        d.with(k, |s| s.core.handle_timeout(t));
                    }
                }
            }
        }
    });
    (cmd_tx, plan_tx, task)
}

impl Driver {
    /// Runs `f` on a peer's core, then carries out what it asked for.
    fn with(&mut self, key: PeerKey, f: impl FnOnce(&mut Slot)) {
        let Some(slot) = self.peers.get_mut(&key) else { return };
        f(slot);
        self.pump(key);
    }

    fn pump(&mut self, key: PeerKey) {
        let Some(slot) = self.peers.get_mut(&key) else { return };
        let table = self.tables.entry(slot.group.clone()).or_default();
        loop {
            while let Some(io) = slot.core.poll_io() {
                match io {
                    Io::Connect => {
                        if let Some((_, t)) = slot.connecting.take() {
                            t.abort();
                        }
                        self.attempts += 1;
                        let (id, tx, s) = (self.attempts, self.notes.clone(), slot.core.settings());
                        let (addr, ttl) = (std::net::SocketAddr::new(s.address, s.port), s.ttl);
                        let task = tokio::spawn(async move {
                            let _ = tx.send(Net::Connected(key, id, conn::connect(addr, ttl).await));
                        });
                        slot.connecting = Some((id, task));
                    }
                    Io::CancelConnect => {
                        if let Some((_, t)) = slot.connecting.take() {
                            t.abort();
                        }
                    }
                    Io::Send { conn, bytes } => {
                        if let Some(w) = slot.wires.get(&conn) {
                            let _ = w.tx.send(Write { bytes, counted: false });
                        }
                    }
                    Io::Close { conn } => {
                        if let Some(w) = slot.wires.remove(&conn) {
                            close(w, &mut self.closing);
                        }
                    }
                }
            }
            // UPDATEs only while the established connection has room.
            let room = slot
                .core
                .established_conn()
                .and_then(|c| slot.wires.get(&c))
                .is_some_and(|w| w.in_flight < WRITE_QUEUE);
            if !room || !slot.core.wants_updates(table) {
                break;
            }
            let Some((conn, bytes)) = slot.core.poll_updates(now(), table, FLUSH_CHUNK) else { break };
            if let Some(w) = slot.wires.get_mut(&conn) {
                w.in_flight += 1;
                let _ = w.tx.send(Write { bytes, counted: true });
            }
        }
        let (label, vrouter) = (key.address.to_string(), key.local_asn.to_string());
        while let Some(e) = slot.core.poll_event() {
            self.metrics.peer_event(&label, &vrouter, &e);
        }
        // Tombstones every established peer of the group has passed can go.
        let group = slot.group.clone();
        let min = self.peers.values().filter(|s| s.group == group).filter_map(|s| s.core.cursor()).min();
        if let Some(t) = self.tables.get_mut(&group) {
            t.collect(min.unwrap_or(t.version()));
        }
    }

    fn add_conn(&mut self, key: PeerKey, stream: TcpStream, inbound: bool) {
        let Some(slot) = self.peers.get_mut(&key) else { return };
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                return debug!(peer = %key.address, vrouter = %key.local_asn, "connection without a local address: {e}");
            }
        };
        let companion = local_addr::companion(local.ip().to_canonical(), &local_addr::interface_addresses());
        let id = slot.core.connected(now(), inbound, local, companion);
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = conn::spawn_reader(rd, self.reads.clone(), move |e| Net::Read(key, id, e));
        let notes = self.notes.clone();
        let writer = conn::spawn_writer(wr, rx, move || {
            let _ = notes.send(Net::Written(key, id));
        });
        slot.wires.insert(id, Wire { tx, in_flight: 0, reader, writer });
        self.pump(key);
    }

    fn net(&mut self, n: Net) {
        let t = now();
        match n {
            Net::Read(key, conn, ReadEvent::Frame(b)) => self.with(key, |s| s.core.handle_frame(t, conn, &b)),
            Net::Read(key, conn, ReadEvent::Invalid(e)) => self.with(key, |s| s.core.handle_invalid(t, conn, e)),
            Net::Read(key, conn, ReadEvent::Closed(e)) => {
                if let Some(e) = e {
                    debug!(peer = %key.address, vrouter = %key.local_asn, conn = conn.0, "read failed: {e}");
                }
                self.with(key, |s| {
                    if let Some(w) = s.wires.remove(&conn) {
                        w.reader.abort();
                    }
                    s.core.handle_closed(t, conn)
                })
            }
            Net::Written(key, conn) => self.with(key, |s| {
                if let Some(w) = s.wires.get_mut(&conn) {
                    w.in_flight = w.in_flight.saturating_sub(1);
                }
            }),
            Net::Connected(key, id, r) => {
                let Some(slot) = self.peers.get_mut(&key).filter(|s| s.connecting.as_ref().is_some_and(|c| c.0 == id))
                else {
                    return;
                };
                slot.connecting = None;
                match r {
                    Ok(stream) => self.add_conn(key, stream, false),
                    Err(e) => self.with(key, |s| s.core.connect_failed(t, e.to_string())),
                }
            }
        }
    }

    fn inbound(&mut self, key: PeerKey, stream: TcpStream) {
        let Some(slot) = self.peers.get(&key) else { return };
        match conn::prepare_accepted(&stream, slot.core.settings().ttl) {
            Ok(()) => self.add_conn(key, stream, true),
            Err(e) => debug!(peer = %key.address, vrouter = %key.local_asn, "inbound connection unusable: {e}"),
        }
    }

    fn ask(&mut self, key: PeerKey, c: PeerCmd) {
        let (t, unix) = (now(), unix_now());
        let Some(slot) = self.peers.get_mut(&key) else { return };
        let table = self.tables.entry(slot.group.clone()).or_default();
        match c {
            PeerCmd::Status(reply) => drop(reply.send(slot.core.status(t, unix, table))),
            PeerCmd::Table { received: true, family, reply } => drop(reply.send(slot.core.received_routes(family))),
            PeerCmd::Table { family, reply, .. } => drop(reply.send(slot.core.advertised_routes(table, family))),
            PeerCmd::Reset { soft, reply } => drop(reply.send(slot.core.reset(t, soft, table))),
            PeerCmd::Refresh { reply } => drop(reply.send(slot.core.refresh(t))),
        }
        self.pump(key);
    }

    /// Makes the peers and tables match `plan`: only what differs changes.
    fn apply(&mut self, plan: &Plan, since: Instant) {
        let t = now();
        let wanted: HashMap<PeerKey, &crate::plan::PeerPlan> = plan.peers().map(|(_, p)| (p.key, p)).collect();
        let gone: Vec<PeerKey> = self.peers.keys().filter(|k| !wanted.contains_key(k)).copied().collect();
        for k in gone {
            tracing::info!(peer = %k.address, vrouter = %k.local_asn, "peer removed from the configuration");
            self.remove(k, Notification::cease(cease_sub::PEER_DECONFIGURED, ""));
        }
        let mut synced = std::collections::HashSet::new();
        for (key, p) in &wanted {
            if synced.insert(p.group.clone()) {
                let table = self.tables.entry(p.group.clone()).or_default();
                table.sync(&p.routes);
            }
            let restart = match self.peers.get(key) {
                Some(s) if s.core.settings() == &p.settings => None,
                Some(_) => {
                    tracing::info!(peer = %key.address, vrouter = %key.local_asn,
                        "session settings changed: restarting the session in {} s", crate::session::peer::RESET_DELAY.as_secs());
                    self.remove(*key, Notification::cease(cease_sub::OTHER_CONFIGURATION_CHANGE, ""));
                    Some(Some(t + crate::session::peer::RESET_DELAY))
                }
                None => Some(None),
            };
            if let Some(at) = restart {
                let (label, vrouter) = (key.address.to_string(), key.local_asn.to_string());
                let metrics_token = self.metrics.claim_peer(&label, &vrouter);
                self.metrics
                    .session_state
                    .with_label_values(&[&label, &vrouter])
                    .set(crate::session::State::Idle as i64);
                self.metrics.session_up.with_label_values(&[&label, &vrouter]).set(0);
                let mut core = Peer::new(*key, p.settings.clone(), (self.seed)(&key.to_string()));
                core.start(t, at);
                let slot =
                    Slot { core, group: p.group.clone(), wires: HashMap::new(), connecting: None, metrics_token };
                self.peers.insert(*key, slot);
            }
        }
        self.tables.retain(|g, _| synced.contains(g));
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            if let Some(s) = self.peers.get_mut(&k)
                && let Some(table) = self.tables.get(&s.group)
            {
                s.core.table_changed(table.version(), since);
            }
            self.pump(k);
        }
    }

    /// Stops a peer with `n` and forgets it; its connections close in the background.
    fn remove(&mut self, key: PeerKey, n: Notification) {
        self.with(key, |s| s.core.stop(now(), n));
        let Some(slot) = self.peers.remove(&key) else { return };
        self.metrics.forget_peer(&key.address.to_string(), &key.local_asn.to_string(), slot.metrics_token);
        for (_, w) in slot.wires {
            close(w, &mut self.closing);
        }
    }

    /// Every peer gets `n`; returns once the NOTIFICATIONs are written (or [`CLOSE_GRACE`]).
    async fn shutdown(mut self, n: Notification) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.remove(k, n.clone());
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, futures::future::join_all(self.closing)).await;
    }
}

/// Closes a connection: the writer writes what is queued (a NOTIFICATION) and shuts the
/// socket down; a peer that does not read gets [`CLOSE_GRACE`], then the socket goes.
fn close(w: Wire, closing: &mut Vec<JoinHandle<()>>) {
    w.reader.abort();
    drop(w.tx);
    let abort = w.writer.abort_handle();
    tokio::spawn(async move {
        tokio::time::sleep(CLOSE_GRACE).await;
        abort.abort();
    });
    closing.retain(|t| !t.is_finished());
    closing.push(w.writer);
}
