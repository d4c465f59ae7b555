//! The peer core driven in memory: against a scripted peer that writes raw messages and
//! reads what kbgp writes, and against a second core. A virtual clock; no socket.

use super::*;
use crate::rib::AdvertAttrs;
use crate::session::SessionConfig;
use crate::wire::capability::Capability;
use crate::wire::header::{self, MAX_EXTENDED_LEN};
use crate::wire::{Open, Update};
use ipnet::IpNet;
use std::net::Ipv4Addr;
use std::sync::Arc;

const KBGP: &str = "10.0.5.11";
const RR: &str = "10.0.5.1";

fn settings(local: &str, peer: &str, passive: bool) -> PeerSettings {
    let mut session = SessionConfig::new(65005, 65005, local.parse().unwrap());
    session.passive = passive;
    PeerSettings {
        session,
        address: peer.parse().unwrap(),
        port: 179,
        ttl: None,
        min_ttl: None,
        local_address: None,
        auth: Default::default(),
        max_received_routes: 100_000,
        over_max_received: Default::default(),
        bfd: None,
    }
}

fn kbgp() -> Peer {
    Peer::new(PeerKey { local_asn: 65005, address: RR.parse().unwrap() }, settings(KBGP, RR, false), 7)
}

fn v4(i: u32) -> IpNet {
    IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x1400_0000 + i), 32).unwrap())
}

fn table(n: u32) -> OutTable {
    let mut t = OutTable::new();
    let a = Arc::new(AdvertAttrs::default());
    for i in 0..n {
        t.upsert(v4(i), &a);
    }
    t
}

/// Splits written octets into messages.
fn frames(mut b: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let h = header::peek_header(b, MAX_EXTENDED_LEN).unwrap().unwrap();
        v.push(&b[..h.len]);
        b = &b[h.len..];
    }
    v
}

/// The negotiated codec context of the test sessions (both offer everything).
fn ctx() -> Ctx {
    Ctx { four_octet_as: true, max_len: MAX_EXTENDED_LEN, ..Ctx::default() }
}

/// kbgp's core and a peer played by the test.
struct Scripted {
    now: Instant,
    kbgp: Peer,
    table: OutTable,
    conn: Option<ConnId>,
    /// Everything kbgp wrote, decoded, in order; UPDATE chunks only while `room` is set.
    got: Vec<Message>,
    room: bool,
    closed: bool,
    /// BFD packets kbgp sent, not yet delivered.
    bfd_out: Vec<bfd::Packet>,
}

impl Scripted {
    fn new(table: OutTable) -> Scripted {
        Scripted::with(table, settings(KBGP, RR, false))
    }

    fn with(table: OutTable, settings: PeerSettings) -> Scripted {
        let kbgp = Peer::new(PeerKey { local_asn: 65005, address: RR.parse().unwrap() }, settings, 7);
        let mut s = Scripted {
            now: Instant::now(),
            kbgp,
            table,
            conn: None,
            got: vec![],
            room: true,
            closed: false,
            bfd_out: vec![],
        };
        s.kbgp.start(s.now, None);
        s.drain();
        s
    }

    /// kbgp's connection comes up and both OPENs and KEEPALIVEs are exchanged.
    fn establish(&mut self) {
        self.establish_offering(true);
    }

    /// As [`Scripted::establish`], the peer offering enhanced route refresh or not.
    fn establish_offering(&mut self, enhanced_refresh: bool) {
        self.establish_with(enhanced_refresh, None);
    }

    /// As [`Scripted::establish`], the peer offering this graceful restart capability.
    fn establish_with(&mut self, enhanced_refresh: bool, gr: Option<crate::wire::capability::GracefulRestart>) {
        let local = SocketAddr::new(KBGP.parse().unwrap(), 40179);
        self.conn = Some(self.kbgp.connected(self.now, false, local, Some("fd00::11".parse().unwrap())));
        self.closed = false;
        let mut caps = vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65005),
            Capability::ExtendedMessage,
        ];
        if enhanced_refresh {
            caps.push(Capability::EnhancedRouteRefresh);
        }
        caps.extend(gr.map(Capability::GracefulRestart));
        self.peer_sends(&Message::Open(Open::new(65005, 90, RR.parse().unwrap(), caps)));
        self.peer_sends(&Message::Keepalive);
        assert_eq!(self.kbgp.state(), State::Established);
    }

    fn peer_sends(&mut self, m: &Message) {
        let c = if matches!(m, Message::Open(_)) { Ctx::default() } else { ctx() };
        let b = wire::to_bytes(m, &c).unwrap();
        self.peer_sends_raw(&b);
    }

    fn peer_sends_raw(&mut self, b: &[u8]) {
        self.kbgp.handle_frame(self.now, self.conn.unwrap(), b);
        self.drain();
    }

    /// Takes everything kbgp wants written, as a driver whose queue has room (or not).
    fn drain(&mut self) {
        loop {
            while let Some(io) = self.kbgp.poll_io() {
                match io {
                    Io::Send { bytes, .. } => self.record(&bytes),
                    Io::Close { .. } => self.closed = true,
                    Io::Bfd(b) => self.bfd_out.push(bfd::Packet::decode(&b).unwrap()),
                    Io::Connect | Io::CancelConnect => {}
                }
            }
            if !self.room {
                break;
            }
            match self.kbgp.poll_updates(self.now, &mut self.table, 64 * 1024, false) {
                Some((_, b)) => self.record(&b),
                None => break,
            }
        }
    }

    fn record(&mut self, b: &[u8]) {
        for f in frames(b) {
            let c = if self.kbgp.state() == State::Established { ctx() } else { Ctx::default() };
            self.got.push(wire::decode(f, &c).unwrap());
        }
    }

    fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.got)
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.kbgp.handle_timeout(self.now);
        self.drain();
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.kbgp.poll_event()).collect()
    }
}

