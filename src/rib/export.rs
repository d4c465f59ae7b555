//! From an originated route to what one session announces.
//!
//! - iBGP (RFC 4271 §5.1.2, §5.1.5): ORIGIN IGP, empty AS_PATH, LOCAL_PREF (100 unless set).
//! - eBGP: ORIGIN IGP, AS_PATH = our AS, no LOCAL_PREF.
//! - Next hop self: the session's local address. IPv6 prefixes get a global IPv6 next hop in
//!   MP_REACH_NLRI (RFC 2545); with only IPv4 at hand, the IPv4-mapped form. IPv4 prefixes on a
//!   session with only an IPv6 local address use RFC 8950 when the peer offered it.

use super::adj_rib_out::RouteAttrs;
use crate::wire::PathAttributes;
use crate::wire::attribute::{AsPath, Community, LargeCommunity, Origin};
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Attributes a policy attaches to an advertisement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AdvertAttrs {
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub local_pref: Option<u32>,
}

/// One route the plan wants announced to a peer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Advertisement {
    pub prefix: IpNet,
    pub attrs: Arc<AdvertAttrs>,
}

/// What export needs to know about the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportCtx {
    pub local_as: u32,
    pub ebgp: bool,
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
    /// The peer accepts IPv6 next hops for IPv4 unicast (RFC 8950).
    pub extended_next_hop_v4: bool,
}

/// Routes export could not give a next hop, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exported {
    pub routes: HashMap<IpNet, Arc<RouteAttrs>>,
    pub no_next_hop: Vec<IpNet>,
}

impl ExportCtx {
    fn next_hop_for(&self, p: &IpNet) -> Option<IpAddr> {
        match p {
            IpNet::V4(_) => match (self.next_hop_v4, self.next_hop_v6) {
                (Some(v4), _) => Some(IpAddr::V4(v4)),
                (None, Some(v6)) if self.extended_next_hop_v4 => Some(IpAddr::V6(v6)),
                _ => None,
            },
            IpNet::V6(_) => match (self.next_hop_v6, self.next_hop_v4) {
                (Some(v6), _) => Some(IpAddr::V6(v6)),
                (None, Some(v4)) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
                _ => None,
            },
        }
    }

    fn path(&self, a: &AdvertAttrs) -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(if self.ebgp { AsPath::sequence([self.local_as]) } else { AsPath::empty() }),
            local_pref: if self.ebgp { None } else { Some(a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)) },
            communities: a.communities.clone(),
            large_communities: a.large_communities.clone(),
            ..Default::default()
        }
    }

    /// Builds the Adj-RIB-Out contents. Advertisements sharing one `AdvertAttrs` share one
    /// `RouteAttrs`, so the RIB packs them into the same UPDATEs.
    pub fn export<'a>(&self, advs: impl IntoIterator<Item = &'a Advertisement>) -> Exported {
        let mut out = Exported::default();
        let mut cache: HashMap<(*const AdvertAttrs, IpAddr), Arc<RouteAttrs>> = HashMap::new();
        for adv in advs {
            let Some(nh) = self.next_hop_for(&adv.prefix) else {
                out.no_next_hop.push(adv.prefix);
                continue;
            };
            let key = (Arc::as_ptr(&adv.attrs), nh);
            let attrs = cache
                .entry(key)
                .or_insert_with(|| Arc::new(RouteAttrs { path: self.path(&adv.attrs), next_hop: nh, link_local: None }))
                .clone();
            out.routes.insert(adv.prefix, attrs);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adv(p: &str, a: &Arc<AdvertAttrs>) -> Advertisement {
        Advertisement { prefix: p.parse().unwrap(), attrs: a.clone() }
    }

    fn ctx(ebgp: bool) -> ExportCtx {
        ExportCtx {
            local_as: 65005,
            ebgp,
            next_hop_v4: Some(Ipv4Addr::new(10, 0, 5, 11)),
            next_hop_v6: Some("fd00:5::11".parse().unwrap()),
            extended_next_hop_v4: false,
        }
    }

    #[test]
    fn ibgp_rules() {
        let a = Arc::new(AdvertAttrs { communities: vec![Community(1)], ..Default::default() });
        let e = ctx(false).export(&[adv("20.0.0.100/32", &a), adv("2001:db8::1/128", &a)]);
        let v4 = &e.routes[&"20.0.0.100/32".parse().unwrap()];
        assert_eq!(v4.next_hop, IpAddr::V4(Ipv4Addr::new(10, 0, 5, 11)));
        assert_eq!(v4.path.origin, Some(Origin::Igp));
        assert_eq!(v4.path.as_path, Some(AsPath::empty()));
        assert_eq!(v4.path.local_pref, Some(100));
        assert_eq!(v4.path.communities, vec![Community(1)]);
        let v6 = &e.routes[&"2001:db8::1/128".parse().unwrap()];
        assert_eq!(v6.next_hop, "fd00:5::11".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn ebgp_rules() {
        let a = Arc::new(AdvertAttrs { local_pref: Some(200), ..Default::default() });
        let e = ctx(true).export(&[adv("20.0.0.100/32", &a)]);
        let r = e.routes.values().next().unwrap();
        assert_eq!(r.path.as_path, Some(AsPath::sequence([65005])));
        assert_eq!(r.path.local_pref, None);
    }

    #[test]
    fn local_pref_override_on_ibgp() {
        let a = Arc::new(AdvertAttrs { local_pref: Some(200), ..Default::default() });
        let e = ctx(false).export(&[adv("20.0.0.100/32", &a)]);
        assert_eq!(e.routes.values().next().unwrap().path.local_pref, Some(200));
    }

    #[test]
    fn shared_attributes_are_shared() {
        let a = Arc::new(AdvertAttrs::default());
        let e = ctx(false).export(&[adv("20.0.0.1/32", &a), adv("20.0.0.2/32", &a)]);
        let v: Vec<_> = e.routes.values().collect();
        assert!(Arc::ptr_eq(v[0], v[1]));
    }

    #[test]
    fn next_hop_fallbacks() {
        let a = Arc::new(AdvertAttrs::default());
        let mut c = ctx(false);
        c.next_hop_v6 = None;
        let e = c.export(&[adv("2001:db8::1/128", &a)]);
        assert_eq!(e.routes.values().next().unwrap().next_hop, "::ffff:10.0.5.11".parse::<IpAddr>().unwrap());
        let mut c = ctx(false);
        c.next_hop_v4 = None;
        let e = c.export(&[adv("20.0.0.1/32", &a)]);
        assert_eq!(e.no_next_hop, vec!["20.0.0.1/32".parse::<IpNet>().unwrap()]);
        c.extended_next_hop_v4 = true;
        let e = c.export(&[adv("20.0.0.1/32", &a)]);
        assert!(e.routes.values().next().unwrap().next_hop.is_ipv6());
    }
}
