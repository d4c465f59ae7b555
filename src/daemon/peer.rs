//! One task per peer: the FSM, its connections, the Adj-RIB-Out and Adj-RIB-In.
//!
//! The task owns everything of its peer, so nothing here is shared or locked. It reacts to
//! commands (new routes, an inbound connection, shutdown), to what its connections read, to
//! the FSM's next deadline, and to room in the established connection's write queue: UPDATEs
//! are produced only when they can be written, so a peer that stops reading holds at most one
//! queue of them, never the whole table.

use super::conn::{self, CLOSE_GRACE, ReadEvent};
use super::local_addr;
use crate::admin::api::{self, unix_now};
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

/// Commands from the daemon (and its admin API) to a peer task.
#[derive(Debug)]
pub enum PeerCmd {
    /// The routes of a new plan, and when the change that led to it was seen: the update
    /// latency is measured from there to the last UPDATE written.
    Routes(Vec<Advertisement>, Instant),
    /// A connection from the peer, accepted by a listener.
    Inbound(TcpStream),
    /// Send this Cease on every connection, then end.
    Shutdown(Notification),
    /// The peer as `kbgp peers` shows it.
    Status(oneshot::Sender<api::Peer>),
    /// What the peer has from us (`received: false`) or sent us, optionally of one family.
    Table { received: bool, family: Option<Family>, reply: oneshot::Sender<Vec<api::Route>> },
    /// `kbgp reset`: hard (Cease, reconnect) or soft (send every route again and ask the peer
    /// for its routes again).
    Reset { soft: bool, reply: oneshot::Sender<Result<String, String>> },
    /// `kbgp refresh`: ask the peer to send its routes again (ROUTE-REFRESH, RFC 2918).
    Refresh { reply: oneshot::Sender<Result<String, String>> },
}

