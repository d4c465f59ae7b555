//! `kbgp check --diff` and `kbgp diff -f`: what another configuration would change at each
//! peer (routes added, withdrawn, or sent with other attributes; sessions that would restart),
//! without applying anything.
//!
//! Pure: both Worlds are planned from scratch for the node, the way the daemon would plan
//! them, and the two plans are compared peer by peer.

use super::{PeerKey, PlanError, Planner, RouteUpdate};
use crate::config::World;
use crate::rib::{AdvertAttrs, Advertisement};
use crate::session::PeerSettings;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What happens to one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SessionChange {
    /// The session stays as it is.
    Kept,
    /// A new peer: a session would be opened.
    New,
    /// The peer is no longer configured: its session would be closed and its routes go.
    Removed,
    /// The session would restart (its settings change), e.g. "hold time 90 -> 9".
    Reset { because: Vec<String> },
}

/// A route that would be sent with other attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    pub prefix: IpNet,
    pub before: String,
    pub after: String,
}

/// A route with its attributes, as an operator reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub prefix: IpNet,
    pub attributes: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerDiff {
    pub address: IpAddr,
    pub vrouter: u32,
    pub session: SessionChange,
    pub added: Vec<Route>,
    pub withdrawn: Vec<IpNet>,
    pub changed: Vec<Changed>,
}

impl PeerDiff {
    pub fn is_empty(&self) -> bool {
        self.session == SessionChange::Kept
            && self.added.is_empty()
            && self.withdrawn.is_empty()
            && self.changed.is_empty()
    }
}

/// The difference for one node, peers in (virtual router, address) order; unchanged peers
/// are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    pub node: String,
    pub policy_before: Option<String>,
    pub policy_after: Option<String>,
    pub peers: Vec<PeerDiff>,
    /// What the new configuration's plan says (notes that are not in the current one).
    pub notes: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.policy_before == self.policy_after
    }
}

/// Attributes in one line: `communities 65000:100 no-export, local-pref 200`; `-` for none.
pub fn describe(a: &AdvertAttrs) -> String {
    let mut parts = Vec::new();
    if !a.communities.is_empty() || !a.large_communities.is_empty() {
        let c: Vec<String> = a
            .communities
            .iter()
            .map(|c| c.to_string())
            .chain(a.large_communities.iter().map(|c| c.to_string()))
            .collect();
        parts.push(format!("communities {}", c.join(" ")));
    }
    if let Some(lp) = a.local_pref {
        parts.push(format!("local-pref {lp}"));
    }
    if let Some(m) = a.med {
        parts.push(format!("med {m}"));
    }
    if parts.is_empty() { "-".into() } else { parts.join(", ") }
}

/// The settings that differ, each as `what before -> after`.
fn changed_settings(a: &PeerSettings, b: &PeerSettings) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |what: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{what} {x} -> {y}"));
        }
    };
    let (s, t) = (&a.session, &b.session);
    cmp("local AS", s.local_as.to_string(), t.local_as.to_string());
    cmp("peer AS", s.peer_as.to_string(), t.peer_as.to_string());
    cmp("router id", s.router_id.to_string(), t.router_id.to_string());
    cmp("hold time", s.hold_time.to_string(), t.hold_time.to_string());
    cmp("keepalive", s.keepalive.to_string(), t.keepalive.to_string());
    cmp("families", format!("{:?}", s.families), format!("{:?}", t.families));
    cmp("graceful restart", format!("{:?}", s.graceful_restart), format!("{:?}", t.graceful_restart));
    cmp("long-lived stale time", format!("{:?}", s.long_lived_stale_time), format!("{:?}", t.long_lived_stale_time));
    cmp("passive", s.passive.to_string(), t.passive.to_string());
    cmp("port", a.port.to_string(), b.port.to_string());
    cmp("TTL", format!("{:?}", a.ttl), format!("{:?}", b.ttl));
    cmp("minimum TTL", format!("{:?}", a.min_ttl), format!("{:?}", b.min_ttl));
    cmp("local address", format!("{:?}", a.local_address), format!("{:?}", b.local_address));
    cmp(
        "BFD",
        format!("{:?}", a.bfd.map(|b| (b.multihop, b.min_ttl))),
        format!("{:?}", b.bfd.map(|b| (b.multihop, b.min_ttl))),
    );
    // Passwords are compared, never shown.
    if a.auth != b.auth {
        out.push("TCP MD5 password changes".into());
    }
    if out.is_empty() {
        // Something the operator does not set directly (timers of retries, limits).
        out.push("session settings change".into());
    }
    out
}

type Planned = (Arc<super::Plan>, BTreeMap<PeerKey, (PeerSettings, Vec<Advertisement>)>);

fn planned(node: &str, w: Arc<World>) -> Result<Planned, PlanError> {
    let (plan, up) = Planner::new(node).update(w)?;
    let groups = match up {
        Some(RouteUpdate::Full(g)) => g,
        _ => Vec::new(),
    };
    let mut out = BTreeMap::new();
    for (_, p) in plan.peers() {
        let routes = groups.iter().find(|(g, _)| *g == p.group).map(|(_, r)| r.clone()).unwrap_or_default();
        out.insert(p.key, (p.settings.clone(), routes));
    }
    Ok((plan, out))
}

