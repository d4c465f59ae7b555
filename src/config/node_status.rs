//! `kbgp.io/v1alpha1` `BGPNodeStatus`: one per node, written by that node's kbgp, owned by
//! the Node (deleted with it). `kubectl get bgpnodestatus` shows every node's sessions at a
//! glance; `-o yaml` shows each peer.
//!
//! Writes are rare by construction ([`Pacer`]): only when the content changes (no uptime
//! counters, no "last seen" stamps in it), at most once per interval per node with jitter,
//! so a cluster-wide event (a leaf reboots) spreads the writes of thousands of nodes out.

use crate::admin::api;
use crate::plan::Plan;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Which node this is about (also the object's name).
// kube's printcolumn(...) entries repeat the same keys by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kbgp.io",
    version = "v1alpha1",
    kind = "BGPNodeStatus",
    plural = "bgpnodestatuses",
    shortname = "bgpns",
    category = "kbgp",
    status = "NodeStatus",
    printcolumn(name = "Policy", type_ = "string", json_path = ".status.policy"),
    printcolumn(name = "Peers Up", type_ = "string", json_path = ".status.peersUp"),
    printcolumn(name = "Advertised", type_ = "integer", json_path = ".status.routesAdvertised"),
    printcolumn(name = "Received", type_ = "integer", json_path = ".status.routesReceived"),
    printcolumn(name = "Last Error", type_ = "string", json_path = ".status.lastError"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    doc = "What kbgp on one node does: its sessions, routes and last error. Written by that node's kbgp."
)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatusSpec {
    /// The Node this status is about.
    pub node_name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The peering policy selecting the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// `established/total`, e.g. `2/2`.
    #[serde(default)]
    pub peers_up: String,
    #[serde(default)]
    pub routes_advertised: u64,
    #[serde(default)]
    pub routes_received: u64,
    /// The first peer's error, prefixed by its address; empty when every session is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Set while the newest configuration cannot be planned and the last good plan runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    #[serde(default)]
    pub kbgp_version: String,
    #[serde(default)]
    pub peers: Vec<PeerStatus>,
    /// The same sessions in the shape of Cilium's `CiliumBGPNodeConfig` status, so that tools
    /// written for Cilium's BGP v2 read them unchanged: one entry per virtual router (a Cilium
    /// `bgpInstances[]` entry; other APIs' are named `AS<localASN>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub bgp_instances: Vec<InstanceStatus>,
}

/// Cilium's `CiliumBGPNodeInstanceStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    /// The instance's name (Cilium v2), else `AS<localASN>`.
    pub name: String,
    #[serde(rename = "localASN")]
    pub local_asn: u32,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub peers: Vec<InstancePeerStatus>,
}

/// Cilium's `CiliumBGPNodePeerStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstancePeerStatus {
    /// The peer's name (Cilium v2 `peers[].name`, MetalLB's BGPPeer), else its address.
    pub name: String,
    pub peer_address: String,
    /// The configured AS, or the one learned from the peer's OPEN when configured as 0.
    #[serde(rename = "peerASN")]
    pub peer_asn: u32,
    /// `idle`, `connect`, `active`, `open_sent`, `open_confirm` or `established`, as Cilium
    /// writes them.
    pub peering_state: String,
    /// The hold time and keepalive agreed with the peer (Established only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timers: Option<TimersState>,
    /// When the session came up (RFC 3339), while it is up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established_time: Option<String>,
    #[serde(default)]
    pub route_count: Vec<RouteCount>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimersState {
    pub applied_hold_time_seconds: u16,
    pub applied_keepalive_seconds: u16,
}

/// Routes of one configured family (Cilium's `BGPFamilyRouteCount`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteCount {
    /// `ipv4` or `ipv6`.
    pub afi: String,
    /// `unicast`.
    pub safi: String,
    pub received: u64,
    pub advertised: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    pub address: String,
    pub vrouter: u32,
    pub peer_as: u32,
    pub state: String,
    /// When the state last changed (RFC 3339).
    pub since: String,
    pub advertised: u64,
    pub received: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

fn rfc3339(unix: u64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(unix as i64).map(|t| t.to_string()).unwrap_or_default()
}

/// Cilium's spelling of an RFC 4271 state.
fn cilium_state(s: &str) -> String {
    match s {
        "OpenSent" => "open_sent".into(),
        "OpenConfirm" => "open_confirm".into(),
        s => s.to_ascii_lowercase(),
    }
}

