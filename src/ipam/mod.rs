//! # ipam — LB IPAM: addresses for LoadBalancer Services, from pools
//!
//! `allocate(&World)` is pure and deterministic: the same objects give the same assignments on
//! every node, so nodes running from the same file agree without talking to each other, and
//! the controller that will write `status.loadBalancer.ingress` in a cluster runs the same
//! code. Semantics follow Cilium's LB IPAM:
//!
//! - Services of `type: LoadBalancer` without a `loadBalancerClass`, or with kbgp's or Cilium's
//!   BGP class, get addresses; others are left alone.
//! - Addresses a Service already has (`status.loadBalancer.ingress`) are kept; addresses any
//!   other Service holds (another controller's) are never handed out.
//! - A Service may ask for addresses: annotation `kbgp.io/ips`, `lbipam.cilium.io/ips` or
//!   `io.cilium/lb-ipam-ips` (the first present; comma-separated), plus `spec.loadBalancerIP`.
//!   Each must be in an enabled pool that selects the Service and not held by another Service.
//! - Otherwise each needed family (`spec.ipFamilies`, `ipFamilyPolicy`) gets the lowest free
//!   address of the first pool, by name, that selects the Service and has one.
//! - Services with the same `lbipam.cilium.io/sharing-key` share an address when compatible
//!   (no equal port, same `externalTrafficPolicy`, identical selectors under `Local`, both
//!   namespaces allowed by `lbipam.cilium.io/sharing-cross-namespace`).
//! - Overlapping pools: the newer (by `creationTimestamp`, then name) is conflicting and hands
//!   out nothing. Every conflict is reported, never silently resolved.
//! - MetalLB's `IPAddressPool` and annotations: `metallb.io/loadBalancerIPs` asks for
//!   addresses, `metallb.io/address-pool` for a pool (even one with `autoAssign: false`),
//!   `metallb.io/allow-shared-ip` is a sharing key (across namespaces, as in MetalLB); the
//!   `metallb.universe.tf/` prefix too. `serviceAllocation` limits a pool to namespaces and
//!   Services and orders it by `priority` (lower first, unset last) before every pool without
//!   one; `autoAssign: false` pools serve only requests; `avoidBuggyIPs` skips .0 and .255.
//! - Order: Services by `creationTimestamp`, then namespace/name. In a file, Services without
//!   timestamps that are added later can shift unpinned addresses: pin what must not move.

pub mod controller;
mod range;

use crate::config::pool::LbPool;
use crate::config::{Namespace, Service, World};
use range::{Num, bounds, capacity, lowest_free, num, overlaps};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Annotations that request addresses, in the order they are looked up.
pub const IPS_ANNOTATIONS: &[&str] = &[
    "kbgp.io/ips",
    "lbipam.cilium.io/ips",
    "io.cilium/lb-ipam-ips",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];
pub const SHARING_KEY_ANNOTATIONS: &[&str] = &[
    "kbgp.io/sharing-key",
    "lbipam.cilium.io/sharing-key",
    "io.cilium/lb-ipam-sharing-key",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];
/// MetalLB's sharing keys, which hold across namespaces.
const METALLB_SHARING: &[&str] = &["metallb.io/allow-shared-ip", "metallb.universe.tf/allow-shared-ip"];
/// MetalLB's request for a pool by name.
pub const POOL_ANNOTATIONS: &[&str] = &["metallb.io/address-pool", "metallb.universe.tf/address-pool"];
pub const SHARING_NAMESPACES_ANNOTATIONS: &[&str] = &[
    "kbgp.io/sharing-cross-namespace",
    "lbipam.cilium.io/sharing-cross-namespace",
    "io.cilium/lb-ipam-sharing-cross-namespace",
];

/// A pool's counters and state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub name: String,
    pub total: u128,
    pub used: u128,
    /// Of `total` and `used`, the IPv6 addresses (MetalLB reports each family).
    pub ipv6_total: u128,
    pub ipv6_used: u128,
    pub disabled: bool,
    /// Why the pool hands out nothing, when it overlaps another.
    pub conflict: Option<String>,
}

impl PoolStatus {
    pub fn available(&self) -> u128 {
        self.available_of(self.total, self.used)
    }

    /// Addresses of one family it can still hand out.
    pub fn available_family(&self, ipv6: bool) -> u128 {
        if ipv6 {
            self.available_of(self.ipv6_total, self.ipv6_used)
        } else {
            self.available_of(self.total - self.ipv6_total, self.used - self.ipv6_used)
        }
    }

