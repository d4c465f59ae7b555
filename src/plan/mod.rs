//! # plan — what this node announces, to whom, and why
//!
//! `plan(node, world)` is a pure function: for every peer of this node, the session settings
//! and the routes to announce with their attributes, planned once per export group (the
//! neighbors of a virtual router with the same families and path attributes). Only the
//! decisions are kept: the checks behind them are run again, in words, for the address
//! `kbgp why` asks about ([`candidate`], [`why`]).
//!
//! Semantics follow Cilium's v1 BGP control plane:
//! - a policy applies to the nodes its `nodeSelector` selects (none or empty: all nodes); a
//!   node selected by two policies is an error;
//! - a virtual router announces the node's pod CIDRs with `exportPodCIDR`, and the addresses
//!   of Services its `serviceSelector` selects (none or empty: no Service; to select all, use
//!   `{key: somekey, operator: NotIn, values: [never-used-value]}`), as /32 or /128;
//! - `serviceAdvertisements` chooses LoadBalancer ingress IPs (default), externalIPs,
//!   ClusterIPs; LoadBalancer IPs only for Services without a `loadBalancerClass` or with
//!   kbgp's or Cilium's BGP class;
//! - with `externalTrafficPolicy: Local` (`internalTrafficPolicy: Local` for ClusterIPs) a
//!   node announces only while it has a ready endpoint of the Service (EndpointSlices), and
//!   through a graceful drain (its endpoints terminating but still serving);
//! - `advertisedPathAttributes` add communities and LOCAL_PREF to pod CIDR routes
//!   (`PodCIDR`) or to Service routes inside a selected pool (`CiliumLoadBalancerIPPool`).

mod annotation;
pub mod candidate;
pub mod conditions;
pub mod diff;
pub mod planner;
pub mod why;

pub use annotation::{VRouterOverrides, parse_overrides};
pub use candidate::{Candidate, Step};
pub use planner::{Collect, Count, GroupRoutes, Planner, RouteSink, RouteUpdate};

use crate::config::policy::{Neighbor, PathAttributeRule, ServiceExport, VirtualRouter};
use crate::config::{Node, PeeringPolicy, World};
use crate::session::SessionConfig;
use crate::session::config::Auth;
pub use crate::session::config::{PeerKey, PeerSettings};
use crate::wire::Family;
use candidate::{Decide, Explain, Record};
use ipnet::IpNet;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::k8s::LB_CLASSES;

/// Identifies an export group: the neighbors of a virtual router with the same families and
/// `advertisedPathAttributes` get the same routes, planned once and shared.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub local_asn: u32,
    /// Which of the virtual router's export sets ([`VirtualRouter::exports`]) it is sent.
    pub exports: usize,
    pub families: Vec<Family>,
    pub rules: Vec<PathAttributeRule>,
    /// The VirtualIPs restricted to some neighbors (`peers`) that include these, by name.
    pub vips: Vec<String>,
}

/// One peer: its session settings and its export group. The group's routes are the
/// planner's ([`planner::Planner`]), which keeps them up to date as the World changes.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerPlan {
    pub key: PeerKey,
    pub settings: PeerSettings,
    pub group: GroupKey,
}

impl PeerPlan {
    /// Whether an announced candidate goes to this peer: its neighbor takes the family.
    pub fn takes(&self, prefix: &IpNet) -> bool {
        self.group.families.contains(&Family::of_prefix(prefix))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VRouterPlan {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub listen_port: Option<u16>,
    pub peers: Vec<PeerPlan>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub node: String,
    /// The node's peering configuration, resolved from whichever API it came from (a
    /// CiliumBGPPeeringPolicy or BGPPeeringPolicy as it is; Cilium v2's objects combined for
    /// this node), if any selects it.
    pub policy: Option<Arc<PeeringPolicy>>,
    pub vrouters: Vec<VRouterPlan>,
    pub notes: Vec<String>,
    /// The World's `--lb-class` (part of the plan so that changing it replans every route).
    pub lb_class: Option<String>,
}

/// What this node does with one Service's addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAnnouncement {
    /// Prefixes announced to at least one peer.
    pub announced: std::collections::BTreeSet<IpNet>,
    /// Why the first address that is not announced is not.
    pub not_announced: Option<(IpNet, String)>,
}

impl Plan {
    pub fn peers(&self) -> impl Iterator<Item = (&VRouterPlan, &PeerPlan)> {
        self.vrouters.iter().flat_map(|v| v.peers.iter().map(move |p| (v, p)))
    }

