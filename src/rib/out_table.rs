//! The outbound table of one export group: the routes every peer of the group should have,
//! in a change log that each peer drains at its own pace (RFC 4271 §9.2, "Update-Send").
//!
//! Peers of one virtual router that get the same routes with the same policy attributes
//! share one `OutTable`; what differs per session (next hop, AS_PATH, LOCAL_PREF, the
//! encoding context) is applied when a peer encodes (`adj_rib_out.rs`). The table costs one
//! entry per route however many peers share it, and a peer costs a cursor and one bit per
//! route.
//!
//! ```text
//!   routes (slab, one slot per prefix)        log (ascending version)
//!   slot │ prefix        │ attrs │ version     (version, slot)
//!   ─────┼───────────────┼───────┼────────     (3, 0) (5, 2) (6, 1) (7, 0) ...
//!     0  │ 20.0.0.1/32   │ a1    │ 7             ▲ stale: slot 0 is at 7 now
//!     1  │ 20.0.0.2/32   │ gone  │ 6            peer A's cursor = 5 ─┘   peer B's cursor = 7
//!     2  │ 10.1.0.0/24   │ a0    │ 5
//! ```
//! Every change gives the prefix the next version and appends `(version, slot)` to the log;
//! the entry it had before goes stale. A peer at cursor `c` has been sent everything of
//! version `<= c`, so catching up costs what changed since, never a scan of the table. A
//! removed prefix stays as a tombstone (`gone`) until every established peer's cursor has
//! passed it ([`OutTable::collect`]), so peers that have it send the withdrawal.

use super::export::{AdvertAttrs, Advertisement, ExportCtx, NextHop};
use crate::wire::Family;
use bytes::Bytes;
use hashbrown::HashTable;
use ipnet::IpNet;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// An attribute set's number in its table.
pub type AttrId = u32;

/// `Route::attrs` of a removed prefix whose withdrawal peers may still have to send.
const GONE: AttrId = u32::MAX;

/// One prefix of the table. `version == 0` marks a free slot.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub version: u64,
    pub attrs: AttrId,
    pub prefix: IpNet,
}

impl Route {
    pub fn is_live(&self) -> bool {
        self.version != 0 && self.attrs != GONE
    }
}

/// One change a peer has not seen yet, as the log hands it out.
#[derive(Clone, Copy, Debug)]
pub struct Change {
    pub version: u64,
    pub slot: u32,
    pub prefix: IpNet,
    /// `None`: the prefix was removed.
    pub attrs: Option<AttrId>,
}

#[derive(Debug)]
struct AttrSlot {
    attrs: Arc<AdvertAttrs>,
    /// Live routes using it.
    refs: u32,
}

/// Attribute sets, each stored once with a count of the routes that use it.
#[derive(Debug, Default)]
struct AttrStore {
    ids: HashMap<Arc<AdvertAttrs>, AttrId>,
    sets: Vec<Option<AttrSlot>>,
    free: Vec<AttrId>,
}

impl AttrStore {
    fn acquire(&mut self, a: &Arc<AdvertAttrs>) -> AttrId {
        if let Some(&id) = self.ids.get(a) {
            if let Some(s) = self.sets[id as usize].as_mut() {
                s.refs += 1;
            }
            return id;
        }
        let slot = AttrSlot { attrs: a.clone(), refs: 1 };
        let id = match self.free.pop() {
            Some(id) => {
                self.sets[id as usize] = Some(slot);
                id
            }
            None => {
                self.sets.push(Some(slot));
                (self.sets.len() - 1) as AttrId
            }
        };
        self.ids.insert(a.clone(), id);
        id
    }

    /// Drops one use; returns whether the set is gone.
    fn release(&mut self, id: AttrId) -> bool {
        let Some(s) = self.sets.get_mut(id as usize).and_then(Option::as_mut) else { return false };
        s.refs -= 1;
        if s.refs > 0 {
            return false;
        }
        if let Some(s) = self.sets[id as usize].take() {
            self.ids.remove(&s.attrs);
        }
        self.free.push(id);
        true
    }

    fn get(&self, id: AttrId) -> Option<&Arc<AdvertAttrs>> {
        self.sets.get(id as usize).and_then(Option::as_ref).map(|s| &s.attrs)
    }
}

