//! The routes of every export group, kept up to date as the World changes: a change costs
//! the routes it touches, not the size of the World.
//!
//! [`Planner::update`] takes each new World. When the node, its policy, the pools and the
//! peers are what they were, only the Services whose object or local endpoints changed are
//! looked at: their addresses before and after are counted out of and into the virtual
//! router's wanted prefixes, and the prefixes whose route changed in an export group come
//! back as a [`RouteUpdate::Delta`]. Anything else (a new policy, a relabelled node, a pool
//! change, the first World) plans everything again and comes back as
//! [`RouteUpdate::Full`], which the tables apply as a difference.
//!
//! The state is, per export set of a virtual router and per Service export in it, one count
//! per announced prefix (how many Service addresses ask for it), so a prefix two Services
//! share, or an aggregate several addresses fall under, stays until all of them are gone.

use super::candidate::{self, Decide, Record};
use super::{GroupKey, LocalEndpoints, Plan, PlanError, local_endpoints, plan};
use crate::config::policy::{Exports, PathAttributeRule, SelectorType, ServiceExport, VirtualRouter};
use crate::config::{Node, Service, World};
use crate::rib::{AdvertAttrs, Advertisement};
use crate::wire::Family;
use hashbrown::HashMap;
use ipnet::IpNet;
use std::sync::Arc;

/// Every export group with its routes, sorted by prefix.
pub type GroupRoutes = Vec<(GroupKey, Vec<Advertisement>)>;

/// Per export group, the prefixes whose route changed: the new attributes, or `None`
/// (withdrawn).
pub type GroupChanges = Vec<(GroupKey, Vec<(IpNet, Option<Arc<AdvertAttrs>>)>)>;

/// What changed in the export groups' routes.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteUpdate {
    /// Every group's whole route set; groups not listed have no routes.
    Full(GroupRoutes),
    /// Only these prefixes changed.
    Delta(GroupChanges),
}

