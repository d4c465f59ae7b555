//! Per-peer Adj-RIB-In (RFC 4271 §3.2): the routes a peer sent us, decoded and bounded.
//!
//! kbgp does not install or re-advertise received routes; it keeps them to count and show
//! them. Memory is bounded by `max_routes`: past it, new prefixes are dropped (and counted),
//! never stored. Attribute sets are interned, so a million routes with a handful of distinct
//! attribute sets cost a handful of copies.
//!
//! While the peer restarts (graceful restart helper, RFC 4724 §4.2) its routes stay, marked
//! stale; a route the new session announces or withdraws is no longer stale, and what is
//! still stale at End-of-RIB (or when a timer runs out) is swept.
//!
//! Routes are ignored (and any older version removed) when they loop back to us:
//! ORIGINATOR_ID equal to our router id (RFC 4456 §8; route reflectors send clients their own
//! routes back) or, on eBGP, our AS in the AS_PATH (RFC 4271 §9.1.2).

use crate::wire::attribute::MpNextHop;
use crate::wire::{Family, Nlri, PathAttributes, Update};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// A received route's attributes with its next hop from whichever field carried it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReceivedAttrs {
    pub path: PathAttributes,
    pub next_hop: Option<IpAddr>,
}

/// What one UPDATE changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: usize,
    pub replaced: usize,
    pub withdrawn: usize,
    /// Ignored because they looped (our router id or AS).
    pub looped: usize,
    /// Dropped because the table is full.
    pub over_limit: usize,
    /// The family of the first route dropped because the table is full.
    pub over_limit_family: Option<Family>,
    /// Withdrawn because of an RFC 7606 treat-as-withdraw error.
    pub treated_as_withdraw: usize,
}

#[derive(Debug)]
pub struct AdjRibIn {
    routes: HashMap<(Family, Nlri), Arc<ReceivedAttrs>>,
    interned: HashSet<Arc<ReceivedAttrs>>,
    counts: HashMap<Family, usize>,
    max_routes: usize,
    local_id: Ipv4Addr,
    local_as: u32,
    ebgp: bool,
    /// Total dropped because of `max_routes` since the session came up.
    pub dropped: u64,
    /// Routes kept from a session that ended, not yet refreshed by the next one.
    stale: HashSet<(Family, Nlri)>,
}

impl AdjRibIn {
    pub fn new(max_routes: usize, local_id: Ipv4Addr, local_as: u32, ebgp: bool) -> AdjRibIn {
        AdjRibIn {
            routes: HashMap::new(),
            interned: HashSet::new(),
            counts: HashMap::new(),
            max_routes,
            local_id,
            local_as,
            ebgp,
            dropped: 0,
            stale: HashSet::new(),
        }
    }

    /// Routes kept as stale.
    pub fn stale_count(&self) -> usize {
        self.stale.len()
    }

    /// The session ended and the peer restarts: the routes of `families` are kept, as stale;
    /// the others are dropped. Returns how many are kept.
    pub fn mark_stale(&mut self, families: &[Family]) -> usize {
        let gone: Vec<(Family, Nlri)> = self.routes.keys().filter(|k| !families.contains(&k.0)).copied().collect();
        for k in &gone {
            self.remove(k);
        }
        self.stale = self.routes.keys().copied().collect();
        self.dropped = 0;
        self.stale.len()
    }

    /// Drops the routes still stale, of one family or all; returns how many.
    pub fn sweep_stale(&mut self, family: Option<Family>) -> usize {
        let gone: Vec<(Family, Nlri)> =
            self.stale.iter().filter(|k| family.is_none_or(|f| k.0 == f)).copied().collect();
        for k in &gone {
            self.remove(k);
        }
        gone.len()
    }

