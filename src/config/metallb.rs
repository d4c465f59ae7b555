//! MetalLB's API (`metallb.io/v1beta1`, `BGPPeer` also `v1beta2`): `IPAddressPool`, `BGPPeer`,
//! `BGPAdvertisement`, `Community` and `BFDProfile`, read with MetalLB's field names, defaults
//! and meaning (0.14–0.15, and the 0.16 `serviceSelectors`).
//!
//! MetalLB reads its objects from its own namespace only (`metallb-system` by default); so
//! does kbgp (`--metallb-namespace`). Pools feed LB IPAM ([`LbPool`] with
//! [`PoolKind::MetalLb`]); the BGP kinds are validated one by one here and combined for a
//! node by [`resolve`] into the same [`PeeringPolicy`] every other API gives:
//!
//! - a `BGPPeer` is a session of the nodes its `nodeSelectors` pick (none: every node), in
//!   the virtual router of its `myASN`;
//! - a `BGPAdvertisement` announces, from the nodes its `nodeSelectors` pick, to the peers
//!   its `peers` name (none: every peer), the LoadBalancer IPs of the pools it names or
//!   selects (neither: every pool), masked to `aggregationLength(V6)`, with its
//!   `communities` (values or `Community` aliases) and `localPref` (iBGP only);
//! - an address of a pool no advertisement covers is not announced over BGP;
//! - `L2Advertisement` is not done by kbgp (BGP only): a warning names each one.

use super::error::{ConfigError, Diag};
use super::meta::LabelSelector;
use super::policy::{
    self, AuthRef, Bfd, BfdSpec, ExportAttrs, Exports, Neighbor, Origin, PeeringPolicy, PolicyKind, PoolFilter,
    ServiceAdvertisements, ServiceExport, ServiceMatch, VirtualRouter,
};
use super::pool::{Block, LbPool, PoolKind, ServiceAllocation};
use super::secret::SecretValue;
use super::{Node, World};
use crate::wire::Family;
use crate::wire::attribute::{Community, LargeCommunity};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

/// The namespace MetalLB (and kbgp, for MetalLB's kinds) reads by default.
pub const DEFAULT_NAMESPACE: &str = "metallb-system";

/// Nodes with this label announce no LoadBalancer IP (MetalLB's and Kubernetes' rule).
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

// ---- the raw types, as MetalLB's CRDs define them ----

/// `IPAddressPool.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressPoolSpec {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub auto_assign: Option<bool>,
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: Option<bool>,
    #[serde(default)]
    pub service_allocation: Option<ServiceAllocationSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAllocationSpec {
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub namespace_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
}

/// `BGPPeer.spec`, v1beta2 (v1beta1 has a subset of these fields, with the same names).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeerSpec {
    #[serde(default, rename = "myASN")]
    pub my_asn: Option<i64>,
    #[serde(default, rename = "peerASN")]
    pub peer_asn: Option<i64>,
    #[serde(default, rename = "dynamicASN")]
    pub dynamic_asn: Option<String>,
    #[serde(default)]
    pub peer_address: Option<String>,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub source_address: Option<String>,
    #[serde(default)]
    pub peer_port: Option<i64>,
    #[serde(default)]
    pub hold_time: Option<String>,
    #[serde(default)]
    pub keepalive_time: Option<String>,
    #[serde(default)]
    pub connect_time: Option<String>,
    #[serde(default, rename = "routerID")]
    pub router_id: Option<String>,
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_secret: Option<SecretRefSpec>,
    #[serde(default)]
    pub bfd_profile: Option<String>,
    #[serde(default)]
    pub enable_graceful_restart: Option<bool>,
    #[serde(default)]
    pub ebgp_multi_hop: Option<bool>,
    #[serde(default)]
    pub vrf: Option<String>,
    #[serde(default, rename = "disableMP")]
    pub disable_mp: Option<bool>,
    #[serde(default)]
    pub dual_stack_address_family: Option<bool>,
    /// MetalLB 0.16: `local-as` per peer. Not supported.
    #[serde(default, rename = "localASN")]
    pub local_asn: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRefSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `BGPAdvertisement.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpAdvertisementSpec {
    #[serde(default)]
    pub aggregation_length: Option<i64>,
    #[serde(default, rename = "aggregationLengthV6")]
    pub aggregation_length_v6: Option<i64>,
    #[serde(default)]
    pub local_pref: Option<i64>,
    #[serde(default)]
    pub communities: Vec<String>,
    #[serde(default)]
    pub ip_address_pools: Vec<String>,
    #[serde(default)]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
}

/// `Community.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommunitySpec {
    #[serde(default)]
    pub communities: Vec<CommunityAliasSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommunityAliasSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// `BFDProfile.spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdProfileSpec {
    #[serde(default)]
    pub receive_interval: Option<i64>,
    #[serde(default)]
    pub transmit_interval: Option<i64>,
    #[serde(default)]
    pub detect_multiplier: Option<i64>,
    #[serde(default)]
    pub echo_interval: Option<i64>,
    #[serde(default)]
    pub echo_mode: Option<bool>,
    #[serde(default)]
    pub passive_mode: Option<bool>,
    #[serde(default)]
    pub minimum_ttl: Option<i64>,
}

