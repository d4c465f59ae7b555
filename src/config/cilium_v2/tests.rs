//! Cilium's v2 objects, validated and combined per node, down to the planned routes.

use crate::config::World;
use crate::plan::{Candidate, Plan, PlanError, Planner, RouteUpdate};
use crate::rib::Advertisement;
use crate::wire::attribute::Community;
use std::sync::Arc;

use crate::test_fixtures::{RACK0_NODE as NODE, lb_service as service, load_errors as errors, prefixes, world};

/// The seed's intent in Cilium's v2 API: iBGP to the rack's reflector, the pod CIDR and the
/// LoadBalancer IPs of Services labelled advertise-bgp=true (with a community and a local
/// preference on the latter).
const V2: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumBGPClusterConfig
metadata: {name: rack0}
spec:
  nodeSelector: {matchLabels: {rack: rack0}}
  bgpInstances:
  - name: rack0-65005
    localASN: 65005
    peers:
    - name: leaf
      peerAddress: 10.0.5.1
      peerASN: 65005
      peerConfigRef: {name: leaf}
---
apiVersion: cilium.io/v2
kind: CiliumBGPPeerConfig
metadata: {name: leaf}
spec:
  timers: {holdTimeSeconds: 9, keepAliveTimeSeconds: 3}
  families:
  - afi: ipv4
    safi: unicast
    advertisements: {matchLabels: {advertise: bgp}}
  - afi: ipv6
    safi: unicast
    advertisements: {matchLabels: {advertise: bgp}}
---
apiVersion: cilium.io/v2
kind: CiliumBGPAdvertisement
metadata: {name: bgp-advertisements, labels: {advertise: bgp}}
spec:
  advertisements:
  - advertisementType: PodCIDR
  - advertisementType: Service
    service: {addresses: [LoadBalancerIP]}
    selector: {matchLabels: {advertise-bgp: "true"}}
    attributes:
      communities: {standard: ["65000:100"], wellKnown: [no-export]}
      localPreference: 200
"#;

/// The plan and the routes of its first peer.
fn planned(w: &World) -> Result<(Arc<Plan>, Vec<Advertisement>), PlanError> {
    crate::test_fixtures::first_peer_routes("rack0-node1", w)
}

fn explain(plan: &Plan, w: &World, target: &str) -> Vec<Candidate> {
    plan.explain(w, &target.parse().unwrap()).into_iter().flatten().collect()
}

#[test]
fn the_seed_intent_in_v2_gives_the_seed_routes_with_the_attributes() {
    let web = service("web", "20.0.0.100", "advertise-bgp: \"true\"", "");
    let other = service("other", "20.0.0.101", "app: other", "");
    let w = world(&[NODE, V2, &web, &other]);
    let (plan, routes) = planned(&w).unwrap();
    assert_eq!(plan.policy_name().as_deref(), Some("rack0"));
    let (_, peer) = plan.peers().next().unwrap();
    assert_eq!(peer.key.address.to_string(), "10.0.5.1");
    assert_eq!((peer.settings.session.peer_as, peer.settings.session.hold_time), (65005, 9));
    assert_eq!(peer.settings.ttl, None, "iBGP");
    assert_eq!(prefixes(&routes), ["10.1.0.0/24", "20.0.0.100/32"]);
    let pod = &routes[0].attrs;
    assert!(pod.communities.is_empty() && pod.local_pref.is_none(), "{pod:?}");
    let svc = &routes[1].attrs;
    assert_eq!(svc.communities, vec!["65000:100".parse::<Community>().unwrap(), Community::NO_EXPORT]);
    assert_eq!(svc.local_pref, Some(200));

    // kbgp why names the original objects.
    let c = explain(&plan, &w, "20.0.0.100/32");
    let c = c.iter().find(|c| c.prefix.to_string() == "20.0.0.100/32").unwrap();
    assert!(c.advertised, "{c:?}");
    assert!(
        c.steps
            .iter()
            .any(|s| s.text.contains("the selector of CiliumBGPAdvertisement bgp-advertisements, advertisements[1]")),
        "{c:?}"
    );
    let c = explain(&plan, &w, "20.0.0.101/32");
    let c = c.iter().find(|c| c.prefix.to_string() == "20.0.0.101/32").unwrap();
    assert!(!c.advertised);
    assert!(
        c.reason()
            .starts_with("the selector of CiliumBGPAdvertisement bgp-advertisements, advertisements[1] does not match"),
        "{}",
        c.reason()
    );
}

