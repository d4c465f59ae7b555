//! The World from the Kubernetes API server.
//!
//! One watcher per kind (kube-rs `watcher` with its default backoff) turns API objects into
//! the same model types the file loader makes, and sends them to a [`Store`]. The store is
//! pure and decides what the World is:
//!
//! - A relist (`Init` … `InitDone`) is buffered and swapped in whole at `InitDone`: only the
//!   real difference reaches the plan, and objects deleted while the watch was down go.
//! - A watch that fails, or an API server gone for minutes, changes nothing: the last known
//!   objects stay until a relist completes.
//! - A peering policy or pool that becomes invalid keeps its last valid version (and the error
//!   is logged): a typo does not withdraw routes.
//! - Only what the planner reads is kept: the model types hold no managed fields or unrelated
//!   annotations, and EndpointSlices keep only this node's endpoints.
//! - Kinds whose CRD is not installed (Cilium's, or kbgp's) count as empty and are looked for
//!   again every 30 s.

use crate::config::conditions::{Observed, ObservedObjects, Subject};
use crate::config::error::Diag;
use crate::config::k8s::{Endpoint, NodeRaw, SERVICE_NAME_LABEL, ServiceRaw};
use crate::config::policy::{PeeringPolicySpec, PolicyKind};
use crate::config::pool::{PoolKind, PoolRaw};
use crate::config::secret::{Secret, SecretValue};
use crate::config::vip::VirtualIPSpec;
use crate::config::{EndpointSlice, LbPool, Node, PeeringPolicy, Service, VirtualIp, World};
use crate::config::{Namespace, Namespaces, cilium_v2, metallb};
use crate::metrics::Metrics;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Namespace as K8sNamespace, Node as K8sNode, Secret as K8sSecret, Service as K8sService,
};
use k8s_openapi::api::discovery::v1::EndpointSlice as K8sEndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// The kinds kbgp watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Node,
    Service,
    EndpointSlice,
    KbgpPolicy,
    CiliumPolicy,
    KbgpPool,
    CiliumPool,
    /// The Secrets of the BGP secrets namespace (TCP MD5 passwords).
    Secret,
    VirtualIp,
    CiliumClusterConfig,
    CiliumPeerConfig,
    CiliumAdvertisement,
    CiliumNodeOverride,
    MetalLbPool,
    MetalLbPeer,
    MetalLbAdvertisement,
    MetalLbCommunity,
    MetalLbBfdProfile,
    /// Watched only to say, for each, that kbgp does not do layer 2.
    MetalLbL2Advertisement,
    /// The Secrets of the MetalLB namespace (BGPPeer `passwordSecret`).
    MetalLbSecret,
    /// Namespaces' labels (IPAddressPool `serviceAllocation.namespaceSelectors`).
    Namespace,
}

pub const KINDS: [Kind; 21] = [
    Kind::Node,
    Kind::Service,
    Kind::EndpointSlice,
    Kind::KbgpPolicy,
    Kind::CiliumPolicy,
    Kind::KbgpPool,
    Kind::CiliumPool,
    Kind::Secret,
    Kind::VirtualIp,
    Kind::CiliumClusterConfig,
    Kind::CiliumPeerConfig,
    Kind::CiliumAdvertisement,
    Kind::CiliumNodeOverride,
    Kind::MetalLbPool,
    Kind::MetalLbPeer,
    Kind::MetalLbAdvertisement,
    Kind::MetalLbCommunity,
    Kind::MetalLbBfdProfile,
    Kind::MetalLbL2Advertisement,
    Kind::MetalLbSecret,
    Kind::Namespace,
];