// ---- the validated objects ----

/// `dynamicASN`: any AS in the peer's OPEN, iBGP or eBGP as stated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamicAsn {
    Internal,
    External,
}

/// A validated `BGPPeer`.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub name: String,
    /// `metadata.namespace` (`None` in a file that leaves it out: the MetalLB namespace).
    pub namespace: Option<String>,
    pub my_asn: u32,
    /// 0 with `dynamic`.
    pub peer_asn: u32,
    pub dynamic: Option<DynamicAsn>,
    pub address: IpAddr,
    pub source_address: Option<IpAddr>,
    pub port: u16,
    pub hold_time: u16,
    pub keepalive: u16,
    pub connect_retry_secs: u32,
    pub router_id: Option<Ipv4Addr>,
    /// Any of them (none: every node).
    pub node_selectors: Vec<LabelSelector>,
    pub auth: Option<AuthRef>,
    pub bfd_profile: Option<String>,
    pub graceful_restart: bool,
    pub ebgp_multihop: bool,
    pub dual_stack: bool,
}

/// A community as MetalLB writes it: `A:B` (16 bits each) or `large:G:L1:L2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommunityValue {
    Standard(Community),
    Large(LargeCommunity),
}

/// Why a string is not a community: not of either shape (it may be an alias), or of one
/// shape with a number out of range (a mistake).
enum CommunityError {
    Format,
    Value(String),
}

fn parse_community(s: &str) -> Result<CommunityValue, CommunityError> {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [a, b] => {
            let n = |x: &str| x.parse::<u16>().map_err(|_| CommunityError::Value(format!("{x:?} is not 0..=65535")));
            Ok(CommunityValue::Standard(Community(((n(a)? as u32) << 16) | n(b)? as u32)))
        }
        ["large", g, l1, l2] => {
            let n =
                |x: &str| x.parse::<u32>().map_err(|_| CommunityError::Value(format!("{x:?} is not 0..=4294967295")));
            Ok(CommunityValue::Large(LargeCommunity { global: n(g)?, local1: n(l1)?, local2: n(l2)? }))
        }
        _ => Err(CommunityError::Format),
    }
}

/// A validated `BGPAdvertisement`.
#[derive(Clone, Debug, PartialEq)]
pub struct Advertisement {
    pub name: String,
    /// `metadata.namespace` (`None` in a file that leaves it out: the MetalLB namespace).
    pub namespace: Option<String>,
    pub aggregate_v4: u8,
    pub aggregate_v6: u8,
    /// 0 (the default) sets none, as MetalLB's FRR mode.
    pub local_pref: Option<u32>,
    /// As written: each is a Community alias or a value, decided when combined.
    pub communities: Vec<String>,
    /// `None`: every pool.
    pub pools: Option<PoolFilter>,
    pub node_selectors: Vec<LabelSelector>,
    pub peers: Vec<String>,
    pub service_selectors: Vec<LabelSelector>,
}

/// A validated `Community`: its aliases.
#[derive(Clone, Debug, PartialEq)]
pub struct Communities {
    pub name: String,
    /// `metadata.namespace` (`None` in a file that leaves it out: the MetalLB namespace).
    pub namespace: Option<String>,
    pub aliases: Vec<(String, CommunityValue)>,
}

/// A validated `BFDProfile` (single hop; a multihop peer gets its `minimumTtl`).
#[derive(Clone, Debug, PartialEq)]
pub struct BfdProfile {
    pub name: String,
    /// `metadata.namespace` (`None` in a file that leaves it out: the MetalLB namespace).
    pub namespace: Option<String>,
    pub bfd: Bfd,
    pub minimum_ttl: u8,
}

/// MetalLB's BGP objects of a World (its pools are in [`World::pools`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetalLb {
    /// The namespace they were read from (empty: [`DEFAULT_NAMESPACE`]), for the names
    /// `kbgp why` shows.
    pub namespace: String,
    pub peers: Vec<Arc<Peer>>,
    pub advertisements: Vec<Arc<Advertisement>>,
    pub communities: Vec<Arc<Communities>>,
    pub bfd_profiles: Vec<Arc<BfdProfile>>,
}

impl MetalLb {
    pub fn extend(&mut self, other: MetalLb) {
        if self.namespace.is_empty() {
            self.namespace = other.namespace;
        }
        self.peers.extend(other.peers);
        self.advertisements.extend(other.advertisements);
        self.communities.extend(other.communities);
        self.bfd_profiles.extend(other.bfd_profiles);
    }