    fn available_of(&self, total: u128, used: u128) -> u128 {
        if self.conflict.is_some() || self.disabled { 0 } else { total.saturating_sub(used) }
    }
}

/// Something that could not be done as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `namespace/name` of the Service, or `pool NAME`.
    pub subject: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)
    }
}

/// An address given to a Service, and the pool it is from (`None`: kept from the Service's
/// status and inside no pool).
pub type Given = (IpAddr, Option<Arc<str>>);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allocation {
    /// Addresses per Service (`namespace/name`), with the pool each came from (`None`: kept
    /// from the Service's status and inside no pool; one name shared by all its addresses).
    pub services: BTreeMap<String, Vec<Given>>,
    pub pools: Vec<PoolStatus>,
    pub problems: Vec<Problem>,
}

fn first_annotation<'a>(s: &'a Service, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| s.annotations.get(*k)).map(String::as_str)
}

fn sharing_key(s: &Service) -> Option<&str> {
    first_annotation(s, SHARING_KEY_ANNOTATIONS).filter(|k| !k.is_empty())
}

fn allows_namespace(s: &Service, ns: &str) -> bool {
    s.namespace == ns
        || first_annotation(s, METALLB_SHARING).is_some()
        || first_annotation(s, SHARING_NAMESPACES_ANNOTATIONS)
            .is_some_and(|v| v.split(',').map(str::trim).any(|x| x == "*" || x == ns))
}

/// Whether two Services may hold the same address (Cilium's rules).
fn compatible(a: &Service, b: &Service) -> Result<(), String> {
    match (sharing_key(a), sharing_key(b)) {
        (Some(x), Some(y)) if x == y => {}
        _ => return Err("they do not have the same sharing key".into()),
    }
    if !allows_namespace(a, &b.namespace) || !allows_namespace(b, &a.namespace) {
        return Err("their namespaces do not allow each other (sharing-cross-namespace)".into());
    }
    if let Some(p) = a.ports.iter().find(|p| b.ports.contains(p)) {
        return Err(format!("both use port {p}"));
    }
    if a.external_traffic_local != b.external_traffic_local {
        return Err("their externalTrafficPolicy differs".into());
    }
    if a.external_traffic_local && (a.selector.is_empty() || a.selector != b.selector) {
        return Err("externalTrafficPolicy: Local needs identical selectors".into());
    }
    Ok(())
}

/// The families a Service needs, IPv4 first unless `ipFamilies` says otherwise.
fn families(s: &Service) -> Vec<bool> {
    let listed: Vec<bool> = s.ip_families.iter().map(|f| f == "IPv6").collect();
    match s.ip_family_policy.as_deref() {
        Some("PreferDualStack") | Some("RequireDualStack") => {
            let mut v = listed.clone();
            for fam in [false, true] {
                if !v.contains(&fam) {
                    v.push(fam);
                }
            }
            v
        }
        _ => vec![listed.first().copied().unwrap_or(false)],
    }
}

/// Whether pool `p` may give addresses to `s`: its `serviceSelector` (Cilium, kbgp) or its
/// `serviceAllocation` (MetalLB: the namespace among those listed or selected, and a
/// Service selector matching).
fn selects(p: &LbPool, s: &Service, namespaces: &[Arc<Namespace>]) -> bool {
    let labels = s.selector_labels();
    if !p.service_selector.as_ref().is_none_or(|sel| sel.matches(&labels)) {
        return false;
    }
    let Some(a) = &p.allocation else { return true };
    let ns_ok = (a.namespaces.is_empty() && a.namespace_selectors.is_empty())
        || a.namespaces.contains(&s.namespace)
        || namespaces
            .iter()
            .find(|n| n.name == s.namespace)
            .is_some_and(|n| a.namespace_selectors.iter().any(|sel| sel.matches(&n.labels)));
    ns_ok && (a.service_selectors.is_empty() || a.service_selectors.iter().any(|sel| sel.matches(&labels)))
}

/// The order pools are tried in for a Service that asks for none: MetalLB's pools with a
/// `serviceAllocation` by priority (lower first, unset last), then every other by name.
fn priority(p: &LbPool) -> (bool, u32) {
    match &p.allocation {
        Some(a) => (false, if a.priority == 0 { u32::MAX } else { a.priority }),
        None => (true, 0),
    }
}

