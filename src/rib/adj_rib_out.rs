//! Per-peer Adj-RIB-Out (RFC 4271 §3.2, §9.2): how far one session has got through its
//! group's [`OutTable`], what the peer has from us, and the UPDATEs that bring it up to date.
//!
//! The state is a cursor into the table's change log and one bit per table slot ("the peer
//! has this prefix from us"), so a peer costs 1 bit per route, not a copy of the table. A
//! flush takes the changes after the cursor until the octet budget is reached, groups the
//! announcements by attribute set and family, and packs each group into as few UPDATEs as
//! the negotiated message size allows (RFC 4271 §9.2.1.1: one attribute set per UPDATE).
//! Withdrawals are sent only for prefixes the peer has. The cursor then moves past what was
//! written: each flush costs what it sends.

use super::export::{ExportCtx, NextHop};
use super::out_table::{AttrId, Chunk, ChunkKey, OutTable};
use crate::wire::update::{write_announcements, write_withdrawals};
use crate::wire::{Ctx, Family, Nlri};
use bytes::{Bytes, BytesMut};
use ipnet::IpNet;

/// What one flush wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    pub messages: usize,
    pub announced: usize,
    pub withdrawn: usize,
    /// Routes left out because the session has no next hop of their family.
    pub no_next_hop: usize,
}

/// What a session needs to encode its routes.
#[derive(Clone, Copy, Debug)]
pub struct Encoding<'a> {
    pub export: &'a ExportCtx,
    pub ctx: &'a Ctx,
    /// Families the session negotiated; routes of others are not sent.
    pub families: &'a [Family],
}

impl Encoding<'_> {
    fn key(&self) -> ChunkKey {
        let (v4, v6) = (Family::IPV4_UNICAST, Family::IPV6_UNICAST);
        ChunkKey {
            export: self.export.clone(),
            max_len: self.ctx.max_len,
            add_path: [self.ctx.add_path_tx(v4), self.ctx.add_path_tx(v6)],
            families: [self.families.contains(&v4), self.families.contains(&v6)],
        }
    }
}

/// One bit per table slot.
#[derive(Clone, Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn get(&self, i: u32) -> bool {
        self.0.get(i as usize / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn set(&mut self, i: u32) {
        let w = i as usize / 64;
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: u32) {
        if let Some(w) = self.0.get_mut(i as usize / 64) {
            *w &= !(1 << (i % 64));
        }
    }
    fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(i as u32 * 64 + b)
            })
        })
    }
}

/// Announcements of one attribute set and family within a flush.
#[derive(Debug, Default)]
struct Group {
    v6: bool,
    attrs: AttrId,
    nlri: Vec<Nlri>,
    slots: Vec<u32>,
}

#[derive(Debug, Default)]
pub struct AdjRibOut {
    cursor: u64,
    /// While making a chunk to share: the slots it announces, withdraws and skips.
    record: Option<Chunk>,
    sent: Bits,
    /// Prefixes the peer has from us, IPv4 and IPv6.
    count: [usize; 2],
    // Scratch space, kept between flushes.
    withdraw: [Vec<Nlri>; 2],
    withdraw_slots: [Vec<u32>; 2],
    groups: Vec<Group>,
}

/// Prefixes of about this many octets per group, between two looks at the budget.
const GROUP_OVERHEAD: usize = 64;

fn v6(p: &IpNet) -> bool {
    matches!(p, IpNet::V6(_))
}

fn family(v6: bool) -> Family {
    if v6 { Family::IPV6_UNICAST } else { Family::IPV4_UNICAST }
}

impl AdjRibOut {
    pub fn new() -> AdjRibOut {
        AdjRibOut::default()
    }

    /// The table version up to which this peer has been sent everything.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The peer has nothing from us (new session, or the session went down).
    pub fn reset(&mut self) {
        self.cursor = 0;
        self.sent = Bits::default();
        self.count = [0, 0];
    }

    /// Send everything again (route refresh, soft reset): the peer keeps what it has and gets
    /// every route once more.
    pub fn resend(&mut self) {
        self.cursor = 0;
    }

    /// Whether the table has changes this peer has not been sent.
    pub fn pending(&self, t: &OutTable) -> bool {
        self.cursor < t.version()
    }

    /// Prefixes of a family the peer has from us.
    pub fn count(&self, f: Family) -> usize {
        if f == Family::IPV4_UNICAST {
            self.count[0]
        } else if f == Family::IPV6_UNICAST {
            self.count[1]
        } else {
            0
        }
    }

