//! Peering policies: `cilium.io/v2alpha1 CiliumBGPPeeringPolicy` (Cilium's v1 BGP control
//! plane API, accepted unchanged) and `kbgp.io/v1alpha1 BGPPeeringPolicy` (the same schema
//! plus kbgp's extensions). The raw serde types mirror the YAML; [`PeeringPolicy`] is the
//! validated, defaulted model the planner uses.

use super::error::Diag;
use super::meta::LabelSelector;
use crate::wire::Family;
use crate::wire::attribute::{Community, LargeCommunity};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

// ---- defaults (Cilium's documented ones) ----
pub const DEFAULT_PEER_PORT: u16 = 179;
pub const DEFAULT_HOLD_TIME: u16 = 90;
pub const DEFAULT_KEEPALIVE: u16 = 30;
pub const DEFAULT_CONNECT_RETRY: u32 = 120;
pub const DEFAULT_EBGP_MULTIHOP_TTL: u8 = 1;
pub const DEFAULT_RESTART_TIME: u16 = 120;
/// kbgp extension default: received routes kept per peer.
pub const DEFAULT_MAX_RECEIVED_ROUTES: usize = 100_000;

// The CRD `kbgp.io/v1alpha1 BGPPeeringPolicy` is generated from these types (`kbgp crds`); their
// doc comments are what `kubectl explain` shows. Cilium's CiliumBGPPeeringPolicy has the same
// fields, without kbgp's extensions.

/// Which nodes run which BGP virtual routers, with which neighbors, announcing what.
// kube's printcolumn(...) entries repeat the same keys by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kbgp.io",
    version = "v1alpha1",
    kind = "BGPPeeringPolicy",
    plural = "bgppeeringpolicies",
    shortname = "kbgpp",
    category = "kbgp",
    printcolumn(name = "Local ASNs", type_ = "string", json_path = ".spec.virtualRouters[*].localASN"),
    printcolumn(name = "Neighbors", type_ = "string", json_path = ".spec.virtualRouters[*].neighbors[*].peerAddress"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Accepted\")].status"),
    printcolumn(
        name = "Conflicting",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Conflicting\")].status"
    ),
    status = "super::conditions::ConditionsStatus",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    doc = "Which nodes peer with which BGP neighbors, and what they announce (Cilium's CiliumBGPPeeringPolicy schema plus kbgp's extensions)."
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeeringPolicySpec {
    /// Nodes this policy applies to; absent or empty selects every node. A node may be
    /// selected by one policy only.
    #[serde(default)]
    pub node_selector: Option<LabelSelector>,
    /// The BGP routers each selected node runs, one per local AS.
    #[serde(default)]
    pub virtual_routers: Vec<VirtualRouterSpec>,
}

/// One BGP router on each selected node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualRouterSpec {
    /// The local AS number.
    #[serde(rename = "localASN")]
    #[schemars(range(min = 1, max = 4_294_967_295_i64))]
    pub local_asn: i64,
    /// Announce the node's pod CIDRs (Node spec.podCIDRs). Default false.
    #[serde(default, rename = "exportPodCIDR")]
    pub export_pod_cidr: Option<bool>,
    /// Cilium multi-pool IPAM; not supported by kbgp.
    #[serde(default, rename = "podIPPoolSelector")]
    pub pod_ip_pool_selector: Option<LabelSelector>,
    /// Services whose addresses are announced. Absent or empty selects none; to select every
    /// Service use matchExpressions [{key: somekey, operator: NotIn, values: [never-used-value]}].
    #[serde(default)]
    pub service_selector: Option<LabelSelector>,
    /// Which addresses of a selected Service: LoadBalancerIP (default), ExternalIP, ClusterIP.
    #[serde(default)]
    #[schemars(extend("items" = {"type": "string", "enum": ["LoadBalancerIP", "ExternalIP", "ClusterIP"]}))]
    pub service_advertisements: Option<Vec<String>>,
    /// The BGP neighbors.
    #[serde(default)]
    pub neighbors: Vec<NeighborSpec>,
}