    /// Long-lived graceful restart begins (RFC 9494 §4.3): stale routes carrying NO_LLGR go.
    pub fn sweep_no_llgr(&mut self) -> usize {
        const NO_LLGR: u32 = 0xFFFF_0007;
        let gone: Vec<(Family, Nlri)> = self
            .stale
            .iter()
            .filter(|k| self.routes.get(*k).is_some_and(|a| a.path.communities.iter().any(|c| c.0 == NO_LLGR)))
            .copied()
            .collect();
        for k in &gone {
            self.remove(k);
        }
        gone.len()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn count(&self, f: Family) -> usize {
        self.counts.get(&f).copied().unwrap_or(0)
    }

    /// Distinct attribute sets held.
    pub fn attribute_sets(&self) -> usize {
        self.interned.len()
    }

    pub fn routes(&self) -> impl Iterator<Item = (&(Family, Nlri), &Arc<ReceivedAttrs>)> {
        self.routes.iter()
    }

    /// Forgets everything (the session went down).
    pub fn clear(&mut self) {
        self.stale.clear();
        self.routes.clear();
        self.interned.clear();
        self.counts.clear();
        self.dropped = 0;
    }

    fn intern(&mut self, a: ReceivedAttrs) -> Arc<ReceivedAttrs> {
        if let Some(x) = self.interned.get(&a) {
            return x.clone();
        }
        let x = Arc::new(a);
        self.interned.insert(x.clone());
        x
    }

    fn remove(&mut self, key: &(Family, Nlri)) -> bool {
        if !self.stale.is_empty() {
            self.stale.remove(key);
        }
        let Some(old) = self.routes.remove(key) else { return false };
        if let Some(c) = self.counts.get_mut(&key.0) {
            *c = c.saturating_sub(1);
        }
        // The map held one reference and the intern set one: nobody else uses it.
        if Arc::strong_count(&old) == 2 {
            self.interned.remove(&old);
        }
        true
    }

    fn loops(&self, p: &PathAttributes) -> bool {
        p.originator_id == Some(self.local_id)
            || (self.ebgp && p.as_path.as_ref().is_some_and(|a| a.contains(self.local_as)))
    }

    /// Applies one received UPDATE.
    pub fn apply(&mut self, u: &Update) -> Applied {
        let mut r = Applied::default();
        for key in u.withdrawn_all() {
            if self.remove(&key) {
                r.withdrawn += 1;
            }
            if u.treat_as_withdraw() {
                r.treated_as_withdraw += 1;
            }
        }
        if u.treat_as_withdraw() {
            return r;
        }
        let looped = self.loops(&u.attributes);
        if !u.nlri.is_empty() {
            let nh = u.attributes.next_hop.map(IpAddr::V4);
            let attrs = self.intern(ReceivedAttrs { path: u.attributes.clone(), next_hop: nh });
            for n in &u.nlri {
                self.put((Family::IPV4_UNICAST, *n), &attrs, looped, &mut r);
            }
            self.release_if_unused(attrs);
        }
        if let Some(m) = u.mp_reach.as_ref().filter(|m| !m.nlri.prefixes().is_empty()) {
            let nh = match m.next_hop {
                MpNextHop::V4(a) => Some(IpAddr::V4(a)),
                MpNextHop::V6 { global, .. } => Some(IpAddr::V6(global)),
                MpNextHop::Raw(_) => None,
            };
            let mut path = u.attributes.clone();
            path.next_hop = None;
            let attrs = self.intern(ReceivedAttrs { path, next_hop: nh });
            for n in m.nlri.prefixes() {
                self.put((m.family, *n), &attrs, looped, &mut r);
            }
            self.release_if_unused(attrs);
        }
        r
    }

    fn put(&mut self, key: (Family, Nlri), attrs: &Arc<ReceivedAttrs>, looped: bool, r: &mut Applied) {
        if looped {
            self.remove(&key);
            r.looped += 1;
        } else if self.routes.contains_key(&key) {
            self.remove(&key);
            self.insert(key, attrs.clone());
            r.replaced += 1;
        } else if self.routes.len() >= self.max_routes {
            self.dropped += 1;
            r.over_limit += 1;
            r.over_limit_family.get_or_insert(key.0);
        } else {
            self.insert(key, attrs.clone());
            r.added += 1;
        }
    }

    /// An attribute set interned for routes that were all dropped or looped is not kept.
    fn release_if_unused(&mut self, a: Arc<ReceivedAttrs>) {
        // Held by `a` and the intern set only.
        if Arc::strong_count(&a) == 2 {
            self.interned.remove(&a);
        }
    }

    fn insert(&mut self, key: (Family, Nlri), attrs: Arc<ReceivedAttrs>) {
        if !self.stale.is_empty() {
            self.stale.remove(&key);
        }
        *self.counts.entry(key.0).or_default() += 1;
        self.routes.insert(key, attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attribute::{AsPath, MpNlri, MpReach, Origin};

    fn upd(prefixes: &[&str], attrs: PathAttributes) -> Update {
        Update {
            attributes: attrs,
            nlri: prefixes.iter().map(|p| Nlri::new(p.parse().unwrap())).collect(),
            ..Default::default()
        }
    }

    fn base() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65100])),
            next_hop: Some(Ipv4Addr::new(10, 0, 5, 1)),
            ..Default::default()
        }
    }

    fn rib(max: usize) -> AdjRibIn {
        AdjRibIn::new(max, Ipv4Addr::new(10, 0, 5, 11), 65005, true)
    }

    #[test]
    fn add_replace_withdraw_and_count() {
        let mut r = rib(100);
        let a = r.apply(&upd(&["10.1.0.0/24", "10.1.1.0/24"], base()));
        assert_eq!((a.added, r.count(Family::IPV4_UNICAST), r.attribute_sets()), (2, 2, 1));
        let mut b = base();
        b.med = Some(5);
        let a = r.apply(&upd(&["10.1.0.0/24"], b));
        assert_eq!((a.replaced, r.len(), r.attribute_sets()), (1, 2, 2));
        let w = Update { withdrawn: vec![Nlri::new("10.1.1.0/24".parse().unwrap())], ..Default::default() };
        assert_eq!(r.apply(&w).withdrawn, 1);
        assert_eq!((r.len(), r.attribute_sets()), (1, 1), "unused attribute set released");
    }

    #[test]
    fn the_cap_drops_new_prefixes_but_not_updates_of_known_ones() {
        let mut r = rib(2);
        let a = r.apply(&upd(&["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"], base()));
        assert_eq!((a.added, a.over_limit, r.dropped, r.len()), (2, 1, 1, 2));
        let mut b = base();
        b.med = Some(1);
        assert_eq!(r.apply(&upd(&["10.0.0.0/24"], b)).replaced, 1);
        assert_eq!(r.apply(&upd(&["10.0.9.0/24"], base())).over_limit, 1);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn our_own_routes_reflected_back_are_ignored() {
        let mut r = AdjRibIn::new(100, Ipv4Addr::new(10, 0, 5, 11), 65005, false);
        let mut a = base();
        a.originator_id = Some(Ipv4Addr::new(10, 0, 5, 11));
        assert_eq!(r.apply(&upd(&["20.0.0.100/32"], a)).looped, 1);
        assert!(r.is_empty());
        let mut r = rib(100);
        let mut a = base();
        a.as_path = Some(AsPath::sequence([65100, 65005]));
        assert_eq!(r.apply(&upd(&["20.0.0.100/32"], a)).looped, 1);
    }

    #[test]
    fn ipv6_routes_keep_their_mp_next_hop() {
        let mut r = rib(100);
        let u = Update {
            attributes: PathAttributes { next_hop: None, ..base() },
            mp_reach: Some(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: MpNextHop::V6 { global: "fd00::1".parse().unwrap(), link_local: None },
                nlri: MpNlri::Prefixes(vec![Nlri::new("2001:db8::/64".parse().unwrap())]),
            }),
            ..Default::default()
        };
        assert_eq!(r.apply(&u).added, 1);
        let (_, a) = r.routes().next().unwrap();
        assert_eq!(a.next_hop, Some("fd00::1".parse().unwrap()));
        assert_eq!(r.count(Family::IPV6_UNICAST), 1);
    }

    #[test]
    fn treat_as_withdraw_removes_instead_of_adding() {
        let mut r = rib(100);
        r.apply(&upd(&["10.1.0.0/24"], base()));
        let mut u = upd(&["10.1.0.0/24"], base());
        u.errors.push(crate::wire::AttrError {
            type_code: 1,
            subcode: 6,
            action: crate::wire::Rfc7606Action::TreatAsWithdraw,
            reason: "x".into(),
        });
        let a = r.apply(&u);
        assert_eq!((a.withdrawn, a.treated_as_withdraw, a.added), (1, 1, 0));
        assert!(r.is_empty());
    }

    #[test]
    fn stale_routes_are_kept_until_refreshed_or_swept() {
        let mut r = rib(100);
        r.apply(&upd(&["10.1.0.0/24", "10.1.1.0/24", "10.1.2.0/24"], base()));
        assert_eq!(r.mark_stale(&[Family::IPV4_UNICAST]), 3);
        // The new session announces one again and withdraws another: neither is stale now.
        r.apply(&upd(&["10.1.0.0/24"], base()));
        r.apply(&Update { withdrawn: vec![Nlri::new("10.1.1.0/24".parse().unwrap())], ..Default::default() });
        assert_eq!((r.len(), r.stale_count()), (2, 1));
        assert_eq!(r.sweep_stale(Some(Family::IPV6_UNICAST)), 0);
        assert_eq!(r.sweep_stale(Some(Family::IPV4_UNICAST)), 1, "End-of-RIB: what was not sent again goes");
        assert_eq!((r.len(), r.stale_count(), r.count(Family::IPV4_UNICAST)), (1, 0, 1));
        // Families not kept go at once; NO_LLGR routes go when long-lived stale begins.
        let mut b = base();
        b.communities = vec![crate::wire::attribute::Community(0xFFFF_0007)];
        r.apply(&upd(&["10.9.0.0/24"], b));
        assert_eq!(r.mark_stale(&[Family::IPV4_UNICAST]), 2);
        assert_eq!(r.sweep_no_llgr(), 1);
        assert_eq!(r.mark_stale(&[Family::IPV6_UNICAST]), 0);
        assert!(r.is_empty());
    }
}
