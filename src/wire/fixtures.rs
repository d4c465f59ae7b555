//! Messages captured from the real daemons of the interop tests (FRR 8.4, BIRD 2.0.12,
//! GoBGP 3.10, ExaBGP 4.2), refreshed by `proto-tests/capture-fixtures.sh`: each daemon's
//! OPEN, and UPDATEs it sent to kbgp over iBGP (AS 65005), IPv4 and IPv6.
//! Each decodes cleanly, and decoding what kbgp re-encodes gives the same message.

use super::capability::{AddPathMode, Capability};
use super::{Ctx, Family, Message, decode, to_bytes};

const FRR_OPEN: &[u8] = include_bytes!("fixtures/frr-open.bin");
const BIRD_OPEN: &[u8] = include_bytes!("fixtures/bird-open.bin");
const GOBGP_OPEN: &[u8] = include_bytes!("fixtures/gobgp-open.bin");
const EXABGP_OPEN: &[u8] = include_bytes!("fixtures/exabgp-open.bin");

const UPDATES: &[(&str, &[u8])] = &[
    ("frr v4", include_bytes!("fixtures/frr-update-v4.bin")),
    ("frr v6", include_bytes!("fixtures/frr-update-v6.bin")),
    ("bird v4", include_bytes!("fixtures/bird-update-v4.bin")),
    ("bird v6", include_bytes!("fixtures/bird-update-v6.bin")),
    ("gobgp v4", include_bytes!("fixtures/gobgp-update-v4.bin")),
    ("gobgp v6", include_bytes!("fixtures/gobgp-update-v6.bin")),
    ("exabgp v4", include_bytes!("fixtures/exabgp-update-v4.bin")),
    ("exabgp v6", include_bytes!("fixtures/exabgp-update-v6.bin")),
];

/// The sessions they came from: iBGP, 4-octet AS, extended messages with FRR.
fn ctx() -> Ctx {
    Ctx { four_octet_as: true, max_len: 65535, ..Ctx::default() }
}

fn open(bytes: &[u8]) -> super::Open {
    match decode(bytes, &Ctx::default()) {
        Ok(Message::Open(o)) => o,
        other => panic!("not an OPEN: {other:?}"),
    }
}

fn round_trip(bytes: &[u8], c: &Ctx) -> Message {
    let m = decode(bytes, c).unwrap();
    let again = to_bytes(&m, c).unwrap();
    assert_eq!(decode(&again, c).unwrap(), m);
    m
}

#[test]
fn every_daemon_opens_with_as_65005_and_both_families() {
    for (name, bytes) in [("frr", FRR_OPEN), ("bird", BIRD_OPEN), ("gobgp", GOBGP_OPEN), ("exabgp", EXABGP_OPEN)] {
        let o = open(bytes);
        assert_eq!(o.asn(), 65005, "{name}");
        assert_eq!(o.four_octet_as(), Some(65005), "{name}");
        assert_eq!(o.bgp_id.octets()[3], 1, "{name}: the peer is .1 in the lab");
        let f = o.mp_families();
        assert!(f.contains(&Family::IPV4_UNICAST) && f.contains(&Family::IPV6_UNICAST), "{name}: {f:?}");
        round_trip(bytes, &Ctx::default());
    }
}

#[test]
fn each_daemon_offers_what_it_is_known_for() {
    let hold = |b| open(b).hold_time;
    assert_eq!((hold(FRR_OPEN), hold(BIRD_OPEN), hold(GOBGP_OPEN), hold(EXABGP_OPEN)), (180, 240, 90, 180));
    // FRR: ADD-PATH receive, FQDN (kept raw), graceful restart with the N bit, extended message.
    let frr = open(FRR_OPEN);
    assert!(
        frr.capabilities
            .iter()
            .any(|c| matches!(c, Capability::AddPath(v) if v.contains(&(Family::IPV4_UNICAST, AddPathMode::Receive))))
    );
    assert!(frr.capabilities.iter().any(|c| matches!(c, Capability::Unknown { code: 73, .. })));
    assert!(frr.capabilities.iter().any(|c| matches!(c, Capability::GracefulRestart(g) if g.notification)));
    assert!(frr.capabilities.contains(&Capability::ExtendedMessage));
    // BIRD: every capability in one optional parameter; enhanced route refresh.
    assert!(open(BIRD_OPEN).capabilities.contains(&Capability::EnhancedRouteRefresh));
    // GoBGP: extended next hop for IPv4 over IPv6.
    assert!(
        open(GOBGP_OPEN)
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::ExtendedNextHop(v) if v[0].nlri == Family::IPV4_UNICAST))
    );
    // ExaBGP: extended message.
    assert!(open(EXABGP_OPEN).capabilities.contains(&Capability::ExtendedMessage));
}

#[test]
fn their_updates_decode_cleanly_and_round_trip() {
    for (name, bytes) in UPDATES {
        let Message::Update(u) = round_trip(bytes, &ctx()) else { panic!("{name}: not an UPDATE") };
        assert!(u.errors.is_empty(), "{name}: {:?}", u.errors);
        let a = u.announced();
        assert!(!a.is_empty(), "{name}: announces nothing");
        let fam = if name.ends_with("v4") { Family::IPV4_UNICAST } else { Family::IPV6_UNICAST };
        assert!(a.iter().all(|(f, _)| *f == fam), "{name}");
        assert!(u.attributes.origin.is_some() && u.attributes.as_path.is_some(), "{name}");
        if fam == Family::IPV6_UNICAST {
            let nh = &u.mp_reach.as_ref().unwrap().next_hop;
            assert!(matches!(nh, super::attribute::MpNextHop::V6 { .. }), "{name}: {nh:?}");
        } else {
            assert!(u.attributes.next_hop.is_some(), "{name}");
        }
    }
}

#[test]
fn frr_uses_extended_messages_once_negotiated() {
    let big = UPDATES[0].1;
    assert!(big.len() > 4096);
    // Without extended messages the same bytes are a header error (1/2).
    let e = decode(big, &Ctx { four_octet_as: true, ..Ctx::default() }).unwrap_err();
    assert_eq!((e.code, e.subcode), (1, 2));
}