    /// Objects of one kind with the same name, and aliases defined twice.
    pub fn duplicates(&self, out: &mut Vec<ConfigError>) {
        use super::error::same_names as dups;
        dups(self.peers.iter().map(|c| c.name.as_str()), "BGPPeer", out);
        dups(self.advertisements.iter().map(|c| c.name.as_str()), "BGPAdvertisement", out);
        dups(self.communities.iter().map(|c| c.name.as_str()), "Community", out);
        dups(self.bfd_profiles.iter().map(|c| c.name.as_str()), "BFDProfile", out);
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for c in &self.communities {
            for (i, (alias, _)) in c.aliases.iter().enumerate() {
                if let Some(first) = seen.insert(alias, &c.name) {
                    out.push(ConfigError::new(
                        &c.name,
                        format!("spec.communities[{i}].name"),
                        format!("alias {alias:?} is also defined in Community {first}"),
                    ));
                }
            }
        }
    }

    /// Keeps the objects of `namespace` (and those of files that give none); one warning per
    /// object dropped.
    pub fn keep_namespace(&mut self, namespace: &str) -> Vec<String> {
        self.namespace = namespace.to_string();
        let mut warnings = Vec::new();
        /// Keeps the objects of `ns`; one without a namespace (from a file) is put in it.
        fn keep<T: Clone>(
            v: &mut Vec<Arc<T>>,
            kind: &str,
            ns: &str,
            of: impl Fn(&mut T) -> (&str, &mut Option<String>),
            w: &mut Vec<String>,
        ) {
            v.retain_mut(|x| {
                let mut probe = (**x).clone();
                let (name, n) = of(&mut probe);
                match n.as_deref() {
                    Some(n) if n == ns => true,
                    None => {
                        *n = Some(ns.to_string());
                        *x = Arc::new(probe);
                        true
                    }
                    Some(other) => {
                        w.push(format!(
                            "{kind} {other}/{name} ignored: MetalLB's objects are read from the MetalLB namespace \
                             {ns} (--metallb-namespace), as MetalLB reads them"
                        ));
                        false
                    }
                }
            });
        }
        let w = &mut warnings;
        keep(&mut self.peers, "BGPPeer", namespace, |x| (&x.name, &mut x.namespace), w);
        keep(&mut self.advertisements, "BGPAdvertisement", namespace, |x| (&x.name, &mut x.namespace), w);
        keep(&mut self.communities, "Community", namespace, |x| (&x.name, &mut x.namespace), w);
        keep(&mut self.bfd_profiles, "BFDProfile", namespace, |x| (&x.name, &mut x.namespace), w);
        warnings
    }

    /// The namespace shown in object names.
    pub fn namespace(&self) -> &str {
        if self.namespace.is_empty() { DEFAULT_NAMESPACE } else { &self.namespace }
    }

    fn alias(&self, name: &str) -> Option<CommunityValue> {
        self.communities.iter().flat_map(|c| &c.aliases).find(|(a, _)| a == name).map(|(_, v)| *v)
    }
}

/// Any selector of the list matches (none listed: all).
fn any_of(list: &[LabelSelector], labels: &BTreeMap<String, String>) -> bool {
    list.is_empty() || list.iter().any(|s| s.matches(labels))
}

fn selectors(d: &mut Diag, path: &str, list: &[LabelSelector]) {
    for (i, s) in list.iter().enumerate() {
        for (p, m) in s.validate() {
            d.err(format!("{path}[{i}].{p}"), m);
        }
        if list[..i].contains(s) {
            d.err(format!("{path}[{i}]"), "duplicate definition of a selector");
        }
    }
}

fn no_duplicates(d: &mut Diag, path: &str, list: &[String]) {
    for (i, s) in list.iter().enumerate() {
        if list[..i].contains(s) {
            d.err(format!("{path}[{i}]"), format!("duplicate definition of {s:?}"));
        }
    }
}

/// A Go duration (`metav1.Duration`): `90s`, `1m30s`, `500ms`, `1.5h`, `0`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 90s, 1m30s, 500ms)");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() || t.starts_with('-') {
        return Err(bad());
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let mut nanos: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        nanos += n * scale;
        rest = &rest[unit_len..];
    }
    if !nanos.is_finite() || nanos > 1e18 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// `IPAddressPool` into an LB IPAM pool.
