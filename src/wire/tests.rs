//! Message-level tests: framing, round trips, and the property that decode never panics.

use super::*;
use crate::wire::attribute::{AsPath, Origin};
use bytes::Bytes;
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn ctx4() -> Ctx {
    Ctx { four_octet_as: true, ..Ctx::default() }
}

#[test]
fn keepalive_is_19_octets() {
    let b = to_bytes(&Message::Keepalive, &Ctx::default()).unwrap();
    assert_eq!(&b[..], &[[0xffu8; 16].as_slice(), &[0, 19, 4]].concat()[..]);
    assert_eq!(decode(&b, &Ctx::default()).unwrap(), Message::Keepalive);
}

#[test]
fn route_refresh_both_ways_and_7_1() {
    let m = Message::RouteRefresh(RouteRefresh::request(Family::IPV6_UNICAST));
    let b = to_bytes(&m, &Ctx::default()).unwrap();
    assert_eq!(&b[16..], &[0, 23, 5, 0, 2, 0, 1]);
    assert_eq!(decode(&b, &Ctx::default()).unwrap(), m);
    let mut bad = b.to_vec();
    bad.push(0);
    bad[17] = 24;
    let e = decode(&bad, &Ctx::default()).unwrap_err();
    assert_eq!((e.code, e.subcode), (7, 1));
    assert_eq!(&e.data[..], &bad[..], "data is the whole message (RFC 7313 §5)");
}

#[test]
fn notification_both_ways() {
    let m = Message::Notification(Notification::new(2, 2, Bytes::new()));
    let b = to_bytes(&m, &Ctx::default()).unwrap();
    assert_eq!(b.len(), 21);
    assert_eq!(decode(&b, &Ctx::default()).unwrap(), m);
}

#[test]
fn open_both_ways() {
    let m = Message::Open(Open::new(
        65005,
        90,
        Ipv4Addr::new(10, 0, 5, 11),
        vec![Capability::Multiprotocol(Family::IPV4_UNICAST), Capability::FourOctetAs(65005)],
    ));
    let b = to_bytes(&m, &Ctx::default()).unwrap();
    assert_eq!(decode(&b, &Ctx::default()).unwrap(), m);
}

#[test]
fn length_field_must_match_the_buffer() {
    let mut b = to_bytes(&Message::Keepalive, &Ctx::default()).unwrap().to_vec();
    b.push(0);
    let e = decode(&b, &Ctx::default()).unwrap_err();
    assert_eq!((e.code, e.subcode), (1, 2));
}

#[test]
fn encode_refuses_oversized_messages_and_leaves_the_buffer_alone() {
    let u = Update {
        attributes: PathAttributes { origin: Some(Origin::Igp), as_path: Some(AsPath::empty()), ..Default::default() },
        nlri: (0..1100u32)
            .map(|i| Nlri::new(format!("{}.{}.{}.0/24", 10, i / 256, i % 256).parse().unwrap()))
            .collect(),
        ..Default::default()
    };
    let mut out = BytesMut::from(&b"keep"[..]);
    let e = encode(&Message::Update(u), &ctx4(), &mut out).unwrap_err();
    assert!(matches!(e, EncodeError::TooLong { max: 4096, .. }));
    assert_eq!(&out[..], b"keep");
}

