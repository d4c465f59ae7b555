//! What the conditions of the configuration objects say (see `config/conditions.rs` for the
//! kinds and types). Pure: a World and what the API server says of the objects in, the
//! conditions out, without transition times.
//!
//! - `Accepted`: the newest version validates (`Valid`) or does not (`Invalid`, with the
//!   error, and whether an older valid version is still in effect).
//! - `Conflicting` (peering policies): some node it selects is also selected by another
//!   peering policy (`OverlappingNodeSelector`), or its configuration there contradicts
//!   MetalLB's BGPPeers (`ConflictOnNode`); those nodes keep their last valid plan. Otherwise
//!   `NoConflict`.
//! - Cilium's ClusterConfig and PeerConfig conditions, with Cilium's types and reasons.

use super::{PlanError, plan};
use crate::config::conditions::*;
use crate::config::policy::PolicyKind;
use crate::config::{Node, World};
use std::collections::BTreeSet;

/// The conditions one object should carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectConditions {
    pub subject: Subject,
    pub name: String,
    pub conditions: Vec<Condition>,
}

/// "node a", "nodes a and b", "nodes a, b and 3 more".
fn some_nodes(names: &[&str]) -> String {
    match names {
        [] => "no node".into(),
        [one] => format!("node {one}"),
        [a, b] => format!("nodes {a} and {b}"),
        [a, b, rest @ ..] => format!("nodes {a}, {b} and {} more", rest.len()),
    }
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn accepted(o: Option<&Observed>, in_effect: bool, valid: impl FnOnce() -> String) -> Condition {
    match o.and_then(|o| o.error.as_deref()) {
        Some(e) => Condition::new(
            ACCEPTED,
            false,
            "Invalid",
            format!(
                "{e}; {}",
                if in_effect { "its last valid version stays in effect" } else { "it is not in effect" }
            ),
        ),
        None => Condition::new(ACCEPTED, true, "Valid", valid()),
    }
}

/// Whether two Worlds give the same conditions whatever else differs (Services, endpoints,
/// pools): the objects conditions read are the same ones. Objects a watch did not change are
/// shared between Worlds, so this compares pointers, not contents.
pub fn same_inputs(a: &World, b: &World) -> bool {
    fn ptrs<T>(x: &[std::sync::Arc<T>], y: &[std::sync::Arc<T>]) -> bool {
        x.len() == y.len() && x.iter().zip(y).all(|(a, b)| std::sync::Arc::ptr_eq(a, b))
    }
    ptrs(&a.policies, &b.policies)
        && ptrs(&a.nodes, &b.nodes)
        && ptrs(&a.virtual_ips, &b.virtual_ips)
        && ptrs(&a.secrets, &b.secrets)
        && ptrs(&a.pools, &b.pools)
        && a.bgp_v2 == b.bgp_v2
        && a.metallb == b.metallb
        && ptrs(&a.metallb_secrets, &b.metallb_secrets)
}

/// Every object's conditions. `secrets_read`: whether `world.secrets` holds the Secrets of the
/// BGP secrets namespace (else a missing one is `Unknown`).
pub fn conditions(world: &World, observed: &ObservedObjects, secrets_read: bool) -> Vec<ObjectConditions> {
    let mut out = Vec::new();
    let names = |subject: Subject, known: Vec<&str>| -> BTreeSet<String> {
        let mut s: BTreeSet<String> = known.into_iter().map(str::to_string).collect();
        s.extend(observed.keys().filter(|(k, _)| *k == subject).map(|(_, n)| n.clone()));
        s
    };
    let generation =
        |subject: Subject, name: &str| observed.get(&(subject, name.to_string())).and_then(|o| o.generation);
    let mut push = |subject: Subject, name: String, mut conditions: Vec<Condition>| {
        let g = generation(subject, &name);
        for c in &mut conditions {
            c.observed_generation = g;
        }
        out.push(ObjectConditions { subject, name, conditions });
    };

    // Peering policies (kbgp's kind; Cilium's has no status).
    let kbgp: Vec<_> = world.policies.iter().filter(|p| p.kind == PolicyKind::Kbgp).collect();
    for name in names(Subject::Policy, kbgp.iter().map(|p| p.name.as_str()).collect()) {
        let o = observed.get(&(Subject::Policy, name.clone()));
        let Some(p) = kbgp.iter().find(|p| p.name == name) else {
            push(Subject::Policy, name, vec![accepted(o, false, String::new)]);
            continue;
        };
        let selected: Vec<&Node> = world.nodes.iter().filter(|n| p.selects(&n.labels)).map(|n| &**n).collect();
        let mut overlap: (Vec<&str>, BTreeSet<String>) = Default::default();
        let mut on_node: Vec<(&str, String)> = Vec::new();
        for n in &selected {
            let others: Vec<String> = world
                .policies_for(n)
                .iter()
                .filter(|q| q.name != p.name)
                .map(|q| format!("{} {}", q.kind.kind_name(), q.name))
                .collect();
            if !others.is_empty() {
                overlap.0.push(&n.name);
                overlap.1.extend(others);
            } else if !world.metallb.peers.is_empty()
                && let Err(PlanError::Conflict { message, .. }) = plan(&n.name, world)
            {
                on_node.push((&n.name, message));
            }
        }
        let conflicting = if !overlap.0.is_empty() {
            Condition::new(
                CONFLICTING,
                true,
                "OverlappingNodeSelector",
                format!(
                    "{} also selected by {}; a node takes one peering policy, so these keep their last valid plan",
                    some_nodes(&overlap.0),
                    overlap.1.into_iter().collect::<Vec<_>>().join(", ")
                ),
            )
        } else if let Some((node, why)) = on_node.first() {
            let nodes: Vec<&str> = on_node.iter().map(|(n, _)| *n).collect();
            Condition::new(
                CONFLICTING,
                true,
                "ConflictOnNode",
                format!("on {}: node {node}: {why}; these keep their last valid plan", some_nodes(&nodes)),
            )
        } else {
            Condition::new(CONFLICTING, false, "NoConflict", "")
        };
        let valid = || format!("valid; selects {} of {}", selected.len(), plural(world.nodes.len(), "node"));
        push(Subject::Policy, name.clone(), vec![accepted(o, true, valid), conflicting]);
    }

    // VirtualIPs.
    for name in names(Subject::VirtualIp, world.virtual_ips.iter().map(|v| v.name.as_str()).collect()) {
        let o = observed.get(&(Subject::VirtualIp, name.clone()));
        let v = world.virtual_ips.iter().find(|v| v.name == name);
        let valid = || {
            let n = v.map_or(0, |v| world.nodes.iter().filter(|n| v.selects(&n.labels)).count());
            format!("valid; selects {n} of {}", plural(world.nodes.len(), "node"))
        };
        push(Subject::VirtualIp, name, vec![accepted(o, v.is_some(), valid)]);
    }

    // Cilium's CiliumBGPClusterConfig.
    let v2 = &world.bgp_v2;
    for c in &v2.cluster_configs {
        let selected: Vec<&Node> = world.nodes.iter().filter(|n| c.selects(&n.labels)).map(|n| &**n).collect();
        let missing: BTreeSet<&str> = c
            .instances
            .iter()
            .flat_map(|i| &i.peers)
            .filter_map(|p| p.peer_config.as_deref())
            .filter(|name| !v2.peer_configs.iter().any(|pc| pc.name == *name))
            .collect();
        let (mut nodes, mut others) = (Vec::new(), BTreeSet::new());
        for n in &selected {
            let mut here: Vec<String> = v2
                .cluster_configs_for(n)
                .filter(|o| o.name != c.name)
                .map(|o| format!("CiliumBGPClusterConfig {}", o.name))
                .collect();
            here.extend(
                world
                    .policies_for(n)
                    .iter()
                    .map(|p| format!("{} {} (which takes precedence)", p.kind.kind_name(), p.name)),
            );
            if !here.is_empty() {
                nodes.push(n.name.as_str());
                others.extend(here);
            }
        }
        let list = |s: BTreeSet<&str>| s.into_iter().collect::<Vec<_>>().join(", ");
        push(
            Subject::ClusterConfig,
            c.name.clone(),
            vec![
                Condition::new(
                    NO_MATCHING_NODE,
                    selected.is_empty(),
                    "NoMatchingNode",
                    if selected.is_empty() { "no node matches the nodeSelector".to_string() } else { String::new() },
                ),
                Condition::new(
                    MISSING_PEER_CONFIGS,
                    !missing.is_empty(),
                    "MissingPeerConfigs",
                    if missing.is_empty() {
                        String::new()
                    } else {
                        format!("no CiliumBGPPeerConfig {}; the peers that name it are not configured", list(missing))
                    },
                ),
                Condition::new(
                    CONFLICTING_CLUSTER_CONFIG,
                    !nodes.is_empty(),
                    "ConflictingClusterConfigs",
                    if nodes.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "{} also selected by {}",
                            some_nodes(&nodes),
                            others.into_iter().collect::<Vec<_>>().join(", ")
                        )
                    },
                ),
            ],
        );
    }

    // Cilium's CiliumBGPPeerConfig.
    for pc in &v2.peer_configs {
        let missing = pc.auth_secret.as_deref().filter(|s| !world.secrets.iter().any(|x| x.name == *s));
        let mut c = Condition::new(
            MISSING_AUTH_SECRET,
            missing.is_some(),
            "MissingAuthSecret",
            missing.map(|s| format!("no Secret {s} in the BGP secrets namespace")).unwrap_or_default(),
        );
        if missing.is_some() && !secrets_read {
            c.status = "Unknown".into();
            c.message = format!(
                "Secret {} not known: this kbgp may not read the BGP secrets namespace (each node's kbgp reports \
                 it in its BGPNodeStatus)",
                pc.auth_secret.as_deref().unwrap_or_default()
            );
        }
        push(Subject::PeerConfig, pc.name.clone(), vec![c]);
    }
    out
}

#[cfg(test)]
mod tests;
