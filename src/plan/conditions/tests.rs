use super::*;
use crate::test_fixtures::{POLICY, RACK0_NODE, kbgp_kind, world};

fn of<'a>(all: &'a [ObjectConditions], subject: Subject, name: &str) -> Vec<(&'a str, &'a str, &'a str, &'a str)> {
    let o = all.iter().find(|o| o.subject == subject && o.name == name);
    let o = o.unwrap_or_else(|| panic!("no conditions for {name}: {all:?}"));
    o.conditions.iter().map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str(), c.message.as_str())).collect()
}

const NODE2: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: rack0-node2, labels: {rack: rack0}}
status: {addresses: [{type: InternalIP, address: 10.0.5.12}]}
"#;
const NODE_RACK1: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: rack1-node1, labels: {rack: rack1}}
status: {addresses: [{type: InternalIP, address: 10.0.10.11}]}
"#;

#[test]
fn policies_are_accepted_or_conflicting_with_the_nodes_named() {
    let p = kbgp_kind(POLICY);
    let overlapping = p.replace("rack0-65005", "also-rack0");
    let rack1 = p.replace("rack0-65005", "rack1").replace("rack: rack0", "rack: rack1");
    let w = world(&[&p, &overlapping, &rack1, RACK0_NODE, NODE2, NODE_RACK1]);
    let all = conditions(&w, &Default::default(), true);
    let msg = "nodes rack0-node1 and rack0-node2 also selected by BGPPeeringPolicy also-rack0; a node takes one \
               peering policy, so these keep their last valid plan";
    assert_eq!(
        of(&all, Subject::Policy, "rack0-65005"),
        vec![
            ("Accepted", "True", "Valid", "valid; selects 2 of 3 nodes"),
            ("Conflicting", "True", "OverlappingNodeSelector", msg)
        ]
    );
    assert_eq!(
        of(&all, Subject::Policy, "rack1"),
        vec![("Accepted", "True", "Valid", "valid; selects 1 of 3 nodes"), ("Conflicting", "False", "NoConflict", "")]
    );
    // Cilium's own kind has no status to write.
    let w = world(&[POLICY, RACK0_NODE]);
    assert!(conditions(&w, &Default::default(), true).is_empty());
}

#[test]
fn an_invalid_newest_version_is_not_accepted() {
    let p = kbgp_kind(POLICY);
    let w = world(&[&p, RACK0_NODE]);
    let mut observed = ObservedObjects::new();
    let bad = Observed {
        generation: Some(7),
        error: Some("spec.virtualRouters[0].localASN: required".into()),
        ..Default::default()
    };
    observed.insert((Subject::Policy, "rack0-65005".into()), bad.clone());
    observed.insert((Subject::Policy, "never-valid".into()), bad);
    let all = conditions(&w, &observed, true);
    let c = &all.iter().find(|o| o.name == "rack0-65005").unwrap().conditions;
    assert_eq!(
        (c[0].status.as_str(), c[0].reason.as_str(), c[0].message.as_str(), c[0].observed_generation),
        (
            "False",
            "Invalid",
            "spec.virtualRouters[0].localASN: required; its last valid version stays in effect",
            Some(7)
        )
    );
    assert_eq!(c[1].observed_generation, Some(7));
    assert_eq!(
        of(&all, Subject::Policy, "never-valid"),
        vec![("Accepted", "False", "Invalid", "spec.virtualRouters[0].localASN: required; it is not in effect")]
    );
}

#[test]
fn a_neighbor_configured_by_a_policy_and_by_metallb_is_a_conflict() {
    let peer = r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: rr, namespace: metallb-system}
spec: {myASN: 65005, peerASN: 65005, peerAddress: 10.0.5.1}
"#;
    let w = world(&[&kbgp_kind(POLICY), RACK0_NODE, peer]);
    let all = conditions(&w, &Default::default(), true);
    let c = of(&all, Subject::Policy, "rack0-65005");
    assert_eq!((c[1].1, c[1].2), ("True", "ConflictOnNode"), "{c:?}");
    assert!(
        c[1].3.starts_with("on node rack0-node1: node rack0-node1: neighbor 10.0.5.1 of AS65005 is configured both"),
        "{}",
        c[1].3
    );
}

#[test]
fn cilium_v2_objects_get_ciliums_conditions() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cilium-v2.yaml")).unwrap();
    let missing = r#"
apiVersion: cilium.io/v2
kind: CiliumBGPClusterConfig
metadata: {name: nowhere}
spec:
  nodeSelector: {matchLabels: {rack: rack9}}
  bgpInstances:
  - name: x
    localASN: 65099
    peers: [{name: p, peerAddress: 10.0.99.1, peerASN: 65099, peerConfigRef: {name: absent}}]
---
apiVersion: cilium.io/v2
kind: CiliumBGPPeerConfig
metadata: {name: with-password}
spec: {authSecretRef: bgp-password}
"#;
    let w = world(&[&text, missing, RACK0_NODE, NODE_RACK1, &kbgp_kind(POLICY).replace("rack: rack0", "rack: rack1")]);
    let all = conditions(&w, &Default::default(), true);
    assert_eq!(
        of(&all, Subject::ClusterConfig, "rack0"),
        vec![
            ("cilium.io/NoMatchingNode", "False", "NoMatchingNode", ""),
            ("cilium.io/MissingPeerConfigs", "False", "MissingPeerConfigs", ""),
            ("cilium.io/ConflictingClusterConfig", "False", "ConflictingClusterConfigs", ""),
        ]
    );
    assert_eq!(
        of(&all, Subject::ClusterConfig, "rack1")[2],
        (
            "cilium.io/ConflictingClusterConfig",
            "True",
            "ConflictingClusterConfigs",
            "node rack1-node1 also selected by BGPPeeringPolicy rack0-65005 (which takes precedence)"
        )
    );
    let nowhere = of(&all, Subject::ClusterConfig, "nowhere");
    assert_eq!(nowhere[0], ("cilium.io/NoMatchingNode", "True", "NoMatchingNode", "no node matches the nodeSelector"));
    assert_eq!(
        nowhere[1],
        (
            "cilium.io/MissingPeerConfigs",
            "True",
            "MissingPeerConfigs",
            "no CiliumBGPPeerConfig absent; the peers that name it are not configured"
        )
    );
    assert_eq!(
        of(&all, Subject::PeerConfig, "with-password"),
        vec![(
            "cilium.io/MissingAuthSecret",
            "True",
            "MissingAuthSecret",
            "no Secret bgp-password in the BGP secrets namespace"
        )]
    );
    assert_eq!(
        of(&all, Subject::PeerConfig, "route-reflector"),
        vec![("cilium.io/MissingAuthSecret", "False", "MissingAuthSecret", "")]
    );
    // A kbgp that may not read Secrets does not claim one is missing.
    let all = conditions(&w, &Default::default(), false);
    let c = of(&all, Subject::PeerConfig, "with-password");
    assert_eq!((c[0].1, c[0].2), ("Unknown", "MissingAuthSecret"));
}

#[test]
fn virtual_ips_are_accepted() {
    let vip = r#"
apiVersion: kbgp.io/v1alpha1
kind: VirtualIP
metadata: {name: api}
spec:
  addresses: [10.100.0.100]
  nodeSelector: {matchLabels: {rack: rack0}}
"#;
    let w = world(&[vip, RACK0_NODE, NODE_RACK1]);
    assert_eq!(
        of(&conditions(&w, &Default::default(), true), Subject::VirtualIp, "api"),
        vec![("Accepted", "True", "Valid", "valid; selects 1 of 2 nodes")]
    );
}
