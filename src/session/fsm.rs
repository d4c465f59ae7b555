//! The BGP finite state machine (RFC 4271 §8), sans-IO.
//!
//! The FSM never touches a socket or a clock. The driver feeds it [`Input`]s with the current
//! time, drains [`Output`]s with [`Fsm::poll_output`], and calls [`Fsm::handle_timeout`] at
//! [`Fsm::poll_timeout`]. Tests drive it with a virtual clock.
//!
//! A peer may have up to two TCP connections at once (ours and theirs) until connection
//! collision detection (§6.8) picks one. Each connection has its own state (OpenSent,
//! OpenConfirm, Established) and timers; the peer's state is the most advanced of them, or
//! Idle / Connect / Active when there is none.
//!
//! Differences from the letter of §8, on purpose:
//! - After an error the FSM goes to Idle and restarts by itself after a backoff delay (the
//!   "automatic start" events with IdleHoldTimer damping, §8.1.1); inbound connections from the
//!   configured peer are accepted during that delay instead of refused.
//! - A connection that loses collision detection while the other is Established is closed as
//!   soon as the other reaches Established, not when its OPEN arrives.

use super::backoff::Backoff;
use super::config::SessionConfig;
use super::negotiate::{Negotiated, negotiate, our_open};
use crate::wire::error::{cease_sub, code, fsm_sub};
use crate::wire::{DecodeError, Message, Notification, RouteRefresh, Update};
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Hold time used while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes).
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);
/// A session that stayed Established this long resets the reconnect backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Identifies one TCP connection; allocated by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// RFC 4271 §8.2.2 states, numbered as in the `kbgp_session_state` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    Idle = 1,
    Connect = 2,
    Active = 3,
    OpenSent = 4,
    OpenConfirm = 5,
    Established = 6,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// UPDATEs dominate the traffic and are moved once; boxing them would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// ManualStart / AutomaticStart.
    Start,
    /// Start, but make the first connection attempt no sooner than the given instant. Until
    /// then the FSM waits in Idle and accepts the peer's connection (as after an error). kbgp
    /// uses it after a reset or a settings change, so that a peer still tearing the old
    /// session down is not met by a new one within milliseconds.
    StartAt(Instant),
    /// ManualStop: send this Cease on every open connection and stay Idle.
    Stop(Notification),
    /// Stop without a NOTIFICATION: close every connection and stay Idle. A peer that
    /// negotiated graceful restart keeps the routes as stale (RFC 4724 §4.2); `n` is only
    /// the reason recorded.
    Abandon(Notification),
    /// The outgoing connection attempt failed (refused, unreachable, timed out).
    ConnectFailed(String),
    /// A TCP connection is up: ours (`inbound: false`) or accepted from the peer.
    Connected { conn: ConnId, inbound: bool },
    /// The connection was closed by the peer or failed.
    Closed { conn: ConnId },
    /// A message arrived on a connection.
    Message { conn: ConnId, msg: Message },
    /// A message on this connection could not be decoded.
    DecodeError { conn: ConnId, error: DecodeError },
    /// The driver wrote UPDATEs on the established connection: restarts the KeepaliveTimer.
    UpdateSent,
}

/// Why a connection or session ended; kept as the peer's last error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionError {
    HoldTimerExpired,
    NotificationSent {
        notification: Notification,
        reason: String,
    },
    NotificationReceived(Notification),
    ConnectionClosed,
    ConnectFailed(String),
    Stopped(Notification),
    /// The session cannot start as configured (a missing TCP MD5 Secret); the text says why.
    Config(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::HoldTimerExpired => {
                f.write_str("hold timer expired: no KEEPALIVE or UPDATE from the peer in time")
            }
            SessionError::NotificationSent { notification, reason } => {
                write!(f, "sent NOTIFICATION {notification}: {reason}")
            }
            SessionError::NotificationReceived(n) => write!(f, "received NOTIFICATION {n}"),
            SessionError::ConnectionClosed => f.write_str("the peer closed the TCP connection"),
            SessionError::ConnectFailed(e) => write!(f, "TCP connect failed: {e}"),
            SessionError::Stopped(n) => write!(f, "stopped: sent {n}"),
            SessionError::Config(why) => f.write_str(why),
        }
    }
}

