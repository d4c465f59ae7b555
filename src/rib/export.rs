//! From an originated route to what one session announces.
//!
//! - iBGP (RFC 4271 §5.1.2, §5.1.5): ORIGIN IGP, empty AS_PATH, LOCAL_PREF (100 unless set).
//! - eBGP: ORIGIN IGP, AS_PATH = our AS, no LOCAL_PREF.
//! - Next hop self: the session's local address. IPv6 prefixes get a global IPv6 next hop in
//!   MP_REACH_NLRI (RFC 2545); with only IPv4 at hand, the IPv4-mapped form. IPv4 prefixes on a
//!   session with only an IPv6 local address use RFC 8950 when the peer offered it.
//!
//! None of this depends on the prefix, only on the policy's attributes and the session, so
//! the encoded attributes are made once per attribute set and session context and cached in
//! the group's table ([`super::out_table::OutTable::encoded`]).

use crate::wire::attribute::{AsPath, Community, LargeCommunity, MpNextHop, Origin};
use crate::wire::{Ctx, PathAttributes};
use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Attributes a policy attaches to an advertisement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AdvertAttrs {
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC (a VirtualIP's `med`).
    pub med: Option<u32>,
}

/// One route the plan wants announced to a peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Advertisement {
    pub prefix: IpNet,
    pub attrs: Arc<AdvertAttrs>,
}

/// What export needs to know about the session. Sessions with equal contexts encode a route
/// identically, so the context is also the key of the encoded attributes they share.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExportCtx {
    pub local_as: u32,
    pub ebgp: bool,
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
    /// The peer accepts IPv6 next hops for IPv4 unicast (RFC 8950).
    pub extended_next_hop_v4: bool,
    /// 4-octet AS numbers on the wire (RFC 6793): changes how AS_PATH is encoded.
    pub four_octet_as: bool,
}

/// Where one family's routes go in an UPDATE, and with which next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// IPv4 NLRI field with the NEXT_HOP attribute.
    Classic(Ipv4Addr),
    /// MP_REACH_NLRI with this next hop.
    Mp(MpNextHop),
}

impl NextHop {
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            NextHop::Classic(a) => Some(IpAddr::V4(*a)),
            NextHop::Mp(MpNextHop::V4(a)) => Some(IpAddr::V4(*a)),
            NextHop::Mp(MpNextHop::V6 { global, .. }) => Some(IpAddr::V6(*global)),
            NextHop::Mp(MpNextHop::Raw(_)) => None,
        }
    }
}

impl ExportCtx {
    /// The next hop of a family's routes on this session (`v6`: IPv6 unicast), if it has one.
    pub fn next_hop(&self, v6: bool) -> Option<NextHop> {
        if !v6 {
            match (self.next_hop_v4, self.next_hop_v6) {
                (Some(v4), _) => Some(NextHop::Classic(v4)),
                (None, Some(v6)) if self.extended_next_hop_v4 => {
                    Some(NextHop::Mp(MpNextHop::V6 { global: v6, link_local: None }))
                }
                _ => None,
            }
        } else {
            match (self.next_hop_v6, self.next_hop_v4) {
                (Some(v6), _) => Some(NextHop::Mp(MpNextHop::V6 { global: v6, link_local: None })),
                (None, Some(v4)) => Some(NextHop::Mp(MpNextHop::V6 { global: v4.to_ipv6_mapped(), link_local: None })),
                _ => None,
            }
        }
    }

    /// The path attributes of a route (everything but MP_REACH_NLRI; NEXT_HOP only for IPv4
    /// routes sent in the NLRI field).
    pub fn path(&self, a: &AdvertAttrs, next_hop: &NextHop) -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if self.ebgp { AsPath::sequence([self.local_as]) } else { AsPath::empty() }),
            next_hop: match next_hop {
                NextHop::Classic(a) => Some(*a),
                NextHop::Mp(_) => None,
            },
            local_pref: if self.ebgp { None } else { Some(a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)) },
            med: a.med,
            communities: a.communities.clone(),
            large_communities: a.large_communities.clone(),
            ..Default::default()
        }
    }

    /// The encoded Path Attributes field for `a` with `next_hop` (without MP_REACH_NLRI).
    pub fn encode(&self, a: &AdvertAttrs, next_hop: &NextHop) -> Bytes {
        let ctx = Ctx { four_octet_as: self.four_octet_as, ebgp: self.ebgp, ..Ctx::default() };
        let mut out = BytesMut::with_capacity(64);
        self.path(a, next_hop).encode(&ctx, &mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(ebgp: bool) -> ExportCtx {
        ExportCtx {
            local_as: 65005,
            ebgp,
            next_hop_v4: Some(Ipv4Addr::new(10, 0, 5, 11)),
            next_hop_v6: Some("fd00:5::11".parse().unwrap()),
            extended_next_hop_v4: false,
            four_octet_as: true,
        }
    }

    #[test]
    fn ibgp_rules() {
        let a = AdvertAttrs { communities: vec![Community(1)], ..Default::default() };
        let c = ctx(false);
        let nh4 = c.next_hop(false).unwrap();
        assert_eq!(nh4, NextHop::Classic(Ipv4Addr::new(10, 0, 5, 11)));
        let p = c.path(&a, &nh4);
        assert_eq!(p.origin, Some(Origin::Igp));
        assert_eq!(p.as_path, Some(AsPath::empty()));
        assert_eq!(p.local_pref, Some(100));
        assert_eq!(p.next_hop, Some(Ipv4Addr::new(10, 0, 5, 11)));
        assert_eq!(p.communities, vec![Community(1)]);
        let nh6 = c.next_hop(true).unwrap();
        assert_eq!(nh6.addr(), Some("fd00:5::11".parse().unwrap()));
        assert_eq!(c.path(&a, &nh6).next_hop, None, "IPv6: the next hop is in MP_REACH_NLRI");
    }

    #[test]
    fn ebgp_rules() {
        let a = AdvertAttrs { local_pref: Some(200), ..Default::default() };
        let c = ctx(true);
        let p = c.path(&a, &c.next_hop(false).unwrap());
        assert_eq!(p.as_path, Some(AsPath::sequence([65005])));
        assert_eq!(p.local_pref, None);
    }

    #[test]
    fn local_pref_override_on_ibgp() {
        let a = AdvertAttrs { local_pref: Some(200), ..Default::default() };
        let c = ctx(false);
        assert_eq!(c.path(&a, &c.next_hop(false).unwrap()).local_pref, Some(200));
    }

    #[test]
    fn next_hop_fallbacks() {
        let mut c = ctx(false);
        c.next_hop_v6 = None;
        assert_eq!(c.next_hop(true).unwrap().addr(), Some("::ffff:10.0.5.11".parse().unwrap()));
        let mut c = ctx(false);
        c.next_hop_v4 = None;
        assert_eq!(c.next_hop(false), None, "IPv4 routes need RFC 8950 over an IPv6-only session");
        c.extended_next_hop_v4 = true;
        assert!(matches!(c.next_hop(false), Some(NextHop::Mp(MpNextHop::V6 { .. }))));
    }

    #[test]
    fn encoding_follows_the_as_size() {
        let a = AdvertAttrs::default();
        let mut c = ctx(true);
        c.local_as = 4_200_000_001;
        let nh = c.next_hop(false).unwrap();
        let four = c.encode(&a, &nh);
        c.four_octet_as = false;
        let two = c.encode(&a, &nh);
        assert_ne!(four, two, "a 2-octet speaker gets AS_TRANS and AS4_PATH");
        assert!(two.len() > four.len());
    }
}
