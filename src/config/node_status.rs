//! `kbgp.io/v1alpha1` `BGPNodeStatus`: one per node, written by that node's kbgp, owned by
//! the Node (deleted with it). `kubectl get bgpnodestatus` shows every node's sessions at a
//! glance; `-o yaml` shows each peer.
//!
//! Writes are rare by construction ([`Pacer`]): only when the content changes (no uptime
//! counters, no "last seen" stamps in it), at most once per interval per node with jitter,
//! so a cluster-wide event (a leaf reboots) spreads the writes of thousands of nodes out.

use crate::admin::api;
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

/// The status of a node from its peers as the admin API reports them. Only what changes with
/// a state change is in it, so an unchanged node produces an identical document.
pub fn node_status(policy: Option<String>, config_error: Option<String>, peers: &[api::Peer]) -> NodeStatus {
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
        let s = node_status(
            Some("rack0".into()),
            None,
            &[peer("10.0.5.1", "Established", 2), peer("10.0.5.9", "Active", 0)],
        );
        assert_eq!(s.peers_up, "1/2");
        assert_eq!((s.routes_advertised, s.routes_received), (2, 6));
        assert_eq!(s.last_error.as_deref(), Some("10.0.5.9: TCP connect failed: timed out after 5 s"));
        assert_eq!(s.peers[0].since, "2026-11-30T00:53:20Z");
        assert_eq!(s.peers[0].last_error, None);
        // Uptimes and message counters move all the time; they are not in the document.
        let mut p = peer("10.0.5.1", "Established", 2);
        p.uptime_seconds = Some(999);
        p.messages.received = 77;
        assert_eq!(node_status(None, None, &[p]), node_status(None, None, &[peer("10.0.5.1", "Established", 2)]));
    }

    #[test]
    fn writes_are_paced() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::from_secs(30), 42);
        let a = node_status(None, None, &[peer("10.0.5.1", "Active", 0)]);
        let b = node_status(None, None, &[peer("10.0.5.1", "Established", 2)]);
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
        let a = node_status(None, None, &[peer("10.0.5.1", "Established", 2)]);
        let b = node_status(None, None, &[peer("10.0.5.1", "Established", 3)]);
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