impl RouteUpdate {
    /// Routes (Full) or changes (Delta) it carries.
    pub fn len(&self) -> usize {
        match self {
            RouteUpdate::Full(g) => g.iter().map(|(_, r)| r.len()).sum(),
            RouteUpdate::Delta(g) => g.iter().map(|(_, r)| r.len()).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the planner puts the routes: the tables of the peer driver, or a [`Collect`].
pub trait RouteSink {
    /// A full update starts: what follows replaces every group's routes, and a group it does
    /// not name has none.
    fn reset(&mut self) {}
    /// Every route of `group` follows through [`RouteSink::put`]; any route of it that is
    /// not put before [`RouteSink::end`] is gone.
    fn begin(&mut self, group: &GroupKey);
    /// `prefix` is announced to `group` with `attrs`, or (`None`) withdrawn.
    fn put(&mut self, group: &GroupKey, prefix: IpNet, attrs: Option<&Arc<AdvertAttrs>>);
    fn end(&mut self, group: &GroupKey);
}

/// Gathers what the planner hands out into a [`RouteUpdate`] (for `kbgp check` and tests).
#[derive(Default)]
pub struct Collect {
    full: GroupRoutes,
    delta: GroupChanges,
    was_full: bool,
}

impl RouteSink for Collect {
    fn reset(&mut self) {
        self.was_full = true;
    }
    fn begin(&mut self, group: &GroupKey) {
        self.full.push((group.clone(), Vec::new()));
    }
    fn put(&mut self, group: &GroupKey, prefix: IpNet, attrs: Option<&Arc<AdvertAttrs>>) {
        if let Some((_, routes)) = self.full.last_mut().filter(|(g, _)| g == group) {
            if let Some(a) = attrs {
                routes.push(Advertisement { prefix, attrs: a.clone() });
            }
            return;
        }
        match self.delta.iter_mut().find(|(g, _)| g == group) {
            Some((_, c)) => c.push((prefix, attrs.cloned())),
            None => self.delta.push((group.clone(), vec![(prefix, attrs.cloned())])),
        }
    }
    fn end(&mut self, _: &GroupKey) {
        if let Some((_, routes)) = self.full.last_mut() {
            routes.sort_unstable_by_key(|a| a.prefix);
        }
    }
}

impl Collect {
    pub fn finish(mut self) -> Option<RouteUpdate> {
        if self.was_full {
            return Some(RouteUpdate::Full(self.full));
        }
        for (_, c) in &mut self.delta {
            c.sort_unstable_by_key(|(p, _)| *p);
        }
        (!self.delta.is_empty()).then_some(RouteUpdate::Delta(self.delta))
    }
}

/// Counts the routes of each group of a full update, keeping none of them (`kbgp check`).
#[derive(Default)]
pub struct Count {
    groups: Vec<(GroupKey, usize)>,
}

impl RouteSink for Count {
    fn begin(&mut self, group: &GroupKey) {
        self.groups.push((group.clone(), 0));
    }
    fn put(&mut self, group: &GroupKey, _: IpNet, attrs: Option<&Arc<AdvertAttrs>>) {
        if let Some((_, n)) = self.groups.last_mut().filter(|(g, _)| g == group) {
            *n += attrs.is_some() as usize;
        }
    }
    fn end(&mut self, _: &GroupKey) {}
}

impl Count {
    /// Routes put for `group` (0 if it had none).
    pub fn routes(&self, group: &GroupKey) -> usize {
        self.groups.iter().find(|(g, _)| g == group).map_or(0, |(_, n)| *n)
    }
}

/// What applies to a route of a group: bit i for the group's `advertisedPathAttributes`
/// rule i, then one bit per Service export of its set, then one per pod CIDR export
/// (at most 64 in all, checked by [`plan`](super::plan)).
type Mask = u64;

/// One export group's attribute sets, by what applies.
struct Group {
    key: GroupKey,
    attrs: HashMap<Mask, Arc<AdvertAttrs>>,
}

/// How many Service addresses ask for each prefix. IPv4 host routes, the bulk at scale, are
/// keyed by their address alone: 8 octets a prefix instead of 24.
#[derive(Default)]
struct Counts {
    v4: HashMap<u32, u32>,
    other: HashMap<IpNet, u32>,
}

fn host_v4(p: &IpNet) -> Option<u32> {
    match p {
        IpNet::V4(n) if n.prefix_len() == 32 => Some(u32::from(n.addr())),
        _ => None,
    }
}

impl Counts {
    fn get(&self, p: &IpNet) -> u32 {
        match host_v4(p) {
            Some(a) => self.v4.get(&a).copied(),
            None => self.other.get(p).copied(),
        }
        .unwrap_or(0)
    }

    /// One more address asks for `p`; returns the count before.
    fn add(&mut self, p: IpNet) -> u32 {
        let n = match host_v4(&p) {
            Some(a) => self.v4.entry(a).or_insert(0),
            None => self.other.entry(p).or_insert(0),
        };
        *n += 1;
        *n - 1
    }

    /// One address fewer asks for `p`; returns the count before.
    fn sub(&mut self, p: &IpNet) -> u32 {
        let n = self.get(p);
        match (n, host_v4(p)) {
            (0, _) => None,
            (1, Some(a)) => self.v4.remove(&a),
            (1, None) => self.other.remove(p),
            (_, Some(a)) => self.v4.insert(a, n - 1),
            (_, None) => self.other.insert(*p, n - 1),
        };
        n
    }

    fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    fn iter(&self) -> impl Iterator<Item = (IpNet, u32)> + '_ {
        let v4 = self.v4.iter().map(|(a, n)| (IpNet::V4(ipnet::Ipv4Net::from(std::net::Ipv4Addr::from(*a))), *n));
        v4.chain(self.other.iter().map(|(p, n)| (*p, *n)))
    }
}

/// A VirtualIP's route in one virtual router (only while it is up).
#[derive(Clone, Debug, PartialEq)]
struct VipRoute {
    name: String,
    /// Only for the neighbors its `peers` lists (groups whose key names it).
    restricted: bool,
    attrs: Arc<AdvertAttrs>,
}

/// The VirtualIP routes of a virtual router, by prefix. Few: kept in full and compared whole.
type VipRoutes = std::collections::BTreeMap<IpNet, VipRoute>;

/// The routes one export set of a virtual router asks for.
struct Set {
    /// Per Service export, how many Service addresses ask for each prefix.
    wanted: Vec<Counts>,
    /// The node's pod CIDRs, with the pod CIDR exports (bit j for export j) that announce them.
    pods: Vec<(IpNet, Mask)>,
    /// The Service exports (bit j for export j) that go to IPv4, and to IPv6.
    v4: Mask,
    v6: Mask,
}

impl Set {
    /// The Service exports that ask for `p`, from export `from` on.
    fn svc_mask_from(&self, from: usize, p: &IpNet) -> Mask {
        let mut m = 0;
        for (j, c) in self.wanted.iter().enumerate().skip(from) {
            if c.get(p) > 0 {
                m |= 1 << j;
            }
        }
        m
    }

    fn svc_mask(&self, p: &IpNet) -> Mask {
        self.svc_mask_from(0, p)
    }

    fn pod_mask(&self, p: &IpNet) -> Mask {
        self.pods.iter().find(|(q, _)| q == p).map_or(0, |(_, m)| *m)
    }

    /// Every prefix a Service export asks for, once, with the exports that ask for it.
    fn services(&self) -> impl Iterator<Item = (IpNet, Mask)> + '_ {
        self.wanted.iter().enumerate().flat_map(move |(j, c)| {
            c.iter().filter_map(move |(p, _)| {
                if j > 0 && self.wanted[..j].iter().any(|o| o.get(&p) > 0) {
                    return None;
                }
                let rest = if self.wanted.len() > j + 1 { self.svc_mask_from(j + 1, &p) } else { 0 };
                Some((p, (1 << j) | rest))
            })
        })
    }

    /// The pod CIDRs and VirtualIP prefixes no Service export asks for (each once, with no
    /// Service export bit).
    fn others<'a>(&'a self, vips: &'a VipRoutes) -> impl Iterator<Item = (IpNet, Mask)> + 'a {
        let pods = self.pods.iter().filter(|(p, _)| self.svc_mask(p) == 0).map(|(p, _)| *p);
        let vips = vips.keys().filter(|p| self.svc_mask(p) == 0 && self.pod_mask(p) == 0).copied();
        pods.chain(vips).map(|p| (p, 0))
    }

    /// Prefixes it asks for.
    fn len(&self, vips: &VipRoutes) -> usize {
        let services = match self.wanted.as_slice() {
            [one] => one.len(),
            _ => self.services().count(),
        };
        services + self.others(vips).count()
    }
}

struct VRouter {
    /// One per export set of the virtual router.
    sets: Vec<Set>,
    /// VirtualIPs that are up; a VirtualIP's route wins over a Service's or pod CIDR's.
    vips: VipRoutes,
    groups: Vec<Group>,
}

struct State {
    world: Arc<World>,
    plan: Arc<Plan>,
    endpoints: std::collections::HashMap<String, LocalEndpoints>,
    vrouters: Vec<VRouter>,
}

/// The planner of one node.
pub struct Planner {
    node: String,
    state: Option<State>,
    /// Equal attribute sets share one allocation across groups and updates.
    interned: std::collections::HashMap<AdvertAttrs, Arc<AdvertAttrs>>,
}

fn rule_applies(rule: &PathAttributeRule, pod: bool, svc: bool, prefix: &IpNet, node: &Node, world: &World) -> bool {
    match rule.selector_type {
        SelectorType::PodCidr => pod && rule.selector.as_ref().is_none_or(|s| s.matches(&node.labels)),
        SelectorType::LoadBalancerIpPool if svc => {
            let ip = prefix.addr();
            world
                .pools
                .iter()
                .any(|p| !p.disabled && p.contains(&ip) && rule.selector.as_ref().is_none_or(|s| s.matches(&p.labels)))
        }
        _ => false,
    }
}

/// The attributes of what `mask` holds (see [`Mask`]): every community, and the highest
/// LOCAL_PREF any of them sets.
fn attrs_of(rules: &[PathAttributeRule], exports: &Exports, mask: Mask) -> AdvertAttrs {
    let mut a = AdvertAttrs::default();
    let mut add = |communities: &[_], large: &[_], lp: Option<u32>| {
        a.communities.extend_from_slice(communities);
        a.large_communities.extend_from_slice(large);
        if let Some(lp) = lp {
            a.local_pref = Some(a.local_pref.map_or(lp, |x: u32| x.max(lp)));
        }
    };
    let sources = rules
        .iter()
        .map(|x| (&x.communities, &x.large_communities, x.local_preference))
        .chain(
            exports
                .services
                .iter()
                .map(|e| (&e.attrs.communities, &e.attrs.large_communities, e.attrs.local_preference)),
        )
        .chain(
            exports
                .pod_cidrs
                .iter()
                .map(|e| (&e.attrs.communities, &e.attrs.large_communities, e.attrs.local_preference)),
        );
    for (i, (c, l, lp)) in sources.enumerate().take(64) {
        if mask & (1 << i) != 0 {
            add(c, l, lp);
        }
    }
    a.communities.sort();
    a.communities.dedup();
    a.large_communities.sort();
    a.large_communities.dedup();
    a
}

/// The route of `prefix` in group `g` of export set `set`, with `svc` the Service exports
/// that ask for it: a VirtualIP's, if one is up for it and goes to the group, else the
/// Service's or pod CIDR's.
#[allow(clippy::too_many_arguments)]
fn route(
    interned: &mut std::collections::HashMap<AdvertAttrs, Arc<AdvertAttrs>>,
    g: &mut Group,
    exports: &Exports,
    set: &Set,
    vips: &VipRoutes,
    prefix: &IpNet,
    svc: Mask,
    node: &Node,
    world: &World,
) -> Option<Arc<AdvertAttrs>> {
    let family = Family::of_prefix(prefix);
    if !g.key.families.contains(&family) {
        return None;
    }
    if let Some(v) = vips.get(prefix)
        && (!v.restricted || g.key.vips.contains(&v.name))
    {
        return Some(v.attrs.clone());
    }
    let svc = svc & if prefix.addr().is_ipv4() { set.v4 } else { set.v6 };
    let pod = set.pod_mask(prefix);
    if svc == 0 && pod == 0 {
        return None;
    }
    let mut mask = 0;
    for (i, rule) in g.key.rules.iter().enumerate().take(64) {
        if rule_applies(rule, pod != 0, svc != 0, prefix, node, world) {
            mask |= 1 << i;
        }
    }
    let (r, s) = (g.key.rules.len() as u32, exports.services.len() as u32);
    mask |= svc.checked_shl(r).unwrap_or(0) | pod.checked_shl(r + s).unwrap_or(0);
    if let Some(a) = g.attrs.get(&mask) {
        return Some(a.clone());
    }
    let a = attrs_of(&g.key.rules, exports, mask);
    let a = interned.entry(a.clone()).or_insert_with(|| Arc::new(a)).clone();
    g.attrs.insert(mask, a.clone());
    Some(a)
}

/// The routes of the VirtualIPs that are up on `node`, for `vr` (the first VirtualIP that
/// lists an address has it).
fn vip_routes(
    interned: &mut std::collections::HashMap<AdvertAttrs, Arc<AdvertAttrs>>,
    vr: &VirtualRouter,
    node: &Node,
    world: &World,
) -> VipRoutes {
    let mut out = VipRoutes::new();
    for v in world.virtual_ips_for(node) {
        candidate::virtual_ip(vr, node, v, &world.vip_health, |p, _, r: Decide| {
            if !r.passed() || out.contains_key(&p) {
                return;
            }
            let mut a = AdvertAttrs {
                communities: v.communities.clone(),
                large_communities: v.large_communities.clone(),
                local_pref: v.local_preference,
                med: v.med,
            };
            if world.vip_health.draining {
                // RFC 8326 §4: the community, and the lowest LOCAL_PREF for iBGP peers that do
                // not act on it.
                a.communities.push(crate::wire::attribute::Community::GRACEFUL_SHUTDOWN);
                a.communities.sort();
                a.communities.dedup();
                a.local_pref = Some(0);
            }
            let attrs = interned.entry(a.clone()).or_insert_with(|| Arc::new(a)).clone();
            out.insert(p, VipRoute { name: v.name.clone(), restricted: v.peers.is_some(), attrs });
        });
    }
    out
}

/// Calls `f` with each prefix export `e` announces for Service `s`.
fn announced(e: &ServiceExport, world: &World, s: &Service, local: LocalEndpoints, mut f: impl FnMut(IpNet)) {
    candidate::service(e, world, s, local, |p, _, r: Decide| {
        if r.passed() {
            f(p)
        }
    });
}

/// The families an export goes to, as bit `j` in the IPv4 and IPv6 masks.
fn family_bits(families: &[Family], j: usize) -> (Mask, Mask) {
    let bit = 1u64.checked_shl(j as u32).unwrap_or(0);
    let v4 = if families.contains(&Family::IPV4_UNICAST) { bit } else { 0 };
    let v6 = if families.contains(&Family::IPV6_UNICAST) { bit } else { 0 };
    (v4, v6)
}

impl Planner {
    pub fn new(node: &str) -> Planner {
        Planner { node: node.to_string(), state: None, interned: Default::default() }
    }