/// MetalLB's kinds: namespaced, read from the MetalLB namespace only.
pub const METALLB_KINDS: [Kind; 6] = [
    Kind::MetalLbPool,
    Kind::MetalLbPeer,
    Kind::MetalLbAdvertisement,
    Kind::MetalLbCommunity,
    Kind::MetalLbBfdProfile,
    Kind::MetalLbL2Advertisement,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Node => "nodes",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::KbgpPolicy => "bgppeeringpolicies.kbgp.io",
            Kind::CiliumPolicy => "ciliumbgppeeringpolicies.cilium.io",
            Kind::KbgpPool => "loadbalancerippools.kbgp.io",
            Kind::CiliumPool => "ciliumloadbalancerippools.cilium.io",
            Kind::Secret => "secrets",
            Kind::VirtualIp => "virtualips.kbgp.io",
            Kind::CiliumClusterConfig => "ciliumbgpclusterconfigs.cilium.io",
            Kind::CiliumPeerConfig => "ciliumbgppeerconfigs.cilium.io",
            Kind::CiliumAdvertisement => "ciliumbgpadvertisements.cilium.io",
            Kind::CiliumNodeOverride => "ciliumbgpnodeconfigoverrides.cilium.io",
            Kind::MetalLbPool => "ipaddresspools.metallb.io",
            Kind::MetalLbPeer => "bgppeers.metallb.io",
            Kind::MetalLbAdvertisement => "bgpadvertisements.metallb.io",
            Kind::MetalLbCommunity => "communities.metallb.io",
            Kind::MetalLbBfdProfile => "bfdprofiles.metallb.io",
            Kind::MetalLbL2Advertisement => "l2advertisements.metallb.io",
            Kind::MetalLbSecret => "secrets (MetalLB namespace)",
            Kind::Namespace => "namespaces",
        }
    }

    /// The kinds whose objects carry conditions kbgp writes.
    pub fn subject(self) -> Option<Subject> {
        match self {
            Kind::KbgpPolicy => Some(Subject::Policy),
            Kind::VirtualIp => Some(Subject::VirtualIp),
            Kind::CiliumClusterConfig => Some(Subject::ClusterConfig),
            Kind::CiliumPeerConfig => Some(Subject::PeerConfig),
            _ => None,
        }
    }

    /// The kind whose objects carry `subject`'s conditions (the inverse of [`Kind::subject`]).
    pub fn of_subject(subject: Subject) -> Kind {
        match subject {
            Subject::Policy => Kind::KbgpPolicy,
            Subject::VirtualIp => Kind::VirtualIp,
            Subject::ClusterConfig => Kind::CiliumClusterConfig,
            Subject::PeerConfig => Kind::CiliumPeerConfig,
        }
    }

    /// Kinds that kbgp may not be allowed to read (Secrets, MetalLB's namespace, Namespaces):
    /// a 403 counts them as none, with a warning, so the rest of the World is planned.
    pub fn optional(self) -> bool {
        matches!(self, Kind::Secret | Kind::MetalLbSecret | Kind::Namespace) || METALLB_KINDS.contains(&self)
    }

    /// The custom resources a CRD kind may be served as, the preferred version first: Cilium
    /// 1.18 serves its BGP v2 kinds as cilium.io/v2, 1.16–1.17 as cilium.io/v2alpha1.
    pub fn api_resources(self) -> Vec<ApiResource> {
        let (k, p) = match self {
            Kind::CiliumClusterConfig => ("CiliumBGPClusterConfig", "ciliumbgpclusterconfigs"),
            Kind::CiliumPeerConfig => ("CiliumBGPPeerConfig", "ciliumbgppeerconfigs"),
            Kind::CiliumAdvertisement => ("CiliumBGPAdvertisement", "ciliumbgpadvertisements"),
            Kind::CiliumNodeOverride => ("CiliumBGPNodeConfigOverride", "ciliumbgpnodeconfigoverrides"),
            // MetalLB stores BGPPeer as v1beta2 and serves v1beta1 too (deprecated).
            Kind::MetalLbPeer => {
                return ["v1beta2", "v1beta1"]
                    .iter()
                    .map(|v| {
                        ApiResource::from_gvk_with_plural(
                            &GroupVersionKind::gvk("metallb.io", v, "BGPPeer"),
                            "bgppeers",
                        )
                    })
                    .collect();
            }
            _ => return self.api_resource().into_iter().collect(),
        };
        ["v2", "v2alpha1"]
            .iter()
            .map(|v| ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cilium.io", v, k), p))
            .collect()
    }

    /// The custom resource behind a CRD kind (its preferred version).
    pub fn api_resource(self) -> Option<ApiResource> {
        let (g, v, k, p) = match self {
            Kind::KbgpPolicy => ("kbgp.io", "v1alpha1", "BGPPeeringPolicy", "bgppeeringpolicies"),
            Kind::CiliumPolicy => ("cilium.io", "v2alpha1", "CiliumBGPPeeringPolicy", "ciliumbgppeeringpolicies"),
            Kind::KbgpPool => ("kbgp.io", "v1alpha1", "LoadBalancerIPPool", "loadbalancerippools"),
            Kind::CiliumPool => ("cilium.io", "v2alpha1", "CiliumLoadBalancerIPPool", "ciliumloadbalancerippools"),
            Kind::VirtualIp => ("kbgp.io", "v1alpha1", "VirtualIP", "virtualips"),
            Kind::MetalLbPool => ("metallb.io", "v1beta1", "IPAddressPool", "ipaddresspools"),
            Kind::MetalLbAdvertisement => ("metallb.io", "v1beta1", "BGPAdvertisement", "bgpadvertisements"),
            Kind::MetalLbCommunity => ("metallb.io", "v1beta1", "Community", "communities"),
            Kind::MetalLbBfdProfile => ("metallb.io", "v1beta1", "BFDProfile", "bfdprofiles"),
            Kind::MetalLbL2Advertisement => ("metallb.io", "v1beta1", "L2Advertisement", "l2advertisements"),
            _ => return None,
        };
        Some(ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), p))
    }
}

/// One object, as the World keeps it: shared with every World built since it last changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Obj {
    Node(Arc<Node>),
    Service(Arc<Service>),
    EndpointSlice(Arc<EndpointSlice>),
    Policy(Arc<PeeringPolicy>),
    Pool(Arc<LbPool>),
    Secret(Arc<Secret>),
    VirtualIp(Arc<VirtualIp>),
    ClusterConfig(Arc<cilium_v2::ClusterConfig>),
    PeerConfig(Arc<cilium_v2::PeerConfig>),
    Advertisement(Arc<cilium_v2::Advertisement>),
    NodeOverride(Arc<cilium_v2::NodeOverride>),
    MetalLbPeer(Arc<metallb::Peer>),
    MetalLbAdvertisement(Arc<metallb::Advertisement>),
    MetalLbCommunities(Arc<metallb::Communities>),
    MetalLbBfdProfile(Arc<metallb::BfdProfile>),
    Namespace(Arc<Namespace>),
    /// An object kbgp reads only to say it does not honour it (L2Advertisement).
    Unsupported,
}

