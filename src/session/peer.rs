//! One peer, sans-IO: the FSM, the Adj-RIB-In, the Adj-RIB-Out and every rule of sequencing
//! between them, in the shape of quinn-proto's `Connection`.
//!
//! The driver feeds it what happened — a frame read, a connection up or closed, the time —
//! through `handle_*`, and drains what to do with `poll_io` (connect, bytes to write, close),
//! `poll_updates` (the next chunk of UPDATEs, when the connection has room), `poll_timeout`
//! and `poll_event` (for metrics). It never reads a clock or touches a socket, so the tests
//! drive it in memory against a scripted peer or a second `Peer`.
//!
//! Sequencing it owns:
//! - a new session gets the whole table, then End-of-RIB per family (RFC 4724 §2);
//! - a session that goes down forgets what the peer had; the next one starts from scratch;
//! - ROUTE-REFRESH (RFC 2918) re-sends the table; with enhanced route refresh (RFC 7313 §4)
//!   bracketed by BoRR and EoRR; a soft reset does the same and asks the peer for its routes;
//! - next hop self from the session's local address (RFC 4271 §5.1.3, RFC 2545, RFC 8950);
//! - RFC 7606 errors counted per action, `maxReceivedRoutes` enforced by the Adj-RIB-In;
//! - KEEPALIVE, NOTIFICATION and ROUTE-REFRESH go out through `poll_io`, ahead of UPDATEs:
//!   a connection whose write queue is full of UPDATEs still gets them.

use super::config::{Auth, PeerKey, PeerSettings};
use super::fsm::{ConnId, Fsm, Input, Output, SessionError, State};
use super::negotiate::Negotiated;
use crate::bfd;
use crate::config::policy::OverLimit;
use crate::rib::adj_rib_in::AdjRibIn;
use crate::rib::{AdjRibOut, Encoding, ExportCtx, OutTable};
use crate::wire::route_refresh::{RefreshSubtype, RouteRefresh};
use crate::wire::update::write_end_of_rib;
use crate::wire::{self, Ctx, DecodeError, Family, Message, MessageType, Notification, Rfc7606Action};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// The message of the Cease (Administrative Reset) that `kbgp reset` sends.
pub const RESET_MESSAGE: &str = "reset by kbgp reset";
/// How long a session kbgp ends on purpose waits before connecting again. An immediate
/// reconnect races the peer's cleanup: FRR (8.4) accepts it while deleting a dynamic
/// (listen range) neighbor and then neither lists nor feeds the new session.
pub const RESET_DELAY: Duration = Duration::from_secs(2);

/// What a peer's session does when kbgp shuts down (`--on-shutdown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Shutdown {
    /// Keep the routes at the peer while kbgp restarts: with graceful restart negotiated,
    /// the Cease under RFC 8538 when both sides set the N bit, else no NOTIFICATION at all
    /// (RFC 4724 §4.2). Without graceful restart, a plain Cease.
    #[default]
    Keep,
    /// The peer drops the routes at once: Hard Reset (Cease 6/9, RFC 8538 §3) when the N
    /// bit was negotiated, else a plain Cease.
    Withdraw,
}

/// What the driver must do with sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Io {
    /// Open a TCP connection to the peer, replacing any attempt in flight.
    Connect,
    /// Give up the connection attempt in flight, if any.
    CancelConnect,
    /// Write these octets on the connection, after what was written before.
    Send { conn: ConnId, bytes: Bytes },
    /// Close the connection once what was sent on it is written.
    Close { conn: ConnId },
    /// Send this BFD Control packet to the peer (port 3784, or 4784 for multihop).
    Bfd(Bytes),
}

/// What happened, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    State {
        from: State,
        to: State,
    },
    ConnectAttempt,
    Up,
    Down,
    Messages {
        sent: bool,
        kind: MessageType,
        count: u64,
    },
    Notification {
        sent: bool,
        code: u8,
        subcode: u8,
    },
    UpdateError(Rfc7606Action),
    /// Received routes dropped at `maxReceivedRoutes`.
    Dropped(u64),
    /// Route counts changed: [IPv4, IPv6].
    Routes {
        advertised: [usize; 2],
        received: [usize; 2],
    },
    /// Every change up to a plan seen at some instant is written: the update latency.
    Latency(Duration),
    /// The BFD session changed state.
    Bfd(crate::bfd::State),
    /// The BFD detection time in force changed (the neighbor's rates, or a Poll Sequence).
    BfdDetection(Duration),
}

/// One TCP connection as the core knows it.
#[derive(Clone, Copy, Debug)]
struct Conn {
    id: ConnId,
    local: SocketAddr,
    /// This host's address of the other family on the same interface, for the next hop of
    /// the other family's routes.
    companion: Option<IpAddr>,
}

/// The Established session.
#[derive(Debug)]
struct Session {
    conn: ConnId,
    local: SocketAddr,
    ctx: Ctx,
    negotiated: Negotiated,
    export: ExportCtx,
    /// End-of-RIB markers to send once the table up to `eor_at` is out (RFC 4724 §2).
    eor: Vec<Family>,
    eor_at: Option<u64>,
    /// EoRR markers to send once the table up to `eorr_at` is out (RFC 7313 §4).
    eorr: Vec<Family>,
    eorr_at: Option<u64>,
    no_next_hop_logged: bool,
}

#[derive(Debug)]
pub struct Peer {
    key: PeerKey,
    settings: PeerSettings,
    label: String,
    vrouter: String,
    fsm: Fsm,
    rib_in: AdjRibIn,
    rib_out: AdjRibOut,
    conns: Vec<Conn>,
    next_conn: u64,
    session: Option<Session>,
    io: VecDeque<Io>,
    events: VecDeque<Event>,
    /// The oldest plan not yet fully written, and the table version it needs.
    pending_since: Option<(u64, Instant)>,
    pub(super) bfd: Option<BfdLink>,
    /// The peer restarts and its routes are kept as stale (RFC 4724 §4.2, RFC 9494).
    pub(super) helper: Option<Helper>,
    pub(super) stats: Stats,
}