    /// The plan and routes for `world`, the routes as the change from the previous World
    /// (`None`: nothing changed) or whole. On error nothing changes.
    pub fn update(&mut self, world: Arc<World>) -> Result<(Arc<Plan>, Option<RouteUpdate>), PlanError> {
        let mut c = Collect::default();
        let plan = self.update_into(world, &mut c)?;
        Ok((plan, c.finish()))
    }

    /// As [`Planner::update`], putting the routes straight into `sink`: a full update of a
    /// million routes is never a list of a million routes.
    pub fn update_into(&mut self, world: Arc<World>, sink: &mut impl RouteSink) -> Result<Arc<Plan>, PlanError> {
        let new_plan = plan(&self.node, &world)?;
        let incremental = self.state.as_ref().is_some_and(|s| {
            *s.plan == new_plan && s.world.node(&self.node) == world.node(&self.node) && s.world.pools == world.pools
        });
        if incremental && let Some(mut st) = self.state.take() {
            self.delta(&mut st, &world, sink);
            st.world = world;
            let plan = st.plan.clone();
            self.state = Some(st);
            return Ok(plan);
        }
        let plan = Arc::new(new_plan);
        let mut st = self.full(plan.clone(), world);
        self.emit(&mut st, sink);
        self.state = Some(st);
        Ok(plan)
    }