/// What a watcher reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// A relist starts.
    Init(Kind),
    /// An object of the relist; `Err` when it does not validate.
    InitApply(Kind, String, Result<Obj, String>),
    /// The relist is complete: it replaces what was known.
    InitDone(Kind),
    Apply(Kind, String, Result<Obj, String>),
    Delete(Kind, String),
    /// The kind's CRD is not installed: no objects.
    Absent(Kind),
    /// What the API server says of an object beyond its model (kinds with conditions); sent
    /// before its `Apply` or `InitApply`.
    Observed(Kind, String, Observed),
}

/// The objects known per kind, and the World they make.
#[derive(Debug, Default)]
pub struct Store {
    current: HashMap<Kind, BTreeMap<String, Obj>>,
    relist: HashMap<Kind, BTreeMap<String, Obj>>,
    synced: HashMap<Kind, bool>,
    /// Validation problems not yet logged, oldest first; the source drains them.
    pub problems: Vec<String>,
    /// The namespace MetalLB's objects are read from (empty: MetalLB's default).
    pub metallb_namespace: String,
    /// `--lb-class`, copied into every World.
    pub lb_class: Option<String>,
    /// Of the kinds with conditions: each object's generation, conditions and newest error.
    observed: HashMap<Kind, BTreeMap<String, Observed>>,
    observed_relist: HashMap<Kind, BTreeMap<String, Observed>>,
    /// Kinds counted as none because they are not installed or kbgp may not read them.
    absent: std::collections::HashSet<Kind>,
}

impl Store {
    /// Applies one update; whether the World, or what is observed of its objects, may have
    /// changed.
    pub fn apply(&mut self, u: Update) -> bool {
        match u {
            Update::Init(k) => {
                self.relist.insert(k, BTreeMap::new());
                if k.subject().is_some() {
                    self.observed_relist.insert(k, BTreeMap::new());
                }
                false
            }
            Update::Observed(k, key, mut o) => {
                let to = if self.relist.contains_key(&k) { &mut self.observed_relist } else { &mut self.observed };
                let m = to.entry(k).or_default();
                // The error is the newest version's, which the Apply that follows sets.
                o.error = m.get(&key).and_then(|b| b.error.clone());
                // A new object is news; conditions seen changing are mostly kbgp's own writes.
                m.insert(key, o).is_none()
            }
            Update::InitApply(k, key, obj) => {
                let kept = self.current.get(&k).and_then(|m| m.get(&key)).cloned();
                let error = obj.as_ref().err().map(|e| e.to_string());
                if let Some(o) = self.observed_relist.get_mut(&k).and_then(|m| m.get_mut(&key)) {
                    o.error = error;
                }
                let buf = self.relist.entry(k).or_default();
                match obj {
                    // An unchanged object keeps the instance the current World shares.
                    Ok(o) => {
                        buf.insert(key, kept.filter(|k| *k == o).unwrap_or(o));
                    }
                    Err(e) => {
                        self.problems.push(format!("{}/{key}: {e}", k.name()));
                        if let Some(o) = kept {
                            buf.insert(key, o);
                        }
                    }
                }
                false
            }
            Update::InitDone(k) => {
                self.absent.remove(&k);
                let new = self.relist.remove(&k).unwrap_or_default();
                let mut changed = self.current.get(&k) != Some(&new) || !self.synced.get(&k).copied().unwrap_or(false);
                if let Some(o) = self.observed_relist.remove(&k) {
                    changed |= self.observed.get(&k) != Some(&o);
                    self.observed.insert(k, o);
                }
                self.current.insert(k, new);
                self.synced.insert(k, true);
                changed
            }
            Update::Apply(k, key, obj) => {
                let error = obj.as_ref().err().map(|e| e.to_string());
                let mut changed = false;
                if let Some(o) = self.observed.get_mut(&k).and_then(|m| m.get_mut(&key))
                    && o.error != error
                {
                    o.error = error;
                    changed = true;
                }
                match obj {
                    Ok(o) => {
                        let m = self.current.entry(k).or_default();
                        if m.get(&key) != Some(&o) {
                            m.insert(key, o);
                            changed = true;
                        }
                    }
                    // Keep the last valid version.
                    Err(e) => self.problems.push(format!("{}/{key}: {e}", k.name())),
                }
                changed
            }
            Update::Delete(k, key) => {
                let observed = self.observed.get_mut(&k).is_some_and(|m| m.remove(&key).is_some());
                self.current.get_mut(&k).is_some_and(|m| m.remove(&key).is_some()) || observed
            }
            Update::Absent(k) => {
                let had = self.current.get(&k).is_some_and(|m| !m.is_empty());
                let first = !self.synced.get(&k).copied().unwrap_or(false);
                self.current.insert(k, BTreeMap::new());
                self.observed.remove(&k);
                self.synced.insert(k, true);
                self.absent.insert(k);
                had || first
            }
        }
    }