pub(crate) fn pool_from_raw(
    meta: &super::meta::ObjectMeta,
    name: &str,
    spec: &AddressPoolSpec,
    d: &mut Diag,
) -> Option<LbPool> {
    let before = d.errors.len();
    if spec.addresses.is_empty() {
        d.err("spec.addresses", "pool has no prefixes defined");
    }
    let mut blocks = Vec::new();
    for (i, a) in spec.addresses.iter().enumerate() {
        let p = format!("spec.addresses[{i}]");
        match a.split_once('-') {
            None => match a.trim().parse::<IpNet>() {
                Ok(n) => blocks.push(Block::Cidr(n.trunc())),
                Err(_) if a.trim().parse::<IpAddr>().is_ok() => {
                    d.err(&p, format!("{a:?} has no prefix length: write {}/32 (or /128) or a range a-b", a.trim()))
                }
                Err(_) => d.err(&p, format!("{a:?} is not a CIDR or an a-b range")),
            },
            Some((x, y)) => match (x.trim().parse::<IpAddr>(), y.trim().parse::<IpAddr>()) {
                (Err(_), _) => d.err(&p, format!("invalid IP range {a:?}: invalid start IP {:?}", x.trim())),
                (_, Err(_)) => d.err(&p, format!("invalid IP range {a:?}: invalid end IP {:?}", y.trim())),
                (Ok(x), Ok(y)) if x.is_ipv4() != y.is_ipv4() => {
                    d.err(&p, format!("invalid IP range {a:?}: start and end are of different families"))
                }
                (Ok(x), Ok(y)) if y < x => d.err(&p, format!("invalid IP range {a:?}: start IP is after the end IP")),
                (Ok(x), Ok(y)) => blocks.push(Block::Range(x, y)),
            },
        }
    }
    let allocation = spec.service_allocation.as_ref().map(|s| {
        let priority = match s.priority {
            None => 0,
            Some(v) => d.range("spec.serviceAllocation.priority", v, 0, i32::MAX as i64).unwrap_or(0) as u32,
        };
        no_duplicates(d, "spec.serviceAllocation.namespaces", &s.namespaces);
        selectors(d, "spec.serviceAllocation.namespaceSelectors", &s.namespace_selectors);
        selectors(d, "spec.serviceAllocation.serviceSelectors", &s.service_selectors);
        ServiceAllocation {
            priority,
            namespaces: s.namespaces.clone(),
            namespace_selectors: s.namespace_selectors.clone(),
            service_selectors: s.service_selectors.clone(),
        }
    });
    (d.errors.len() == before).then(|| LbPool {
        kind: PoolKind::MetalLb,
        name: name.to_string(),
        namespace: meta.namespace.clone(),
        labels: meta.labels.clone(),
        creation_timestamp: meta.creation_timestamp.clone(),
        blocks,
        service_selector: None,
        disabled: false,
        allow_first_last_ips: true,
        auto_assign: spec.auto_assign.unwrap_or(true),
        avoid_buggy_ips: spec.avoid_buggy_ips.unwrap_or(false),
        allocation,
    })
}

fn parse_ip(d: &mut Diag, path: &str, what: &str, s: &str) -> Option<IpAddr> {
    match s.trim().parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            d.err(path, format!("invalid {what} {s:?}"));
            None
        }
    }
}