/// What a chunk of UPDATEs depends on besides the table: two sessions with equal keys write
/// the same octets for the same changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkKey {
    pub export: ExportCtx,
    pub max_len: usize,
    /// ADD-PATH send, IPv4 and IPv6 (RFC 7911).
    pub add_path: [bool; 2],
    /// Families negotiated, IPv4 and IPv6.
    pub families: [bool; 2],
}

/// UPDATEs one peer wrote for the changes from cursor `from` to `to`, kept so that the other
/// peers of the group with the same [`ChunkKey`] send the same octets instead of encoding
/// them again. Valid while the table is unchanged (`epoch`).
#[derive(Debug)]
pub struct Chunk {
    pub key: ChunkKey,
    pub epoch: u64,
    pub from: u64,
    pub to: u64,
    pub bytes: Bytes,
    /// Slots announced and withdrawn, per family (IPv4, IPv6).
    pub announced: [Vec<u32>; 2],
    pub withdrawn: [Vec<u32>; 2],
    /// Removed routes in the range that the peer did not have (so sent no withdrawal for).
    pub skipped: Vec<u32>,
    pub messages: usize,
    pub no_next_hop: usize,
}

/// Chunks kept per table: peers of one group drain it in step, so the trailing ones find
/// the leading one's chunks here.
const CHUNKS: usize = 32;

/// What one [`OutTable::sync`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

impl Synced {
    pub fn any(&self) -> bool {
        self.added + self.changed + self.removed > 0
    }
}

#[derive(Debug, Default)]
pub struct OutTable {
    routes: Vec<Route>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    log: Vec<(u64, u32)>,
    /// Log entries that a later change of their prefix made stale.
    stale: usize,
    tombstones: usize,
    /// Tombstones up to this version have been freed.
    swept: u64,
    version: u64,
    attrs: AttrStore,
    live: [usize; 2],
    /// Attribute sets released since the encodings were last pruned.
    released: Vec<AttrId>,
    /// During a replacement ([`OutTable::begin`]): the slots kept so far.
    marks: Vec<u64>,
    /// Changes with every mutation, including freed tombstones: a [`Chunk`] is valid only at
    /// the epoch it was made at.
    epoch: u64,
    chunks: std::collections::VecDeque<Chunk>,
    /// Encoded Path Attributes per session context, attribute set and family (IPv6 or not):
    /// made once, shared by every peer whose session encodes alike.
    encoded: HashMap<ExportCtx, HashMap<(AttrId, bool), Bytes>>,
}

fn fam(p: &IpNet) -> usize {
    match p {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1,
    }
}

impl OutTable {
    pub fn new() -> OutTable {
        OutTable::default()
    }

    /// The newest version: a peer whose cursor is here has everything.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Live routes of a family.
    pub fn len(&self, f: Family) -> usize {
        if f == Family::IPV4_UNICAST {
            self.live[0]
        } else if f == Family::IPV6_UNICAST {
            self.live[1]
        } else {
            0
        }
    }

    pub fn total(&self) -> usize {
        self.live[0] + self.live[1]
    }

    /// Slots in use (live routes and tombstones): the size a peer's sent-bitmap needs.
    pub fn slots(&self) -> usize {
        self.routes.len()
    }

    pub fn attrs(&self, id: AttrId) -> Option<&Arc<AdvertAttrs>> {
        self.attrs.get(id)
    }

    pub fn route(&self, slot: u32) -> Option<&Route> {
        self.routes.get(slot as usize)
    }

    fn find(&self, p: &IpNet) -> Option<u32> {
        let h = self.hasher.hash_one(p);
        self.index.find(h, |&s| self.routes[s as usize].prefix == *p).copied()
    }

    /// The attributes `prefix` is announced with, if it is.
    pub fn get(&self, p: &IpNet) -> Option<&Arc<AdvertAttrs>> {
        let r = &self.routes[self.find(p)? as usize];
        if r.is_live() { self.attrs.get(r.attrs) } else { None }
    }