    /// Whether the Secrets of the BGP secrets namespace are read (LB IPAM's own Deployment may
    /// not read them).
    pub fn secrets_read(&self) -> bool {
        !self.absent.contains(&Kind::Secret)
    }

    /// What the API server says of the objects with conditions (see [`Update::Observed`]).
    pub fn observed(&self) -> ObservedObjects {
        let mut out = ObservedObjects::new();
        for (k, m) in &self.observed {
            let Some(subject) = k.subject() else { continue };
            for (name, o) in m {
                out.insert((subject, name.clone()), o.clone());
            }
        }
        out
    }

    /// Every kind has completed a first list (or is known to be absent).
    pub fn synced(&self) -> bool {
        KINDS.iter().all(|k| self.synced.get(k).copied().unwrap_or(false))
    }

    /// The World of the current objects: pointer copies, no object is cloned.
    pub fn world(&self) -> World {
        let mut w = World::default();
        for (k, m) in &self.current {
            for o in m.values() {
                match (k, o) {
                    (_, Obj::Node(n)) => w.nodes.push(n.clone()),
                    (_, Obj::Service(s)) => w.services.push(s.clone()),
                    (_, Obj::EndpointSlice(s)) => w.endpoint_slices.push(s.clone()),
                    (_, Obj::Policy(p)) => w.policies.push(p.clone()),
                    (_, Obj::Pool(p)) => w.pools.push(p.clone()),
                    (_, Obj::VirtualIp(v)) => w.virtual_ips.push(v.clone()),
                    (_, Obj::ClusterConfig(c)) => w.bgp_v2.cluster_configs.push(c.clone()),
                    (_, Obj::PeerConfig(c)) => w.bgp_v2.peer_configs.push(c.clone()),
                    (_, Obj::Advertisement(a)) => w.bgp_v2.advertisements.push(a.clone()),
                    (_, Obj::NodeOverride(o)) => w.bgp_v2.overrides.push(o.clone()),
                    (Kind::MetalLbSecret, Obj::Secret(x)) => w.metallb_secrets.push(x.clone()),
                    (_, Obj::Secret(x)) => w.secrets.push(x.clone()),
                    (_, Obj::MetalLbPeer(x)) => w.metallb.peers.push(x.clone()),
                    (_, Obj::MetalLbAdvertisement(x)) => w.metallb.advertisements.push(x.clone()),
                    (_, Obj::MetalLbCommunities(x)) => w.metallb.communities.push(x.clone()),
                    (_, Obj::MetalLbBfdProfile(x)) => w.metallb.bfd_profiles.push(x.clone()),
                    (_, Obj::Namespace(x)) => w.namespaces.push(x.clone()),
                    (_, Obj::Unsupported) => {}
                }
            }
        }
        // Deterministic order whatever the map iteration: by kind's order of keys.
        w.policies.sort_by(|a, b| a.name.cmp(&b.name));
        w.pools.sort_by(|a, b| a.name.cmp(&b.name));
        w.virtual_ips.sort_by(|a, b| a.name.cmp(&b.name));
        let v2 = &mut w.bgp_v2;
        v2.cluster_configs.sort_by(|a, b| a.name.cmp(&b.name));
        v2.peer_configs.sort_by(|a, b| a.name.cmp(&b.name));
        v2.advertisements.sort_by(|a, b| a.name.cmp(&b.name));
        v2.overrides.sort_by(|a, b| a.name.cmp(&b.name));
        w.lb_class = self.lb_class.clone();
        let ml = &mut w.metallb;
        ml.namespace = self.metallb_namespace.clone();
        ml.peers.sort_by(|a, b| a.name.cmp(&b.name));
        ml.advertisements.sort_by(|a, b| a.name.cmp(&b.name));
        ml.communities.sort_by(|a, b| a.name.cmp(&b.name));
        ml.bfd_profiles.sort_by(|a, b| a.name.cmp(&b.name));
        w.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        w
    }
}

// ---- conversions: API objects to model types, through the same raw types as files ----

fn key_of(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn raw<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let p = e.path().to_string();
        format!("{p}: {}", e.into_inner())
    })
}

fn diag_result<T>(name: &str, f: impl FnOnce(&mut Diag) -> T) -> (T, Vec<String>) {
    let mut errors = Vec::new();
    let t = f(&mut Diag { doc: name, errors: &mut errors });
    (t, errors.iter().map(|e| e.to_string()).collect())
}

/// Annotation prefixes kbgp reads (LB IPAM requests and sharing; virtual-router overrides);
/// others, such as kubectl's last-applied-configuration, are not kept.
const KEPT_ANNOTATIONS: &[&str] = &[
    "kbgp.io/",
    "lbipam.cilium.io/",
    "io.cilium/",
    "cilium.io/bgp-virtual-router.",
    "metallb.io/",
    "metallb.universe.tf/",
];

fn keep_annotations(a: &mut std::collections::BTreeMap<String, String>) {
    a.retain(|k, _| KEPT_ANNOTATIONS.iter().any(|p| k.starts_with(p)));
}