fn updates(msgs: &[Message]) -> Vec<&Update> {
    msgs.iter().filter_map(|m| if let Message::Update(u) = m { Some(u) } else { None }).collect()
}

fn announced(msgs: &[Message]) -> Vec<IpNet> {
    updates(msgs).iter().flat_map(|u| u.announced()).map(|(_, n)| n.prefix).collect()
}

fn withdrawn(msgs: &[Message]) -> Vec<IpNet> {
    updates(msgs).iter().flat_map(|u| u.withdrawn_all()).map(|(_, n)| n.prefix).collect()
}

fn end_of_ribs(msgs: &[Message]) -> Vec<Family> {
    updates(msgs).iter().filter_map(|u| u.end_of_rib()).collect()
}

#[test]
fn a_new_session_gets_the_table_then_end_of_rib() {
    let mut s = Scripted::new(table(1000));
    assert_eq!(s.take().len(), 0, "no connection yet");
    s.establish();
    let got = s.take();
    assert!(matches!(got[0], Message::Open(_)));
    assert!(matches!(got[1], Message::Keepalive));
    let a = announced(&got);
    assert_eq!(a.len(), 1000);
    assert_eq!(a.iter().collect::<std::collections::BTreeSet<_>>().len(), 1000, "each prefix once");
    // The markers come last, one per negotiated family.
    assert_eq!(end_of_ribs(&got), vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert!(updates(&got).last().unwrap().end_of_rib().is_some());
    assert_eq!(s.kbgp.advertised(Family::IPV4_UNICAST), 1000);
    // Next hop self, iBGP attributes.
    let u = updates(&got)[0];
    assert_eq!(u.attributes.next_hop, Some(KBGP.parse().unwrap()));
    assert_eq!(u.attributes.local_pref, Some(100));
    assert!(!s.kbgp.wants_updates(&s.table));
}

/// Issue 10's liveness bug, at the level of the core: a route removed from the plan while
/// the session is down must neither be sent nor keep the peer busy after the reconnect.
#[test]
fn a_withdrawal_while_down_then_a_reconnect_ends_with_end_of_rib() {
    let mut s = Scripted::new(table(10));
    s.establish();
    assert_eq!(announced(&s.take()).len(), 10);
    s.kbgp.handle_closed(s.now, s.conn.unwrap());
    s.drain();
    assert_eq!(s.kbgp.state(), State::Idle);
    assert!(s.events().contains(&Event::Down));
    // The plan loses a route while the session is down.
    s.table.remove(&v4(3));
    s.table.collect(s.table.version());
    assert!(!s.kbgp.wants_updates(&s.table), "no session: nothing to do");
    s.advance(Duration::from_secs(5));
    s.establish();
    let got = s.take();
    let a = announced(&got);
    assert_eq!(a.len(), 9);
    assert!(!a.contains(&v4(3)));
    assert!(withdrawn(&got).is_empty(), "the new session never had it");
    assert_eq!(end_of_ribs(&got).len(), 2);
    assert!(!s.kbgp.wants_updates(&s.table), "up to date: no busy loop");
    assert!(s.kbgp.poll_updates(s.now, &mut s.table, 65536, false).is_none());
}

#[test]
fn an_add_then_remove_between_two_flushes_sends_nothing() {
    let mut s = Scripted::new(table(2));
    s.establish();
    s.take();
    let a = Arc::new(AdvertAttrs::default());
    s.table.upsert(v4(50), &a);
    s.table.remove(&v4(50));
    s.table.upsert(v4(60), &a);
    s.drain();
    let got = s.take();
    assert_eq!(announced(&got), vec![v4(60)]);
    assert!(withdrawn(&got).is_empty());
}

#[test]
fn route_refresh_sends_the_table_again() {
    let mut s = Scripted::new(table(5));
    s.establish();
    s.take();
    // Enhanced route refresh was negotiated: BoRR, the table, EoRR (RFC 7313 §4).
    s.peer_sends(&Message::RouteRefresh(RouteRefresh {
        family: Family::IPV4_UNICAST,
        subtype: RefreshSubtype::Request,
    }));
    let got = s.take();
    let kinds: Vec<_> = got
        .iter()
        .map(|m| match m {
            Message::RouteRefresh(r) => format!("{:?}", r.subtype),
            Message::Update(u) => format!("update {}", u.nlri.len()),
            m => format!("{:?}", m.kind()),
        })
        .collect();
    assert_eq!(kinds, vec!["BeginOfRouteRefresh", "update 5", "EndOfRouteRefresh"]);
    assert_eq!(s.kbgp.advertised(Family::IPV4_UNICAST), 5, "the routes are counted once");
    // A family the session did not negotiate is ignored.
    let other = Family::new(crate::wire::Afi::Ipv4, crate::wire::Safi::Multicast);
    s.peer_sends(&Message::RouteRefresh(RouteRefresh { family: other, subtype: RefreshSubtype::Request }));
    assert!(s.take().is_empty());
}

#[test]
fn a_new_table_goes_out_whole_between_borr_and_eorr() {
    // The export group changed (new path attributes), the session did not: the peer gets the
    // new table, bracketed so that it drops what is not sent again.
    let mut s = Scripted::new(table(5));
    s.establish();
    s.take();
    s.table = table(3);
    assert!(!s.kbgp.table_replaced(s.now));
    s.drain();
    let got = s.take();
    let kinds: Vec<_> = got
        .iter()
        .map(|m| match m {
            Message::RouteRefresh(r) => format!("{:?} {}", r.subtype, r.family),
            Message::Update(u) => format!("update {}", u.nlri.len()),
            m => format!("{:?}", m.kind()),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "BeginOfRouteRefresh ipv4-unicast",
            "BeginOfRouteRefresh ipv6-unicast",
            "update 3",
            "EndOfRouteRefresh ipv4-unicast",
            "EndOfRouteRefresh ipv6-unicast"
        ]
    );
    assert_eq!(s.kbgp.advertised(Family::IPV4_UNICAST), 3);
    assert_eq!(s.kbgp.state(), State::Established);
    // Without enhanced route refresh the peer cannot be told to forget: the session restarts.
    let mut s = Scripted::new(table(5));
    s.establish_offering(false);
    s.take();
    s.table = table(3);
    assert!(s.kbgp.table_replaced(s.now));
    assert_ne!(s.kbgp.state(), State::Established);
}

#[test]
fn plain_route_refresh_sends_the_table_without_borr_or_eorr() {
    // RFC 2918 alone: the table again, nothing around it (BoRR/EoRR are RFC 7313's).
    let mut s = Scripted::new(table(5));
    s.establish_offering(false);
    assert_eq!(announced(&s.take()).len(), 5);
    s.peer_sends(&Message::RouteRefresh(RouteRefresh {
        family: Family::IPV4_UNICAST,
        subtype: RefreshSubtype::Request,
    }));
    let got = s.take();
    assert!(!got.iter().any(|m| matches!(m, Message::RouteRefresh(_))), "{got:?}");
    assert_eq!(announced(&got).len(), 5, "{got:?}");
    assert_eq!(s.kbgp.advertised(Family::IPV4_UNICAST), 5, "the routes are counted once");
}

#[test]
fn a_soft_reset_resends_and_asks_for_the_peers_routes() {
    let mut s = Scripted::new(table(3));
    let t = OutTable::new();
    assert!(s.kbgp.reset(s.now, true, &t).unwrap_err().contains("not Established"));
    s.establish();
    s.take();
    let msg = s.kbgp.reset(s.now, true, &s.table).unwrap();
    assert_eq!(msg, "sending all 3 routes again; asked the peer for its routes again");
    s.drain();
    let got = s.take();
    let refresh: Vec<_> =
        got.iter().filter_map(|m| if let Message::RouteRefresh(r) = m { Some(r.family) } else { None }).collect();
    assert_eq!(refresh, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert_eq!(announced(&got).len(), 3);
    assert_eq!(s.kbgp.state(), State::Established, "a soft reset keeps the session");
}

#[test]
fn a_hard_reset_sends_cease_and_waits_before_connecting_again() {
    let mut s = Scripted::new(table(1));
    s.establish();
    s.take();
    s.kbgp.reset(s.now, false, &s.table).unwrap();
    s.drain();
    let got = s.take();
    assert!(matches!(&got[0], Message::Notification(n) if (n.code, n.subcode) == (6, 4)));
    assert!(s.closed);
    assert_eq!(s.kbgp.fsm().next_attempt(), Some(s.now + RESET_DELAY));
}

/// An UPDATE from the peer announcing 10.1.i.0/24 for i in `range` (ORIGIN, AS_PATH, NEXT_HOP,
/// LOCAL_PREF), as raw octets.
fn raw_update(range: std::ops::Range<u8>) -> Vec<u8> {
    let attrs = [0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 10, 0, 5, 1, 0x40, 5, 4, 0, 0, 0, 100];
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    for i in range {
        body.extend_from_slice(&[24, 10, 1, i]);
    }
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&body);
    m
}

fn limited(max: usize, over: OverLimit) -> PeerSettings {
    PeerSettings { max_received_routes: max, over_max_received: over, ..settings(KBGP, RR, false) }
}

fn attempts(ev: &[Event]) -> usize {
    ev.iter().filter(|e| matches!(e, Event::ConnectAttempt)).count()
}

#[test]
fn past_max_received_routes_drop_keeps_the_session_and_counts() {
    let mut s = Scripted::with(table(0), limited(3, OverLimit::Drop));
    s.establish();
    s.take();
    s.events();
    s.peer_sends_raw(&raw_update(0..5));
    assert_eq!(s.kbgp.state(), State::Established);
    assert_eq!(s.kbgp.rib_in().count(Family::IPV4_UNICAST), 3, "the first three are kept");
    assert!(s.events().contains(&Event::Dropped(2)));
    assert!(!s.take().iter().any(|m| matches!(m, Message::Notification(_))));
}

#[test]
fn past_max_received_routes_cease_sends_6_1_and_connects_again_after_the_restart_time() {
    let restart = Duration::from_secs(30);
    let mut s = Scripted::with(table(0), limited(3, OverLimit::Cease { restart: Some(restart) }));
    s.establish();
    s.take();
    s.events();
    s.peer_sends_raw(&raw_update(0..2));
    assert_eq!(s.kbgp.state(), State::Established, "under the limit");
    s.peer_sends_raw(&raw_update(2..5));
    let got = s.take();
    let n = got
        .iter()
        .find_map(|m| match m {
            Message::Notification(n) => Some(n.clone()),
            _ => None,
        })
        .expect("a NOTIFICATION");
    assert_eq!((n.code, n.subcode), (6, 1));
    assert_eq!(n.max_prefixes_data(), Some((Family::IPV4_UNICAST, 3)), "RFC 4486 §4 data");
    assert!(s.closed);
    assert_ne!(s.kbgp.state(), State::Established);
    assert_eq!(s.kbgp.rib_in().count(Family::IPV4_UNICAST), 0, "the peer's routes are gone with the session");
    s.events();
    s.advance(restart - Duration::from_secs(1));
    assert_eq!(attempts(&s.events()), 0, "no connection before the restart time");
    s.advance(Duration::from_secs(2));
    assert_eq!(attempts(&s.events()), 1, "connecting again after it");
}

#[test]
fn past_max_received_routes_cease_without_restart_stays_down_until_reset() {
    let mut s = Scripted::with(table(0), limited(1, OverLimit::Cease { restart: None }));
    s.establish();
    s.take();
    s.peer_sends_raw(&raw_update(0..2));
    assert!(s.take().iter().any(|m| matches!(m, Message::Notification(n) if (n.code, n.subcode) == (6, 1))));
    s.events();
    s.advance(Duration::from_secs(3600));
    assert_eq!(attempts(&s.events()), 0, "stays down");
    assert_eq!(s.kbgp.state(), State::Idle);
    s.kbgp.reset(s.now, false, &s.table).unwrap();
    s.advance(RESET_DELAY + Duration::from_secs(1));
    assert_eq!(attempts(&s.events()), 1, "kbgp reset brings it back");
}

#[test]
fn a_missing_md5_secret_keeps_the_session_down_and_says_why() {
    let why = "policy p, neighbor 10.0.5.1: authSecretRef bgp-auth: no Secret bgp-auth".to_string();
    let mut s = Scripted::with(
        table(1),
        PeerSettings { auth: crate::session::config::Auth::Missing(why.clone()), ..settings(KBGP, RR, false) },
    );
    s.events();
    s.advance(Duration::from_secs(600));
    assert_eq!(attempts(&s.events()), 0, "never connects without its password");
    assert_eq!(s.kbgp.state(), State::Idle);
    let st = s.kbgp.status(s.now, 0, &s.table);
    assert_eq!(st.last_error.map(|e| e.text), Some(why));
}

#[test]
fn rfc7606_treat_as_withdraw_is_counted_and_withdraws() {
    let mut s = Scripted::new(table(0));
    s.establish();
    s.events();
    // 10.9.0.0/16 from the peer, then the same prefix with a malformed ORIGIN (length 2).
    let good = [0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 10, 0, 5, 1, 0x40, 5, 4, 0, 0, 0, 100];
    let bad = [0x40, 1, 2, 0, 0, 0x40, 2, 0, 0x40, 3, 4, 10, 0, 5, 1, 0x40, 5, 4, 0, 0, 0, 100];
    let update = |attrs: &[u8]| {
        let mut body = vec![0, 0];
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(attrs);
        body.extend_from_slice(&[16, 10, 9]);
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(2);
        m.extend_from_slice(&body);
        m
    };
    s.peer_sends_raw(&update(&good));
    assert_eq!(s.kbgp.rib_in().count(Family::IPV4_UNICAST), 1);
    s.events();
    s.peer_sends_raw(&update(&bad));
    assert_eq!(s.kbgp.state(), State::Established, "RFC 7606: the session survives");
    assert_eq!(s.kbgp.rib_in().count(Family::IPV4_UNICAST), 0, "treated as withdrawn");
    let ev = s.events();
    assert!(ev.contains(&Event::UpdateError(Rfc7606Action::TreatAsWithdraw)), "{ev:?}");
    assert!(ev.contains(&Event::Routes { advertised: [0, 0], received: [0, 0] }), "{ev:?}");
    assert_eq!(s.kbgp.status(s.now, 0, &s.table).messages.updates_received, 2);
}

#[test]
fn a_full_write_queue_never_holds_back_keepalive_or_notification() {
    let mut s = Scripted::new(table(100_000));
    s.room = false;
    s.establish();
    let got = s.take();
    assert!(updates(&got).is_empty(), "the queue is full: no UPDATE produced");
    assert!(s.kbgp.wants_updates(&s.table));
    // The keepalive interval passes: the KEEPALIVE goes out anyway.
    s.advance(Duration::from_secs(31));
    assert_eq!(s.take(), vec![Message::Keepalive]);
    // And a stop sends its NOTIFICATION, then closes.
    s.kbgp.stop(s.now, Notification::cease(wire::error::cease_sub::ADMINISTRATIVE_SHUTDOWN, "shutdown"));
    s.drain();
    let got = s.take();
    assert!(matches!(&got[..], [Message::Notification(n)] if (n.code, n.subcode) == (6, 2)), "{got:?}");
    assert!(s.closed);
}

#[test]
fn a_chunk_is_bounded_and_the_rest_waits_for_room() {
    let mut s = Scripted::new(table(100_000));
    s.room = false;
    s.establish();
    s.take();
    let (_, b) = s.kbgp.poll_updates(s.now, &mut s.table, 64 * 1024, false).unwrap();
    assert!(b.len() < 64 * 1024 + 65536, "one chunk: {} octets", b.len());
    assert!(s.kbgp.wants_updates(&s.table));
    s.room = true;
    s.drain();
    let got = s.take();
    assert_eq!(announced(&got).len() + count_nlri(&b), 100_000);
    assert_eq!(end_of_ribs(&got).len(), 2);
}

fn count_nlri(b: &[u8]) -> usize {
    frames(b).iter().map(|f| announced(&[wire::decode(f, &ctx()).unwrap()]).len()).sum()
}

#[test]
fn update_latency_runs_until_the_change_is_written() {
    let mut s = Scripted::new(table(1));
    s.establish();
    s.take();
    s.events();
    let seen = s.now;
    s.table.upsert(v4(9), &Arc::new(AdvertAttrs::default()));
    s.kbgp.table_changed(s.table.version(), seen);
    s.now += Duration::from_millis(7);
    s.drain();
    let lat: Vec<_> =
        s.events().into_iter().filter_map(|e| if let Event::Latency(d) = e { Some(d) } else { None }).collect();
    assert_eq!(lat, vec![Duration::from_millis(7)]);
}

/// Two cores wired to each other: kbgp announcing from a table the test holds, a passive
/// core receiving.
struct Pair {
    now: Instant,
    a: Peer,
    b: Peer,
    tb: OutTable,
    link: Option<(ConnId, ConnId)>,
}

impl Pair {
    fn new(ta: &mut OutTable) -> Pair {
        let b = Peer::new(PeerKey { local_asn: 65005, address: KBGP.parse().unwrap() }, settings(RR, KBGP, true), 9);
        let mut p = Pair { now: Instant::now(), a: kbgp(), b, tb: OutTable::new(), link: None };
        p.b.start(p.now, None);
        p.a.start(p.now, None);
        p.settle(ta);
        p
    }

    /// Delivers everything both sides write until both are quiet. Like the driver, each side
    /// writes its control messages before its next chunk of UPDATEs.
    fn settle(&mut self, ta: &mut OutTable) {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(io) = self.a.poll_io() {
                moved = true;
                match io {
                    Io::Connect => {
                        let la = SocketAddr::new(KBGP.parse().unwrap(), 40000);
                        let lb = SocketAddr::new(RR.parse().unwrap(), 179);
                        let cb = self.b.connected(self.now, true, lb, None);
                        let ca = self.a.connected(self.now, false, la, None);
                        self.link = Some((ca, cb));
                    }
                    Io::Send { bytes, .. } => self.deliver_to_b(&bytes),
                    Io::Close { .. } => self.cut(),
                    Io::CancelConnect | Io::Bfd(_) => {}
                }
            }
            // Two pairs on one table share their chunks.
            if let Some((_, b)) = self.a.poll_updates(self.now, ta, 64 * 1024, true) {
                moved = true;
                self.deliver_to_b(&b);
            }
            while let Some(io) = self.b.poll_io() {
                moved = true;
                match io {
                    Io::Send { bytes, .. } => self.deliver_to_a(&bytes),
                    Io::Close { .. } => self.cut(),
                    Io::Connect | Io::CancelConnect | Io::Bfd(_) => {}
                }
            }
            if let Some((_, b)) = self.b.poll_updates(self.now, &mut self.tb, 64 * 1024, false) {
                moved = true;
                self.deliver_to_a(&b);
            }
            if !moved {
                return;
            }
        }
        panic!("the pair did not settle");
    }

    fn deliver_to_b(&mut self, bytes: &[u8]) {
        if let Some((_, cb)) = self.link {
            for f in frames(bytes) {
                self.b.handle_frame(self.now, cb, f);
            }
        }
    }

    fn deliver_to_a(&mut self, bytes: &[u8]) {
        if let Some((ca, _)) = self.link {
            for f in frames(bytes) {
                self.a.handle_frame(self.now, ca, f);
            }
        }
    }

    fn cut(&mut self) {
        if let Some((ca, cb)) = self.link.take() {
            self.a.handle_closed(self.now, ca);
            self.b.handle_closed(self.now, cb);
        }
    }
}

