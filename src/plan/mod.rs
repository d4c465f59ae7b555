//! # plan — what this node announces, to whom, and why
//!
//! `plan(node, world)` is a pure function: for every peer of this node, the session settings
//! and the routes to announce with their attributes; for every candidate address, whether it
//! is announced and the reason. The daemon diffs plans; `kbgp why` prints the reasons ([`why`]).
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
pub mod why;

pub use annotation::{VRouterOverrides, parse_overrides};

use crate::config::meta::SelectorMatch;
use crate::config::policy::{Neighbor, PathAttributeRule, SelectorType, VirtualRouter};
use crate::config::{Node, Service, ServiceType, World};
use crate::rib::{AdvertAttrs, Advertisement};
use crate::session::SessionConfig;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::k8s::LB_CLASSES;

/// Identifies a peer across plans: a change of key is a different peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    pub local_asn: u32,
    pub address: IpAddr,
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (vrouter AS{})", self.address, self.local_asn)
    }
}

/// Everything that, when changed, needs a new session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerSettings {
    pub session: SessionConfig,
    pub address: IpAddr,
    pub port: u16,
    /// IP TTL for the session's packets: eBGP multihop TTL, `None` (system default) for iBGP.
    pub ttl: Option<u8>,
    pub max_received_routes: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PeerPlan {
    pub key: PeerKey,
    pub settings: PeerSettings,
    pub routes: Vec<Advertisement>,
}

impl PeerPlan {
    /// Whether the plan sends `prefix` to this peer.
    pub fn has(&self, prefix: &IpNet) -> bool {
        self.routes.iter().any(|r| r.prefix == *prefix)
    }
}

/// One check on the way to announcing a candidate, in words: `ok` when it passed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub ok: bool,
    pub text: String,
}

impl Step {
    pub fn pass(text: impl Into<String>) -> Step {
        Step { ok: true, text: text.into() }
    }
    pub fn fail(text: impl Into<String>) -> Step {
        Step { ok: false, text: text.into() }
    }
    fn check(r: Result<String, String>) -> Step {
        match r {
            Ok(t) => Step::pass(t),
            Err(t) => Step::fail(t),
        }
    }
}