    /// Every live route, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &IpNet, &Arc<AdvertAttrs>)> {
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_live())
            .filter_map(|(i, r)| Some((i as u32, &r.prefix, self.attrs.get(r.attrs)?)))
    }

    fn bump(&mut self, slot: u32) {
        self.epoch += 1;
        self.version += 1;
        let r = &mut self.routes[slot as usize];
        if r.version != 0 {
            self.stale += 1;
        }
        r.version = self.version;
        self.log.push((self.version, slot));
    }

    /// Announces `prefix` with `attrs` (or changes its attributes). Returns whether anything
    /// changed.
    pub fn upsert(&mut self, prefix: IpNet, attrs: &Arc<AdvertAttrs>) -> bool {
        self.put(prefix, attrs).1
    }

    /// [`OutTable::upsert`], returning the prefix's slot too.
    fn put(&mut self, prefix: IpNet, attrs: &Arc<AdvertAttrs>) -> (u32, bool) {
        match self.find(&prefix) {
            Some(slot) => {
                let old = self.routes[slot as usize].attrs;
                if old != GONE && self.attrs.get(old).is_some_and(|a| Arc::ptr_eq(a, attrs) || **a == **attrs) {
                    return (slot, false);
                }
                let id = self.attrs.acquire(attrs);
                if old == GONE {
                    self.tombstones -= 1;
                    self.live[fam(&prefix)] += 1;
                } else if self.attrs.release(old) {
                    self.released.push(old);
                }
                self.routes[slot as usize].attrs = id;
                self.bump(slot);
                (slot, true)
            }
            None => {
                let id = self.attrs.acquire(attrs);
                let route = Route { version: 0, attrs: id, prefix };
                let slot = match self.free.pop() {
                    Some(s) => {
                        self.routes[s as usize] = route;
                        s
                    }
                    None => {
                        self.routes.push(route);
                        (self.routes.len() - 1) as u32
                    }
                };
                let h = self.hasher.hash_one(prefix);
                let (routes, hasher) = (&self.routes, &self.hasher);
                self.index.insert_unique(h, slot, |&s| hasher.hash_one(routes[s as usize].prefix));
                self.live[fam(&prefix)] += 1;
                self.bump(slot);
                (slot, true)
            }
        }
    }

    /// Withdraws `prefix`. Returns whether it was announced.
    pub fn remove(&mut self, prefix: &IpNet) -> bool {
        let Some(slot) = self.find(prefix) else { return false };
        let old = self.routes[slot as usize].attrs;
        if old == GONE {
            return false;
        }
        if self.attrs.release(old) {
            self.released.push(old);
        }
        self.routes[slot as usize].attrs = GONE;
        self.tombstones += 1;
        self.live[fam(prefix)] -= 1;
        self.bump(slot);
        true
    }

    /// Starts replacing the whole table route by route: [`OutTable::keep`] every route it
    /// should hold, then [`OutTable::sweep`] withdraws the others. Only what differs changes,
    /// and no list of the routes is needed.
    pub fn begin(&mut self) {
        self.marks.clear();
        self.marks.resize(self.routes.len().div_ceil(64), 0);
    }

    /// During a replacement: the table holds `prefix` with `attrs`. Returns whether that
    /// changed anything.
    pub fn keep(&mut self, prefix: IpNet, attrs: &Arc<AdvertAttrs>) -> bool {
        let (slot, changed) = self.put(prefix, attrs);
        let w = slot as usize / 64;
        if w >= self.marks.len() {
            self.marks.resize(w + 1, 0);
        }
        self.marks[w] |= 1 << (slot % 64);
        changed
    }

    /// Ends a replacement: withdraws every route not kept since [`OutTable::begin`].
    /// Returns how many.
    pub fn sweep(&mut self) -> usize {
        let marks = std::mem::take(&mut self.marks);
        let kept = |slot: usize| marks.get(slot / 64).is_some_and(|w| w & (1 << (slot % 64)) != 0);
        let gone: Vec<IpNet> =
            self.routes.iter().enumerate().filter(|(i, r)| r.is_live() && !kept(*i)).map(|(_, r)| r.prefix).collect();
        for p in &gone {
            self.remove(p);
        }
        gone.len()
    }

    /// Makes the table hold exactly `routes`, changing only what differs.
    pub fn sync(&mut self, routes: &[Advertisement]) -> Synced {
        let mut s = Synced::default();
        self.begin();
        for Advertisement { prefix, attrs } in routes {
            let existed = self.get(prefix).is_some();
            if self.keep(*prefix, attrs) {
                if existed {
                    s.changed += 1;
                } else {
                    s.added += 1;
                }
            }
        }
        s.removed = self.sweep();
        s
    }

    /// Where in the log the first change after `cursor` is.
    pub fn position(&self, cursor: u64) -> usize {
        self.log.partition_point(|&(v, _)| v <= cursor)
    }

    /// The changes after `cursor`, from log position `from` (see [`OutTable::position`]),
    /// skipping stale entries. Yields `(next position, change)`.
    pub fn changes(&self, from: usize) -> impl Iterator<Item = (usize, Change)> + '_ {
        self.log[from.min(self.log.len())..].iter().enumerate().filter_map(move |(i, &(v, slot))| {
            let r = &self.routes[slot as usize];
            (r.version == v).then(|| {
                let attrs = (r.attrs != GONE).then_some(r.attrs);
                (from + i + 1, Change { version: v, slot, prefix: r.prefix, attrs })
            })
        })
    }

    /// Log entries, stale ones included (what [`OutTable::collect`] keeps in check).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Frees the tombstones every established peer has passed (`min_cursor`: the lowest
    /// cursor among them, or the table's version when none is established), and compacts the
    /// log once stale entries outnumber the live ones. Versions never change, so cursors stay
    /// valid.
    pub fn collect(&mut self, min_cursor: u64) {
        if self.tombstones > 0 && min_cursor > self.swept {
            let (start, end) = (self.position(self.swept), self.position(min_cursor));
            self.swept = min_cursor;
            for i in start..end {
                let (v, slot) = self.log[i];
                let r = self.routes[slot as usize];
                if r.version == v && r.attrs == GONE {
                    let h = self.hasher.hash_one(r.prefix);
                    if let Ok(e) = self.index.find_entry(h, |&s| s == slot) {
                        e.remove();
                    }
                    self.routes[slot as usize].version = 0;
                    self.free.push(slot);
                    self.epoch += 1;
                    self.tombstones -= 1;
                    self.stale += 1;
                }
            }
        }
        if self.stale > 1024 && self.stale > self.log.len() / 2 {
            let routes = &self.routes;
            self.log.retain(|&(v, slot)| routes[slot as usize].version == v);
            self.log.shrink_to(self.log.len() * 2);
            self.stale = 0;
        }
    }

    /// The encoded Path Attributes of attribute set `id` for a session with context `ex`, for
    /// IPv6 routes or not, encoded on first use.
    pub fn encoded(&mut self, id: AttrId, v6: bool, ex: &ExportCtx, next_hop: &NextHop) -> Option<Bytes> {
        if !self.released.is_empty() {
            let gone = std::mem::take(&mut self.released);
            for per_ctx in self.encoded.values_mut() {
                per_ctx.retain(|(a, _), _| !gone.contains(a));
            }
        }
        if let Some(b) = self.encoded.get(ex).and_then(|m| m.get(&(id, v6))) {
            return Some(b.clone());
        }
        let b = ex.encode(self.attrs.get(id)?, next_hop);
        self.encoded.entry(ex.clone()).or_default().insert((id, v6), b.clone());
        Some(b)
    }

    /// A chunk made from `cursor` for sessions like `key`, while the table is unchanged.
    pub fn chunk(&self, key: &ChunkKey, cursor: u64) -> Option<&Chunk> {
        self.chunks.iter().find(|c| c.epoch == self.epoch && c.from == cursor && c.key == *key)
    }

    /// Keeps a chunk for the group's other peers.
    pub fn remember(&mut self, c: Chunk) {
        let epoch = self.epoch;
        self.chunks.retain(|c| c.epoch == epoch);
        if self.chunks.len() >= CHUNKS {
            self.chunks.pop_front();
        }
        self.chunks.push_back(Chunk { epoch, ..c });
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Encoded attribute sets held, over every session context.
    pub fn encodings(&self) -> usize {
        self.encoded.values().map(HashMap::len).sum()
    }

    /// Forgets the encodings of a session context no peer uses any more.
    pub fn forget_encoding(&mut self, ex: &ExportCtx) {
        self.encoded.remove(ex);
    }

    /// Bytes held, roughly: for the benchmarks' memory accounting and `kbgp status`.
    pub fn heap_bytes(&self) -> usize {
        self.routes.capacity() * std::mem::size_of::<Route>()
            + self.log.capacity() * std::mem::size_of::<(u64, u32)>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::attribute::Community;

    fn a(c: u32) -> Arc<AdvertAttrs> {
        Arc::new(AdvertAttrs { communities: vec![Community(c)], ..Default::default() })
    }

    fn p(i: u32) -> IpNet {
        IpNet::V4(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0x1400_0000 + i), 32).unwrap())
    }

    fn pending(t: &OutTable, cursor: u64) -> Vec<(IpNet, bool)> {
        t.changes(t.position(cursor)).map(|(_, c)| (c.prefix, c.attrs.is_some())).collect()
    }

    #[test]
    fn a_cursor_sees_only_what_changed_after_it() {
        let mut t = OutTable::new();
        for i in 0..5 {
            assert!(t.upsert(p(i), &a(1)));
        }
        assert_eq!(t.version(), 5);
        assert_eq!(pending(&t, 0).len(), 5);
        let at = t.version();
        assert!(!t.upsert(p(1), &a(1)), "same attributes: no change");
        assert!(t.upsert(p(2), &a(2)));
        assert!(t.remove(&p(3)));
        assert!(!t.remove(&p(3)));
        assert_eq!(pending(&t, at), vec![(p(2), true), (p(3), false)]);
        // From scratch: every prefix once, at its latest state.
        let all = pending(&t, 0);
        assert_eq!(all.len(), 5);
        assert!(all.contains(&(p(3), false)));
        assert_eq!(t.len(Family::IPV4_UNICAST), 4);
        assert_eq!(t.get(&p(2)), Some(&a(2)));
        assert_eq!(t.get(&p(3)), None);
    }

    #[test]
    fn attribute_sets_are_stored_once_and_released() {
        let mut t = OutTable::new();
        let x = a(1);
        for i in 0..100 {
            t.upsert(p(i), &a(1));
        }
        assert_eq!(t.attrs.ids.len(), 1);
        assert!(t.upsert(p(0), &a(2)));
        assert_eq!(t.attrs.ids.len(), 2);
        for i in 1..100 {
            t.remove(&p(i));
        }
        assert_eq!(std::mem::take(&mut t.released), vec![0]);
        assert_eq!(t.attrs.ids.len(), 1);
        // The freed id is reused.
        t.upsert(p(5), &x);
        assert_eq!(t.get(&p(5)), Some(&x));
        assert_eq!(t.attrs.ids.len(), 2);
    }

    #[test]
    fn tombstones_stay_until_every_peer_passed_them() {
        let mut t = OutTable::new();
        for i in 0..10 {
            t.upsert(p(i), &a(1));
        }
        let slow = t.version();
        t.remove(&p(0));
        t.collect(slow);
        assert_eq!(pending(&t, slow), vec![(p(0), false)], "the slow peer still has to withdraw it");
        t.collect(t.version());
        assert!(pending(&t, slow).is_empty());
        assert_eq!(t.find(&p(0)), None);
        // Its slot is reused, and the old log entry does not resurface.
        t.upsert(p(100), &a(1));
        assert_eq!(t.slots(), 10);
        assert_eq!(pending(&t, slow), vec![(p(100), true)]);
        // A removed-then-readded prefix is one change.
        let at = t.version();
        t.remove(&p(5));
        t.upsert(p(5), &a(1));
        assert_eq!(pending(&t, at), vec![(p(5), true)]);
    }

    #[test]
    fn sync_changes_only_the_difference() {
        let mut t = OutTable::new();
        let adv = |i: u32, c: u32| Advertisement { prefix: p(i), attrs: a(c) };
        let want: Vec<Advertisement> = (0..1000).map(|i| adv(i, 1)).collect();
        assert_eq!(t.sync(&want), Synced { added: 1000, changed: 0, removed: 0 });
        let v = t.version();
        assert!(!t.sync(&want).any());
        assert_eq!(t.version(), v);
        let mut want: Vec<Advertisement> = (500..1000).map(|i| adv(i, 1)).collect();
        want[0].attrs = a(2);
        assert_eq!(t.sync(&want), Synced { added: 0, changed: 1, removed: 500 });
        assert_eq!(pending(&t, v).len(), 501);
    }

    #[test]
    fn the_log_is_compacted_under_churn_and_cursors_stay_valid() {
        let mut t = OutTable::new();
        for i in 0..10 {
            t.upsert(p(i), &a(1));
        }
        for round in 0..5000u32 {
            t.upsert(p(round % 10), &a(round + 2));
            t.collect(t.version());
        }
        assert!(t.log_len() < 2100, "log of {} entries for 10 routes", t.log_len());
        let mid = t.version() - 3;
        assert_eq!(pending(&t, mid).len(), 3);
        assert_eq!(pending(&t, 0).len(), 10);
    }
}
