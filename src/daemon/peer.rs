//! The driver of every peer: one task that moves bytes between the sockets and the sans-IO
//! cores (`session::Speaker` and its `session::Peer`s), time into them, and plans to them.
//! Every protocol decision is theirs; this file only does I/O.
//!
//! Per connection a reader task frames messages into one bounded channel (a slow driver
//! slows the peers through TCP) and a writer task drains an unbounded queue. Control
//! messages (KEEPALIVE, NOTIFICATION, ROUTE-REFRESH) are always queued; UPDATEs are produced
//! only while fewer than [`WRITE_QUEUE`] chunks are in flight, so a peer that stops reading
//! holds at most that much, never a copy of the table. New Worlds arrive through a [`Feed`]
//! that keeps only the newest: the speaker's planner diffs it against the last one it
//! planned, so a driver busy with a large transfer skips to the latest state and misses no
//! change.

use super::bfd;
use super::conn::{self, CLOSE_GRACE, ReadEvent, Wire, Write};
use super::local_addr;
use crate::admin::api::{self, unix_now};
use crate::config::World;
use crate::metrics::Metrics;
use crate::session::peer::{Io, Peer, Shutdown};
use crate::session::speaker::{Change, Speaker};
use crate::session::{ConnId, PeerKey};
use crate::wire::error::cease_sub;
use crate::wire::{Family, Notification};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};
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
    /// Shut down: every peer ends as the mode says (with this Cease where one is sent), then
    /// the driver ends.
    Shutdown(Notification, Shutdown),
}

/// Worlds on their way to the driver: only the newest is kept, with when the oldest change
/// not yet planned was seen.
#[derive(Default)]
pub struct Feed {
    pending: Mutex<Option<(Arc<World>, Instant)>>,
    notify: Notify,
}

impl Feed {
    /// Hands over a new World; `since`: when the change behind it was seen.
    pub fn push(&self, world: Arc<World>, since: Instant) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let since = p.as_ref().map_or(since, |(_, s)| since.min(*s));
        *p = Some((world, since));
        drop(p);
        self.notify.notify_one();
    }

    fn take(&self) -> Option<(Arc<World>, Instant)> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// What the socket tasks report.
enum Net {
    Read(PeerKey, ConnId, ReadEvent),
    Written(PeerKey, ConnId),
    Connected(PeerKey, u64, io::Result<TcpStream>),
}

/// A peer's sockets.
#[derive(Default)]
struct Sockets {
    wires: HashMap<ConnId, Wire>,
    connecting: Option<(u64, JoinHandle<()>)>,
    /// Where its BFD packets leave from, once it sends any.
    bfd: Option<std::net::UdpSocket>,
    metrics_token: u64,
}

struct Driver {
    speaker: Speaker,
    sockets: HashMap<PeerKey, Sockets>,
    metrics: Arc<Metrics>,
    reads: mpsc::Sender<Net>,
    notes: mpsc::UnboundedSender<Net>,
    attempts: u64,
    seed: fn(&str) -> u64,
    /// Writers of closed connections, still writing their last messages (a NOTIFICATION).
    closing: Vec<JoinHandle<()>>,
    bfd: bfd::Listeners,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Starts the driver; it ends after [`Cmd::Shutdown`] once every peer's Cease is written.
/// `restarted`: how long ago the previous kbgp was alive, when this one is a restart.
pub fn spawn(
    node: &str,
    metrics: Arc<Metrics>,
    seed: fn(&str) -> u64,
    restarted: Option<std::time::Duration>,
) -> (mpsc::Sender<Cmd>, Arc<Feed>, JoinHandle<()>) {
    let (cmd_tx, mut cmds) = mpsc::channel(64);
    let feed = Arc::new(Feed::default());
    let plans = feed.clone();
    let (reads, mut read_rx) = mpsc::channel(1024);
    let (notes, mut note_rx) = mpsc::unbounded_channel();
    let (bfd_tx, mut bfd_rx) = mpsc::channel(256);
    let (mut speaker, sockets, closing) = (Speaker::new(node), HashMap::new(), Vec::new());
    if let Some(ago) = restarted {
        speaker.set_restarted(ago);
    }
    let bfd = bfd::Listeners::new(bfd_tx);
    let mut d = Driver { speaker, sockets, metrics, reads, notes, attempts: 0, seed, closing, bfd };
    let task = tokio::spawn(async move {
        loop {
            let deadline = d.speaker.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Peer(key, c)) => d.ask(key, c),
                    Some(Cmd::Inbound(key, stream)) => d.inbound(key, stream),
                    Some(Cmd::Shutdown(n, mode)) => {
                        // A World handed over just before (the VirtualIPs withdrawn) goes out
                        // ahead of the NOTIFICATIONs.
                        if let Some((world, since)) = plans.take() {
                            d.apply(world, since);
                        }
                        return d.shutdown(n, mode).await;
                    }
                    None => {
                        let n = Notification::cease(cease_sub::PEER_DECONFIGURED, "");
                        return d.shutdown(n, Shutdown::Withdraw).await;
                    }
                },
                _ = plans.notify.notified() => {
                    if let Some((world, since)) = plans.take() {
                        d.apply(world, since);
                    }
                }
                Some(n) = read_rx.recv() => d.net(n),
                Some(n) = note_rx.recv() => d.net(n),
                Some(b) = bfd_rx.recv() => d.bfd_in(b),
                _ = async { tokio::time::sleep_until(deadline?).await; Some(()) }, if deadline.is_some() => {
                    for k in d.speaker.handle_timeout(now()) {
                        d.pump(k);
                    }
                }
            }
        }
    });
    (cmd_tx, feed, task)
}