    /// Prefixes planned, over every export set of every virtual router (a prefix two sets
    /// announce counts twice).
    pub fn prefixes(&self) -> usize {
        let wanted = |v: &VRouter| v.sets.iter().map(|s| s.len(&v.vips)).sum::<usize>();
        self.state.as_ref().map_or(0, |s| s.vrouters.iter().map(wanted).sum())
    }

    /// Everything from scratch.
    fn full(&mut self, plan: Arc<Plan>, world: Arc<World>) -> State {
        let endpoints = local_endpoints(&world, &self.node);
        let mut vrouters = Vec::new();
        let node = world.node(&self.node);
        let addresses: usize = world.services.iter().map(|s| s.ingress_ips.len()).sum();
        for (vr, vp) in plan.configured() {
            let mut v = VRouter { sets: Vec::new(), vips: VipRoutes::new(), groups: Vec::new() };
            if let Some(node) = node {
                v.vips = vip_routes(&mut self.interned, vr, node, &world);
            }
            for exports in &vr.exports {
                let mut set = Set { wanted: Vec::new(), pods: Vec::new(), v4: 0, v6: 0 };
                if let Some(node) = node {
                    for (j, e) in exports.pod_cidrs.iter().enumerate() {
                        candidate::pod_cidrs(vr.local_asn, e, node, |p, _, r: Decide| {
                            if !r.passed() {
                                return;
                            }
                            match set.pods.iter_mut().find(|(q, _)| *q == p) {
                                Some((_, m)) => *m |= 1 << j,
                                None => set.pods.push((p, 1 << j)),
                            }
                        });
                    }
                }
                for (j, e) in exports.services.iter().enumerate() {
                    let (v4, v6) = family_bits(&e.families, j);
                    set.v4 |= v4;
                    set.v6 |= v6;
                    let mut wanted = Counts::default();
                    // Room for every address up front (no rehash while a million go in),
                    // given back when the export selects far fewer.
                    wanted.v4.reserve(addresses);
                    for s in &world.services {
                        let local = endpoints.get(&s.key()).copied().unwrap_or_default();
                        announced(e, &world, s, local, |p| {
                            wanted.add(p);
                        });
                    }
                    if wanted.v4.len() < wanted.v4.capacity() / 4 {
                        wanted.v4.shrink_to_fit();
                    }
                    set.wanted.push(wanted);
                }
                v.sets.push(set);
            }
            for p in &vp.peers {
                if !v.groups.iter().any(|g| g.key == p.group) {
                    v.groups.push(Group { key: p.group.clone(), attrs: HashMap::new() });
                }
            }
            vrouters.push(v);
        }
        State { world, plan, endpoints, vrouters }
    }