/// The per-instance view of `peers` (see [`NodeStatus::bgp_instances`]), named from `plan`.
fn instances(plan: &Plan, peers: &[api::Peer]) -> Vec<InstanceStatus> {
    let vrouters = plan.policy.as_ref().map(|p| p.virtual_routers.as_slice()).unwrap_or_default();
    let mut out: Vec<InstanceStatus> = Vec::new();
    for p in peers {
        let vr = vrouters.iter().find(|v| v.local_asn == p.vrouter);
        let instance = vr.and_then(|v| v.name.clone()).unwrap_or_else(|| format!("AS{}", p.vrouter));
        let name = vr
            .and_then(|v| v.neighbors.iter().find(|n| n.address == p.address))
            .and_then(|n| n.name.clone())
            .unwrap_or_else(|| p.address.to_string());
        let up = p.state == "Established";
        let count = |ipv4: bool| {
            let pick = |f: &api::PerFamily| (if ipv4 { f.ipv4 } else { f.ipv6 }) as u64;
            RouteCount {
                afi: if ipv4 { "ipv4" } else { "ipv6" }.into(),
                safi: "unicast".into(),
                received: pick(&p.received),
                advertised: pick(&p.advertised),
            }
        };
        let peer = InstancePeerStatus {
            name,
            peer_address: p.address.to_string(),
            peer_asn: p.peer_as,
            peering_state: cilium_state(&p.state),
            timers: match (up, p.hold_time, p.keepalive) {
                (true, Some(h), Some(k)) => {
                    Some(TimersState { applied_hold_time_seconds: h, applied_keepalive_seconds: k })
                }
                _ => None,
            },
            established_time: up.then(|| rfc3339(p.state_since)),
            route_count: p
                .configured_families
                .iter()
                .filter_map(|f| match f.as_str() {
                    "ipv4" => Some(count(true)),
                    "ipv6" => Some(count(false)),
                    _ => None,
                })
                .collect(),
        };
        match out.iter_mut().find(|i| i.name == instance) {
            Some(i) => i.peers.push(peer),
            None => out.push(InstanceStatus { name: instance, local_asn: p.vrouter, peers: vec![peer] }),
        }
    }
    out
}

/// The status of a node from its plan and its peers as the admin API reports them. Only what
/// changes with a state change is in it, so an unchanged node produces an identical document
/// (but see [`steady`]).
pub fn node_status(plan: &Plan, config_error: Option<String>, peers: &[api::Peer]) -> NodeStatus {
    let policy = plan.policy_name();
    let up = peers.iter().filter(|p| p.state == "Established").count();
    let error_of = |p: &api::Peer| -> Option<String> {
        if p.state == "Established" {
            return None;
        }
        Some(match &p.last_error {
            Some(e) => e.text.clone(),
            None => format!("{} (no error yet)", p.state),
        })
    };
    NodeStatus {
        policy,
        peers_up: format!("{up}/{}", peers.len()),
        routes_advertised: peers.iter().map(|p| p.advertised.total() as u64).sum(),
        routes_received: peers.iter().map(|p| p.received.total() as u64).sum(),
        last_error: peers.iter().find_map(|p| error_of(p).map(|e| format!("{}: {e}", p.address))),
        config_error,
        kbgp_version: env!("CARGO_PKG_VERSION").into(),
        peers: peers
            .iter()
            .map(|p| PeerStatus {
                address: p.address.to_string(),
                vrouter: p.vrouter,
                peer_as: p.peer_as,
                state: p.state.clone(),
                since: rfc3339(p.state_since),
                advertised: p.advertised.total() as u64,
                received: p.received.total() as u64,
                last_error: error_of(p),
            })
            .collect(),
        bgp_instances: instances(plan, peers),
    }
}

/// Keeps the times of `previous` where `current` differs from it by a second or less for a
/// peer in the same state: a time of change is computed as "now minus how long ago", which
/// moves by a second between two readings depending on where in the second each falls, and
/// would otherwise rewrite an unchanged node's status.
pub fn steady(previous: &NodeStatus, current: &mut NodeStatus) {
    fn close(a: &str, b: &str) -> bool {
        let parse = |s: &str| s.parse::<k8s_openapi::jiff::Timestamp>().ok().map(|t| t.as_second());
        matches!((parse(a), parse(b)), (Some(x), Some(y)) if (x - y).abs() <= 1)
    }
    for p in &mut current.peers {
        if let Some(o) = previous.peers.iter().find(|o| o.address == p.address && o.vrouter == p.vrouter)
            && o.state == p.state
            && close(&o.since, &p.since)
        {
            p.since = o.since.clone();
        }
    }
    for i in &mut current.bgp_instances {
        let Some(oi) = previous.bgp_instances.iter().find(|o| o.name == i.name) else { continue };
        for p in &mut i.peers {
            if let Some(o) = oi.peers.iter().find(|o| o.peer_address == p.peer_address)
                && o.peering_state == p.peering_state
                && let (Some(a), Some(b)) = (&o.established_time, &p.established_time)
                && close(a, b)
            {
                p.established_time = Some(a.clone());
            }
        }
    }
}