#[test]
fn v1_and_v2_describing_the_same_intent_plan_the_same_routes() {
    let web = service("web", "20.0.0.100", "advertise-bgp: \"true\"", "");
    let v1 = world(&[NODE, crate::test_fixtures::POLICY, &web]);
    let v2 = world(&[
        NODE,
        &V2.replace("      localPreference: 200\n", "")
            .replace("      communities: {standard: [\"65000:100\"], wellKnown: [no-export]}\n", "")
            .replace("    attributes:\n", ""),
        &web,
    ]);
    let (_, a) = planned(&v1).unwrap();
    let (_, b) = planned(&v2).unwrap();
    assert_eq!(a, b);
    assert_eq!(prefixes(&a), ["10.1.0.0/24", "20.0.0.100/32"]);
}

#[test]
fn a_family_takes_only_the_advertisements_its_selector_picks() {
    // ipv4 picks nothing: the v4 routes go nowhere, and why says so.
    let v2 = V2.replacen("    advertisements: {matchLabels: {advertise: bgp}}\n", "", 1);
    let web = service("web", "20.0.0.100", "advertise-bgp: \"true\"", "");
    let w = world(&[NODE, &v2, &web]);
    let (plan, routes) = planned(&w).unwrap();
    assert!(routes.is_empty(), "{routes:?}");
    let c = explain(&plan, &w, "20.0.0.100/32");
    assert!(c.iter().all(|c| !c.advertised), "{c:?}");
    assert!(c[0].reason().contains("is selected only for ipv6-unicast"), "{}", c[0].reason());
    // No peerConfigRef: Cilium's defaults and nothing advertised; the session is still planned.
    let v2 = V2.replace("      peerConfigRef: {name: leaf}\n", "");
    let (plan, routes) = planned(&world(&[NODE, &v2, &web])).unwrap();
    assert_eq!(plan.peers().next().unwrap().1.settings.session.hold_time, 90);
    assert!(routes.is_empty());
    // A peerConfigRef to nothing: the peer is not configured, and a note says why.
    let v2 = V2.replace("peerConfigRef: {name: leaf}", "peerConfigRef: {name: missing}");
    let (plan, _) = planned(&world(&[NODE, &v2, &web])).unwrap();
    assert_eq!(plan.peers().count(), 0);
    assert!(plan.notes.iter().any(|n| n.contains("no CiliumBGPPeerConfig missing")), "{:?}", plan.notes);
}

#[test]
fn aggregation_announces_the_covering_prefix_once() {
    let v2 = V2.replace(
        "service: {addresses: [LoadBalancerIP]}",
        "service: {addresses: [LoadBalancerIP], aggregationLengthIPv4: 24}",
    );
    let a = service("a", "20.0.0.100", "advertise-bgp: \"true\"", "");
    let b = service("b", "20.0.0.101", "advertise-bgp: \"true\"", "");
    let local = service("c", "20.0.1.7", "advertise-bgp: \"true\"", "  externalTrafficPolicy: Local\n");
    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: c-1, namespace: default, labels: {kubernetes.io/service-name: c}}\nendpoints:\n- addresses: [10.1.0.5]\n  nodeName: rack0-node1\n  conditions: {ready: true}\n";
    let w = world(&[NODE, &v2, &a, &b, &local, slice]);
    let mut planner = Planner::new("rack0-node1");
    let (_, up) = planner.update(Arc::new(w.clone())).unwrap();
    let Some(RouteUpdate::Full(g)) = up else { panic!() };
    // Local traffic policy keeps its host route (Cilium does not aggregate it).
    assert_eq!(prefixes(&g[0].1), ["10.1.0.0/24", "20.0.0.0/24", "20.0.1.7/32"]);
    let c = explain(&Plan::clone(&planner_plan(&mut planner, &w)), &w, "20.0.0.100/32");
    assert!(c.iter().any(|c| c.advertised && c.prefix.to_string() == "20.0.0.0/24"), "{c:?}");
    // One Service gone: the aggregate stays; both gone: it is withdrawn, once.
    let w1 = world(&[NODE, &v2, &b, &local, slice]);
    let (_, up) = planner.update(Arc::new(w1)).unwrap();
    assert_eq!(up, None, "nothing changes while another address asks for the aggregate");
    let w2 = world(&[NODE, &v2, &local, slice]);
    let (_, up) = planner.update(Arc::new(w2)).unwrap();
    let Some(RouteUpdate::Delta(d)) = up else { panic!("{up:?}") };
    assert_eq!(d[0].1, vec![("20.0.0.0/24".parse().unwrap(), None)]);
}