pub fn convert_node(n: &K8sNode) -> Result<Obj, String> {
    let name = n.metadata.name.clone().unwrap_or_default();
    let r: NodeRaw = raw(serde_json::to_value(n).map_err(|e| e.to_string())?)?;
    let (mut node, errs) = diag_result(&name, |d| Node::from_raw(&name, &r, d));
    keep_annotations(&mut node.annotations);
    if !errs.is_empty() {
        warn!(node = %name, "{}", errs.join("; "));
    }
    Ok(Obj::Node(Arc::new(node)))
}

pub fn convert_service(s: &K8sService) -> Result<Obj, String> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let r: ServiceRaw = raw(serde_json::to_value(s).map_err(|e| e.to_string())?)?;
    let (mut svc, errs) = diag_result(&name, |d| Service::from_raw(&name, &r, d));
    keep_annotations(&mut svc.annotations);
    if !errs.is_empty() {
        // The API server validated it; what kbgp cannot read of it is skipped, not fatal.
        debug!(service = %svc.key(), "{}", errs.join("; "));
    }
    Ok(Obj::Service(Arc::new(svc)))
}

/// EndpointSlices keep only the endpoints on `node`. They are the busiest kind, so this reads
/// the typed object directly (same defaults as [`EndpointSlice::from_raw`]).
pub fn convert_endpoint_slice(s: &K8sEndpointSlice, node: &str) -> Result<Obj, String> {
    let endpoints = s
        .endpoints
        .iter()
        .filter(|e| e.node_name.as_deref() == Some(node))
        .map(|e| {
            let c = e.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            Endpoint {
                node: e.node_name.clone(),
                ready,
                serving: c.and_then(|c| c.serving).unwrap_or(ready),
                terminating: c.and_then(|c| c.terminating).unwrap_or(false),
            }
        })
        .collect();
    Ok(Obj::EndpointSlice(Arc::new(EndpointSlice {
        namespace: s.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        name: s.metadata.name.clone().unwrap_or_default(),
        service: s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL).cloned()),
        endpoints,
    })))
}

/// A Secret of the BGP secrets namespace: its values as the API server decoded them (the
/// `data` of a stored Secret; `stringData` is write-only and never comes back).
pub fn convert_secret(s: &K8sSecret) -> Result<Obj, String> {
    let mut data = BTreeMap::new();
    for (k, v) in s.data.iter().flatten() {
        data.insert(k.clone(), SecretValue::new(&v.0));
    }
    Ok(Obj::Secret(Arc::new(Secret {
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
        data,
    })))
}

pub fn convert_policy(o: &DynamicObject, kind: PolicyKind) -> Result<Obj, String> {
    let name = o.metadata.name.clone().unwrap_or_default();
    let spec: PeeringPolicySpec =
        raw(o.data.get("spec").cloned().unwrap_or_default()).map_err(|e| format!("spec.{e}"))?;
    let (p, errs) = diag_result(&name, |d| PeeringPolicy::from_spec(&name, kind, &spec, d));
    match p {
        Some(p) if errs.is_empty() => Ok(Obj::Policy(Arc::new(p))),
        _ => Err(errs.join("; ")),
    }
}

pub fn convert_pool(o: &DynamicObject, kind: PoolKind) -> Result<Obj, String> {
    let name = o.metadata.name.clone().unwrap_or_default();
    let r: PoolRaw = raw(serde_json::to_value(o).map_err(|e| e.to_string())?)?;
    let mut warnings = Vec::new();
    let (p, errs) = diag_result(&name, |d| LbPool::from_raw(kind, &name, &r, d, &mut warnings));
    if errs.is_empty() { Ok(Obj::Pool(Arc::new(p))) } else { Err(errs.join("; ")) }
}

/// A VirtualIP from the API server. Its file paths (CA, client certificate) are paths on the
/// node, taken as written: relative ones are relative to kbgp's working directory.
pub fn convert_virtual_ip(o: &DynamicObject) -> Result<Obj, String> {
    let name = o.metadata.name.clone().unwrap_or_default();
    let spec: VirtualIPSpec = raw(o.data.get("spec").cloned().unwrap_or_default()).map_err(|e| format!("spec.{e}"))?;
    let (v, errs) = diag_result(&name, |d| VirtualIp::from_spec(&name, &spec, d));
    match v {
        Some(v) if errs.is_empty() => Ok(Obj::VirtualIp(Arc::new(v))),
        _ => Err(errs.join("; ")),
    }
}