/// Graceful restart helper state: which families are stale, and until when.
#[derive(Debug, Clone)]
pub(super) struct Helper {
    pub families: Vec<Family>,
    /// Restart Time running: the peer must be back by then.
    pub restart_until: Option<Instant>,
    /// Back: the End-of-RIB must come by then.
    pub eor_until: Option<Instant>,
    /// Long-lived stale phase (RFC 9494 §4.2) until then.
    pub long_lived_until: Option<Instant>,
    /// The peer's long-lived stale time, when it offered LLGR for every stale family.
    pub long_lived: Option<Duration>,
}

/// After a restarted peer is back, how long its stale routes wait for its End-of-RIB (FRR's
/// and BIRD's stale-path default).
pub const STALE_PATH_TIME: Duration = Duration::from_secs(360);

impl Helper {
    fn deadline(&self) -> Option<Instant> {
        [self.restart_until, self.eor_until, self.long_lived_until].into_iter().flatten().min()
    }

    /// What `kbgp peers` says about it.
    pub fn describe(&self, now: Instant) -> String {
        let left = |t: Instant| t.saturating_duration_since(now).as_secs();
        match (self.restart_until, self.eor_until, self.long_lived_until) {
            (Some(t), ..) => format!("the peer is restarting: its routes are kept as stale for {} s more", left(t)),
            (_, Some(t), _) => format!("the peer is back: stale routes wait {} s more for its End-of-RIB", left(t)),
            (_, _, Some(t)) => format!("long-lived stale (RFC 9494): the peer's routes are kept {} s more", left(t)),
            _ => "stale routes held".into(),
        }
    }
}

/// The peer's BFD session and what it did to BGP.
#[derive(Debug)]
pub(super) struct BfdLink {
    pub session: bfd::Session,
    /// After BFD went Down: BGP stays down until BFD is Up, or until then.
    pub held_until: Option<Instant>,
    pub up_count: u64,
    pub down_count: u64,
    /// The last time BFD took the BGP session down, and why.
    pub last_down: Option<(Instant, bfd::Diag)>,
    /// The detection time last reported in an event.
    pub reported_detection: Option<Duration>,
}

/// How long BGP waits for BFD to come Up again after BFD took it down. A peer that removes
/// its BFD session with the BGP one (FRR does for a dynamic neighbor of a listen range) only
/// brings BFD back once BGP is up: past this, BGP tries without it.
pub const BFD_HOLD: Duration = Duration::from_secs(10);

/// What `kbgp peers` shows beyond the FSM.
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub state_since: Option<Instant>,
    pub established_count: u64,
    pub messages: crate::admin::api::Messages,
    pub last_error: Option<(Instant, SessionError)>,
    pub notification_sent: Option<(Instant, Notification)>,
    pub notification_received: Option<(Instant, Notification)>,
    /// Last error logged, so that a retry loop logs it once.
    pub last_logged: Option<String>,
    pub limit_logged: bool,
}

impl Peer {
    /// A stopped peer; `seed` feeds the reconnect jitter.
    pub fn new(key: PeerKey, settings: PeerSettings, seed: u64) -> Peer {
        let s = &settings.session;
        Peer {
            key,
            label: key.address.to_string(),
            vrouter: key.local_asn.to_string(),
            fsm: Fsm::new(s.clone(), seed),
            rib_in: AdjRibIn::new(settings.max_received_routes, s.router_id, s.local_as, s.is_ebgp()),
            rib_out: AdjRibOut::new(),
            settings,
            conns: Vec::new(),
            next_conn: 1,
            session: None,
            io: VecDeque::new(),
            events: VecDeque::new(),
            pending_since: None,
            bfd: None,
            helper: None,
            stats: Stats::default(),
        }
    }

    /// Starts the BFD session the settings ask for, with `discriminator` (unique on the
    /// system, non-zero).
    pub fn attach_bfd(&mut self, now: Instant, discriminator: u32, seed: u64) {
        let Some(b) = self.settings.bfd else { return };
        let session = bfd::Session::new(now, b.session, discriminator, seed);
        self.bfd = Some(BfdLink {
            session,
            held_until: None,
            up_count: 0,
            down_count: 0,
            last_down: None,
            reported_detection: None,
        });
        self.drive_bfd(now);
    }

    /// New BFD rates for the running session (a Poll Sequence, RFC 5880 §6.5).
    pub fn set_bfd(&mut self, now: Instant, b: Option<crate::config::policy::Bfd>) {
        self.settings.bfd = b;
        if let (Some(link), Some(b)) = (self.bfd.as_mut(), b) {
            link.session.set_config(now, b.session);
        }
        self.drive_bfd(now);
    }

    /// Sets the Restart State bit in the next OPENs (RFC 4724 §3): kbgp has restarted and the
    /// peer may still hold its routes as stale.
    pub fn set_restarting(&mut self, restarting: bool) {
        self.fsm.set_restarting(restarting);
    }

    /// The BFD session's discriminator, when the peer has one.
    pub fn bfd_discriminator(&self) -> Option<u32> {
        self.bfd.as_ref().map(|b| b.session.local_discriminator())
    }

    /// The BFD session, for status.
    pub fn bfd_session(&self) -> Option<&bfd::Session> {
        self.bfd.as_ref().map(|b| &b.session)
    }