    /// Whether the peer has been sent the route in `slot`.
    pub fn has(&self, slot: u32) -> bool {
        self.sent.get(slot)
    }

    /// The table slots the peer has routes of.
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.sent.ones()
    }

    fn group(&mut self, v6: bool, attrs: AttrId) -> (usize, bool) {
        // Routes sharing attributes usually come together: look at the last group first.
        if let Some(i) = self.groups.iter().rposition(|g| g.v6 == v6 && g.attrs == attrs) {
            return (i, false);
        }
        self.groups.push(Group { v6, attrs, ..Group::default() });
        (self.groups.len() - 1, true)
    }

    /// The UPDATEs for the next changes after the cursor, about `budget` octets, or `None`
    /// when the peer is up to date. With `share` (other peers of the group may encode alike),
    /// a chunk such a peer already made from this cursor is taken as it is, the same octets
    /// without encoding or copying them, when this peer has the same removed routes that
    /// chunk withdraws; and a chunk made here is kept for them.
    pub fn next_chunk(
        &mut self,
        t: &mut OutTable,
        e: &Encoding,
        budget: usize,
        share: bool,
    ) -> (Flushed, Option<Bytes>) {
        let key = share.then(|| e.key());
        if let Some(c) = key.as_ref().and_then(|k| t.chunk(k, self.cursor)) {
            let fits =
                c.withdrawn.iter().flatten().all(|s| self.sent.get(*s)) && c.skipped.iter().all(|s| !self.sent.get(*s));
            if fits {
                for f in 0..2 {
                    for &s in &c.withdrawn[f] {
                        self.sent.clear(s);
                    }
                    self.count[f] -= c.withdrawn[f].len();
                    for &s in &c.announced[f] {
                        if !self.sent.get(s) {
                            self.sent.set(s);
                            self.count[f] += 1;
                        }
                    }
                }
                self.cursor = c.to;
                let announced = c.announced.iter().map(Vec::len).sum();
                let withdrawn = c.withdrawn.iter().map(Vec::len).sum();
                let done = Flushed { messages: c.messages, announced, withdrawn, no_next_hop: c.no_next_hop };
                return (done, Some(c.bytes.clone()));
            }
        }
        let mut out = BytesMut::with_capacity(budget.min(1 << 20) + 4096);
        let from = self.cursor;
        if let Some(key) = key.clone() {
            let (epoch, bytes) = (t.epoch(), Bytes::new());
            let empty = || [Vec::new(), Vec::new()];
            self.record = Some(Chunk {
                key,
                epoch,
                from,
                to: from,
                bytes,
                announced: empty(),
                withdrawn: empty(),
                skipped: Vec::new(),
                messages: 0,
                no_next_hop: 0,
            });
        }
        let done = self.flush(t, e, &mut out, budget);
        let bytes = out.freeze();
        if let Some(mut c) = self.record.take()
            && !bytes.is_empty()
        {
            c.to = self.cursor;
            c.bytes = bytes.clone();
            c.messages = done.messages;
            c.no_next_hop = done.no_next_hop;
            t.remember(c);
        }
        (done, (!bytes.is_empty()).then_some(bytes))
    }

    /// Appends UPDATEs for the changes after the cursor to `out`, until about `budget` octets
    /// are written or the peer is up to date.
    pub fn flush(&mut self, t: &mut OutTable, e: &Encoding, out: &mut BytesMut, budget: usize) -> Flushed {
        let mut done = Flushed::default();
        let add_path = [e.ctx.add_path_tx(Family::IPV4_UNICAST), e.ctx.add_path_tx(Family::IPV6_UNICAST)];
        let next_hop = [e.export.next_hop(false), e.export.next_hop(true)];
        let wanted = [e.families.contains(&Family::IPV4_UNICAST), e.families.contains(&Family::IPV6_UNICAST)];
        let mut estimate = 0;
        let mut last = self.cursor;
        let mut finished = true;
        for (_, c) in t.changes(t.position(self.cursor)) {
            if estimate >= budget {
                finished = false;
                break;
            }
            last = c.version;
            let f = v6(&c.prefix) as usize;
            if !wanted[f] {
                continue;
            }
            let len = crate::wire::nlri::encoded_len(&c.prefix, add_path[f]);
            match c.attrs {
                None => {
                    if self.sent.get(c.slot) {
                        self.withdraw[f].push(Nlri::new(c.prefix));
                        self.withdraw_slots[f].push(c.slot);
                        estimate += len;
                    } else if let Some(r) = &mut self.record {
                        r.skipped.push(c.slot);
                    }
                }
                Some(_) if next_hop[f].is_none() => done.no_next_hop += 1,
                Some(id) => {
                    let (g, new) = self.group(f == 1, id);
                    self.groups[g].nlri.push(Nlri::new(c.prefix));
                    self.groups[g].slots.push(c.slot);
                    estimate += len + if new { GROUP_OVERHEAD } else { 0 };
                }
            }
        }
        self.cursor = if finished { t.version() } else { last };

        for f in 0..2 {
            if !self.withdraw[f].is_empty() {
                done.messages += write_withdrawals(family(f == 1), &self.withdraw[f], e.ctx, out);
                done.withdrawn += self.withdraw[f].len();
                for &s in &self.withdraw_slots[f] {
                    self.sent.clear(s);
                }
                if let Some(r) = &mut self.record {
                    r.withdrawn[f].extend_from_slice(&self.withdraw_slots[f]);
                }
                self.count[f] -= self.withdraw[f].len();
                self.withdraw[f].clear();
                self.withdraw_slots[f].clear();
            }
        }
        let mut groups = std::mem::take(&mut self.groups);
        for g in groups.drain(..) {
            let f = g.v6 as usize;
            let Some(nh) = &next_hop[f] else { continue };
            let mp = match nh {
                NextHop::Classic(_) => None,
                NextHop::Mp(m) => Some(m),
            };
            // An attribute set too large for any UPDATE cannot be sent: its routes stay unsent.
            let written = match t.encoded(g.attrs, g.v6, e.export, nh) {
                Some(attrs) => write_announcements(family(g.v6), mp, &attrs, &g.nlri, e.ctx, out).ok(),
                None => None,
            };
            if let Some(n) = written {
                done.messages += n;
                done.announced += g.nlri.len();
                if let Some(r) = &mut self.record {
                    r.announced[f].extend_from_slice(&g.slots);
                }
                for &s in &g.slots {
                    if !self.sent.get(s) {
                        self.sent.set(s);
                        self.count[f] += 1;
                    }
                }
            }
        }
        self.groups = groups;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::AdvertAttrs;
    use crate::wire::attribute::{Community, MpNextHop};
    use crate::wire::{Message, decode, header};
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn ctx() -> Ctx {
        Ctx { four_octet_as: true, ..Ctx::default() }
    }

    fn export() -> ExportCtx {
        ExportCtx {
            local_as: 65005,
            ebgp: false,
            next_hop_v4: Some(Ipv4Addr::new(10, 0, 5, 11)),
            next_hop_v6: Some("fd00::11".parse().unwrap()),
            extended_next_hop_v4: false,
            four_octet_as: true,
        }
    }

    fn attrs(comm: u32) -> Arc<AdvertAttrs> {
        Arc::new(AdvertAttrs { communities: vec![Community(comm)], ..Default::default() })
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

    fn flush(rib: &mut AdjRibOut, t: &mut OutTable, families: &[Family], budget: usize) -> (Flushed, BytesMut) {
        let (ex, c) = (export(), ctx());
        let mut out = BytesMut::new();
        let f = rib.flush(t, &Encoding { export: &ex, ctx: &c, families }, &mut out, budget);
        (f, out)
    }

    #[test]
    fn only_the_difference_goes_out() {
        let mut t = OutTable::new();
        let mut rib = AdjRibOut::new();
        let a = attrs(1);
        for i in 0..1000 {
            t.upsert(v4(i), &a);
        }
        let (f, out) = flush(&mut rib, &mut t, ALL, usize::MAX);
        assert_eq!((f.announced, f.withdrawn, f.messages), (1000, 0, 2));
        assert_eq!(rib.count(Family::IPV4_UNICAST), 1000);
        assert_eq!(updates(&out).iter().map(|u| u.nlri.len()).sum::<usize>(), 1000);
        assert!(!rib.pending(&t));
        // Drop 500: exactly those are withdrawn, in one UPDATE.
        for i in 0..500 {
            t.remove(&v4(i));
        }
        let (f, out) = flush(&mut rib, &mut t, ALL, usize::MAX);
        assert_eq!((f.announced, f.withdrawn, f.messages), (0, 500, 1));
        let mut w: Vec<IpNet> = updates(&out)[0].withdrawn.iter().map(|n| n.prefix).collect();
        w.sort();
        assert_eq!(w, (0..500).map(v4).collect::<Vec<_>>());
        assert_eq!(rib.count(Family::IPV4_UNICAST), 500);
        assert_eq!(flush(&mut rib, &mut t, ALL, usize::MAX).0, Flushed::default());
    }

    #[test]
    fn changed_attributes_are_re_announced_grouped() {
        let mut t = OutTable::new();
        let mut rib = AdjRibOut::new();
        for i in 0..10 {
            t.upsert(v4(i), &attrs(1));
        }
        flush(&mut rib, &mut t, ALL, usize::MAX);
        for i in 0..5 {
            t.upsert(v4(i), &attrs(2));
        }
        let (f, out) = flush(&mut rib, &mut t, ALL, usize::MAX);
        assert_eq!((f.announced, f.messages), (5, 1));
        assert_eq!(updates(&out)[0].attributes.communities, vec![Community(2)]);
        assert_eq!(rib.count(Family::IPV4_UNICAST), 10, "a replaced route is still one route");
    }

    #[test]
    fn a_route_added_then_removed_between_two_flushes_sends_nothing() {
        let mut t = OutTable::new();
        let mut rib = AdjRibOut::new();
        t.upsert(v4(1), &attrs(1));
        flush(&mut rib, &mut t, ALL, usize::MAX);
        t.upsert(v4(2), &attrs(1));
        t.remove(&v4(2));
        let (f, out) = flush(&mut rib, &mut t, ALL, usize::MAX);
        assert_eq!(f, Flushed::default(), "the peer never had it: no withdrawal either");
        assert!(out.is_empty());
        assert!(!rib.pending(&t));
    }

    #[test]
    fn the_budget_limits_one_flush_and_the_rest_follows() {
        let mut t = OutTable::new();
        let mut rib = AdjRibOut::new();
        let a = attrs(1);
        for i in 0..10_000 {
            t.upsert(v4(i), &a);
        }
        let (f1, mut all) = flush(&mut rib, &mut t, ALL, 4096);
        assert!(f1.announced > 0 && f1.announced < 10_000, "{f1:?}");
        assert!(rib.pending(&t));
        let mut total = f1.announced;
        while rib.pending(&t) {
            let (f, out) = flush(&mut rib, &mut t, ALL, 4096);
            assert!(out.len() < 4096 + 4096, "one flush overshoots its budget by at most a message");
            total += f.announced;
            all.extend_from_slice(&out);
        }
        assert_eq!(total, 10_000);
        assert_eq!(updates(&all).iter().map(|u| u.nlri.len()).sum::<usize>(), 10_000);
    }

    #[test]
    fn families_not_negotiated_are_not_sent() {
        let mut t = OutTable::new();
        let mut rib = AdjRibOut::new();
        t.upsert("2001:db8::1/128".parse().unwrap(), &attrs(1));
        let (f, _) = flush(&mut rib, &mut t, &[Family::IPV4_UNICAST], usize::MAX);
        assert_eq!(f.announced, 0);
        assert!(!rib.pending(&t));
        assert_eq!(rib.count(Family::IPV6_UNICAST), 0);
    }

    #[test]
    fn ipv6_goes_in_mp_reach_and_resend_sends_everything_again() {
        let mut t = OutTable::new();
        let mut rib = AdjRibOut::new();
        t.upsert("2001:db8::1/128".parse().unwrap(), &attrs(1));
        let (_, out) = flush(&mut rib, &mut t, ALL, usize::MAX);
        let u = updates(&out);
        let r = u[0].mp_reach.as_ref().unwrap();
        assert_eq!(r.family, Family::IPV6_UNICAST);
        assert_eq!(r.next_hop, MpNextHop::V6 { global: "fd00::11".parse().unwrap(), link_local: None });
        assert_eq!(u[0].attributes.next_hop, None);
        rib.resend();
        assert!(rib.pending(&t));
        let (f, _) = flush(&mut rib, &mut t, ALL, usize::MAX);
        assert_eq!(f.announced, 1);
        assert_eq!(rib.count(Family::IPV6_UNICAST), 1);
        rib.reset();
        assert_eq!(rib.count(Family::IPV6_UNICAST), 0);
        assert!(rib.pending(&t));
    }

    #[test]
    fn two_peers_of_one_table_each_get_everything_and_share_the_encoding() {
        let mut t = OutTable::new();
        let (mut a, mut b) = (AdjRibOut::new(), AdjRibOut::new());
        for i in 0..100 {
            t.upsert(v4(i), &attrs(1));
        }
        let (_, first) = flush(&mut a, &mut t, ALL, usize::MAX);
        t.remove(&v4(0));
        let (fb, _) = flush(&mut b, &mut t, ALL, usize::MAX);
        assert_eq!((fb.announced, fb.withdrawn), (99, 0), "b starts late: it never sees 20.0.0.0");
        let (fa, _) = flush(&mut a, &mut t, ALL, usize::MAX);
        assert_eq!((fa.announced, fa.withdrawn), (0, 1));
        assert_eq!(t.encodings(), 1, "one session context and attribute set, encoded once");
        assert!(!first.is_empty());
        // Both passed the tombstone: it can go.
        t.collect(a.cursor().min(b.cursor()));
        assert_eq!(t.slots(), 100);
        t.upsert(v4(500), &attrs(1));
        assert_eq!(t.slots(), 100, "the tombstone's slot was reused");
        assert!(!a.has(0) && !b.has(0));
    }

    #[test]
    fn sessions_that_encode_alike_send_the_same_octets_once() {
        let mut t = OutTable::new();
        let a = attrs(1);
        for i in 0..50_000 {
            t.upsert(v4(i), &a);
        }
        let (ex, c) = (export(), ctx());
        let e = Encoding { export: &ex, ctx: &c, families: ALL };
        let (mut p, mut q) = (AdjRibOut::new(), AdjRibOut::new());
        let (mut chunks, mut shared) = (0, 0);
        loop {
            let (fp, bp) = p.next_chunk(&mut t, &e, 16 * 1024, true);
            let (fq, bq) = q.next_chunk(&mut t, &e, 16 * 1024, true);
            assert_eq!(fp, fq);
            match (bp, bq) {
                (Some(x), Some(y)) => {
                    chunks += 1;
                    assert_eq!(x, y);
                    shared += (x.as_ptr() == y.as_ptr()) as usize;
                }
                (None, None) => break,
                other => panic!("one peer got more than the other: {other:?}"),
            }
        }
        assert!(chunks > 5);
        assert_eq!(shared, chunks, "every chunk of the second peer is the first one's, not a copy");
        assert_eq!((p.count(Family::IPV4_UNICAST), q.count(Family::IPV4_UNICAST)), (50_000, 50_000));
        // A withdrawal both peers owe is shared too.
        t.remove(&v4(7));
        let (fp, bp) = p.next_chunk(&mut t, &e, 16 * 1024, true);
        let (_, bq) = q.next_chunk(&mut t, &e, 16 * 1024, true);
        assert_eq!(fp.withdrawn, 1);
        assert_eq!(bp.unwrap().as_ptr(), bq.unwrap().as_ptr());
        assert_eq!(q.count(Family::IPV4_UNICAST), 49_999);
    }

    #[test]
    fn a_chunk_is_not_shared_with_a_peer_that_lacks_what_it_withdraws() {
        let mut t = OutTable::new();
        let a = attrs(1);
        for i in 0..10 {
            t.upsert(v4(i), &a);
        }
        let (ex, c) = (export(), ctx());
        let e = Encoding { export: &ex, ctx: &c, families: ALL };
        let (mut p, mut q) = (AdjRibOut::new(), AdjRibOut::new());
        p.next_chunk(&mut t, &e, usize::MAX, true);
        t.remove(&v4(0));
        // q starts after the removal and stops short of the tombstone (nine /32 fill the
        // budget): at the same cursor as p, without the route p still has.
        let (fq, _) = q.next_chunk(&mut t, &e, GROUP_OVERHEAD + 9 * 5, true);
        assert_eq!(fq.announced, 9);
        assert_eq!(q.cursor(), p.cursor());
        let (fp, bp) = p.next_chunk(&mut t, &e, usize::MAX, true);
        assert_eq!(fp.withdrawn, 1);
        assert!(bp.is_some());
        let (fq, bq) = q.next_chunk(&mut t, &e, usize::MAX, true);
        assert_eq!((fq, bq), (Flushed::default(), None), "q never had it: nothing to withdraw");
        assert_eq!(q.count(Family::IPV4_UNICAST), 9);
        assert!(!q.pending(&t));
    }
}
