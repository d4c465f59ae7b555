//! The parts of `v1 Node` and `v1 Service` kbgp reads. Every other field is ignored, so real
//! manifests (and `kubectl get -o yaml` output) load as they are.

use super::error::Diag;
use super::meta::ObjectMeta;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpecRaw {
    #[serde(default, rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    #[serde(default, rename = "podCIDRs")]
    pub pod_cidrs: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeAddressRaw {
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatusRaw {
    #[serde(default)]
    pub addresses: Vec<NodeAddressRaw>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeRaw {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeSpecRaw,
    #[serde(default)]
    pub status: NodeStatusRaw,
}

/// A Namespace: its name and labels (what MetalLB's `namespaceSelectors` look at).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// A node, as the planner needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub pod_cidrs: Vec<IpNet>,
    /// (type, address): InternalIP, ExternalIP, Hostname-like entries that parse as IPs.
    pub addresses: Vec<(String, IpAddr)>,
}

impl Node {
    pub(crate) fn from_raw(name: &str, r: &NodeRaw, d: &mut Diag) -> Node {
        let mut pod_cidrs = Vec::new();
        let list: Vec<(String, &String)> = if r.spec.pod_cidrs.is_empty() {
            r.spec.pod_cidr.iter().map(|c| ("spec.podCIDR".to_string(), c)).collect()
        } else {
            r.spec.pod_cidrs.iter().enumerate().map(|(i, c)| (format!("spec.podCIDRs[{i}]"), c)).collect()
        };
        for (path, c) in list {
            match c.parse::<IpNet>() {
                Ok(n) => pod_cidrs.push(n.trunc()),
                Err(_) => d.err(path, format!("{c:?} is not a CIDR")),
            }
        }
        let mut addresses = Vec::new();
        for (i, a) in r.status.addresses.iter().enumerate() {
            if a.kind == "Hostname" || a.kind == "InternalDNS" || a.kind == "ExternalDNS" {
                continue;
            }
            match a.address.parse::<IpAddr>() {
                Ok(ip) => addresses.push((a.kind.clone(), ip)),
                Err(_) => {
                    d.err(format!("status.addresses[{i}].address"), format!("{:?} is not an IP address", a.address))
                }
            }
        }
        Node {
            name: name.to_string(),
            labels: r.metadata.labels.clone(),
            annotations: r.metadata.annotations.clone(),
            pod_cidrs,
            addresses,
        }
    }

    /// First address of `kind` in the given family.
    pub fn address(&self, kind: &str, v4: bool) -> Option<IpAddr> {
        self.addresses.iter().find(|(k, a)| k == kind && a.is_ipv4() == v4).map(|(_, a)| *a)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpecRaw {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(default, rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
    #[serde(default, rename = "externalIPs")]
    pub external_ips: Vec<String>,
    #[serde(default, rename = "loadBalancerIP")]
    pub load_balancer_ip: Option<String>,
    #[serde(default)]
    pub load_balancer_class: Option<String>,
    #[serde(default)]
    pub external_traffic_policy: Option<String>,
    #[serde(default)]
    pub internal_traffic_policy: Option<String>,
    #[serde(default)]
    pub ip_families: Vec<String>,
    #[serde(default)]
    pub ip_family_policy: Option<String>,
    #[serde(default)]
    pub ports: Vec<ServicePortRaw>,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServicePortRaw {
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IngressRaw {
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerStatusRaw {
    #[serde(default)]
    pub ingress: Vec<IngressRaw>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatusRaw {
    #[serde(default)]
    pub load_balancer: LoadBalancerStatusRaw,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceRaw {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpecRaw,
    #[serde(default)]
    pub status: ServiceStatusRaw,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ServiceType {
    #[default]
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
}

impl ServiceType {
    /// As written in `spec.type`.
    pub fn name(&self) -> &'static str {
        match self {
            ServiceType::ClusterIp => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ExternalName => "ExternalName",
        }
    }
}

/// A Service, as the planner needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub kind: ServiceType,
    pub cluster_ips: Vec<IpAddr>,
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip`.
    pub ingress_ips: Vec<IpAddr>,
    /// `spec.loadBalancerIP` (a request for LB IPAM).
    pub load_balancer_ip: Option<IpAddr>,
    pub load_balancer_class: Option<String>,
    pub external_traffic_local: bool,
    pub internal_traffic_local: bool,
    /// `spec.ipFamilies` as given (`IPv4`, `IPv6`).
    pub ip_families: Vec<String>,
    pub ip_family_policy: Option<String>,
    /// `spec.ports[].port`.
    pub ports: Vec<u16>,
    /// `spec.selector` (LB IP sharing compares it under `externalTrafficPolicy: Local`).
    pub selector: BTreeMap<String, String>,
    pub creation_timestamp: Option<String>,
}

/// Keeps the first of equal addresses, in order. A Service can have a thousand ingress
/// addresses: past a few, a set keeps this linear.
fn dedup(v: &mut Vec<IpAddr>) {
    if v.len() <= 16 {
        let mut i = 0;
        while i < v.len() {
            if v[..i].contains(&v[i]) {
                v.remove(i);
            } else {
                i += 1;
            }
        }
    } else {
        let mut seen = hashbrown::HashSet::with_capacity(v.len());
        v.retain(|ip| seen.insert(*ip));
    }
}

fn ips(d: &mut Diag, path: &str, list: &[String]) -> Vec<IpAddr> {
    let mut v = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        match s.parse::<IpAddr>() {
            Ok(ip) => v.push(ip),
            Err(_) => d.err(format!("{path}[{i}]"), format!("{s:?} is not an IP address")),
        }
    }
    dedup(&mut v);
    v
}

/// `loadBalancerClass` values kbgp serves, besides none at all: its own, and Cilium's BGP
/// control plane's so that Cilium's manifests keep working.
pub const LB_CLASSES: &[&str] = &["kbgp.io/bgp", "io.cilium/bgp-control-plane"];

impl Service {
    /// A LoadBalancer Service whose addresses are kbgp's business (LB IPAM and announcing):
    /// with `--lb-class NAME` (`lb_class`), those of that class only; otherwise the classless
    /// ones and those of kbgp's or Cilium's class.
    pub fn handled_by(&self, lb_class: Option<&str>) -> bool {
        self.kind == ServiceType::LoadBalancer && self.class_handled_by(lb_class)
    }

    /// Whether the Service's `loadBalancerClass` is one kbgp serves (see [`handled_by`](Self::handled_by)).
    pub fn class_handled_by(&self, lb_class: Option<&str>) -> bool {
        match (self.load_balancer_class.as_deref(), lb_class) {
            (c, Some(want)) => c == Some(want),
            (c, None) => c.is_none_or(|c| LB_CLASSES.contains(&c)),
        }
    }

    pub(crate) fn from_raw(name: &str, r: &ServiceRaw, d: &mut Diag) -> Service {
        let kind = match r.spec.kind.as_deref() {
            None | Some("ClusterIP") => ServiceType::ClusterIp,
            Some("NodePort") => ServiceType::NodePort,
            Some("LoadBalancer") => ServiceType::LoadBalancer,
            Some("ExternalName") => ServiceType::ExternalName,
            Some(other) => {
                d.err("spec.type", format!("{other:?} is not one of ClusterIP, NodePort, LoadBalancer, ExternalName"));
                ServiceType::ClusterIp
            }
        };
        // clusterIPs supersedes clusterIP; "None" marks a headless Service.
        let mut cluster: Vec<String> = r.spec.cluster_ips.clone();
        if cluster.is_empty() {
            cluster.extend(r.spec.cluster_ip.clone());
        }
        cluster.retain(|c| c != "None" && !c.is_empty());
        let path = if r.spec.cluster_ips.is_empty() { "spec.clusterIP" } else { "spec.clusterIPs" };
        let cluster_ips = ips(d, path, &cluster);
        let external_ips = ips(d, "spec.externalIPs", &r.spec.external_ips);
        let mut ingress_ips = Vec::with_capacity(r.status.load_balancer.ingress.len());
        for (i, ing) in r.status.load_balancer.ingress.iter().enumerate() {
            if let Some(s) = &ing.ip {
                match s.parse::<IpAddr>() {
                    Ok(ip) => ingress_ips.push(ip),
                    Err(_) => {
                        d.err(format!("status.loadBalancer.ingress[{i}].ip"), format!("{s:?} is not an IP address"))
                    }
                }
            }
        }
        dedup(&mut ingress_ips);
        let load_balancer_ip = match r.spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => match s.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    d.err("spec.loadBalancerIP", format!("{s:?} is not an IP address"));
                    None
                }
            },
            None => None,
        };
        let policy = |path: &str, v: &Option<String>, d: &mut Diag| match v.as_deref() {
            None | Some("Cluster") => false,
            Some("Local") => true,
            Some(o) => {
                d.err(path, format!("{o:?} is not one of Cluster, Local"));
                false
            }
        };
        let mut ports = Vec::new();
        for (i, p) in r.spec.ports.iter().enumerate() {
            match p.port {
                Some(n) if (1..=65535).contains(&n) => ports.push(n as u16),
                Some(n) => d.err(format!("spec.ports[{i}].port"), format!("must be 1..=65535, got {n}")),
                None => d.err(format!("spec.ports[{i}].port"), "is required"),
            }
        }
        for (i, f) in r.spec.ip_families.iter().enumerate() {
            if f != "IPv4" && f != "IPv6" {
                d.err(format!("spec.ipFamilies[{i}]"), format!("{f:?} is not one of IPv4, IPv6"));
            }
        }
        if let Some(p) = &r.spec.ip_family_policy
            && !["SingleStack", "PreferDualStack", "RequireDualStack"].contains(&p.as_str())
        {
            d.err("spec.ipFamilyPolicy", format!("{p:?} is not one of SingleStack, PreferDualStack, RequireDualStack"));
        }
        Service {
            namespace: r.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            name: name.to_string(),
            labels: r.metadata.labels.clone(),
            annotations: r.metadata.annotations.clone(),
            kind,
            cluster_ips,
            external_ips,
            ingress_ips,
            load_balancer_ip,
            load_balancer_class: r.spec.load_balancer_class.clone(),
            external_traffic_local: policy("spec.externalTrafficPolicy", &r.spec.external_traffic_policy, d),
            internal_traffic_local: policy("spec.internalTrafficPolicy", &r.spec.internal_traffic_policy, d),
            ip_families: r.spec.ip_families.clone(),
            ip_family_policy: r.spec.ip_family_policy.clone(),
            ports,
            selector: r.spec.selector.clone(),
            creation_timestamp: r.metadata.creation_timestamp.clone(),
        }
    }

    /// Labels plus the virtual ones Cilium's selectors can use.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        l.insert("io.kubernetes.service.name".into(), self.name.clone());
        l.insert("io.kubernetes.service.namespace".into(), self.namespace.clone());
        l
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointConditionsRaw {
    #[serde(default)]
    pub ready: Option<bool>,
    #[serde(default)]
    pub serving: Option<bool>,
    #[serde(default)]
    pub terminating: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRaw {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub conditions: EndpointConditionsRaw,
    #[serde(default)]
    pub node_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointSliceRaw {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub endpoints: Vec<EndpointRaw>,
}

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One endpoint's node and conditions, with Kubernetes' defaults applied: `ready` unset is
/// ready, `serving` unset is `ready`, `terminating` unset is false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub node: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// An EndpointSlice (`discovery.k8s.io/v1`), as the planner needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointSlice {
    pub namespace: String,
    pub name: String,
    /// The Service it belongs to (`kubernetes.io/service-name`).
    pub service: Option<String>,
    pub endpoints: Vec<Endpoint>,
}

impl EndpointSlice {
    pub(crate) fn from_raw(name: &str, r: &EndpointSliceRaw) -> EndpointSlice {
        EndpointSlice {
            namespace: r.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            name: name.to_string(),
            service: r.metadata.labels.get(SERVICE_NAME_LABEL).cloned(),
            endpoints: r
                .endpoints
                .iter()
                .map(|e| {
                    let ready = e.conditions.ready.unwrap_or(true);
                    Endpoint {
                        node: e.node_name.clone(),
                        ready,
                        serving: e.conditions.serving.unwrap_or(ready),
                        terminating: e.conditions.terminating.unwrap_or(false),
                    }
                })
                .collect(),
        }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}
