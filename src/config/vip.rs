//! `kbgp.io/v1alpha1 VirtualIP`: an address announced as a /32 or /128 by the nodes that
//! serve it, only while a local health check passes: the kube-apiserver VIP at bootstrap,
//! before any API server answers (docs/control-plane-vip.md).
//!
//! The raw serde types mirror the YAML (and generate the CRD); [`VirtualIp`] is the
//! validated model. Every field is checked with its path, so `kbgp check` names what is
//! wrong; files the check reads (CA, client certificate) are read when the daemon starts.

use super::error::Diag;
use super::meta::LabelSelector;
use super::policy::{CommunitiesSpec, parse_communities, parse_peer_address};
use crate::health::Policy;
use crate::wire::attribute::{Community, LargeCommunity};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// An address this node announces while its local health check passes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kbgp.io",
    version = "v1alpha1",
    kind = "VirtualIP",
    plural = "virtualips",
    shortname = "kbvip",
    category = "kbgp",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(name = "Check", type_ = "string", json_path = ".spec.healthCheck.type"),
    printcolumn(name = "Accepted", type_ = "string", json_path = ".status.conditions[?(@.type==\"Accepted\")].status"),
    status = "super::conditions::ConditionsStatus",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    doc = "An address (e.g. the kube-apiserver VIP) announced as a /32 or /128 by every selected node while its local health check passes."
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualIPSpec {
    /// The addresses, IPv4 or IPv6, announced as /32 and /128 (a /32 or /128 suffix is
    /// accepted).
    pub addresses: Vec<String>,
    /// Nodes that announce it; absent: every node.
    #[serde(default)]
    pub node_selector: Option<LabelSelector>,
    /// Only these virtual routers (their localASN) of the node's peering policy; absent: all.
    #[serde(default)]
    pub virtual_routers: Option<Vec<i64>>,
    /// Only these neighbors (peerAddress) of those virtual routers; absent: all.
    #[serde(default)]
    pub peers: Option<Vec<String>>,
    /// Attributes of the route while it is announced.
    #[serde(default)]
    pub advertised_path_attributes: Option<VipAttributesSpec>,
    /// The local check that gates the route; absent: announced whenever kbgp runs.
    #[serde(default)]
    pub health_check: Option<HealthCheckSpec>,
    /// Put the address on a local interface (e.g. lo) so the node itself accepts traffic for it.
    #[serde(default)]
    pub local_interface: Option<LocalInterfaceSpec>,
    /// On SIGTERM, announce the route with GRACEFUL_SHUTDOWN (RFC 8326) for a while before
    /// withdrawing it.
    #[serde(default)]
    pub graceful_shutdown: Option<GracefulShutdownSpec>,
}

/// Path attributes of a VirtualIP's route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VipAttributesSpec {
    /// Communities to add.
    #[serde(default)]
    pub communities: Option<CommunitiesSpec>,
    /// LOCAL_PREF on iBGP sessions (default 100).
    #[serde(default)]
    #[schemars(range(min = 0, max = 4_294_967_295_i64))]
    pub local_preference: Option<i64>,
    /// MULTI_EXIT_DISC.
    #[serde(default)]
    #[schemars(range(min = 0, max = 4_294_967_295_i64))]
    pub med: Option<i64>,
}

/// How the node checks that it serves the address.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckSpec {
    /// HTTPS, HTTP or TCP (a connection that opens passes).
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["HTTPS", "HTTP", "TCP"]))]
    pub kind: String,
    /// HTTPS and HTTP: what is fetched, e.g. https://127.0.0.1:6443/readyz.
    #[serde(default)]
    pub url: Option<String>,
    /// TCP: host:port, e.g. 127.0.0.1:6443.
    #[serde(default)]
    pub address: Option<String>,
    /// HTTPS: how the server's certificate is verified, and the client certificate.
    #[serde(default)]
    pub tls: Option<TlsSpec>,
    /// HTTP status that passes (default 200).
    #[serde(default)]
    #[schemars(range(min = 100, max = 599))]
    pub expected_status: Option<i64>,
    /// Time between the starts of two checks, milliseconds (default 1000).
    #[serde(default)]
    #[schemars(range(min = 50, max = 3_600_000))]
    pub interval_milliseconds: Option<i64>,
    /// A check that takes longer fails, milliseconds (default 800; at most the interval).
    #[serde(default)]
    #[schemars(range(min = 10, max = 3_600_000))]
    pub timeout_milliseconds: Option<i64>,
    /// Passing checks in a row before the address is announced (default 2).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub rise: Option<i64>,
    /// Failing checks in a row before it is withdrawn (default 3).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub fall: Option<i64>,
    /// After kbgp starts, failures are not counted for this long (default 0).
    #[serde(default)]
    #[schemars(range(min = 0, max = 3600))]
    pub startup_grace_seconds: Option<i64>,
}