#[test]
fn a_second_core_receives_the_table_and_every_change() {
    let mut t = table(2000);
    let mut p = Pair::new(&mut t);
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.b.state(), State::Established);
    assert_eq!(p.b.rib_in().count(Family::IPV4_UNICAST), 2000);
    let got = p.b.received_routes(None);
    assert_eq!(got[0].next_hop, Some(KBGP.parse().unwrap()));
    // Changes: one gone, one new, an IPv6 route with the IPv4-mapped next hop.
    t.remove(&v4(0));
    let lp200 = Arc::new(AdvertAttrs { local_pref: Some(200), ..Default::default() });
    t.upsert("2001:db8::1/128".parse().unwrap(), &lp200);
    p.settle(&mut t);
    assert_eq!(p.b.rib_in().count(Family::IPV4_UNICAST), 1999);
    let v6 = p.b.received_routes(Some(Family::IPV6_UNICAST));
    assert_eq!(v6.len(), 1);
    assert_eq!(v6[0].next_hop, Some("::ffff:10.0.5.11".parse().unwrap()));
    assert_eq!(v6[0].local_pref, Some(200));
    assert_eq!(p.a.advertised(Family::IPV6_UNICAST), 1);
    // The session breaks, the plan changes meanwhile, and the new session is exact.
    p.cut();
    assert_eq!(p.b.rib_in().count(Family::IPV4_UNICAST), 0);
    t.remove(&v4(1));
    p.now += Duration::from_secs(3);
    p.a.handle_timeout(p.now);
    p.settle(&mut t);
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.b.rib_in().count(Family::IPV4_UNICAST), 1998);
    let adv = p.a.advertised_routes(&t, None);
    assert_eq!(adv.len(), 1999);
    assert!(!adv.iter().any(|r| r.prefix == v4(1)));
}