fn planner_plan(p: &mut Planner, w: &World) -> Plan {
    (*p.update(Arc::new(w.clone())).unwrap().0).clone()
}

#[test]
fn overrides_conflicts_and_precedence() {
    let over = r#"
apiVersion: cilium.io/v2
kind: CiliumBGPNodeConfigOverride
metadata: {name: rack0-node1}
spec:
  bgpInstances:
  - name: rack0-65005
    routerID: 192.0.2.1
    localPort: 1790
"#;
    let (plan, _) = planned(&world(&[NODE, V2, over])).unwrap();
    assert_eq!(plan.vrouters[0].router_id.to_string(), "192.0.2.1");
    assert_eq!(plan.vrouters[0].listen_port, Some(1790));

    let second = V2.split("---").next().unwrap().replace("name: rack0}", "name: rack0-b}");
    let e = planned(&world(&[NODE, V2, &second])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "node rack0-node1: selected by 2 CiliumBGPClusterConfigs (rack0, rack0-b); a node may have only one"
    );
    assert!(world(&[NODE, V2, &second]).cross_check().iter().any(|e| e.message.contains("CiliumBGPClusterConfigs")));

    // A CiliumBGPPeeringPolicy wins over the v2 objects, as in Cilium, with a note.
    let (plan, _) = planned(&world(&[NODE, V2, crate::test_fixtures::POLICY])).unwrap();
    assert_eq!(plan.policy_name().as_deref(), Some("rack0-65005"));
    assert!(plan.notes.iter().any(|n| n.contains("takes precedence")), "{:?}", plan.notes);

    // Peer AS 0: any AS from the OPEN; no TTL of 1 is forced on it.
    let any = V2.replace("      peerASN: 65005\n", "");
    let (plan, _) = planned(&world(&[NODE, &any])).unwrap();
    let (_, p) = plan.peers().next().unwrap();
    assert_eq!((p.settings.session.peer_as, p.settings.ttl), (0, None));
}

