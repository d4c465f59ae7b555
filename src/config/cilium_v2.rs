//! Cilium's BGP control plane v2 API (`cilium.io/v2`, and `cilium.io/v2alpha1` of Cilium
//! 1.16–1.17): `CiliumBGPClusterConfig`, `CiliumBGPPeerConfig`, `CiliumBGPAdvertisement` and
//! `CiliumBGPNodeConfigOverride`, read with Cilium's field names and defaults.
//!
//! The objects are validated one by one here ([`ClusterConfig::from_raw`] and the others);
//! what a node runs is only known once they are combined for it ([`resolve`]): the cluster
//! config that selects the node, its instances with the node's override, each peer with its
//! peer config, and each peer family with the advertisements its label selector picks. The
//! result is the same [`PeeringPolicy`] a v1 policy gives, so the planner does not know which
//! API it came from; only the [`Origin`] texts that `kbgp why` shows name the objects.
//!
//! Semantics kept from Cilium (1.16–1.18):
//! - `nodeSelector` absent selects every node; a node selected by two cluster configs is a
//!   conflict (Cilium keeps the first owner, which depends on timing; kbgp refuses);
//! - `peerConfigRef` absent: Cilium's defaults and nothing advertised; naming a peer config
//!   that does not exist: the peer is not configured;
//! - a family's `advertisements` selector over advertisement labels: absent selects none,
//!   `{}` every one; a Service advertisement's `selector`: absent none, `{}` every Service;
//! - `aggregationLengthIPv4/IPv6` announce the covering prefix, except for Services with
//!   `externalTrafficPolicy: Local` (or `internalTrafficPolicy: Local` for ClusterIPs), which
//!   keep their host routes;
//! - communities of overlapping advertisements add up, the highest local preference wins.

use super::error::{ConfigError, Diag};
use super::meta::LabelSelector;
use super::policy::{
    self, CommunitiesSpec, ExportAttrs, Exports, Neighbor, Origin, PeeringPolicy, PodCidrExport, PolicyKind,
    ServiceAdvertisements, ServiceExport, ServiceMatch, VirtualRouter,
};
use super::{Node, World};
use crate::wire::Family;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

// ---- the raw types, as Cilium's CRDs define them ----