    /// A BFD Control packet from the peer's address that arrived with `ttl`, on the
    /// multihop port or not. Returns why it was discarded, if it was.
    pub fn handle_bfd(
        &mut self,
        now: Instant,
        multihop: bool,
        ttl: u8,
        p: &bfd::Packet,
    ) -> Result<(), (&'static str, String)> {
        let (Some(link), Some(cfg)) = (self.bfd.as_mut(), self.settings.bfd) else {
            return Err(("unknown_session", "no BFD session with this peer".into()));
        };
        if multihop != cfg.multihop {
            let port = if multihop { "multihop" } else { "single-hop" };
            return Err(("port", format!("arrived on the {port} port")));
        }
        if ttl < cfg.min_ttl {
            return Err(("ttl", format!("TTL {ttl} below {} (RFC 5881 §5, RFC 5883 §5)", cfg.min_ttl)));
        }
        link.session.handle_packet(now, p);
        self.drive_bfd(now);
        Ok(())
    }

    /// Sends what the BFD session wants sent and acts on its state changes: Down takes the
    /// BGP session down (Cease 6/10, RFC 9384) and holds it until BFD is Up again, unless the
    /// peer said AdminDown, which is no path failure (RFC 5882 §3.2).
    fn drive_bfd(&mut self, now: Instant) {
        let Some(link) = self.bfd.as_mut() else { return };
        while let Some(p) = link.session.poll_transmit() {
            self.io.push_back(Io::Bfd(Bytes::copy_from_slice(&p.encode())));
        }
        let mut changes = Vec::new();
        while let Some(t) = link.session.poll_event() {
            changes.push(t);
        }
        let detection = link.session.detection_time();
        if detection.is_some() && detection != link.reported_detection {
            link.reported_detection = detection;
            self.events.extend(detection.map(Event::BfdDetection));
        }
        for t in changes {
            self.bfd_changed(now, t);
        }
    }

    fn bfd_changed(&mut self, now: Instant, t: bfd::Transition) {
        let Some(link) = self.bfd.as_mut() else { return };
        self.events.push_back(Event::Bfd(t.to));
        let ms = link.session.detection_time().map_or(0, |d| d.as_millis());
        match t.to {
            bfd::State::Up => {
                link.up_count += 1;
                info!(peer = %self.label, vrouter = %self.vrouter, detection_ms = ms, "BFD up");
                if link.held_until.take().is_some() {
                    self.fsm.handle(now, Input::Start);
                    self.drive(now);
                }
            }
            bfd::State::Down if t.from == bfd::State::Up => {
                if link.session.remote_state() == bfd::State::AdminDown {
                    info!(peer = %self.label, vrouter = %self.vrouter, "BFD: the peer took its session administratively down; BGP is left alone (RFC 5882 §3.2)");
                    return;
                }
                link.down_count += 1;
                link.last_down = Some((now, t.diag));
                link.held_until = Some(now + BFD_HOLD);
                warn!(
                    peer = %self.label,
                    vrouter = %self.vrouter,
                    diag = %t.diag,
                    "BFD down: ending the BGP session (Cease 6/10) until BFD is up again"
                );
                self.stop(now, Notification::cease(wire::error::cease_sub::BFD_DOWN, ""));
                self.start(now, Some(now + BFD_HOLD));
            }
            _ => debug!(peer = %self.label, vrouter = %self.vrouter, from = %t.from, to = %t.to, "BFD state"),
        }
    }

    /// Stops for good: Cease `n` on every connection and BFD AdminDown (RFC 5880 §6.8.16), so
    /// that the peer does not take the silence that follows for a failure.
    pub fn retire(&mut self, now: Instant, n: Notification) {
        self.stop(now, n);
        self.bfd_admin_down(now);
    }