/// One of Cilium's BGP v2 kinds from the API server (either version: their shape is the same).
pub fn convert_v2(o: &DynamicObject, kind: Kind) -> Result<Obj, String> {
    let name = o.metadata.name.clone().unwrap_or_default();
    let spec = o.data.get("spec").cloned().unwrap_or_default();
    fn spec_raw<T: DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
        raw(v).map_err(|e| format!("spec.{e}"))
    }
    let mut warnings = Vec::new();
    let (obj, errs) = match kind {
        Kind::CiliumClusterConfig => {
            let spec = spec_raw(spec)?;
            let (c, e) = diag_result(&name, |d| cilium_v2::ClusterConfig::from_raw(&name, &spec, d));
            (c.map(|c| Obj::ClusterConfig(Arc::new(c))), e)
        }
        Kind::CiliumPeerConfig => {
            let spec = spec_raw(spec)?;
            let (c, e) = diag_result(&name, |d| cilium_v2::PeerConfig::from_raw(&name, &spec, d, &mut warnings));
            (c.map(|c| Obj::PeerConfig(Arc::new(c))), e)
        }
        Kind::CiliumAdvertisement => {
            let spec = spec_raw(spec)?;
            let labels = o.metadata.labels.clone().unwrap_or_default();
            let (a, e) = diag_result(&name, |d| cilium_v2::Advertisement::from_raw(&name, &labels, &spec, d));
            (a.map(|a| Obj::Advertisement(Arc::new(a))), e)
        }
        _ => {
            let spec = spec_raw(spec)?;
            let (x, e) = diag_result(&name, |d| cilium_v2::NodeOverride::from_raw(&name, &spec, d));
            (x.map(|x| Obj::NodeOverride(Arc::new(x))), e)
        }
    };
    for w in warnings {
        warn!("{w}");
    }
    match obj {
        Some(o) if errs.is_empty() => Ok(o),
        _ => Err(errs.join("; ")),
    }
}

/// One of MetalLB's kinds from the API server, through the file loader (the same object in a
/// file gives the same model). `ar` gives the apiVersion and kind when the object lacks them.
pub fn convert_metallb(o: &DynamicObject, kind: Kind, ar: &ApiResource) -> Result<Obj, String> {
    let mut v = serde_json::to_value(o).map_err(|e| e.to_string())?;
    if let Some(m) = v.as_object_mut() {
        m.entry("apiVersion").or_insert_with(|| ar.api_version.clone().into());
        m.entry("kind").or_insert_with(|| ar.kind.clone().into());
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(|x| x.as_object_mut()) {
            meta.remove("managedFields");
        }
    }
    let name = o.metadata.name.clone().unwrap_or_default();
    let y: serde_yaml::Value = serde_json::from_value(v).map_err(|e| e.to_string())?;
    let mut l = crate::config::load_value(y, &name)
        .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))?;
    for w in l.warnings.drain(..) {
        warn!("{w}");
    }
    let w = l.world;
    let got = match kind {
        Kind::MetalLbPool => w.pools.into_iter().next().map(Obj::Pool),
        Kind::MetalLbPeer => w.metallb.peers.into_iter().next().map(Obj::MetalLbPeer),
        Kind::MetalLbAdvertisement => w.metallb.advertisements.into_iter().next().map(Obj::MetalLbAdvertisement),
        Kind::MetalLbCommunity => w.metallb.communities.into_iter().next().map(Obj::MetalLbCommunities),
        Kind::MetalLbBfdProfile => w.metallb.bfd_profiles.into_iter().next().map(Obj::MetalLbBfdProfile),
        _ => Some(Obj::Unsupported),
    };
    got.ok_or_else(|| format!("{name}: not read as a {}", kind.name()))
}

pub fn convert_namespace(n: &K8sNamespace) -> Result<Obj, String> {
    Ok(Obj::Namespace(Arc::new(Namespace {
        name: n.metadata.name.clone().unwrap_or_default(),
        labels: n.metadata.labels.clone().unwrap_or_default(),
    })))
}

// ---- the watchers ----

/// For kinds without conditions.
fn unobserved<K>(_: &K) -> Option<Observed> {
    None
}

/// The generation and conditions of a custom resource (conditions that do not parse count as
/// none: they are rewritten).
pub fn observe(o: &DynamicObject) -> Observed {
    let conditions = o
        .data
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    Observed { uid: o.metadata.uid.clone(), generation: o.metadata.generation, conditions, error: None }
}

async fn watch_kind<K>(
    kind: Kind,
    api: Api<K>,
    cfg: watcher::Config,
    convert: impl Fn(&K) -> Result<Obj, String>,
    observe: impl Fn(&K) -> Option<Observed>,
    tx: mpsc::Sender<Update>,
    metrics: Arc<Metrics>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let key = |o: &K| key_of(o.meta().namespace.as_deref(), o.meta().name.as_deref().unwrap_or_default());
    let mut stream = watcher(api, cfg).default_backoff().boxed();
    let mut failing = false;
    let resource = kind.name();
    let count = |t: &str| metrics.watch_events.with_label_values(&[resource, t]).inc();
    while let Some(ev) = stream.next().await {
        match &ev {
            Ok(watcher::Event::Init) => count("relist"),
            Ok(watcher::Event::InitDone) => {
                metrics.watch_up.with_label_values(&[resource]).set(1);
                metrics.last_sync.set(crate::admin::api::unix_now() as i64);
            }
            Ok(watcher::Event::Apply(_)) | Ok(watcher::Event::InitApply(_)) => count("apply"),
            Ok(watcher::Event::Delete(_)) => count("delete"),
            Err(_) => {
                metrics.watch_errors.with_label_values(&[resource]).inc();
                metrics.watch_up.with_label_values(&[resource]).set(0);
            }
        }
        if let Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) = &ev
            && let Some(ob) = observe(o)
            && tx.send(Update::Observed(kind, key(o), ob)).await.is_err()
        {
            return;
        }
        let u = match ev {
            Ok(watcher::Event::Init) => Update::Init(kind),
            Ok(watcher::Event::InitApply(o)) => Update::InitApply(kind, key(&o), convert(&o)),
            Ok(watcher::Event::InitDone) => {
                if failing {
                    info!(kind = kind.name(), "watch resynced");
                    failing = false;
                }
                Update::InitDone(kind)
            }
            Ok(watcher::Event::Apply(o)) => Update::Apply(kind, key(&o), convert(&o)),
            Ok(watcher::Event::Delete(o)) => Update::Delete(kind, key(&o)),
            Err(e) => {
                // Secrets kbgp may not read (an install without the Role): counted as none, so
                // the rest of the World is planned; sessions with authSecretRef stay down and
                // say that their Secret is missing.
                if kind.optional() && !failing && forbidden(&e) {
                    warn!(
                        kind = kind.name(),
                        "cannot read {} (forbidden: is its Role installed? see deploy/kubernetes/rbac.yaml); counted \
                         as none: {e}",
                        kind.name()
                    );
                    failing = true;
                    if tx.send(Update::Absent(kind)).await.is_err() {
                        return;
                    }
                    continue;
                }
                // Nothing changes: the last known objects stay until the watch resyncs.
                if !failing {
                    warn!(kind = kind.name(), "watch failed, keeping what is known and retrying: {e}");
                    failing = true;
                }
                continue;
            }
        };
        if tx.send(u).await.is_err() {
            return;
        }
    }
}