/// A BGP neighbor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.keepAliveTimeSeconds) || !has(self.holdTimeSeconds) || self.keepAliveTimeSeconds == 0 || self.holdTimeSeconds == 0 || self.keepAliveTimeSeconds <= self.holdTimeSeconds",
     "message": "keepAliveTimeSeconds must be at most holdTimeSeconds"},
    {"rule": "!has(self.maxReceivedRoutesRestartSeconds) || (has(self.maxReceivedRoutesAction) && self.maxReceivedRoutesAction == 'Cease')",
     "message": "maxReceivedRoutesRestartSeconds applies only with maxReceivedRoutesAction: Cease"},
    {"rule": "!(has(self.ttlSecurity) && self.ttlSecurity) || !has(self.eBGPMultihopTTL) || self.eBGPMultihopTTL <= 1",
     "message": "ttlSecurity is for directly connected neighbors: it cannot be combined with eBGPMultihopTTL above 1"}
]))]
pub struct NeighborSpec {
    /// The neighbor's address; a /length suffix is accepted and ignored (10.0.5.1/24 means 10.0.5.1).
    pub peer_address: String,
    /// TCP port of the neighbor. Default 179.
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub peer_port: Option<i64>,
    /// The neighbor's AS; equal to localASN means iBGP.
    #[serde(rename = "peerASN")]
    #[schemars(range(min = 1, max = 4_294_967_295_i64))]
    pub peer_asn: i64,
    /// TCP MD5 (RFC 2385): the Secret, in the BGP secrets namespace, whose key `password` is
    /// the session's password.
    #[serde(default)]
    pub auth_secret_ref: Option<String>,
    /// IP TTL of eBGP sessions; 1 (default) for directly connected neighbors.
    #[serde(default, rename = "eBGPMultihopTTL")]
    #[schemars(range(min = 1, max = 255))]
    pub ebgp_multihop_ttl: Option<i64>,
    /// Longest wait between connection attempts, seconds. Default 120; attempts start after 1 s
    /// and back off with jitter.
    #[serde(default)]
    pub connect_retry_time_seconds: Option<i64>,
    /// Hold time proposed, seconds (3 to 65535). Default 90.
    #[serde(default)]
    #[schemars(range(min = 0, max = 65535))]
    pub hold_time_seconds: Option<i64>,
    /// Keepalive interval, seconds; at most holdTimeSeconds. Default 30.
    #[serde(default)]
    #[schemars(range(min = 0, max = 65535))]
    pub keep_alive_time_seconds: Option<i64>,
    /// Offer graceful restart (RFC 4724 with the N bit of RFC 8538).
    #[serde(default)]
    pub graceful_restart: Option<GracefulRestartSpec>,
    /// Address families offered; default ipv4/unicast and ipv6/unicast.
    #[serde(default)]
    pub families: Option<Vec<FamilySpec>>,
    /// Communities and LOCAL_PREF for the routes a selector picks.
    #[serde(default)]
    pub advertised_path_attributes: Option<Vec<PathAttributesSpec>>,
    /// kbgp extension: never connect, wait for the neighbor (needs the node annotation
    /// kbgp.io/virtual-router.<localASN>: "local-port=N").
    #[serde(default)]
    pub passive: Option<bool>,
    /// kbgp extension: routes kept from this neighbor (default 100000); past it, new ones are
    /// dropped, counted and logged.
    #[serde(default)]
    pub max_received_routes: Option<i64>,
    /// kbgp extension: what happens past `maxReceivedRoutes` (RFC 4486): `Drop` (default: keep
    /// the routes held, drop and count the new ones, warn) or `Cease` (end the session with
    /// Cease 6/1 and connect again after `maxReceivedRoutesRestartSeconds`).
    #[serde(default)]
    #[schemars(extend("enum" = ["Drop", "Cease"]))]
    pub max_received_routes_action: Option<String>,
    /// kbgp extension: with `maxReceivedRoutesAction: Cease`, seconds before connecting again
    /// (default 60); 0 stays down until `kbgp reset` or a configuration change.
    #[serde(default)]
    #[schemars(range(min = 0, max = 86400))]
    pub max_received_routes_restart_seconds: Option<i64>,
    /// kbgp extension: GTSM (RFC 5082) for a directly connected eBGP neighbor: kbgp sends with
    /// TTL 255 and the kernel drops the neighbor's packets that arrive with less.
    #[serde(default)]
    pub ttl_security: Option<bool>,
    /// kbgp extension: BFD (RFC 5880) with this neighbor; present means enabled. When BFD
    /// goes Down the session ends at once (Cease 6/10) and waits for BFD to be Up again.
    #[serde(default)]
    pub bfd: Option<BfdSpec>,
}

/// BFD with one neighbor, with the field names of MetalLB's BFDProfile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdSpec {
    /// Shortest interval between two packets kbgp wants to receive, milliseconds (10 to
    /// 60000). Default 300.
    #[serde(default)]
    #[schemars(range(min = 10, max = 60000))]
    pub receive_interval: Option<i64>,
    /// Shortest interval between two packets kbgp sends, milliseconds (10 to 60000). Default
    /// 300. While the session is not Up, packets go at most once a second (RFC 5880 §6.8.3).
    #[serde(default)]
    #[schemars(range(min = 10, max = 60000))]
    pub transmit_interval: Option<i64>,
    /// Packets missed in a row before the neighbor is declared down (2 to 255). Default 3.
    #[serde(default)]
    #[schemars(range(min = 2, max = 255))]
    pub detect_multiplier: Option<i64>,
    /// Send nothing until the neighbor has sent a packet. Default false.
    #[serde(default)]
    pub passive_mode: Option<bool>,
    /// Multihop BFD (RFC 5883, UDP port 4784) instead of single hop (RFC 5881, port 3784).
    /// Default: multihop for eBGP with eBGPMultihopTTL above 1, single hop otherwise.
    #[serde(default)]
    pub multihop: Option<bool>,
    /// Multihop only: the lowest TTL accepted from the neighbor (1 to 254). Default 254.
    /// Single hop always requires 255 (RFC 5881 §5).
    #[serde(default)]
    #[schemars(range(min = 1, max = 254))]
    pub minimum_ttl: Option<i64>,
    /// Not supported (kbgp sends no Echo packets); only `false` is accepted.
    #[serde(default)]
    pub echo_mode: Option<bool>,
}

