use super::*;
use crate::wire::attribute::{AsPath, Community, LargeCommunity, Origin};
use crate::wire::{Message, decode, encode};
use bytes::Bytes;
use std::net::Ipv4Addr;

fn ctx() -> Ctx {
    Ctx { four_octet_as: true, ..Ctx::default() }
}

fn p(s: &str) -> Nlri {
    Nlri::new(s.parse().unwrap())
}

/// Wraps an UPDATE body in a header.
fn msg(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    v.push(2);
    v.extend_from_slice(body);
    v
}

/// UPDATE body with the given withdrawn, attribute and NLRI fields.
fn body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = (withdrawn.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(withdrawn);
    v.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    v.extend_from_slice(attrs);
    v.extend_from_slice(nlri);
    v
}

const ORIGIN_IGP: &[u8] = &[0x40, 1, 1, 0];
const EMPTY_AS_PATH: &[u8] = &[0x40, 2, 0];
const NH: &[u8] = &[0x40, 3, 4, 10, 0, 5, 11];
const LP100: &[u8] = &[0x40, 5, 4, 0, 0, 0, 100];

fn good_attrs() -> Vec<u8> {
    [ORIGIN_IGP, EMPTY_AS_PATH, NH, LP100].concat()
}

fn dec(attrs: &[u8], nlri: &[u8]) -> Result<Update, DecodeError> {
    Update::decode(&body(&[], attrs, nlri), &ctx())
}

/// The UPDATE kbgp sends for the seed's service IP to its iBGP route reflector.
#[test]
fn seed_route_fixture_both_ways() {
    let u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::empty()),
            next_hop: Some(Ipv4Addr::new(10, 0, 5, 11)),
            local_pref: Some(100),
            ..Default::default()
        },
        nlri: vec![p("20.0.0.100/32")],
        ..Default::default()
    };
    let bytes = msg(&body(&[], &good_attrs(), &[32, 20, 0, 0, 100]));
    let mut out = BytesMut::new();
    encode(&Message::Update(u.clone()), &ctx(), &mut out).unwrap();
    assert_eq!(&out[..], &bytes[..]);
    assert_eq!(decode(&bytes, &ctx()).unwrap(), Message::Update(u));
}

#[test]
fn ipv6_update_round_trips_with_mp_attributes_first() {
    let u = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([4200000001])),
            communities: vec![Community(1)],
            large_communities: vec![LargeCommunity { global: 1, local1: 2, local2: 3 }],
            ..Default::default()
        },
        mp_reach: Some(MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: MpNextHop::V6 { global: "fd00::11".parse().unwrap(), link_local: None },
            nlri: attribute::MpNlri::Prefixes(vec![p("2001:db8::100/128")]),
        }),
        mp_unreach: Some(MpUnreach {
            family: Family::IPV6_UNICAST,
            withdrawn: attribute::MpNlri::Prefixes(vec![p("2001:db8::101/128")]),
        }),
        ..Default::default()
    };
    let mut out = BytesMut::new();
    encode(&Message::Update(u.clone()), &ctx(), &mut out).unwrap();
    assert_eq!(out[23 + 1], code::MP_UNREACH_NLRI, "MP_UNREACH_NLRI first (RFC 7606 §5.1)");
    assert_eq!(decode(&out, &ctx()).unwrap(), Message::Update(u));
}

#[test]
fn end_of_rib_markers() {
    for f in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
        let mut out = BytesMut::new();
        write_end_of_rib(f, &mut out);
        let Message::Update(u) = decode(&out, &ctx()).unwrap() else { panic!() };
        assert_eq!(u.end_of_rib(), Some(f));
    }
    let mut out = BytesMut::new();
    write_end_of_rib(Family::IPV4_UNICAST, &mut out);
    assert_eq!(out.len(), 23);
    assert_eq!(dec(&good_attrs(), &[32, 20, 0, 0, 100]).unwrap().end_of_rib(), None);
}

// ---- RFC 7606 classification, one case per rule ----

