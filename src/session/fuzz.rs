//! The fuzzing oracle: structured, mutated messages ([`crate::wire::mutate`]) go through the
//! decoder under several contexts and into an Established peer core, and every outcome must be
//! one the RFCs allow:
//!
//! - the decoder returns a message (an UPDATE may carry RFC 7606 actions) or an error whose
//!   code is a NOTIFICATION error code (1 to 6, RFC 4271 §4.5, or 7, RFC 7313 §5);
//! - the core never panics, and when it ends the session it has sent a NOTIFICATION first
//!   (RFC 4271 §6: every error is reported before the connection closes), unless what
//!   ended it was the peer's own NOTIFICATION, which gets no answer.
//!
//! [`run`] tallies what was reached, so a run shows that it gets past the header: the bounded
//! run in the tests asserts a spread of errors, the long run (`examples/fuzz_wire.rs`) prints it.

use super::config::{PeerKey, PeerSettings, SessionConfig};
use super::fsm::{ConnId, State};
use super::peer::{Io, Peer};
use crate::wire::capability::Capability;
use crate::wire::header::{self, MAX_EXTENDED_LEN};
use crate::wire::mutate::{self, Rng, Shape};
use crate::wire::{self, Ctx, Family, Message, Open, Rfc7606Action};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// What a run reached.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub inputs: u64,
    /// Decoded without error, by message type number.
    pub decoded: BTreeMap<u8, u64>,
    /// UPDATEs decoded with RFC 7606 errors, by action.
    pub rfc7606: BTreeMap<&'static str, u64>,
    /// Decode errors, by (code, subcode).
    pub errors: BTreeMap<(u8, u8), u64>,
    /// Sessions the core ended (always with a NOTIFICATION first, or it is a violation).
    pub core_resets: u64,
    /// NOTIFICATIONs the core sent, by (code, subcode): errors found beyond the decoder (the
    /// FSM, the OPEN's negotiation).
    pub sent: BTreeMap<(u8, u8), u64>,
    /// Outcomes the RFCs do not allow; empty in a good run.
    pub violations: Vec<String>,
}

impl Tally {
    fn violation(&mut self, what: String) {
        if self.violations.len() < 20 {
            self.violations.push(what);
        }
    }

    pub fn render(&self) -> String {
        let mut s = format!("{} inputs, {} violations\n", self.inputs, self.violations.len());
        s += &format!("decoded by type: {:?}\n", self.decoded);
        s += &format!("RFC 7606 actions: {:?}\n", self.rfc7606);
        s += &format!("core resets (each after a NOTIFICATION): {}\n", self.core_resets);
        s += &format!("NOTIFICATIONs the core sent: {:?}\n", self.sent);
        s += &format!("decode errors ({} distinct code/subcode):\n", self.errors.len());
        for ((c, sc), n) in &self.errors {
            s += &format!("  {c}/{sc} {}: {n}\n", crate::wire::error::describe(*c, *sc));
        }
        for v in &self.violations {
            s += &format!("VIOLATION: {v}\n");
        }
        s
    }
}

const LOCAL: &str = "10.0.5.11";
const PEER: &str = "10.0.5.1";

/// A core whose connection is up and whose OPEN is sent: the state an OPEN from the peer
/// meets.
fn open_sent(now: Instant) -> (Peer, ConnId) {
    let local = LOCAL.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST);
    let peer: std::net::Ipv4Addr = PEER.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST);
    let settings = PeerSettings {
        session: SessionConfig::new(65005, 65005, local),
        address: peer.into(),
        port: 179,
        ttl: None,
        min_ttl: None,
        local_address: None,
        auth: Default::default(),
        max_received_routes: 1000,
        over_max_received: Default::default(),
        bfd: None,
    };
    let mut core = Peer::new(PeerKey { local_asn: 65005, address: peer.into() }, settings, 1);
    core.start(now, None);
    let conn = core.connected(now, false, SocketAddr::new(local.into(), 40179), None);
    while core.poll_io().is_some() {}
    (core, conn)
}

/// A core with an Established session, and its connection.
fn established(now: Instant) -> (Peer, ConnId) {
    let peer: std::net::Ipv4Addr = PEER.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST);
    let (mut core, conn) = open_sent(now);
    let caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::Multiprotocol(Family::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
        Capability::FourOctetAs(65005),
        Capability::ExtendedMessage,
    ];
    let open = Message::Open(Open::new(65005, 90, peer, caps));
    for m in [open, Message::Keepalive] {
        if let Ok(b) = wire::to_bytes(&m, &Ctx::default()) {
            core.handle_frame(now, conn, &b);
        }
    }
    while core.poll_io().is_some() {}
    (core, conn)
}