fn age_key(ts: &Option<String>, name: &str) -> (bool, String, String) {
    (ts.is_none(), ts.clone().unwrap_or_default(), name.to_string())
}

/// The Services holding one address, in 4 bytes (a million addresses make the table the
/// biggest thing LB IPAM holds): one Service's index, or with the top bit set an entry of
/// `State::shared` when several Services share the address.
#[derive(Clone, Copy, Debug)]
struct Holders(u32);

const SHARED: u32 = 1 << 31;

impl Holders {
    /// Service `i` alone (a World has far fewer than 2^31 Services).
    fn one(i: usize) -> Holders {
        Holders(i as u32 & !SHARED)
    }

    fn iter(self, shared: &[Vec<usize>]) -> impl Iterator<Item = usize> + '_ {
        let (one, many) = if self.0 & SHARED == 0 {
            (Some(self.0 as usize), &[][..])
        } else {
            (None, shared.get((self.0 & !SHARED) as usize).map_or(&[][..], Vec::as_slice))
        };
        one.into_iter().chain(many.iter().copied())
    }

    fn push(&mut self, i: usize, shared: &mut Vec<Vec<usize>>) {
        if self.0 & SHARED == 0 {
            shared.push(vec![self.0 as usize, i]);
            self.0 = SHARED | (shared.len() - 1) as u32;
        } else if let Some(v) = shared.get_mut((self.0 & !SHARED) as usize) {
            v.push(i);
        }
    }
}

/// Address -> the Services holding it. IPv4 addresses, the bulk at scale, are keyed by their
/// 32 bits: 8 octets an entry instead of 24, which at a million addresses is the difference
/// between a table that fits the cache's working set and one that does not.
#[derive(Default)]
struct Owners {
    v4: hashbrown::HashMap<u32, Holders>,
    v6: hashbrown::HashMap<u128, Holders>,
}

impl Owners {
    fn with_capacity(v4: usize) -> Owners {
        Owners { v4: hashbrown::HashMap::with_capacity(v4), v6: Default::default() }
    }

    fn get(&self, ip: &IpAddr) -> Option<&Holders> {
        match ip {
            IpAddr::V4(a) => self.v4.get(&u32::from(*a)),
            IpAddr::V6(a) => self.v6.get(&u128::from(*a)),
        }
    }

    /// Adds Service `i` to the holders of `ip`, in one lookup.
    fn add(&mut self, ip: IpAddr, i: usize, shared: &mut Vec<Vec<usize>>) {
        use hashbrown::hash_map::Entry;
        fn add<K: std::hash::Hash + Eq>(
            e: Entry<'_, K, Holders, impl std::hash::BuildHasher>,
            i: usize,
            shared: &mut Vec<Vec<usize>>,
        ) {
            match e {
                Entry::Occupied(mut e) => e.get_mut().push(i, shared),
                Entry::Vacant(e) => {
                    e.insert(Holders::one(i));
                }
            }
        }
        match ip {
            IpAddr::V4(a) => add(self.v4.entry(u32::from(a)), i, shared),
            IpAddr::V6(a) => add(self.v6.entry(u128::from(a)), i, shared),
        }
    }

    fn keys(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.v4.keys().map(|a| IpAddr::V4((*a).into()));
        v4.chain(self.v6.keys().map(|a| IpAddr::V6((*a).into())))
    }
}

struct State<'a> {
    services: &'a [Arc<Service>],
    /// `namespace/name` of each Service, made once.
    keys: Vec<String>,
    /// Each Service's slot in `given` (Services with the same key share one).
    slot: Vec<usize>,
    /// The addresses given per slot, in order; they become `out.services` at the end.
    given: Vec<Vec<Given>>,
    /// Each Service's sharing key, looked up once.
    sharing: Vec<Option<&'a str>>,
    /// Address -> the Services holding it.
    owners: Owners,
    /// The holders of addresses that several Services share.
    shared: Vec<Vec<usize>>,
    /// The held addresses in order, for finding free ones; built when first needed (a file
    /// whose Services all have their addresses never needs it).
    used: Option<BTreeSet<Num>>,
    /// Addresses held by Services with a sharing key, per key, in order.
    by_sharing_key: HashMap<&'a str, BTreeSet<IpAddr>>,
    out: Allocation,
}

