use super::*;
use crate::wire::Ctx;

fn ctx(four: bool, ebgp: bool) -> Ctx {
    Ctx { four_octet_as: four, ebgp, ..Ctx::default() }
}

fn full() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([4200000001, 65010])),
        next_hop: Some(Ipv4Addr::new(10, 0, 5, 11)),
        med: Some(50),
        local_pref: Some(200),
        atomic_aggregate: true,
        aggregator: Some(Aggregator { asn: 4200000001, address: Ipv4Addr::new(10, 0, 5, 11) }),
        communities: vec![Community(0xFDE8_0064), Community::NO_EXPORT],
        originator_id: Some(Ipv4Addr::new(10, 0, 5, 1)),
        cluster_list: vec![Ipv4Addr::new(10, 0, 5, 1)],
        ext_communities: vec![ExtCommunity([0, 2, 0xfd, 0xe8, 0, 0, 0, 1])],
        large_communities: vec![LargeCommunity { global: 4200000001, local1: 1, local2: 2 }],
        unknown: vec![RawAttribute {
            flags: flag::OPTIONAL | flag::TRANSITIVE,
            type_code: 99,
            value: Bytes::from_static(b"xy"),
        }],
    }
}

fn round(a: &PathAttributes, c: &Ctx) -> (PathAttributes, Vec<AttrError>, BytesMut) {
    let mut b = BytesMut::new();
    a.encode(c, &mut b);
    let mut errs = Vec::new();
    let d = decode(&b, c, &mut errs).unwrap();
    (d.attrs, errs, b)
}

#[test]
fn every_attribute_round_trips_on_a_4_octet_ibgp_session() {
    let (back, errs, _) = round(&full(), &ctx(true, false));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(back, full());
}

#[test]
fn two_octet_session_uses_as_trans_and_as4_attributes() {
    let (back, errs, bytes) = round(&full(), &ctx(false, false));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(back, full(), "AS4_PATH and AS4_AGGREGATOR merged back");
    // AS_PATH on the wire: SEQUENCE of AS_TRANS, 65010.
    let at = bytes.windows(3).position(|w| w == [0x40, 2, 6]).unwrap();
    assert_eq!(&bytes[at + 3..at + 9], &[2, 2, 0x5b, 0xa0, 0xfd, 0xf2]);
    assert!(bytes.windows(2).any(|w| w == [0xc0, code::AS4_PATH]));
    assert!(bytes.windows(2).any(|w| w == [0xc0, code::AS4_AGGREGATOR]));
}

#[test]
fn no_as4_path_when_every_asn_fits() {
    let a = PathAttributes { as_path: Some(AsPath::sequence([65005])), ..Default::default() };
    let mut b = BytesMut::new();
    a.encode(&ctx(false, false), &mut b);
    assert_eq!(&b[..], &[0x40, 2, 4, 2, 1, 0xfd, 0xed]);
}

#[test]
fn as4_path_from_a_4_octet_speaker_is_ignored() {
    let mut b = BytesMut::new();
    put_attr(&mut b, flag::TRANSITIVE, code::AS_PATH, &[2, 1, 0, 0, 0xfd, 0xed]);
    put_attr(&mut b, OPT_TRANS, code::AS4_PATH, &[2, 1, 0, 0, 0, 1]);
    let mut errs = Vec::new();
    let d = decode(&b, &ctx(true, false), &mut errs).unwrap();
    assert_eq!(d.attrs.as_path.unwrap().asns(), vec![65005]);
    assert!(errs.is_empty());
}

#[test]
fn extended_length_is_used_past_255_octets() {
    let a = PathAttributes { communities: (0..100).map(Community).collect(), ..Default::default() };
    let (back, _, bytes) = round(&a, &ctx(true, false));
    assert_eq!(bytes[0], flag::OPTIONAL | flag::TRANSITIVE | flag::EXTENDED_LENGTH);
    assert_eq!(&bytes[2..4], &400u16.to_be_bytes());
    assert_eq!(back, a);
}

#[test]
fn ebgp_drops_ibgp_only_attributes() {
    let mut b = BytesMut::new();
    put_attr(&mut b, WELL_KNOWN, code::LOCAL_PREF, &[0, 0, 0, 100]);
    put_attr(&mut b, OPT_NON_TRANS, code::ORIGINATOR_ID, &[1, 1, 1, 1]);
    put_attr(&mut b, OPT_NON_TRANS, code::CLUSTER_LIST, &[1, 1, 1, 1]);
    let mut errs = Vec::new();
    let d = decode(&b, &ctx(true, true), &mut errs).unwrap();
    assert_eq!(d.attrs, PathAttributes::default());
    assert_eq!(errs.len(), 3);
    assert!(errs.iter().all(|e| e.action == Rfc7606Action::AttributeDiscard));
}