#[test]
fn every_field_is_checked_with_its_path() {
    let bad = r#"
apiVersion: cilium.io/v2alpha1
kind: CiliumBGPClusterConfig
metadata: {name: bad}
spec:
  bgpInstances:
  - name: a
    localASN: 0
    peers:
    - {name: p, peerAddress: 10.0.5.1/24, peerASN: 65005}
---
apiVersion: cilium.io/v2
kind: CiliumBGPPeerConfig
metadata: {name: pc}
spec:
  timers: {holdTimeSeconds: 9, keepAliveTimeSeconds: 30}
  ebgpMultihop: 0
  families: [{afi: l2vpn, safi: evpn}]
---
apiVersion: cilium.io/v2
kind: CiliumBGPAdvertisement
metadata: {name: ad}
spec:
  advertisements:
  - advertisementType: CiliumPodIPPool
  - advertisementType: Service
    service: {addresses: [NodeIP], aggregationLengthIPv4: 32}
  - advertisementType: Service
  - advertisementType: PodCIDR
    selector: {}
"#;
    let e = errors(&[bad]);
    let want = [
        "bad: spec.bgpInstances[0].localASN: must be 1..=4294967295, got 0",
        "bad: spec.bgpInstances[0].peers[0].peerAddress: \"10.0.5.1/24\" is a prefix",
        "pc: spec.timers.keepAliveTimeSeconds: 30 is larger than holdTimeSeconds (9)",
        "pc: spec.ebgpMultihop: must be 1..=255, got 0",
        "pc: spec.families[0]: l2vpn/evpn is not supported",
        "ad: spec.advertisements[0].advertisementType: CiliumPodIPPool needs Cilium's multi-pool IPAM",
        "ad: spec.advertisements[1].service.addresses[0]: \"NodeIP\" is not one of",
        "ad: spec.advertisements[1].service.aggregationLengthIPv4: must be 1..=31, got 32",
        "ad: spec.advertisements[2].service: is required for the Service advertisementType",
        "ad: spec.advertisements[3].selector: is not allowed for the PodCIDR advertisementType",
    ];
    for w in want {
        assert!(e.iter().any(|e| e.starts_with(w)), "missing {w:?} in {e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
    // A field Cilium does not have is refused, naming it.
    let typo = V2.replace("peerASN: 65005", "peerAsn: 65005");
    assert!(errors(&[&typo]).iter().any(|e| e.contains("unknown field `peerAsn`")), "{:?}", errors(&[&typo]));
}

#[test]
fn the_example_gives_the_routes_of_the_seed_policies() {
    let web = service("web", "20.0.0.100", "advertise-bgp: \"true\"", "");
    let rack1 = NODE.replace("rack0-node1", "rack1-node1").replace("rack: rack0", "rack: rack1");
    for seed in [
        include_str!("../../../examples/seed/bgp-peering-policies.yaml"),
        include_str!("../../../examples/cilium-v2.yaml"),
    ] {
        for (node, peer) in [(NODE.to_string(), "10.0.5.1"), (rack1.clone(), "10.0.10.1")] {
            let w = world(&[&node, seed, &web]);
            let name = if node.contains("rack1") { "rack1-node1" } else { "rack0-node1" };
            let (plan, up) = Planner::new(name).update(Arc::new(w)).unwrap();
            let Some(RouteUpdate::Full(g)) = up else { panic!() };
            let (_, p) = plan.peers().next().unwrap();
            assert_eq!(p.key.address.to_string(), peer);
            assert_eq!(p.settings.session.peer_as, p.key.local_asn, "iBGP");
            let routes = &g.iter().find(|(k, _)| *k == p.group).unwrap().1;
            assert_eq!(prefixes(routes), ["10.1.0.0/24", "20.0.0.100/32"]);
            assert!(routes.iter().all(|r| r.attrs.communities.is_empty() && r.attrs.local_pref.is_none()));
        }
    }
}

#[test]
fn why_tells_peers_of_different_export_sets_apart() {
    // A second peer without peerConfigRef: its own export set, which advertises nothing.
    let v2 = V2.replace(
        "      peerConfigRef: {name: leaf}\n",
        "      peerConfigRef: {name: leaf}\n    - name: other\n      peerAddress: 10.0.5.2\n      peerASN: 65005\n",
    );
    let web = service("web", "20.0.0.100", "advertise-bgp: \"true\"", "");
    let w = world(&[NODE, &v2, &web]);
    let (plan, _) = planned(&w).unwrap();
    assert_eq!(plan.policy.as_ref().unwrap().virtual_routers[0].exports.len(), 2);
    let why = crate::plan::why::why("20.0.0.100/32".parse().unwrap(), &w, &Default::default(), &plan);
    let peers = &why.vrouters[0].peers;
    let leaf = peers.iter().find(|p| p.address.to_string() == "10.0.5.1").unwrap();
    let other = peers.iter().find(|p| p.address.to_string() == "10.0.5.2").unwrap();
    assert!(leaf.announces(), "{leaf:?}");
    assert!(!other.announces(), "{other:?}");
    assert!(other.planned.is_empty());
    assert!(why.verdict.contains("to 1 of 2 peers (10.0.5.1)"), "{}", why.verdict);
}
