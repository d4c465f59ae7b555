//! `kbgp why <ip-or-prefix>`: the plan's decisions about one address, as an explanation.
//!
//! [`why`] is pure: from the World, the allocation LB IPAM makes of it and the plan, it says
//! which policy selects the node, what in the cluster owns the address, what LB IPAM did with
//! it, and for every virtual router the chain of checks that decided each candidate (run
//! again, in words, for this address only: the plan keeps only decisions) and which peers it
//! is planned for. The daemon then adds what each session actually did
//! ([`WhyPeer::steps`]) and calls [`Why::conclude`] for the one-line verdict.

use super::{Candidate, Plan, Step};
use crate::config::World;
use crate::config::meta::SelectorMatch;
use crate::config::pool::Block;
use crate::ipam::Allocation;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Why {
    pub target: IpNet,
    pub node: String,
    /// One sentence: announced to whom, or the first reason it is not.
    pub verdict: String,
    /// How the node got its peering policy.
    pub policy: Vec<Step>,
    /// What in the cluster has this address (Services, pod CIDRs), whether or not this node
    /// announces it.
    pub owners: Vec<String>,
    /// LB IPAM: the pools that contain the address and what was assigned from them.
    pub ipam: Vec<Step>,
    pub vrouters: Vec<WhyVRouter>,
    /// Routes at, inside or around the target that peers send this node (filled by the
    /// daemon): where the traffic goes when this node does not announce it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub learned: Vec<String>,
    /// The health checks of the VirtualIPs at the target (filled by the daemon).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health: Vec<HealthView>,
}

