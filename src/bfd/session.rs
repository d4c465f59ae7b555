//! One BFD session in Asynchronous mode, sans-IO (RFC 5880 §6).
//!
//! The owner feeds it the packets addressed to it ([`Session::handle_packet`]) and the time
//! ([`Session::handle_timeout`] at [`Session::poll_timeout`]), and takes out the packets to
//! send ([`Session::poll_transmit`]) and the state changes ([`Session::poll_event`]).
//!
//! What it follows:
//! - the three-way handshake Down → Init → Up, and Down on a neighbor's Down or on the
//!   detection time passing without a packet (§6.2, §6.8.6);
//! - while not Up, at most one packet a second (§6.8.3); Up, the configured rates;
//! - transmit interval `max(DesiredMinTx, remote RequiredMinRx)` less 0–25 % jitter (§6.8.7);
//!   detection time `remote DetectMult × max(RequiredMinRx, remote DesiredMinTx)` (§6.8.4);
//! - every timer change is announced with a Poll Sequence (§6.5): a slower transmit rate or
//!   a shorter detection time takes effect only once the peer answered with F (§6.8.3);
//! - a packet with P is answered at once with F (§6.8.7);
//! - the remote discriminator is forgotten when the detection time passes (§6.8.1);
//! - AdminDown (§6.8.16): announced when the session is stopped; a neighbor's AdminDown
//!   takes the session Down with diagnostic 3, which the BGP side must not treat as a path
//!   failure (RFC 5882 §3.2).

use super::packet::{Diag, Packet, State};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The slowest rate, and the rate while not Up (RFC 5880 §6.8.3).
pub const SLOW: Duration = Duration::from_secs(1);

/// What a session is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// bfd.DesiredMinTxInterval while Up.
    pub transmit_interval: Duration,
    /// bfd.RequiredMinRxInterval.
    pub receive_interval: Duration,
    pub detect_multiplier: u8,
    /// Passive role (§6.1): send nothing until the neighbor has sent something.
    pub passive: bool,
}

impl Default for Config {
    /// MetalLB's BFDProfile defaults: 300 ms, 300 ms, 3.
    fn default() -> Config {
        Config {
            transmit_interval: Duration::from_millis(300),
            receive_interval: Duration::from_millis(300),
            detect_multiplier: 3,
            passive: false,
        }
    }
}

/// A state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// Why, when `to` is Down.
    pub diag: Diag,
}