/// What changes at `node`'s peers when `new` replaces `old`.
pub fn diff(node: &str, old: Arc<World>, new: Arc<World>) -> Result<Diff, PlanError> {
    let (old_plan, before) = planned(node, old)?;
    let (new_plan, after) = planned(node, new)?;
    let mut d = Diff {
        node: node.to_string(),
        policy_before: old_plan.policy_name(),
        policy_after: new_plan.policy_name(),
        notes: new_plan.notes.iter().filter(|n| !old_plan.notes.contains(n)).cloned().collect(),
        ..Default::default()
    };
    let keys: std::collections::BTreeSet<PeerKey> = before.keys().chain(after.keys()).copied().collect();
    let empty = Vec::new();
    for k in keys {
        let (b, a) = (before.get(&k), after.get(&k));
        let session = match (b, a) {
            (None, _) => SessionChange::New,
            (_, None) => SessionChange::Removed,
            (Some((x, _)), Some((y, _))) if !x.same_session(y) => {
                SessionChange::Reset { because: changed_settings(x, y) }
            }
            _ => SessionChange::Kept,
        };
        let old_routes: BTreeMap<IpNet, &AdvertAttrs> =
            b.map_or(&empty, |(_, r)| r).iter().map(|r| (r.prefix, &*r.attrs)).collect();
        let new_routes: BTreeMap<IpNet, &AdvertAttrs> =
            a.map_or(&empty, |(_, r)| r).iter().map(|r| (r.prefix, &*r.attrs)).collect();
        let mut p = PeerDiff {
            address: k.address,
            vrouter: k.local_asn,
            session,
            added: Vec::new(),
            withdrawn: Vec::new(),
            changed: Vec::new(),
        };
        for (prefix, attrs) in &new_routes {
            match old_routes.get(prefix) {
                None => p.added.push(Route { prefix: *prefix, attributes: describe(attrs) }),
                Some(old) if old != attrs => {
                    p.changed.push(Changed { prefix: *prefix, before: describe(old), after: describe(attrs) })
                }
                Some(_) => {}
            }
        }
        p.withdrawn = old_routes.keys().filter(|x| !new_routes.contains_key(x)).copied().collect();
        if !p.is_empty() {
            d.peers.push(p);
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {rack: rack0}}\nspec: {podCIDRs: [10.1.0.0/24]}\nstatus: {addresses: [{type: InternalIP, address: 10.0.5.11}]}\n";

    fn world(docs: &[&str]) -> Arc<World> {
        Arc::new(load_str(&docs.join("\n---\n"), "t").unwrap().world)
    }

    fn svc(name: &str, ip: &str, label: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default, labels: {{advertise-bgp: \"{label}\"}}}}\nspec: {{type: LoadBalancer}}\nstatus: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"
        )
    }

    #[test]
    fn routes_attributes_and_sessions_that_change() {
        let policy = crate::test_fixtures::POLICY;
        let old = world(&[NODE, policy, &svc("a", "20.0.0.1", "true"), &svc("b", "20.0.0.2", "true")]);
        assert!(diff("n1", old.clone(), old.clone()).unwrap().is_empty(), "the same World changes nothing");

        // b loses its label, c is added, the pool's routes get a community.
        let attrs = policy.replace(
            "      peerASN: 65005\n",
            "      peerASN: 65005\n      advertisedPathAttributes: [{selectorType: CiliumLoadBalancerIPPool, communities: {standard: [\"65000:1\"]}}]\n",
        );
        let pool = "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: p}\nspec: {blocks: [{cidr: 20.0.0.0/24}]}\n";
        let old = world(&[NODE, policy, pool, &svc("a", "20.0.0.1", "true"), &svc("b", "20.0.0.2", "true")]);
        let new = world(&[
            NODE,
            &attrs,
            pool,
            &svc("a", "20.0.0.1", "true"),
            &svc("b", "20.0.0.2", "false"),
            &svc("c", "20.0.0.3", "true"),
        ]);
        let d = diff("n1", old.clone(), new).unwrap();
        assert_eq!(d.peers.len(), 1);
        let p = &d.peers[0];
        assert_eq!(p.session, SessionChange::Kept, "path attributes change routes, not the session");
        assert_eq!(
            p.added,
            [Route { prefix: "20.0.0.3/32".parse().unwrap(), attributes: "communities 65000:1".into() }]
        );
        assert_eq!(p.withdrawn, ["20.0.0.2/32".parse::<IpNet>().unwrap()]);
        assert_eq!(
            p.changed,
            [Changed {
                prefix: "20.0.0.1/32".parse().unwrap(),
                before: "-".into(),
                after: "communities 65000:1".into()
            }]
        );

        // A hold time change restarts the session, and says so.
        let hold = policy.replace(
            "      peerASN: 65005\n",
            "      peerASN: 65005\n      holdTimeSeconds: 9\n      keepAliveTimeSeconds: 3\n",
        );
        let d = diff(
            "n1",
            old.clone(),
            world(&[NODE, &hold, pool, &svc("a", "20.0.0.1", "true"), &svc("b", "20.0.0.2", "true")]),
        )
        .unwrap();
        assert_eq!(
            d.peers[0].session,
            SessionChange::Reset { because: vec!["hold time 90 -> 9".into(), "keepalive 30 -> 3".into()] }
        );
        assert!(d.peers[0].added.is_empty() && d.peers[0].withdrawn.is_empty());

        // Another neighbor: one session closed with its routes, one opened.
        let moved = policy.replace("10.0.5.1/24", "10.0.5.2");
        let d = diff("n1", old.clone(), world(&[NODE, &moved, pool, &svc("a", "20.0.0.1", "true")])).unwrap();
        let kinds: Vec<(String, &SessionChange, usize, usize)> =
            d.peers.iter().map(|p| (p.address.to_string(), &p.session, p.added.len(), p.withdrawn.len())).collect();
        assert_eq!(
            kinds,
            [("10.0.5.1".into(), &SessionChange::Removed, 0, 3), ("10.0.5.2".into(), &SessionChange::New, 2, 0)]
        );
    }
}