impl SessionError {
    /// What to check first, for the CLI and the logs; `None` when the message says it all.
    pub fn hint(&self) -> Option<&'static str> {
        use crate::wire::error::{cease_sub as cs, code as c, open_sub as os};
        match self {
            SessionError::ConnectFailed(e) => {
                let e = e.to_ascii_lowercase();
                Some(if e.contains("refused") {
                    "nothing accepts connections on the peer's BGP port: check the peer's address and port, and that \
                     BGP runs there"
                } else if e.contains("timed out") {
                    "check the peer's address, firewall, MD5 password, and GTSM (ttlSecurity) on both sides"
                } else if e.contains("unreachable") || e.contains("no route") {
                    "the peer's address is not reachable from this node: check the address, the link and this \
                     node's routes"
                } else {
                    "check the peer's address and port, and any firewall"
                })
            }
            SessionError::ConnectionClosed => Some(
                "the peer closed the connection without a NOTIFICATION: many daemons do that to a neighbor they do \
                 not know; check that the peer has this node's address as a neighbor",
            ),
            SessionError::HoldTimerExpired => {
                Some("the peer stopped sending KEEPALIVEs: check the link, packet loss and the peer's load")
            }
            SessionError::NotificationReceived(n) => match (n.code, n.subcode) {
                (c::OPEN_MESSAGE, os::BAD_PEER_AS) => {
                    Some("the peer expects another AS from this node: compare localASN with the peer's remote-as")
                }
                (c::OPEN_MESSAGE, os::BAD_BGP_IDENTIFIER) => {
                    Some("the peer refuses our router ID: it may be in use by another speaker")
                }
                (c::CEASE, cs::CONNECTION_REJECTED) | (c::CEASE, cs::PEER_DECONFIGURED) => {
                    Some("the peer does not accept this node: check that it has this node's address as a neighbor")
                }
                (c::CEASE, cs::ADMINISTRATIVE_SHUTDOWN) => Some("the peer's operator shut the session down"),
                (c::CEASE, cs::MAX_PREFIXES_REACHED) => {
                    Some("we sent more routes than the peer's maximum-prefix allows: raise it or announce fewer")
                }
                _ => None,
            },
            SessionError::NotificationSent { notification: n, .. } => match (n.code, n.subcode) {
                (c::OPEN_MESSAGE, os::BAD_PEER_AS) => {
                    Some("the peer's AS is not the peerASN of the policy: fix one of the two")
                }
                (c::OPEN_MESSAGE, os::UNACCEPTABLE_HOLD_TIME) => Some("the peer proposed a hold time of 1 or 2 s"),
                _ => None,
            },
            SessionError::Stopped(_) | SessionError::Config(_) => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Start an outgoing connection attempt, replacing any attempt in flight.
    Connect,
    /// Write this message on the connection.
    Send {
        conn: ConnId,
        msg: Message,
    },
    /// Flush what was sent on the connection, then close it.
    Close {
        conn: ConnId,
    },
    /// The session is up on `conn`: the driver may now send UPDATEs there.
    Established {
        conn: ConnId,
        negotiated: Box<Negotiated>,
    },
    /// The session left Established.
    Down {
        reason: SessionError,
    },
    StateChanged {
        from: State,
        to: State,
    },
    /// An UPDATE received in Established.
    Update(Update),
    /// A ROUTE-REFRESH received in Established.
    RouteRefresh(RouteRefresh),
}

/// Where one connection is; the negotiation exists exactly from OpenConfirm on.
#[derive(Debug)]
enum Phase {
    OpenSent,
    OpenConfirm(Box<Negotiated>),
    Established(Box<Negotiated>),
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    inbound: bool,
    phase: Phase,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
}

impl Conn {
    fn state(&self) -> State {
        match self.phase {
            Phase::OpenSent => State::OpenSent,
            Phase::OpenConfirm(_) => State::OpenConfirm,
            Phase::Established(_) => State::Established,
        }
    }
    fn negotiated(&self) -> Option<&Negotiated> {
        match &self.phase {
            Phase::OpenSent => None,
            Phase::OpenConfirm(n) | Phase::Established(n) => Some(n),
        }
    }
}

#[derive(Debug)]
pub struct Fsm {
    cfg: SessionConfig,
    /// Started and not administratively stopped.
    enabled: bool,
    /// State when there is no connection: Idle, Connect or Active.
    base: State,
    conns: Vec<Conn>,
    /// Idle: automatic restart; Active: next connect attempt; Connect: attempt timeout.
    retry_at: Option<Instant>,
    backoff: Backoff,
    established_at: Option<Instant>,
    reported: State,
    last_error: Option<SessionError>,
    out: VecDeque<Output>,
    /// The Restart State (R) bit of our OPENs (RFC 4724 §3): set after kbgp restarted, until
    /// a session is Established.
    restarting: bool,
}

impl Fsm {
    /// `seed` feeds the reconnect jitter.
    pub fn new(cfg: SessionConfig, seed: u64) -> Fsm {
        let backoff = Backoff::new(cfg.min_retry, cfg.connect_retry, seed);
        Fsm {
            cfg,
            enabled: false,
            base: State::Idle,
            conns: Vec::new(),
            retry_at: None,
            backoff,
            established_at: None,
            reported: State::Idle,
            last_error: None,
            out: VecDeque::new(),
            restarting: false,
        }
    }

