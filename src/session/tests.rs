//! FSM transitions (RFC 4271 §8) driven with a virtual clock.

use super::pair::{Pair, Side};
use super::*;
use crate::wire::capability::Capability;
use crate::wire::{DecodeError, Family, Message, Notification, Open, Update};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn cfg(local: u32, peer: u32, id: [u8; 4]) -> SessionConfig {
    SessionConfig::new(local, peer, Ipv4Addr::from(id))
}

/// kbgp (A, 10.0.5.11, AS 65005) and its route reflector (B, 10.0.5.1, AS 65005).
fn ibgp() -> (SessionConfig, SessionConfig) {
    (cfg(65005, 65005, [10, 0, 5, 11]), cfg(65005, 65005, [10, 0, 5, 1]))
}

fn up(p: &mut Pair) {
    p.start_both();
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.b.state(), State::Established);
}

fn drain(f: &mut Fsm) -> Vec<Output> {
    std::iter::from_fn(|| f.poll_output()).collect()
}

fn sends(outs: &[Output]) -> Vec<Message> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { msg, .. } => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

fn peer_open(asn: u32, hold: u16, id: [u8; 4]) -> Message {
    Message::Open(Open::new(
        asn,
        hold,
        Ipv4Addr::from(id),
        vec![Capability::Multiprotocol(Family::IPV4_UNICAST), Capability::FourOctetAs(asn)],
    ))
}

const C1: ConnId = ConnId(1);

/// A single FSM brought to OpenSent on connection 1 (outbound).
fn open_sent(c: SessionConfig) -> (Fsm, Instant) {
    let now = Instant::now();
    let mut f = Fsm::new(c, 7);
    f.handle(now, Input::Start);
    assert!(drain(&mut f).contains(&Output::Connect));
    assert_eq!(f.state(), State::Connect);
    f.handle(now, Input::Connected { conn: C1, inbound: false });
    let out = drain(&mut f);
    assert!(matches!(sends(&out)[..], [Message::Open(_)]));
    assert_eq!(f.state(), State::OpenSent);
    (f, now)
}

#[test]
fn active_peer_walks_to_established() {
    let (mut f, now) = open_sent(ibgp().0);
    f.handle(now, Input::Message { conn: C1, msg: peer_open(65005, 90, [10, 0, 5, 1]) });
    let out = drain(&mut f);
    assert_eq!(sends(&out), vec![Message::Keepalive]);
    assert_eq!(f.state(), State::OpenConfirm);
    f.handle(now, Input::Message { conn: C1, msg: Message::Keepalive });
    let out = drain(&mut f);
    assert!(out.iter().any(|o| matches!(o, Output::Established { conn: C1, .. })));
    assert!(out.contains(&Output::StateChanged { from: State::OpenConfirm, to: State::Established }));
    let (conn, n) = f.established().unwrap();
    assert_eq!((conn, n.hold_time, n.keepalive), (C1, 90, 30));
}

