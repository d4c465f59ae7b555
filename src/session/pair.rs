//! Two FSMs wired to each other through an in-memory network, with a virtual clock. Every
//! message goes through the real codec (encode, then decode) on its way across.

use super::*;
use crate::wire::{self, Message};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

pub struct Pair {
    pub a: Fsm,
    pub b: Fsm,
    pub now: Instant,
    next_conn: u64,
    /// (side, conn) -> (other side's conn)
    links: BTreeMap<(Side, ConnId), ConnId>,
    /// Events in flight: delivered in order.
    wire: VecDeque<(Side, Input)>,
    /// Everything each side emitted, for assertions.
    pub log: Vec<(Side, Output)>,
    /// Drop connection attempts from this side (peer unreachable).
    pub unreachable: Option<Side>,
    /// Connections each side initiated.
    pub outbound: Vec<(Side, ConnId)>,
    /// Every connection ever made: (initiator's id, acceptor's id).
    pub made: Vec<(ConnId, ConnId)>,
}

impl Pair {
    pub fn new(a: SessionConfig, b: SessionConfig) -> Pair {
        Pair {
            a: Fsm::new(a, 1),
            b: Fsm::new(b, 2),
            now: Instant::now(),
            next_conn: 1,
            links: BTreeMap::new(),
            wire: VecDeque::new(),
            log: Vec::new(),
            unreachable: None,
            outbound: Vec::new(),
            made: Vec::new(),
        }
    }

    pub fn fsm(&mut self, s: Side) -> &mut Fsm {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Starts both sides at the same instant (their connections cross).
    pub fn start_both(&mut self) {
        self.wire.push_back((Side::A, Input::Start));
        self.wire.push_back((Side::B, Input::Start));
        self.settle();
    }

    pub fn input(&mut self, s: Side, i: Input) {
        self.wire.push_back((s, i));
        self.settle();
    }

    /// Whether two connection ids are the two ends of one connection.
    pub fn same_connection(&self, x: ConnId, y: ConnId) -> bool {
        self.made.iter().any(|&(a, b)| (a, b) == (x, y) || (b, a) == (x, y))
    }

    /// Establishes one connection from `from` to the other side.
    fn connect(&mut self, from: Side) {
        if self.unreachable == Some(from) {
            self.wire.push_back((from, Input::ConnectFailed("connection refused".into())));
            return;
        }
        let c1 = ConnId(self.next_conn);
        let c2 = ConnId(self.next_conn + 1);
        self.next_conn += 2;
        self.outbound.push((from, c1));
        self.made.push((c1, c2));
        self.links.insert((from, c1), c2);
        self.links.insert((from.other(), c2), c1);
        self.wire.push_back((from, Input::Connected { conn: c1, inbound: false }));
        self.wire.push_back((from.other(), Input::Connected { conn: c2, inbound: true }));
    }

    /// Delivers everything in flight until both sides are quiet.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            let now = self.now;
            if let Some((s, i)) = self.wire.pop_front() {
                self.fsm(s).handle(now, i);
            }
            let mut any = false;
            for s in [Side::A, Side::B] {
                while let Some(o) = self.fsm(s).poll_output() {
                    any = true;
                    self.route(s, &o);
                    self.log.push((s, o));
                }
            }
            if !any && self.wire.is_empty() {
                return;
            }
        }
        panic!("pair did not settle");
    }

    fn route(&mut self, s: Side, o: &Output) {
        match o {
            Output::Connect => self.connect(s),
            Output::Send { conn, msg } => {
                if let Some(&peer_conn) = self.links.get(&(s, *conn)) {
                    let ctx = self.fsm(s).ctx(*conn);
                    let bytes = wire::to_bytes(msg, &ctx).expect("encodes");
                    let peer_ctx = self.fsm(s.other()).ctx(peer_conn);
                    let input = match wire::decode(&bytes, &peer_ctx) {
                        Ok(msg) => Input::Message { conn: peer_conn, msg },
                        Err(error) => Input::DecodeError { conn: peer_conn, error },
                    };
                    self.wire.push_back((s.other(), input));
                }
            }
            Output::Close { conn } => {
                if let Some(peer_conn) = self.links.remove(&(s, *conn)) {
                    self.links.remove(&(s.other(), peer_conn));
                    self.wire.push_back((s.other(), Input::Closed { conn: peer_conn }));
                }
            }
            _ => {}
        }
    }

    /// Moves the clock to the next deadline of either side (at most `max` ahead) and runs it.
    pub fn step(&mut self, max: Duration) {
        let limit = self.now + max;
        let next = [self.a.poll_timeout(), self.b.poll_timeout()].into_iter().flatten().min();
        self.now = match next {
            Some(t) if t <= limit => t.max(self.now),
            _ => limit,
        };
        let now = self.now;
        self.a.handle_timeout(now);
        self.b.handle_timeout(now);
        self.settle();
    }

    /// Runs the clock forward by `d`, firing every deadline on the way.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step(end - self.now);
        }
    }

    pub fn sent(&self, s: Side) -> Vec<Message> {
        self.log
            .iter()
            .filter(|(x, _)| *x == s)
            .filter_map(|(_, o)| match o {
                Output::Send { msg, .. } => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn notifications_sent(&self, s: Side) -> Vec<(u8, u8)> {
        self.sent(s)
            .into_iter()
            .filter_map(|m| match m {
                Message::Notification(n) => Some((n.code, n.subcode)),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, s: Side, f: impl Fn(&Output) -> bool) -> usize {
        self.log.iter().filter(|(x, o)| *x == s && f(o)).count()
    }
}