    /// The name of what selected the node (a policy, or a CiliumBGPClusterConfig), if anything.
    pub fn policy_name(&self) -> Option<String> {
        self.policy.as_ref().map(|p| p.name.clone())
    }

    /// The node's virtual routers as configured, each with its plan.
    pub(crate) fn configured(&self) -> Vec<(&VirtualRouter, &VRouterPlan)> {
        let Some(policy) = self.policy.as_deref() else {
            return Vec::new();
        };
        self.vrouters
            .iter()
            .filter_map(|v| Some((policy.virtual_routers.iter().find(|r| r.local_asn == v.local_asn)?, v)))
            .collect()
    }

    /// Every candidate at, inside or around `target`, with the checks that decided it, per
    /// virtual router (in the order of `vrouters`). `world` is the one the plan was made from.
    pub fn explain(&self, world: &World, target: &IpNet) -> Vec<Vec<Candidate>> {
        let Some(node) = world.node(&self.node) else { return Vec::new() };
        let endpoints = local_endpoints(world, &node.name);
        let configured = self.configured();
        self.vrouters
            .iter()
            .map(|v| {
                let mut out = Vec::new();
                let Some((vr, _)) = configured.iter().find(|(_, p)| p.local_asn == v.local_asn) else { return out };
                for vip in &world.virtual_ips {
                    candidate::virtual_ip(vr, node, vip, &world.vip_health, |p, src: candidate::Source, r: Explain| {
                        if why::relevant(&p, target) {
                            out.push(src.candidate(p, r));
                        }
                    });
                }
                for (i, set) in vr.exports.iter().enumerate() {
                    let mut keep = |p: IpNet, src: candidate::Source, r: Explain| {
                        if why::relevant(&p, target) {
                            out.push(Candidate { exports: Some(i), ..src.candidate(p, r) });
                        }
                    };
                    for e in &set.pod_cidrs {
                        candidate::pod_cidrs(vr.local_asn, e, node, &mut keep);
                    }
                    for e in &set.services {
                        for s in &world.services {
                            let local = endpoints.get(&s.key()).copied().unwrap_or_default();
                            candidate::service(e, world, s, local, &mut keep);
                        }
                    }
                }
                out
            })
            .collect()
    }