/// Validated BFD settings of one neighbor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bfd {
    pub session: crate::bfd::Config,
    pub multihop: bool,
    /// Lowest TTL accepted: 255 for single hop.
    pub min_ttl: u8,
}

/// Graceful restart settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.longLivedStaleTimeSeconds) || self.enabled",
     "message": "longLivedStaleTimeSeconds needs enabled: true (RFC 9494)"}
]))]
pub struct GracefulRestartSpec {
    /// Offer the capability.
    pub enabled: bool,
    /// Restart Time offered, seconds (1 to 4095). Default 120.
    #[serde(default)]
    #[schemars(range(min = 0, max = 4095))]
    pub restart_time_seconds: Option<i64>,
    /// kbgp extension: also offer long-lived graceful restart (RFC 9494): after the restart
    /// time a peer keeps kbgp's routes this many more seconds (1 to 16777215), as
    /// least-preferred LLGR_STALE routes. Absent: not offered.
    #[serde(default)]
    #[schemars(range(min = 1, max = 16777215))]
    pub long_lived_stale_time_seconds: Option<i64>,
}

/// An address family: ipv4 or ipv6, unicast.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FamilySpec {
    /// ipv4 or ipv6.
    #[schemars(extend("enum" = ["ipv4", "ipv6"]))]
    pub afi: String,
    /// unicast.
    #[schemars(extend("enum" = ["unicast"]))]
    pub safi: String,
}

/// Path attributes for the routes a selector picks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathAttributesSpec {
    /// PodCIDR (the node's pod CIDRs, selector on Node labels) or CiliumLoadBalancerIPPool /
    /// LoadBalancerIPPool (Service routes inside a pool, selector on pool labels).
    #[schemars(extend("enum" = ["PodCIDR", "CiliumLoadBalancerIPPool", "LoadBalancerIPPool", "CiliumPodIPPool"]))]
    pub selector_type: String,
    /// Absent: every object of that type.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// Communities to add.
    #[serde(default)]
    pub communities: Option<CommunitiesSpec>,
    /// LOCAL_PREF on iBGP sessions; when several entries match, the highest wins.
    #[serde(default)]
    pub local_preference: Option<i64>,
}

/// Communities to add to a route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommunitiesSpec {
    /// ASN:VALUE (each 0 to 65535) or a 32-bit number.
    #[serde(default)]
    pub standard: Vec<String>,
    /// Names: no-export, no-advertise, no-export-subconfed, no-peer, blackhole, ...
    #[serde(default)]
    pub well_known: Vec<String>,
    /// GLOBAL:LOCAL1:LOCAL2, each a 32-bit number.
    #[serde(default)]
    pub large: Vec<String>,
}

// ---- the validated model ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    Cilium,
    Kbgp,
    /// Combined for one node from Cilium's v2 objects; named after the cluster config.
    CiliumV2,
    /// Combined for one node from MetalLB's BGPPeers; named after the MetalLB namespace.
    MetalLb,
}

impl PolicyKind {
    pub fn kind_name(self) -> &'static str {
        match self {
            PolicyKind::Cilium => "CiliumBGPPeeringPolicy",
            PolicyKind::Kbgp => "BGPPeeringPolicy",
            PolicyKind::CiliumV2 => "CiliumBGPClusterConfig",
            PolicyKind::MetalLb => "BGPPeer",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PeeringPolicy {
    pub name: String,
    pub kind: PolicyKind,
    /// `None` or empty: every node.
    pub node_selector: Option<LabelSelector>,
    pub virtual_routers: Vec<VirtualRouter>,
}

/// Which addresses of a selected Service are announced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceAdvertisements {
    pub load_balancer_ip: bool,
    pub external_ip: bool,
    pub cluster_ip: bool,
}

/// One BGP router of a node: its AS, its neighbors and what they are sent.
///
/// Every API kbgp reads (Cilium's v1 and v2, MetalLB's, kbgp's own) ends up as this: the
/// planner knows nothing of where it came from, except the [`Origin`] texts `kbgp why` shows.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualRouter {
    /// Its name where the configuration gives one (a Cilium v2 `bgpInstances[].name`).
    pub name: Option<String>,
    pub local_asn: u32,
    /// What the neighbors are sent: each neighbor names one entry ([`Neighbor::exports`]).
    /// Cilium v1 and kbgp policies have one per virtual router; Cilium v2 one per distinct
    /// choice of advertisements by a peer's families; MetalLB one per distinct set of
    /// BGPAdvertisements that name the peer.
    pub exports: Vec<Exports>,
    pub neighbors: Vec<Neighbor>,
    /// The router id, when the configuration sets it (CiliumBGPNodeConfigOverride, MetalLB
    /// `routerID`); else the node annotation's or the node's IPv4 address.
    pub router_id: Option<std::net::Ipv4Addr>,
    /// The port to listen on (CiliumBGPNodeConfigOverride `localPort`).
    pub local_port: Option<u16>,
}

