//! The checks that decide each candidate address, written once and run two ways.
//!
//! [`plan`](super::plan) runs them with [`Decide`], which only keeps whether every check
//! passed: no text is built, so a million addresses cost a million bool tests. `kbgp why`
//! and the per-Service summaries run the same checks with [`Explain`] for the few addresses
//! asked about, which keeps every check's sentence ([`Step`]).

use super::LocalEndpoints;
use crate::config::meta::SelectorMatch;
use crate::config::policy::{Origin, PodCidrExport, ServiceExport, ServiceMatch, VirtualRouter};
use crate::config::pool::PoolKind;
use crate::config::{LbPool, Node, Service, ServiceType, VipHealth, VirtualIp, World};
use crate::wire::Family;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

pub use crate::config::k8s::LB_CLASSES;

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
}

/// One address or prefix that was considered, and what was decided, with the reasons.
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
    /// The VirtualIP it belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<String>,
    /// Which of its virtual router's export sets considered it: only the neighbors that name
    /// that set get it. `None` (VirtualIPs): every set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exports: Option<usize>,
}

impl Candidate {
    /// The decision in one line: the first failed check, else every check.
    pub fn reason(&self) -> String {
        match self.steps.iter().find(|s| !s.ok) {
            Some(s) => s.text.clone(),
            None => self.steps.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("; "),
        }
    }
}

/// What the checks are recorded into.
pub trait Record: Default {
    /// One check; `text` is called only by recorders that keep it.
    fn check(&mut self, ok: bool, text: impl FnOnce() -> String);
    fn check_result(&mut self, r: &Result<String, String>) {
        match r {
            Ok(t) => self.check(true, || t.clone()),
            Err(t) => self.check(false, || t.clone()),
        }
    }
    fn passed(&self) -> bool;
}

/// Keeps only the verdict.
#[derive(Default)]
pub struct Decide {
    failed: bool,
}

impl Record for Decide {
    fn check(&mut self, ok: bool, _: impl FnOnce() -> String) {
        self.failed |= !ok;
    }
    fn passed(&self) -> bool {
        !self.failed
    }
}

/// Keeps every check in words.
#[derive(Default)]
pub struct Explain {
    pub steps: Vec<Step>,
}

impl Record for Explain {
    fn check(&mut self, ok: bool, text: impl FnOnce() -> String) {
        self.steps.push(Step { ok, text: text() });
    }
    fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.ok)
    }
}

/// Which address of a Service a candidate is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    LoadBalancer,
    External,
    Cluster,
}

impl AddressKind {
    fn label(self) -> &'static str {
        match self {
            AddressKind::LoadBalancer => "LoadBalancer IP",
            AddressKind::External => "external IP",
            AddressKind::Cluster => "cluster IP",
        }
    }
}

/// What a candidate is, from which its source text is made when needed.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    PodCidr(&'a Node),
    Service(&'a Service, AddressKind),
    VirtualIp(&'a VirtualIp),
}

impl Source<'_> {
    pub fn text(&self) -> String {
        match self {
            Source::PodCidr(n) => format!("pod CIDR of node {}", n.name),
            Source::Service(s, k) => format!("Service {} {}", s.key(), k.label()),
            Source::VirtualIp(v) => format!("VirtualIP {}", v.name),
        }
    }

    /// The candidate with its checks, for `kbgp why`.
    pub fn candidate(&self, prefix: IpNet, r: Explain) -> Candidate {
        Candidate {
            prefix,
            source: self.text(),
            advertised: r.passed(),
            steps: r.steps,
            service: match self {
                Source::Service(s, _) => Some(s.key()),
                _ => None,
            },
            virtual_ip: match self {
                Source::VirtualIp(v) => Some(v.name.clone()),
                _ => None,
            },
            exports: None,
        }
    }
}

