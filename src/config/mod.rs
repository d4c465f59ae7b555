//! # config — the object model
//!
//! The objects kbgp reads, the same whether they come from a file or (later) the API server:
//! peering policies, LB IP pools, Nodes and Services. Raw serde types mirror the YAML; each
//! is validated into a model type with defaults filled in, and every problem is reported with
//! the document, the field path and what is wrong.

pub mod cilium_v2;
pub mod conditions;
pub mod crd;
pub mod error;
pub mod k8s;
pub mod load;
pub mod meta;
pub mod metallb;
pub mod node_status;
pub mod policy;
pub mod pool;
pub mod secret;
pub mod vip;
mod yaml;

pub use error::ConfigError;
pub use k8s::{Endpoint, EndpointSlice, Namespace, Node, Service, ServiceType};
pub use load::{Loaded, expand, load_file, load_files, load_str, load_value};
pub use meta::LabelSelector;
pub use policy::{Neighbor, PeeringPolicy, PolicyKind, VirtualRouter};
pub use pool::LbPool;
pub use secret::Secret;
use std::sync::Arc;
pub use vip::{VipHealth, VirtualIp};

/// Everything kbgp knows about the cluster at one moment.
///
/// Objects are shared (`Arc`): the Kubernetes source builds a new World per batch of changes
/// from the objects it holds, so an unchanged object costs a pointer copy, not a deep clone.
/// Code that changes one (LB IPAM filling a Service's ingress in file mode) uses
/// [`Arc::make_mut`], which copies only that object if another World still shares it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct World {
    pub policies: Vec<Arc<PeeringPolicy>>,
    pub pools: Vec<Arc<LbPool>>,
    pub nodes: Vec<Arc<Node>>,
    pub services: Vec<Arc<Service>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// Secrets the configuration refers to (TCP MD5 passwords); values never shown.
    pub secrets: Vec<Arc<Secret>>,
    /// Addresses announced while a local health check passes (`kbgp.io/v1alpha1 VirtualIP`).
    pub virtual_ips: Vec<Arc<VirtualIp>>,
    /// What this node's health checks say about them (set by the daemon, not read from files).
    pub vip_health: Arc<VipHealth>,
    /// Cilium's BGP v2 objects (cluster and peer configs, advertisements, node overrides).
    pub bgp_v2: cilium_v2::BgpV2,
    /// MetalLB's BGP objects (peers, advertisements, communities, BFD profiles); its pools
    /// are in `pools`.
    pub metallb: metallb::MetalLb,
    /// Secrets of the MetalLB namespace (BGPPeer `passwordSecret`).
    pub metallb_secrets: Vec<Arc<Secret>>,
    /// Namespaces and their labels (MetalLB's `serviceAllocation.namespaceSelectors`).
    pub namespaces: Vec<Arc<Namespace>>,
    /// `--lb-class NAME`: kbgp handles the LoadBalancer Services of this class only (`None`:
    /// classless ones and kbgp's or Cilium's class). Set by the daemon, not read from files.
    pub lb_class: Option<String>,
}

/// The namespaces kbgp reads namespaced configuration from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespaces {
    /// Secrets that Cilium's `authSecretRef` names (`--bgp-secrets-namespace`).
    pub bgp_secrets: String,
    /// MetalLB's objects and the Secrets its BGPPeers name (`--metallb-namespace`).
    pub metallb: String,
}

impl Default for Namespaces {
    fn default() -> Namespaces {
        Namespaces { bgp_secrets: "kube-system".into(), metallb: metallb::DEFAULT_NAMESPACE.into() }
    }
}

