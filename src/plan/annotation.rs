//! Per-node overrides of a virtual router, by node annotation:
//! `kbgp.io/virtual-router.<localASN>` or Cilium's `cilium.io/bgp-virtual-router.<localASN>`,
//! valued `router-id=A.B.C.D,local-port=N`. When both are present, kbgp's wins.

use super::PlanError;
use crate::config::Node;
use std::collections::HashMap;
use std::net::Ipv4Addr;

const KBGP_PREFIX: &str = "kbgp.io/virtual-router.";
const CILIUM_PREFIX: &str = "cilium.io/bgp-virtual-router.";

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VRouterOverrides {
    pub router_id: Option<Ipv4Addr>,
    /// Listen for incoming BGP connections on this port (none by default, as in Cilium).
    pub local_port: Option<u16>,
}

fn parse_value(node: &str, key: &str, v: &str) -> Result<VRouterOverrides, PlanError> {
    let err = |message: String| PlanError::Annotation { node: node.to_string(), key: key.to_string(), message };
    let mut o = VRouterOverrides::default();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, val) = item.split_once('=').ok_or_else(|| err(format!("{item:?} is not key=value")))?;
        match k.trim() {
            "router-id" => {
                o.router_id =
                    Some(val.trim().parse().map_err(|_| err(format!("router-id {val:?} is not an IPv4 address")))?)
            }
            "local-port" => {
                let p: u16 = val.trim().parse().map_err(|_| err(format!("local-port {val:?} is not a port number")))?;
                if p == 0 {
                    return Err(err("local-port must be 1..=65535".into()));
                }
                o.local_port = Some(p);
            }
            other => return Err(err(format!("unknown setting {other:?} (known: router-id, local-port)"))),
        }
    }
    Ok(o)
}

/// Overrides per local ASN found on the node.
pub fn parse_overrides(node: &Node) -> Result<HashMap<u32, VRouterOverrides>, PlanError> {
    let mut out: HashMap<u32, VRouterOverrides> = HashMap::new();
    // Cilium's first, so kbgp's replaces it.
    for prefix in [CILIUM_PREFIX, KBGP_PREFIX] {
        for (k, v) in &node.annotations {
            let Some(asn) = k.strip_prefix(prefix) else { continue };
            let asn: u32 = asn.parse().map_err(|_| PlanError::Annotation {
                node: node.name.clone(),
                key: k.clone(),
                message: format!("{asn:?} after {prefix} is not an AS number"),
            })?;
            let o = parse_value(&node.name, k, v)?;
            let e = out.entry(asn).or_default();
            if o.router_id.is_some() {
                e.router_id = o.router_id;
            }
            if o.local_port.is_some() {
                e.local_port = o.local_port;
            }
        }
    }
    Ok(out)
}