/// Where a piece of the model comes from, as `kbgp why` names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A virtual router of a CiliumBGPPeeringPolicy or BGPPeeringPolicy: its own fields
    /// (`exportPodCIDR`, `serviceSelector`, `serviceAdvertisements`).
    VirtualRouter { asn: u32 },
    /// An object of another API and the place in it, e.g. `CiliumBGPAdvertisement
    /// bgp-advertisements, advertisements[1]` or `BGPAdvertisement metallb-system/rack0`.
    Object(std::sync::Arc<str>),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::VirtualRouter { asn } => write!(f, "virtual router AS{asn}"),
            Origin::Object(o) => f.write_str(o),
        }
    }
}

/// The attributes an export adds to its routes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExportAttrs {
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF (sent to iBGP peers only); when several exports give one, the highest wins.
    pub local_preference: Option<u32>,
}

/// What one set of neighbors is sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exports {
    pub pod_cidrs: Vec<PodCidrExport>,
    pub services: Vec<ServiceExport>,
}

/// The node's pod CIDRs (Node `spec.podCIDRs`).
#[derive(Clone, Debug, PartialEq)]
pub struct PodCidrExport {
    pub origin: Origin,
    /// `false` only for a v1 virtual router with `exportPodCIDR: false`, so that `kbgp why`
    /// can say so.
    pub enabled: bool,
    /// The families it goes to (an address of another family is not announced by it).
    pub families: Vec<Family>,
    pub attrs: ExportAttrs,
}

/// Which Services an export picks by their labels.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceMatch {
    /// Cilium's `serviceSelector` (v1) or `selector` (v2): absent or empty selects none.
    Selector(Option<LabelSelector>),
    /// Cilium v2's Service advertisement `selector`, where an empty selector selects every
    /// Service and an absent one none.
    SelectorEmptyAll(Option<LabelSelector>),
    /// MetalLB's `serviceSelectors`: any of them; none listed selects every Service.
    AnyOf(Vec<LabelSelector>),
}

/// MetalLB's `ipAddressPools` and `ipAddressPoolSelectors`: a LoadBalancer IP is exported only
/// from a pool they name or select.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolFilter {
    pub names: Vec<String>,
    pub selectors: Vec<LabelSelector>,
    /// Neither names nor selectors given: every MetalLB pool.
    pub all: bool,
}

/// Addresses of the Services an export picks.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceExport {
    pub origin: Origin,
    pub selector: ServiceMatch,
    /// `None`: an address of any pool (or of none).
    pub pools: Option<PoolFilter>,
    pub addresses: ServiceAdvertisements,
    /// Announce the covering prefix of this length instead of the /32 (Cilium's
    /// `aggregationLengthIPv4`, MetalLB's `aggregationLength`); 32: the address itself.
    pub aggregate_v4: u8,
    /// The same for IPv6 (128: the address itself).
    pub aggregate_v6: u8,
    pub families: Vec<Family>,
    pub attrs: ExportAttrs,
}

impl ServiceExport {
    /// The export a v1 virtual router's own fields make.
    pub fn v1(asn: u32, selector: Option<LabelSelector>, addresses: ServiceAdvertisements) -> ServiceExport {
        ServiceExport {
            origin: Origin::VirtualRouter { asn },
            selector: ServiceMatch::Selector(selector),
            pools: None,
            addresses,
            aggregate_v4: 32,
            aggregate_v6: 128,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            attrs: ExportAttrs::default(),
        }
    }
}

impl VirtualRouter {
    /// The exports of `n`.
    pub fn exports_of(&self, n: &Neighbor) -> Option<&Exports> {
        self.exports.get(n.exports)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SelectorType {
    PodCidr,
    LoadBalancerIpPool,
    PodIpPool,
}

/// `advertisedPathAttributes[]`: attributes for the routes a selector picks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PathAttributeRule {
    pub selector_type: SelectorType,
    /// `None`: every object of that type.
    pub selector: Option<LabelSelector>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub local_preference: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Neighbor {
    pub address: IpAddr,
    pub port: u16,
    pub peer_asn: u32,
    pub ebgp_multihop_ttl: u8,
    pub connect_retry_secs: u32,
    pub hold_time: u16,
    pub keepalive: u16,
    /// Restart time when graceful restart is enabled.
    pub graceful_restart: Option<u16>,
    /// Long-lived stale time (RFC 9494), with graceful restart.
    pub long_lived_stale_time: Option<u32>,
    pub families: Vec<Family>,
    pub path_attributes: Vec<PathAttributeRule>,
    pub passive: bool,
    pub max_received_routes: usize,
    pub over_max_received: OverLimit,
    /// GTSM (RFC 5082): TTL 255 out, at least 255 in.
    pub ttl_security: bool,
    /// TCP MD5 (RFC 2385): where the password is.
    pub auth: Option<AuthRef>,
    /// BFD (RFC 5880).
    pub bfd: Option<Bfd>,
    /// Index of what it is sent in its virtual router's [`VirtualRouter::exports`].
    pub exports: usize,
    /// The local address of the session (MetalLB `sourceAddress`, Cilium
    /// `CiliumBGPNodeConfigOverride` `localAddress`); `None`: the kernel chooses.
    pub local_address: Option<IpAddr>,
    /// Its name where the configuration gives one (a Cilium v2 `peers[].name`, a MetalLB
    /// BGPPeer's name); status reports name peers by it, else by their address.
    pub name: Option<String>,
}

/// Where a session's TCP MD5 password comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthRef {
    /// Key `password` of this Secret in the BGP secrets namespace (Cilium's `authSecretRef`).
    Secret(String),
    /// Key `password` of this Secret in the MetalLB namespace (MetalLB's `passwordSecret`).
    MetalLbSecret(String),
    /// Given in the configuration (MetalLB's `password`).
    Password(crate::config::secret::SecretValue),
}

/// What a neighbor's session does past `maxReceivedRoutes` (RFC 4486).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OverLimit {
    /// Keep what is held, drop and count the rest, warn once.
    #[default]
    Drop,
    /// Cease 6/1, then connect again after `restart` (`None`: stay down until reset or
    /// reconfigured).
    Cease { restart: Option<std::time::Duration> },
}