/// One address or prefix that was considered, and what was decided.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    pub prefix: IpNet,
    /// Where it comes from: `pod CIDR of node kind-worker`, `Service default/web LoadBalancer IP`.
    pub source: String,
    /// Every step passed.
    pub advertised: bool,
    /// The checks, in the order they were made; `kbgp why` prints them.
    pub steps: Vec<Step>,
    /// The Service it belongs to (`namespace/name`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl Candidate {
    fn new(prefix: IpNet, source: String, steps: Vec<Step>) -> Candidate {
        Candidate { prefix, source, advertised: steps.iter().all(|s| s.ok), steps, service: None }
    }

    fn of_service(mut self, key: &str) -> Candidate {
        self.service = Some(key.to_string());
        self
    }

    /// The decision in one line: the first failed check, else every check.
    pub fn reason(&self) -> String {
        match self.steps.iter().find(|s| !s.ok) {
            Some(s) => s.text.clone(),
            None => self.steps.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("; "),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VRouterPlan {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub listen_port: Option<u16>,
    pub peers: Vec<PeerPlan>,
    pub candidates: Vec<Candidate>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub node: String,
    /// The policy that selected the node, if any.
    pub policy: Option<String>,
    pub vrouters: Vec<VRouterPlan>,
    pub notes: Vec<String>,
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

    /// Per Service (`namespace/name`) this node considered: what it announces, and why not.
    pub fn services(&self) -> std::collections::BTreeMap<String, ServiceAnnouncement> {
        let mut out: std::collections::BTreeMap<String, ServiceAnnouncement> = Default::default();
        for v in &self.vrouters {
            for c in &v.candidates {
                let Some(key) = &c.service else { continue };
                let e = out.entry(key.clone()).or_default();
                let sent = v.peers.iter().any(|p| p.has(&c.prefix));
                if c.advertised && sent {
                    e.announced.insert(c.prefix);
                } else if e.not_announced.is_none() {
                    let why =
                        if c.advertised { "the virtual router has no peer for it".to_string() } else { c.reason() };
                    e.not_announced = Some((c.prefix, why));
                }
            }
        }
        out
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    UnknownNode(String),
    MultiplePolicies { node: String, policies: Vec<String> },
    NoRouterId { node: String, asn: u32 },
    Annotation { node: String, key: String, message: String },
    PassiveWithoutListener { node: String, asn: u32, peer: IpAddr },
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
        }
    }
}

impl std::error::Error for PlanError {}

/// Attribute sets are shared: routes with equal attributes share one `Arc`.
#[derive(Default)]
struct Interner(HashMap<AdvertAttrs, Arc<AdvertAttrs>>);

impl Interner {
    fn get(&mut self, a: AdvertAttrs) -> Arc<AdvertAttrs> {
        self.0.entry(a.clone()).or_insert_with(|| Arc::new(a)).clone()
    }
}

/// What kind of route a prefix is, for `advertisedPathAttributes`.
#[derive(Clone, Debug)]
enum Origin {
    PodCidr,
    Service(IpAddr),
}

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

fn host_prefix(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// A Service's endpoints on one node (EndpointSlice conditions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalEndpoints {
    pub ready: usize,
    /// Terminating but still serving: a graceful drain in progress.
    pub draining: usize,
}

impl LocalEndpoints {
    /// Whether a `trafficPolicy: Local` address is announced from this node, and why.
    fn decide(&self, policy: &str) -> Result<String, String> {
        if self.ready > 0 {
            Ok(format!("{policy}: Local and {} ready endpoint(s) on this node", self.ready))
        } else if self.draining > 0 {
            Ok(format!(
                "{policy}: Local and {} endpoint(s) on this node terminating but still serving (graceful drain)",
                self.draining
            ))
        } else {
            Err(format!("{policy}: Local and no ready endpoint on this node"))
        }
    }
}

/// Endpoints of every Service on `node`, by `namespace/name`.
fn local_endpoints(world: &World, node: &str) -> HashMap<String, LocalEndpoints> {
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

/// The Service addresses a virtual router would consider, each with its source label and the
/// checks that decide it.
fn service_candidates(vr: &VirtualRouter, s: &Service, local: LocalEndpoints, out: &mut Vec<Candidate>) {
    let name = s.key();
    let asn = vr.local_asn;
    let selected = Step::check(match &vr.service_selector {
        None => Err(format!("virtual router AS{asn} has no serviceSelector, so it announces no Service")),
        Some(sel) => match sel.explain(&s.selector_labels()) {
            SelectorMatch::Matched => {
                Ok(format!("the serviceSelector of AS{asn} ({}) matches the Service's labels", sel.describe()))
            }
            SelectorMatch::Empty => Err(format!("the serviceSelector of AS{asn} is empty, which selects no Service")),
            SelectorMatch::Failed(why) => Err(format!("the serviceSelector of AS{asn} does not match: {why}")),
        },
    });
    let traffic = |policy: &str, local_policy: bool| local_policy.then(|| Step::check(local.decide(policy)));
    let includes = |what: &str, yes: bool| {
        if yes {
            Step::pass(format!("serviceAdvertisements of AS{asn} includes {what}"))
        } else {
            Step::fail(format!("serviceAdvertisements does not include {what}"))
        }
    };
    for ip in &s.ingress_ips {
        let mut steps = vec![
            Step::pass(format!("Service {name} has it as a LoadBalancer IP (status.loadBalancer.ingress)")),
            selected.clone(),
            includes("LoadBalancerIP", vr.advertise.load_balancer_ip),
        ];
        if s.kind != ServiceType::LoadBalancer {
            steps.push(Step::fail("the Service is not of type LoadBalancer"));
        }
        if let Some(c) = s.load_balancer_class.as_deref() {
            steps.push(if LB_CLASSES.contains(&c) {
                Step::pass(format!("loadBalancerClass {c} is served by kbgp"))
            } else {
                Step::fail(format!("loadBalancerClass {c:?} belongs to another controller"))
            });
        }
        steps.extend(traffic("externalTrafficPolicy", s.external_traffic_local));
        out.push(Candidate::new(host_prefix(*ip), format!("Service {name} LoadBalancer IP"), steps).of_service(&name));
    }
    for ip in &s.external_ips {
        let mut steps = vec![
            Step::pass(format!("Service {name} has it as an external IP (spec.externalIPs)")),
            selected.clone(),
            includes("ExternalIP", vr.advertise.external_ip),
        ];
        steps.extend(traffic("externalTrafficPolicy", s.external_traffic_local));
        out.push(Candidate::new(host_prefix(*ip), format!("Service {name} external IP"), steps).of_service(&name));
    }
    for ip in &s.cluster_ips {
        let mut steps = vec![
            Step::pass(format!("Service {name} has it as its cluster IP (spec.clusterIPs)")),
            selected.clone(),
            includes("ClusterIP", vr.advertise.cluster_ip),
        ];
        steps.extend(traffic("internalTrafficPolicy", s.internal_traffic_local));
        out.push(Candidate::new(host_prefix(*ip), format!("Service {name} cluster IP"), steps).of_service(&name));
    }
}

fn rule_applies(rule: &PathAttributeRule, origin: &Origin, node: &Node, world: &World) -> bool {
    match (rule.selector_type, origin) {
        (SelectorType::PodCidr, Origin::PodCidr) => rule.selector.as_ref().is_none_or(|s| s.matches(&node.labels)),
        (SelectorType::LoadBalancerIpPool, Origin::Service(ip)) => world
            .pools
            .iter()
            .any(|p| !p.disabled && p.contains(ip) && rule.selector.as_ref().is_none_or(|s| s.matches(&p.labels))),
        _ => false,
    }
}

/// The attributes for one route to one neighbor: every applicable rule's communities, and the
/// highest LOCAL_PREF any of them sets.
fn attrs_for(n: &Neighbor, origins: &[Origin], node: &Node, world: &World) -> AdvertAttrs {
    let mut a = AdvertAttrs::default();
    for rule in &n.path_attributes {
        if !origins.iter().any(|o| rule_applies(rule, o, node, world)) {
            continue;
        }
        a.communities.extend(rule.communities.iter().copied());
        a.large_communities.extend(rule.large_communities.iter().copied());
        if let Some(lp) = rule.local_preference {
            a.local_pref = Some(a.local_pref.map_or(lp, |x: u32| x.max(lp)));
        }
    }
    a.communities.sort();
    a.communities.dedup();
    a.large_communities.sort();
    a.large_communities.dedup();
    a
}

fn settings(n: &Neighbor, local_asn: u32, router_id: Ipv4Addr) -> PeerSettings {
    let mut s = SessionConfig::new(local_asn, n.peer_asn, router_id);
    s.hold_time = n.hold_time;
    s.keepalive = n.keepalive;
    s.connect_retry = Duration::from_secs(n.connect_retry_secs as u64);
    s.min_retry = Duration::from_secs(1).min(s.connect_retry);
    s.passive = n.passive;
    s.families = n.families.clone();
    s.graceful_restart = n.graceful_restart;
    let ebgp = local_asn != n.peer_asn;
    PeerSettings {
        session: s,
        address: n.address,
        port: n.port,
        ttl: ebgp.then_some(n.ebgp_multihop_ttl),
        max_received_routes: n.max_received_routes,
    }
}

/// Works out what `node` announces.
pub fn plan(node_name: &str, world: &World) -> Result<Plan, PlanError> {
    let node = world.node(node_name).ok_or_else(|| PlanError::UnknownNode(node_name.to_string()))?;
    let mut plan = Plan { node: node.name.clone(), ..Default::default() };
    let policies = world.policies_for(node);
    let policy = match policies.as_slice() {
        [] => {
            plan.notes.push(format!("no peering policy selects node {}: nothing to announce", node.name));
            return Ok(plan);
        }
        [p] => *p,
        many => {
            return Err(PlanError::MultiplePolicies {
                node: node.name.clone(),
                policies: many.iter().map(|p| p.name.clone()).collect(),
            });
        }
    };
    plan.policy = Some(policy.name.clone());
    let overrides = parse_overrides(node)?;
    let endpoints = local_endpoints(world, &node.name);
    let mut interner = Interner::default();

    for vr in &policy.virtual_routers {
        let o = overrides.get(&vr.local_asn).cloned().unwrap_or_default();
        let rid = router_id(node, vr.local_asn, &o)?;
        // prefix -> (sources, origins)
        let mut wanted: BTreeMap<IpNet, Vec<Origin>> = BTreeMap::new();
        let mut candidates = Vec::new();
        for p in &node.pod_cidrs {
            let steps = vec![
                Step::pass(format!("it is a pod CIDR of node {} (spec.podCIDRs)", node.name)),
                if vr.export_pod_cidr {
                    Step::pass(format!("exportPodCIDR is true on AS{}", vr.local_asn))
                } else {
                    Step::fail(format!("exportPodCIDR is false on AS{}", vr.local_asn))
                },
            ];
            let c = Candidate::new(*p, format!("pod CIDR of node {}", node.name), steps);
            if c.advertised {
                wanted.entry(*p).or_default().push(Origin::PodCidr);
            }
            candidates.push(c);
        }
        for s in &world.services {
            let local = endpoints.get(&s.key()).copied().unwrap_or_default();
            let first = candidates.len();
            service_candidates(vr, s, local, &mut candidates);
            for c in candidates[first..].iter().filter(|c| c.advertised) {
                wanted.entry(c.prefix).or_default().push(Origin::Service(c.prefix.addr()));
            }
        }
        let mut peers = Vec::new();
        for n in &vr.neighbors {
            if n.passive && o.local_port.is_none() {
                return Err(PlanError::PassiveWithoutListener {
                    node: node.name.clone(),
                    asn: vr.local_asn,
                    peer: n.address,
                });
            }
            let routes = wanted
                .iter()
                .filter(|(p, _)| n.families.contains(&crate::wire::Family::of_prefix(p)))
                .map(|(p, origins)| Advertisement {
                    prefix: *p,
                    attrs: interner.get(attrs_for(n, origins, node, world)),
                })
                .collect();
            peers.push(PeerPlan {
                key: PeerKey { local_asn: vr.local_asn, address: n.address },
                settings: settings(n, vr.local_asn, rid),
                routes,
            });
        }
        plan.vrouters.push(VRouterPlan {
            local_asn: vr.local_asn,
            router_id: rid,
            listen_port: o.local_port,
            peers,
            candidates,
        });
    }
    Ok(plan)
}

#[cfg(test)]
mod tests;