    /// Every group's every route, as a full update.
    fn emit(&mut self, st: &mut State, sink: &mut impl RouteSink) {
        sink.reset();
        let Some(node) = st.world.node(&self.node) else { return };
        for ((vr, _), v) in st.plan.configured().into_iter().zip(&mut st.vrouters) {
            for g in &mut v.groups {
                sink.begin(&g.key);
                let (Some(exports), Some(set)) = (vr.exports.get(g.key.exports), v.sets.get(g.key.exports)) else {
                    sink.end(&g.key);
                    continue;
                };
                for (p, m) in set.services().chain(set.others(&v.vips)) {
                    if let Some(attrs) = route(&mut self.interned, g, exports, set, &v.vips, &p, m, node, &st.world) {
                        sink.put(&g.key, p, Some(&attrs));
                    }
                }
                sink.end(&g.key);
            }
        }
    }

    /// Applies the Services that differ between `st.world` and `world`, and the VirtualIPs
    /// (their objects or health); puts the routes that changed.
    fn delta(&mut self, st: &mut State, world: &World, sink: &mut impl RouteSink) {
        let endpoints = local_endpoints(world, &self.node);
        let changed = changed_services(&st.world, world, &st.endpoints, &endpoints);
        let vips_changed = st.world.virtual_ips != world.virtual_ips || st.world.vip_health != world.vip_health;
        if changed.is_empty() && !vips_changed {
            st.endpoints = endpoints;
            return;
        }
        let Some(node) = world.node(&self.node) else { return };
        for ((vr, _), v) in st.plan.configured().into_iter().zip(st.vrouters.iter_mut()) {
            let new_vips = vips_changed.then(|| vip_routes(&mut self.interned, vr, node, world));
            for (k, (set, exports)) in v.sets.iter_mut().zip(&vr.exports).enumerate() {
                // Each touched prefix with the Service exports that asked for it before.
                let mut before: HashMap<IpNet, Mask> = HashMap::new();
                for (old, new) in &changed {
                    for (j, e) in exports.services.iter().enumerate() {
                        if let Some(o) = old {
                            let local = st.endpoints.get(&o.key()).copied().unwrap_or_default();
                            announced(e, world, o, local, |p| {
                                if !before.contains_key(&p) {
                                    before.insert(p, set.svc_mask(&p));
                                }
                                set.wanted[j].sub(&p);
                            });
                        }
                        if let Some(s) = new {
                            let local = endpoints.get(&s.key()).copied().unwrap_or_default();
                            announced(e, world, s, local, |p| {
                                if !before.contains_key(&p) {
                                    before.insert(p, set.svc_mask(&p));
                                }
                                set.wanted[j].add(p);
                            });
                        }
                    }
                }
                if let Some(new) = &new_vips {
                    for p in new.keys().chain(v.vips.keys()) {
                        if !before.contains_key(p) {
                            before.insert(*p, set.svc_mask(p));
                        }
                    }
                }
                let now_vips = new_vips.as_ref().unwrap_or(&v.vips);
                for g in v.groups.iter_mut().filter(|g| g.key.exports == k) {
                    for (p, was) in &before {
                        let now = set.svc_mask(p);
                        let old = route(&mut self.interned, g, exports, set, &v.vips, p, *was, node, world);
                        let new = route(&mut self.interned, g, exports, set, now_vips, p, now, node, world);
                        if old != new {
                            sink.put(&g.key, *p, new.as_ref());
                        }
                    }
                }
            }
            if let Some(new) = new_vips {
                v.vips = new;
            }
        }
        st.endpoints = endpoints;
    }
}

/// The Services whose object or local endpoints differ: (before, after), either absent.
type ServicePair<'a> = (Option<&'a Arc<Service>>, Option<&'a Arc<Service>>);

fn changed_services<'a>(
    old: &'a World,
    new: &'a World,
    old_eps: &std::collections::HashMap<String, LocalEndpoints>,
    new_eps: &std::collections::HashMap<String, LocalEndpoints>,
) -> Vec<ServicePair<'a>> {
    fn key(s: &Service) -> (&str, &str) {
        (s.namespace.as_str(), s.name.as_str())
    }
    let differs = |o: &Arc<Service>, s: &Arc<Service>| {
        let same = Arc::ptr_eq(o, s) || **o == **s;
        let local = s.external_traffic_local || s.internal_traffic_local;
        !same || (local && old_eps.get(&s.key()) != new_eps.get(&s.key()))
    };
    let mut out = Vec::new();
    // The Kubernetes source keeps Services in key order: walk both lists side by side,
    // without hashing. Files keep their own order: match by key.
    if old.services.iter().is_sorted_by_key(|s| key(s)) && new.services.iter().is_sorted_by_key(|s| key(s)) {
        let (mut a, mut b) = (old.services.iter().peekable(), new.services.iter().peekable());
        loop {
            match (a.peek(), b.peek()) {
                (Some(o), Some(s)) => match key(o).cmp(&key(s)) {
                    std::cmp::Ordering::Less => out.push((a.next(), None)),
                    std::cmp::Ordering::Greater => out.push((None, b.next())),
                    std::cmp::Ordering::Equal => {
                        let (o, s) = (a.next(), b.next());
                        if let (Some(o), Some(s)) = (o, s)
                            && differs(o, s)
                        {
                            out.push((Some(o), Some(s)));
                        }
                    }
                },
                (Some(_), None) => out.push((a.next(), None)),
                (None, Some(_)) => out.push((None, b.next())),
                (None, None) => return out,
            }
        }
    }
    let mut before: HashMap<(&str, &str), &Arc<Service>> = old.services.iter().map(|s| (key(s), s)).collect();
    for s in &new.services {
        match before.remove(&key(s)) {
            Some(o) if differs(o, s) => out.push((Some(o), Some(s))),
            Some(_) => {}
            None => out.push((None, Some(s))),
        }
    }
    out.extend(before.into_values().map(|o| (Some(o), None)));
    out
}

#[cfg(test)]
mod tests;