/// Default `maxReceivedRoutesRestartSeconds`.
pub const DEFAULT_MAX_RECEIVED_RESTART_SECS: i64 = 60;

/// Parses `peerAddress`: an address, optionally with a `/len` that is ignored (Cilium parses
/// it as a prefix and peers with the address part, so the seed's `10.0.5.1/24` means 10.0.5.1).
pub fn parse_peer_address(s: &str) -> Result<IpAddr, String> {
    let addr = s.split_once('/').map_or(s, |(a, len)| {
        if len.parse::<u8>().is_err() {
            return "";
        }
        a
    });
    addr.trim().parse::<IpAddr>().map_err(|_| format!("{s:?} is not an IP address (with or without a /length)"))
}

/// An `afi`/`safi` pair of `families`: ipv4 or ipv6, unicast.
pub(crate) fn parse_family(d: &mut Diag, path: &str, afi: &str, safi: &str) -> Option<Family> {
    match (afi, safi) {
        ("ipv4", "unicast") => Some(Family::IPV4_UNICAST),
        ("ipv6", "unicast") => Some(Family::IPV6_UNICAST),
        _ => {
            d.err(path, format!("{afi}/{safi} is not supported: kbgp speaks ipv4/unicast and ipv6/unicast"));
            None
        }
    }
}

/// Connect retry, hold and keepalive times, seconds (absent or 0: Cilium's defaults, 120, 90
/// and 30), each checked with its field name under `prefix`, the keepalive at most the hold
/// time. Cilium's v1 neighbors and v2 `timers` have the same fields.
pub(crate) fn parse_timers(
    d: &mut Diag,
    prefix: &str,
    retry: Option<i64>,
    hold: Option<i64>,
    keepalive: Option<i64>,
) -> Option<(u32, u16, u16)> {
    let mut get = |field: &str, v: Option<i64>, lo: i64, hi: i64, default: i64| match v.filter(|v| *v != 0) {
        None => Some(default),
        Some(v) => d.range(&format!("{prefix}.{field}"), v, lo, hi),
    };
    let retry = get("connectRetryTimeSeconds", retry, 1, i32::MAX as i64, DEFAULT_CONNECT_RETRY as i64);
    let hold = get("holdTimeSeconds", hold, 3, 65535, DEFAULT_HOLD_TIME as i64);
    let keepalive = get("keepAliveTimeSeconds", keepalive, 1, 65535, DEFAULT_KEEPALIVE as i64);
    let (retry, hold, keepalive) = (retry?, hold?, keepalive?);
    if keepalive > hold {
        d.err(format!("{prefix}.keepAliveTimeSeconds"), format!("{keepalive} is larger than holdTimeSeconds ({hold})"));
        return None;
    }
    Some((retry as u32, hold as u16, keepalive as u16))
}

/// The Restart Time offered when `gracefulRestart` is enabled (absent or 0: 120), checked as
/// `path`; `None` when it is disabled or wrong.
pub(crate) fn parse_restart_time(d: &mut Diag, path: &str, g: &GracefulRestartSpec) -> Option<u16> {
    if !g.enabled {
        return None;
    }
    match g.restart_time_seconds.filter(|v| *v != 0) {
        None => Some(DEFAULT_RESTART_TIME),
        Some(v) => d.range(path, v, 1, 4095).map(|v| v as u16),
    }
}

/// `communities`: standard, well-known and large, each checked with its path; sorted and
/// deduplicated. `None` when any is wrong (each reported).
pub(crate) fn parse_communities(
    d: &mut Diag,
    path: &str,
    c: &CommunitiesSpec,
) -> Option<(Vec<Community>, Vec<LargeCommunity>)> {
    let mut ok = true;
    let mut communities = Vec::new();
    let mut large_communities = Vec::new();
    for (i, s) in c.standard.iter().enumerate() {
        match s.parse::<Community>() {
            Ok(x) if s.contains(':') || s.chars().all(|c| c.is_ascii_digit()) => communities.push(x),
            _ => {
                d.err(
                    format!("{path}.standard[{i}]"),
                    format!("{s:?}: expected ASN:VALUE (each 0..=65535) or a 32-bit number"),
                );
                ok = false;
            }
        }
    }
    for (i, s) in c.well_known.iter().enumerate() {
        match Community::well_known(s) {
            Some(x) => communities.push(x),
            None => {
                d.err(
                    format!("{path}.wellKnown[{i}]"),
                    format!("{s:?} is not a well-known community (no-export, no-advertise, no-export-subconfed, no-peer, blackhole, planned-shut, accept-own, llgr-stale, no-llgr, internet, route-filter-v4, route-filter-v6, route-filter-translated-v4, route-filter-translated-v6)"),
                );
                ok = false;
            }
        }
    }
    for (i, s) in c.large.iter().enumerate() {
        match s.parse::<LargeCommunity>() {
            Ok(x) => large_communities.push(x),
            Err(e) => {
                d.err(format!("{path}.large[{i}]"), e);
                ok = false;
            }
        }
    }
    communities.sort();
    communities.dedup();
    large_communities.sort();
    large_communities.dedup();
    ok.then_some((communities, large_communities))
}