#[test]
fn pair_establishes_and_counts_every_state() {
    let (a, b) = ibgp();
    let mut p = Pair::new(a, b);
    up(&mut p);
    // Both sides connected at once: collision detection left exactly one session.
    assert_eq!(p.count(Side::A, |o| matches!(o, Output::Established { .. })), 1);
    assert_eq!(p.count(Side::B, |o| matches!(o, Output::Established { .. })), 1);
    let states: Vec<State> = p
        .log
        .iter()
        .filter_map(|(s, o)| match o {
            Output::StateChanged { to, .. } if *s == Side::A => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(states, vec![State::Connect, State::OpenSent, State::OpenConfirm, State::Established]);
}

#[test]
fn a_peer_that_starts_late_is_accepted_while_waiting_to_retry() {
    let (a, b) = ibgp();
    let mut p = Pair::new(a, b);
    p.input(Side::A, Input::Start);
    // B is not running: it closes A's connection; A waits to retry.
    assert_eq!(p.a.state(), State::Idle);
    assert!(p.a.poll_timeout().is_some());
    p.input(Side::B, Input::Start);
    assert_eq!(p.a.state(), State::Established, "B's connection is accepted during A's backoff");
}

#[test]
fn collision_keeps_the_connection_of_the_higher_identifier() {
    for (a_id, b_id) in [([10, 0, 5, 11], [10, 0, 5, 1]), ([10, 0, 5, 1], [10, 0, 5, 11])] {
        let mut p = Pair::new(cfg(65005, 65005, a_id), cfg(65005, 65005, b_id));
        up(&mut p);
        // Both sides saw the collision and closed the same losing connection with Cease 6/7.
        for s in [Side::A, Side::B] {
            assert_eq!(p.notifications_sent(s), vec![(6, 7)], "{s:?}");
        }
        let (ca, _) = p.a.established().unwrap();
        let (cb, _) = p.b.established().unwrap();
        assert!(p.same_connection(ca, cb), "both kept the same connection");
        // The survivor was initiated by the higher identifier: its `Connected` is outbound there.
        let winner = if a_id > b_id { Side::A } else { Side::B };
        let (conn, _) = p.fsm(winner).established().unwrap();
        assert!(p.outbound.contains(&(winner, conn)), "{winner:?} kept {conn:?}, outbound: {:?}", p.outbound);
    }
}

#[test]
fn hold_timer_expiry_sends_4_0_and_restarts_with_backoff() {
    let (mut a, mut b) = ibgp();
    a.hold_time = 3;
    a.keepalive = 1;
    b.hold_time = 3;
    b.keepalive = 1;
    let mut p = Pair::new(a, b);
    up(&mut p);
    // Keepalives flow every second; nothing expires.
    p.run_for(Duration::from_secs(10));
    assert_eq!(p.a.state(), State::Established);
    let keepalives = p.sent(Side::A).iter().filter(|m| **m == Message::Keepalive).count();
    assert!(keepalives >= 10, "{keepalives}");
    // Freeze B: it stops answering (SIGSTOP), its FSM no longer runs.
    let frozen_at = p.now;
    let mut a_alone = std::mem::replace(&mut p.a, Fsm::new(ibgp().0, 9));
    let expiry = a_alone.poll_timeout().unwrap();
    let mut t = frozen_at;
    let mut outs = Vec::new();
    while t < frozen_at + Duration::from_secs(4) {
        t = a_alone.poll_timeout().unwrap().min(frozen_at + Duration::from_secs(4));
        a_alone.handle_timeout(t);
        outs.extend(drain(&mut a_alone));
        if a_alone.state() == State::Idle {
            break;
        }
    }
    assert!(expiry <= frozen_at + Duration::from_secs(3));
    assert!(sends(&outs).contains(&Message::Notification(Notification::hold_timer_expired())));
    assert!(outs.iter().any(|o| matches!(o, Output::Down { reason: SessionError::HoldTimerExpired })));
    assert_eq!(a_alone.state(), State::Idle);
    // It reconnects by itself after the backoff delay (first delay at most min_retry = 1 s).
    let retry = a_alone.poll_timeout().unwrap();
    assert!(retry <= t + Duration::from_secs(1), "{:?}", retry - t);
    a_alone.handle_timeout(retry);
    assert!(drain(&mut a_alone).contains(&Output::Connect));
}

#[test]
fn keepalives_are_a_third_of_the_hold_time_at_most() {
    let (mut a, b) = ibgp();
    a.hold_time = 9;
    a.keepalive = 30;
    let mut p = Pair::new(a, b);
    up(&mut p);
    assert_eq!(p.a.established().unwrap().1.keepalive, 3);
    let before = p.sent(Side::A).len();
    p.run_for(Duration::from_secs(30));
    let kas = p.sent(Side::A)[before..].iter().filter(|m| **m == Message::Keepalive).count();
    assert_eq!(kas, 10);
}

#[test]
fn update_sent_postpones_the_keepalive() {
    let (mut f, now) = open_sent(ibgp().0);
    f.handle(now, Input::Message { conn: C1, msg: peer_open(65005, 90, [10, 0, 5, 1]) });
    f.handle(now, Input::Message { conn: C1, msg: Message::Keepalive });
    drain(&mut f);
    let first = f.poll_timeout().unwrap();
    assert_eq!(first, now + Duration::from_secs(30));
    f.handle(now + Duration::from_secs(20), Input::UpdateSent);
    assert_eq!(f.poll_timeout().unwrap(), now + Duration::from_secs(50));
}

#[test]
fn connect_failure_backs_off_then_retries() {
    let (a, b) = ibgp();
    let mut p = Pair::new(a, b);
    p.unreachable = Some(Side::A);
    p.input(Side::A, Input::Start);
    assert_eq!(p.a.state(), State::Active);
    assert!(matches!(p.a.last_error(), Some(SessionError::ConnectFailed(_))));
    // Attempts at ~1, 2, 4, 8 s (jittered down by at most 25%).
    let start = p.now;
    p.run_for(Duration::from_secs(16));
    let attempts = p.count(Side::A, |o| *o == Output::Connect);
    assert!((4..=6).contains(&attempts), "{attempts} attempts in {:?}", p.now - start);
    // The peer comes back: next attempt succeeds.
    p.unreachable = None;
    p.input(Side::B, Input::Start);
    assert_eq!(p.a.state(), State::Established);
}

#[test]
fn connect_attempt_times_out_after_connect_retry() {
    let mut c = ibgp().0;
    c.connect_retry = Duration::from_secs(5);
    let now = Instant::now();
    let mut f = Fsm::new(c, 1);
    f.handle(now, Input::Start);
    drain(&mut f);
    assert_eq!(f.poll_timeout(), Some(now + Duration::from_secs(5)));
    f.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(drain(&mut f), vec![Output::Connect]);
    assert_eq!(f.state(), State::Connect);
    // The silent attempt is what `kbgp peers` shows, with what to check.
    let e = f.last_error().cloned();
    assert_eq!(e, Some(SessionError::ConnectFailed("timed out after 5 s".into())));
    let e = e.unwrap();
    assert_eq!(e.to_string(), "TCP connect failed: timed out after 5 s");
    assert_eq!(
        e.hint(),
        Some("check the peer's address, firewall, MD5 password, and GTSM (ttlSecurity) on both sides")
    );
}

#[test]
fn hints_name_what_to_check() {
    let refused = SessionError::ConnectFailed("Connection refused (os error 111)".into());
    assert!(refused.hint().unwrap().contains("nothing accepts connections"));
    let bad_as = SessionError::NotificationReceived(Notification::new(2, 2, bytes::Bytes::new()));
    assert!(bad_as.hint().unwrap().contains("localASN"));
    assert!(SessionError::ConnectionClosed.hint().unwrap().contains("as a neighbor"));
    let stopped = SessionError::Stopped(Notification::cease(2, ""));
    assert_eq!(stopped.hint(), None);
}

#[test]
fn passive_peer_waits_for_the_other_side() {
    let (mut a, b) = ibgp();
    a.passive = true;
    let mut p = Pair::new(a, b);
    p.input(Side::A, Input::Start);
    assert_eq!(p.a.state(), State::Active);
    assert_eq!(p.count(Side::A, |o| *o == Output::Connect), 0);
    assert_eq!(p.a.poll_timeout(), None);
    p.input(Side::B, Input::Start);
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.count(Side::A, |o| *o == Output::Connect), 0);
}

#[test]
fn open_errors_are_answered_with_their_notification() {
    let cases: [(Message, (u8, u8)); 4] = [
        (peer_open(65099, 90, [10, 0, 5, 1]), (2, 2)),
        (peer_open(65005, 2, [10, 0, 5, 1]), (2, 6)),
        (peer_open(65005, 90, [0, 0, 0, 0]), (2, 3)),
        (peer_open(65005, 90, [10, 0, 5, 11]), (2, 3)),
    ];
    for (open, want) in cases {
        let (mut f, now) = open_sent(ibgp().0);
        f.handle(now, Input::Message { conn: C1, msg: open });
        let out = drain(&mut f);
        let Message::Notification(n) = &sends(&out)[0] else { panic!("{out:?}") };
        assert_eq!((n.code, n.subcode), want);
        assert!(out.contains(&Output::Close { conn: C1 }));
        assert_eq!(f.state(), State::Idle);
        assert!(matches!(f.last_error(), Some(SessionError::NotificationSent { .. })));
    }
}

#[test]
fn wrong_peer_as_seen_by_the_peer() {
    let (mut a, b) = ibgp();
    a.peer_as = 65099;
    let mut p = Pair::new(a, b);
    p.input(Side::B, Input::Start);
    p.input(Side::A, Input::Start);
    assert_eq!(p.notifications_sent(Side::A)[0], (2, 2));
    assert!(p.log.iter().any(|(s, o)| *s == Side::B
        && matches!(o, Output::StateChanged { to: State::Idle, .. } | Output::StateChanged { to: State::Active, .. })));
    assert!(matches!(p.b.last_error(), Some(SessionError::NotificationReceived(n)) if (n.code, n.subcode) == (2, 2)));
}

#[test]
fn unexpected_messages_are_fsm_errors() {
    // UPDATE and KEEPALIVE in OpenSent: 5/1.
    for m in [Message::Update(Update::default()), Message::Keepalive] {
        let (mut f, now) = open_sent(ibgp().0);
        f.handle(now, Input::Message { conn: C1, msg: m });
        let Message::Notification(n) = &sends(&drain(&mut f))[0] else { panic!() };
        assert_eq!((n.code, n.subcode), (5, 1));
    }
    // UPDATE in OpenConfirm: 5/2.
    let (mut f, now) = open_sent(ibgp().0);
    f.handle(now, Input::Message { conn: C1, msg: peer_open(65005, 90, [10, 0, 5, 1]) });
    drain(&mut f);
    f.handle(now, Input::Message { conn: C1, msg: Message::Update(Update::default()) });
    let Message::Notification(n) = &sends(&drain(&mut f))[0] else { panic!() };
    assert_eq!((n.code, n.subcode), (5, 2));
    // OPEN in Established: 5/3.
    let (mut f, now) = open_sent(ibgp().0);
    f.handle(now, Input::Message { conn: C1, msg: peer_open(65005, 90, [10, 0, 5, 1]) });
    f.handle(now, Input::Message { conn: C1, msg: Message::Keepalive });
    drain(&mut f);
    f.handle(now, Input::Message { conn: C1, msg: peer_open(65005, 90, [10, 0, 5, 1]) });
    let out = drain(&mut f);
    let Message::Notification(n) = &sends(&out)[0] else { panic!() };
    assert_eq!((n.code, n.subcode), (5, 3));
    assert!(out.iter().any(|o| matches!(o, Output::Down { .. })));
}

#[test]
fn updates_in_established_reach_the_driver() {
    let (a, b) = ibgp();
    let mut p = Pair::new(a, b);
    up(&mut p);
    let (conn, _) = p.b.established().unwrap();
    p.b.handle(p.now, Input::Message { conn, msg: Message::Update(Update::default()) });
    assert!(matches!(p.b.poll_output(), Some(Output::Update(_))));
}

#[test]
fn decode_errors_become_notifications() {
    let (mut f, now) = open_sent(ibgp().0);
    f.handle(now, Input::DecodeError { conn: C1, error: DecodeError::bad_length(5000, "too long") });
    let out = drain(&mut f);
    assert_eq!(
        sends(&out),
        vec![Message::Notification(Notification::new(1, 2, bytes::Bytes::from_static(&[0x13, 0x88])))]
    );
}

#[test]
fn notification_from_the_peer_ends_the_session_without_reply() {
    let (a, b) = ibgp();
    let mut p = Pair::new(a, b);
    up(&mut p);
    let before = p.sent(Side::A).len();
    p.input(Side::B, Input::Stop(Notification::cease(2, "maintenance")));
    assert!(
        matches!(p.a.last_error(), Some(SessionError::NotificationReceived(n)) if n.shutdown_message().as_deref() == Some("maintenance"))
    );
    assert!(p.sent(Side::A)[before..].iter().all(|m| !matches!(m, Message::Notification(_))));
    assert!(p.log.iter().any(|(s, o)| *s == Side::A && matches!(o, Output::Down { .. })));
    // B was stopped by hand: it stays down; A keeps trying.
    p.run_for(Duration::from_secs(5));
    assert_eq!(p.b.state(), State::Idle);
    assert!(p.count(Side::A, |o| *o == Output::Connect) >= 2);
}

#[test]
fn stop_sends_the_shutdown_communication() {
    let (a, b) = ibgp();
    let mut p = Pair::new(a, b);
    up(&mut p);
    p.input(Side::A, Input::Stop(Notification::cease(2, "shutdown")));
    let last = p.sent(Side::A).pop().unwrap();
    let Message::Notification(n) = last else { panic!() };
    assert_eq!(n.shutdown_message().as_deref(), Some("shutdown"));
    assert_eq!(p.a.state(), State::Idle);
    assert_eq!(p.a.poll_timeout(), None, "no automatic restart after a manual stop");
}

#[test]
fn stopped_fsm_refuses_connections_and_third_connection_is_rejected() {
    let mut f = Fsm::new(ibgp().0, 1);
    let now = Instant::now();
    f.handle(now, Input::Connected { conn: C1, inbound: true });
    assert_eq!(drain(&mut f), vec![Output::Close { conn: C1 }]);
    let mut c = ibgp().0;
    c.passive = true;
    let mut f = Fsm::new(c, 1);
    f.handle(now, Input::Start);
    for i in 1..=3 {
        f.handle(now, Input::Connected { conn: ConnId(i), inbound: true });
    }
    let out = drain(&mut f);
    assert!(out.contains(&Output::Close { conn: ConnId(3) }));
    assert!(
        matches!(&sends(&out)[..], [Message::Open(_), Message::Open(_), Message::Notification(n)] if (n.code, n.subcode) == (6, 5))
    );
}

#[test]
fn established_session_wins_against_a_late_connection() {
    let (a, mut b) = ibgp();
    b.passive = true;
    let mut p = Pair::new(a, b);
    up(&mut p);
    // A second connection from A arrives at B while the first is Established.
    let (conn_b, _) = p.b.established().unwrap();
    p.b.handle(p.now, Input::Connected { conn: ConnId(99), inbound: true });
    p.b.handle(p.now, Input::Message { conn: ConnId(99), msg: peer_open(65005, 90, [10, 0, 5, 11]) });
    let out = drain(&mut p.b);
    assert!(out.contains(&Output::Close { conn: ConnId(99) }));
    assert!(matches!(sends(&out).last(), Some(Message::Notification(n)) if (n.code, n.subcode) == (6, 7)));
    assert_eq!(p.b.established().unwrap().0, conn_b);
}

#[test]
fn four_octet_ebgp_negotiates() {
    let mut p = Pair::new(cfg(4200000001, 65100, [10, 0, 5, 11]), cfg(65100, 4200000001, [10, 0, 5, 1]));
    up(&mut p);
    let n = p.a.established().unwrap().1;
    assert!(n.four_octet_as && n.ebgp);
    assert_eq!(p.b.established().unwrap().1.peer_as, 4200000001);
}

#[test]
fn backoff_resets_only_after_a_stable_session() {
    let (a, b) = ibgp();
    let mut p = Pair::new(a, b);
    up(&mut p);
    p.run_for(Duration::from_secs(60));
    let (conn, _) = p.a.established().unwrap();
    p.input(Side::A, Input::Closed { conn });
    let t0 = p.now;
    let next = p.a.poll_timeout().unwrap();
    assert!(next - t0 <= Duration::from_secs(1), "stable session: quick reconnect");
}

#[test]
fn start_at_waits_to_connect_but_accepts_the_peer_meanwhile() {
    let now = Instant::now();
    let at = now + Duration::from_secs(2);
    // Nobody connects: the first attempt is at `at`, not before.
    let mut f = Fsm::new(ibgp().0, 1);
    f.handle(now, Input::StartAt(at));
    assert!(!drain(&mut f).contains(&Output::Connect));
    assert_eq!(f.state(), State::Idle);
    assert_eq!(f.next_attempt(), Some(at));
    assert_eq!(f.poll_timeout(), Some(at));
    f.handle_timeout(at - Duration::from_millis(1));
    assert!(!drain(&mut f).contains(&Output::Connect));
    f.handle_timeout(at);
    assert!(drain(&mut f).contains(&Output::Connect));
    assert_eq!(f.state(), State::Connect);
    assert_eq!(f.next_attempt(), None, "connecting, not waiting");
    // The peer connects first: accepted during the wait, OPEN sent, no attempt of ours.
    let mut f = Fsm::new(ibgp().0, 1);
    f.handle(now, Input::StartAt(at));
    f.handle(now, Input::Connected { conn: C1, inbound: true });
    assert!(matches!(sends(&drain(&mut f))[..], [Message::Open(_)]));
    assert_eq!(f.state(), State::OpenSent);
    f.handle_timeout(at);
    assert!(!drain(&mut f).contains(&Output::Connect));
    // After a Stop (kbgp reset): Stop then StartAt, the same wait.
    let (mut f, now) = open_sent(ibgp().0);
    f.handle(now, Input::Stop(Notification::cease(4, "reset")));
    f.handle(now, Input::StartAt(at));
    let out = drain(&mut f);
    assert!(out.contains(&Output::Close { conn: C1 }) && !out.contains(&Output::Connect), "{out:?}");
    assert_eq!(f.next_attempt(), Some(at));
    // A passive peer never connects: nothing to announce.
    let mut c = ibgp().0;
    c.passive = true;
    let mut f = Fsm::new(c, 1);
    f.handle(now, Input::StartAt(at));
    assert_eq!(f.next_attempt(), None);
    f.handle_timeout(at);
    assert!(!drain(&mut f).contains(&Output::Connect));
    assert_eq!(f.state(), State::Active);
}

#[test]
fn next_attempt_is_the_backoff_after_a_failure() {
    let (mut f, now) = open_sent(ibgp().0);
    f.handle(now, Input::Closed { conn: C1 });
    let next = f.next_attempt().expect("waiting to retry");
    assert!(next > now && next <= now + Duration::from_secs(1), "{:?}", next - now);
}