/// The node's pod CIDRs as candidates of pod CIDR export `e` of virtual router `asn`.
pub fn pod_cidrs<'a, R: Record>(
    asn: u32,
    e: &PodCidrExport,
    node: &'a Node,
    mut out: impl FnMut(IpNet, Source<'a>, R),
) {
    for p in &node.pod_cidrs {
        let mut r = R::default();
        r.check(true, || format!("it is a pod CIDR of node {} (spec.podCIDRs)", node.name));
        match &e.origin {
            Origin::VirtualRouter { .. } => r.check(e.enabled, || {
                format!("exportPodCIDR is {} on AS{asn}", if e.enabled { "true" } else { "false" })
            }),
            Origin::Object(o) => r.check(e.enabled, || format!("{o} advertises the node's pod CIDRs")),
        }
        family(&mut r, p, &e.families, &e.origin);
        out(*p, Source::PodCidr(node), r);
    }
}

/// Whether the export goes to the address's family (Cilium v2 selects advertisements per
/// family of a peer).
fn family<R: Record>(r: &mut R, p: &IpNet, families: &[Family], origin: &Origin) {
    let f = Family::of_prefix(p);
    if !families.contains(&f) {
        r.check(false, || format!("{origin} is selected only for {}", families_text(families)));
    }
}

fn families_text(families: &[Family]) -> String {
    families.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ")
}

/// Whether export `e` selects the Service, in words.
fn selected(e: &ServiceExport, s: &Service) -> Result<String, String> {
    let labels = s.selector_labels();
    match (&e.origin, &e.selector) {
        (Origin::VirtualRouter { asn }, ServiceMatch::Selector(sel)) => match sel {
            None => Err(format!("virtual router AS{asn} has no serviceSelector, so it announces no Service")),
            Some(sel) => match sel.explain(&labels) {
                SelectorMatch::Matched => {
                    Ok(format!("the serviceSelector of AS{asn} ({}) matches the Service's labels", sel.describe()))
                }
                SelectorMatch::Empty => {
                    Err(format!("the serviceSelector of AS{asn} is empty, which selects no Service"))
                }
                SelectorMatch::Failed(why) => Err(format!("the serviceSelector of AS{asn} does not match: {why}")),
            },
        },
        (o, ServiceMatch::Selector(sel) | ServiceMatch::SelectorEmptyAll(sel)) => {
            let empty_all = matches!(e.selector, ServiceMatch::SelectorEmptyAll(_));
            match sel {
                None => Err(format!("{o} has no selector, so it selects no Service")),
                Some(sel) => match sel.explain(&labels) {
                    SelectorMatch::Matched => {
                        Ok(format!("the selector of {o} ({}) matches the Service's labels", sel.describe()))
                    }
                    SelectorMatch::Empty if empty_all => Ok(format!("the selector of {o} is empty: every Service")),
                    SelectorMatch::Empty => Err(format!("the selector of {o} is empty, which selects no Service")),
                    SelectorMatch::Failed(why) => Err(format!("the selector of {o} does not match: {why}")),
                },
            }
        }
        (o, ServiceMatch::AnyOf(list)) => {
            if list.is_empty() {
                return Ok(format!("{o} has no serviceSelectors: every Service of its pools"));
            }
            let mut first = None;
            for (i, sel) in list.iter().enumerate() {
                match sel.explain(&labels) {
                    SelectorMatch::Matched | SelectorMatch::Empty => {
                        return Ok(format!(
                            "serviceSelectors[{i}] of {o} ({}) matches the Service's labels",
                            sel.describe()
                        ));
                    }
                    SelectorMatch::Failed(why) => {
                        first.get_or_insert(why);
                    }
                }
            }
            Err(format!("no serviceSelectors of {o} match: {}", first.unwrap_or_default()))
        }
    }
}