impl<'a> State<'a> {
    fn problem(&mut self, subject: String, message: String) {
        self.out.problems.push(Problem { subject, message });
    }

    /// Records that Service `i` holds `ip`, whatever else holds it.
    fn hold(&mut self, i: usize, ip: IpAddr) {
        self.owners.add(ip, i, &mut self.shared);
        self.held(i, ip);
    }

    /// Keeps the indexes beside `owners` up to date.
    fn held(&mut self, i: usize, ip: IpAddr) {
        if let Some(k) = self.sharing[i] {
            self.by_sharing_key.entry(k).or_default().insert(ip);
        }
        if let Some(used) = &mut self.used {
            used.insert(num(ip));
        }
    }

    fn used(&mut self) -> &BTreeSet<Num> {
        let owners = &self.owners;
        self.used.get_or_insert_with(|| owners.keys().map(num).collect())
    }

    /// Gives `ip` to Service `i` if nobody incompatible holds it.
    fn take(&mut self, i: usize, ip: IpAddr, pool: Option<Arc<str>>) -> bool {
        let s = &self.services[i];
        let conflict = self
            .owners
            .get(&ip)
            .and_then(|hs| hs.iter(&self.shared).find_map(|h| compatible(&self.services[h], s).err().map(|w| (h, w))));
        if let Some((h, why)) = conflict {
            let msg = format!("{ip} is already assigned to {}, and they cannot share it: {why}", self.keys[h]);
            self.problem(self.keys[i].clone(), msg);
            return false;
        }
        self.hold(i, ip);
        let given = &mut self.given[self.slot[i]];
        if given.is_empty() {
            given.reserve(s.ingress_ips.len());
        }
        given.push((ip, pool));
        true
    }

    /// The addresses given, per Service key.
    fn finish(mut self) -> Allocation {
        let mut keys: Vec<Option<&String>> = vec![None; self.given.len()];
        for (i, &slot) in self.slot.iter().enumerate() {
            keys[slot].get_or_insert(&self.keys[i]);
        }
        for (key, given) in keys.into_iter().zip(self.given) {
            if let Some(key) = key
                && !given.is_empty()
            {
                self.out.services.insert(key.clone(), given);
            }
        }
        self.out
    }
}