/// Decides when to write. The first document goes at once. A changed one goes a per-node
/// random delay (up to a fifth of `interval`) after the later of: the change was seen, and
/// `interval` after the last write. So when a change reaches every node at once (a Service
/// labelled, a route reflector down), 5,000 nodes spread their writes over that window instead
/// of all writing in the same second. A failed write is tried again after the interval. Pure:
/// the caller passes the time.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    jitter: u64,
    written: Option<NodeStatus>,
    last_attempt: Option<Instant>,
    /// When the status first differed from what was written.
    changed_at: Option<Instant>,
    /// This node's delay for the next write, drawn once per write so that asking again does
    /// not move the time.
    delay: Duration,
    rng: u64,
}

impl Pacer {
    /// `seed` makes the delay differ between nodes (the node's name hashed, say).
    pub fn new(interval: Duration, seed: u64) -> Pacer {
        let jitter = interval.as_millis() as u64 / 5;
        let mut p = Pacer {
            interval,
            jitter,
            written: None,
            last_attempt: None,
            changed_at: None,
            delay: Duration::ZERO,
            rng: seed | 1,
        };
        p.delay = p.next_delay();
        p
    }

    fn next_delay(&mut self) -> Duration {
        // xorshift64: deterministic per seed, different per node.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        Duration::from_millis(if self.jitter == 0 { 0 } else { self.rng % (self.jitter + 1) })
    }

    /// When `current` should be written: `None` if it is what was last written.
    pub fn due(&mut self, current: &NodeStatus, now: Instant) -> Option<Instant> {
        if self.written.as_ref() == Some(current) {
            self.changed_at = None;
            return None;
        }
        let changed = *self.changed_at.get_or_insert(now);
        Some(match self.last_attempt {
            None => now,
            Some(t) => (t + self.interval).max(changed) + self.delay,
        })
    }