#[test]
fn two_peers_of_one_group_drain_one_table_at_their_own_pace() {
    let mut t = table(500);
    let mut p1 = Pair::new(&mut t);
    let mut p2 = Pair::new(&mut t);
    assert_eq!(p1.b.rib_in().count(Family::IPV4_UNICAST), 500);
    assert_eq!(p2.b.rib_in().count(Family::IPV4_UNICAST), 500);
    t.remove(&v4(7));
    t.upsert(v4(900), &Arc::new(AdvertAttrs::default()));
    p1.settle(&mut t);
    // p2 has not caught up: the tombstone must stay for it.
    t.collect(p1.a.cursor().unwrap().min(p2.a.cursor().unwrap()));
    p2.settle(&mut t);
    for p in [&p1, &p2] {
        assert_eq!(p.b.rib_in().count(Family::IPV4_UNICAST), 500);
        assert!(!p.b.received_routes(None).iter().any(|r| r.prefix == v4(7)), "the withdrawal reached both");
    }
    t.collect(p1.a.cursor().unwrap().min(p2.a.cursor().unwrap()));
    assert_eq!(t.slots(), 501, "the tombstone's slot is free for the next route");
    t.upsert(v4(901), &Arc::new(AdvertAttrs::default()));
    assert_eq!(t.slots(), 501);
}