fn action(attrs: &[u8], nlri: &[u8]) -> Option<Rfc7606Action> {
    let u = dec(attrs, nlri).unwrap();
    u.errors.iter().map(|e| e.action).max()
}

const NLRI: &[u8] = &[32, 20, 0, 0, 100];

#[test]
fn rfc7606_treat_as_withdraw_cases() {
    let w = Some(Rfc7606Action::TreatAsWithdraw);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ORIGIN value 3", [&[0x40, 1, 1, 3][..], EMPTY_AS_PATH, NH].concat()),
        ("ORIGIN length 2", [&[0x40, 1, 2, 0, 0][..], EMPTY_AS_PATH, NH].concat()),
        ("AS_PATH bad segment", [ORIGIN_IGP, &[0x40, 2, 2, 9, 0], NH].concat()),
        ("NEXT_HOP length 5", [ORIGIN_IGP, EMPTY_AS_PATH, &[0x40, 3, 5, 1, 2, 3, 4, 5]].concat()),
        ("NEXT_HOP 0.0.0.0", [ORIGIN_IGP, EMPTY_AS_PATH, &[0x40, 3, 4, 0, 0, 0, 0]].concat()),
        ("MED length 3", [&good_attrs()[..], &[0x80, 4, 3, 0, 0, 0]].concat()),
        ("LOCAL_PREF length 2", [ORIGIN_IGP, EMPTY_AS_PATH, NH, &[0x40, 5, 2, 0, 0]].concat()),
        ("COMMUNITIES length 5", [&good_attrs()[..], &[0xc0, 8, 5, 0, 0, 0, 0, 0]].concat()),
        ("COMMUNITIES length 0", [&good_attrs()[..], &[0xc0, 8, 0]].concat()),
        ("ORIGINATOR_ID length 3", [&good_attrs()[..], &[0x80, 9, 3, 0, 0, 0]].concat()),
        ("CLUSTER_LIST length 6", [&good_attrs()[..], &[0x80, 10, 6, 0, 0, 0, 0, 0, 0]].concat()),
        ("EXT_COMMUNITIES length 7", [&good_attrs()[..], &[0xc0, 16, 7, 0, 0, 0, 0, 0, 0, 0]].concat()),
        ("LARGE_COMMUNITY length 8", [&good_attrs()[..], &[0xc0, 32, 8, 0, 0, 0, 0, 0, 0, 0, 0]].concat()),
        ("ORIGIN flags optional", [&[0xc0, 1, 1, 0][..], EMPTY_AS_PATH, NH].concat()),
        ("MED flags transitive", [&good_attrs()[..], &[0xc0, 4, 4, 0, 0, 0, 0]].concat()),
        ("missing ORIGIN", [EMPTY_AS_PATH, NH].concat()),
        ("missing AS_PATH", [ORIGIN_IGP, NH].concat()),
        ("missing NEXT_HOP", [ORIGIN_IGP, EMPTY_AS_PATH].concat()),
        ("last attribute overruns", [&good_attrs()[..], &[0xc0, 8, 8, 0, 0, 0, 1]].concat()),
        ("header truncated", [&good_attrs()[..], &[0xc0, 8]].concat()),
    ];
    for (name, attrs) in cases {
        assert_eq!(action(&attrs, NLRI), w, "{name}");
        let u = dec(&attrs, NLRI).unwrap();
        assert!(u.announced().is_empty(), "{name}: nothing announced");
        assert_eq!(u.withdrawn_all().len(), 1, "{name}: the NLRI is withdrawn");
    }
}

#[test]
fn rfc7606_attribute_discard_cases() {
    let d = Some(Rfc7606Action::AttributeDiscard);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("ATOMIC_AGGREGATE length 1", [&good_attrs()[..], &[0x40, 6, 1, 0]].concat()),
        ("AGGREGATOR length 6 on 4-octet", [&good_attrs()[..], &[0xc0, 7, 6, 0, 1, 1, 1, 1, 1]].concat()),
        ("AS4_AGGREGATOR is ignored on 4-octet, bad AGGREGATOR", [&good_attrs()[..], &[0xc0, 7, 2, 0, 1]].concat()),
        ("repeated ORIGIN", [&good_attrs()[..], ORIGIN_IGP].concat()),
    ];
    for (name, attrs) in cases {
        assert_eq!(action(&attrs, NLRI), d, "{name}");
        assert_eq!(dec(&attrs, NLRI).unwrap().announced().len(), 1, "{name}: route kept");
    }
}

