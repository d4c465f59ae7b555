//! LB IPAM pools: `cilium.io/v2alpha1` (and `v2`) `CiliumLoadBalancerIPPool` and
//! `kbgp.io/v1alpha1 LoadBalancerIPPool`. The allocator itself lives in `ipam/`; here is the
//! schema and its validation.

use super::error::Diag;
use super::meta::{LabelSelector, ObjectMeta};
use ipnet::IpNet;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A block of addresses: cidr, or start (and stop).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.cidr) != has(self.start)", "message": "a block has either cidr, or start (and optionally stop)"},
    {"rule": "!has(self.stop) || has(self.start)", "message": "stop needs start"}
]))]
pub struct BlockSpec {
    /// A prefix, e.g. 20.0.0.0/24.
    #[serde(default)]
    pub cidr: Option<String>,
    /// First address of a range.
    #[serde(default)]
    pub start: Option<String>,
    /// Last address of a range, included; default start.
    #[serde(default)]
    pub stop: Option<String>,
}

// The CRD `kbgp.io/v1alpha1 LoadBalancerIPPool` is generated from these types (`kbgp crds`).

/// Address blocks, and which Services may take addresses from them.
// kube's printcolumn(...) entries repeat the same keys by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kbgp.io",
    version = "v1alpha1",
    kind = "LoadBalancerIPPool",
    plural = "loadbalancerippools",
    shortname = "kbippool",
    category = "kbgp",
    status = "PoolStatusCr",
    printcolumn(name = "Disabled", type_ = "boolean", json_path = ".spec.disabled"),
    printcolumn(name = "Conflicting", type_ = "string", json_path = ".status.conflict"),
    printcolumn(name = "IPs Available", type_ = "string", json_path = ".status.ipsAvailable"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    doc = "Addresses LB IPAM hands to LoadBalancer Services (Cilium's CiliumLoadBalancerIPPool schema)."
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolSpec {
    /// The address blocks.
    #[serde(default)]
    pub blocks: Vec<BlockSpec>,
    /// Removed in Cilium 1.16 (the API server drops it); accepted in files as `blocks`.
    #[serde(default)]
    #[schemars(skip)]
    pub cidrs: Vec<BlockSpec>,
    /// Services that may use the pool; absent selects every Service.
    #[serde(default)]
    pub service_selector: Option<LabelSelector>,
    /// No new addresses from this pool.
    #[serde(default)]
    pub disabled: bool,
    /// Yes (default) or No: whether the first and last address of a cidr block may be handed out.
    #[serde(default, rename = "allowFirstLastIPs")]
    #[schemars(extend("enum" = ["Yes", "No"]))]
    pub allow_first_last_ips: Option<String>,
}

/// What LB IPAM writes to a pool's `status`. Counts are decimal strings: an IPv6 pool can hold
/// more addresses than a 64-bit integer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatusCr {
    /// Addresses the pool holds.
    #[serde(default)]
    pub ips_total: String,
    /// Addresses it can still hand out.
    #[serde(default)]
    pub ips_available: String,
    /// Addresses assigned to Services.
    #[serde(default)]
    pub ips_used: String,
    /// Why the pool hands out nothing, when it overlaps another; empty otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolRaw {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PoolSpec,
}

/// One address block of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Block {
    Cidr(IpNet),
    /// Inclusive range.
    Range(IpAddr, IpAddr),
}

impl Block {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match self {
            Block::Cidr(n) => n.contains(ip),
            Block::Range(a, b) => a.is_ipv4() == ip.is_ipv4() && a <= ip && ip <= b,
        }
    }

    pub fn is_ipv6(&self) -> bool {
        match self {
            Block::Cidr(n) => matches!(n, IpNet::V6(_)),
            Block::Range(a, _) => a.is_ipv6(),
        }
    }
}

/// Which API a pool comes from (its status is written in that API's shape).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PoolKind {
    #[default]
    Cilium,
    Kbgp,
    /// `metallb.io/v1beta1 IPAddressPool`.
    MetalLb,
}