/// Whether an address is in a MetalLB pool the export takes (its `ipAddressPools` and
/// `ipAddressPoolSelectors`; neither: every pool). An address of no MetalLB pool is not
/// announced by a BGPAdvertisement, as in MetalLB.
fn in_pools(e: &ServiceExport, ip: &IpAddr, pools: &[Arc<LbPool>]) -> Option<Result<String, String>> {
    let f = e.pools.as_ref()?;
    let o = &e.origin;
    // MetalLB's pools never overlap (it refuses them; kbgp's LB IPAM marks the newer one
    // conflicting), so the first that holds the address is its pool.
    if let Some(p) = pools.iter().find(|p| p.kind == PoolKind::MetalLb && p.contains(ip)) {
        if f.all {
            return Some(Ok(format!("it is in IPAddressPool {}, and {o} names no pools: every pool", p.name)));
        }
        if f.names.contains(&p.name) {
            return Some(Ok(format!("it is in IPAddressPool {}, named by {o}", p.name)));
        }
        if let Some(i) = f.selectors.iter().position(|s| s.matches(&p.labels)) {
            return Some(Ok(format!(
                "it is in IPAddressPool {}, selected by ipAddressPoolSelectors[{i}] of {o}",
                p.name
            )));
        }
        return Some(Err(format!("its IPAddressPool {} is neither named nor selected by {o}", p.name)));
    }
    Some(Err(format!("it is in no IPAddressPool, so {o} does not announce it")))
}

/// The prefix announced for `ip`: the address, or its covering prefix (aggregation).
fn prefix_of(e: &ServiceExport, ip: IpAddr) -> IpNet {
    let (len, max) = match ip {
        IpAddr::V4(_) => (e.aggregate_v4, 32),
        IpAddr::V6(_) => (e.aggregate_v6, 128),
    };
    if len >= max {
        return IpNet::from(ip);
    }
    IpNet::new(ip, len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip))
}

/// The addresses of one Service that export `e` would consider, each with its checks.
/// `world` gives the pools (for exports that take addresses of some pools only) and the
/// `loadBalancerClass` kbgp serves.
pub fn service<'a, R: Record>(
    e: &ServiceExport,
    world: &World,
    s: &'a Service,
    local: LocalEndpoints,
    mut out: impl FnMut(IpNet, Source<'a>, R),
) {
    if s.ingress_ips.is_empty() && s.external_ips.is_empty() && s.cluster_ips.is_empty() {
        return;
    }
    let sel = selected(e, s);
    let traffic = |r: &mut R, policy: &str, local_policy: bool| {
        if local_policy {
            r.check(local.serves(), || local.describe(policy));
        }
    };
    let includes = |r: &mut R, what: &str, yes: bool| {
        r.check(yes, || match (&e.origin, yes) {
            (Origin::VirtualRouter { asn }, true) => format!("serviceAdvertisements of AS{asn} includes {what}"),
            (Origin::VirtualRouter { .. }, false) => format!("serviceAdvertisements does not include {what}"),
            (o, true) => format!("{o} advertises {what}"),
            (o, false) => format!("{o} does not advertise {what}"),
        })
    };
    // Cilium keeps the host route of an address whose traffic policy is Local: only the
    // nodes with an endpoint announce it, which an aggregate would hide.
    let emit = |r: &mut R, ip: IpAddr, local_policy: bool| {
        let p = if local_policy { IpNet::from(ip) } else { prefix_of(e, ip) };
        family(r, &p, &e.families, &e.origin);
        if p.prefix_len() != p.max_prefix_len() {
            r.check(true, || format!("{o} aggregates it: announced as the covering {p}", o = e.origin));
        }
        p
    };
    let name = || s.key();
    for ip in &s.ingress_ips {
        let mut r = R::default();
        r.check(true, || format!("Service {} has it as a LoadBalancer IP (status.loadBalancer.ingress)", name()));
        r.check_result(&sel);
        includes(&mut r, "LoadBalancerIP", e.addresses.load_balancer_ip);
        if let Some(p) = in_pools(e, ip, &world.pools) {
            r.check_result(&p);
        }
        if s.kind != ServiceType::LoadBalancer {
            r.check(false, || "the Service is not of type LoadBalancer".into());
        }
        match (s.load_balancer_class.as_deref(), world.lb_class.as_deref()) {
            (None, None) => {}
            (None, Some(want)) => r.check(false, || {
                format!("the Service has no loadBalancerClass, and kbgp serves class {want} only (--lb-class)")
            }),
            (Some(c), _) => {
                let ours = s.class_handled_by(world.lb_class.as_deref());
                r.check(ours, || {
                    if ours {
                        format!("loadBalancerClass {c} is served by kbgp")
                    } else {
                        format!("loadBalancerClass {c:?} belongs to another controller")
                    }
                });
            }
        }
        traffic(&mut r, "externalTrafficPolicy", s.external_traffic_local);
        let p = emit(&mut r, *ip, s.external_traffic_local);
        out(p, Source::Service(s, AddressKind::LoadBalancer), r);
    }
    for ip in &s.external_ips {
        let mut r = R::default();
        r.check(true, || format!("Service {} has it as an external IP (spec.externalIPs)", name()));
        r.check_result(&sel);
        includes(&mut r, "ExternalIP", e.addresses.external_ip);
        traffic(&mut r, "externalTrafficPolicy", s.external_traffic_local);
        let p = emit(&mut r, *ip, s.external_traffic_local);
        out(p, Source::Service(s, AddressKind::External), r);
    }
    for ip in &s.cluster_ips {
        let mut r = R::default();
        r.check(true, || format!("Service {} has it as its cluster IP (spec.clusterIPs)", name()));
        r.check_result(&sel);
        includes(&mut r, "ClusterIP", e.addresses.cluster_ip);
        traffic(&mut r, "internalTrafficPolicy", s.internal_traffic_local);
        let p = emit(&mut r, *ip, s.internal_traffic_local);
        out(p, Source::Service(s, AddressKind::Cluster), r);
    }
}