impl Driver {
    /// Carries out what a peer's core asked for: sockets, writes, UPDATEs while there is room.
    fn pump(&mut self, key: PeerKey) {
        let share = self.speaker.sharing(&key);
        let (Some((core, table)), Some(socks)) = (self.speaker.get(&key), self.sockets.get_mut(&key)) else { return };
        loop {
            drain(key, core, socks, &self.notes, &mut self.attempts, &mut self.closing);
            let conn = core.established_conn();
            let room = conn.and_then(|c| socks.wires.get(&c)).is_some_and(|w| w.in_flight < WRITE_QUEUE);
            if !room || !core.wants_updates(table) {
                break;
            }
            let Some((conn, bytes)) = core.poll_updates(now(), table, FLUSH_CHUNK, share) else { break };
            if let Some(w) = socks.wires.get_mut(&conn) {
                w.in_flight += 1;
                let _ = w.tx.send(Write { bytes, counted: true });
            }
        }
        let (label, vrouter) = (key.address.to_string(), key.local_asn.to_string());
        while let Some(e) = core.poll_event() {
            self.metrics.peer_event(&label, &vrouter, &e);
        }
        self.speaker.collect(&key);
    }

    fn add_conn(&mut self, key: PeerKey, stream: TcpStream, inbound: bool) {
        let (Some((core, _)), Some(socks)) = (self.speaker.get(&key), self.sockets.get_mut(&key)) else { return };
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => return debug!(peer = %key.address, vrouter = %key.local_asn, "no local address: {e}"),
        };
        let companion = local_addr::companion(local.ip().to_canonical(), &local_addr::interface_addresses());
        let id = core.connected(now(), inbound, local, companion);
        let notes = self.notes.clone();
        let written = move || drop(notes.send(Net::Written(key, id)));
        socks.wires.insert(id, Wire::start(stream, self.reads.clone(), move |e| Net::Read(key, id, e), written));
        self.pump(key);
    }

    fn net(&mut self, n: Net) {
        let t = now();
        let key = match &n {
            Net::Read(k, ..) | Net::Written(k, _) | Net::Connected(k, ..) => *k,
        };
        let (Some((core, _)), Some(socks)) = (self.speaker.get(&key), self.sockets.get_mut(&key)) else { return };
        // A connection being closed is still read, to close it cleanly; what it brings is not
        // for the session any more.
        if let Net::Read(_, conn, _) = &n
            && !socks.wires.contains_key(conn)
        {
            return;
        }
        match n {
            Net::Read(_, conn, ReadEvent::Frame(b)) => core.handle_frame(t, conn, &b),
            Net::Read(_, conn, ReadEvent::Invalid(e)) => core.handle_invalid(t, conn, e),
            Net::Read(_, conn, ReadEvent::Closed(e)) => {
                if let Some(e) = e {
                    debug!(peer = %key.address, vrouter = %key.local_asn, conn = conn.0, "read failed: {e}");
                }
                socks.wires.remove(&conn);
                core.handle_closed(t, conn);
            }
            Net::Written(_, conn) => {
                if let Some(w) = socks.wires.get_mut(&conn) {
                    w.in_flight = w.in_flight.saturating_sub(1);
                }
            }
            Net::Connected(_, id, r) => {
                if socks.connecting.as_ref().is_none_or(|c| c.0 != id) {
                    return; // an attempt given up since
                }
                socks.connecting = None;
                match r {
                    Ok(stream) => return self.add_conn(key, stream, false),
                    Err(e) => core.connect_failed(t, e.to_string()),
                }
            }
        }
        self.pump(key);
    }

    fn bfd_in(&mut self, b: bfd::Datagram) {
        match self.speaker.handle_bfd(now(), b.from, b.multihop, b.ttl, &b.bytes) {
            Ok(key) => self.pump(key),
            Err((reason, detail)) => {
                self.metrics.bfd_discarded.with_label_values(&[reason]).inc();
                debug!(from = %b.from, ttl = b.ttl, "BFD packet discarded: {detail}");
            }
        }
    }

    fn inbound(&mut self, key: PeerKey, stream: TcpStream) {
        let Some((core, _)) = self.speaker.get(&key) else { return };
        match conn::prepare_accepted(&stream, core.settings().ttl, core.settings().min_ttl) {
            Ok(()) => self.add_conn(key, stream, true),
            Err(e) => debug!(peer = %key.address, vrouter = %key.local_asn, "inbound connection unusable: {e}"),
        }
    }

    fn ask(&mut self, key: PeerKey, c: PeerCmd) {
        let (t, unix) = (now(), unix_now());
        let Some((core, table)) = self.speaker.get(&key) else { return };
        match c {
            PeerCmd::Status(reply) => drop(reply.send(core.status(t, unix, table))),
            PeerCmd::Table { received: true, family, reply } => drop(reply.send(core.received_routes(family))),
            PeerCmd::Table { family, reply, .. } => drop(reply.send(core.advertised_routes(table, family))),
            PeerCmd::Reset { soft, reply } => drop(reply.send(core.reset(t, soft, table))),
            PeerCmd::Refresh { reply } => drop(reply.send(core.refresh(t))),
        }
        self.pump(key);
    }

    fn apply(&mut self, world: Arc<World>, since: Instant) {
        let t = now();
        let applied = match self.speaker.apply(world, t, since, self.seed) {
            Ok(a) => a,
            // The daemon planned this World before handing it over; this cannot differ.
            Err(e) => return tracing::error!("cannot plan, keeping the running plan: {e}"),
        };
        self.metrics.plan_duration.observe(t.elapsed().as_secs_f64());
        for c in applied.changes {
            match c {
                Change::Stopped(core) => self.retire(*core),
                Change::Started(key) => {
                    if let Some(b) = self.speaker.get(&key).and_then(|(c, _)| c.settings().bfd) {
                        self.bfd.ensure(b.multihop);
                    }
                    let token = self.metrics.claim_peer(&key.address.to_string(), &key.local_asn.to_string());
                    self.sockets.insert(key, Sockets { metrics_token: token, ..Sockets::default() });
                }
            }
        }
        if applied.full {
            release_free_memory();
        }
        let keys: Vec<PeerKey> = self.speaker.keys().collect();
        for k in keys {
            if applied.full
                && let Some((_, table)) = self.speaker.get(&k)
            {
                tracing::info!(peer = %k.address, vrouter = %k.local_asn, routes = table.total(), "planned");
            }
            self.pump(k);
        }
    }

    /// Writes a stopped core's last messages and closes its connections.
    fn retire(&mut self, mut core: Peer) {
        let key = core.key();
        let Some(mut socks) = self.sockets.remove(&key) else { return };
        drain(key, &mut core, &mut socks, &self.notes, &mut self.attempts, &mut self.closing);
        self.closing.retain(|t| !t.is_finished());
        self.closing.extend(socks.wires.drain().map(|(_, w)| w.close()));
        self.metrics.forget_peer(&key.address.to_string(), &key.local_asn.to_string(), socks.metrics_token);
    }

    /// Every peer ends as `mode` says; returns once the NOTIFICATIONs are written (or
    /// [`CLOSE_GRACE`]).
    async fn shutdown(mut self, n: Notification, mode: Shutdown) {
        for core in self.speaker.shutdown(now(), n, mode) {
            self.retire(core);
        }
        let _ = tokio::time::timeout(CLOSE_GRACE, futures::future::join_all(self.closing)).await;
    }
}