fn parse_rule(d: &mut Diag, path: &str, r: &PathAttributesSpec) -> Option<PathAttributeRule> {
    let selector_type = match r.selector_type.as_str() {
        "PodCIDR" => SelectorType::PodCidr,
        "CiliumLoadBalancerIPPool" | "LoadBalancerIPPool" => SelectorType::LoadBalancerIpPool,
        "CiliumPodIPPool" => SelectorType::PodIpPool,
        other => {
            d.err(
                format!("{path}.selectorType"),
                format!(
                    "{other:?} is not one of PodCIDR, CiliumLoadBalancerIPPool, LoadBalancerIPPool, CiliumPodIPPool"
                ),
            );
            return None;
        }
    };
    let mut ok = true;
    if let Some(s) = &r.selector {
        for (p, m) in s.validate() {
            d.err(format!("{path}.selector.{p}"), m);
            ok = false;
        }
    }
    let (communities, large_communities) = match &r.communities {
        Some(c) => parse_communities(d, &format!("{path}.communities"), c).unwrap_or_else(|| {
            ok = false;
            Default::default()
        }),
        None => Default::default(),
    };
    let local_preference = match r.local_preference {
        Some(v) => match d.range(&format!("{path}.localPreference"), v, 0, u32::MAX as i64) {
            Some(v) => Some(v as u32),
            None => {
                ok = false;
                None
            }
        },
        None => None,
    };
    if selector_type == SelectorType::PodIpPool {
        d.err(
            format!("{path}.selectorType"),
            "CiliumPodIPPool needs Cilium's multi-pool IPAM, which kbgp does not read",
        );
        ok = false;
    }
    ok.then_some(PathAttributeRule {
        selector_type,
        selector: r.selector.clone(),
        communities,
        large_communities,
        local_preference,
    })
}