/// The message of the Cease (Administrative Reset) that `kbgp reset` sends.
pub const RESET_MESSAGE: &str = "reset by kbgp reset";
/// How long a hard reset waits before connecting again. An immediate reconnect races the
/// peer's cleanup: FRR (8.4) accepts it while deleting a dynamic (listen range) neighbor and
/// then neither lists nor feeds the new session.
pub const RESET_DELAY: std::time::Duration = std::time::Duration::from_secs(2);

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
    key: PeerKey,
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
    /// This task's claim on the peer's series (see `Metrics::claim_peer`).
    metrics_token: u64,
    /// Last error logged, so a retry loop logs it once.
    last_logged: Option<String>,
    limit_logged: bool,
    /// What `kbgp peers` shows beyond the FSM.
    state_since: u64,
    established_count: u64,
    messages: api::Messages,
    last_error: Option<api::LastError>,
    notification_sent: Option<api::NotificationInfo>,
    notification_received: Option<api::NotificationInfo>,
    /// The oldest plan change not yet fully written to the peer.
    pending_since: Option<Instant>,
    /// When this task replaced one stopped for a settings change: when to start.
    start_at: Option<Instant>,
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
        start_delay: Option<std::time::Duration>,
    ) -> PeerHandle {
        let (tx, rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(256);
        let s = &settings.session;
        let (label, vrouter) = (key.address.to_string(), key.local_asn.to_string());
        let metrics_token = metrics.claim_peer(&label, &vrouter);
        let task = PeerTask {
            key,
            label,
            vrouter,
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
            metrics_token,
            last_logged: None,
            limit_logged: false,
            state_since: unix_now(),
            established_count: 0,
            messages: api::Messages::default(),
            last_error: None,
            notification_sent: None,
            notification_received: None,
            pending_since: None,
            start_at: start_delay.map(|d| now() + d),
        };
        let handle = tokio::spawn(task.run(rx, ev_rx));
        PeerHandle { tx, task: handle, settings }
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<PeerCmd>, mut events: mpsc::Receiver<(ConnId, ReadEvent)>) {
        let mut connecting: Option<Connecting> = None;
        self.metrics.session_state.with_label_values(&[&self.label, &self.vrouter]).set(State::Idle as i64);
        self.metrics.session_up.with_label_values(&[&self.label, &self.vrouter]).set(0);
        let start = match self.start_at {
            Some(at) => Input::StartAt(at),
            None => Input::Start,
        };
        self.fsm.handle(now(), start);
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
                    Some(PeerCmd::Routes(r, since)) => {
                        self.routes = r;
                        self.export();
                        if self.session.is_some() && self.out_rib.pending() > 0 {
                            self.pending_since.get_or_insert(since);
                        }
                    }
                    Some(PeerCmd::Status(reply)) => {
                        let _ = reply.send(self.status());
                    }
                    Some(PeerCmd::Table { received, family, reply }) => {
                        let _ = reply.send(self.table(received, family));
                    }
                    Some(PeerCmd::Reset { soft, reply }) => {
                        let _ = reply.send(self.reset(soft, &mut connecting));
                    }
                    Some(PeerCmd::Refresh { reply }) => {
                        let _ = reply.send(self.request_refresh());
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
                _ = sleep_until(deadline) => {
                    self.fsm.handle_timeout(now());
                }
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

    fn count(&mut self, msg: &Message, direction: &str) {
        self.metrics.messages.with_label_values(&[&self.label, &self.vrouter, direction, msg.kind().name()]).inc();
        let is_update = matches!(msg, Message::Update(_)) as u64;
        if direction == "received" {
            self.messages.received += 1;
            self.messages.updates_received += is_update;
        } else {
            self.messages.sent += 1;
            self.messages.updates_sent += is_update;
        }
        if let Message::Notification(n) = msg {
            let info = Some(api::NotificationInfo::new(n, unix_now()));
            if direction == "received" {
                self.notification_received = info;
            } else {
                self.notification_sent = info;
            }
            self.metrics
                .notifications
                .with_label_values(&[
                    &self.label,
                    &self.vrouter,
                    direction,
                    &n.code.to_string(),
                    &n.subcode.to_string(),
                ])
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
                    self.metrics.connect_attempts.with_label_values(&[&self.label, &self.vrouter]).inc();
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
                    self.metrics.transitions.with_label_values(&[&self.label, &self.vrouter]).inc();
                    self.state_since = unix_now();
                    if to == State::Established {
                        self.established_count += 1;
                        self.metrics.established.with_label_values(&[&self.label, &self.vrouter]).inc();
                    }
                    debug!(peer = %self.label, vrouter = %self.vrouter, "state {from} -> {to}");
                }
                Output::Update(u) => self.received_update(&u),
                Output::RouteRefresh(r) => self.refresh_requested(r),
            }
        }
        self.note_error();
    }

    /// Records a new last error with its time and hint, and logs it once: a retry loop that
    /// fails the same way again is silent.
    fn note_error(&mut self) {
        let Some(e) = self.fsm.last_error() else { return };
        let text = e.to_string();
        if self.last_error.as_ref().is_some_and(|l| l.text == text) {
            return;
        }
        let hint = e.hint().map(str::to_string);
        self.last_error = Some(api::LastError { at: unix_now(), text: text.clone(), hint: hint.clone() });
        // Session-down and stop messages were logged where they happened.
        let routine = matches!(e, SessionError::Stopped(_));
        if !routine && self.fsm.state() != State::Established && self.last_logged.as_deref() != Some(&text) {
            match &hint {
                Some(h) => warn!(peer = %self.label, vrouter = %self.vrouter, hint = %h, "session not up: {text}"),
                None => warn!(peer = %self.label, vrouter = %self.vrouter, "session not up: {text}"),
            }
        }
        self.last_logged = Some(text);
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
        self.metrics.session_up.with_label_values(&[&self.label, &self.vrouter]).set(1);
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
        self.pending_since = None;
        self.in_rib.clear();
        self.out_rib.reset_sent();
        self.metrics.session_up.with_label_values(&[&self.label, &self.vrouter]).set(0);
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
            self.metrics
                .messages
                .with_label_values(&[&self.label, &self.vrouter, "sent", "update"])
                .inc_by(f.messages as u64);
            self.messages.sent += f.messages as u64;
            self.messages.updates_sent += f.messages as u64;
            debug!(peer = %self.label, vrouter = %self.vrouter, announced = f.announced, withdrawn = f.withdrawn, messages = f.messages, "UPDATEs out");
        }
        if !buf.is_empty() {
            permit.send(buf.freeze());
            self.fsm.handle(now(), Input::UpdateSent);
        }
        if self.out_rib.pending() == 0
            && let Some(t) = self.pending_since.take()
        {
            self.metrics.update_latency.with_label_values(&[&self.vrouter]).observe(t.elapsed().as_secs_f64());
        }
        self.update_route_gauges();
    }

    /// Routes of family `f` the peer has from us: none without a session.
    fn advertised(&self, f: Family) -> usize {
        if self.session.is_some() { self.out_rib.sent_count(f) } else { 0 }
    }

    fn update_route_gauges(&self) {
        for (f, afi) in [(Family::IPV4_UNICAST, "ipv4"), (Family::IPV6_UNICAST, "ipv6")] {
            let sent = self.advertised(f);
            self.metrics.advertised_routes.with_label_values(&[&self.label, &self.vrouter, afi]).set(sent as i64);
            self.metrics
                .received_routes
                .with_label_values(&[&self.label, &self.vrouter, afi])
                .set(self.in_rib.count(f) as i64);
        }
    }

    fn received_update(&mut self, u: &wire::Update) {
        for e in &u.errors {
            let action = match e.action {
                Rfc7606Action::TreatAsWithdraw => "treat-as-withdraw",
                Rfc7606Action::AttributeDiscard => "attribute-discard",
            };
            self.metrics.update_errors.with_label_values(&[&self.label, &self.vrouter, action]).inc();
            warn!(peer = %self.label, vrouter = %self.vrouter, "malformed UPDATE from the peer ({action}, RFC 7606): {}", e.reason);
        }
        let a = self.in_rib.apply(u);
        if a.over_limit > 0 {
            self.metrics
                .received_routes_dropped
                .with_label_values(&[&self.label, &self.vrouter])
                .inc_by(a.over_limit as u64);
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

    fn status(&self) -> api::Peer {
        let s = &self.settings.session;
        let n = self.session.as_ref().map(|x| &x.negotiated);
        let names = |v: &[Family]| v.iter().map(Family::label).collect::<Vec<_>>();
        let per_family = |count: &dyn Fn(Family) -> usize| api::PerFamily {
            ipv4: count(Family::IPV4_UNICAST),
            ipv6: count(Family::IPV6_UNICAST),
        };
        api::Peer {
            address: self.key.address,
            port: self.settings.port,
            vrouter: self.key.local_asn,
            local_as: s.local_as,
            peer_as: s.peer_as,
            kind: if s.is_ebgp() { "eBGP" } else { "iBGP" }.into(),
            router_id: s.router_id,
            passive: s.passive,
            state: self.fsm.state().name().into(),
            state_since: self.state_since,
            uptime_seconds: self.fsm.established_since().map(|t| now().saturating_duration_since(t).as_secs()),
            established_count: self.established_count,
            local_address: self.session.as_ref().and_then(|x| self.conns.get(&x.conn)).map(|c| c.local),
            peer_router_id: n.map(|n| n.peer_id),
            hold_time: n.map(|n| n.hold_time),
            keepalive: n.map(|n| n.keepalive),
            configured_families: names(&s.families),
            families: n.map(|n| names(&n.families)).unwrap_or_default(),
            capabilities: n.map(|n| n.capability_names().iter().map(|c| c.to_string()).collect()).unwrap_or_default(),
            planned_routes: self.routes.len(),
            advertised: per_family(&|f| self.advertised(f)),
            received: per_family(&|f| self.in_rib.count(f)),
            received_dropped: self.in_rib.dropped,
            messages: self.messages,
            last_error: self.last_error.clone(),
            last_notification_sent: self.notification_sent.clone(),
            last_notification_received: self.notification_received.clone(),
            next_attempt_in_seconds: self
                .fsm
                .next_attempt()
                .map(|t| t.saturating_duration_since(now()).as_secs_f64().ceil() as u64),
        }
    }

    fn table(&self, received: bool, family: Option<Family>) -> Vec<api::Route> {
        let (peer, vrouter) = (self.key.address, self.key.local_asn);
        let wanted = |p: &ipnet::IpNet| family.is_none_or(|f| Family::of_prefix(p) == f);
        let mut v: Vec<api::Route> = if received {
            self.in_rib
                .routes()
                .filter(|((_, n), _)| wanted(&n.prefix))
                .map(|((_, n), a)| {
                    let id = (n.path_id != 0).then_some(n.path_id);
                    api::Route::new(peer, vrouter, n.prefix, id, a.next_hop, &a.path)
                })
                .collect()
        } else if self.session.is_some() {
            self.out_rib
                .sent()
                .filter(|(p, _)| wanted(p))
                .map(|(p, a)| api::Route::new(peer, vrouter, *p, None, Some(a.next_hop), &a.path))
                .collect()
        } else {
            Vec::new()
        };
        v.sort_by_key(|r| (r.prefix, r.path_id));
        v
    }

    /// The families the established session can be asked to refresh, or why there are none.
    fn refreshable(&self) -> Result<(ConnId, Vec<Family>), String> {
        let Some(s) = &self.session else {
            return Err(format!("the session is {}, not Established", self.fsm.state()));
        };
        if !s.negotiated.route_refresh && !s.negotiated.enhanced_route_refresh {
            return Err("the peer did not offer the route refresh capability (RFC 2918); use kbgp reset".into());
        }
        Ok((s.conn, s.negotiated.families.clone()))
    }

    fn send_refresh_requests(&mut self, conn: ConnId, families: &[Family]) {
        for f in families {
            let m = Message::RouteRefresh(RouteRefresh { family: *f, subtype: RefreshSubtype::Request });
            self.send(conn, &m);
        }
    }

    fn request_refresh(&mut self) -> Result<String, String> {
        let (conn, families) = self.refreshable()?;
        self.send_refresh_requests(conn, &families);
        let names: Vec<String> = families.iter().map(Family::label).collect();
        info!(peer = %self.label, vrouter = %self.vrouter, families = ?names, "route refresh sent on request");
        Ok(format!("asked the peer to send its routes again ({})", names.join(", ")))
    }

    fn reset(&mut self, soft: bool, connecting: &mut Option<Connecting>) -> Result<String, String> {
        if soft {
            if self.session.is_none() {
                return Err(format!(
                    "the session is {}, not Established: a soft reset needs a session",
                    self.fsm.state()
                ));
            }
            let n = self.out_rib.desired_len();
            self.out_rib.reset_sent();
            let asked = match self.refreshable() {
                Ok((conn, families)) => {
                    self.send_refresh_requests(conn, &families);
                    "; asked the peer for its routes again"
                }
                Err(_) => "; the peer has no route refresh capability, so its routes were not asked for again",
            };
            info!(peer = %self.label, vrouter = %self.vrouter, routes = n, "soft reset on request");
            return Ok(format!("sending all {n} routes again{asked}"));
        }
        let was = self.fsm.state();
        info!(peer = %self.label, vrouter = %self.vrouter, "hard reset on request");
        if let Some(c) = connecting.take() {
            c.task.abort();
        }
        self.fsm.handle(
            now(),
            Input::Stop(Notification::cease(wire::error::cease_sub::ADMINISTRATIVE_RESET, RESET_MESSAGE)),
        );
        self.fsm.handle(now(), Input::StartAt(now() + RESET_DELAY));
        self.drive(connecting);
        Ok(format!(
            "session was {was}: sent Cease (administrative reset); connecting again in {} s",
            RESET_DELAY.as_secs()
        ))
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
        self.metrics.forget_peer(&self.label, &self.vrouter, self.metrics_token);
        info!(peer = %self.label, vrouter = %self.vrouter, "peer stopped");
    }
}