/// Whether a watch error is the API server refusing access (403).
fn forbidden(e: &watcher::Error) -> bool {
    let api = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(a))
        | watcher::Error::WatchStartFailed(kube::Error::Api(a))
        | watcher::Error::WatchFailed(kube::Error::Api(a)) => a,
        watcher::Error::WatchError(a) => a,
        _ => return false,
    };
    api.code == 403
}

/// Waits until a CRD kind is served, reporting it absent meanwhile. `namespace`: look in that
/// namespace only (MetalLB's kinds, which kbgp may read there only).
async fn wait_for_crd(
    kind: Kind,
    client: &Client,
    namespace: Option<&str>,
    tx: &mpsc::Sender<Update>,
) -> Option<ApiResource> {
    let ars = kind.api_resources();
    if ars.is_empty() {
        return None;
    }
    let mut reported = false;
    loop {
        let mut absent = 0;
        for ar in &ars {
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
                None => Api::all_with(client.clone(), ar),
            };
            match api.list(&ListParams::default().limit(1)).await {
                Ok(_) => return Some(ar.clone()),
                Err(kube::Error::Api(s)) if s.code == 404 => absent += 1,
                Err(kube::Error::Api(s)) if s.code == 403 && kind.optional() => {
                    if !reported {
                        warn!(
                            kind = kind.name(),
                            "cannot list it (forbidden: is its Role installed?); counted as none"
                        );
                    }
                    absent += 1;
                }
                Err(e) => debug!(kind = kind.name(), "cannot tell whether it is installed yet: {e}"),
            }
        }
        if absent == ars.len() && !reported {
            info!(kind = kind.name(), "not installed in this cluster; looking again every 30 s");
            if tx.send(Update::Absent(kind)).await.is_err() {
                return None;
            }
            reported = true;
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
}

/// When to build the next World: `debounce` after the first change not yet in one, however
/// many changes follow (a steady stream of events must not postpone it forever).
#[derive(Debug)]
pub struct Debounce {
    delay: Duration,
    since: Option<tokio::time::Instant>,
}

impl Debounce {
    pub fn new(delay: Duration) -> Debounce {
        Debounce { delay, since: None }
    }
    /// A change was seen at `now`.
    pub fn changed(&mut self, now: tokio::time::Instant) {
        self.since.get_or_insert(now);
    }
    /// When to build, once every kind is synced.
    pub fn deadline(&self, synced: bool) -> Option<tokio::time::Instant> {
        self.since.filter(|_| synced).map(|t| t + self.delay)
    }
    /// Building now: when its first change was seen.
    pub fn take(&mut self) -> Option<tokio::time::Instant> {
        self.since.take()
    }
}

/// A World from the watches, and when the first change it contains was seen (the start of
/// the update latency).
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub world: Arc<World>,
    pub since: std::time::Instant,
    /// The generation, conditions and newest validation error of the objects with conditions
    /// (for the status writer).
    pub observed: Arc<ObservedObjects>,
    /// Whether `world.secrets` is what the API server has (kbgp may read them).
    pub secrets_read: bool,
}