/// One VirtualIP's health check as `kbgp why` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    pub virtual_ip: String,
    /// What is checked, e.g. `HTTPS GET https://127.0.0.1:6443/readyz`.
    pub check: String,
    pub healthy: bool,
    /// Why the verdict is what it is.
    pub reason: String,
    /// Milliseconds since the verdict last changed (or the check started).
    pub since_ms: u64,
    pub transitions: u64,
    /// The latest results, newest last.
    pub results: Vec<HealthResult>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResult {
    /// Milliseconds ago.
    pub ago_ms: u64,
    pub ok: bool,
    /// `passed`, or why not.
    pub text: String,
    pub latency_ms: u64,
    /// Inside startupGraceSeconds: not counted.
    pub in_grace: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhyVRouter {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// The candidates at, inside or around the target, with their checks.
    pub candidates: Vec<Candidate>,
    pub peers: Vec<WhyPeer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhyPeer {
    pub address: IpAddr,
    pub peer_as: u32,
    /// Per announced candidate: planned for this peer or not and why; then (from the daemon)
    /// whether the session has sent it.
    pub steps: Vec<Step>,
    /// The candidates planned for this peer: what the daemon checks the session against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<IpNet>,
}

impl WhyPeer {
    /// Every step passed and there was something to send.
    pub fn announces(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.ok)
    }
}

/// At, inside or around the target.
pub fn relevant(c: &IpNet, target: &IpNet) -> bool {
    c == target || c.contains(target) || target.contains(c)
}

fn block_text(b: &Block) -> String {
    match b {
        Block::Cidr(n) => n.to_string(),
        Block::Range(a, z) if a == z => a.to_string(),
        Block::Range(a, z) => format!("{a}-{z}"),
    }
}

fn policy_steps(node: &crate::config::Node, world: &World) -> Vec<Step> {
    let mut selecting = Vec::new();
    let mut others = Vec::new();
    for p in &world.policies {
        let what = format!("{} {}", p.kind.kind_name(), p.name);
        match &p.node_selector {
            None => selecting.push(Step::pass(format!("{what} has no nodeSelector: it selects every node"))),
            Some(sel) => match sel.explain(&node.labels) {
                SelectorMatch::Matched => selecting.push(Step::pass(format!(
                    "{what} selects this node: nodeSelector ({}) matches its labels",
                    sel.describe()
                ))),
                SelectorMatch::Empty => {
                    selecting.push(Step::pass(format!("{what} has an empty nodeSelector: it selects every node")))
                }
                SelectorMatch::Failed(why) => others.push(Step::fail(format!("{what} does not select it: {why}"))),
            },
        }
    }
    match selecting.len() {
        0 if others.is_empty() => vec![Step::fail("there is no peering policy at all")],
        0 => {
            let mut v = vec![Step::fail(format!("no peering policy selects node {}", node.name))];
            let n = others.len();
            v.extend(others.into_iter().take(5));
            if n > 5 {
                v.push(Step::fail(format!("... and {} more policies", n - 5)));
            }
            v
        }
        1 => selecting,
        _ => {
            let mut v: Vec<Step> = selecting.into_iter().map(|s| Step::fail(s.text)).collect();
            v.insert(0, Step::fail("more than one peering policy selects this node; a node may have only one"));
            v
        }
    }
}

fn owners(target: &IpNet, node: &str, world: &World) -> Vec<String> {
    let mut v = Vec::new();
    let hit = |ip: &IpAddr| target.contains(ip);
    for s in &world.services {
        let mut roles = Vec::new();
        for (ips, what) in
            [(&s.ingress_ips, "LoadBalancer IP"), (&s.external_ips, "external IP"), (&s.cluster_ips, "cluster IP")]
        {
            roles.extend(ips.iter().filter(|ip| hit(ip)).map(|ip| format!("{ip} as {what}")));
        }
        if !roles.is_empty() {
            let class = match (&s.kind, s.load_balancer_class.as_deref()) {
                (_, Some(c)) => format!(", loadBalancerClass {c}"),
                _ => String::new(),
            };
            v.push(format!("Service {} (type {}{class}) has {}", s.key(), s.kind.name(), roles.join(", ")));
        }
    }
    for n in &world.nodes {
        for p in n.pod_cidrs.iter().filter(|p| relevant(p, target)) {
            if n.name == node {
                v.push(format!("{p} is a pod CIDR of this node ({node})"));
            } else {
                v.push(format!("{p} is a pod CIDR of node {}: that node announces it, not this one", n.name));
            }
        }
    }
    v
}

fn ipam_steps(target: &IpNet, world: &World, alloc: &Allocation) -> Vec<Step> {
    let mut v = Vec::new();
    let host = target.prefix_len() == target.max_prefix_len();
    let ip = target.addr();
    for p in world.pools.iter().filter(|p| p.blocks.iter().any(|b| b.contains(&ip))) {
        let blocks = p.blocks.iter().map(block_text).collect::<Vec<_>>().join(", ");
        let st = alloc.pools.iter().find(|s| s.name == p.name);
        let what = format!("{} {} ({blocks})", p.kind.kind_name(), p.name);
        if p.disabled {
            v.push(Step::fail(format!("{what} contains it but is disabled: it hands out nothing")));
        } else if let Some(c) = st.and_then(|s| s.conflict.as_ref()) {
            v.push(Step::fail(format!("{what} contains it but hands out nothing: {c}")));
        } else {
            let free = st.map(|s| format!(", {} of {} addresses free", s.available(), s.total)).unwrap_or_default();
            v.push(Step::pass(format!("{what} contains it{free}")));
        }
    }
    if !host {
        return v;
    }
    let mut assigned = false;
    for (svc, ips) in &alloc.services {
        for (a, pool) in ips.iter().filter(|(a, _)| *a == ip) {
            assigned = true;
            let from = pool.as_deref().map(|p| format!(" from {p}")).unwrap_or_default();
            let shown = world.services.iter().find(|s| s.key() == *svc).is_some_and(|s| s.ingress_ips.contains(a));
            v.push(if shown {
                Step::pass(format!("LB IPAM assigns it to Service {svc}{from}"))
            } else {
                Step::fail(format!(
                    "LB IPAM assigns it to Service {svc}{from}, but the Service's status.loadBalancer.ingress \
                     does not show it yet (the LB IPAM leader writes it)"
                ))
            });
        }
    }
    let text = ip.to_string();
    let services: Vec<String> = world
        .services
        .iter()
        .filter(|s| {
            s.ingress_ips.contains(&ip)
                || s.load_balancer_ip == Some(ip)
                || s.annotations.values().any(|a| a.split(',').any(|x| x.trim() == text))
        })
        .map(|s| s.key())
        .collect();
    for p in &alloc.problems {
        let about_ip = p.message.contains(&text);
        let about_owner = services.contains(&p.subject);
        if about_ip || about_owner {
            v.push(Step::fail(format!("LB IPAM: {p}")));
        }
    }
    if !assigned && !v.is_empty() && v.iter().all(|s| s.ok) {
        v.push(Step::pass("no Service holds it: it is free".to_string()));
    }
    v
}

/// Explains what `plan` (made for `plan.node` from `world`) does with `target`.
pub fn why(target: IpNet, world: &World, alloc: &Allocation, plan: &Plan) -> Why {
    let node = plan.node.clone();
    let policy = match world.node(&node) {
        Some(n) => policy_steps(n, world),
        None => vec![Step::fail(format!("node {node} is not in the configuration"))],
    };
    let mut vrouters = Vec::new();
    let mut explained = plan.explain(world, &target).into_iter();
    for v in &plan.vrouters {
        let candidates: Vec<Candidate> = explained.next().unwrap_or_default();
        let mut peers = Vec::new();
        for p in &v.peers {
            let mut steps = Vec::new();
            let mut planned = Vec::new();
            for c in candidates.iter().filter(|c| c.advertised) {
                let family = crate::wire::Family::of_prefix(&c.prefix);
                if c.exports.is_some_and(|e| e != p.group.exports) {
                    steps.push(Step::fail(format!(
                        "{} is not for this peer: the advertisements it is sent do not include it",
                        c.prefix
                    )));
                } else if p.takes(&c.prefix) {
                    planned.push(c.prefix);
                    steps.push(Step::pass(format!("{} is planned for this peer", c.prefix)));
                } else {
                    steps.push(Step::fail(format!(
                        "{} is not for this peer: the neighbor is not configured for {family}",
                        c.prefix
                    )));
                }
            }
            peers.push(WhyPeer { address: p.key.address, peer_as: p.settings.session.peer_as, steps, planned });
        }
        vrouters.push(WhyVRouter { asn: v.local_asn, router_id: v.router_id, candidates, peers });
    }
    let mut w = Why {
        target,
        node: node.clone(),
        verdict: String::new(),
        policy,
        owners: owners(&target, &node, world),
        ipam: ipam_steps(&target, world, alloc),
        vrouters,
        learned: Vec::new(),
        health: Vec::new(),
    };
    w.conclude();
    w
}

impl Why {
    /// Sets the verdict from the rest; call again after adding the sessions' steps.
    pub fn conclude(&mut self) {
        let t = self.target;
        let node = &self.node;
        let peers: Vec<&WhyPeer> = self.vrouters.iter().flat_map(|v| &v.peers).collect();
        let announcing: Vec<String> = peers.iter().filter(|p| p.announces()).map(|p| p.address.to_string()).collect();
        let candidates: Vec<&Candidate> = self.vrouters.iter().flat_map(|v| &v.candidates).collect();
        self.verdict = if !announcing.is_empty() {
            format!(
                "{t} is announced by node {node} to {} of {} peers ({})",
                announcing.len(),
                peers.len(),
                announcing.join(", ")
            )
        } else if let Some(s) = self.policy.iter().find(|s| !s.ok) {
            format!("{t} is not announced by node {node}: {}", s.text)
        } else if let Some(c) = candidates.iter().find(|c| !c.advertised) {
            format!("{t} is not announced by node {node}: {} ({})", c.reason(), c.source)
        } else if candidates.iter().any(|c| c.advertised) {
            let first = peers.iter().flat_map(|p| p.steps.iter().find(|s| !s.ok)).next();
            match first {
                Some(s) => format!("{t} is planned on node {node} but not announced: {}", s.text),
                None => format!("{t} is planned on node {node} but the virtual router has no peers"),
            }
        } else if let Some(o) = self.owners.first() {
            format!("{t} is not announced by node {node}: nothing here announces it ({o})")
        } else if let Some(l) = self.learned.first() {
            format!("{t} is not announced by node {node}, which learns it instead: {l}")
        } else {
            format!(
                "{t} is not announced by node {node}: no Service has it as a LoadBalancer, external or cluster IP, \
                 and it is in none of this node's pod CIDRs"
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::ipam;

    /// After the seed's rack-0 policy (`test_fixtures::POLICY`).
    const WORLD: &str = r#"
---
apiVersion: cilium.io/v2alpha1
kind: CiliumBGPPeeringPolicy
metadata: {name: rack1-65008}
spec:
  nodeSelector: {matchLabels: {rack: rack1}}
  virtualRouters: [{localASN: 65008, neighbors: [{peerAddress: 10.0.8.1, peerASN: 65008}]}]
---
apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: {name: lb-pool}
spec: {blocks: [{start: 20.0.0.100, stop: 20.0.0.200}]}
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {rack: rack0}}
spec: {podCIDRs: [10.1.0.0/24]}
status: {addresses: [{type: InternalIP, address: 10.0.5.11}]}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {rack: rack9}}
spec: {podCIDRs: [10.1.9.0/24]}
status: {addresses: [{type: InternalIP, address: 10.0.9.11}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, labels: {advertise-bgp: "true"}}
spec: {type: LoadBalancer, clusterIP: 10.96.0.10}
---
apiVersion: v1
kind: Service
metadata: {name: hidden, labels: {app: hidden}}
spec: {type: LoadBalancer}
"#;

    fn explain(node: &str, target: &str) -> Why {
        let text = format!("{}{WORLD}", crate::test_fixtures::POLICY);
        let mut w = load_str(&text, "t").unwrap().world;
        let a = ipam::allocate(&w);
        ipam::apply(&mut w, &a);
        let p = super::super::plan(node, &w).unwrap();
        why(crate::admin::api::parse_target(target).unwrap(), &w, &a, &p)
    }

    #[test]
    fn an_announced_service_ip_names_policy_service_pool_and_peer() {
        let w = explain("n1", "20.0.0.101");
        assert_eq!(w.verdict, "20.0.0.101/32 is announced by node n1 to 1 of 1 peers (10.0.5.1)");
        assert_eq!(
            w.policy,
            vec![Step::pass(
                "CiliumBGPPeeringPolicy rack0-65005 selects this node: nodeSelector (rack=rack0) matches its labels"
            )]
        );
        assert_eq!(w.owners, vec!["Service default/web (type LoadBalancer) has 20.0.0.101 as LoadBalancer IP"]);
        assert_eq!(
            w.ipam,
            vec![
                Step::pass(
                    "CiliumLoadBalancerIPPool lb-pool (20.0.0.100-20.0.0.200) contains it, 99 of 101 addresses free"
                ),
                Step::pass("LB IPAM assigns it to Service default/web from lb-pool"),
            ]
        );
        let c = &w.vrouters[0].candidates;
        assert_eq!(c.len(), 1);
        assert!(c[0].advertised);
        assert!(c[0].steps.iter().any(|s| s.text.contains("(advertise-bgp=true) matches")), "{:?}", c[0].steps);
        assert_eq!(w.vrouters[0].peers[0].steps, vec![Step::pass("20.0.0.101/32 is planned for this peer")]);
    }

    #[test]
    fn a_service_the_selector_misses_says_which_label() {
        let w = explain("n1", "20.0.0.100");
        assert_eq!(
            w.verdict,
            "20.0.0.100/32 is not announced by node n1: the serviceSelector of AS65005 does not match: \
             no label advertise-bgp (selector wants advertise-bgp=\"true\") (Service default/hidden LoadBalancer IP)"
        );
        assert!(w.vrouters[0].peers[0].steps.is_empty());
        assert!(!w.vrouters[0].peers[0].announces());
    }

    #[test]
    fn pod_cidrs_by_address_inside_and_of_other_nodes() {
        let w = explain("n1", "10.1.0.7");
        assert!(w.verdict.starts_with("10.1.0.7/32 is announced by node n1"), "{}", w.verdict);
        assert_eq!(w.vrouters[0].candidates[0].prefix.to_string(), "10.1.0.0/24");
        let w = explain("n1", "10.1.9.0/24");
        assert_eq!(
            w.verdict,
            "10.1.9.0/24 is not announced by node n1: nothing here announces it \
             (10.1.9.0/24 is a pod CIDR of node n2: that node announces it, not this one)"
        );
    }

    #[test]
    fn a_node_without_policy_lists_why_each_policy_missed() {
        let w = explain("n2", "20.0.0.100");
        assert_eq!(w.verdict, "20.0.0.100/32 is not announced by node n2: no peering policy selects node n2");
        assert!(w.policy.iter().any(|s| s.text
            == "CiliumBGPPeeringPolicy rack1-65008 does not select it: label rack=\"rack9\", selector wants \"rack1\""));
    }

    #[test]
    fn external_traffic_policy_local_names_the_endpoints() {
        let extra = r#"
---
apiVersion: v1
kind: Service
metadata: {name: local, labels: {advertise-bgp: "true"}}
spec: {type: LoadBalancer, externalTrafficPolicy: Local}
status: {loadBalancer: {ingress: [{ip: 20.0.0.150}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: local-1, labels: {kubernetes.io/service-name: local}}
addressType: IPv4
endpoints: [{addresses: [10.1.9.5], nodeName: n2, conditions: {ready: true}}]
"#;
        let text = format!("{}{WORLD}{extra}", crate::test_fixtures::POLICY);
        let mut w = load_str(&text, "t").unwrap().world;
        let a = ipam::allocate(&w);
        ipam::apply(&mut w, &a);
        let p = super::super::plan("n1", &w).unwrap();
        let why = why(crate::admin::api::parse_target("20.0.0.150").unwrap(), &w, &a, &p);
        assert_eq!(
            why.verdict,
            "20.0.0.150/32 is not announced by node n1: externalTrafficPolicy: Local and no ready endpoint on this \
             node (Service default/local LoadBalancer IP)"
        );
    }

    #[test]
    fn an_unknown_address_and_a_free_pool_address() {
        let w = explain("n1", "192.0.2.1");
        assert!(w.verdict.ends_with("and it is in none of this node's pod CIDRs"), "{}", w.verdict);
        let w = explain("n1", "20.0.0.150");
        assert_eq!(w.ipam.last().unwrap(), &Step::pass("no Service holds it: it is free"));
    }
}