/// TLS of an HTTPS check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSpec {
    /// PEM file of the CA(s) the server's certificate must chain to, e.g.
    /// /etc/kubernetes/pki/ca.crt. Absent: the server's certificate is not trusted unless
    /// insecureSkipVerify. A path on the node; in a file, a relative path (here and in the
    /// client certificate fields) is relative to that file's directory.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The name the certificate must carry (default: the URL's host). For a kubeadm API
    /// server checked at 127.0.0.1: kubernetes.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any certificate (not recommended: anything on the port passes).
    #[serde(default)]
    pub insecure_skip_verify: Option<bool>,
    /// PEM client certificate, for a server that requires one (with clientKeyFile).
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// PEM private key of clientCertFile.
    #[serde(default)]
    pub client_key_file: Option<String>,
}

/// The address on a local interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalInterfaceSpec {
    /// The interface, e.g. lo.
    pub name: String,
    /// WhileHealthy (default: added once healthy, removed after the route is withdrawn),
    /// Always (added at start, removed at exit), Never.
    #[serde(default)]
    #[schemars(extend("enum" = ["WhileHealthy", "Always", "Never"]))]
    pub manage: Option<String>,
}

/// Draining before a planned withdrawal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GracefulShutdownSpec {
    /// On SIGTERM, seconds the route stays announced with the GRACEFUL_SHUTDOWN community
    /// (and LOCAL_PREF 0 on iBGP) before it is withdrawn (0 to 300, default 0).
    #[serde(default)]
    #[schemars(range(min = 0, max = 300))]
    pub drain_seconds: Option<i64>,
}

// ---- the validated model ----

/// A validated VirtualIP.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualIp {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub node_selector: Option<LabelSelector>,
    /// `None`: every virtual router of the node's policy.
    pub virtual_routers: Option<Vec<u32>>,
    /// `None`: every neighbor of those virtual routers.
    pub peers: Option<Vec<IpAddr>>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub local_preference: Option<u32>,
    pub med: Option<u32>,
    /// `None`: always announced.
    pub health_check: Option<HealthCheck>,
    pub local_interface: Option<LocalInterface>,
    /// How long the route is announced with GRACEFUL_SHUTDOWN on SIGTERM.
    pub drain: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HealthCheck {
    pub target: Target,
    pub expected_status: u16,
    pub policy: Policy,
}

/// What a check connects to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Http {
        /// The URL as written, for messages.
        url: String,
        host: String,
        port: u16,
        /// Path and query, e.g. `/readyz`.
        path: String,
        /// HTTPS.
        tls: Option<Tls>,
    },
    Tcp {
        host: String,
        port: u16,
    },
}

impl Target {
    /// What the check reaches, in words.
    pub fn describe(&self) -> String {
        match self {
            Target::Http { url, tls: Some(_), .. } => format!("HTTPS GET {url}"),
            Target::Http { url, .. } => format!("HTTP GET {url}"),
            Target::Tcp { host, port } => format!("TCP connect to {}", join_host_port(host, *port)),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Target::Http { tls: Some(_), .. } => "HTTPS",
            Target::Http { .. } => "HTTP",
            Target::Tcp { .. } => "TCP",
        }
    }
}

/// `host:port`, with brackets around an IPv6 address.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    /// The name checked in the server's certificate.
    pub server_name: String,
    pub insecure_skip_verify: bool,
    /// (certificate, key).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LocalInterface {
    pub name: String,
    pub manage: Manage,
}

/// When kbgp keeps a VirtualIP's address on the local interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Manage {
    /// Added once the check passes, removed after the route is withdrawn.
    WhileHealthy,
    /// Added at start, removed at exit.
    Always,
    /// Left alone (someone else puts it there).
    Never,
}