impl std::ops::Deref for Snapshot {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

/// Starts every watcher; returns the World as it changes (`None` until every kind is synced).
/// Changes are coalesced for `debounce` before a new World is built. `node`: the Node this
/// kbgp plans for, the only one it watches, and whose endpoints it keeps; `None` (the LB IPAM
/// Deployment, which writes the configuration's conditions): every Node, no endpoints.
pub fn start(
    client: Client,
    node: Option<String>,
    namespaces: Namespaces,
    lb_class: Option<String>,
    debounce: Duration,
    metrics: Arc<Metrics>,
) -> watch::Receiver<Option<Snapshot>> {
    let (tx, mut rx) = mpsc::channel::<Update>(4096);
    let (world_tx, world_rx) = watch::channel(None);

    let (c, t, n, m) = (client.clone(), tx.clone(), node.clone(), metrics.clone());
    tokio::spawn(async move {
        let cfg = match &n {
            Some(n) => watcher::Config::default().fields(&format!("metadata.name={n}")),
            None => watcher::Config::default(),
        };
        watch_kind(Kind::Node, Api::<K8sNode>::all(c), cfg, convert_node, unobserved, t, m).await
    });
    let (c, t, m) = (client.clone(), tx.clone(), metrics.clone());
    tokio::spawn(async move {
        let api = Api::<K8sService>::all(c);
        watch_kind(Kind::Service, api, watcher::Config::default(), convert_service, unobserved, t, m).await
    });
    let (c, t, n, m) = (client.clone(), tx.clone(), node.clone(), metrics.clone());
    tokio::spawn(async move {
        let n = n.unwrap_or_default();
        let convert = move |s: &K8sEndpointSlice| convert_endpoint_slice(s, &n);
        let api = Api::<K8sEndpointSlice>::all(c);
        watch_kind(Kind::EndpointSlice, api, watcher::Config::default(), convert, unobserved, t, m).await
    });
    for (kind, ns) in
        [(Kind::Secret, namespaces.bgp_secrets.clone()), (Kind::MetalLbSecret, namespaces.metallb.clone())]
    {
        let (c, t, m) = (client.clone(), tx.clone(), metrics.clone());
        tokio::spawn(async move {
            let api = Api::<K8sSecret>::namespaced(c, &ns);
            watch_kind(kind, api, watcher::Config::default(), convert_secret, unobserved, t, m).await
        });
    }
    let (c, t, m) = (client.clone(), tx.clone(), metrics.clone());
    tokio::spawn(async move {
        let api = Api::<K8sNamespace>::all(c);
        watch_kind(Kind::Namespace, api, watcher::Config::default(), convert_namespace, unobserved, t, m).await
    });
    for kind in METALLB_KINDS {
        let (c, t, m, ns) = (client.clone(), tx.clone(), metrics.clone(), namespaces.metallb.clone());
        tokio::spawn(async move {
            let Some(ar) = wait_for_crd(kind, &c, Some(&ns), &t).await else { return };
            let api: Api<DynamicObject> = Api::namespaced_with(c, &ns, &ar);
            let convert = move |o: &DynamicObject| convert_metallb(o, kind, &ar);
            watch_kind(kind, api, watcher::Config::default(), convert, unobserved, t, m).await
        });
    }
    for kind in [
        Kind::KbgpPolicy,
        Kind::CiliumPolicy,
        Kind::KbgpPool,
        Kind::CiliumPool,
        Kind::VirtualIp,
        Kind::CiliumClusterConfig,
        Kind::CiliumPeerConfig,
        Kind::CiliumAdvertisement,
        Kind::CiliumNodeOverride,
    ] {
        let (c, t, m) = (client.clone(), tx.clone(), metrics.clone());
        tokio::spawn(async move {
            let Some(ar) = wait_for_crd(kind, &c, None, &t).await else { return };
            let api: Api<DynamicObject> = Api::all_with(c, &ar);
            let convert = move |o: &DynamicObject| match kind {
                Kind::KbgpPolicy => convert_policy(o, PolicyKind::Kbgp),
                Kind::CiliumPolicy => convert_policy(o, PolicyKind::Cilium),
                Kind::KbgpPool => convert_pool(o, PoolKind::Kbgp),
                Kind::VirtualIp => convert_virtual_ip(o),
                Kind::CiliumClusterConfig
                | Kind::CiliumPeerConfig
                | Kind::CiliumAdvertisement
                | Kind::CiliumNodeOverride => convert_v2(o, kind),
                _ => convert_pool(o, PoolKind::Cilium),
            };
            let observe = move |o: &DynamicObject| kind.subject().map(|_| observe(o));
            watch_kind(kind, api, watcher::Config::default(), convert, observe, t, m).await
        });
    }
    drop(tx);

    tokio::spawn(async move {
        let mut store = Store { metallb_namespace: namespaces.metallb.clone(), lb_class, ..Store::default() };
        let mut pending = Debounce::new(debounce);
        // Problems already logged: an object rewritten invalid every second is logged once
        // (the set is bounded; when full it starts over).
        let mut logged: std::collections::HashSet<String> = Default::default();
        loop {
            let deadline = pending.deadline(store.synced());
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                u = rx.recv() => match u {
                    Some(u) => {
                        if store.apply(u) {
                            pending.changed(tokio::time::Instant::now());
                        }
                        for p in store.problems.drain(..) {
                            if logged.len() >= 1000 {
                                logged.clear();
                            }
                            if logged.insert(p.clone()) {
                                warn!("invalid object, keeping its last valid version if any: {p}");
                            }
                        }
                    }
                    None => return,
                },
                _ = timer => {
                    let since = pending.take().map(|t| t.into_std()).unwrap_or_else(std::time::Instant::now);
                    let snapshot = Snapshot {
                        world: Arc::new(store.world()),
                        since,
                        observed: Arc::new(store.observed()),
                        secrets_read: store.secrets_read(),
                    };
                    if world_tx.send(Some(snapshot)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    world_rx
}

#[cfg(test)]
mod tests;