    /// Records a write attempt; `ok` when the API server took it.
    pub fn attempted(&mut self, status: &NodeStatus, ok: bool, now: Instant) {
        self.last_attempt = Some(now);
        self.delay = self.next_delay();
        if ok {
            self.written = Some(status.clone());
            self.changed_at = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::api::{LastError, Peer, PerFamily};

    fn peer(addr: &str, state: &str, adv: usize) -> Peer {
        let mut p = Peer::sample(addr, state);
        p.advertised = PerFamily { ipv4: adv, ipv6: 0 };
        p.received = PerFamily { ipv4: 3, ipv6: 0 };
        p.last_error = (state != "Established").then(|| LastError {
            at: 1,
            text: "TCP connect failed: timed out after 5 s".into(),
            hint: None,
        });
        p
    }

    #[test]
    fn a_node_in_one_document() {
        let s =
            node_status(&Plan::default(), None, &[peer("10.0.5.1", "Established", 2), peer("10.0.5.9", "Active", 0)]);
        assert_eq!(s.peers_up, "1/2");
        assert_eq!((s.routes_advertised, s.routes_received), (2, 6));
        assert_eq!(s.last_error.as_deref(), Some("10.0.5.9: TCP connect failed: timed out after 5 s"));
        assert_eq!(s.peers[0].since, "2026-11-30T00:53:20Z");
        assert_eq!(s.peers[0].last_error, None);
        // Uptimes and message counters move all the time; they are not in the document.
        let mut p = peer("10.0.5.1", "Established", 2);
        p.uptime_seconds = Some(999);
        p.messages.received = 77;
        assert_eq!(
            node_status(&Plan::default(), None, &[p]),
            node_status(&Plan::default(), None, &[peer("10.0.5.1", "Established", 2)])
        );
    }

    /// The Cilium-shaped part names instances and peers as a Cilium v2 configuration does.
    #[test]
    fn cilium_shaped_instances() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cilium-v2.yaml")).unwrap();
        let w = crate::config::load_str(&format!("{text}\n---\n{}", crate::test_fixtures::RACK0_NODE), "t").unwrap();
        let plan = crate::plan::plan("rack0-node1", &w.world).unwrap();
        let mut up = peer("10.0.5.1", "Established", 2);
        (up.hold_time, up.keepalive, up.vrouter) = (Some(9), Some(3), 65005);
        let s = node_status(&plan, None, &[up]);
        assert_eq!(s.policy.as_deref(), Some("rack0"));
        let i = &s.bgp_instances[..];
        assert_eq!((i.len(), i[0].name.as_str(), i[0].local_asn), (1, "rack0-65005", 65005));
        let p = &i[0].peers[0];
        assert_eq!(
            (p.name.as_str(), p.peer_address.as_str(), p.peering_state.as_str()),
            ("rack0-rr", "10.0.5.1", "established")
        );
        assert_eq!(p.timers, Some(TimersState { applied_hold_time_seconds: 9, applied_keepalive_seconds: 3 }));
        assert_eq!(p.established_time.as_deref(), Some("2026-11-30T00:53:20Z"));
        let counts: Vec<_> =
            p.route_count.iter().map(|c| (c.afi.as_str(), c.safi.as_str(), c.received, c.advertised)).collect();
        assert_eq!(counts, vec![("ipv4", "unicast", 3, 2), ("ipv6", "unicast", 0, 0)]);
        let text = serde_json::to_value(&s).unwrap();
        assert_eq!(text["bgpInstances"][0]["localASN"], 65005);
        assert_eq!(text["bgpInstances"][0]["peers"][0]["peerASN"], 65005);
        assert_eq!(text["bgpInstances"][0]["peers"][0]["timers"]["appliedKeepaliveSeconds"], 3);
        // A peer that is not up: no timers, no established time; a policy without names.
        let mut down = peer("10.0.5.1", "OpenSent", 0);
        down.vrouter = 65005;
        let s = node_status(&Plan::default(), None, &[down]);
        let p = &s.bgp_instances[0].peers[0];
        assert_eq!(
            (s.bgp_instances[0].name.as_str(), p.name.as_str(), p.peering_state.as_str()),
            ("AS65005", "10.0.5.1", "open_sent")
        );
        assert_eq!((p.timers.clone(), p.established_time.clone()), (None, None));
    }

    /// "Now minus how long ago" moves by a second between two readings; that alone is no
    /// change to write.
    #[test]
    fn a_time_read_a_second_apart_is_no_change() {
        let p = |since: u64| {
            let mut p = peer("10.0.5.1", "Established", 2);
            p.state_since = since;
            node_status(&Plan::default(), None, &[p])
        };
        let (before, mut now) = (p(1_796_000_000), p(1_796_000_001));
        assert_ne!(before, now);
        steady(&before, &mut now);
        assert_eq!(before, now);
        let mut later = p(1_796_000_060);
        steady(&before, &mut later);
        assert_ne!(before, later, "a session that came up again is news");
    }

    #[test]
    fn writes_are_paced() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::from_secs(30), 42);
        let a = node_status(&Plan::default(), None, &[peer("10.0.5.1", "Active", 0)]);
        let b = node_status(&Plan::default(), None, &[peer("10.0.5.1", "Established", 2)]);
        assert_eq!(p.due(&a, t0), Some(t0), "the first document goes at once");
        p.attempted(&a, true, t0);
        assert_eq!(p.due(&a, t0 + Duration::from_secs(1)), None, "unchanged: nothing to write");
        let at = p.due(&b, t0 + Duration::from_secs(1)).unwrap();
        assert!(at >= t0 + Duration::from_secs(30) && at <= t0 + Duration::from_secs(36), "{:?}", at - t0);
        p.attempted(&b, false, at);
        let again = p.due(&b, at).unwrap();
        assert!(again >= at + Duration::from_secs(30), "a failed write is retried after the interval");
        p.attempted(&b, true, again);
        assert_eq!(p.due(&b, again + Duration::from_secs(100)), None);
        // Two nodes do not pick the same moments.
        let mut q = Pacer::new(Duration::from_secs(30), 7);
        q.attempted(&a, true, t0);
        let mut p2 = Pacer::new(Duration::from_secs(30), 42);
        p2.attempted(&a, true, t0);
        let (x, y) = (q.due(&b, t0).unwrap(), p2.due(&b, t0).unwrap());
        assert_ne!(x, y);
    }

    /// A change that reaches every node at once after a quiet time: the writes spread over
    /// a fifth of the interval, and asking again does not move a node's time.
    #[test]
    fn a_change_everywhere_is_not_written_everywhere_at_once() {
        let t0 = Instant::now();
        let a = node_status(&Plan::default(), None, &[peer("10.0.5.1", "Established", 2)]);
        let b = node_status(&Plan::default(), None, &[peer("10.0.5.1", "Established", 3)]);
        let change = t0 + Duration::from_secs(600);
        let mut times = Vec::new();
        for node in 0..1000u64 {
            let mut p = Pacer::new(Duration::from_secs(30), node.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            p.attempted(&a, true, t0);
            let at = p.due(&b, change).unwrap();
            assert!(at >= change && at <= change + Duration::from_secs(6), "{:?}", at - change);
            assert_eq!(p.due(&b, change + Duration::from_millis(500)), Some(at), "the time is kept");
            times.push((at - change).as_millis() / 1000);
        }
        // Spread: each second of the 6 s window gets some writes, none gets most.
        for s in 0..6 {
            let n = times.iter().filter(|&&t| t == s).count();
            assert!((50..400).contains(&n), "{n} of 1000 writes in second {s}");
        }
    }
}
