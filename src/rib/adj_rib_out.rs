//! Per-peer Adj-RIB-Out (RFC 4271 §3.2, §9.2): what we want the peer to have, what it has,
//! and the UPDATEs that take it from one to the other.
//!
//! The desired set is replaced wholesale by the daemon after every plan; only prefixes whose
//! attributes changed, appeared or disappeared are marked dirty, and only those go on the
//! wire. Prefixes sharing one attribute set are packed into as few UPDATEs as the negotiated
//! message size allows, each attribute set encoded once per flush.

use crate::wire::attribute::MpNextHop;
use crate::wire::update::{write_announcements, write_withdrawals};
use crate::wire::{Ctx, Family, Nlri, PathAttributes};
use bytes::BytesMut;
use ipnet::IpNet;
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// The attributes of one originated route as sent on one session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    /// Everything but the next hop.
    pub path: PathAttributes,
    pub next_hop: IpAddr,
    pub link_local: Option<Ipv6Addr>,
}

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    pub messages: usize,
    pub announced: usize,
    pub withdrawn: usize,
}

#[derive(Debug, Default)]
pub struct AdjRibOut {
    desired: HashMap<IpNet, Arc<RouteAttrs>>,
    sent: HashMap<IpNet, Arc<RouteAttrs>>,
    /// Prefixes where `desired` and `sent` may differ. Ordered, so flushes are deterministic.
    dirty: BTreeSet<IpNet>,
}

/// Prefixes per UPDATE batch handed to the packer between buffer-size checks.
const CHUNK: usize = 2048;

impl AdjRibOut {
    pub fn new() -> AdjRibOut {
        AdjRibOut::default()
    }

    /// Replaces the desired routes; marks what changed.
    pub fn set_desired(&mut self, routes: HashMap<IpNet, Arc<RouteAttrs>>) {
        for (p, a) in &routes {
            match self.desired.get(p) {
                Some(old) if Arc::ptr_eq(old, a) || **old == **a => {}
                _ => {
                    self.dirty.insert(*p);
                }
            }
        }
        for p in self.desired.keys() {
            if !routes.contains_key(p) {
                self.dirty.insert(*p);
            }
        }
        self.desired = routes;
    }

    /// The peer has nothing from us (new session, or it asked for a full refresh).
    pub fn reset_sent(&mut self) {
        self.sent.clear();
        self.dirty = self.desired.keys().copied().collect();
    }

    /// Prefixes waiting to be announced or withdrawn.
    pub fn pending(&self) -> usize {
        self.dirty.len()
    }

    pub fn desired_len(&self) -> usize {
        self.desired.len()
    }

    /// Routes the peer has from us, per family.
    pub fn sent_count(&self, f: Family) -> usize {
        self.sent.keys().filter(|p| Family::of_prefix(p) == f).count()
    }

    pub fn sent(&self) -> impl Iterator<Item = (&IpNet, &Arc<RouteAttrs>)> {
        self.sent.iter()
    }