    /// Says in the next OPENs that kbgp has restarted (RFC 4724 §3, the R bit).
    pub fn set_restarting(&mut self, restarting: bool) {
        self.restarting = restarting;
    }

    pub fn restarting(&self) -> bool {
        self.restarting
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    pub fn state(&self) -> State {
        self.conns.iter().map(Conn::state).max().unwrap_or(self.base)
    }

    /// The established connection and what it negotiated.
    pub fn established(&self) -> Option<(ConnId, &Negotiated)> {
        self.conns.iter().find_map(|c| match &c.phase {
            Phase::Established(n) => Some((c.id, &**n)),
            _ => None,
        })
    }

    /// The codec context for messages arriving on `conn`.
    pub fn ctx(&self, conn: ConnId) -> crate::wire::Ctx {
        match self.conns.iter().find(|c| c.id == conn).and_then(Conn::negotiated) {
            Some(n) => n.ctx(),
            None => crate::wire::Ctx::default(),
        }
    }

    pub fn last_error(&self) -> Option<&SessionError> {
        self.last_error.as_ref()
    }

    pub fn established_since(&self) -> Option<Instant> {
        self.established_at
    }

    /// While the FSM waits to connect (Idle after a failure or `StartAt`, or Active between
    /// attempts): when it will try. `None` while connecting or connected, when stopped, and
    /// for a passive peer, which never connects.
    pub fn next_attempt(&self) -> Option<Instant> {
        let waiting = self.enabled && self.conns.is_empty() && matches!(self.base, State::Idle | State::Active);
        self.retry_at.filter(|_| waiting && !self.cfg.passive)
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next instant at which [`Fsm::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns.iter().flat_map(|c| [c.hold_at, c.keepalive_at]).chain([self.retry_at]).flatten().min()
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Start => {
                if !self.enabled || (self.conns.is_empty() && self.base == State::Idle) {
                    self.enabled = true;
                    self.start(now);
                }
            }
            Input::StartAt(at) => {
                if !self.enabled || (self.conns.is_empty() && self.base == State::Idle) {
                    self.enabled = true;
                    self.base = State::Idle;
                    self.retry_at = Some(at);
                    if at <= now {
                        self.handle_timeout(now);
                    }
                }
            }
            Input::Stop(n) => self.stop(n, true),
            Input::Abandon(n) => self.stop(n, false),
            Input::ConnectFailed(why) => {
                if self.enabled && self.conns.is_empty() && self.base == State::Connect {
                    self.last_error = Some(SessionError::ConnectFailed(why));
                    self.base = State::Active;
                    self.retry_at = Some(now + self.backoff.next_delay());
                }
            }
            Input::Connected { conn, inbound } => self.connected(now, conn, inbound),
            Input::Closed { conn } => {
                if self.remove(conn).is_some() {
                    self.conn_lost(now, conn, SessionError::ConnectionClosed);
                }
            }
            Input::DecodeError { conn, error } => {
                if self.conns.iter().any(|c| c.id == conn) {
                    self.fail(now, conn, Notification::from(&error), error.reason.clone());
                }
            }
            Input::Message { conn, msg } => self.message(now, conn, msg),
            Input::UpdateSent => {
                if let Some(c) = self.conns.iter_mut().find(|c| c.state() == State::Established) {
                    let ka = c.negotiated().map_or(0, |n| n.keepalive);
                    if ka > 0 {
                        c.keepalive_at = Some(now + secs(ka));
                    }
                }
            }
        }
        self.report_state();
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<ConnId> =
            self.conns.iter().filter(|c| c.hold_at.is_some_and(|t| t <= now)).map(|c| c.id).collect();
        for id in expired {
            self.send(id, Message::Notification(Notification::hold_timer_expired()));
            self.out.push_back(Output::Close { conn: id });
            if self.remove(id).is_some() {
                self.conn_lost(now, id, SessionError::HoldTimerExpired);
            }
        }
        let mut keepalives = Vec::new();
        for c in &mut self.conns {
            if c.keepalive_at.is_some_and(|t| t <= now) {
                let ka = c.negotiated().map_or(0, |n| n.keepalive);
                c.keepalive_at = if ka > 0 { Some(now + secs(ka)) } else { None };
                keepalives.push(c.id);
            }
        }
        for id in keepalives {
            self.send(id, Message::Keepalive);
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            if self.enabled && self.conns.is_empty() {
                match self.base {
                    State::Idle => self.start(now),
                    State::Active if !self.cfg.passive => self.connect(now),
                    // The attempt in flight took longer than ConnectRetryTime: start over.
                    State::Connect => {
                        let waited = self.cfg.connect_retry.as_secs();
                        self.last_error = Some(SessionError::ConnectFailed(format!("timed out after {waited} s")));
                        self.connect(now)
                    }
                    _ => {}
                }
            }
        }
        self.report_state();
    }

    fn start(&mut self, now: Instant) {
        if !self.conns.is_empty() {
            return;
        }
        if self.cfg.passive {
            self.base = State::Active;
            self.retry_at = None;
        } else {
            self.connect(now);
        }
    }

    fn connect(&mut self, now: Instant) {
        self.base = State::Connect;
        self.out.push_back(Output::Connect);
        self.retry_at = Some(now + self.cfg.connect_retry);
    }

    fn stop(&mut self, n: Notification, notify: bool) {
        self.enabled = false;
        let conns = std::mem::take(&mut self.conns);
        for c in &conns {
            if notify {
                self.send(c.id, Message::Notification(n.clone()));
            }
            self.out.push_back(Output::Close { conn: c.id });
        }
        if conns.iter().any(|c| c.state() == State::Established) {
            self.established_at = None;
            self.out.push_back(Output::Down { reason: SessionError::Stopped(n.clone()) });
        }
        if !conns.is_empty() {
            self.last_error = Some(SessionError::Stopped(n));
        }
        self.base = State::Idle;
        self.retry_at = None;
    }

    fn connected(&mut self, now: Instant, id: ConnId, inbound: bool) {
        if !self.enabled {
            self.out.push_back(Output::Close { conn: id });
            return;
        }
        if self.conns.len() >= 2 {
            self.send(id, Message::Notification(Notification::cease(cease_sub::CONNECTION_REJECTED, "")));
            self.out.push_back(Output::Close { conn: id });
            return;
        }
        self.conns.push(Conn {
            id,
            inbound,
            phase: Phase::OpenSent,
            hold_at: Some(now + OPEN_HOLD_TIME),
            keepalive_at: None,
        });
        self.retry_at = None;
        self.send(id, Message::Open(our_open(&self.cfg, self.restarting)));
    }

    fn message(&mut self, now: Instant, id: ConnId, msg: Message) {
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else { return };
        let state = c.state();
        if let Some(n) = c.negotiated().filter(|n| n.hold_time > 0) {
            c.hold_at = Some(now + secs(n.hold_time));
        }
        match (state, msg) {
            (_, Message::Notification(n)) => {
                self.out.push_back(Output::Close { conn: id });
                self.remove(id);
                self.conn_lost(now, id, SessionError::NotificationReceived(n));
            }
            (State::OpenSent, Message::Open(open)) => match negotiate(&self.cfg, &open) {
                Err(e) => self.fail(now, id, Notification::from(&e), e.reason),
                Ok(n) => self.open_received(now, id, n),
            },
            (State::OpenSent, m) => self.fsm_error(now, id, fsm_sub::UNEXPECTED_IN_OPENSENT, &m),
            (State::OpenConfirm, Message::Keepalive) => self.become_established(now, id),
            (State::OpenConfirm, m) => self.fsm_error(now, id, fsm_sub::UNEXPECTED_IN_OPENCONFIRM, &m),
            (State::Established, Message::Keepalive) => {}
            (State::Established, Message::Update(u)) => self.out.push_back(Output::Update(u)),
            (State::Established, Message::RouteRefresh(r)) => self.out.push_back(Output::RouteRefresh(r)),
            (State::Established, m) => self.fsm_error(now, id, fsm_sub::UNEXPECTED_IN_ESTABLISHED, &m),
            (_, _) => {}
        }
    }

    /// RFC 4271 §6.8 connection collision detection, then OpenConfirm.
    fn open_received(&mut self, now: Instant, id: ConnId, n: Negotiated) {
        let other =
            self.conns.iter().find(|c| c.id != id && c.state() >= State::OpenConfirm).map(|c| (c.id, c.state()));
        if let Some((other_id, other_state)) = other {
            let this_inbound = self.conns.iter().find(|c| c.id == id).is_some_and(|c| c.inbound);
            let loser = if other_state == State::Established {
                id
            } else {
                // Keep the connection opened by the side with the higher BGP identifier
                // (RFC 6286 §2.3: the higher AS when the identifiers are equal).
                let local = (u32::from(self.cfg.router_id), self.cfg.local_as);
                let remote = (u32::from(n.peer_id), n.peer_as);
                let keep_ours = local > remote;
                // "ours" = the connection we initiated, i.e. not inbound.
                if keep_ours != this_inbound { other_id } else { id }
            };
            self.send(
                loser,
                Message::Notification(Notification::cease(cease_sub::CONNECTION_COLLISION_RESOLUTION, "")),
            );
            self.out.push_back(Output::Close { conn: loser });
            self.remove(loser);
            if loser == id {
                return;
            }
        }
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else { return };
        c.hold_at = (n.hold_time > 0).then(|| now + secs(n.hold_time));
        c.keepalive_at = (n.keepalive > 0).then(|| now + secs(n.keepalive));
        c.phase = Phase::OpenConfirm(Box::new(n));
        self.send(id, Message::Keepalive);
    }

    fn become_established(&mut self, now: Instant, id: ConnId) {
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else { return };
        let negotiated = match &c.phase {
            Phase::OpenConfirm(n) => n.clone(),
            _ => return,
        };
        c.phase = Phase::Established(negotiated.clone());
        self.established_at = Some(now);
        // Any other connection can only lose against an Established one.
        let others: Vec<ConnId> = self.conns.iter().filter(|c| c.id != id).map(|c| c.id).collect();
        for o in others {
            self.send(o, Message::Notification(Notification::cease(cease_sub::CONNECTION_COLLISION_RESOLUTION, "")));
            self.out.push_back(Output::Close { conn: o });
            self.remove(o);
        }
        self.restarting = false;
        self.out.push_back(Output::Established { conn: id, negotiated });
    }

    fn fsm_error(&mut self, now: Instant, id: ConnId, subcode: u8, m: &Message) {
        let n = Notification::new(code::FSM, subcode, bytes::Bytes::new());
        let reason = format!("unexpected {} message", m.kind().name());
        self.fail(now, id, n, reason);
    }

    /// Sends a NOTIFICATION on `id`, closes it and records why.
    fn fail(&mut self, now: Instant, id: ConnId, n: Notification, reason: String) {
        self.send(id, Message::Notification(n.clone()));
        self.out.push_back(Output::Close { conn: id });
        if self.remove(id).is_some() {
            self.conn_lost(now, id, SessionError::NotificationSent { notification: n, reason });
        }
    }

    fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let i = self.conns.iter().position(|c| c.id == id)?;
        Some(self.conns.remove(i))
    }

    /// Bookkeeping after a connection is gone (already removed from `conns`).
    fn conn_lost(&mut self, now: Instant, _id: ConnId, why: SessionError) {
        if let Some(t) = self.established_at.filter(|_| !self.conns.iter().any(|c| c.state() == State::Established)) {
            if now.saturating_duration_since(t) >= STABLE_AFTER {
                self.backoff.reset();
            }
            self.established_at = None;
            self.out.push_back(Output::Down { reason: why.clone() });
        }
        self.last_error = Some(why);
        if self.conns.is_empty() && self.enabled {
            if self.cfg.passive {
                self.base = State::Active;
                self.retry_at = None;
            } else {
                self.base = State::Idle;
                self.retry_at = Some(now + self.backoff.next_delay());
            }
        }
    }

    fn send(&mut self, conn: ConnId, msg: Message) {
        self.out.push_back(Output::Send { conn, msg });
    }

    fn report_state(&mut self) {
        let now = self.state();
        if now != self.reported {
            self.out.push_back(Output::StateChanged { from: self.reported, to: now });
            self.reported = now;
        }
    }
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(s as u64)
}