/// `CiliumBGPClusterConfig.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterConfigSpec {
    #[serde(default)]
    pub node_selector: Option<LabelSelector>,
    #[serde(default)]
    pub bgp_instances: Vec<InstanceSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceSpec {
    pub name: String,
    #[serde(default, rename = "localASN")]
    pub local_asn: Option<i64>,
    #[serde(default)]
    pub local_port: Option<i64>,
    #[serde(default)]
    pub peers: Vec<PeerSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerSpec {
    pub name: String,
    #[serde(default)]
    pub peer_address: Option<String>,
    #[serde(default, rename = "peerASN")]
    pub peer_asn: Option<i64>,
    #[serde(default)]
    pub peer_config_ref: Option<PeerConfigRefSpec>,
    /// Cilium 1.18: the peer's address from the node's default gateway. Not supported.
    #[serde(default)]
    pub auto_discovery: Option<serde_yaml::Value>,
}

/// `peerConfigRef`: v2 has only `name`; v2alpha1 also `group` and `kind`, which Cilium
/// does not use either.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerConfigRefSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

/// `CiliumBGPPeerConfig.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerConfigSpec {
    #[serde(default)]
    pub transport: Option<TransportSpec>,
    #[serde(default)]
    pub timers: Option<TimersSpec>,
    #[serde(default)]
    pub auth_secret_ref: Option<String>,
    #[serde(default)]
    pub graceful_restart: Option<policy::GracefulRestartSpec>,
    #[serde(default)]
    pub ebgp_multihop: Option<i64>,
    #[serde(default)]
    pub families: Vec<FamilyAdvertsSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportSpec {
    #[serde(default)]
    pub peer_port: Option<i64>,
    /// v2alpha1 only, the source port of outgoing connections (Cilium 1.16 defaulted it to
    /// 179 whenever `transport` was written). kbgp connects from an ephemeral port.
    #[serde(default)]
    pub local_port: Option<i64>,
    /// After Cilium 1.18. Not supported.
    #[serde(default)]
    pub source_interface: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimersSpec {
    #[serde(default)]
    pub connect_retry_time_seconds: Option<i64>,
    #[serde(default)]
    pub hold_time_seconds: Option<i64>,
    #[serde(default)]
    pub keep_alive_time_seconds: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FamilyAdvertsSpec {
    pub afi: String,
    pub safi: String,
    /// Selects CiliumBGPAdvertisements by their labels: absent none, `{}` every one.
    #[serde(default)]
    pub advertisements: Option<LabelSelector>,
}

/// `CiliumBGPAdvertisement.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdvertisementSpec {
    #[serde(default)]
    pub advertisements: Vec<AdvertItemSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdvertItemSpec {
    pub advertisement_type: String,
    #[serde(default)]
    pub service: Option<ServiceOptionsSpec>,
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub attributes: Option<AttributesSpec>,
    /// After Cilium 1.18 (`advertisementType: Interface`). Not supported.
    #[serde(default)]
    pub interface: Option<serde_yaml::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceOptionsSpec {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default, rename = "aggregationLengthIPv4")]
    pub aggregation_length_ipv4: Option<i64>,
    #[serde(default, rename = "aggregationLengthIPv6")]
    pub aggregation_length_ipv6: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributesSpec {
    #[serde(default)]
    pub communities: Option<CommunitiesSpec>,
    #[serde(default)]
    pub local_preference: Option<i64>,
}

/// `CiliumBGPNodeConfigOverride.spec` (the object is named after its node).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeOverrideSpec {
    #[serde(default)]
    pub bgp_instances: Vec<InstanceOverrideSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceOverrideSpec {
    pub name: String,
    #[serde(default, rename = "routerID")]
    pub router_id: Option<String>,
    #[serde(default)]
    pub local_port: Option<i64>,
    #[serde(default, rename = "localASN")]
    pub local_asn: Option<i64>,
    #[serde(default)]
    pub peers: Vec<PeerOverrideSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerOverrideSpec {
    pub name: String,
    #[serde(default)]
    pub local_address: Option<String>,
    /// Documented by Cilium as a source port, never applied by it ("no effect" after 1.18).
    #[serde(default)]
    pub local_port: Option<i64>,
}

// ---- the validated objects ----

/// A validated `CiliumBGPClusterConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    pub name: String,
    /// `None`: every node.
    pub node_selector: Option<LabelSelector>,
    pub instances: Vec<Instance>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Instance {
    pub name: String,
    pub local_asn: Option<u32>,
    pub local_port: Option<u16>,
    pub peers: Vec<Peer>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub name: String,
    pub address: Option<IpAddr>,
    /// 0: any AS, learned from the peer's OPEN.
    pub peer_asn: u32,
    /// `None`: Cilium's defaults, nothing advertised.
    pub peer_config: Option<String>,
}

/// A validated `CiliumBGPPeerConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerConfig {
    pub name: String,
    pub port: u16,
    pub connect_retry_secs: u32,
    pub hold_time: u16,
    pub keepalive: u16,
    pub auth_secret: Option<String>,
    pub graceful_restart: Option<u16>,
    pub ebgp_multihop: u8,
    /// Each family with its selector over advertisement labels.
    pub families: Vec<(Family, Option<LabelSelector>)>,
}

impl PeerConfig {
    /// What a peer without `peerConfigRef` gets (Cilium's `SetDefaults` of an empty spec).
    fn defaults() -> PeerConfig {
        PeerConfig {
            name: String::new(),
            port: policy::DEFAULT_PEER_PORT,
            connect_retry_secs: policy::DEFAULT_CONNECT_RETRY,
            hold_time: policy::DEFAULT_HOLD_TIME,
            keepalive: policy::DEFAULT_KEEPALIVE,
            auth_secret: None,
            graceful_restart: None,
            ebgp_multihop: policy::DEFAULT_EBGP_MULTIHOP_TTL,
            families: vec![(Family::IPV6_UNICAST, None), (Family::IPV4_UNICAST, None)],
        }
    }
}

/// A validated `CiliumBGPAdvertisement`.
#[derive(Clone, Debug, PartialEq)]
pub struct Advertisement {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub items: Vec<AdvertItem>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AdvertItem {
    PodCidr {
        attrs: ExportAttrs,
    },
    Service {
        /// Absent: no Service; `{}`: every Service.
        selector: Option<LabelSelector>,
        addresses: ServiceAdvertisements,
        aggregate_v4: u8,
        aggregate_v6: u8,
        attrs: ExportAttrs,
    },
}

/// A validated `CiliumBGPNodeConfigOverride`.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeOverride {
    /// The node's name.
    pub name: String,
    pub instances: Vec<InstanceOverride>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InstanceOverride {
    pub name: String,
    pub router_id: Option<Ipv4Addr>,
    pub local_port: Option<u16>,
    pub local_asn: Option<u32>,
    /// Per peer name, the source address of its session.
    pub local_addresses: Vec<(String, IpAddr)>,
}

/// Cilium's BGP v2 objects of a World.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BgpV2 {
    pub cluster_configs: Vec<Arc<ClusterConfig>>,
    pub peer_configs: Vec<Arc<PeerConfig>>,
    pub advertisements: Vec<Arc<Advertisement>>,
    pub overrides: Vec<Arc<NodeOverride>>,
}

impl BgpV2 {
    pub fn is_empty(&self) -> bool {
        self.cluster_configs.is_empty()
            && self.peer_configs.is_empty()
            && self.advertisements.is_empty()
            && self.overrides.is_empty()
    }

    pub fn extend(&mut self, other: BgpV2) {
        self.cluster_configs.extend(other.cluster_configs);
        self.peer_configs.extend(other.peer_configs);
        self.advertisements.extend(other.advertisements);
        self.overrides.extend(other.overrides);
    }

    /// Objects of one kind with the same name.
    pub fn duplicates(&self, out: &mut Vec<ConfigError>) {
        use super::error::same_names as dups;
        dups(self.cluster_configs.iter().map(|c| c.name.as_str()), "CiliumBGPClusterConfig", out);
        dups(self.peer_configs.iter().map(|c| c.name.as_str()), "CiliumBGPPeerConfig", out);
        dups(self.advertisements.iter().map(|c| c.name.as_str()), "CiliumBGPAdvertisement", out);
        dups(self.overrides.iter().map(|c| c.name.as_str()), "CiliumBGPNodeConfigOverride", out);
    }

    /// The cluster configs that select `node`.
    pub fn cluster_configs_for<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = &'a ClusterConfig> + 'a {
        self.cluster_configs.iter().filter(|c| c.selects(&node.labels)).map(|c| &**c)
    }
}

fn selector(d: &mut Diag, path: &str, s: &Option<LabelSelector>) {
    if let Some(s) = s {
        for (p, m) in s.validate() {
            d.err(format!("{path}.{p}"), m);
        }
    }
}

fn parse_ip(d: &mut Diag, path: &str, s: &str) -> Option<IpAddr> {
    // Cilium's pattern allows surrounding blanks and a %zone, which a BGP session cannot use.
    match s.trim().parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) if s.contains('/') => {
            d.err(path, format!("{s:?} is a prefix: CiliumBGPClusterConfig takes a plain IP address"));
            None
        }
        Err(_) => {
            d.err(path, format!("{s:?} is not an IP address"));
            None
        }
    }
}

fn port(d: &mut Diag, path: &str, v: Option<i64>) -> Option<Option<u16>> {
    match v {
        None => Some(None),
        Some(v) => d.range(path, v, 1, 65535).map(|v| Some(v as u16)),
    }
}

impl ClusterConfig {
    /// Whether its `nodeSelector` selects a node with these labels.
    pub fn selects(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.node_selector.as_ref().is_none_or(|s| s.matches(labels))
    }

    pub(crate) fn from_raw(name: &str, spec: &ClusterConfigSpec, d: &mut Diag) -> Option<ClusterConfig> {
        let before = d.errors.len();
        selector(d, "spec.nodeSelector", &spec.node_selector);
        if spec.bgp_instances.is_empty() {
            d.err("spec.bgpInstances", "must have at least one instance");
        }
        if spec.bgp_instances.len() > 16 {
            d.err("spec.bgpInstances", format!("has {} instances; Cilium allows at most 16", spec.bgp_instances.len()));
        }
        let mut instances: Vec<Instance> = Vec::new();
        for (i, x) in spec.bgp_instances.iter().enumerate() {
            let p = format!("spec.bgpInstances[{i}]");
            if x.name.is_empty() {
                d.err(format!("{p}.name"), "must not be empty");
            } else if instances.iter().any(|o| o.name == x.name) {
                d.err(format!("{p}.name"), format!("{:?} is the name of an earlier instance", x.name));
            }
            let local_asn = match x.local_asn {
                None => Some(None),
                Some(v) => d.range(&format!("{p}.localASN"), v, 1, u32::MAX as i64).map(|v| Some(v as u32)),
            };
            let local_port = port(d, &format!("{p}.localPort"), x.local_port);
            let mut peers: Vec<Peer> = Vec::new();
            for (j, y) in x.peers.iter().enumerate() {
                let pp = format!("{p}.peers[{j}]");
                if y.name.is_empty() {
                    d.err(format!("{pp}.name"), "must not be empty");
                } else if peers.iter().any(|o| o.name == y.name) {
                    d.err(format!("{pp}.name"), format!("{:?} is the name of an earlier peer", y.name));
                }
                if y.auto_discovery.is_some() {
                    d.err(
                        format!("{pp}.autoDiscovery"),
                        "is not supported by kbgp: give the peer's address in peerAddress",
                    );
                }
                let address = match &y.peer_address {
                    Some(a) => parse_ip(d, &format!("{pp}.peerAddress"), a),
                    None => {
                        d.err(format!("{pp}.peerAddress"), "is required (kbgp has no autoDiscovery)");
                        None
                    }
                };
                let peer_asn = d.range(&format!("{pp}.peerASN"), y.peer_asn.unwrap_or(0), 0, u32::MAX as i64);
                if let Some(a) = address
                    && peers.iter().any(|o| o.address == Some(a))
                {
                    d.err(format!("{pp}.peerAddress"), format!("{a} is the address of an earlier peer"));
                }
                let peer_config = match &y.peer_config_ref {
                    None => None,
                    Some(r) if r.name.is_empty() => None,
                    Some(r) => {
                        if let Some(k) = r.kind.as_deref().filter(|k| *k != "CiliumBGPPeerConfig") {
                            d.err(format!("{pp}.peerConfigRef.kind"), format!("{k:?}: only CiliumBGPPeerConfig"));
                        }
                        Some(r.name.clone())
                    }
                };
                if let Some(peer_asn) = peer_asn {
                    peers.push(Peer { name: y.name.clone(), address, peer_asn: peer_asn as u32, peer_config });
                }
            }
            if let (Some(local_asn), Some(local_port)) = (local_asn, local_port) {
                instances.push(Instance { name: x.name.clone(), local_asn, local_port, peers });
            }
        }
        (d.errors.len() == before).then(|| ClusterConfig {
            name: name.to_string(),
            node_selector: spec.node_selector.clone(),
            instances,
        })
    }
}

impl PeerConfig {
    pub(crate) fn from_raw(
        name: &str,
        spec: &PeerConfigSpec,
        d: &mut Diag,
        warnings: &mut Vec<String>,
    ) -> Option<PeerConfig> {
        let before = d.errors.len();
        let mut c = PeerConfig::defaults();
        c.name = name.to_string();
        if let Some(t) = &spec.transport {
            if let Some(Some(p)) = port(d, "spec.transport.peerPort", t.peer_port) {
                c.port = p;
            }
            if t.local_port.is_some_and(|p| p != 179) {
                warnings.push(format!(
                    "CiliumBGPPeerConfig {name}: spec.transport.localPort is not supported (removed in cilium.io/v2); \
                     kbgp connects from an ephemeral port"
                ));
            }
            if t.source_interface.is_some() {
                d.err("spec.transport.sourceInterface", "is not supported by kbgp");
            }
        }
        if let Some(t) = &spec.timers
            && let Some(times) = policy::parse_timers(
                d,
                "spec.timers",
                t.connect_retry_time_seconds,
                t.hold_time_seconds,
                t.keep_alive_time_seconds,
            )
        {
            (c.connect_retry_secs, c.hold_time, c.keepalive) = times;
        }
        match spec.auth_secret_ref.as_deref() {
            Some("") => d.err("spec.authSecretRef", "must name a Secret"),
            other => c.auth_secret = other.map(str::to_owned),
        }
        if let Some(g) = &spec.graceful_restart {
            if g.long_lived_stale_time_seconds.is_some() {
                d.err(
                    "spec.gracefulRestart.longLivedStaleTimeSeconds",
                    "is a kbgp extension: use apiVersion kbgp.io/v1alpha1, kind BGPPeeringPolicy",
                );
            }
            c.graceful_restart = policy::parse_restart_time(d, "spec.gracefulRestart.restartTimeSeconds", g);
        }
        if let Some(t) = spec.ebgp_multihop
            && let Some(t) = d.range("spec.ebgpMultihop", t, 1, 255)
        {
            c.ebgp_multihop = t as u8;
        }
        if !spec.families.is_empty() {
            c.families.clear();
            for (i, f) in spec.families.iter().enumerate() {
                let p = format!("spec.families[{i}]");
                let Some(family) = policy::parse_family(d, &p, &f.afi, &f.safi) else { continue };
                if c.families.iter().any(|(x, _)| *x == family) {
                    d.err(&p, format!("{}/{} is listed twice", f.afi, f.safi));
                    continue;
                }
                selector(d, &format!("{p}.advertisements"), &f.advertisements);
                c.families.push((family, f.advertisements.clone()));
            }
        }
        (d.errors.len() == before).then_some(c)
    }
}

fn attrs(d: &mut Diag, path: &str, a: &Option<AttributesSpec>) -> ExportAttrs {
    let Some(a) = a else { return ExportAttrs::default() };
    let mut out = ExportAttrs::default();
    if let Some(c) = &a.communities
        && let Some((std, large)) = policy::parse_communities(d, &format!("{path}.communities"), c)
    {
        (out.communities, out.large_communities) = (std, large);
    }
    if let Some(lp) = a.local_preference {
        out.local_preference = d.range(&format!("{path}.localPreference"), lp, 0, u32::MAX as i64).map(|v| v as u32);
    }
    out
}

impl Advertisement {
    pub(crate) fn from_raw(
        name: &str,
        labels: &BTreeMap<String, String>,
        spec: &AdvertisementSpec,
        d: &mut Diag,
    ) -> Option<Advertisement> {
        let before = d.errors.len();
        if spec.advertisements.is_empty() {
            d.err("spec.advertisements", "must list at least one advertisement");
        }
        let mut items = Vec::new();
        for (i, a) in spec.advertisements.iter().enumerate() {
            let p = format!("spec.advertisements[{i}]");
            let attrs = attrs(d, &format!("{p}.attributes"), &a.attributes);
            selector(d, &format!("{p}.selector"), &a.selector);
            match a.advertisement_type.as_str() {
                "PodCIDR" => {
                    if a.selector.is_some() {
                        d.err(format!("{p}.selector"), "is not allowed for the PodCIDR advertisementType");
                    }
                    if a.service.is_some() {
                        d.err(format!("{p}.service"), "applies only to the Service advertisementType");
                    }
                    items.push(AdvertItem::PodCidr { attrs });
                }
                "Service" => {
                    let Some(s) = &a.service else {
                        d.err(format!("{p}.service"), "is required for the Service advertisementType");
                        continue;
                    };
                    let mut addresses = ServiceAdvertisements::default();
                    if s.addresses.is_empty() {
                        d.err(
                            format!("{p}.service.addresses"),
                            "must list at least one of LoadBalancerIP, ClusterIP, ExternalIP",
                        );
                    }
                    for (j, x) in s.addresses.iter().enumerate() {
                        match x.as_str() {
                            "LoadBalancerIP" => addresses.load_balancer_ip = true,
                            "ExternalIP" => addresses.external_ip = true,
                            "ClusterIP" => addresses.cluster_ip = true,
                            other => d.err(
                                format!("{p}.service.addresses[{j}]"),
                                format!("{other:?} is not one of LoadBalancerIP, ClusterIP, ExternalIP"),
                            ),
                        }
                    }
                    let agg = |d: &mut Diag, field: &str, v: Option<i64>, max: i64| match v {
                        None => Some(max as u8),
                        // 0 would announce a default route; Cilium's schema allows it, kbgp
                        // refuses it.
                        Some(v) => d.range(&format!("{p}.service.{field}"), v, 1, max - 1).map(|v| v as u8),
                    };
                    let aggregate_v4 = agg(d, "aggregationLengthIPv4", s.aggregation_length_ipv4, 32);
                    let aggregate_v6 = agg(d, "aggregationLengthIPv6", s.aggregation_length_ipv6, 128);
                    if let (Some(aggregate_v4), Some(aggregate_v6)) = (aggregate_v4, aggregate_v6) {
                        items.push(AdvertItem::Service {
                            selector: a.selector.clone(),
                            addresses,
                            aggregate_v4,
                            aggregate_v6,
                            attrs,
                        });
                    }
                }
                "CiliumPodIPPool" => d.err(
                    format!("{p}.advertisementType"),
                    "CiliumPodIPPool needs Cilium's multi-pool IPAM, which kbgp does not read",
                ),
                "Interface" => d.err(format!("{p}.advertisementType"), "Interface is not supported by kbgp"),
                other => d.err(
                    format!("{p}.advertisementType"),
                    format!("{other:?} is not one of PodCIDR, Service, CiliumPodIPPool"),
                ),
            }
        }
        (d.errors.len() == before).then(|| Advertisement { name: name.to_string(), labels: labels.clone(), items })
    }
}

impl NodeOverride {
    pub(crate) fn from_raw(name: &str, spec: &NodeOverrideSpec, d: &mut Diag) -> Option<NodeOverride> {
        let before = d.errors.len();
        let mut instances: Vec<InstanceOverride> = Vec::new();
        for (i, x) in spec.bgp_instances.iter().enumerate() {
            let p = format!("spec.bgpInstances[{i}]");
            if instances.iter().any(|o| o.name == x.name) {
                d.err(format!("{p}.name"), format!("{:?} is the name of an earlier instance", x.name));
            }
            let router_id = x.router_id.as_deref().and_then(|s| match s.trim().parse::<Ipv4Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    d.err(format!("{p}.routerID"), format!("{s:?} is not an IPv4 address"));
                    None
                }
            });
            let local_port = port(d, &format!("{p}.localPort"), x.local_port).flatten();
            let local_asn =
                x.local_asn.and_then(|v| d.range(&format!("{p}.localASN"), v, 1, u32::MAX as i64)).map(|v| v as u32);
            let mut local_addresses = Vec::new();
            for (j, y) in x.peers.iter().enumerate() {
                if let Some(a) = &y.local_address
                    && let Some(a) = parse_ip(d, &format!("{p}.peers[{j}].localAddress"), a)
                {
                    local_addresses.push((y.name.clone(), a));
                }
            }
            instances.push(InstanceOverride {
                name: x.name.clone(),
                router_id,
                local_port,
                local_asn,
                local_addresses,
            });
        }
        (d.errors.len() == before).then(|| NodeOverride { name: name.to_string(), instances })
    }
}