    /// Writes UPDATEs for dirty prefixes of the `families` the session negotiated, until `out`
    /// holds at least `budget` octets; what is left stays dirty for the next call. Prefixes of
    /// other families stay unsent (and dirty only until the next `set_desired`).
    pub fn flush(
        &mut self,
        ctx: &Ctx,
        families: &[Family],
        extended_next_hop_v4: bool,
        out: &mut BytesMut,
        budget: usize,
    ) -> Flushed {
        let mut done = Flushed::default();
        let mut withdraw: HashMap<Family, Vec<Nlri>> = HashMap::new();
        let mut groups: Vec<(Family, Arc<RouteAttrs>, Vec<Nlri>)> = Vec::new();
        let mut by_attrs: HashMap<(Family, *const RouteAttrs), usize> = HashMap::new();
        let mut skipped = Vec::new();
        for p in &self.dirty {
            let f = Family::of_prefix(p);
            if !families.contains(&f) {
                skipped.push(*p);
                continue;
            }
            match (self.desired.get(p), self.sent.get(p)) {
                (None, Some(_)) => withdraw.entry(f).or_default().push(Nlri::new(*p)),
                (Some(want), have) if have.is_none_or(|h| **h != **want) => {
                    if f == Family::IPV4_UNICAST && want.next_hop.is_ipv6() && !extended_next_hop_v4 {
                        skipped.push(*p);
                        continue;
                    }
                    let key = (f, Arc::as_ptr(want));
                    let i = *by_attrs.entry(key).or_insert_with(|| {
                        groups.push((f, want.clone(), Vec::new()));
                        groups.len() - 1
                    });
                    groups[i].2.push(Nlri::new(*p));
                }
                // Desired and sent agree (both absent: removed while the session was down).
                _ => skipped.push(*p),
            }
        }
        // Equal attribute sets behind different pointers: merge their groups.
        let mut merged: Vec<(Family, Arc<RouteAttrs>, Vec<Nlri>)> = Vec::new();
        let mut by_value: HashMap<(Family, Arc<RouteAttrs>), usize> = HashMap::new();
        for (f, a, v) in groups {
            match by_value.get(&(f, a.clone())) {
                Some(&i) => merged[i].2.extend(v),
                None => {
                    by_value.insert((f, a.clone()), merged.len());
                    merged.push((f, a, v));
                }
            }
        }

        let mut families_sorted: Vec<&Family> = withdraw.keys().collect();
        families_sorted.sort();
        let families_sorted: Vec<Family> = families_sorted.into_iter().copied().collect();
        'w: for f in families_sorted {
            let list = &withdraw[&f];
            for chunk in list.chunks(CHUNK) {
                if out.len() >= budget {
                    break 'w;
                }
                done.messages += write_withdrawals(f, chunk, ctx, out);
                for n in chunk {
                    self.sent.remove(&n.prefix);
                    self.dirty.remove(&n.prefix);
                }
                done.withdrawn += chunk.len();
            }
        }
        let mut attr_buf = BytesMut::new();
        'a: for (f, attrs, list) in &merged {
            attr_buf.clear();
            let mp_nh = match (f, attrs.next_hop) {
                (&Family::IPV4_UNICAST, IpAddr::V4(v4)) => {
                    let mut p = attrs.path.clone();
                    p.next_hop = Some(v4);
                    p.encode(ctx, &mut attr_buf);
                    None
                }
                (_, IpAddr::V6(v6)) => {
                    attrs.path.encode(ctx, &mut attr_buf);
                    Some(MpNextHop::V6 { global: v6, link_local: attrs.link_local })
                }
                (_, IpAddr::V4(v4)) => {
                    attrs.path.encode(ctx, &mut attr_buf);
                    Some(MpNextHop::V6 { global: v4.to_ipv6_mapped(), link_local: None })
                }
            };
            for chunk in list.chunks(CHUNK) {
                if out.len() >= budget {
                    break 'a;
                }
                match write_announcements(*f, mp_nh.as_ref(), &attr_buf, chunk, ctx, out) {
                    Ok(n) => done.messages += n,
                    // Attributes too large for any UPDATE: nothing we can send for these.
                    Err(_) => {
                        skipped.extend(chunk.iter().map(|n| n.prefix));
                        continue;
                    }
                }
                for n in chunk {
                    self.sent.insert(n.prefix, attrs.clone());
                    self.dirty.remove(&n.prefix);
                }
                done.announced += chunk.len();
            }
        }
        for p in skipped {
            self.dirty.remove(&p);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attribute::{AsPath, Community, Origin};
    use crate::wire::{Message, decode, header};
    use std::net::Ipv4Addr;

    fn ctx() -> Ctx {
        Ctx { four_octet_as: true, ..Ctx::default() }
    }

    fn attrs(comm: u32) -> Arc<RouteAttrs> {
        Arc::new(RouteAttrs {
            path: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::empty()),
                local_pref: Some(100),
                communities: vec![Community(comm)],
                ..Default::default()
            },
            next_hop: IpAddr::V4(Ipv4Addr::new(10, 0, 5, 11)),
            link_local: None,
        })
    }

    fn v4(i: u32) -> IpNet {
        IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(0x1400_0000 + i), 32).unwrap())
    }

    fn updates(b: &[u8]) -> Vec<crate::wire::Update> {
        let mut v = Vec::new();
        let mut rest = b;
        while !rest.is_empty() {
            let h = header::peek_header(rest, 4096).unwrap().unwrap();
            let Message::Update(u) = decode(&rest[..h.len], &ctx()).unwrap() else { panic!() };
            v.push(u);
            rest = &rest[h.len..];
        }
        v
    }

    const ALL: &[Family] = &[Family::IPV4_UNICAST, Family::IPV6_UNICAST];

    #[test]
    fn only_the_difference_goes_out() {
        let mut rib = AdjRibOut::new();
        let a = attrs(1);
        rib.set_desired((0..1000).map(|i| (v4(i), a.clone())).collect());
        let mut out = BytesMut::new();
        let f = rib.flush(&ctx(), ALL, false, &mut out, usize::MAX);
        assert_eq!((f.announced, f.withdrawn, f.messages), (1000, 0, 2));
        assert_eq!(rib.sent_count(Family::IPV4_UNICAST), 1000);
        // Same routes again: nothing to do.
        rib.set_desired((0..1000).map(|i| (v4(i), a.clone())).collect());
        assert_eq!(rib.pending(), 0);
        // Drop 500: exactly those are withdrawn, in one UPDATE.
        rib.set_desired((500..1000).map(|i| (v4(i), a.clone())).collect());
        let mut out = BytesMut::new();
        let f = rib.flush(&ctx(), ALL, false, &mut out, usize::MAX);
        assert_eq!((f.announced, f.withdrawn, f.messages), (0, 500, 1));
        let u = updates(&out);
        let mut w: Vec<IpNet> = u[0].withdrawn.iter().map(|n| n.prefix).collect();
        w.sort();
        assert_eq!(w, (0..500).map(v4).collect::<Vec<_>>());
    }

    #[test]
    fn changed_attributes_are_re_announced_grouped() {
        let mut rib = AdjRibOut::new();
        rib.set_desired((0..10).map(|i| (v4(i), attrs(1))).collect());
        rib.flush(&ctx(), ALL, false, &mut BytesMut::new(), usize::MAX);
        // Ten separate but equal Arcs became one group; now change half of them.
        let b = attrs(2);
        rib.set_desired((0..10).map(|i| (v4(i), if i < 5 { b.clone() } else { attrs(1) })).collect());
        assert_eq!(rib.pending(), 5);
        let mut out = BytesMut::new();
        let f = rib.flush(&ctx(), ALL, false, &mut out, usize::MAX);
        assert_eq!((f.announced, f.messages), (5, 1));
        assert_eq!(updates(&out)[0].attributes.communities, vec![Community(2)]);
    }

    /// The liveness bug of issue 10: a route removed from the plan while the session was down
    /// is dirty but neither desired nor sent after the reconnect. It must leave the dirty set,
    /// or `pending()` never reaches 0, End-of-RIB is never sent and the peer loop spins.
    #[test]
    fn a_route_removed_while_down_is_not_pending_after_the_reconnect() {
        let mut rib = AdjRibOut::new();
        let a = attrs(1);
        rib.set_desired((0..10).map(|i| (v4(i), a.clone())).collect());
        rib.flush(&ctx(), ALL, false, &mut BytesMut::new(), usize::MAX);
        assert_eq!(rib.pending(), 0);
        // Session down: the peer has nothing from us any more.
        rib.reset_sent();
        // Reconnected, and the plan has lost one route meanwhile.
        rib.set_desired((1..10).map(|i| (v4(i), a.clone())).collect());
        let mut out = BytesMut::new();
        let f = rib.flush(&ctx(), ALL, false, &mut out, usize::MAX);
        assert_eq!((f.announced, f.withdrawn), (9, 0));
        assert_eq!(rib.pending(), 0, "nothing is left to send");
        let again = rib.flush(&ctx(), ALL, false, &mut BytesMut::new(), usize::MAX);
        assert_eq!(again, Flushed::default());
    }

    #[test]
    fn budget_limits_one_flush_and_the_rest_follows() {
        let mut rib = AdjRibOut::new();
        let a = attrs(1);
        rib.set_desired((0..10_000).map(|i| (v4(i), a.clone())).collect());
        let mut out = BytesMut::new();
        let f1 = rib.flush(&ctx(), ALL, false, &mut out, 1);
        assert_eq!(f1.announced, CHUNK);
        assert!(rib.pending() > 0);
        let mut total = f1.announced;
        while rib.pending() > 0 {
            let budget = out.len() + 1;
            total += rib.flush(&ctx(), ALL, false, &mut out, budget).announced;
        }
        assert_eq!(total, 10_000);
        let n: usize = updates(&out).iter().map(|u| u.nlri.len()).sum();
        assert_eq!(n, 10_000);
    }

    #[test]
    fn families_not_negotiated_are_not_sent() {
        let mut rib = AdjRibOut::new();
        let a = Arc::new(RouteAttrs { next_hop: "fd00::1".parse().unwrap(), ..(*attrs(1)).clone() });
        rib.set_desired([("2001:db8::1/128".parse().unwrap(), a.clone())].into_iter().collect());
        let f = rib.flush(&ctx(), &[Family::IPV4_UNICAST], false, &mut BytesMut::new(), usize::MAX);
        assert_eq!(f.announced, 0);
        assert_eq!(rib.pending(), 0);
        assert_eq!(rib.sent_count(Family::IPV6_UNICAST), 0);
    }

    #[test]
    fn ipv6_goes_in_mp_reach_and_reset_resends_everything() {
        let mut rib = AdjRibOut::new();
        let a = Arc::new(RouteAttrs { next_hop: "fd00::1".parse().unwrap(), ..(*attrs(1)).clone() });
        rib.set_desired([("2001:db8::1/128".parse().unwrap(), a)].into_iter().collect());
        let mut out = BytesMut::new();
        rib.flush(&ctx(), ALL, false, &mut out, usize::MAX);
        let u = updates(&out);
        let r = u[0].mp_reach.as_ref().unwrap();
        assert_eq!(r.family, Family::IPV6_UNICAST);
        assert_eq!(r.next_hop, MpNextHop::V6 { global: "fd00::1".parse().unwrap(), link_local: None });
        assert_eq!(u[0].attributes.next_hop, None);
        rib.reset_sent();
        assert_eq!(rib.pending(), 1);
        assert_eq!(rib.sent_count(Family::IPV6_UNICAST), 0);
    }
}