impl Peer {
    /// `v1beta1`: a `0s` hold or keepalive time is what MetalLB's conversion writes for
    /// "not set", and is read as such.
    pub(crate) fn from_raw(
        name: &str,
        spec: &BgpPeerSpec,
        v1beta1: bool,
        d: &mut Diag,
        warnings: &mut Vec<String>,
    ) -> Option<Peer> {
        let before = d.errors.len();
        let my_asn = match spec.my_asn {
            None | Some(0) => {
                d.err("spec.myASN", "missing local ASN");
                None
            }
            Some(v) => d.range("spec.myASN", v, 1, u32::MAX as i64).map(|v| v as u32),
        };
        let dynamic = match spec.dynamic_asn.as_deref() {
            None | Some("") => None,
            Some("internal") => Some(DynamicAsn::Internal),
            Some("external") => Some(DynamicAsn::External),
            Some(o) => {
                d.err("spec.dynamicASN", format!("invalid dynamicASN {o:?}: not one of internal, external"));
                None
            }
        };
        let peer_asn = match (spec.peer_asn.filter(|v| *v != 0), &spec.dynamic_asn) {
            (None, None) => {
                d.err("spec.peerASN", "missing peer ASN and dynamicASN");
                None
            }
            (Some(_), Some(x)) if !x.is_empty() => {
                d.err("spec.dynamicASN", "both peer ASN and dynamicASN specified");
                None
            }
            (Some(v), _) => d.range("spec.peerASN", v, 1, u32::MAX as i64).map(|v| v as u32),
            (None, _) => Some(0),
        };
        if spec.interface.is_some() {
            d.err("spec.interface", "BGP unnumbered is not supported by kbgp: give the peer's peerAddress");
        }
        let address = match &spec.peer_address {
            Some(a) => parse_ip(d, "spec.peerAddress", "BGPPeer address", a),
            None => {
                d.err("spec.peerAddress", "peer has no Address specified");
                None
            }
        };
        let source_address =
            spec.source_address.as_deref().and_then(|a| parse_ip(d, "spec.sourceAddress", "source IP", a));
        if let (Some(a), Some(s)) = (address, source_address)
            && a.is_ipv4() != s.is_ipv4()
        {
            d.err("spec.sourceAddress", format!("{s} is not of the family of peerAddress {a}"));
        }
        let port = match spec.peer_port {
            None | Some(0) => Some(policy::DEFAULT_PEER_PORT),
            Some(v) => d.range("spec.peerPort", v, 1, 65535).map(|v| v as u16),
        };
        let duration = |d: &mut Diag, field: &str, v: &Option<String>| -> Option<Option<Duration>> {
            match v {
                None => Some(None),
                Some(s) => match parse_go_duration(s) {
                    Ok(t) if v1beta1 && t.is_zero() => Some(None),
                    Ok(t) => Some(Some(t)),
                    Err(e) => {
                        d.err(format!("spec.{field}"), e);
                        None
                    }
                },
            }
        };
        let hold = duration(d, "holdTime", &spec.hold_time);
        let keepalive = duration(d, "keepaliveTime", &spec.keepalive_time);
        let connect = duration(d, "connectTime", &spec.connect_time);
        // MetalLB's parseTimers: neither set: 90 s and 30 s (its native mode); one set: the
        // other from the 3:1 ratio; whole seconds.
        let timers = match (hold.flatten(), keepalive.flatten()) {
            (None, None) => Some((policy::DEFAULT_HOLD_TIME as u64, policy::DEFAULT_KEEPALIVE as u64)),
            (Some(h), None) => Some((h.as_secs(), h.as_secs() / 3)),
            (None, Some(k)) => Some((k.as_secs() * 3, k.as_secs())),
            (Some(h), Some(k)) => Some((h.as_secs(), k.as_secs())),
        };
        let timers = timers.and_then(|(h, k)| {
            if h != 0 && h < 3 {
                d.err("spec.holdTime", format!("invalid hold time {h}s: must be 0 or >=3s"));
                None
            } else if h > 65535 {
                d.err("spec.holdTime", format!("invalid hold time {h}s: at most 65535s"));
                None
            } else if k > h {
                d.err("spec.keepaliveTime", format!("invalid keepaliveTime {k}s, must be lower than holdTime {h}s"));
                None
            } else {
                Some((h as u16, k as u16))
            }
        });
        let connect_retry_secs = match connect.flatten() {
            None => Some(policy::DEFAULT_CONNECT_RETRY),
            Some(t) if t.subsec_nanos() != 0 || t.as_secs() < 1 || t.as_secs() > 65535 => {
                d.err("spec.connectTime", "must be whole seconds, 1s to 65535s");
                None
            }
            Some(t) => Some(t.as_secs() as u32),
        };
        let router_id =
            spec.router_id.as_deref().filter(|s| !s.is_empty()).and_then(|s| match s.trim().parse::<Ipv4Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    d.err("spec.routerID", format!("invalid router ID {s:?}: a BGP identifier is an IPv4 address"));
                    None
                }
            });
        selectors(d, "spec.nodeSelectors", &spec.node_selectors);
        let auth = match (spec.password.as_deref().filter(|p| !p.is_empty()), &spec.password_secret) {
            (Some(_), Some(_)) => {
                d.err("spec.passwordSecret", "can not have both password and secret ref set");
                None
            }
            (Some(p), None) if p.len() > 80 => {
                d.err("spec.password", format!("must be 1 to 80 octets (the kernel's limit), it has {}", p.len()));
                None
            }
            (Some(p), None) => Some(AuthRef::Password(SecretValue::new(p.as_bytes()))),
            (None, Some(r)) => match r.name.as_deref().filter(|n| !n.is_empty()) {
                None => {
                    d.err("spec.passwordSecret.name", "must name a Secret");
                    None
                }
                Some(n) => {
                    if r.namespace.is_some() {
                        warnings.push(format!(
                            "BGPPeer {name}: spec.passwordSecret.namespace is ignored, as by MetalLB: the Secret is \
                             read from the MetalLB namespace"
                        ));
                    }
                    Some(AuthRef::MetalLbSecret(n.to_string()))
                }
            },
            (None, None) => None,
        };
        let ebgp_multihop = spec.ebgp_multi_hop.unwrap_or(false);
        if ebgp_multihop && my_asn.is_some() && peer_asn == my_asn {
            d.err("spec.ebgpMultiHop", "invalid ebgp-multihop parameter set for an ibgp peer");
        }
        if spec.vrf.as_deref().is_some_and(|v| !v.is_empty()) {
            d.err("spec.vrf", "VRFs are not supported by kbgp: it peers from the node's main routing table");
        }
        if spec.local_asn.is_some() {
            d.err("spec.localASN", "a per-peer local AS is not supported by kbgp: use myASN");
        }
        if spec.disable_mp == Some(true) {
            warnings.push(format!(
                "BGPPeer {name}: spec.disableMP is deprecated and has no effect (as in MetalLB 0.15): a session carries \
                 its address's family unless dualStackAddressFamily is set"
            ));
        }
        if v1beta1 {
            for (set, field) in [
                (spec.dynamic_asn.is_some(), "dynamicASN"),
                (spec.interface.is_some(), "interface"),
                (spec.connect_time.is_some(), "connectTime"),
                (spec.password_secret.is_some(), "passwordSecret"),
                (spec.enable_graceful_restart.is_some(), "enableGracefulRestart"),
                (spec.vrf.is_some(), "vrf"),
                (spec.disable_mp.is_some(), "disableMP"),
                (spec.dual_stack_address_family.is_some(), "dualStackAddressFamily"),
            ] {
                if set {
                    d.err(format!("spec.{field}"), "is a field of metallb.io/v1beta2, not v1beta1");
                }
            }
        }
        if d.errors.len() > before {
            return None;
        }
        let (hold_time, keepalive) = timers?;
        Some(Peer {
            name: name.to_string(),
            namespace: None,
            my_asn: my_asn?,
            peer_asn: peer_asn?,
            dynamic,
            address: address?,
            source_address,
            port: port?,
            hold_time,
            keepalive,
            connect_retry_secs: connect_retry_secs?,
            router_id,
            node_selectors: spec.node_selectors.clone(),
            auth,
            bfd_profile: spec.bfd_profile.clone().filter(|p| !p.is_empty()),
            graceful_restart: spec.enable_graceful_restart.unwrap_or(false),
            ebgp_multihop,
            dual_stack: spec.dual_stack_address_family.unwrap_or(false),
        })
    }
}