fn parse_neighbor(d: &mut Diag, path: &str, n: &NeighborSpec, kind: PolicyKind) -> Option<Neighbor> {
    let before = d.errors.len();
    let address = parse_peer_address(&n.peer_address).map_err(|e| d.err(format!("{path}.peerAddress"), e)).ok();
    let port =
        n.peer_port.map_or(Some(DEFAULT_PEER_PORT as i64), |v| d.range(&format!("{path}.peerPort"), v, 1, 65535));
    // AS 0 is reserved (RFC 7607).
    let peer_asn = d.range(&format!("{path}.peerASN"), n.peer_asn, 1, u32::MAX as i64);
    let ttl = n
        .ebgp_multihop_ttl
        .map_or(Some(DEFAULT_EBGP_MULTIHOP_TTL as i64), |v| d.range(&format!("{path}.eBGPMultihopTTL"), v, 1, 255));
    let timers = parse_timers(d, path, n.connect_retry_time_seconds, n.hold_time_seconds, n.keep_alive_time_seconds);
    let graceful_restart = n
        .graceful_restart
        .as_ref()
        .and_then(|g| parse_restart_time(d, &format!("{path}.gracefulRestart.restartTimeSeconds"), g));
    let long_lived_stale_time = match &n.graceful_restart {
        Some(g) if g.long_lived_stale_time_seconds.is_some() && !g.enabled => {
            d.err(
                format!("{path}.gracefulRestart.longLivedStaleTimeSeconds"),
                "needs gracefulRestart.enabled: true (RFC 9494 §3)",
            );
            None
        }
        Some(g) => g.long_lived_stale_time_seconds.and_then(|v| {
            d.range(&format!("{path}.gracefulRestart.longLivedStaleTimeSeconds"), v, 1, 16_777_215).map(|v| v as u32)
        }),
        None => None,
    };
    let auth = match n.auth_secret_ref.as_deref() {
        Some("") => {
            d.err(format!("{path}.authSecretRef"), "must name a Secret");
            None
        }
        other => other.map(|s| AuthRef::Secret(s.to_owned())),
    };
    let families = match &n.families {
        None => vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        Some(list) => {
            let mut v: Vec<Family> = Vec::new();
            for (i, f) in list.iter().enumerate() {
                if let Some(f) = parse_family(d, &format!("{path}.families[{i}]"), &f.afi, &f.safi)
                    && !v.contains(&f)
                {
                    v.push(f);
                }
            }
            if list.is_empty() {
                d.err(
                    format!("{path}.families"),
                    "must list at least one family (or be left out for ipv4 and ipv6 unicast)",
                );
            }
            v
        }
    };
    let mut path_attributes = Vec::new();
    for (i, r) in n.advertised_path_attributes.iter().flatten().enumerate() {
        if let Some(r) = parse_rule(d, &format!("{path}.advertisedPathAttributes[{i}]"), r) {
            path_attributes.push(r);
        }
    }
    if kind == PolicyKind::Cilium {
        for (set, field) in [
            (n.passive.is_some(), "passive"),
            (n.max_received_routes.is_some(), "maxReceivedRoutes"),
            (n.max_received_routes_action.is_some(), "maxReceivedRoutesAction"),
            (n.max_received_routes_restart_seconds.is_some(), "maxReceivedRoutesRestartSeconds"),
            (n.ttl_security.is_some(), "ttlSecurity"),
            (n.bfd.is_some(), "bfd"),
            (
                n.graceful_restart.as_ref().is_some_and(|g| g.long_lived_stale_time_seconds.is_some()),
                "gracefulRestart.longLivedStaleTimeSeconds",
            ),
        ] {
            if set {
                d.err(
                    format!("{path}.{field}"),
                    "is a kbgp extension: use apiVersion kbgp.io/v1alpha1, kind BGPPeeringPolicy",
                );
            }
        }
    }
    let max_received_routes = match n.max_received_routes {
        Some(v) => d.range(&format!("{path}.maxReceivedRoutes"), v, 0, 100_000_000).map(|v| v as usize),
        None => Some(DEFAULT_MAX_RECEIVED_ROUTES),
    };
    let over_max_received = match n.max_received_routes_action.as_deref() {
        None | Some("Drop") => {
            if n.max_received_routes_restart_seconds.is_some() {
                d.err(
                    format!("{path}.maxReceivedRoutesRestartSeconds"),
                    "applies only with maxReceivedRoutesAction: Cease",
                );
            }
            Some(OverLimit::Drop)
        }
        Some("Cease") => {
            let restart = match n.max_received_routes_restart_seconds {
                Some(v) => d.range(&format!("{path}.maxReceivedRoutesRestartSeconds"), v, 0, 86400),
                None => Some(DEFAULT_MAX_RECEIVED_RESTART_SECS),
            };
            restart.map(|r| OverLimit::Cease { restart: (r > 0).then(|| std::time::Duration::from_secs(r as u64)) })
        }
        Some(other) => {
            d.err(format!("{path}.maxReceivedRoutesAction"), format!("{other:?} is not one of Drop, Cease"));
            None
        }
    };
    let ttl_security = n.ttl_security.unwrap_or(false);
    if ttl_security && n.ebgp_multihop_ttl.is_some_and(|t| t > 1) {
        d.err(
            format!("{path}.ttlSecurity"),
            "is for directly connected neighbors (RFC 5082 §3): it cannot be combined with eBGPMultihopTTL above 1",
        );
    }
    let bfd = n.bfd.as_ref().and_then(|b| parse_bfd(d, &format!("{path}.bfd"), b, n.ebgp_multihop_ttl));
    if d.errors.len() > before {
        return None;
    }
    Some(Neighbor {
        address: address?,
        port: port? as u16,
        peer_asn: peer_asn? as u32,
        ebgp_multihop_ttl: ttl? as u8,
        connect_retry_secs: timers?.0,
        hold_time: timers?.1,
        keepalive: timers?.2,
        graceful_restart,
        long_lived_stale_time,
        families,
        path_attributes,
        passive: n.passive.unwrap_or(false),
        max_received_routes: max_received_routes?,
        over_max_received: over_max_received?,
        ttl_security,
        auth,
        bfd,
        exports: 0,
        local_address: None,
        name: None,
    })
}

pub(crate) fn parse_bfd(d: &mut Diag, path: &str, b: &BfdSpec, multihop_ttl: Option<i64>) -> Option<Bfd> {
    let before = d.errors.len();
    let ms = |d: &mut Diag, field: &str, v: Option<i64>| {
        v.map_or(Some(300), |v| d.range(&format!("{path}.{field}"), v, 10, 60000))
            .map(|v| std::time::Duration::from_millis(v as u64))
    };
    let rx = ms(d, "receiveInterval", b.receive_interval);
    let tx = ms(d, "transmitInterval", b.transmit_interval);
    let mult = b.detect_multiplier.map_or(Some(3), |v| d.range(&format!("{path}.detectMultiplier"), v, 2, 255));
    let multihop = b.multihop.unwrap_or(multihop_ttl.is_some_and(|t| t > 1));
    let min_ttl = match (multihop, b.minimum_ttl) {
        (false, Some(_)) => {
            d.err(
                format!("{path}.minimumTtl"),
                "applies only to multihop BFD: single hop always requires TTL 255 (RFC 5881 §5)",
            );
            None
        }
        (false, None) => Some(255),
        (true, v) => v.map_or(Some(254), |v| d.range(&format!("{path}.minimumTtl"), v, 1, 254)),
    };
    if b.echo_mode == Some(true) {
        d.err(format!("{path}.echoMode"), "is not supported: kbgp runs BFD in asynchronous mode without Echo");
    }
    if d.errors.len() > before {
        return None;
    }
    Some(Bfd {
        session: crate::bfd::Config {
            transmit_interval: tx?,
            receive_interval: rx?,
            detect_multiplier: mult? as u8,
            passive: b.passive_mode.unwrap_or(false),
        },
        multihop,
        min_ttl: min_ttl? as u8,
    })
}