/// What the local checks say (this node only). The daemon sets it in the World it plans, so
/// the planner stays pure: a check that changes its verdict is a new World in which only
/// this changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VipHealth {
    /// VirtualIPs whose check passes (a VirtualIP without a check is always announced).
    pub healthy: BTreeSet<String>,
    /// Shutting down: announced routes carry GRACEFUL_SHUTDOWN.
    pub draining: bool,
}

impl VirtualIp {
    /// Whether it is announced under `health`.
    pub fn up(&self, health: &VipHealth) -> bool {
        self.health_check.is_none() || health.healthy.contains(&self.name)
    }

    pub fn selects(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.node_selector.as_ref().is_none_or(|s| s.matches(labels))
    }

    /// The prefixes it announces.
    pub fn prefixes(&self) -> impl Iterator<Item = ipnet::IpNet> + '_ {
        self.addresses.iter().map(|a| ipnet::IpNet::from(*a))
    }

    /// The same VirtualIP with its relative TLS file paths (`caFile`, `clientCertFile`,
    /// `clientKeyFile`) taken relative to `dir`, the directory of the file it was read from,
    /// as kubeconfig does; `None` when it has no relative path.
    pub fn relative_to(&self, dir: &std::path::Path) -> Option<VirtualIp> {
        let Some(HealthCheck { target: Target::Http { tls: Some(tls), .. }, .. }) = &self.health_check else {
            return None;
        };
        let rel = |p: &PathBuf| p.is_relative();
        if !tls.ca_file.as_ref().is_some_and(rel) && !tls.client_cert.as_ref().is_some_and(|(c, k)| rel(c) || rel(k)) {
            return None;
        }
        let fix = |p: &PathBuf| if p.is_relative() { dir.join(p) } else { p.clone() };
        let mut v = self.clone();
        if let Some(HealthCheck { target: Target::Http { tls: Some(t), .. }, .. }) = &mut v.health_check {
            t.ca_file = t.ca_file.as_ref().map(fix);
            t.client_cert = t.client_cert.as_ref().map(|(c, k)| (fix(c), fix(k)));
        }
        Some(v)
    }

    /// Validates and fills defaults; errors go to `d` with their field paths.
    pub(crate) fn from_spec(name: &str, spec: &VirtualIPSpec, d: &mut Diag) -> Option<VirtualIp> {
        let before = d.errors.len();
        let mut addresses = Vec::new();
        if spec.addresses.is_empty() {
            d.err("spec.addresses", "must list at least one address");
        }
        for (i, a) in spec.addresses.iter().enumerate() {
            match parse_host_address(a) {
                Ok(ip) if addresses.contains(&ip) => {
                    d.err(format!("spec.addresses[{i}]"), format!("{ip} is listed twice"))
                }
                Ok(ip) => addresses.push(ip),
                Err(e) => d.err(format!("spec.addresses[{i}]"), e),
            }
        }
        if let Some(s) = &spec.node_selector {
            for (p, m) in s.validate() {
                d.err(format!("spec.nodeSelector.{p}"), m);
            }
        }
        let virtual_routers = spec.virtual_routers.as_ref().map(|list| {
            if list.is_empty() {
                d.err("spec.virtualRouters", "must list at least one localASN (or be left out for all)");
            }
            list.iter()
                .enumerate()
                .filter_map(|(i, v)| d.range(&format!("spec.virtualRouters[{i}]"), *v, 1, u32::MAX as i64))
                .map(|v| v as u32)
                .collect()
        });
        let peers = spec.peers.as_ref().map(|list| {
            if list.is_empty() {
                d.err("spec.peers", "must list at least one neighbor address (or be left out for all)");
            }
            list.iter()
                .enumerate()
                .filter_map(|(i, p)| parse_peer_address(p).map_err(|e| d.err(format!("spec.peers[{i}]"), e)).ok())
                .collect()
        });
        let (mut communities, mut large_communities, mut local_preference, mut med) = Default::default();
        if let Some(a) = &spec.advertised_path_attributes {
            let p = "spec.advertisedPathAttributes";
            if let Some(c) = &a.communities
                && let Some((s, l)) = parse_communities(d, &format!("{p}.communities"), c)
            {
                (communities, large_communities) = (s, l);
            }
            local_preference = a
                .local_preference
                .and_then(|v| d.range(&format!("{p}.localPreference"), v, 0, u32::MAX as i64))
                .map(|v| v as u32);
            med = a.med.and_then(|v| d.range(&format!("{p}.med"), v, 0, u32::MAX as i64)).map(|v| v as u32);
        }
        let health_check = spec.health_check.as_ref().and_then(|h| parse_check(d, "spec.healthCheck", h));
        let local_interface = spec.local_interface.as_ref().and_then(|l| {
            let p = "spec.localInterface";
            if l.name.is_empty() || l.name.len() > 15 || l.name.contains(['/', ' ']) {
                d.err(format!("{p}.name"), format!("{:?} is not an interface name (1 to 15 characters)", l.name));
            }
            let manage = match l.manage.as_deref() {
                None | Some("WhileHealthy") => Manage::WhileHealthy,
                Some("Always") => Manage::Always,
                Some("Never") => Manage::Never,
                Some(other) => {
                    d.err(format!("{p}.manage"), format!("{other:?} is not one of WhileHealthy, Always, Never"));
                    return None;
                }
            };
            Some(LocalInterface { name: l.name.clone(), manage })
        });
        let drain = spec
            .graceful_shutdown
            .as_ref()
            .and_then(|g| g.drain_seconds)
            .map_or(Some(0), |v| d.range("spec.gracefulShutdown.drainSeconds", v, 0, 300))
            .map(|v| Duration::from_secs(v as u64));
        if d.errors.len() > before {
            return None;
        }
        Some(VirtualIp {
            name: name.to_string(),
            addresses,
            node_selector: spec.node_selector.clone(),
            virtual_routers,
            peers,
            communities,
            large_communities,
            local_preference,
            med,
            health_check,
            local_interface,
            drain: drain?,
        })
    }
}