// ---- combining the objects for one node ----

/// What the v2 objects give one node.
#[derive(Debug, Default)]
pub struct Resolved {
    /// The peering configuration, when a cluster config selects the node.
    pub policy: Option<PeeringPolicy>,
    /// What kbgp could not honour, each naming the object and field (the rest applies).
    pub notes: Vec<String>,
}

/// An error that leaves the node without a configuration from the v2 objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict(pub String);

/// Combines the cluster config that selects `node` with the node's override, the peer
/// configs and the advertisements into the node's peering configuration.
pub fn resolve(node: &Node, world: &World) -> Result<Resolved, Conflict> {
    let v2 = &world.bgp_v2;
    let mut out = Resolved::default();
    let configs: Vec<&ClusterConfig> = v2.cluster_configs_for(node).collect();
    let config = match configs.as_slice() {
        [] => return Ok(out),
        [c] => *c,
        many => {
            let names: Vec<&str> = many.iter().map(|c| c.name.as_str()).collect();
            return Err(Conflict(format!(
                "selected by {} CiliumBGPClusterConfigs ({}); a node may have only one",
                many.len(),
                names.join(", ")
            )));
        }
    };
    let cc = format!("CiliumBGPClusterConfig {}", config.name);
    let over = v2.overrides.iter().find(|o| o.name == node.name);
    if let Some(o) = over {
        for i in &o.instances {
            if !config.instances.iter().any(|x| x.name == i.name) {
                out.notes.push(format!(
                    "CiliumBGPNodeConfigOverride {}: bgpInstances {:?} is not an instance of {cc}; ignored",
                    o.name, i.name
                ));
            }
        }
    }
    let mut vrs: Vec<VirtualRouter> = Vec::new();
    for (i, inst) in config.instances.iter().enumerate() {
        let o = over.and_then(|o| o.instances.iter().find(|x| x.name == inst.name));
        let Some(asn) = o.and_then(|o| o.local_asn).or(inst.local_asn) else {
            return Err(Conflict(format!(
                "{cc}: spec.bgpInstances[{i}] ({}) has no localASN, and no CiliumBGPNodeConfigOverride gives one",
                inst.name
            )));
        };
        if let Some(other) = vrs.iter().position(|v| v.local_asn == asn) {
            return Err(Conflict(format!(
                "{cc}: bgpInstances {:?} and {:?} both have localASN {asn} on this node; kbgp runs one \
                 virtual router per local AS",
                config.instances[other].name, inst.name
            )));
        }
        let mut vr = VirtualRouter {
            name: Some(inst.name.clone()),
            local_asn: asn,
            exports: Vec::new(),
            neighbors: Vec::new(),
            router_id: o.and_then(|o| o.router_id),
            local_port: o.and_then(|o| o.local_port).or(inst.local_port),
        };
        for (j, peer) in inst.peers.iter().enumerate() {
            let Some(address) = peer.address else { continue };
            let pc = match &peer.peer_config {
                None => PeerConfig::defaults(),
                Some(name) => match v2.peer_configs.iter().find(|c| &c.name == name) {
                    Some(c) => (**c).clone(),
                    None => {
                        out.notes.push(format!(
                            "{cc}: spec.bgpInstances[{i}].peers[{j}] ({}): no CiliumBGPPeerConfig {name}; the peer is \
                             not configured",
                            peer.name
                        ));
                        continue;
                    }
                },
            };
            let local_address =
                o.and_then(|o| o.local_addresses.iter().find(|(n, _)| *n == peer.name)).map(|(_, a)| *a);
            if let Some(a) = local_address
                && a.is_ipv4() != address.is_ipv4()
            {
                return Err(Conflict(format!(
                    "CiliumBGPNodeConfigOverride {}: localAddress {a} of peer {:?} is not of the family of its \
                     peerAddress {address}",
                    node.name, peer.name
                )));
            }
            let exports = exports_for(&pc, v2);
            let index = match vr.exports.iter().position(|e| *e == exports) {
                Some(x) => x,
                None => {
                    vr.exports.push(exports);
                    vr.exports.len() - 1
                }
            };
            vr.neighbors.push(Neighbor {
                address,
                port: pc.port,
                peer_asn: peer.peer_asn,
                ebgp_multihop_ttl: pc.ebgp_multihop,
                connect_retry_secs: pc.connect_retry_secs,
                hold_time: pc.hold_time,
                keepalive: pc.keepalive,
                graceful_restart: pc.graceful_restart,
                long_lived_stale_time: None,
                families: pc.families.iter().map(|(f, _)| *f).collect(),
                path_attributes: Vec::new(),
                passive: false,
                max_received_routes: policy::DEFAULT_MAX_RECEIVED_ROUTES,
                over_max_received: Default::default(),
                ttl_security: false,
                auth: pc.auth_secret.clone().map(policy::AuthRef::Secret),
                bfd: None,
                exports: index,
                local_address,
                name: Some(peer.name.clone()),
            });
        }
        vrs.push(vr);
    }
    out.policy = Some(PeeringPolicy {
        name: config.name.clone(),
        kind: PolicyKind::CiliumV2,
        node_selector: config.node_selector.clone(),
        virtual_routers: vrs,
    });
    Ok(out)
}