/// The addresses of a VirtualIP that `vr` of `node` would consider, each with its checks.
pub fn virtual_ip<'a, R: Record>(
    vr: &VirtualRouter,
    node: &Node,
    v: &'a VirtualIp,
    health: &VipHealth,
    mut out: impl FnMut(IpNet, Source<'a>, R),
) {
    let asn = vr.local_asn;
    for p in v.prefixes() {
        let mut r = R::default();
        r.check(true, || format!("VirtualIP {} lists it (spec.addresses)", v.name));
        match &v.node_selector {
            None => r.check(true, || "the VirtualIP has no nodeSelector: every node announces it".into()),
            Some(sel) => match sel.explain(&node.labels) {
                SelectorMatch::Matched => {
                    r.check(true, || format!("its nodeSelector ({}) matches node {}", sel.describe(), node.name))
                }
                SelectorMatch::Empty => r.check(true, || "its nodeSelector is empty: every node announces it".into()),
                SelectorMatch::Failed(why) => {
                    r.check(false, || format!("its nodeSelector does not match node {}: {why}", node.name))
                }
            },
        }
        if let Some(list) = &v.virtual_routers {
            let yes = list.contains(&asn);
            r.check(yes, || {
                if yes {
                    format!("its virtualRouters include AS{asn}")
                } else {
                    format!("its virtualRouters do not include AS{asn}")
                }
            });
        }
        match &v.health_check {
            None => r.check(true, || "it has no healthCheck: announced whenever kbgp runs".into()),
            Some(h) => {
                let up = health.healthy.contains(&v.name);
                r.check(up, || {
                    if up {
                        format!("its health check ({}) passes", h.target.describe())
                    } else {
                        format!(
                            "its health check ({}) does not pass: {} passing checks in a row are needed",
                            h.target.describe(),
                            h.policy.rise
                        )
                    }
                });
            }
        }
        if health.draining {
            r.check(true, || "kbgp is shutting down: announced with GRACEFUL_SHUTDOWN until withdrawn".into());
        }
        out(p, Source::VirtualIp(v), r);
    }
}