#[derive(Debug)]
pub struct Session {
    cfg: Config,
    state: State,
    diag: Diag,
    local_discriminator: u32,
    remote_discriminator: u32,
    remote_state: State,
    remote_demand: bool,
    remote_min_rx: Duration,
    remote_desired_tx: Duration,
    remote_mult: u8,
    /// The DesiredMinTx and RequiredMinRx we send.
    desired_tx: Duration,
    required_rx: Duration,
    /// Those in force: they lag the sent ones while a Poll Sequence is open (§6.8.3).
    tx_in_force: Duration,
    rx_in_force: Duration,
    polling: bool,
    next_tx: Option<Instant>,
    detect_at: Option<Instant>,
    rng: u64,
    out: VecDeque<Packet>,
    events: VecDeque<Transition>,
    /// When the state last changed.
    pub since: Option<Instant>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Session {
    /// A session in state Down with this discriminator (unique and non-zero on the system);
    /// `seed` feeds the jitter.
    pub fn new(now: Instant, cfg: Config, local_discriminator: u32, seed: u64) -> Session {
        let tx = cfg.transmit_interval.max(SLOW);
        Session {
            cfg,
            state: State::Down,
            diag: Diag::NONE,
            local_discriminator,
            remote_discriminator: 0,
            remote_state: State::Down,
            remote_demand: false,
            // §6.8.1: 1 µs until the neighbor says otherwise.
            remote_min_rx: Duration::from_micros(1),
            remote_desired_tx: Duration::ZERO,
            remote_mult: 0,
            desired_tx: tx,
            required_rx: cfg.receive_interval,
            tx_in_force: tx,
            rx_in_force: cfg.receive_interval,
            polling: false,
            next_tx: (!cfg.passive).then_some(now),
            detect_at: None,
            rng: seed | 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
            since: Some(now),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// Why the session last went Down (no diagnostic once it is Up).
    pub fn diag(&self) -> Diag {
        self.diag
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_discriminator
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discriminator
    }

    /// The detection time in force (§6.8.4); `None` before the neighbor has said its rates.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_mult > 0).then(|| self.rx_in_force.max(self.remote_desired_tx) * u32::from(self.remote_mult))
    }

    /// The transmit interval in force, before jitter.
    pub fn transmit_interval(&self) -> Duration {
        self.tx_in_force.max(self.remote_min_rx)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Packet> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Transition> {
        self.events.pop_front()
    }

    /// New rates: announced with a Poll Sequence, in force as §6.8.3 allows.
    pub fn set_config(&mut self, now: Instant, cfg: Config) {
        let passive_changed = cfg.passive != self.cfg.passive;
        self.cfg = cfg;
        self.set_rates(now);
        if passive_changed && !cfg.passive && self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
    }

    /// Stops the session: AdminDown, announced in one last packet (§6.8.16).
    pub fn admin_down(&mut self, now: Instant) {
        if self.state == State::AdminDown {
            return;
        }
        self.transition(now, State::AdminDown, Diag::ADMINISTRATIVELY_DOWN);
        self.out.push_back(self.packet(false));
        self.next_tx = None;
        self.detect_at = None;
    }

    /// A packet addressed to this session (§6.8.6, after the checks of [`Packet::decode`]
    /// and the demultiplexing).
    pub fn handle_packet(&mut self, now: Instant, p: &Packet) {
        if self.state == State::AdminDown {
            return;
        }
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discriminator {
            return;
        }
        self.remote_discriminator = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_demand = p.demand;
        self.remote_desired_tx = Duration::from_micros(u64::from(p.desired_min_tx));
        self.remote_mult = p.detect_mult;
        let min_rx = Duration::from_micros(u64::from(p.required_min_rx));
        let was_faster = min_rx < self.remote_min_rx;
        self.remote_min_rx = min_rx;
        if p.final_ && self.polling {
            self.polling = false;
            self.tx_in_force = self.desired_tx;
            self.rx_in_force = self.required_rx;
        }
        match (self.state, p.state) {
            (s, State::AdminDown) if s != State::Down => {
                self.transition(now, State::Down, Diag::NEIGHBOR_SIGNALED_DOWN)
            }
            (State::Down, State::Down) => self.transition(now, State::Init, Diag::NONE),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                self.transition(now, State::Up, Diag::NONE)
            }
            (State::Up, State::Down) => self.transition(now, State::Down, Diag::NEIGHBOR_SIGNALED_DOWN),
            _ => {}
        }
        if p.poll {
            self.out.push_back(self.packet(true));
        }
        // The neighbor asked for packets (again), or faster: the next one need not wait.
        if min_rx.is_zero() {
            self.next_tx = None;
        } else {
            let soonest = now + self.jittered(self.transmit_interval());
            match self.next_tx {
                None => self.next_tx = Some(now),
                Some(t) if was_faster || t > soonest => self.next_tx = Some(soonest.min(t)),
                Some(_) => {}
            }
        }
        self.detect_at = self.detection_time().map(|d| now + d);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.detect_at.is_some_and(|t| t <= now) {
            self.detect_at = None;
            self.remote_discriminator = 0;
            self.remote_state = State::Down;
            if matches!(self.state, State::Init | State::Up) {
                self.transition(now, State::Down, Diag::DETECTION_TIME_EXPIRED);
            }
        }
        if let Some(t) = self.next_tx.filter(|t| *t <= now) {
            // A passive session waits for the neighbor's first packet (§6.8.7).
            let silent = self.remote_demand || (self.cfg.passive && self.remote_discriminator == 0);
            if !silent {
                self.out.push_back(self.packet(false));
            }
            let next = t + self.jittered(self.transmit_interval());
            self.next_tx = Some(if next <= now { now + self.jittered(self.transmit_interval()) } else { next });
        }
    }

    fn transition(&mut self, now: Instant, to: State, diag: Diag) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.diag = diag;
        self.since = Some(now);
        self.events.push_back(Transition { from, to, diag });
        if to != State::AdminDown {
            self.set_rates(now);
        }
    }

    /// Applies the rates for the current state and configuration (§6.8.3).
    fn set_rates(&mut self, now: Instant) {
        let desired =
            if self.state == State::Up { self.cfg.transmit_interval } else { self.cfg.transmit_interval.max(SLOW) };
        let required = self.cfg.receive_interval;
        if desired == self.desired_tx && required == self.required_rx {
            return;
        }
        let up = self.state == State::Up;
        // Slower sending, or a shorter detection time, waits for the neighbor's Final.
        if !(up && desired > self.tx_in_force) {
            self.tx_in_force = desired;
        }
        if !(up && required < self.rx_in_force) {
            self.rx_in_force = required;
        }
        self.desired_tx = desired;
        self.required_rx = required;
        self.polling = true;
        if let Some(t) = self.next_tx {
            self.next_tx = Some(t.min(now + self.jittered(self.transmit_interval())));
        }
        self.detect_at = self.detect_at.and(self.detection_time().map(|d| now + d));
    }

    fn packet(&self, final_: bool) -> Packet {
        Packet {
            diag: self.diag,
            state: self.state,
            poll: self.polling && !final_,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.cfg.detect_multiplier,
            my_discriminator: self.local_discriminator,
            your_discriminator: self.remote_discriminator,
            desired_min_tx: micros(self.desired_tx),
            required_min_rx: micros(self.required_rx),
            required_min_echo_rx: 0,
        }
    }

    /// `d` less 0–25 % (10–25 % with a Detect Mult of 1), §6.8.7.
    fn jittered(&mut self, d: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let (lo, span) = if self.cfg.detect_multiplier == 1 { (10, 15) } else { (0, 25) };
        let cut = lo + (self.rng % (span + 1));
        d * (100 - cut as u32) / 100
    }
}

#[cfg(test)]
mod tests;