impl PeeringPolicy {
    /// Validates and fills defaults. Errors go to `d` with their field paths.
    pub(crate) fn from_spec(
        name: &str,
        kind: PolicyKind,
        spec: &PeeringPolicySpec,
        d: &mut Diag,
    ) -> Option<PeeringPolicy> {
        let before = d.errors.len();
        if let Some(s) = &spec.node_selector {
            for (p, m) in s.validate() {
                d.err(format!("spec.nodeSelector.{p}"), m);
            }
        }
        if spec.virtual_routers.is_empty() {
            d.err("spec.virtualRouters", "must have at least one virtual router");
        }
        let mut vrs = Vec::new();
        for (i, v) in spec.virtual_routers.iter().enumerate() {
            let p = format!("spec.virtualRouters[{i}]");
            let asn = d.range(&format!("{p}.localASN"), v.local_asn, 1, u32::MAX as i64);
            if let Some(a) = asn
                && spec.virtual_routers[..i].iter().any(|o| o.local_asn == a)
            {
                d.err(format!("{p}.localASN"), format!("{a} is used by an earlier virtual router of this policy"));
            }
            if let Some(s) = &v.service_selector {
                for (sp, m) in s.validate() {
                    d.err(format!("{p}.serviceSelector.{sp}"), m);
                }
            }
            if v.pod_ip_pool_selector.is_some() {
                d.err(format!("{p}.podIPPoolSelector"), "needs Cilium's multi-pool IPAM, which kbgp does not read");
            }
            let mut advertise = ServiceAdvertisements::default();
            match &v.service_advertisements {
                None => advertise.load_balancer_ip = true,
                Some(list) => {
                    for (j, a) in list.iter().enumerate() {
                        match a.as_str() {
                            "LoadBalancerIP" => advertise.load_balancer_ip = true,
                            "ExternalIP" => advertise.external_ip = true,
                            "ClusterIP" => advertise.cluster_ip = true,
                            other => d.err(
                                format!("{p}.serviceAdvertisements[{j}]"),
                                format!("{other:?} is not one of LoadBalancerIP, ExternalIP, ClusterIP"),
                            ),
                        }
                    }
                }
            }
            if v.neighbors.is_empty() {
                d.err(format!("{p}.neighbors"), "must have at least one neighbor");
            }
            let mut neighbors: Vec<Neighbor> = Vec::new();
            for (j, n) in v.neighbors.iter().enumerate() {
                let np = format!("{p}.neighbors[{j}]");
                if let Some(n) = parse_neighbor(d, &np, n, kind) {
                    if n.ttl_security && asn == Some(n.peer_asn as i64) {
                        d.err(
                            format!("{np}.ttlSecurity"),
                            format!(
                                "is for eBGP neighbors (RFC 5082): peerASN {} is this virtual router's localASN",
                                n.peer_asn
                            ),
                        );
                    }
                    if neighbors.iter().any(|o| o.address == n.address) {
                        d.err(
                            format!("{np}.peerAddress"),
                            format!("{} is listed twice in this virtual router", n.address),
                        );
                    }
                    neighbors.push(n);
                }
            }
            if let Some(local_asn) = asn {
                let local_asn = local_asn as u32;
                let exports = Exports {
                    pod_cidrs: vec![PodCidrExport {
                        origin: Origin::VirtualRouter { asn: local_asn },
                        enabled: v.export_pod_cidr.unwrap_or(false),
                        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
                        attrs: ExportAttrs::default(),
                    }],
                    services: vec![ServiceExport::v1(local_asn, v.service_selector.clone(), advertise)],
                };
                vrs.push(VirtualRouter {
                    name: None,
                    local_asn,
                    exports: vec![exports],
                    neighbors,
                    router_id: None,
                    local_port: None,
                });
            }
        }
        (d.errors.len() == before).then(|| PeeringPolicy {
            name: name.to_string(),
            kind,
            node_selector: spec.node_selector.clone(),
            virtual_routers: vrs,
        })
    }

    /// Whether this policy applies to a node with these labels (no selector: every node).
    pub fn selects(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.node_selector.as_ref().is_none_or(|s| s.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_address_forms() {
        assert_eq!(parse_peer_address("10.0.5.1/24").unwrap(), "10.0.5.1".parse::<IpAddr>().unwrap());
        assert_eq!(parse_peer_address("10.0.5.1/32").unwrap(), "10.0.5.1".parse::<IpAddr>().unwrap());
        assert_eq!(parse_peer_address("10.0.5.1").unwrap(), "10.0.5.1".parse::<IpAddr>().unwrap());
        assert_eq!(parse_peer_address("fd00::1/128").unwrap(), "fd00::1".parse::<IpAddr>().unwrap());
        assert!(parse_peer_address("10.0.5.1/abc").is_err());
        assert!(parse_peer_address("leaf01").is_err());
    }
}