fn with_bfd() -> PeerSettings {
    let bfd = crate::config::policy::Bfd { session: bfd::Config::default(), multihop: false, min_ttl: 255 };
    PeerSettings { bfd: Some(bfd), ..settings(KBGP, RR, false) }
}

/// kbgp's core with BFD and an Established session, and the peer's BFD session, both Up.
fn bfd_up() -> (Scripted, bfd::Session) {
    let mut s = Scripted::with(table(1), with_bfd());
    s.kbgp.attach_bfd(s.now, 11, 1);
    s.establish();
    let mut remote = bfd::Session::new(s.now, bfd::Config::default(), 22, 2);
    run_bfd(&mut s, &mut remote, Duration::from_secs(4), false);
    assert_eq!(s.kbgp.bfd_session().unwrap().state(), bfd::State::Up);
    assert_eq!(remote.state(), bfd::State::Up);
    let detections: Vec<Event> = s.events().into_iter().filter(|e| matches!(e, Event::BfdDetection(_))).collect();
    assert_eq!(detections.last(), Some(&Event::BfdDetection(Duration::from_millis(900))), "at the fast rate");
    s.take();
    s.events();
    (s, remote)
}

/// Runs both for `d` in 10 ms steps, BFD packets crossing unless `cut`.
fn run_bfd(s: &mut Scripted, remote: &mut bfd::Session, d: Duration, cut: bool) {
    let end = s.now + d;
    while s.now < end {
        s.advance(Duration::from_millis(10));
        remote.handle_timeout(s.now);
        for p in std::mem::take(&mut s.bfd_out) {
            if !cut {
                remote.handle_packet(s.now, &p);
            }
        }
        while let Some(p) = remote.poll_transmit() {
            if !cut {
                s.kbgp.handle_bfd(s.now, false, 255, &p).unwrap();
            }
        }
        s.drain();
    }
}