#[test]
fn mandatory_attributes_not_needed_without_nlri() {
    let u = dec(&[], &[]).unwrap();
    assert!(u.errors.is_empty());
    let u = Update::decode(&body(&[32, 20, 0, 0, 100], &[], &[]), &ctx()).unwrap();
    assert!(u.errors.is_empty());
    assert_eq!(u.withdrawn, vec![p("20.0.0.100/32")]);
}

#[test]
fn unknown_optional_attributes_are_kept() {
    let u = dec(&[&good_attrs()[..], &[0xe0, 99, 2, 1, 2]].concat(), NLRI).unwrap();
    assert!(u.errors.is_empty());
    assert_eq!(u.attributes.unknown[0].type_code, 99);
    assert_eq!(u.attributes.unknown[0].flags, 0xe0);
}

// ---- fatal errors: the NOTIFICATION (code, subcode, data) ----

fn fatal(b: &[u8]) -> DecodeError {
    Update::decode(b, &ctx()).unwrap_err()
}

#[test]
fn session_reset_cases() {
    // Withdrawn Routes Length overruns: 3/1.
    let e = fatal(&[0, 9, 0, 0]);
    assert_eq!((e.code, e.subcode), (3, 1));
    // Total Path Attribute Length overruns: 3/1.
    let e = fatal(&[0, 0, 0, 9, 0x40]);
    assert_eq!((e.code, e.subcode), (3, 1));
    // Bad NLRI: 3/10.
    let e = fatal(&body(&[], &good_attrs(), &[33, 1, 2, 3, 4, 5]));
    assert_eq!((e.code, e.subcode), (3, 10));
    let e = fatal(&body(&[24, 1], &[], &[]));
    assert_eq!((e.code, e.subcode), (3, 10));
    // Unrecognized well-known attribute: 3/2, data = the attribute.
    let e = fatal(&body(&[], &[0x40, 99, 1, 7], &[]));
    assert_eq!((e.code, e.subcode, &e.data[..]), (3, 2, &[0x40u8, 99, 1, 7][..]));
    // MP_UNREACH_NLRI twice: 3/1.
    let mp = [0x80, 15, 3, 0, 2, 1];
    let e = fatal(&body(&[], &[&mp[..], &mp].concat(), &[]));
    assert_eq!((e.code, e.subcode), (3, 1));
    // Malformed MP_REACH_NLRI: 3/9, data = the attribute.
    let bad = [0x80, 14, 8, 0, 2, 1, 4, 1, 2, 3, 4];
    let e = fatal(&body(&[], &bad, &[]));
    assert_eq!((e.code, e.subcode, &e.data[..]), (3, 9, &bad[..]));
    // MP_UNREACH_NLRI with a bad prefix: 3/9.
    let e = fatal(&body(&[], &[0x80, 15, 4, 0, 2, 1, 200], &[]));
    assert_eq!((e.code, e.subcode), (3, 9));
    // MP_REACH_NLRI with wrong flags: 3/4, data = the attribute.
    let e = fatal(&body(&[], &[0xc0, 14, 5, 0, 2, 1, 0, 0], &[]));
    assert_eq!((e.code, e.subcode), (3, 4));
    assert_eq!(e.data.len(), 8);
}

// ---- packing ----

fn parse_all(buf: &[u8], c: &Ctx) -> Vec<Update> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let h = crate::wire::header::peek_header(rest, c.max_len).unwrap().unwrap();
        assert!(h.len <= c.max_len);
        match decode(&rest[..h.len], c).unwrap() {
            Message::Update(u) => out.push(u),
            m => panic!("{m:?}"),
        }
        rest = &rest[h.len..];
    }
    out
}