/// A valid UPDATE to mutate: every attribute kind and both families.
fn sample_update() -> Bytes {
    let u = Update {
        withdrawn: vec![Nlri::new("10.9.0.0/16".parse().unwrap())],
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65005, 4200000001])),
            next_hop: Some(Ipv4Addr::new(10, 0, 5, 11)),
            med: Some(5),
            local_pref: Some(100),
            atomic_aggregate: true,
            communities: vec![attribute::Community(7)],
            originator_id: Some(Ipv4Addr::new(1, 1, 1, 1)),
            cluster_list: vec![Ipv4Addr::new(2, 2, 2, 2)],
            large_communities: vec![attribute::LargeCommunity { global: 1, local1: 2, local2: 3 }],
            ..Default::default()
        },
        mp_reach: Some(attribute::MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: attribute::MpNextHop::V6 { global: "fd00::1".parse().unwrap(), link_local: None },
            nlri: attribute::MpNlri::Prefixes(vec![Nlri::new("2001:db8::/64".parse().unwrap())]),
        }),
        nlri: vec![Nlri::new("20.0.0.100/32".parse().unwrap())],
        ..Default::default()
    };
    to_bytes(&Message::Update(u), &ctx4()).unwrap()
}

fn contexts() -> [Ctx; 3] {
    [
        Ctx::default(),
        ctx4(),
        Ctx {
            four_octet_as: true,
            max_len: 65535,
            ebgp: true,
            add_path_rx: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            add_path_tx: vec![],
        },
    ]
}

/// Decoding then re-encoding a message that decoded cleanly must decode to the same thing.
fn check_stable(buf: &[u8]) {
    for c in contexts() {
        if let Ok(m) = decode(buf, &c) {
            if matches!(&m, Message::Update(u) if !u.errors.is_empty()) {
                continue;
            }
            // Re-encode as the peer would have: sending path identifiers where we receive them.
            let peer = Ctx { add_path_tx: c.add_path_rx.clone(), ..c.clone() };
            let again = to_bytes(&m, &peer).expect("a decoded message re-encodes");
            assert_eq!(decode(&again, &c).unwrap(), m);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, .. ProptestConfig::default() })]

    /// Arbitrary bytes after a valid header never panic the decoder.
    #[test]
    fn decode_never_panics_on_any_body(t in 1u8..=5, body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut buf = vec![0xffu8; 16];
        buf.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        buf.push(t);
        buf.extend_from_slice(&body);
        for c in contexts() {
            let _ = decode(&buf, &c);
            let _ = header::peek_header(&buf, c.max_len);
        }
        check_stable(&buf);
    }

    /// Fully arbitrary input, header included.
    #[test]
    fn decode_never_panics_on_any_bytes(buf in proptest::collection::vec(any::<u8>(), 0..100)) {
        for c in contexts() {
            let _ = decode(&buf, &c);
        }
    }

    /// Mutations of a real UPDATE (byte flips, truncation with a fixed-up length) exercise the
    /// attribute and NLRI paths far more than random bytes do.
    #[test]
    fn mutated_updates_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut buf = sample_update().to_vec();
        for (at, v) in flips {
            let i = 19 + at % (buf.len() - 19);
            buf[i] = v;
        }
        let keep = 23 + cut % (buf.len() - 22);
        buf.truncate(keep);
        let len = buf.len() as u16;
        buf[16..18].copy_from_slice(&len.to_be_bytes());
        for c in contexts() {
            let _ = decode(&buf, &c);
        }
        check_stable(&buf);
    }

    /// Prefix lists round-trip exactly.
    #[test]
    fn prefixes_round_trip(v4 in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..50), add_path in any::<bool>()) {
        let list: Vec<Nlri> = v4.iter().enumerate().map(|(i, (a, l))| Nlri {
            path_id: if add_path { i as u32 } else { 0 },
            prefix: ipnet::IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(*a), *l).unwrap().trunc()),
        }).collect();
        let mut b = BytesMut::new();
        list.iter().for_each(|n| nlri::encode_prefix(&mut b, n, add_path));
        let mut back = Vec::new();
        nlri::decode_prefixes(&b, nlri::PrefixKind::V4, add_path, &mut back).unwrap();
        prop_assert_eq!(back, list);
    }
}

#[test]
fn sample_update_is_clean() {
    let b = sample_update();
    let Message::Update(u) = decode(&b, &ctx4()).unwrap() else { panic!("not an update") };
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(u.announced().len(), 2);
}
