//! `status.conditions` of the configuration kinds: the shape (Kubernetes' `metav1.Condition`)
//! and which objects carry them. What they say is worked out in `plan/conditions.rs`; the
//! LB IPAM leader writes them (`ipam/controller.rs`), as the cluster's only status writer.
//!
//! | Kind | Condition types |
//! |---|---|
//! | `kbgp.io` `BGPPeeringPolicy` | `Accepted`, `Conflicting` |
//! | `kbgp.io` `VirtualIP` | `Accepted` |
//! | `cilium.io` `CiliumBGPClusterConfig` | `cilium.io/NoMatchingNode`, `cilium.io/MissingPeerConfigs`, `cilium.io/ConflictingClusterConfig` (Cilium's own) |
//! | `cilium.io` `CiliumBGPPeerConfig` | `cilium.io/MissingAuthSecret` (Cilium's own) |
//!
//! Cilium's `CiliumBGPPeeringPolicy` has no status in Cilium's CRD; MetalLB's kinds have no
//! conditions (its IPAddressPool's counts are written with the other pools).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One condition, as `metav1.Condition`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted`, `Conflicting` (kbgp's kinds), or Cilium's `cilium.io/...` types on Cilium's.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    /// One CamelCase word saying why.
    pub reason: String,
    /// The details, for people.
    #[serde(default)]
    pub message: String,
    /// The `metadata.generation` this was worked out for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When `status` last changed (RFC 3339).
    #[serde(default)]
    pub last_transition_time: String,
}

impl Condition {
    /// A condition without its transition time (the writer sets it).
    pub fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Condition {
        Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
            ..Condition::default()
        }
    }

    /// Whether `other` says the same (all but the transition time).
    pub fn same(&self, other: &Condition) -> bool {
        (&self.type_, &self.status, &self.reason, &self.message, self.observed_generation)
            == (&other.type_, &other.status, &other.reason, &other.message, other.observed_generation)
    }
}

/// The `status` of `BGPPeeringPolicy` and `VirtualIP`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConditionsStatus {
    /// `Accepted` (the newest version is valid and in effect) and, on peering policies,
    /// `Conflicting` (it contradicts another object on some node). Written by the LB IPAM
    /// leader.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The kinds that carry conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Policy,
    VirtualIp,
    ClusterConfig,
    PeerConfig,
}

impl Subject {
    pub const ALL: [Subject; 4] = [Subject::Policy, Subject::VirtualIp, Subject::ClusterConfig, Subject::PeerConfig];

    /// The condition types kbgp owns on this kind; others already there are kept.
    pub fn types(self) -> &'static [&'static str] {
        match self {
            Subject::Policy => &[ACCEPTED, CONFLICTING],
            Subject::VirtualIp => &[ACCEPTED],
            Subject::ClusterConfig => &[NO_MATCHING_NODE, MISSING_PEER_CONFIGS, CONFLICTING_CLUSTER_CONFIG],
            Subject::PeerConfig => &[MISSING_AUTH_SECRET],
        }
    }

    /// The kind's name, as messages and logs say it.
    pub fn kind_name(self) -> &'static str {
        match self {
            Subject::Policy => "BGPPeeringPolicy",
            Subject::VirtualIp => "VirtualIP",
            Subject::ClusterConfig => "CiliumBGPClusterConfig",
            Subject::PeerConfig => "CiliumBGPPeerConfig",
        }
    }
}

pub const ACCEPTED: &str = "Accepted";
pub const CONFLICTING: &str = "Conflicting";
pub const NO_MATCHING_NODE: &str = "cilium.io/NoMatchingNode";
pub const MISSING_PEER_CONFIGS: &str = "cilium.io/MissingPeerConfigs";
pub const CONFLICTING_CLUSTER_CONFIG: &str = "cilium.io/ConflictingClusterConfig";
pub const MISSING_AUTH_SECRET: &str = "cilium.io/MissingAuthSecret";

/// What the API server says of one object beyond its model: its generation, the conditions
/// it carries, and, when its newest version did not validate, why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Tells a recreated object of the same name from the old one.
    pub uid: Option<String>,
    pub generation: Option<i64>,
    pub conditions: Vec<Condition>,
    pub error: Option<String>,
}

/// Per kind and name.
pub type ObservedObjects = std::collections::BTreeMap<(Subject, String), Observed>;

/// The conditions of `subject` named `name` to write, given those it has (`before`): kbgp's
/// types from `desired`, each keeping its transition time while its status is unchanged (a
/// new one gets `now`), other writers' types kept as they are.
pub fn merged(subject: Subject, before: &[Condition], desired: &[Condition], now: &str) -> Vec<Condition> {
    let mut out: Vec<Condition> =
        before.iter().filter(|c| !subject.types().contains(&c.type_.as_str())).cloned().collect();
    for d in desired {
        let mut c = d.clone();
        c.last_transition_time = match before.iter().find(|b| b.type_ == d.type_) {
            Some(b) if b.status == d.status && !b.last_transition_time.is_empty() => b.last_transition_time.clone(),
            _ => now.to_string(),
        };
        out.push(c);
    }
    out
}

/// Whether two lists say the same, transition times aside.
pub fn same(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| x.same(y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_times_move_only_with_the_status() {
        let t0 = "2026-12-01T00:00:00Z";
        let mut first = Condition::new(ACCEPTED, true, "Valid", "selects 2 nodes");
        first.last_transition_time = t0.into();
        let other = Condition { type_: "example.com/Other".into(), ..first.clone() };
        let before = vec![first.clone(), other.clone()];
        // Same status, new message: the time stays.
        let out =
            merged(Subject::Policy, &before, &[Condition::new(ACCEPTED, true, "Valid", "selects 3 nodes")], "later");
        assert_eq!(out.len(), 2, "another writer's condition is kept");
        assert_eq!(out[0], other);
        assert_eq!((out[1].message.as_str(), out[1].last_transition_time.as_str()), ("selects 3 nodes", t0));
        // Status changes: now.
        let out = merged(Subject::Policy, &before, &[Condition::new(ACCEPTED, false, "Invalid", "x")], "later");
        assert_eq!(out[1].last_transition_time, "later");
        assert!(same(&out, &[other.clone(), Condition::new(ACCEPTED, false, "Invalid", "x")]));
        assert!(!same(&out, &[other, Condition::new(ACCEPTED, true, "Invalid", "x")]));
    }
}