fn many_v4(n: u32) -> Vec<Nlri> {
    (0..n)
        .map(|i| Nlri::new(ipnet::IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x1400_0000 + i), 32).unwrap())))
        .collect()
}

#[test]
fn announcements_fill_messages_to_the_limit() {
    let c = ctx();
    let mut attrs = BytesMut::new();
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::empty()),
        next_hop: Some(Ipv4Addr::new(10, 0, 5, 11)),
        local_pref: Some(100),
        ..Default::default()
    }
    .encode(&c, &mut attrs);
    let prefixes = many_v4(1000);
    let mut out = BytesMut::new();
    let n = write_announcements(Family::IPV4_UNICAST, None, &attrs, &prefixes, &c, &mut out).unwrap();
    // 4096 - 19 - 4 - 21 octets of attributes leave room for 810 /32s (5 octets each).
    assert_eq!(n, 2);
    let ups = parse_all(&out, &c);
    assert_eq!(ups[0].nlri.len(), 810);
    let got: Vec<Nlri> = ups.iter().flat_map(|u| u.nlri.clone()).collect();
    assert_eq!(got, prefixes);
    assert!(ups.iter().all(|u| u.errors.is_empty() && u.attributes.local_pref == Some(100)));
}

#[test]
fn extended_messages_pack_more() {
    let c = Ctx { max_len: 65535, ..ctx() };
    let mut out = BytesMut::new();
    let n = write_announcements(
        Family::IPV4_UNICAST,
        None,
        &[0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 1, 1, 1, 1],
        &many_v4(20000),
        &c,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(parse_all(&out, &c).iter().map(|u| u.nlri.len()).sum::<usize>(), 20000);
}

#[test]
fn ipv6_announcements_and_withdrawals_use_mp_attributes() {
    let c = ctx();
    let v6: Vec<Nlri> = (0..300u128)
        .map(|i| {
            Nlri::new(ipnet::IpNet::V6(
                ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | i), 128).unwrap(),
            ))
        })
        .collect();
    let nh = MpNextHop::V6 { global: "fd00::11".parse().unwrap(), link_local: None };
    let mut out = BytesMut::new();
    let n =
        write_announcements(Family::IPV6_UNICAST, Some(&nh), &[0x40, 1, 1, 0, 0x40, 2, 0], &v6, &c, &mut out).unwrap();
    assert_eq!(n, 2, "17 octets per /128: 239 in the first message");
    let ups = parse_all(&out, &c);
    let got: Vec<Nlri> = ups.iter().flat_map(|u| u.mp_reach.as_ref().unwrap().nlri.prefixes().to_vec()).collect();
    assert_eq!(got, v6);
    assert!(ups.iter().all(|u| u.errors.is_empty() && u.mp_reach.as_ref().unwrap().next_hop == nh));

    let mut out = BytesMut::new();
    assert_eq!(write_withdrawals(Family::IPV6_UNICAST, &v6, &c, &mut out), 2);
    let ups = parse_all(&out, &c);
    let got: Vec<Nlri> =
        ups.iter().flat_map(|u| u.mp_unreach.as_ref().unwrap().withdrawn.prefixes().to_vec()).collect();
    assert_eq!(got, v6);

    let mut out = BytesMut::new();
    assert_eq!(write_withdrawals(Family::IPV4_UNICAST, &many_v4(1000), &c, &mut out), 2);
    let ups = parse_all(&out, &c);
    assert_eq!(ups[0].withdrawn.len(), 814);
    assert_eq!(ups.iter().map(|u| u.withdrawn.len()).sum::<usize>(), 1000);
}

#[test]
fn attributes_too_big_for_one_prefix_is_an_error() {
    let attrs = vec![0u8; 4080];
    let mut out = BytesMut::new();
    let e = write_announcements(Family::IPV4_UNICAST, None, &attrs, &many_v4(1), &ctx(), &mut out).unwrap_err();
    assert!(matches!(e, EncodeError::TooLong { .. }));
    assert!(out.is_empty());
    let _ = Bytes::new();
}