impl Advertisement {
    pub(crate) fn from_raw(name: &str, spec: &BgpAdvertisementSpec, d: &mut Diag) -> Option<Advertisement> {
        let before = d.errors.len();
        let agg = |d: &mut Diag, field: &str, v: Option<i64>, max: i64, fam: &str| match v {
            None => Some(max as u8),
            Some(v) if v > max => {
                d.err(format!("spec.{field}"), format!("invalid aggregation length {v} for {fam}"));
                None
            }
            Some(v) => d.range(&format!("spec.{field}"), v, 1, max).map(|v| v as u8),
        };
        let aggregate_v4 = agg(d, "aggregationLength", spec.aggregation_length, 32, "IPv4");
        let aggregate_v6 = agg(d, "aggregationLengthV6", spec.aggregation_length_v6, 128, "IPv6");
        let local_pref = match spec.local_pref {
            None => Some(None),
            Some(v) => d.range("spec.localPref", v, 0, u32::MAX as i64).map(|v| (v != 0).then_some(v as u32)),
        };
        no_duplicates(d, "spec.communities", &spec.communities);
        for (i, c) in spec.communities.iter().enumerate() {
            if let Err(CommunityError::Value(e)) = parse_community(c) {
                d.err(format!("spec.communities[{i}]"), format!("invalid community {c:?}: {e}"));
            }
        }
        no_duplicates(d, "spec.ipAddressPools", &spec.ip_address_pools);
        selectors(d, "spec.ipAddressPoolSelectors", &spec.ip_address_pool_selectors);
        selectors(d, "spec.nodeSelectors", &spec.node_selectors);
        no_duplicates(d, "spec.peers", &spec.peers);
        selectors(d, "spec.serviceSelectors", &spec.service_selectors);
        if !spec.service_selectors.is_empty() && (aggregate_v4 != Some(32) || aggregate_v6 != Some(128)) {
            d.err("spec.serviceSelectors", "cannot be combined with an aggregation length other than the default");
        }
        if d.errors.len() > before {
            return None;
        }
        let pools =
            (!spec.ip_address_pools.is_empty() || !spec.ip_address_pool_selectors.is_empty()).then(|| PoolFilter {
                names: spec.ip_address_pools.clone(),
                selectors: spec.ip_address_pool_selectors.clone(),
                all: false,
            });
        Some(Advertisement {
            name: name.to_string(),
            namespace: None,
            aggregate_v4: aggregate_v4?,
            aggregate_v6: aggregate_v6?,
            local_pref: local_pref?,
            communities: spec.communities.clone(),
            pools,
            node_selectors: spec.node_selectors.clone(),
            peers: spec.peers.clone(),
            service_selectors: spec.service_selectors.clone(),
        })
    }
}

impl Communities {
    pub(crate) fn from_raw(name: &str, spec: &CommunitySpec, d: &mut Diag) -> Option<Communities> {
        let before = d.errors.len();
        let mut aliases: Vec<(String, CommunityValue)> = Vec::new();
        for (i, a) in spec.communities.iter().enumerate() {
            let p = format!("spec.communities[{i}]");
            let alias = a.name.clone().unwrap_or_default();
            if aliases.iter().any(|(n, _)| *n == alias) {
                d.err(format!("{p}.name"), format!("duplicate definition of community {alias:?}"));
            }
            let value = a.value.as_deref().unwrap_or_default();
            match parse_community(value) {
                Ok(v) => aliases.push((alias, v)),
                Err(CommunityError::Format) => d.err(
                    format!("{p}.value"),
                    format!("parsing community {value:?}: expected A:B (16 bits each) or large:G:L1:L2"),
                ),
                Err(CommunityError::Value(e)) => {
                    d.err(format!("{p}.value"), format!("parsing community {value:?}: {e}"))
                }
            }
        }
        (d.errors.len() == before).then(|| Communities { name: name.to_string(), namespace: None, aliases })
    }
}

