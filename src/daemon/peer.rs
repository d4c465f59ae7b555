//! One task per peer: the FSM, its connections, the Adj-RIB-Out and Adj-RIB-In.
//!
//! The task owns everything of its peer, so nothing here is shared or locked. It reacts to
//! commands (new routes, an inbound connection, shutdown), to what its connections read, to
//! the FSM's next deadline, and to room in the established connection's write queue: UPDATEs
//! are produced only when they can be written, so a peer that stops reading holds at most one
//! queue of them, never the whole table.

use super::conn::{self, CLOSE_GRACE, ReadEvent};
use super::local_addr;
use crate::metrics::Metrics;
use crate::plan::{PeerKey, PeerSettings};
use crate::rib::adj_rib_in::AdjRibIn;
use crate::rib::{AdjRibOut, Advertisement, ExportCtx};
use crate::session::{ConnId, Fsm, Input, Negotiated, Output, SessionError, State};
use crate::wire::route_refresh::{RefreshSubtype, RouteRefresh};
use crate::wire::update::write_end_of_rib;
use crate::wire::{self, Ctx, Family, Message, Notification, Rfc7606Action};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// Commands from the daemon to a peer task.
#[derive(Debug)]
pub enum PeerCmd {
    /// The routes of a new plan.
    Routes(Vec<Advertisement>),
    /// A connection from the peer, accepted by a listener.
    Inbound(TcpStream),
    /// Send this Cease on every connection, then end.
    Shutdown(Notification),
}

/// The daemon's side of a running peer task.
pub struct PeerHandle {
    pub tx: mpsc::Sender<PeerCmd>,
    pub task: JoinHandle<()>,
    pub settings: PeerSettings,
}

/// UPDATE octets produced per write-queue slot.
const FLUSH_CHUNK: usize = 64 * 1024;
/// Write-queue slots per connection.
const WRITE_QUEUE: usize = 16;

struct Connection {
    tx: mpsc::Sender<Bytes>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    local: SocketAddr,
}

struct Session {
    conn: ConnId,
    ctx: Ctx,
    negotiated: Negotiated,
    export: ExportCtx,
    /// End-of-RIB markers still to send once the initial table is out (RFC 4724 §2).
    end_of_rib: Vec<Family>,
    /// Enhanced route refresh: EoRR markers to send once the refresh is out (RFC 7313 §4).
    end_of_refresh: Vec<Family>,
}

struct Connecting {
    task: JoinHandle<()>,
    rx: oneshot::Receiver<io::Result<TcpStream>>,
}