fn notification(msgs: &[Message]) -> Option<(u8, u8)> {
    msgs.iter().find_map(|m| match m {
        Message::Notification(n) => Some((n.code, n.subcode)),
        _ => None,
    })
}

#[test]
fn bfd_down_ends_the_session_with_cease_6_10_and_holds_it_until_bfd_is_up() {
    let (mut s, mut remote) = bfd_up();
    let cut = s.now;
    run_bfd(&mut s, &mut remote, Duration::from_millis(1200), true);
    let got = s.take();
    assert_eq!(notification(&got), Some((6, 10)), "Cease, BFD Down (RFC 9384)");
    assert!(s.closed && s.kbgp.state() != State::Established);
    let down = s.kbgp.bfd_session().unwrap().since.unwrap();
    assert!(down - cut <= Duration::from_millis(910), "detected {:?} after the cut", down - cut);
    let ev = s.events();
    assert!(ev.contains(&Event::Bfd(bfd::State::Down)));
    // Held: no connection while BFD is Down, until BFD_HOLD at most.
    run_bfd(&mut s, &mut remote, Duration::from_secs(3), true);
    assert_eq!(attempts(&s.events()), 0, "BGP waits for BFD");
    assert_eq!(s.kbgp.fsm().next_attempt(), Some(down + BFD_HOLD));
    let status = s.kbgp.status(s.now, 1000, &s.table).bfd.unwrap();
    assert_eq!((status.state.as_str(), status.down_count), ("Down", 1));
    assert_eq!(status.holding_bgp_seconds, Some(7));
    // The path is back: BFD Up, and BGP connects at once.
    run_bfd(&mut s, &mut remote, Duration::from_secs(3), false);
    assert_eq!(s.kbgp.bfd_session().unwrap().state(), bfd::State::Up);
    assert_eq!(attempts(&s.events()), 1, "connecting as soon as BFD is Up");
    assert_eq!(s.kbgp.status(s.now, 1000, &s.table).bfd.unwrap().holding_bgp_seconds, None);
}

#[test]
fn bfd_that_never_comes_back_releases_bgp_after_the_hold() {
    let (mut s, mut remote) = bfd_up();
    run_bfd(&mut s, &mut remote, BFD_HOLD + Duration::from_secs(2), true);
    assert_eq!(attempts(&s.events()), 1, "tries BGP without BFD after BFD_HOLD");
}

#[test]
fn the_peers_admin_down_is_no_path_failure() {
    let (mut s, mut remote) = bfd_up();
    remote.admin_down(s.now);
    run_bfd(&mut s, &mut remote, Duration::from_secs(2), false);
    assert_eq!(s.kbgp.bfd_session().unwrap().state(), bfd::State::Down);
    assert_eq!(s.kbgp.state(), State::Established, "RFC 5882 §3.2: BGP stays");
    assert_eq!(notification(&s.take()), None);
}