/// An address, with an optional /32 (IPv4) or /128 (IPv6).
fn parse_host_address(s: &str) -> Result<IpAddr, String> {
    let (addr, len) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
    let ip: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an IP address"))?;
    let full = if ip.is_ipv4() { "32" } else { "128" };
    match len {
        Some(l) if l != full => Err(format!("{s:?}: a VirtualIP is one address, announced as /{full}")),
        _ if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() => {
            Err(format!("{s:?}: an unspecified, multicast or loopback address cannot be announced"))
        }
        _ => Ok(ip),
    }
}

/// `host:port` (`[v6]:port` for IPv6).
fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("{s:?}: expected host:port, e.g. 127.0.0.1:6443 or [::1]:6443");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn parse_check(d: &mut Diag, p: &str, h: &HealthCheckSpec) -> Option<HealthCheck> {
    let before = d.errors.len();
    let kind = h.kind.as_str();
    let target = match kind {
        "HTTPS" | "HTTP" => {
            if h.address.is_some() {
                d.err(format!("{p}.address"), format!("is for type TCP; type {kind} takes url"));
            }
            if kind == "HTTP" && h.tls.is_some() {
                d.err(format!("{p}.tls"), "is for type HTTPS");
            }
            match &h.url {
                None => {
                    d.err(
                        format!("{p}.url"),
                        format!("is required for type {kind}, e.g. https://127.0.0.1:6443/readyz"),
                    );
                    None
                }
                Some(url) => parse_url(d, p, url, kind, h.tls.as_ref()),
            }
        }
        "TCP" => {
            if h.url.is_some() {
                d.err(format!("{p}.url"), "is for types HTTPS and HTTP; type TCP takes address");
            }
            for (set, field) in [(h.tls.is_some(), "tls"), (h.expected_status.is_some(), "expectedStatus")] {
                if set {
                    d.err(format!("{p}.{field}"), "is for types HTTPS and HTTP");
                }
            }
            match &h.address {
                None => {
                    d.err(format!("{p}.address"), "is required for type TCP, e.g. 127.0.0.1:6443");
                    None
                }
                Some(a) => match parse_host_port(a) {
                    Ok((host, port)) => Some(Target::Tcp { host, port }),
                    Err(e) => {
                        d.err(format!("{p}.address"), e);
                        None
                    }
                },
            }
        }
        other => {
            d.err(format!("{p}.type"), format!("{other:?} is not one of HTTPS, HTTP, TCP"));
            None
        }
    };
    let expected_status = h.expected_status.map_or(Some(200), |v| d.range(&format!("{p}.expectedStatus"), v, 100, 599));
    let ms = |d: &mut Diag, field: &str, v: Option<i64>, default: i64, lo: i64| {
        v.map_or(Some(default), |v| d.range(&format!("{p}.{field}"), v, lo, 3_600_000))
            .map(|v| Duration::from_millis(v as u64))
    };
    let interval = ms(d, "intervalMilliseconds", h.interval_milliseconds, 1000, 50);
    let timeout = ms(d, "timeoutMilliseconds", h.timeout_milliseconds, 800, 10);
    if let (Some(i), Some(t)) = (interval, timeout)
        && t > i
    {
        d.err(
            format!("{p}.timeoutMilliseconds"),
            format!(
                "{} ms is longer than intervalMilliseconds ({} ms): checks would overlap",
                t.as_millis(),
                i.as_millis()
            ),
        );
    }
    let rise = h.rise.map_or(Some(2), |v| d.range(&format!("{p}.rise"), v, 1, 100));
    let fall = h.fall.map_or(Some(3), |v| d.range(&format!("{p}.fall"), v, 1, 100));
    let grace = h.startup_grace_seconds.map_or(Some(0), |v| d.range(&format!("{p}.startupGraceSeconds"), v, 0, 3600));
    if d.errors.len() > before {
        return None;
    }
    Some(HealthCheck {
        target: target?,
        expected_status: expected_status? as u16,
        policy: Policy {
            interval: interval?,
            timeout: timeout?,
            rise: rise? as u32,
            fall: fall? as u32,
            startup_grace: Duration::from_secs(grace? as u64),
        },
    })
}