pub struct PeerTask {
    label: String,
    vrouter: String,
    settings: PeerSettings,
    fsm: Fsm,
    out_rib: AdjRibOut,
    in_rib: AdjRibIn,
    routes: Vec<Advertisement>,
    conns: HashMap<ConnId, Connection>,
    next_conn: u64,
    events: mpsc::Sender<(ConnId, ReadEvent)>,
    session: Option<Session>,
    metrics: Arc<Metrics>,
    /// Last error logged, so a retry loop logs it once.
    last_logged: Option<String>,
    limit_logged: bool,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn connect_result(c: &mut Option<Connecting>) -> Result<io::Result<TcpStream>, oneshot::error::RecvError> {
    match c {
        Some(c) => (&mut c.rx).await,
        None => std::future::pending().await,
    }
}

async fn reserve(tx: Option<&mpsc::Sender<Bytes>>) -> Option<mpsc::Permit<'_, Bytes>> {
    match tx {
        Some(tx) => tx.reserve().await.ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

impl PeerTask {
    /// Starts the task. `seed` feeds the reconnect jitter.
    pub fn spawn(
        key: PeerKey,
        settings: PeerSettings,
        routes: Vec<Advertisement>,
        metrics: Arc<Metrics>,
        seed: u64,
    ) -> PeerHandle {
        let (tx, rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let s = &settings.session;
        let task = PeerTask {
            label: key.address.to_string(),
            vrouter: key.local_asn.to_string(),
            fsm: Fsm::new(s.clone(), seed),
            out_rib: AdjRibOut::new(),
            in_rib: AdjRibIn::new(settings.max_received_routes, s.router_id, s.local_as, s.is_ebgp()),
            settings: settings.clone(),
            routes,
            conns: HashMap::new(),
            next_conn: 1,
            events: ev_tx,
            session: None,
            metrics,
            last_logged: None,
            limit_logged: false,
        };
        let handle = tokio::spawn(task.run(rx, ev_rx));
        PeerHandle { tx, task: handle, settings }
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<PeerCmd>, mut events: mpsc::Receiver<(ConnId, ReadEvent)>) {
        let mut connecting: Option<Connecting> = None;
        self.metrics.session_state.with_label_values(&[&self.label, &self.vrouter]).set(State::Idle as i64);
        self.metrics.session_up.with_label_values(&[&self.label]).set(0);
        self.fsm.handle(now(), Input::Start);
        self.drive(&mut connecting);
        loop {
            let deadline = self.fsm.poll_timeout();
            let flush_tx = self
                .session
                .as_ref()
                .filter(|s| self.out_rib.pending() > 0 || !s.end_of_rib.is_empty() || !s.end_of_refresh.is_empty())
                .and_then(|s| self.conns.get(&s.conn))
                .map(|c| c.tx.clone());
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(PeerCmd::Routes(r)) => {
                        self.routes = r;
                        self.export();
                    }
                    Some(PeerCmd::Inbound(stream)) => {
                        if let Err(e) = conn::prepare_accepted(&stream, self.settings.ttl) {
                            debug!(peer = %self.label, vrouter = %self.vrouter, "inbound connection unusable: {e}");
                        } else {
                            self.add_conn(stream, true);
                        }
                    }
                    Some(PeerCmd::Shutdown(n)) => {
                        self.shutdown(n, &mut connecting).await;
                        return;
                    }
                    None => {
                        self.shutdown(Notification::cease(wire::error::cease_sub::PEER_DECONFIGURED, ""), &mut connecting).await;
                        return;
                    }
                },
                Some((id, ev)) = events.recv() => self.on_read(id, ev),
                res = connect_result(&mut connecting) => {
                    connecting = None;
                    match res {
                        Ok(Ok(stream)) => self.add_conn(stream, false),
                        Ok(Err(e)) => {
                            let msg = e.to_string();
                            self.fsm.handle(now(), Input::ConnectFailed(msg));
                        }
                        Err(_) => self.fsm.handle(now(), Input::ConnectFailed("connect task ended".into())),
                    }
                }
                permit = reserve(flush_tx.as_ref()) => {
                    if let Some(p) = permit {
                        self.flush(p);
                    }
                }
                _ = sleep_until(deadline) => self.fsm.handle_timeout(now()),
            }
            self.drive(&mut connecting);
        }
    }

    fn add_conn(&mut self, stream: TcpStream, inbound: bool) {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        // A dual-stack listener reports IPv4 sessions as ::ffff:a.b.c.d; the next hop logic
        // needs the IPv4 address.
        let local = match stream.local_addr() {
            Ok(a) => SocketAddr::new(a.ip().to_canonical(), a.port()),
            Err(e) => {
                debug!(peer = %self.label, vrouter = %self.vrouter, "connection without a local address: {e}");
                return;
            }
        };
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let reader = conn::spawn_reader(id, rd, self.events.clone());
        let writer = conn::spawn_writer(wr, rx);
        self.conns.insert(id, Connection { tx, reader, writer, local });
        debug!(peer = %self.label, vrouter = %self.vrouter, conn = id.0, inbound, %local, "TCP connection up");
        self.fsm.handle(now(), Input::Connected { conn: id, inbound });
    }

    fn on_read(&mut self, id: ConnId, ev: ReadEvent) {
        match ev {
            ReadEvent::Frame(bytes) => {
                let ctx = self.fsm.ctx(id);
                match wire::decode(&bytes, &ctx) {
                    Ok(msg) => {
                        self.count(&msg, "received");
                        self.fsm.handle(now(), Input::Message { conn: id, msg });
                    }
                    Err(error) => {
                        warn!(peer = %self.label, vrouter = %self.vrouter, "malformed message from the peer: {error}");
                        self.fsm.handle(now(), Input::DecodeError { conn: id, error });
                    }
                }
            }
            ReadEvent::Invalid(error) => {
                warn!(peer = %self.label, vrouter = %self.vrouter, "malformed message header from the peer: {error}");
                self.fsm.handle(now(), Input::DecodeError { conn: id, error });
            }
            ReadEvent::Closed(e) => {
                if let Some(e) = e {
                    debug!(peer = %self.label, vrouter = %self.vrouter, conn = id.0, "read failed: {e}");
                }
                self.fsm.handle(now(), Input::Closed { conn: id });
            }
        }
    }

    fn count(&self, msg: &Message, direction: &str) {
        self.metrics.messages.with_label_values(&[&self.label, direction, msg.kind().name()]).inc();
        if let Message::Notification(n) = msg {
            self.metrics
                .notifications
                .with_label_values(&[&self.label, direction, &n.code.to_string(), &n.subcode.to_string()])
                .inc();
            match (direction, n.code) {
                ("received", _) => warn!(peer = %self.label, vrouter = %self.vrouter, "received NOTIFICATION {n}"),
                // Our own Cease (shutdown, reconfiguration, collision) is routine.
                (_, wire::error::code::CEASE) => {
                    info!(peer = %self.label, vrouter = %self.vrouter, "sending NOTIFICATION {n}")
                }
                _ => warn!(peer = %self.label, vrouter = %self.vrouter, "sending NOTIFICATION {n}"),
            }
        }
    }

    /// Acts on everything the FSM asked for.
    fn drive(&mut self, connecting: &mut Option<Connecting>) {
        while let Some(o) = self.fsm.poll_output() {
            match o {
                Output::Connect => {
                    if let Some(c) = connecting.take() {
                        c.task.abort();
                    }
                    let (tx, rx) = oneshot::channel();
                    let addr = SocketAddr::new(self.settings.address, self.settings.port);
                    let ttl = self.settings.ttl;
                    let task = tokio::spawn(async move {
                        let _ = tx.send(conn::connect(addr, ttl).await);
                    });
                    *connecting = Some(Connecting { task, rx });
                }
                Output::Send { conn, msg } => self.send(conn, &msg),
                Output::Close { conn } => self.close(conn),
                Output::Established { conn, negotiated } => self.established(conn, *negotiated),
                Output::Down { reason } => self.down(reason),
                Output::StateChanged { from, to } => {
                    self.metrics.session_state.with_label_values(&[&self.label, &self.vrouter]).set(to as i64);
                    self.metrics.transitions.with_label_values(&[&self.label]).inc();
                    debug!(peer = %self.label, vrouter = %self.vrouter, "state {from} -> {to}");
                    if to == State::Active || to == State::Idle {
                        self.log_error_once();
                    }
                }
                Output::Update(u) => self.received_update(&u),
                Output::RouteRefresh(r) => self.refresh_requested(r),
            }
        }
    }

    fn log_error_once(&mut self) {
        let Some(e) = self.fsm.last_error().map(|e| e.to_string()) else { return };
        if self.last_logged.as_deref() != Some(&e) {
            let hint = match self.fsm.last_error() {
                Some(SessionError::ConnectFailed(_)) => {
                    ": check the peer's address and port, that it expects this node, and any firewall"
                }
                _ => "",
            };
            warn!(peer = %self.label, vrouter = %self.vrouter, "session not up: {e}{hint}");
            self.last_logged = Some(e);
        }
    }

    fn send(&mut self, conn: ConnId, msg: &Message) {
        let ctx = self.fsm.ctx(conn);
        let bytes = match wire::to_bytes(msg, &ctx) {
            Ok(b) => b,
            Err(e) => {
                warn!(peer = %self.label, vrouter = %self.vrouter, "cannot encode {}: {e}", msg.kind().name());
                return;
            }
        };
        self.count(msg, "sent");
        if let Some(c) = self.conns.get(&conn)
            && c.tx.try_send(bytes).is_err()
        {
            debug!(peer = %self.label, vrouter = %self.vrouter, "write queue full: {} dropped", msg.kind().name());
        }
    }

    fn close(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else { return };
        c.reader.abort();
        // Dropping the sender lets the writer flush what is queued (a NOTIFICATION) and shut
        // the socket down; a peer that does not read gets CLOSE_GRACE, then the socket goes.
        drop(c.tx);
        let writer = c.writer.abort_handle();
        tokio::spawn(async move {
            tokio::time::sleep(CLOSE_GRACE).await;
            writer.abort();
        });
    }

    fn established(&mut self, conn: ConnId, negotiated: Negotiated) {
        let Some(c) = self.conns.get(&conn) else { return };
        let local = c.local.ip();
        let addrs = local_addr::interface_addresses();
        let other = local_addr::companion(local, &addrs);
        let (v4, v6) = match (local, other) {
            (IpAddr::V4(a), Some(IpAddr::V6(b))) => (Some(a), Some(b)),
            (IpAddr::V4(a), _) => (Some(a), None),
            (IpAddr::V6(b), Some(IpAddr::V4(a))) => (Some(a), Some(b)),
            (IpAddr::V6(b), _) => (None, Some(b)),
        };
        let export = ExportCtx {
            local_as: self.settings.session.local_as,
            ebgp: negotiated.ebgp,
            next_hop_v4: v4,
            next_hop_v6: v6,
            extended_next_hop_v4: negotiated.extended_next_hop.contains(&Family::IPV4_UNICAST),
        };
        info!(
            peer = %self.label,
            vrouter = %self.vrouter,
            peer_as = negotiated.peer_as,
            peer_id = %negotiated.peer_id,
            hold_time = negotiated.hold_time,
            families = ?negotiated.families.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            capabilities = ?negotiated.capability_names(),
            local = %local,
            "session established"
        );
        self.last_logged = None;
        self.limit_logged = false;
        self.metrics.session_up.with_label_values(&[&self.label]).set(1);
        self.in_rib = AdjRibIn::new(
            self.settings.max_received_routes,
            self.settings.session.router_id,
            self.settings.session.local_as,
            negotiated.ebgp,
        );
        self.session = Some(Session {
            conn,
            ctx: negotiated.ctx(),
            end_of_rib: negotiated.families.clone(),
            end_of_refresh: Vec::new(),
            negotiated,
            export,
        });
        self.out_rib.reset_sent();
        self.export();
    }

    fn down(&mut self, reason: SessionError) {
        if matches!(reason, SessionError::Stopped(_)) {
            info!(peer = %self.label, vrouter = %self.vrouter, "session down: {reason}");
        } else {
            warn!(peer = %self.label, vrouter = %self.vrouter, "session down: {reason}");
        }
        self.last_logged = Some(reason.to_string());
        self.session = None;
        self.in_rib.clear();
        self.out_rib.reset_sent();
        self.metrics.session_up.with_label_values(&[&self.label]).set(0);
        self.update_route_gauges();
    }

    /// Recomputes what the peer should have from the plan's routes and the session.
    fn export(&mut self) {
        let Some(s) = &self.session else { return };
        let e = s.export.export(&self.routes);
        if !e.no_next_hop.is_empty() {
            warn!(
                peer = %self.label,
                vrouter = %self.vrouter,
                "{} routes have no next hop of their family on this session (first: {})",
                e.no_next_hop.len(),
                e.no_next_hop[0]
            );
        }
        self.out_rib.set_desired(e.routes);
    }

    /// Writes one chunk of UPDATEs (and markers when the table is out) into a queue slot.
    fn flush(&mut self, permit: mpsc::Permit<'_, Bytes>) {
        let Some(s) = &mut self.session else { return };
        let mut buf = BytesMut::with_capacity(FLUSH_CHUNK + 4096);
        let f =
            self.out_rib.flush(&s.ctx, &s.negotiated.families, s.export.extended_next_hop_v4, &mut buf, FLUSH_CHUNK);
        if self.out_rib.pending() == 0 {
            for fam in s.end_of_rib.drain(..) {
                write_end_of_rib(fam, &mut buf);
            }
            for fam in s.end_of_refresh.drain(..) {
                let m = Message::RouteRefresh(RouteRefresh { family: fam, subtype: RefreshSubtype::EndOfRouteRefresh });
                let _ = wire::encode(&m, &s.ctx, &mut buf);
            }
        }
        if f.messages > 0 {
            self.metrics.messages.with_label_values(&[&self.label, "sent", "update"]).inc_by(f.messages as u64);
            debug!(peer = %self.label, vrouter = %self.vrouter, announced = f.announced, withdrawn = f.withdrawn, messages = f.messages, "UPDATEs out");
        }
        if !buf.is_empty() {
            permit.send(buf.freeze());
            self.fsm.handle(now(), Input::UpdateSent);
        }
        self.update_route_gauges();
    }

    fn update_route_gauges(&self) {
        for (f, afi) in [(Family::IPV4_UNICAST, "ipv4"), (Family::IPV6_UNICAST, "ipv6")] {
            let sent = if self.session.is_some() { self.out_rib.sent_count(f) } else { 0 };
            self.metrics.advertised_routes.with_label_values(&[&self.label, afi]).set(sent as i64);
            self.metrics.received_routes.with_label_values(&[&self.label, afi]).set(self.in_rib.count(f) as i64);
        }
    }

    fn received_update(&mut self, u: &wire::Update) {
        for e in &u.errors {
            let action = match e.action {
                Rfc7606Action::TreatAsWithdraw => "treat-as-withdraw",
                Rfc7606Action::AttributeDiscard => "attribute-discard",
            };
            self.metrics.update_errors.with_label_values(&[&self.label, action]).inc();
            warn!(peer = %self.label, vrouter = %self.vrouter, "malformed UPDATE from the peer ({action}, RFC 7606): {}", e.reason);
        }
        let a = self.in_rib.apply(u);
        if a.over_limit > 0 {
            self.metrics.received_routes_dropped.with_label_values(&[&self.label]).inc_by(a.over_limit as u64);
            if !self.limit_logged {
                warn!(
                    peer = %self.label,
                    vrouter = %self.vrouter,
                    "maxReceivedRoutes ({}) reached: further routes from this peer are dropped, not stored",
                    self.settings.max_received_routes
                );
                self.limit_logged = true;
            }
        }
        if let Some(f) = u.end_of_rib() {
            debug!(peer = %self.label, vrouter = %self.vrouter, family = %f, "End-of-RIB received");
        }
        self.update_route_gauges();
    }

    fn refresh_requested(&mut self, r: RouteRefresh) {
        let Some(s) = &mut self.session else { return };
        if r.subtype != RefreshSubtype::Request || !s.negotiated.families.contains(&r.family) {
            return;
        }
        info!(peer = %self.label, vrouter = %self.vrouter, family = %r.family, "route refresh requested");
        if s.negotiated.enhanced_route_refresh {
            let conn = s.conn;
            let m =
                Message::RouteRefresh(RouteRefresh { family: r.family, subtype: RefreshSubtype::BeginOfRouteRefresh });
            s.end_of_refresh.push(r.family);
            self.send(conn, &m);
        }
        self.out_rib.reset_sent();
    }

    async fn shutdown(&mut self, n: Notification, connecting: &mut Option<Connecting>) {
        if let Some(c) = connecting.take() {
            c.task.abort();
        }
        self.fsm.handle(now(), Input::Stop(n));
        // Send the NOTIFICATIONs the Stop queued, close, and keep the writers to wait for them.
        let mut writers = Vec::new();
        while let Some(o) = self.fsm.poll_output() {
            match o {
                Output::Send { conn, msg } => self.send(conn, &msg),
                Output::Close { conn } => {
                    if let Some(c) = self.conns.remove(&conn) {
                        c.reader.abort();
                        writers.push(c.writer);
                    }
                }
                Output::Down { reason } => self.down(reason),
                _ => {}
            }
        }
        for (_, c) in self.conns.drain() {
            c.reader.abort();
            writers.push(c.writer);
        }
        for w in writers {
            let abort = w.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, w).await.is_err() {
                abort.abort();
            }
        }
        self.metrics.forget_peer(&self.label, &self.vrouter);
        info!(peer = %self.label, vrouter = %self.vrouter, "peer stopped");
    }
}