/// Works out every handled Service's addresses and every pool's state.
pub fn allocate(world: &World) -> Allocation {
    // Pools, oldest first: a newer pool overlapping an older one is the conflicting one.
    let mut by_age: Vec<&LbPool> = world.pools.iter().map(|p| &**p).collect();
    by_age.sort_by_key(|p| age_key(&p.creation_timestamp, &p.name));
    let mut conflicts: HashMap<String, String> = HashMap::new();
    let mut problems = Vec::new();
    for (i, p) in by_age.iter().enumerate() {
        let own = p.blocks.iter().enumerate().find_map(|(a, x)| {
            p.blocks[a + 1..]
                .iter()
                .position(|y| overlaps(x, y))
                .map(|b| format!("its blocks {a} and {} overlap", a + 1 + b))
        });
        let other = by_age[..i].iter().filter(|q| !conflicts.contains_key(&q.name)).find_map(|q| {
            p.blocks
                .iter()
                .any(|x| q.blocks.iter().any(|y| overlaps(x, y)))
                .then(|| format!("it overlaps the older pool {}", q.name))
        });
        if let Some(why) = own.or(other) {
            problems.push(Problem {
                subject: format!("pool {}", p.name),
                message: format!("conflicting, no addresses handed out: {why}"),
            });
            conflicts.insert(p.name.clone(), why);
        }
    }
    let mut by_name: Vec<&LbPool> = world.pools.iter().map(|p| &**p).collect();
    by_name.sort_by(|a, b| a.name.cmp(&b.name));
    let usable: Vec<&LbPool> = by_name.iter().filter(|p| !conflicts.contains_key(&p.name)).copied().collect();
    let pool_of = |ip: &IpAddr| usable.iter().find(|p| p.contains(ip)).copied();
    let names: HashMap<&str, Arc<str>> =
        world.pools.iter().map(|p| (p.name.as_str(), Arc::from(p.name.as_str()))).collect();
    let name = |p: &LbPool| names.get(p.name.as_str()).cloned().unwrap_or_else(|| Arc::from(p.name.as_str()));

    let mut order: Vec<usize> = (0..world.services.len()).filter(|&i| world.handles(&world.services[i])).collect();
    order.sort_by_key(|&i| {
        let s = &world.services[i];
        (
            s.creation_timestamp.is_none(),
            s.creation_timestamp.clone().unwrap_or_default(),
            s.namespace.clone(),
            s.name.clone(),
        )
    });
    let addresses = world.services.iter().map(|s| s.ingress_ips.len()).sum();
    let keys: Vec<String> = world.services.iter().map(|s| s.key()).collect();
    let mut slots: HashMap<&str, usize> = HashMap::new();
    let slot: Vec<usize> = keys
        .iter()
        .map(|k| {
            let n = slots.len();
            *slots.entry(k.as_str()).or_insert(n)
        })
        .collect();
    let given = vec![Vec::new(); slots.len()];
    drop(slots);
    let mut st = State {
        services: &world.services,
        keys,
        slot,
        given,
        sharing: world.services.iter().map(|s| sharing_key(s)).collect(),
        owners: Owners::with_capacity(addresses),
        shared: Vec::new(),
        used: None,
        by_sharing_key: HashMap::new(),
        out: Allocation::default(),
    };
    st.out.problems = problems;

    // Addresses other controllers' Services hold are taken, even inside a pool.
    for (i, s) in world.services.iter().enumerate().filter(|(_, s)| !world.handles(s)) {
        for ip in &s.ingress_ips {
            st.hold(i, *ip);
        }
    }
    // Addresses Services already have stay theirs.
    for &i in &order {
        for ip in &world.services[i].ingress_ips {
            let pool = pool_of(ip).map(name);
            st.take(i, *ip, pool);
        }
    }
    for &i in &order {
        let s = &world.services[i];
        if !s.ingress_ips.is_empty() {
            continue;
        }
        let mut requested: Vec<IpAddr> = s.load_balancer_ip.into_iter().collect();
        let annotation = first_annotation(s, IPS_ANNOTATIONS);
        // A Service that asks for addresses gets those or none: a typo must not turn into
        // some other address.
        let asked = !requested.is_empty() || annotation.is_some();
        let wanted_pool = first_annotation(s, POOL_ANNOTATIONS).map(str::trim).filter(|p| !p.is_empty());
        if let Some(list) = annotation {
            for item in list.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                match item.parse::<IpAddr>() {
                    Ok(ip) if !requested.contains(&ip) => requested.push(ip),
                    Ok(_) => {}
                    Err(_) => st.problem(s.key(), format!("requested address {item:?} is not an IP address")),
                }
            }
        }
        if asked {
            for ip in requested {
                match by_name.iter().find(|p| p.contains(&ip)) {
                    None => st.problem(s.key(), format!("requested {ip} is in no pool")),
                    Some(p) if conflicts.contains_key(&p.name) => {
                        st.problem(s.key(), format!("requested {ip} is in pool {}, which is conflicting", p.name))
                    }
                    Some(p) if p.disabled => {
                        st.problem(s.key(), format!("requested {ip} is in pool {}, which is disabled", p.name))
                    }
                    Some(p) if !selects(p, s, &world.namespaces) => st.problem(
                        s.key(),
                        format!(
                            "requested {ip} is in pool {}, whose {} does not select this Service",
                            p.name,
                            if p.allocation.is_some() { "serviceAllocation" } else { "serviceSelector" }
                        ),
                    ),
                    Some(p) if p.avoid_buggy_ips && range::buggy(num(ip)) => st.problem(
                        s.key(),
                        format!("requested {ip} ends in .0 or .255, which pool {} avoids (avoidBuggyIPs)", p.name),
                    ),
                    Some(p) if wanted_pool.is_some_and(|w| w != p.name) => st.problem(
                        s.key(),
                        format!(
                            "requested {ip} is in pool {}, not in pool {} that its address-pool annotation names",
                            p.name,
                            wanted_pool.unwrap_or_default()
                        ),
                    ),
                    Some(p) => {
                        st.take(i, ip, Some(name(p)));
                    }
                }
            }
            continue;
        }
        let candidates: Vec<&LbPool> = match wanted_pool {
            // MetalLB: the pool named, even with autoAssign: false.
            Some(w) => {
                if !by_name.iter().any(|p| p.name == w) {
                    st.problem(s.key(), format!("its address-pool annotation names pool {w:?}, which does not exist"));
                    continue;
                }
                usable
                    .iter()
                    .filter(|p| p.name == w && !p.disabled && selects(p, s, &world.namespaces))
                    .copied()
                    .collect()
            }
            None => {
                let mut c: Vec<&LbPool> = usable
                    .iter()
                    .filter(|p| !p.disabled && p.auto_assign && selects(p, s, &world.namespaces))
                    .copied()
                    .collect();
                // Stable: pools of one priority stay in name order.
                c.sort_by_key(|p| priority(p));
                c
            }
        };
        for v6 in families(s) {
            let fam = if v6 { "IPv6" } else { "IPv4" };
            // An address already shared under this Service's key, if it is compatible.
            // Only addresses a Service with the same key holds can be (compatible() wants
            // every holder to have it), lowest first.
            let shared = sharing_key(s).and_then(|k| {
                st.by_sharing_key.get(k)?.iter().copied().filter(|ip| ip.is_ipv6() == v6).find(|ip| {
                    st.owners
                        .get(ip)
                        .is_some_and(|h| h.iter(&st.shared).all(|h| compatible(&world.services[h], s).is_ok()))
                })
            });
            if let Some(ip) = shared {
                let pool = pool_of(&ip).map(name);
                st.take(i, ip, pool);
                continue;
            }
            let used = st.used();
            let found = candidates.iter().find_map(|p| {
                p.blocks
                    .iter()
                    .filter(|b| bounds(b).0.v6 == v6)
                    .find_map(|b| lowest_free(b, p.allow_first_last_ips, p.avoid_buggy_ips, used))
                    .map(|ip| (ip, name(p)))
            });
            match found {
                Some((ip, pool)) => {
                    st.take(i, ip, Some(pool));
                }
                None if candidates.is_empty() => st.problem(s.key(), "no enabled pool selects this Service".into()),
                None => st.problem(s.key(), format!("no {fam} address left in the pools that select this Service")),
            }
        }
    }

    for p in &world.pools {
        let total = |v6: bool| -> u128 {
            p.blocks
                .iter()
                .filter(|b| b.is_ipv6() == v6)
                .map(|b| capacity(b, p.allow_first_last_ips, p.avoid_buggy_ips))
                .fold(0, u128::saturating_add)
        };
        let used = |v6: bool| st.owners.keys().filter(|ip| ip.is_ipv6() == v6 && p.contains(ip)).count() as u128;
        let (ipv6_total, ipv6_used) = (total(true), used(true));
        st.out.pools.push(PoolStatus {
            name: p.name.clone(),
            total: total(false).saturating_add(ipv6_total),
            used: used(false) + ipv6_used,
            ipv6_total,
            ipv6_used,
            disabled: p.disabled,
            conflict: conflicts.get(&p.name).cloned(),
        });
    }
    st.finish()
}