impl PoolKind {
    pub fn kind_name(self) -> &'static str {
        match self {
            PoolKind::Cilium => "CiliumLoadBalancerIPPool",
            PoolKind::Kbgp => "LoadBalancerIPPool",
            PoolKind::MetalLb => "IPAddressPool",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbPool {
    pub kind: PoolKind,
    pub name: String,
    /// MetalLB's pools are namespaced; Cilium's and kbgp's are not (`None`).
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub creation_timestamp: Option<String>,
    pub blocks: Vec<Block>,
    /// `None`: any Service may use the pool.
    pub service_selector: Option<LabelSelector>,
    pub disabled: bool,
    /// Whether the first and last address of a `cidr` block may be handed out (Cilium ≥ 1.16
    /// default: yes; `allowFirstLastIPs: "No"` reserves them).
    pub allow_first_last_ips: bool,
    /// Whether LB IPAM picks addresses from it for Services that do not ask for one
    /// (MetalLB's `autoAssign`; always for Cilium's and kbgp's pools).
    pub auto_assign: bool,
    /// Never hand out an IPv4 address ending in .0 or .255 (MetalLB's `avoidBuggyIPs`).
    pub avoid_buggy_ips: bool,
    /// MetalLB's `serviceAllocation`: which Services may use the pool, and its priority.
    pub allocation: Option<ServiceAllocation>,
}

/// MetalLB's `serviceAllocation` of a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower first; 0 (unset) after every positive priority.
    pub priority: u32,
    /// With `namespace_selectors`: the namespaces whose Services may use the pool (none
    /// listed: any namespace).
    pub namespaces: Vec<String>,
    pub namespace_selectors: Vec<LabelSelector>,
    /// Any of them must match the Service's labels (none: any Service).
    pub service_selectors: Vec<LabelSelector>,
}

impl LbPool {
    pub(crate) fn from_raw(
        kind: PoolKind,
        name: &str,
        r: &PoolRaw,
        d: &mut Diag,
        warnings: &mut Vec<String>,
    ) -> LbPool {
        let mut blocks = Vec::new();
        if !r.spec.cidrs.is_empty() {
            warnings.push(format!("{name}: spec.cidrs was removed in Cilium 1.16; kbgp reads it as spec.blocks"));
        }
        let all: Vec<(String, &BlockSpec)> = r
            .spec
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (format!("spec.blocks[{i}]"), b))
            .chain(r.spec.cidrs.iter().enumerate().map(|(i, b)| (format!("spec.cidrs[{i}]"), b)))
            .collect();
        for (p, b) in all {
            match (&b.cidr, &b.start, &b.stop) {
                (Some(c), None, None) => match c.parse::<IpNet>() {
                    Ok(n) => blocks.push(Block::Cidr(n.trunc())),
                    Err(_) => d.err(format!("{p}.cidr"), format!("{c:?} is not a CIDR")),
                },
                (None, Some(s), stop) => {
                    let start = s.parse::<IpAddr>();
                    let stop_ip = stop.as_deref().map(|x| x.parse::<IpAddr>());
                    match (start, stop_ip) {
                        (Err(_), _) => d.err(format!("{p}.start"), format!("{s:?} is not an IP address")),
                        (_, Some(Err(_))) => d.err(
                            format!("{p}.stop"),
                            format!("{:?} is not an IP address", stop.as_deref().unwrap_or("")),
                        ),
                        (Ok(a), None) => blocks.push(Block::Range(a, a)),
                        (Ok(a), Some(Ok(b))) => {
                            if a.is_ipv4() != b.is_ipv4() {
                                d.err(format!("{p}.stop"), "start and stop must be the same address family");
                            } else if b < a {
                                d.err(format!("{p}.stop"), format!("{b} is before start {a}"));
                            } else {
                                blocks.push(Block::Range(a, b));
                            }
                        }
                    }
                }
                _ => d.err(p, "a block has either cidr, or start (and optionally stop)"),
            }
        }
        if let Some(s) = &r.spec.service_selector {
            for (sp, m) in s.validate() {
                d.err(format!("spec.serviceSelector.{sp}"), m);
            }
        }
        let allow_first_last_ips = match r.spec.allow_first_last_ips.as_deref() {
            None | Some("Yes") => true,
            Some("No") => false,
            Some(o) => {
                d.err("spec.allowFirstLastIPs", format!("{o:?} is not one of Yes, No"));
                true
            }
        };
        LbPool {
            kind,
            name: name.to_string(),
            namespace: None,
            labels: r.metadata.labels.clone(),
            creation_timestamp: r.metadata.creation_timestamp.clone(),
            blocks,
            service_selector: r.spec.service_selector.clone(),
            disabled: r.spec.disabled,
            allow_first_last_ips,
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        }
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }
}