impl BfdProfile {
    pub(crate) fn from_raw(
        name: &str,
        spec: &BfdProfileSpec,
        d: &mut Diag,
        warnings: &mut Vec<String>,
    ) -> Option<BfdProfile> {
        if spec.echo_interval.is_some() && spec.echo_mode != Some(true) {
            warnings.push(format!("BFDProfile {name}: spec.echoInterval applies to echo mode only; ignored"));
        }
        let as_kbgp = BfdSpec {
            receive_interval: spec.receive_interval,
            transmit_interval: spec.transmit_interval,
            detect_multiplier: spec.detect_multiplier,
            passive_mode: spec.passive_mode,
            multihop: Some(true),
            minimum_ttl: spec.minimum_ttl,
            echo_mode: spec.echo_mode,
        };
        let bfd = policy::parse_bfd(d, "spec", &as_kbgp, None)?;
        Some(BfdProfile { name: name.to_string(), namespace: None, minimum_ttl: bfd.min_ttl, bfd })
    }
}

// ---- combining the objects for one node ----

pub use super::cilium_v2::{Conflict, Resolved};

/// The shortest prefix length of each address entry of a pool, by family (a range counts as
/// the CIDRs that cover it exactly, as MetalLB summarises it).
fn pool_prefixes(p: &LbPool) -> impl Iterator<Item = (bool, u8)> + '_ {
    fn n(a: IpAddr) -> u128 {
        match a {
            IpAddr::V4(a) => u32::from(a) as u128,
            IpAddr::V6(a) => u128::from(a),
        }
    }
    p.blocks.iter().map(|b| match b {
        Block::Cidr(net) => (net.addr().is_ipv6(), net.prefix_len()),
        Block::Range(a, z) => {
            let max = if a.is_ipv6() { 128 } else { 32 };
            (a.is_ipv6(), shortest_prefix(n(*a), n(*z), max) as u8)
        }
    })
}

/// The shortest prefix among the aligned blocks that exactly cover [x, y].
fn shortest_prefix(x: u128, y: u128, max: u32) -> u32 {
    let mut best = max;
    let mut cur = x;
    loop {
        // The largest block aligned at `cur` that ends at or before `y`.
        let mut k = cur.trailing_zeros().min(max).min(127);
        while k > 0 && cur.checked_add((1u128 << k) - 1).is_none_or(|end| end > y) {
            k -= 1;
        }
        best = best.min(max - k);
        match cur.checked_add(1u128 << k) {
            Some(next) if next <= y => cur = next,
            _ => return best,
        }
    }
}

/// The pools an advertisement covers.
fn covers(a: &Advertisement, p: &LbPool) -> bool {
    p.kind == PoolKind::MetalLb
        && a.pools
            .as_ref()
            .is_none_or(|f| f.names.contains(&p.name) || f.selectors.iter().any(|s| s.matches(&p.labels)))
}