#[test]
fn bfd_packets_below_ttl_255_or_on_the_wrong_port_are_discarded() {
    let (mut s, mut remote) = bfd_up();
    remote.handle_timeout(s.now + Duration::from_secs(1));
    let p = remote.poll_transmit().unwrap();
    assert_eq!(s.kbgp.handle_bfd(s.now, false, 254, &p).unwrap_err().0, "ttl");
    assert_eq!(s.kbgp.handle_bfd(s.now, true, 255, &p).unwrap_err().0, "port");
    assert!(s.kbgp.handle_bfd(s.now, false, 255, &p).is_ok());
}

#[test]
fn retiring_the_peer_says_admin_down() {
    let (mut s, mut remote) = bfd_up();
    s.kbgp.retire(s.now, Notification::cease(wire::error::cease_sub::PEER_DECONFIGURED, ""));
    s.drain();
    let last = s.bfd_out.pop().unwrap();
    assert_eq!((last.state, last.diag), (bfd::State::AdminDown, bfd::Diag::ADMINISTRATIVELY_DOWN));
    remote.handle_packet(s.now, &last);
    assert_eq!((remote.state(), remote.remote_state()), (bfd::State::Down, bfd::State::AdminDown));
    assert_eq!(notification(&s.take()), Some((6, 3)));
}

fn with_gr() -> PeerSettings {
    let mut s = settings(KBGP, RR, false);
    s.session.graceful_restart = Some(120);
    s
}

fn peer_gr(notification: bool) -> Option<crate::wire::capability::GracefulRestart> {
    Some(crate::wire::capability::GracefulRestart {
        restart_state: false,
        notification,
        restart_time: 120,
        families: vec![(Family::IPV4_UNICAST, true)],
    })
}

/// What kbgp sends when it shuts down in `mode`, with graceful restart on its side or not,
/// and the peer's capability: the NOTIFICATION (code, subcode, data), if any.
fn shutdown_says(
    ours: bool,
    theirs: Option<crate::wire::capability::GracefulRestart>,
    mode: Shutdown,
) -> Option<(u8, u8, Vec<u8>)> {
    let mut s = Scripted::with(table(1), if ours { with_gr() } else { settings(KBGP, RR, false) });
    s.establish_with(true, theirs);
    s.take();
    let n = Notification::cease(wire::error::cease_sub::ADMINISTRATIVE_SHUTDOWN, "bye");
    s.kbgp.shutdown(s.now, n, mode);
    s.drain();
    assert!(s.closed, "the connection is closed in every case");
    assert_ne!(s.kbgp.state(), State::Established);
    s.take().into_iter().find_map(|m| match m {
        Message::Notification(n) => Some((n.code, n.subcode, n.data.to_vec())),
        _ => None,
    })
}

#[test]
fn shutdown_keeps_the_routes_at_a_graceful_restart_peer_or_withdraws_them() {
    let cease = Some((6, 2, [&[3u8][..], b"bye"].concat()));
    // Both with the N bit (RFC 8538): the Cease itself is the graceful restart.
    assert_eq!(shutdown_says(true, peer_gr(true), Shutdown::Keep), cease);
    // A helper without the N bit keeps the routes only if no NOTIFICATION comes (RFC 4724 §4.2).
    assert_eq!(shutdown_says(true, peer_gr(false), Shutdown::Keep), None);
    // Withdraw: Hard Reset carrying the Cease, so that an N-bit peer flushes.
    assert_eq!(
        shutdown_says(true, peer_gr(true), Shutdown::Withdraw),
        Some((6, 9, [&[6u8, 2, 3][..], b"bye"].concat()))
    );
    assert_eq!(shutdown_says(true, peer_gr(false), Shutdown::Withdraw), cease, "no N bit: the Cease flushes");
    // kbgp without graceful restart, or the peer without it: a plain Cease in either mode.
    assert_eq!(shutdown_says(false, peer_gr(true), Shutdown::Keep), cease);
    assert_eq!(shutdown_says(true, None, Shutdown::Keep), cease);
}

#[test]
fn after_a_restart_the_first_open_sets_the_restart_state_bit_and_later_ones_do_not() {
    let open_r = |s: &mut Scripted| {
        s.take().into_iter().find_map(|m| match m {
            Message::Open(o) => o.capabilities.iter().find_map(|c| match c {
                Capability::GracefulRestart(g) => Some(g.restart_state),
                _ => None,
            }),
            _ => None,
        })
    };
    let mut s = Scripted::with(table(1), with_gr());
    s.kbgp.set_restarting(true);
    s.establish_with(true, peer_gr(true));
    assert_eq!(open_r(&mut s), Some(true), "R: kbgp restarted");
    s.kbgp.reset(s.now, false, &s.table).unwrap();
    s.drain();
    s.take();
    s.establish_with(true, peer_gr(true));
    assert_eq!(open_r(&mut s), Some(false), "a later session of the same run is no restart");
}

/// The End-of-RIB of IPv4 unicast: an empty UPDATE.
const EOR_V4: [u8; 23] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 23, 2, 0, 0, 0,
    0,
];

fn restarting_peer(forwarding: bool) -> Option<crate::wire::capability::GracefulRestart> {
    Some(crate::wire::capability::GracefulRestart {
        restart_state: false,
        notification: true,
        restart_time: 120,
        families: vec![(Family::IPV4_UNICAST, forwarding)],
    })
}