/// What a peer with peer config `pc` is sent: per family, the items of the advertisements its
/// selector picks; an item picked for several families is one export for all of them.
fn exports_for(pc: &PeerConfig, v2: &BgpV2) -> Exports {
    let mut out = Exports::default();
    // (advertisement index in the World, item index) of each export, to merge families.
    let mut pods: Vec<(usize, usize)> = Vec::new();
    let mut services: Vec<(usize, usize)> = Vec::new();
    for (family, sel) in &pc.families {
        let Some(sel) = sel else { continue };
        for (a, adv) in v2.advertisements.iter().enumerate() {
            if !sel.matches(&adv.labels) {
                continue;
            }
            for (i, item) in adv.items.iter().enumerate() {
                let origin =
                    || Origin::Object(format!("CiliumBGPAdvertisement {}, advertisements[{i}]", adv.name).into());
                match item {
                    AdvertItem::PodCidr { attrs } => match pods.iter().position(|k| *k == (a, i)) {
                        Some(x) => out.pod_cidrs[x].families.push(*family),
                        None => {
                            pods.push((a, i));
                            out.pod_cidrs.push(PodCidrExport {
                                origin: origin(),
                                enabled: true,
                                families: vec![*family],
                                attrs: attrs.clone(),
                            });
                        }
                    },
                    AdvertItem::Service { selector, addresses, aggregate_v4, aggregate_v6, attrs } => {
                        match services.iter().position(|k| *k == (a, i)) {
                            Some(x) => out.services[x].families.push(*family),
                            None => {
                                services.push((a, i));
                                out.services.push(ServiceExport {
                                    origin: origin(),
                                    selector: ServiceMatch::SelectorEmptyAll(selector.clone()),
                                    pools: None,
                                    addresses: *addresses,
                                    aggregate_v4: *aggregate_v4,
                                    aggregate_v6: *aggregate_v6,
                                    families: vec![*family],
                                    attrs: attrs.clone(),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