/// MetalLB's check that an advertisement does not aggregate above a pool's own prefixes.
pub fn aggregation_errors(world: &World) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for a in &world.metallb.advertisements {
        for p in world.pools.iter().filter(|p| covers(a, p)) {
            for (v6, len) in pool_prefixes(p) {
                let (agg, field) =
                    if v6 { (a.aggregate_v6, "aggregationLengthV6") } else { (a.aggregate_v4, "aggregationLength") };
                if agg < len {
                    out.push(ConfigError::new(
                        &a.name,
                        format!("spec.{field}"),
                        format!(
                            "invalid aggregation length {agg}: prefix /{len} in IPAddressPool {} is more specific than \
                             the aggregation length",
                            p.name
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// The export one advertisement makes, or why it cannot be made.
fn export_of(a: &Advertisement, m: &MetalLb, namespace: &str) -> Result<ServiceExport, String> {
    let mut attrs = ExportAttrs { local_preference: a.local_pref, ..Default::default() };
    for (i, c) in a.communities.iter().enumerate() {
        let v = match m.alias(c) {
            Some(v) => v,
            None => match parse_community(c) {
                Ok(v) => v,
                Err(_) => {
                    return Err(format!(
                        "BGPAdvertisement {namespace}/{}: spec.communities[{i}] {c:?} is neither a community nor an \
                         alias of a Community object; the advertisement is not applied",
                        a.name
                    ));
                }
            },
        };
        match v {
            CommunityValue::Standard(c) => attrs.communities.push(c),
            CommunityValue::Large(c) => attrs.large_communities.push(c),
        }
    }
    attrs.communities.sort();
    attrs.communities.dedup();
    attrs.large_communities.sort();
    attrs.large_communities.dedup();
    Ok(ServiceExport {
        origin: Origin::Object(format!("BGPAdvertisement {namespace}/{}", a.name).into()),
        selector: ServiceMatch::AnyOf(a.service_selectors.clone()),
        pools: Some(a.pools.clone().unwrap_or(PoolFilter { names: Vec::new(), selectors: Vec::new(), all: true })),
        addresses: ServiceAdvertisements { load_balancer_ip: true, ..Default::default() },
        aggregate_v4: a.aggregate_v4,
        aggregate_v6: a.aggregate_v6,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        attrs,
    })
}

/// Combines the BGPPeers that select `node` with the advertisements, communities and BFD
/// profiles into the node's peering configuration (one virtual router per `myASN`).
pub fn resolve(node: &Node, world: &World) -> Result<Resolved, Conflict> {
    let m = &world.metallb;
    let namespace = m.namespace();
    let mut out = Resolved::default();
    let peers: Vec<&Peer> = m.peers.iter().filter(|p| any_of(&p.node_selectors, &node.labels)).map(|p| &**p).collect();
    if peers.is_empty() {
        return Ok(out);
    }
    if let Some(e) = aggregation_errors(world).first() {
        return Err(Conflict(e.to_string()));
    }
    let excluded = node.labels.contains_key(EXCLUDE_LB_LABEL);
    if excluded {
        out.notes.push(format!(
            "node {} has the label {EXCLUDE_LB_LABEL}: as MetalLB, kbgp announces no BGPAdvertisement from it",
            node.name
        ));
    }
    // Each advertisement that applies on this node, as an export (or a note why not).
    let mut exports: Vec<(&Advertisement, ServiceExport)> = Vec::new();
    for a in m.advertisements.iter().filter(|a| !excluded && any_of(&a.node_selectors, &node.labels)) {
        match export_of(a, m, namespace) {
            Ok(e) => exports.push((a, e)),
            Err(note) => out.notes.push(note),
        }
    }
    let mut vrs: Vec<VirtualRouter> = Vec::new();
    for p in peers {
        let vr = match vrs.iter().position(|v| v.local_asn == p.my_asn) {
            Some(i) => &mut vrs[i],
            None => {
                vrs.push(VirtualRouter {
                    name: None,
                    local_asn: p.my_asn,
                    exports: Vec::new(),
                    neighbors: Vec::new(),
                    router_id: None,
                    local_port: None,
                });
                let last = vrs.len() - 1;
                &mut vrs[last]
            }
        };
        if let Some(rid) = p.router_id {
            match vr.router_id {
                Some(other) if other != rid => {
                    return Err(Conflict(format!(
                        "BGPPeer {}: routerID {rid} differs from {other}, set by another BGPPeer of AS{} on this node; \
                         a node has one router id per AS (as in MetalLB's FRR mode)",
                        p.name, p.my_asn
                    )));
                }
                _ => vr.router_id = Some(rid),
            }
        }
        if vr.neighbors.iter().any(|n| n.address == p.address) {
            return Err(Conflict(format!(
                "BGPPeer {}: another BGPPeer of AS{} on this node has peerAddress {}",
                p.name, p.my_asn, p.address
            )));
        }
        let bfd = match &p.bfd_profile {
            None => None,
            Some(name) => match m.bfd_profiles.iter().find(|b| &b.name == name) {
                Some(b) => Some(Bfd {
                    multihop: p.ebgp_multihop,
                    min_ttl: if p.ebgp_multihop { b.minimum_ttl } else { 255 },
                    ..b.bfd
                }),
                None => {
                    out.notes.push(format!(
                        "BGPPeer {namespace}/{}: spec.bfdProfile: no BFDProfile {name}; the peer is not configured",
                        p.name
                    ));
                    continue;
                }
            },
        };
        let set = Exports {
            pod_cidrs: Vec::new(),
            services: exports
                .iter()
                .filter(|(a, _)| a.peers.is_empty() || a.peers.contains(&p.name))
                .map(|(_, e)| e.clone())
                .collect(),
        };
        let index = match vr.exports.iter().position(|e| *e == set) {
            Some(x) => x,
            None => {
                vr.exports.push(set);
                vr.exports.len() - 1
            }
        };
        let own = if p.address.is_ipv4() { Family::IPV4_UNICAST } else { Family::IPV6_UNICAST };
        let peer_asn = match p.dynamic {
            Some(DynamicAsn::Internal) => p.my_asn,
            Some(DynamicAsn::External) | None => p.peer_asn,
        };
        vr.neighbors.push(Neighbor {
            address: p.address,
            port: p.port,
            peer_asn,
            ebgp_multihop_ttl: if p.ebgp_multihop { 255 } else { policy::DEFAULT_EBGP_MULTIHOP_TTL },
            connect_retry_secs: p.connect_retry_secs,
            hold_time: p.hold_time,
            keepalive: p.keepalive,
            graceful_restart: p.graceful_restart.then_some(policy::DEFAULT_RESTART_TIME),
            long_lived_stale_time: None,
            families: if p.dual_stack { vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST] } else { vec![own] },
            path_attributes: Vec::new(),
            passive: false,
            max_received_routes: policy::DEFAULT_MAX_RECEIVED_ROUTES,
            over_max_received: Default::default(),
            ttl_security: false,
            auth: p.auth.clone(),
            bfd,
            exports: index,
            local_address: p.source_address,
            name: Some(p.name.clone()),
        });
    }
    out.policy = Some(PeeringPolicy {
        name: namespace.to_string(),
        kind: PolicyKind::MetalLb,
        node_selector: None,
        virtual_routers: vrs,
    });
    Ok(out)
}

#[cfg(test)]
mod tests;