/// Runs `n` generated inputs from `seed` through the decoder and the core.
pub fn run(seed: u64, n: u64) -> Tally {
    let mut t = Tally::default();
    let mut r = Rng::new(seed);
    let now = Instant::now();
    let (mut core, mut conn) = established(now);
    for _ in 0..n {
        t.inputs += 1;
        let shape = Shape { four_octet_as: !r.one_in(4), add_path_v4: r.one_in(6) };
        let built = mutate::generate(&mut r, shape);
        let buf = mutate::mutate(&mut r, built);
        let matching = Ctx {
            four_octet_as: shape.four_octet_as,
            max_len: MAX_EXTENDED_LEN,
            add_path_rx: if shape.add_path_v4 { vec![Family::IPV4_UNICAST] } else { vec![] },
            ..Ctx::default()
        };
        let ebgp = Ctx { ebgp: true, max_len: header::MAX_LEN, ..matching.clone() };
        for (i, ctx) in [matching, ebgp].iter().enumerate() {
            match wire::decode(&buf, ctx) {
                Ok(m) if i == 0 => {
                    *t.decoded.entry(m.kind().to_u8()).or_default() += 1;
                    if let Message::Update(u) = &m {
                        for e in &u.errors {
                            let a = match e.action {
                                Rfc7606Action::TreatAsWithdraw => "treat-as-withdraw",
                                Rfc7606Action::AttributeDiscard => "attribute-discard",
                            };
                            *t.rfc7606.entry(a).or_default() += 1;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    // 1 to 6 (RFC 4271 §4.5) and 7, ROUTE-REFRESH Message Error (RFC 7313 §5).
                    if !(1..=7).contains(&e.code) {
                        t.violation(format!(
                            "decode error {}/{} is not a NOTIFICATION code: {buf:02x?}",
                            e.code, e.subcode
                        ));
                    }
                    if i == 0 {
                        *t.errors.entry((e.code, e.subcode)).or_default() += 1;
                    }
                }
            }
        }
        // The core, framed as the driver frames: a bad header goes in as such. An OPEN goes
        // to a core that waits for one (to an Established one it is only an FSM error).
        let is_open = mutate::claimed_type(&buf) == Some(crate::wire::header::MessageType::Open);
        let (mut fresh, fresh_conn) = if is_open {
            let (p, c) = open_sent(now);
            (Some(p), c)
        } else {
            (None, conn)
        };
        let target = fresh.as_mut().unwrap_or(&mut core);
        match header::peek_header(&buf, MAX_EXTENDED_LEN) {
            Ok(Some(h)) if h.len == buf.len() => target.handle_frame(now, fresh_conn, &buf),
            Ok(_) => continue, // the driver would wait for more octets
            Err(e) => target.handle_invalid(now, fresh_conn, e),
        }
        let mut notified = false;
        let mut closed = false;
        while let Some(io) = target.poll_io() {
            match io {
                Io::Send { bytes, .. } => {
                    if bytes.get(18) == Some(&3) {
                        notified = true;
                        if let (Some(c), Some(sc)) = (bytes.get(19), bytes.get(20)) {
                            *t.sent.entry((*c, *sc)).or_default() += 1;
                        }
                    }
                }
                Io::Close { .. } => closed = true,
                Io::Connect | Io::CancelConnect | Io::Bfd(_) => {}
            }
        }
        if fresh.is_some() {
            if closed && !notified {
                t.violation(format!("the core refused an OPEN without a NOTIFICATION: {buf:02x?}"));
            }
            continue;
        }
        if closed || core.state() != State::Established {
            t.core_resets += 1;
            // A NOTIFICATION from the peer ends the session with no answer (RFC 4271 §6.4).
            if !notified && mutate::claimed_type(&buf) != Some(crate::wire::header::MessageType::Notification) {
                t.violation(format!("the core ended the session without a NOTIFICATION: {buf:02x?}"));
            }
            (core, conn) = established(now);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bounded run of CI: a few tens of thousands of inputs, no violation, and proof that
    /// the inputs reach past the header into the OPEN, UPDATE and attribute checks.
    #[test]
    fn structured_inputs_reach_every_error_path_and_break_no_rule() {
        let t = run(0x6b62_6770, 40_000);
        assert!(t.violations.is_empty(), "{}", t.render());
        // Header (1/x), OPEN (2/x) and UPDATE (3/x) errors, many subcodes of each, as the
        // core reported them to the peer (the decoder's and the OPEN negotiation's).
        let subcodes = |code| t.sent.keys().filter(|(c, _)| *c == code).count();
        assert!(subcodes(1) == 3 && subcodes(2) >= 5 && subcodes(3) >= 5, "{}", t.render());
        assert!(t.sent.contains_key(&(7, 1)), "ROUTE-REFRESH length (RFC 7313 §5): {}", t.render());
        assert!(t.rfc7606.len() == 2, "both RFC 7606 actions: {}", t.render());
        let updates = t.decoded.get(&2).copied().unwrap_or(0);
        assert!(updates > 4_000, "many UPDATEs decode: {}", t.render());
        assert!(t.core_resets > 1_000, "{}", t.render());
    }
}