impl World {
    /// Whether LB IPAM and the announcements handle this Service (see [`World::lb_class`]).
    pub fn handles(&self, s: &Service) -> bool {
        s.handled_by(self.lb_class.as_deref())
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name).map(|n| &**n)
    }

    /// VirtualIPs that select `node`.
    pub fn virtual_ips_for<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a VirtualIp> + 'a {
        self.virtual_ips.iter().filter(|v| v.selects(&node.labels)).map(|v| &**v)
    }

    /// Policies that select `node`, shared with the World.
    pub fn policies_for(&self, node: &Node) -> Vec<Arc<PeeringPolicy>> {
        self.policies.iter().filter(|p| p.selects(&node.labels)).cloned().collect()
    }

    /// Keeps what kbgp reads of namespaced objects, as the API server watches would: the
    /// Secrets of the BGP secrets namespace (Cilium's `authSecretRef`) and of the MetalLB
    /// namespace (MetalLB's `passwordSecret`), MetalLB's objects of its namespace (or of none,
    /// in a file). One warning per object dropped.
    pub fn scope(&mut self, ns: &Namespaces) -> Vec<String> {
        let mut warnings = Vec::new();
        let (mut bgp, mut metallb) = (Vec::new(), Vec::new());
        for s in std::mem::take(&mut self.secrets).into_iter().chain(std::mem::take(&mut self.metallb_secrets)) {
            let is_bgp = s.namespace == ns.bgp_secrets;
            let is_metallb = s.namespace == ns.metallb;
            if is_metallb {
                metallb.push(s.clone());
            }
            if is_bgp {
                bgp.push(s);
            } else if !is_metallb {
                warnings.push(format!(
                    "Secret {}/{} ignored: kbgp reads the Secrets of the BGP secrets namespace {} \
                     (--bgp-secrets-namespace, for authSecretRef) and of the MetalLB namespace {} \
                     (--metallb-namespace, for passwordSecret)",
                    s.namespace, s.name, ns.bgp_secrets, ns.metallb
                ));
            }
        }
        (self.secrets, self.metallb_secrets) = (bgp, metallb);
        for p in self.pools.iter_mut().filter(|p| p.kind == pool::PoolKind::MetalLb && p.namespace.is_none()) {
            Arc::make_mut(p).namespace = Some(ns.metallb.clone());
        }
        self.pools.retain(|p| {
            let keep = p.namespace.as_deref().is_none_or(|n| n == ns.metallb);
            if !keep {
                warnings.push(format!(
                    "IPAddressPool {}/{} ignored: MetalLB's objects are read from the MetalLB namespace {} \
                     (--metallb-namespace), as MetalLB reads them",
                    p.namespace.as_deref().unwrap_or_default(),
                    p.name,
                    ns.metallb
                ));
            }
            keep
        });
        warnings.extend(self.metallb.keep_namespace(&ns.metallb));
        warnings
    }

    /// Adds another file's objects (moves the pointers; nothing is copied).
    pub fn extend(&mut self, other: World) {
        fn add<T>(to: &mut Vec<T>, more: Vec<T>) {
            if to.is_empty() {
                *to = more;
            } else {
                to.extend(more);
            }
        }
        add(&mut self.policies, other.policies);
        add(&mut self.pools, other.pools);
        add(&mut self.nodes, other.nodes);
        add(&mut self.services, other.services);
        add(&mut self.endpoint_slices, other.endpoint_slices);
        add(&mut self.secrets, other.secrets);
        add(&mut self.virtual_ips, other.virtual_ips);
        add(&mut self.metallb_secrets, other.metallb_secrets);
        add(&mut self.namespaces, other.namespaces);
        self.bgp_v2.extend(other.bgp_v2);
        self.metallb.extend(other.metallb);
    }

    /// The objects of `other` put over this World, as `kubectl apply` would: one of the same
    /// kind and name (namespace and name, where namespaced) is replaced, others are added.
    /// What the daemon sets itself (VirtualIP health) is kept.
    pub fn overlay(&mut self, other: World) {
        fn put<T>(to: &mut Vec<Arc<T>>, more: Vec<Arc<T>>, key: impl Fn(&T) -> String) {
            for x in more {
                let k = key(&x);
                match to.iter_mut().find(|y| key(y) == k) {
                    Some(y) => *y = x,
                    None => to.push(x),
                }
            }
        }
        fn ns(n: &Option<String>, name: &str) -> String {
            format!("{}/{name}", n.as_deref().unwrap_or_default())
        }
        put(&mut self.policies, other.policies, |p| format!("{:?}/{}", p.kind, p.name));
        put(&mut self.pools, other.pools, |p| format!("{:?}/{}", p.kind, ns(&p.namespace, &p.name)));
        put(&mut self.nodes, other.nodes, |n| n.name.clone());
        put(&mut self.services, other.services, |s| s.key());
        put(&mut self.endpoint_slices, other.endpoint_slices, |s| s.key());
        put(&mut self.secrets, other.secrets, |s| format!("{}/{}", s.namespace, s.name));
        put(&mut self.metallb_secrets, other.metallb_secrets, |s| format!("{}/{}", s.namespace, s.name));
        put(&mut self.virtual_ips, other.virtual_ips, |v| v.name.clone());
        put(&mut self.namespaces, other.namespaces, |n| n.name.clone());
        let (v2, o2) = (&mut self.bgp_v2, other.bgp_v2);
        put(&mut v2.cluster_configs, o2.cluster_configs, |c| c.name.clone());
        put(&mut v2.peer_configs, o2.peer_configs, |c| c.name.clone());
        put(&mut v2.advertisements, o2.advertisements, |c| c.name.clone());
        put(&mut v2.overrides, o2.overrides, |c| c.name.clone());
        let (m, om) = (&mut self.metallb, other.metallb);
        put(&mut m.peers, om.peers, |c| ns(&c.namespace, &c.name));
        put(&mut m.advertisements, om.advertisements, |c| ns(&c.namespace, &c.name));
        put(&mut m.communities, om.communities, |c| ns(&c.namespace, &c.name));
        put(&mut m.bfd_profiles, om.bfd_profiles, |c| ns(&c.namespace, &c.name));
    }

    /// Objects of one kind with the same name (Services: namespace and name).
    pub fn duplicates(&self) -> Vec<ConfigError> {
        use error::same_names as dups;
        let mut v = Vec::new();
        dups(self.policies.iter().map(|p| p.name.clone()), "peering policy", &mut v);
        dups(self.pools.iter().map(|p| p.name.clone()), "LB IP pool", &mut v);
        dups(self.nodes.iter().map(|n| n.name.clone()), "Node", &mut v);
        dups(self.services.iter().map(|s| s.key()), "Service", &mut v);
        dups(self.endpoint_slices.iter().map(|s| s.key()), "EndpointSlice", &mut v);
        dups(self.virtual_ips.iter().map(|s| s.name.clone()), "VirtualIP", &mut v);
        dups(self.namespaces.iter().map(|n| n.name.clone()), "Namespace", &mut v);
        self.bgp_v2.duplicates(&mut v);
        self.metallb.duplicates(&mut v);
        v
    }

    /// Problems that involve several documents, for `kbgp check`: a Node selected by more than
    /// one peering policy (Cilium allows one policy per node), Cilium v2 or MetalLB objects
    /// that do not combine on a node, a MetalLB advertisement aggregating above its pool.
    pub fn cross_check(&self) -> Vec<ConfigError> {
        let mut v = Vec::new();
        for n in &self.nodes {
            let ps = self.policies_for(n);
            if ps.len() > 1 {
                let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
                v.push(ConfigError::new(
                    &n.name,
                    "metadata.labels",
                    format!(
                        "selected by {} peering policies ({}); a node may have only one",
                        ps.len(),
                        names.join(", ")
                    ),
                ));
            } else if ps.is_empty()
                && let Err(c) = cilium_v2::resolve(n, self)
            {
                v.push(ConfigError::new(&n.name, "", c.0));
            }
        }
        let aggregation = metallb::aggregation_errors(self);
        if aggregation.is_empty() {
            for n in &self.nodes {
                if let Err(c) = metallb::resolve(n, self) {
                    v.push(ConfigError::new(&n.name, "", c.0));
                }
            }
        }
        v.extend(aggregation);
        v
    }
}

#[cfg(test)]
mod tests;