    /// Per Service (`namespace/name`) this node considered: what it announces, and why not.
    /// `world` is the one the plan was made from.
    pub fn services(&self, world: &World) -> std::collections::BTreeMap<String, ServiceAnnouncement> {
        let mut out: std::collections::BTreeMap<String, ServiceAnnouncement> = Default::default();
        let Some(node) = world.node(&self.node) else { return out };
        let endpoints = local_endpoints(world, &node.name);
        let configured = self.configured();
        for s in &world.services {
            let local = endpoints.get(&s.key()).copied().unwrap_or_default();
            let mut e = ServiceAnnouncement::default();
            let mut refused: Option<(IpNet, &ServiceExport, usize, &VRouterPlan)> = None;
            for (vr, v) in &configured {
                for (i, set) in vr.exports.iter().enumerate() {
                    for x in &set.services {
                        candidate::service(x, world, s, local, |p, _, r: Decide| {
                            if r.passed() && v.peers.iter().any(|peer| peer.group.exports == i && peer.takes(&p)) {
                                e.announced.insert(p);
                            } else if refused.is_none() {
                                refused = Some((p, x, i, v));
                            }
                        });
                    }
                }
            }
            if let Some((p, x, i, v)) = refused {
                // The reason in words, for this one address only.
                candidate::service(x, world, s, local, |q, src, r: Explain| {
                    if q == p && e.not_announced.is_none() {
                        let c = src.candidate(q, r);
                        let why = if !c.advertised {
                            c.reason()
                        } else if !v.peers.iter().any(|peer| peer.group.exports == i) {
                            "the virtual router has no peer for it".to_string()
                        } else {
                            "no neighbor of the virtual router is configured for its address family".to_string()
                        };
                        e.not_announced = Some((p, why));
                    }
                });
            }
            if !e.announced.is_empty() || e.not_announced.is_some() {
                out.insert(s.key(), e);
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    UnknownNode(String),
    MultiplePolicies {
        node: String,
        policies: Vec<String>,
    },
    NoRouterId {
        node: String,
        asn: u32,
    },
    Annotation {
        node: String,
        key: String,
        message: String,
    },
    PassiveWithoutListener {
        node: String,
        asn: u32,
        peer: IpAddr,
    },
    /// The node's configuration objects contradict each other.
    Conflict {
        node: String,
        message: String,
    },
    /// More than 64 `advertisedPathAttributes` rules and exports apply to one neighbor.
    TooManyExports {
        node: String,
        asn: u32,
        peer: IpAddr,
        count: usize,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::UnknownNode(n) => write!(f, "node {n}: no Node document with this name"),
            PlanError::MultiplePolicies { node, policies } => write!(
                f,
                "node {node}: selected by {} peering policies ({}); a node may have only one",
                policies.len(),
                policies.join(", ")
            ),
            PlanError::NoRouterId { node, asn } => write!(
                f,
                "node {node}: virtual router AS{asn} has no router id: the node has no IPv4 InternalIP or ExternalIP; \
                 set the annotation kbgp.io/virtual-router.{asn}: \"router-id=A.B.C.D\""
            ),
            PlanError::Annotation { node, key, message } => {
                write!(f, "node {node}: metadata.annotations.{key}: {message}")
            }
            PlanError::PassiveWithoutListener { node, asn, peer } => write!(
                f,
                "node {node}: neighbor {peer} of virtual router AS{asn} is passive but nothing listens: \
                 set the annotation kbgp.io/virtual-router.{asn}: \"local-port=179\""
            ),
            PlanError::Conflict { node, message } => write!(f, "node {node}: {message}"),
            PlanError::TooManyExports { node, asn, peer, count } => write!(
                f,
                "node {node}: neighbor {peer} of virtual router AS{asn} has {count} path attribute rules and \
                 advertisements; at most 64 are supported"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

fn router_id(node: &Node, asn: u32, o: &VRouterOverrides) -> Result<Ipv4Addr, PlanError> {
    if let Some(id) = o.router_id {
        return Ok(id);
    }
    for kind in ["InternalIP", "ExternalIP"] {
        if let Some(IpAddr::V4(a)) = node.address(kind, true) {
            return Ok(a);
        }
    }
    Err(PlanError::NoRouterId { node: node.name.clone(), asn })
}

/// A Service's endpoints on one node (EndpointSlice conditions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalEndpoints {
    pub ready: usize,
    /// Terminating but still serving: a graceful drain in progress.
    pub draining: usize,
}

impl LocalEndpoints {
    /// Whether a `trafficPolicy: Local` address is announced from this node.
    pub fn serves(&self) -> bool {
        self.ready > 0 || self.draining > 0
    }

    /// The reason, in words.
    pub fn describe(&self, policy: &str) -> String {
        if self.ready > 0 {
            format!("{policy}: Local and {} ready endpoint(s) on this node", self.ready)
        } else if self.draining > 0 {
            format!(
                "{policy}: Local and {} endpoint(s) on this node terminating but still serving (graceful drain)",
                self.draining
            )
        } else {
            format!("{policy}: Local and no ready endpoint on this node")
        }
    }
}

/// Endpoints of every Service on `node`, by `namespace/name`.
pub(crate) fn local_endpoints(world: &World, node: &str) -> HashMap<String, LocalEndpoints> {
    let mut out: HashMap<String, LocalEndpoints> = HashMap::new();
    for slice in &world.endpoint_slices {
        let Some(svc) = &slice.service else { continue };
        let e = out.entry(format!("{}/{svc}", slice.namespace)).or_default();
        for ep in slice.endpoints.iter().filter(|ep| ep.node.as_deref() == Some(node)) {
            if ep.ready && !ep.terminating {
                e.ready += 1;
            } else if ep.serving && ep.terminating {
                e.draining += 1;
            }
        }
    }
    out
}

/// The TCP MD5 password of neighbor `n` of `policy`, from its `authSecretRef`.
fn auth(n: &Neighbor, policy: &str, world: &World) -> Auth {
    use crate::config::policy::AuthRef;
    use crate::config::secret::PASSWORD_KEY;
    let (secrets, name, whose, namespace) = match &n.auth {
        None => return Auth::None,
        Some(AuthRef::Password(v)) => return Auth::Md5(v.clone()),
        Some(AuthRef::Secret(name)) => (
            &world.secrets,
            name,
            format!("policy {policy}, neighbor {}: authSecretRef {name}", n.address),
            "the BGP secrets namespace (--bgp-secrets-namespace)".to_string(),
        ),
        Some(AuthRef::MetalLbSecret(name)) => (
            &world.metallb_secrets,
            name,
            format!("BGPPeer of neighbor {}: passwordSecret {name}", n.address),
            format!("the MetalLB namespace {} (--metallb-namespace)", world.metallb.namespace()),
        ),
    };
    let Some(secret) = secrets.iter().find(|s| &s.name == name) else {
        return Auth::Missing(format!("{whose}: no Secret {name} in {namespace}; the session stays down"));
    };
    match secret.data.get(PASSWORD_KEY) {
        None => Auth::Missing(format!(
            "{whose}: Secret {}/{name} has no key \"{PASSWORD_KEY}\"; the session stays down",
            secret.namespace
        )),
        // The kernel's limit (TCP_MD5SIG_MAXKEYLEN).
        Some(v) if v.bytes().is_empty() || v.bytes().len() > 80 => Auth::Missing(format!(
            "{whose}: the password in Secret {}/{name} must be 1 to 80 octets, it has {}; the session stays down",
            secret.namespace,
            v.bytes().len()
        )),
        Some(v) => Auth::Md5(v.clone()),
    }
}

fn settings(n: &Neighbor, local_asn: u32, router_id: Ipv4Addr, auth: Auth) -> PeerSettings {
    let mut s = SessionConfig::new(local_asn, n.peer_asn, router_id);
    s.hold_time = n.hold_time;
    s.keepalive = n.keepalive;
    s.connect_retry = Duration::from_secs(n.connect_retry_secs as u64);
    s.min_retry = Duration::from_secs(1).min(s.connect_retry);
    s.passive = n.passive;
    s.families = n.families.clone();
    s.graceful_restart = n.graceful_restart;
    s.long_lived_stale_time = n.long_lived_stale_time;
    let ebgp = local_asn != n.peer_asn;
    // With peer AS 0 (learned from the OPEN) the session may turn out iBGP: a TTL of 1 would
    // cut a multihop iBGP session, so only a multihop TTL is set.
    let ttl = match (n.peer_asn, ebgp) {
        (0, _) => (n.ebgp_multihop_ttl > 1).then_some(n.ebgp_multihop_ttl),
        (_, true) => Some(if n.ttl_security { 255 } else { n.ebgp_multihop_ttl }),
        (_, false) => None,
    };
    PeerSettings {
        session: s,
        address: n.address,
        port: n.port,
        // GTSM (RFC 5082 §3): send with 255, accept only 255 (a directly connected peer).
        ttl,
        min_ttl: (ebgp && n.ttl_security).then_some(255),
        local_address: n.local_address,
        auth,
        max_received_routes: n.max_received_routes,
        over_max_received: n.over_max_received,
        bfd: n.bfd,
    }
}

/// VirtualIPs of `node` that name virtual routers or neighbors its policy does not have.
fn vip_notes(plan: &mut Plan, node: &Node, policy: &crate::config::PeeringPolicy, world: &World) {
    for v in world.virtual_ips_for(node) {
        for asn in v.virtual_routers.iter().flatten() {
            if !policy.virtual_routers.iter().any(|vr| vr.local_asn == *asn) {
                plan.notes.push(format!(
                    "VirtualIP {}: spec.virtualRouters: policy {} has no virtual router AS{asn} on node {}",
                    v.name, policy.name, node.name
                ));
            }
        }
        for peer in v.peers.iter().flatten() {
            let routers = policy
                .virtual_routers
                .iter()
                .filter(|vr| v.virtual_routers.as_ref().is_none_or(|l| l.contains(&vr.local_asn)));
            if !routers.flat_map(|vr| &vr.neighbors).any(|n| n.address == *peer) {
                plan.notes.push(format!(
                    "VirtualIP {}: spec.peers: {peer} is not a neighbor of its virtual routers in policy {}",
                    v.name, policy.name
                ));
            }
        }
    }
}

/// A Cilium or kbgp policy and MetalLB's BGPPeers on one node: one configuration, as long as
/// no neighbor is configured by both and a shared AS has one router id and port.
fn merge(
    p: &crate::config::PeeringPolicy,
    m: crate::config::PeeringPolicy,
) -> Result<crate::config::PeeringPolicy, crate::config::cilium_v2::Conflict> {
    use crate::config::cilium_v2::Conflict;
    let mut out = p.clone();
    out.name = format!("{} + {} {}", p.name, m.kind.kind_name(), m.name);
    for vr in m.virtual_routers {
        let Some(mine) = out.virtual_routers.iter_mut().find(|x| x.local_asn == vr.local_asn) else {
            out.virtual_routers.push(vr);
            continue;
        };
        let asn = vr.local_asn;
        if let Some(n) = vr.neighbors.iter().find(|n| mine.neighbors.iter().any(|o| o.address == n.address)) {
            return Err(Conflict(format!(
                "neighbor {} of AS{asn} is configured both by {} {} and by MetalLB's BGPPeers; a neighbor may be \
                 configured by one API only",
                n.address,
                p.kind.kind_name(),
                p.name
            )));
        }
        match (mine.router_id, vr.router_id) {
            (Some(a), Some(b)) if a != b => {
                return Err(Conflict(format!(
                    "AS{asn}: router id {a} from {} {} differs from {b} from MetalLB's BGPPeers",
                    p.kind.kind_name(),
                    p.name
                )));
            }
            (None, b) => mine.router_id = b,
            _ => {}
        }
        mine.local_port = mine.local_port.or(vr.local_port);
        let offset = mine.exports.len();
        mine.exports.extend(vr.exports);
        mine.neighbors.extend(vr.neighbors.into_iter().map(|n| Neighbor { exports: n.exports + offset, ..n }));
    }
    Ok(out)
}

/// Works out `node`'s peers, their settings and export groups (the routes are the
/// [`Planner`]'s).
pub fn plan(node_name: &str, world: &World) -> Result<Plan, PlanError> {
    let node = world.node(node_name).ok_or_else(|| PlanError::UnknownNode(node_name.to_string()))?;
    let mut plan = Plan { node: node.name.clone(), lb_class: world.lb_class.clone(), ..Default::default() };
    let conflict =
        |c: crate::config::cilium_v2::Conflict| PlanError::Conflict { node: node.name.clone(), message: c.0 };
    let mut policies = world.policies_for(node);
    if let Some(p) = policies.first() {
        // Cilium's rule: a CiliumBGPPeeringPolicy wins over the v2 objects.
        let names: Vec<&str> = world.bgp_v2.cluster_configs_for(node).map(|c| c.name.as_str()).collect();
        if !names.is_empty() {
            plan.notes.push(format!(
                "CiliumBGPClusterConfig {} also selects node {}; {} {} takes precedence, as in Cilium",
                names.join(", "),
                node.name,
                p.kind.kind_name(),
                p.name
            ));
        }
    } else {
        let r = crate::config::cilium_v2::resolve(node, world).map_err(conflict)?;
        plan.notes.extend(r.notes);
        policies.extend(r.policy.map(Arc::new));
    }
    let policy = match policies.as_slice() {
        [] => None,
        [p] => Some(p.clone()),
        many => {
            return Err(PlanError::MultiplePolicies {
                node: node.name.clone(),
                policies: many.iter().map(|p| p.name.clone()).collect(),
            });
        }
    };
    let m = crate::config::metallb::resolve(node, world).map_err(conflict)?;
    plan.notes.extend(m.notes);
    let policy = match (policy, m.policy) {
        (p, None) => p,
        (None, Some(m)) => Some(Arc::new(m)),
        (Some(p), Some(m)) => Some(Arc::new(merge(&p, m).map_err(conflict)?)),
    };
    let Some(policy) = policy else {
        plan.notes.push(format!("no peering policy selects node {}: nothing to announce", node.name));
        for v in world.virtual_ips_for(node) {
            plan.notes
                .push(format!("VirtualIP {}: not announced, no peering policy selects node {}", v.name, node.name));
        }
        return Ok(plan);
    };
    let overrides = parse_overrides(node)?;
    for vr in &policy.virtual_routers {
        let mut o = overrides.get(&vr.local_asn).cloned().unwrap_or_default();
        o.router_id = vr.router_id.or(o.router_id);
        o.local_port = vr.local_port.or(o.local_port);
        let rid = router_id(node, vr.local_asn, &o)?;
        let mut peers = Vec::new();
        for n in &vr.neighbors {
            if n.passive && o.local_port.is_none() {
                return Err(PlanError::PassiveWithoutListener {
                    node: node.name.clone(),
                    asn: vr.local_asn,
                    peer: n.address,
                });
            }
            let count = n.path_attributes.len() + vr.exports_of(n).map_or(0, |e| e.services.len() + e.pod_cidrs.len());
            if count > 64 {
                return Err(PlanError::TooManyExports {
                    node: node.name.clone(),
                    asn: vr.local_asn,
                    peer: n.address,
                    count,
                });
            }
            peers.push(PeerPlan {
                key: PeerKey { local_asn: vr.local_asn, address: n.address },
                settings: settings(n, vr.local_asn, rid, auth(n, &policy.name, world)),
                group: GroupKey {
                    local_asn: vr.local_asn,
                    exports: n.exports,
                    families: n.families.clone(),
                    rules: n.path_attributes.clone(),
                    vips: world
                        .virtual_ips_for(node)
                        .filter(|v| {
                            v.peers.as_ref().is_some_and(|ps| ps.contains(&n.address))
                                && v.virtual_routers.as_ref().is_none_or(|l| l.contains(&vr.local_asn))
                        })
                        .map(|v| v.name.clone())
                        .collect(),
                },
            });
        }
        plan.vrouters.push(VRouterPlan { local_asn: vr.local_asn, router_id: rid, listen_port: o.local_port, peers });
    }
    vip_notes(&mut plan, node, &policy, world);
    plan.policy = Some(policy);
    Ok(plan)
}

#[cfg(test)]
mod tests;