/// A session with a graceful-restart peer that sent routes 10.1.0-2.0/24.
fn helper_session(ours: bool, theirs: Option<crate::wire::capability::GracefulRestart>) -> Scripted {
    let mut s = Scripted::with(table(1), if ours { with_gr() } else { settings(KBGP, RR, false) });
    s.establish_with(true, theirs);
    s.peer_sends_raw(&raw_update(0..3));
    assert_eq!(s.kbgp.rib_in().count(Family::IPV4_UNICAST), 3);
    s
}

#[test]
fn a_restarting_peers_routes_stay_stale_until_its_end_of_rib() {
    let mut s = helper_session(false, restarting_peer(true));
    let conn = s.conn.unwrap();
    s.kbgp.handle_closed(s.now, conn);
    assert_eq!((s.kbgp.rib_in().len(), s.kbgp.rib_in().stale_count()), (3, 3), "kept, stale");
    let st = s.kbgp.status(s.now, 1000, &s.table);
    assert_eq!(st.received_stale, 3);
    assert!(st.peer_restarting.unwrap().contains("kept as stale for 120 s"));
    s.advance(Duration::from_secs(100));
    assert_eq!(s.kbgp.rib_in().len(), 3, "within the restart time");
    // Back, with forwarding state kept: one route again, then End-of-RIB.
    s.establish_with(true, restarting_peer(true));
    assert_eq!(s.kbgp.rib_in().stale_count(), 3, "stale until End-of-RIB");
    s.peer_sends_raw(&raw_update(1..2));
    assert_eq!(s.kbgp.rib_in().stale_count(), 2);
    s.peer_sends_raw(&EOR_V4);
    assert_eq!((s.kbgp.rib_in().len(), s.kbgp.rib_in().stale_count()), (1, 0), "what was not sent again is gone");
    assert!(s.kbgp.status(s.now, 1000, &s.table).peer_restarting.is_none());
}

#[test]
fn stale_routes_go_when_the_restart_time_passes_or_forwarding_was_lost() {
    let mut s = helper_session(false, restarting_peer(true));
    let conn = s.conn.unwrap();
    s.kbgp.handle_closed(s.now, conn);
    s.advance(Duration::from_secs(121));
    assert!(s.kbgp.rib_in().is_empty(), "the peer did not come back in its restart time");
    let mut s = helper_session(false, restarting_peer(true));
    let conn = s.conn.unwrap();
    s.kbgp.handle_closed(s.now, conn);
    s.establish_with(true, restarting_peer(false));
    assert!(s.kbgp.rib_in().is_empty(), "back without the F bit: nothing kept");
}

#[test]
fn after_a_notification_routes_stay_only_with_the_n_bit_both_ways_and_no_hard_reset() {
    let notify = |s: &mut Scripted, sub: u8| {
        s.peer_sends(&Message::Notification(Notification::cease(sub, "")));
        s.kbgp.rib_in().len()
    };
    let mut s = helper_session(false, restarting_peer(true));
    assert_eq!(notify(&mut s, 2), 0, "kbgp without graceful restart offered no N bit: flushed");
    let mut s = helper_session(true, restarting_peer(true));
    assert_eq!(notify(&mut s, 2), 3, "N bit both ways: a Cease is a restart (RFC 8538)");
    let mut s = helper_session(true, restarting_peer(true));
    assert_eq!(notify(&mut s, wire::error::cease_sub::HARD_RESET), 0, "Hard Reset flushes");
    let mut s = helper_session(true, None);
    let conn = s.conn.unwrap();
    s.kbgp.handle_closed(s.now, conn);
    assert_eq!(s.kbgp.rib_in().len(), 0, "a peer without the capability is no restarting peer");
}

#[test]
fn long_lived_graceful_restart_keeps_routes_past_the_restart_time() {
    let mut s = Scripted::with(table(1), settings(KBGP, RR, false));
    // The peer offers LLGR: its OPEN carries capability 71 with a 1000 s stale time.
    let mut gr = restarting_peer(true).unwrap();
    gr.restart_time = 30;
    let local = SocketAddr::new(KBGP.parse().unwrap(), 40179);
    s.conn = Some(s.kbgp.connected(s.now, false, local, None));
    let caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::FourOctetAs(65005),
        Capability::GracefulRestart(gr),
        Capability::LongLivedGracefulRestart(vec![crate::wire::capability::LongLived {
            family: Family::IPV4_UNICAST,
            forwarding: true,
            stale_time: 1000,
        }]),
    ];
    s.peer_sends(&Message::Open(Open::new(65005, 90, RR.parse().unwrap(), caps)));
    s.peer_sends(&Message::Keepalive);
    assert_eq!(s.kbgp.state(), State::Established);
    s.peer_sends_raw(&raw_update(0..2));
    let conn = s.conn.unwrap();
    s.kbgp.handle_closed(s.now, conn);
    s.advance(Duration::from_secs(31));
    assert_eq!(s.kbgp.rib_in().len(), 2, "past the restart time: long-lived stale");
    assert!(s.kbgp.status(s.now, 1000, &s.table).peer_restarting.unwrap().contains("long-lived"));
    s.advance(Duration::from_secs(1000));
    assert!(s.kbgp.rib_in().is_empty(), "the long-lived stale time ran out");
}

#[test]
fn kbgp_offers_long_lived_graceful_restart_when_configured() {
    let mut cfg = with_gr().session;
    cfg.long_lived_stale_time = Some(86400);
    let o = crate::session::negotiate::our_open(&cfg, false);
    let llgr = o.capabilities.iter().find_map(|c| match c {
        Capability::LongLivedGracefulRestart(v) => Some(v.clone()),
        _ => None,
    });
    assert_eq!(llgr.unwrap().iter().map(|l| (l.stale_time, l.forwarding)).collect::<Vec<_>>(), vec![(86400, true); 2]);
}