/// Gives every handled Service without addresses the ones `a` assigned (file mode: what the
/// controller would write to `status.loadBalancer.ingress`).
pub fn apply(world: &mut World, a: &Allocation) {
    let lb_class = world.lb_class.clone();
    for s in &mut world.services {
        if s.handled_by(lb_class.as_deref())
            && s.ingress_ips.is_empty()
            && let Some(v) = a.services.get(&s.key())
        {
            // Copies this Service only if another World shares it.
            Arc::make_mut(s).ingress_ips = v.iter().map(|(ip, _)| *ip).collect();
        }
    }
}

/// One Service's addresses for people (`kbgp check`): runs of consecutive addresses from the
/// same origin fold into `first-last (N addresses, ...)`, so a Service with a thousand
/// addresses is one short line, not a thousand entries.
pub fn describe(given: &[Given]) -> String {
    fn origin(pool: &Option<Arc<str>>) -> String {
        match pool {
            Some(p) => format!("pool {p}"),
            None => "its status, in no pool".to_string(),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < given.len() {
        let (first, pool) = &given[i];
        let mut j = i + 1;
        while j < given.len()
            && given[j].1 == *pool
            && num(given[j].0).v6 == num(*first).v6
            && num(given[j].0).n == num(given[j - 1].0).n.wrapping_add(1)
        {
            j += 1;
        }
        parts.push(match j - i {
            1 => format!("{first} ({})", origin(pool)),
            n => format!("{first}-{} ({n} addresses, {})", given[j - 1].0, origin(pool)),
        });
        i = j;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests;