/// Carries out a core's socket requests.
fn drain(
    key: PeerKey,
    core: &mut Peer,
    socks: &mut Sockets,
    notes: &mpsc::UnboundedSender<Net>,
    attempts: &mut u64,
    closing: &mut Vec<JoinHandle<()>>,
) {
    while let Some(io) = core.poll_io() {
        match io {
            Io::Connect | Io::CancelConnect => {
                if let Some((_, t)) = socks.connecting.take() {
                    t.abort();
                }
                if io == Io::Connect {
                    *attempts += 1;
                    let (id, tx, s) = (*attempts, notes.clone(), core.settings());
                    let addr = std::net::SocketAddr::new(s.address, s.port);
                    let done = move |r| drop(tx.send(Net::Connected(key, id, r)));
                    socks.connecting = Some((id, conn::spawn_connect(addr, conn::SocketOpts::of(s), done)));
                }
            }
            Io::Send { conn, bytes } => {
                if let Some(w) = socks.wires.get(&conn) {
                    let _ = w.tx.send(Write { bytes, counted: false });
                }
            }
            Io::Close { conn } => {
                if let Some(w) = socks.wires.remove(&conn) {
                    closing.retain(|t| !t.is_finished());
                    closing.push(w.close());
                }
            }
            Io::Bfd(bytes) => {
                let s = core.settings();
                let multihop = s.bfd.is_some_and(|b| b.multihop);
                if socks.bfd.is_none() {
                    match bfd::sender(s.address, u64::from(core.bfd_discriminator().unwrap_or(0))) {
                        Ok(sock) => socks.bfd = Some(sock),
                        Err(e) => debug!(peer = %key.address, vrouter = %key.local_asn, "no BFD socket: {e}"),
                    }
                }
                if let Some(sock) = &socks.bfd {
                    bfd::send(sock, std::net::SocketAddr::new(s.address, bfd::port(multihop)), &bytes);
                }
            }
        }
    }
}

/// Gives the pages malloc holds free back to the system. After a full plan (a file of a
/// million addresses loaded and planned) tens of megabytes of temporaries are free but kept
/// by the allocator's per-thread arenas, and would count in the pod's memory for its life.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}