    /// kbgp shuts down: ends the session as `mode` says, given what was negotiated; returns
    /// what the peer was told, for the log.
    pub fn shutdown(&mut self, now: Instant, n: Notification, mode: Shutdown) -> &'static str {
        let peer_gr = self.session.as_ref().and_then(|s| s.negotiated.peer_graceful_restart.as_ref());
        // A peer that sent the capability at all is a helper (RFC 4724 §3), even without
        // families or a restart time of its own.
        let gr = self.settings.session.graceful_restart.is_some() && peer_gr.is_some();
        let n_bit = gr && peer_gr.is_some_and(|g| g.notification);
        let said = match (mode, gr, n_bit) {
            (Shutdown::Keep, true, true) => {
                self.stop(now, n);
                "Cease with graceful restart (N bit, RFC 8538): the peer keeps the routes as stale"
            }
            (Shutdown::Keep, true, false) => {
                self.end(now, Input::Abandon(n));
                "connection closed without NOTIFICATION (RFC 4724 §4.2): the peer keeps the routes as stale"
            }
            (Shutdown::Withdraw, _, true) => {
                self.stop(now, Notification::hard_reset(&n));
                "Hard Reset (Cease 6/9, RFC 8538): the peer drops the routes"
            }
            _ => {
                self.stop(now, n);
                "Cease: the peer drops the routes"
            }
        };
        self.bfd_admin_down(now);
        said
    }

    fn bfd_admin_down(&mut self, now: Instant) {
        if let Some(link) = self.bfd.as_mut() {
            link.session.admin_down(now);
        }
        self.drive_bfd(now);
    }

    pub fn key(&self) -> PeerKey {
        self.key
    }

    pub fn settings(&self) -> &PeerSettings {
        &self.settings
    }

    pub fn state(&self) -> State {
        self.fsm.state()
    }

    pub fn fsm(&self) -> &Fsm {
        &self.fsm
    }

    pub fn rib_in(&self) -> &AdjRibIn {
        &self.rib_in
    }

    pub fn rib_out(&self) -> &AdjRibOut {
        &self.rib_out
    }

    /// The established session's local address, negotiation and export context.
    pub fn session(&self) -> Option<(SocketAddr, &Negotiated, &ExportCtx)> {
        self.session.as_ref().map(|s| (s.local, &s.negotiated, &s.export))
    }

    /// Starts the FSM; with `at`, the first connection attempt waits until then (the peer's
    /// connection is accepted meanwhile).
    pub fn start(&mut self, now: Instant, at: Option<Instant>) {
        self.stats.state_since = Some(now);
        // Without its password the session must not run at all (nor without one).
        if let Auth::Missing(why) = &self.settings.auth {
            error!(peer = %self.label, vrouter = %self.vrouter, "{why}");
            self.stats.last_error = Some((now, SessionError::Config(why.clone())));
            return;
        }
        let input = match at {
            Some(at) => Input::StartAt(at),
            None => Input::Start,
        };
        self.fsm.handle(now, input);
        self.drive(now);
    }

    /// Sends `n` on every connection and stays stopped.
    pub fn stop(&mut self, now: Instant, n: Notification) {
        self.end(now, Input::Stop(n));
    }

    /// Gives up any connection attempt and stops the FSM with `stop` (Stop or Abandon).
    fn end(&mut self, now: Instant, stop: Input) {
        self.io.push_back(Io::CancelConnect);
        self.fsm.handle(now, stop);
        self.drive(now);
    }

    /// A TCP connection is up (ours, or accepted from the peer), with its local address and
    /// the host's address of the other family on that interface.
    pub fn connected(&mut self, now: Instant, inbound: bool, local: SocketAddr, companion: Option<IpAddr>) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        // A dual-stack listener reports IPv4 sessions as ::ffff:a.b.c.d.
        let local = SocketAddr::new(local.ip().to_canonical(), local.port());
        self.conns.push(Conn { id, local, companion });
        debug!(peer = %self.label, vrouter = %self.vrouter, conn = id.0, inbound, %local, "TCP connection up");
        self.fsm.handle(now, Input::Connected { conn: id, inbound });
        self.drive(now);
        id
    }

    pub fn connect_failed(&mut self, now: Instant, why: String) {
        self.fsm.handle(now, Input::ConnectFailed(why));
        self.drive(now);
    }

    /// One complete message read on `conn` (header included).
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: &[u8]) {
        let ctx = self.fsm.ctx(conn);
        match wire::decode(frame, &ctx) {
            Ok(msg) => {
                self.count(now, &msg, false);
                self.fsm.handle(now, Input::Message { conn, msg });
            }
            Err(error) => {
                warn!(peer = %self.label, vrouter = %self.vrouter, "malformed message from the peer: {error}");
                self.fsm.handle(now, Input::DecodeError { conn, error });
            }
        }
        self.drive(now);
    }

    /// The framing found an invalid header on `conn`.
    pub fn handle_invalid(&mut self, now: Instant, conn: ConnId, error: DecodeError) {
        warn!(peer = %self.label, vrouter = %self.vrouter, "malformed message header from the peer: {error}");
        self.fsm.handle(now, Input::DecodeError { conn, error });
        self.drive(now);
    }

    /// The peer closed `conn`, or reading it failed.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId) {
        self.fsm.handle(now, Input::Closed { conn });
        self.conns.retain(|c| c.id != conn);
        self.drive(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.fsm.poll_timeout().is_some_and(|t| t <= now) {
            self.fsm.handle_timeout(now);
            self.drive(now);
        }
        if let Some(link) = self.bfd.as_mut()
            && link.session.poll_timeout().is_some_and(|t| t <= now)
        {
            link.session.handle_timeout(now);
            self.drive_bfd(now);
        }
        if self.helper.as_ref().and_then(Helper::deadline).is_some_and(|t| t <= now) {
            self.helper_timeout(now);
        }
    }

    /// A graceful restart timer ran out (RFC 4724 §4.2, RFC 9494 §4.2).
    fn helper_timeout(&mut self, now: Instant) {
        let Some(h) = self.helper.as_mut() else { return };
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(h.restart_until)
            && let Some(llst) = h.long_lived
        {
            h.restart_until = None;
            h.long_lived_until = Some(now + llst);
            let gone = self.rib_in.sweep_no_llgr();
            info!(
                peer = %self.label,
                vrouter = %self.vrouter,
                stale = self.rib_in.stale_count(),
                no_llgr = gone,
                "the peer's restart time passed: its routes are kept as long-lived stale for {} s (RFC 9494)",
                llst.as_secs()
            );
        } else if due(h.restart_until) || due(h.eor_until) || due(h.long_lived_until) {
            let gone = self.rib_in.sweep_stale(None);
            info!(peer = %self.label, vrouter = %self.vrouter, routes = gone, "graceful restart timer ran out: stale routes dropped");
            self.helper = None;
        }
        self.routes_changed();
    }

    /// Whether the session that ended this way leaves the peer's routes in place as stale
    /// (RFC 4724 §4.2; with the N bit both ways, also after a NOTIFICATION other than Hard
    /// Reset, RFC 8538 §4). Our own stops (reconfiguration, reset, BFD Down) flush.
    fn peer_restarts(&self, now: Instant, reason: &SessionError) -> Option<Helper> {
        let s = self.session.as_ref()?;
        let g = s.negotiated.peer_graceful_restart.as_ref()?;
        let n_bit = g.notification && self.settings.session.graceful_restart.is_some();
        let hard =
            |n: &Notification| n.code == wire::error::code::CEASE && n.subcode == wire::error::cease_sub::HARD_RESET;
        let graceful = match reason {
            SessionError::ConnectionClosed => true,
            SessionError::HoldTimerExpired => n_bit,
            SessionError::NotificationSent { notification, .. } => n_bit && !hard(notification),
            SessionError::NotificationReceived(n) => n_bit && !hard(n),
            _ => false,
        };
        let families: Vec<Family> =
            g.families.iter().map(|(f, _)| *f).filter(|f| s.negotiated.families.contains(f)).collect();
        let llgr: Vec<&crate::wire::capability::LongLived> =
            s.negotiated.peer_long_lived.iter().filter(|l| families.contains(&l.family)).collect();
        let long_lived = (!llgr.is_empty() && llgr.len() == families.len())
            .then(|| Duration::from_secs(llgr.iter().map(|l| u64::from(l.stale_time)).min().unwrap_or(0)))
            .filter(|d| !d.is_zero());
        if !graceful || families.is_empty() || (g.restart_time == 0 && long_lived.is_none()) {
            return None;
        }
        let restart = Duration::from_secs(g.restart_time.into());
        Some(Helper {
            families,
            // A restart time of 0 with LLGR: straight to the long-lived phase (RFC 9494 §4.2).
            restart_until: Some(now + restart),
            eor_until: None,
            long_lived_until: None,
            long_lived,
        })
    }

    /// The group's table reached `version` with a plan seen at `since`: the update latency
    /// runs from there until this peer has written it.
    pub fn table_changed(&mut self, version: u64, since: Instant) {
        if self.session.is_some() && self.rib_out.cursor() < version {
            let first = self.pending_since.map_or(since, |(_, t)| t.min(since));
            self.pending_since = Some((version, first));
        }
    }

    pub fn poll_io(&mut self) -> Option<Io> {
        self.io.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let bfd = self.bfd.as_ref().and_then(|b| b.session.poll_timeout());
        let helper = self.helper.as_ref().and_then(Helper::deadline);
        [self.fsm.poll_timeout(), bfd, helper].into_iter().flatten().min()
    }

    /// The connection of the Established session.
    pub fn established_conn(&self) -> Option<ConnId> {
        self.session.as_ref().map(|s| s.conn)
    }

    /// While Established: the cursor into the table, below which tombstones are no longer
    /// needed by this peer.
    pub fn cursor(&self) -> Option<u64> {
        self.session.as_ref().map(|_| self.rib_out.cursor())
    }

    /// Whether [`Peer::poll_updates`] has something to write.
    pub fn wants_updates(&self, table: &OutTable) -> bool {
        self.session.as_ref().is_some_and(|s| !s.eor.is_empty() || !s.eorr.is_empty() || self.rib_out.pending(table))
    }

    /// The next chunk of about `budget` octets of UPDATEs (and End-of-RIB / EoRR markers once
    /// the table is out) for the established connection. Call it when the connection can
    /// take more. With `share`, other peers of the table may send the same chunks (see
    /// [`AdjRibOut::next_chunk`](crate::rib::AdjRibOut::next_chunk)).
    pub fn poll_updates(
        &mut self,
        now: Instant,
        table: &mut OutTable,
        budget: usize,
        share: bool,
    ) -> Option<(ConnId, Bytes)> {
        let s = self.session.as_mut()?;
        if !s.eor.is_empty() && s.eor_at.is_none() {
            s.eor_at = Some(table.version());
        }
        if !s.eorr.is_empty() && s.eorr_at.is_none() {
            s.eorr_at = Some(table.version());
        }
        let before = [self.rib_out.count(Family::IPV4_UNICAST), self.rib_out.count(Family::IPV6_UNICAST)];
        let e = Encoding { export: &s.export, ctx: &s.ctx, families: &s.negotiated.families };
        let (f, chunk) = self.rib_out.next_chunk(table, &e, budget, share);
        let mut messages = f.messages as u64;
        if f.no_next_hop > 0 && !s.no_next_hop_logged {
            s.no_next_hop_logged = true;
            warn!(
                peer = %self.label,
                vrouter = %self.vrouter,
                local = %s.local,
                "{} routes cannot be sent: the session has no next hop of their family (an IPv4 route over \
                 IPv6 needs the peer's extended next hop capability, RFC 8950)",
                f.no_next_hop
            );
        }
        let cursor = self.rib_out.cursor();
        // The markers go after the last chunk, in a write of their own.
        let mut buf = BytesMut::new();
        let caught_up = chunk.is_none();
        if caught_up && s.eor_at.is_some_and(|v| cursor >= v) {
            for fam in s.eor.drain(..) {
                write_end_of_rib(fam, &mut buf);
                messages += 1;
                debug!(peer = %self.label, vrouter = %self.vrouter, family = %fam, "End-of-RIB sent");
            }
            s.eor_at = None;
        }
        if caught_up && s.eorr_at.is_some_and(|v| cursor >= v) {
            for fam in s.eorr.drain(..) {
                let m = Message::RouteRefresh(RouteRefresh { family: fam, subtype: RefreshSubtype::EndOfRouteRefresh });
                if wire::encode(&m, &s.ctx, &mut buf).is_ok() {
                    self.stats.messages.sent += 1;
                    self.events.push_back(Event::Messages { sent: true, kind: MessageType::RouteRefresh, count: 1 });
                }
            }
            s.eorr_at = None;
        }
        let conn = s.conn;
        if messages > 0 {
            self.stats.messages.sent += messages;
            self.stats.messages.updates_sent += messages;
            self.events.push_back(Event::Messages { sent: true, kind: MessageType::Update, count: messages });
            debug!(peer = %self.label, vrouter = %self.vrouter, announced = f.announced, withdrawn = f.withdrawn, messages, "UPDATEs out");
        }
        if let Some((v, since)) = self.pending_since
            && cursor >= v
        {
            self.pending_since = None;
            self.events.push_back(Event::Latency(now.saturating_duration_since(since)));
        }
        if before != [self.rib_out.count(Family::IPV4_UNICAST), self.rib_out.count(Family::IPV6_UNICAST)] {
            self.routes_changed();
        }
        let bytes = match chunk {
            Some(b) => b,
            None if buf.is_empty() => return None,
            None => buf.freeze(),
        };
        self.fsm.handle(now, Input::UpdateSent);
        self.drive(now);
        Some((conn, bytes))
    }

    /// `kbgp reset`: hard (Cease, reconnect after [`RESET_DELAY`]) or soft (send every route
    /// again and ask the peer for its routes again).
    pub fn reset(&mut self, now: Instant, soft: bool, table: &OutTable) -> Result<String, String> {
        if soft {
            if self.session.is_none() {
                return Err(format!("the session is {}, not Established: a soft reset needs a session", self.state()));
            }
            let n = table.total();
            self.resend();
            let asked = match self.refreshable() {
                Ok((conn, families)) => {
                    self.send_refresh_requests(now, conn, &families);
                    "; asked the peer for its routes again"
                }
                Err(_) => "; the peer has no route refresh capability, so its routes were not asked for again",
            };
            info!(peer = %self.label, vrouter = %self.vrouter, routes = n, "soft reset on request");
            return Ok(format!("sending all {n} routes again{asked}"));
        }
        let was = self.state();
        info!(peer = %self.label, vrouter = %self.vrouter, "hard reset on request");
        self.stop(now, Notification::cease(wire::error::cease_sub::ADMINISTRATIVE_RESET, RESET_MESSAGE));
        self.start(now, Some(now + RESET_DELAY));
        Ok(format!(
            "session was {was}: sent Cease (administrative reset); connecting again in {} s",
            RESET_DELAY.as_secs()
        ))
    }

    /// `kbgp refresh`: ask the peer to send its routes again (ROUTE-REFRESH, RFC 2918).
    pub fn refresh(&mut self, now: Instant) -> Result<String, String> {
        let (conn, families) = self.refreshable()?;
        self.send_refresh_requests(now, conn, &families);
        let names: Vec<String> = families.iter().map(Family::label).collect();
        info!(peer = %self.label, vrouter = %self.vrouter, families = ?names, "route refresh sent on request");
        Ok(format!("asked the peer to send its routes again ({})", names.join(", ")))
    }

    /// The peer gets every route again; the routes it has stay counted.
    fn resend(&mut self) {
        self.rib_out.resend();
    }

    fn refreshable(&self) -> Result<(ConnId, Vec<Family>), String> {
        let Some(s) = &self.session else {
            return Err(format!("the session is {}, not Established", self.state()));
        };
        if !s.negotiated.route_refresh && !s.negotiated.enhanced_route_refresh {
            return Err("the peer did not offer the route refresh capability (RFC 2918); use kbgp reset".into());
        }
        Ok((s.conn, s.negotiated.families.clone()))
    }

    fn send_refresh_requests(&mut self, now: Instant, conn: ConnId, families: &[Family]) {
        for f in families {
            let m = Message::RouteRefresh(RouteRefresh { family: *f, subtype: RefreshSubtype::Request });
            self.send(now, conn, &m);
        }
    }

    fn routes_changed(&mut self) {
        let c = |f| [self.rib_out.count(f), self.rib_in.count(f)];
        let (v4, v6) = (c(Family::IPV4_UNICAST), c(Family::IPV6_UNICAST));
        let advertised = if self.session.is_some() { [v4[0], v6[0]] } else { [0, 0] };
        self.events.push_back(Event::Routes { advertised, received: [v4[1], v6[1]] });
    }

    /// Counts a message sent or received, and remembers NOTIFICATIONs.
    fn count(&mut self, now: Instant, msg: &Message, sent: bool) {
        let m = &mut self.stats.messages;
        let is_update = matches!(msg, Message::Update(_)) as u64;
        if sent {
            m.sent += 1;
            m.updates_sent += is_update;
        } else {
            m.received += 1;
            m.updates_received += is_update;
        }
        self.events.push_back(Event::Messages { sent, kind: msg.kind(), count: 1 });
        let Message::Notification(n) = msg else { return };
        self.events.push_back(Event::Notification { sent, code: n.code, subcode: n.subcode });
        if sent {
            self.stats.notification_sent = Some((now, n.clone()));
        } else {
            self.stats.notification_received = Some((now, n.clone()));
        }
        match (sent, n.code) {
            (false, _) => warn!(peer = %self.label, vrouter = %self.vrouter, "received NOTIFICATION {n}"),
            // Our own Cease (shutdown, reconfiguration, collision) is routine.
            (true, wire::error::code::CEASE) => {
                info!(peer = %self.label, vrouter = %self.vrouter, "sending NOTIFICATION {n}")
            }
            (true, _) => warn!(peer = %self.label, vrouter = %self.vrouter, "sending NOTIFICATION {n}"),
        }
    }

    fn send(&mut self, now: Instant, conn: ConnId, msg: &Message) {
        let ctx = self.fsm.ctx(conn);
        match wire::to_bytes(msg, &ctx) {
            Ok(bytes) => {
                self.count(now, msg, true);
                self.io.push_back(Io::Send { conn, bytes });
            }
            Err(e) => warn!(peer = %self.label, vrouter = %self.vrouter, "cannot encode {}: {e}", msg.kind().name()),
        }
    }

    /// Acts on everything the FSM asked for.
    fn drive(&mut self, now: Instant) {
        let mut over_limit = None;
        while let Some(o) = self.fsm.poll_output() {
            match o {
                Output::Connect => {
                    self.events.push_back(Event::ConnectAttempt);
                    self.io.push_back(Io::Connect);
                }
                Output::Send { conn, msg } => self.send(now, conn, &msg),
                Output::Close { conn } => {
                    self.conns.retain(|c| c.id != conn);
                    self.io.push_back(Io::Close { conn });
                }
                Output::Established { conn, negotiated } => self.established(now, conn, *negotiated),
                Output::Down { reason } => self.down(now, reason),
                Output::StateChanged { from, to } => {
                    self.stats.state_since = Some(now);
                    if to == State::Established {
                        self.stats.established_count += 1;
                    }
                    self.events.push_back(Event::State { from, to });
                    debug!(peer = %self.label, vrouter = %self.vrouter, "state {from} -> {to}");
                }
                Output::Update(u) => over_limit = over_limit.or(self.received_update(&u)),
                Output::RouteRefresh(r) => self.refresh_requested(now, r),
            }
        }
        if let Some(family) = over_limit {
            self.max_prefixes_reached(now, family);
        }
        self.note_error(now);
    }

    /// What to check first about `e` on this session: the error's own hint, unless the session
    /// is signed with TCP MD5 (RFC 2385) and gets no answer, which a wrong password looks like:
    /// the peer's kernel drops every segment whose signature does not match, silently.
    pub(super) fn hint(&self, e: &SessionError) -> Option<&'static str> {
        if matches!(self.settings.auth, Auth::Md5(_))
            && matches!(e, SessionError::ConnectFailed(why) if why.contains("timed out"))
        {
            return Some(
                "no answer: check the TCP MD5 password on both sides (a wrong one is dropped without a reply)",
            );
        }
        e.hint()
    }

    /// Past `maxReceivedRoutes` with `maxReceivedRoutesAction: Cease` (RFC 4486 §4): Cease 6/1
    /// with the family and the bound, then connect again after the restart time, or stay
    /// down until `kbgp reset` or a configuration change.
    fn max_prefixes_reached(&mut self, now: Instant, family: Family) {
        let OverLimit::Cease { restart } = self.settings.over_max_received else { return };
        let limit = self.settings.max_received_routes;
        let then = match restart {
            Some(d) => format!("connecting again in {} s", d.as_secs()),
            None => "staying down until `kbgp reset` or a configuration change".to_string(),
        };
        warn!(
            peer = %self.label,
            vrouter = %self.vrouter,
            family = %family,
            "the peer sent more than maxReceivedRoutes ({limit}) routes: ending the session with Cease 6/1 \
             (RFC 4486), {then}"
        );
        self.stop(now, Notification::max_prefixes(family, u32::try_from(limit).unwrap_or(u32::MAX)));
        if let Some(d) = restart {
            self.start(now, Some(now + d));
        }
    }

    /// Records a new last error, and logs it once: a retry loop that fails the same way again
    /// is silent.
    fn note_error(&mut self, now: Instant) {
        let Some(e) = self.fsm.last_error() else { return };
        if self.stats.last_error.as_ref().is_some_and(|(_, l)| l == e) {
            return;
        }
        let e = e.clone();
        let text = e.to_string();
        // Session-down and stop messages were logged where they happened.
        let routine = matches!(e, SessionError::Stopped(_));
        if !routine && self.fsm.state() != State::Established && self.stats.last_logged.as_deref() != Some(&text) {
            match self.hint(&e) {
                Some(h) => warn!(peer = %self.label, vrouter = %self.vrouter, hint = %h, "session not up: {text}"),
                None => warn!(peer = %self.label, vrouter = %self.vrouter, "session not up: {text}"),
            }
        }
        self.stats.last_logged = Some(text);
        self.stats.last_error = Some((now, e));
    }

    fn established(&mut self, now: Instant, conn: ConnId, negotiated: Negotiated) {
        let Some(c) = self.conns.iter().find(|c| c.id == conn).copied() else { return };
        let (v4, v6) = match (c.local.ip(), c.companion) {
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
            four_octet_as: negotiated.four_octet_as,
        };
        info!(
            peer = %self.label,
            vrouter = %self.vrouter,
            peer_as = negotiated.peer_as,
            peer_id = %negotiated.peer_id,
            hold_time = negotiated.hold_time,
            families = ?negotiated.families.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            capabilities = ?negotiated.capability_names(),
            local = %c.local,
            "session established"
        );
        self.stats.last_logged = None;
        self.stats.limit_logged = false;
        if self.helper.is_some() {
            self.peer_back(now, &negotiated);
        }
        let s = &self.settings.session;
        if self.helper.is_none() {
            self.rib_in = AdjRibIn::new(self.settings.max_received_routes, s.router_id, s.local_as, negotiated.ebgp);
        }
        self.rib_out.reset();
        self.session = Some(Session {
            conn,
            local: c.local,
            ctx: negotiated.ctx(),
            eor: negotiated.families.clone(),
            eor_at: None,
            eorr: Vec::new(),
            eorr_at: None,
            negotiated,
            export,
            no_next_hop_logged: false,
        });
        self.events.push_back(Event::Up);
    }

    fn down(&mut self, now: Instant, reason: SessionError) {
        if matches!(reason, SessionError::Stopped(_)) {
            info!(peer = %self.label, vrouter = %self.vrouter, "session down: {reason}");
        } else {
            warn!(peer = %self.label, vrouter = %self.vrouter, "session down: {reason}");
        }
        let helper = self.peer_restarts(now, &reason);
        self.stats.last_logged = Some(reason.to_string());
        self.session = None;
        self.pending_since = None;
        match helper {
            Some(h) => {
                let kept = self.rib_in.mark_stale(&h.families);
                info!(
                    peer = %self.label,
                    vrouter = %self.vrouter,
                    routes = kept,
                    restart_time = ?h.restart_until.map(|t| t.saturating_duration_since(now).as_secs()),
                    "the peer restarts (graceful restart): its routes are kept as stale"
                );
                self.helper = Some(h);
            }
            None => {
                self.helper = None;
                self.rib_in.clear();
            }
        }
        self.rib_out.reset();
        self.events.push_back(Event::Down);
        self.routes_changed();
    }

    /// The restarted peer is back (RFC 4724 §4.2): families it no longer keeps forwarding
    /// state for lose their stale routes now; the others wait for its End-of-RIB.
    fn peer_back(&mut self, now: Instant, negotiated: &Negotiated) {
        let Some(mut h) = self.helper.take() else { return };
        let kept: Vec<Family> = negotiated
            .peer_graceful_restart
            .iter()
            .flat_map(|g| g.families.iter().filter(|(_, fwd)| *fwd).map(|(f, _)| *f))
            .collect();
        for f in h.families.iter().filter(|f| !kept.contains(f)) {
            let gone = self.rib_in.sweep_stale(Some(*f));
            debug!(peer = %self.label, vrouter = %self.vrouter, family = %f, routes = gone, "no forwarding state kept: stale routes dropped");
        }
        h.families.retain(|f| kept.contains(f));
        if h.families.is_empty() || self.rib_in.stale_count() == 0 {
            return;
        }
        h.restart_until = None;
        h.long_lived_until = None;
        h.eor_until = Some(now + STALE_PATH_TIME);
        self.helper = Some(h);
    }

    /// Takes in one UPDATE; the family that went past `maxReceivedRoutes`, when the
    /// neighbor's action for that is Cease.
    fn received_update(&mut self, u: &wire::Update) -> Option<Family> {
        for e in &u.errors {
            self.events.push_back(Event::UpdateError(e.action));
            let action = match e.action {
                Rfc7606Action::TreatAsWithdraw => "treat-as-withdraw",
                Rfc7606Action::AttributeDiscard => "attribute-discard",
            };
            warn!(peer = %self.label, vrouter = %self.vrouter, "malformed UPDATE from the peer ({action}, RFC 7606): {}", e.reason);
        }
        let a = self.rib_in.apply(u);
        if a.over_limit > 0 && matches!(self.settings.over_max_received, OverLimit::Cease { .. }) {
            return a.over_limit_family;
        }
        if a.over_limit > 0 {
            self.events.push_back(Event::Dropped(a.over_limit as u64));
            if !self.stats.limit_logged {
                warn!(
                    peer = %self.label,
                    vrouter = %self.vrouter,
                    "maxReceivedRoutes ({}) reached: further routes from this peer are dropped, not stored",
                    self.settings.max_received_routes
                );
                self.stats.limit_logged = true;
            }
        }
        if let Some(f) = u.end_of_rib() {
            debug!(peer = %self.label, vrouter = %self.vrouter, family = %f, "End-of-RIB received");
            if let Some(h) = self.helper.as_mut().filter(|h| h.eor_until.is_some() && h.families.contains(&f)) {
                h.families.retain(|x| *x != f);
                let gone = self.rib_in.sweep_stale(Some(f));
                if h.families.is_empty() {
                    self.helper = None;
                }
                info!(peer = %self.label, vrouter = %self.vrouter, family = %f, routes = gone, "End-of-RIB after the peer's restart: stale routes dropped");
                self.routes_changed();
            }
        }
        if a.added + a.withdrawn + a.replaced + a.treated_as_withdraw > 0 {
            self.routes_changed();
        }
        None
    }

    /// The peer now takes its routes from another table (its export group changed, its
    /// session did not). What it was sent is unknown in terms of the new table, so the new
    /// table goes out whole: with enhanced route refresh (RFC 7313 §4) between BoRR and EoRR,
    /// so that the peer drops what is not sent again; without it, the session restarts (a
    /// peer cannot be told to forget routes it was never told about). Returns whether the
    /// session restarts.
    pub fn table_replaced(&mut self, now: Instant) -> bool {
        let Some(s) = &mut self.session else {
            self.rib_out.reset();
            return false;
        };
        if !s.negotiated.enhanced_route_refresh {
            info!(
                peer = %self.label,
                vrouter = %self.vrouter,
                "what the peer is sent changed and it has no enhanced route refresh: restarting the session"
            );
            self.stop(now, Notification::cease(wire::error::cease_sub::OTHER_CONFIGURATION_CHANGE, ""));
            self.start(now, Some(now + RESET_DELAY));
            return true;
        }
        let conn = s.conn;
        let families = s.negotiated.families.clone();
        for f in &families {
            if !s.eorr.contains(f) {
                s.eorr.push(*f);
            }
        }
        s.eorr_at = None;
        for f in families {
            let m = Message::RouteRefresh(RouteRefresh { family: f, subtype: RefreshSubtype::BeginOfRouteRefresh });
            self.send(now, conn, &m);
        }
        self.rib_out.reset();
        false
    }

    /// The peer asks for our routes again (RFC 2918 §4; RFC 7313 §4 with BoRR and EoRR).
    fn refresh_requested(&mut self, now: Instant, r: RouteRefresh) {
        let Some(s) = &mut self.session else { return };
        if r.subtype != RefreshSubtype::Request || !s.negotiated.families.contains(&r.family) {
            return;
        }
        info!(peer = %self.label, vrouter = %self.vrouter, family = %r.family, "route refresh requested");
        if s.negotiated.enhanced_route_refresh {
            let conn = s.conn;
            if !s.eorr.contains(&r.family) {
                s.eorr.push(r.family);
            }
            s.eorr_at = None;
            let m =
                Message::RouteRefresh(RouteRefresh { family: r.family, subtype: RefreshSubtype::BeginOfRouteRefresh });
            self.send(now, conn, &m);
        }
        self.resend();
    }
}

#[cfg(test)]
mod tests;