fn parse_url(d: &mut Diag, p: &str, url: &str, kind: &str, tls: Option<&TlsSpec>) -> Option<Target> {
    let scheme = kind.to_ascii_lowercase();
    let uri: hyper::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => {
            d.err(format!("{p}.url"), format!("{url:?} is not a URL: {e}"));
            return None;
        }
    };
    if uri.scheme_str() != Some(scheme.as_str()) {
        d.err(format!("{p}.url"), format!("{url:?}: type {kind} needs a {scheme}:// URL"));
        return None;
    }
    let Some(host) = uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string()) else {
        d.err(format!("{p}.url"), format!("{url:?} has no host"));
        return None;
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        d.err(format!("{p}.url"), format!("{url:?}: credentials in the URL are not supported; use tls.clientCertFile"));
        return None;
    }
    let port = uri.port_u16().unwrap_or(if kind == "HTTPS" { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/".to_string(), |pq| pq.as_str().to_string());
    let tls = (kind == "HTTPS").then(|| parse_tls(d, &format!("{p}.tls"), tls.cloned().unwrap_or_default(), &host));
    Some(Target::Http { url: url.to_string(), host, port, path, tls })
}

fn parse_tls(d: &mut Diag, p: &str, t: TlsSpec, host: &str) -> Tls {
    let file = |d: &mut Diag, field: &str, v: Option<String>| match v {
        Some(f) if f.is_empty() => {
            d.err(format!("{p}.{field}"), "must name a file");
            None
        }
        other => other.map(PathBuf::from),
    };
    let ca_file = file(d, "caFile", t.ca_file);
    let insecure = t.insecure_skip_verify.unwrap_or(false);
    if insecure && ca_file.is_some() {
        d.err(
            format!("{p}.insecureSkipVerify"),
            "cannot be combined with caFile: either verify against the CA or not at all",
        );
    }
    if !insecure && ca_file.is_none() {
        d.err(
            format!("{p}.caFile"),
            "is required to verify the server (e.g. /etc/kubernetes/pki/ca.crt), unless insecureSkipVerify: true",
        );
    }
    let server_name = match t.server_name {
        Some(n) if n.is_empty() => {
            d.err(format!("{p}.serverName"), "must not be empty (leave it out for the URL's host)");
            String::new()
        }
        Some(n) => n,
        None => host.to_string(),
    };
    if rustls_pki_types::ServerName::try_from(server_name.as_str()).is_err() && !server_name.is_empty() {
        d.err(format!("{p}.serverName"), format!("{server_name:?} is not a DNS name or an IP address"));
    }
    let cert = file(d, "clientCertFile", t.client_cert_file);
    let key = file(d, "clientKeyFile", t.client_key_file);
    let client_cert = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => {
            d.err(format!("{p}.clientKeyFile"), "is required with clientCertFile");
            None
        }
        (None, Some(_)) => {
            d.err(format!("{p}.clientCertFile"), "is required with clientKeyFile");
            None
        }
    };
    Tls { ca_file, server_name, insecure_skip_verify: insecure, client_cert }
}

#[cfg(test)]
mod tests;
