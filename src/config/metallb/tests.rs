//! MetalLB's objects, validated and combined per node, down to the planned routes and the
//! addresses LB IPAM gives.

use crate::config::{Namespaces, World, load_str};
use crate::plan::{Candidate, Plan, PlanError, Planner, RouteUpdate};
use crate::rib::Advertisement;
use crate::wire::attribute::{Community, LargeCommunity};
use std::sync::Arc;
use std::time::Duration;

use crate::test_fixtures::{RACK0_NODE as NODE, lb_service as service, load_errors as errors, prefixes};

/// The seed's intent in MetalLB's API: iBGP to the rack's reflector, the LoadBalancer IPs of
/// the pool's Services labelled advertise-bgp=true, with a community (by alias and by value)
/// and a local preference.
const ML: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lb-pool, namespace: metallb-system, labels: {tier: web}}
spec:
  addresses: [20.0.10.0/24]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: leaf, namespace: metallb-system}
spec:
  myASN: 65005
  peerASN: 65005
  peerAddress: 10.0.5.1
  holdTime: 9s
  nodeSelectors: [{matchLabels: {rack: rack0}}]
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: communities, namespace: metallb-system}
spec:
  communities:
  - {name: no-export, value: "65535:65281"}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: rack0, namespace: metallb-system}
spec:
  ipAddressPools: [lb-pool]
  serviceSelectors: [{matchLabels: {advertise-bgp: "true"}}]
  communities: ["65000:100", no-export, "large:4200000000:1:2"]
  localPref: 200
"#;

fn loaded(docs: &[&str]) -> crate::config::Loaded {
    match load_str(&docs.join("\n---\n"), "t") {
        Ok(mut l) => {
            let w = l.world.scope(&Namespaces::default());
            l.warnings.extend(w);
            l
        }
        Err(e) => panic!("{e:?}"),
    }
}

fn world(docs: &[&str]) -> World {
    loaded(docs).world
}

fn planned_as(node: &str, w: &World) -> Result<(Arc<Plan>, Vec<Advertisement>), PlanError> {
    crate::test_fixtures::first_peer_routes(node, w)
}

fn planned(w: &World) -> Result<(Arc<Plan>, Vec<Advertisement>), PlanError> {
    planned_as("rack0-node1", w)
}

fn candidate(plan: &Plan, w: &World, prefix: &str) -> Candidate {
    let all: Vec<Candidate> = plan.explain(w, &prefix.parse().unwrap()).into_iter().flatten().collect();
    match all.into_iter().find(|c| c.prefix.to_string() == prefix) {
        Some(c) => c,
        None => panic!("no candidate {prefix}"),
    }
}

#[test]
fn the_seed_intent_in_metallb_gives_the_seed_service_route_with_the_attributes() {
    let web = service("web", "20.0.10.100", "advertise-bgp: \"true\"", "");
    let other = service("other", "20.0.10.101", "app: other", "");
    let w = world(&[NODE, ML, &web, &other]);
    let (plan, routes) = planned(&w).unwrap();
    assert_eq!(plan.policy_name().as_deref(), Some("metallb-system"));
    let (_, peer) = plan.peers().next().unwrap();
    assert_eq!(peer.key.address.to_string(), "10.0.5.1");
    let s = &peer.settings.session;
    assert_eq!((s.peer_as, s.hold_time, s.keepalive), (65005, 9, 3), "keepalive is a third of holdTime");
    assert_eq!(s.families, vec![crate::wire::Family::IPV4_UNICAST], "one family per session, as MetalLB 0.15");
    assert_eq!(prefixes(&routes), ["20.0.10.100/32"], "no pod CIDR: MetalLB's API has none");
    let a = &routes[0].attrs;
    assert_eq!(a.communities, vec!["65000:100".parse::<Community>().unwrap(), Community::NO_EXPORT]);
    assert_eq!(a.large_communities, vec![LargeCommunity { global: 4_200_000_000, local1: 1, local2: 2 }]);
    assert_eq!(a.local_pref, Some(200));

    // kbgp why names the BGPAdvertisement and the pool.
    let c = candidate(&plan, &w, "20.0.10.100/32");
    assert!(c.advertised, "{c:?}");
    let text: Vec<&str> = c.steps.iter().map(|s| s.text.as_str()).collect();
    assert!(
        text.iter().any(|t| t.contains("serviceSelectors[0] of BGPAdvertisement metallb-system/rack0")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.contains("IPAddressPool lb-pool, named by BGPAdvertisement metallb-system/rack0")),
        "{text:?}"
    );
    let c = candidate(&plan, &w, "20.0.10.101/32");
    assert!(!c.advertised);
    assert!(
        c.reason().starts_with("no serviceSelectors of BGPAdvertisement metallb-system/rack0 match"),
        "{}",
        c.reason()
    );
}

#[test]
fn cilium_v1_and_metallb_describing_the_same_intent_plan_the_same_routes() {
    let web = service("web", "20.0.10.100", "advertise-bgp: \"true\"", "");
    let v1 = crate::test_fixtures::POLICY.replace("exportPodCIDR: true", "exportPodCIDR: false");
    let pool = "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: lb-pool}\nspec: {blocks: [{cidr: 20.0.10.0/24}]}\n";
    let a = world(&[NODE, &v1, pool, &web]);
    let ml = ML.replace("  communities: [\"65000:100\", no-export, \"large:4200000000:1:2\"]\n  localPref: 200\n", "");
    let b = world(&[NODE, &ml, &web]);
    let (_, ra) = planned(&a).unwrap();
    let (_, rb) = planned(&b).unwrap();
    assert_eq!(ra, rb);
    assert_eq!(prefixes(&ra), ["20.0.10.100/32"]);
}

#[test]
fn the_example_gives_the_seed_service_routes_on_both_racks() {
    let web = service("web", "20.0.10.100", "advertise-bgp: \"true\"", "");
    let rack1 = NODE.replace("rack0-node1", "rack1-node1").replace("rack: rack0", "rack: rack1");
    let example = include_str!("../../../examples/metallb.yaml");
    for (node, name, peer, asn) in
        [(NODE, "rack0-node1", "10.0.5.1", 65005), (&rack1, "rack1-node1", "10.0.10.1", 65010)]
    {
        let w = world(&[node, example, &web]);
        let (plan, routes) = planned_as(name, &w).unwrap();
        assert_eq!(plan.peers().count(), 1, "each rack's node peers with its own reflector only");
        let (_, p) = plan.peers().next().unwrap();
        assert_eq!((p.key.address.to_string().as_str(), p.key.local_asn, p.settings.session.peer_as), (peer, asn, asn));
        assert_eq!(prefixes(&routes), ["20.0.10.100/32"]);
        assert!(routes.iter().all(|r| r.attrs.communities.is_empty() && r.attrs.local_pref.is_none()));
    }
}

#[test]
fn only_addresses_of_the_pools_an_advertisement_covers_are_announced() {
    let other_pool = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: other, namespace: metallb-system}\nspec: {addresses: [20.0.20.0-20.0.20.9]}\n";
    let web = service("web", "20.0.10.100", "advertise-bgp: \"true\"", "");
    let db = service("db", "20.0.20.5", "advertise-bgp: \"true\"", "");
    let stray = service("stray", "192.0.2.7", "advertise-bgp: \"true\"", "");
    let w = world(&[NODE, ML, other_pool, &web, &db, &stray]);
    let (plan, routes) = planned(&w).unwrap();
    assert_eq!(prefixes(&routes), ["20.0.10.100/32"]);
    assert!(
        candidate(&plan, &w, "20.0.20.5/32").reason().contains("IPAddressPool other is neither named nor selected"),
        "{}",
        candidate(&plan, &w, "20.0.20.5/32").reason()
    );
    assert!(candidate(&plan, &w, "192.0.2.7/32").reason().contains("in no IPAddressPool"));
    // By label; and neither names nor selectors: every pool.
    let by_label = ML.replace("ipAddressPools: [lb-pool]", "ipAddressPoolSelectors: [{matchLabels: {tier: web}}]");
    let (_, r) = planned(&world(&[NODE, &by_label, other_pool, &web, &db])).unwrap();
    assert_eq!(prefixes(&r), ["20.0.10.100/32"]);
    let all = ML.replace("  ipAddressPools: [lb-pool]\n", "");
    let (_, r) = planned(&world(&[NODE, &all, other_pool, &web, &db])).unwrap();
    assert_eq!(prefixes(&r), ["20.0.10.100/32", "20.0.20.5/32"]);
    // MetalLB 0.14/0.15: no serviceSelectors, every Service of the pool.
    let no_sel = ML.replace("  serviceSelectors: [{matchLabels: {advertise-bgp: \"true\"}}]\n", "");
    let other = service("other", "20.0.10.101", "app: other", "");
    let (_, r) = planned(&world(&[NODE, &no_sel, &web, &other])).unwrap();
    assert_eq!(prefixes(&r), ["20.0.10.100/32", "20.0.10.101/32"]);
}

#[test]
fn advertisements_pick_their_nodes_and_peers() {
    let second = "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: spine, namespace: metallb-system}\nspec: {myASN: 65005, peerASN: 65100, peerAddress: 10.0.5.2, ebgpMultiHop: true}\n";
    let only_leaf = ML.replace("  localPref: 200\n", "  localPref: 200\n  peers: [leaf]\n");
    let web = service("web", "20.0.10.100", "advertise-bgp: \"true\"", "");
    let w = world(&[NODE, &only_leaf, second, &web]);
    let (plan, up) = Planner::new("rack0-node1").update(Arc::new(w.clone())).unwrap();
    let Some(RouteUpdate::Full(groups)) = up else { panic!() };
    let routes_of = |addr: &str| {
        let (_, p) = plan.peers().find(|(_, p)| p.key.address.to_string() == addr).unwrap();
        groups.iter().find(|(g, _)| *g == p.group).map(|(_, r)| prefixes(r)).unwrap_or_default()
    };
    assert_eq!(routes_of("10.0.5.1"), ["20.0.10.100/32"]);
    assert!(routes_of("10.0.5.2").is_empty(), "the advertisement names leaf only");
    let (_, spine) = plan.peers().find(|(_, p)| p.key.address.to_string() == "10.0.5.2").unwrap();
    assert_eq!(spine.settings.ttl, Some(255), "ebgpMultiHop");
    // nodeSelectors that do not pick the node: nothing announced from it.
    let elsewhere =
        ML.replace("  localPref: 200\n", "  localPref: 200\n  nodeSelectors: [{matchLabels: {rack: rack1}}]\n");
    let (_, r) = planned(&world(&[NODE, &elsewhere, &web])).unwrap();
    assert!(r.is_empty());
    // The node excluded from load balancers: sessions stay, nothing is announced, a note says why.
    let excluded = NODE.replace(
        "labels: {rack: rack0}",
        "labels: {rack: rack0, node.kubernetes.io/exclude-from-external-load-balancers: \"\"}",
    );
    let (plan, r) = planned(&world(&[&excluded, ML, &web])).unwrap();
    assert!(r.is_empty());
    assert_eq!(plan.peers().count(), 1);
    assert!(plan.notes.iter().any(|n| n.contains("exclude-from-external-load-balancers")), "{:?}", plan.notes);
    // A peer whose nodeSelectors do not pick the node: no session.
    let rack1_only =
        ML.replace("nodeSelectors: [{matchLabels: {rack: rack0}}]", "nodeSelectors: [{matchLabels: {rack: rack1}}]");
    let (plan, _) = planned(&world(&[NODE, &rack1_only, &web])).unwrap();
    assert_eq!(plan.peers().count(), 0);
}

#[test]
fn aggregation_announces_the_covering_prefix_and_may_not_go_above_the_pool() {
    let agg = ML
        .replace("  serviceSelectors: [{matchLabels: {advertise-bgp: \"true\"}}]\n", "")
        .replace("  localPref: 200\n", "  localPref: 200\n  aggregationLength: 24\n");
    let a = service("a", "20.0.10.100", "", "");
    let b = service("b", "20.0.10.101", "", "");
    let (_, r) = planned(&world(&[NODE, &agg, &a, &b])).unwrap();
    assert_eq!(prefixes(&r), ["20.0.10.0/24"]);
    let wide = agg.replace("aggregationLength: 24", "aggregationLength: 16");
    let w = world(&[NODE, &wide, &a]);
    let e = planned(&w).unwrap_err().to_string();
    assert!(e.contains("invalid aggregation length 16: prefix /24 in IPAddressPool lb-pool"), "{e}");
    assert!(w.cross_check().iter().any(|e| e.path == "spec.aggregationLength"), "{:?}", w.cross_check());
    // A range counts as the prefixes that cover it: 20.0.10.0-20.0.10.127 is one /25.
    let range = wide
        .replace("addresses: [20.0.10.0/24]", "addresses: [20.0.10.0-20.0.10.127]")
        .replace("aggregationLength: 16", "aggregationLength: 25");
    let (_, r) = planned(&world(&[NODE, &range, &a])).unwrap();
    assert_eq!(prefixes(&r), ["20.0.10.0/25"]);
    let range24 = range.replace("aggregationLength: 25", "aggregationLength: 24");
    assert!(planned(&world(&[NODE, &range24, &a])).is_err());
}

#[test]
fn peers_take_metallb_timers_asn_modes_bfd_passwords_and_source_address() {
    let peer = |spec: &str| {
        format!(
            "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: leaf, namespace: metallb-system}}\nspec: {{myASN: 65005, peerAddress: 10.0.5.1, {spec}}}\n"
        )
    };
    let settings = |docs: &[&str]| {
        let mut all = vec![NODE];
        all.extend_from_slice(docs);
        let (plan, _) = planned(&world(&all)).unwrap();
        plan.peers().next().map(|(_, p)| p.settings.clone())
    };
    let s = settings(&[&peer("peerASN: 65005")]).unwrap();
    assert_eq!((s.session.hold_time, s.session.keepalive, s.port), (90, 30, 179));
    assert_eq!(s.session.connect_retry, Duration::from_secs(120));
    let s = settings(&[&peer("peerASN: 65005, keepaliveTime: 10s, connectTime: 5s, peerPort: 1179")]).unwrap();
    assert_eq!((s.session.hold_time, s.session.keepalive, s.port), (30, 10, 1179));
    assert_eq!(s.session.connect_retry, Duration::from_secs(5));
    // v1beta1: the 0s that MetalLB's conversion writes means "not set".
    let v1 = peer("peerASN: 65005, holdTime: 0s, keepaliveTime: 0s").replace("v1beta2", "v1beta1");
    assert_eq!(settings(&[&v1]).unwrap().session.hold_time, 90);
    // dynamicASN.
    assert_eq!(settings(&[&peer("dynamicASN: internal")]).unwrap().session.peer_as, 65005);
    assert_eq!(settings(&[&peer("dynamicASN: external")]).unwrap().session.peer_as, 0);
    // A plain password, and one from a Secret of the MetalLB namespace.
    let md5 = |s: crate::session::PeerSettings| match s.auth {
        crate::session::config::Auth::Md5(v) => String::from_utf8(v.bytes().to_vec()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(md5(settings(&[&peer("peerASN: 65005, password: s3cret")]).unwrap()), "s3cret");
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: leaf-pw, namespace: metallb-system}\ntype: kubernetes.io/basic-auth\nstringData: {password: fr0m-secret}\n";
    let by_ref = peer("peerASN: 65005, passwordSecret: {name: leaf-pw}");
    assert_eq!(md5(settings(&[&by_ref, secret]).unwrap()), "fr0m-secret");
    match settings(&[&by_ref]).unwrap().auth {
        crate::session::config::Auth::Missing(why) => {
            assert!(why.contains("no Secret leaf-pw in the MetalLB namespace metallb-system"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // BFD from a BFDProfile; a missing profile leaves the peer out, with a note.
    let profile = "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: fast, namespace: metallb-system}\nspec: {receiveInterval: 100, transmitInterval: 100, detectMultiplier: 5}\n";
    let with_bfd = peer("peerASN: 65005, bfdProfile: fast");
    let b = settings(&[&with_bfd, profile]).unwrap().bfd.unwrap();
    assert_eq!((b.session.detect_multiplier, b.multihop, b.min_ttl), (5, false, 255));
    assert_eq!(b.session.receive_interval, Duration::from_millis(100));
    let (plan, _) = planned(&world(&[NODE, &with_bfd])).unwrap();
    assert_eq!(plan.peers().count(), 0);
    assert!(plan.notes.iter().any(|n| n.contains("no BFDProfile fast")), "{:?}", plan.notes);
    // sourceAddress binds the session; routerID is the virtual router's.
    let s = settings(&[&peer("peerASN: 65005, sourceAddress: 10.0.5.11, routerID: 192.0.2.9")]).unwrap();
    assert_eq!(s.local_address, Some("10.0.5.11".parse().unwrap()));
    assert_eq!(s.session.router_id.to_string(), "192.0.2.9");
    // Graceful restart, dual stack.
    let s = settings(&[&peer("peerASN: 65005, enableGracefulRestart: true, dualStackAddressFamily: true")]).unwrap();
    assert_eq!(s.session.graceful_restart, Some(120));
    assert_eq!(s.session.families.len(), 2);
}

#[test]
fn go_durations() {
    use super::parse_go_duration as d;
    assert_eq!(d("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(d("1m30s").unwrap(), Duration::from_secs(90));
    assert_eq!(d("1.5h").unwrap(), Duration::from_secs(5400));
    assert_eq!(d("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(d("0").unwrap(), Duration::ZERO);
    assert_eq!(d("2us").unwrap(), Duration::from_micros(2));
    for bad in ["", "90", "-1s", "1x", "s", "1m30"] {
        assert!(d(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn every_field_is_checked_with_its_path() {
    let bad = r#"
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: p1, namespace: metallb-system}
spec: {peerASN: 65005, dynamicASN: internal, peerAddress: leaf, holdTime: 2s, routerID: "::1", password: a, passwordSecret: {name: b}, vrf: red, localASN: 1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: p2, namespace: metallb-system}
spec: {myASN: 65005, peerASN: 65005, peerAddress: 10.0.5.1, holdTime: 9s, keepaliveTime: 10s, ebgpMultiHop: true, interface: eth0, connectTime: 1500ms}
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: p3, namespace: metallb-system}
spec: {myASN: 65005, peerASN: 65005, peerAddress: 10.0.5.1, holdTime: soon, connectTime: 5s}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: ad, namespace: metallb-system}
spec: {aggregationLength: 33, communities: ["70000:1", "1:1", "1:1"], serviceSelectors: [{matchLabels: {a: b}}], aggregationLengthV6: 64}
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: c, namespace: metallb-system}
spec: {communities: [{name: x, value: "no-export"}]}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: b, namespace: metallb-system}
spec: {echoMode: true, detectMultiplier: 1}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool, namespace: metallb-system}
spec: {addresses: [20.0.0.5, "20.0.0.9-20.0.0.1", "20.0.0.1-::1", nope]}
"#;
    let e = errors(&[bad]);
    let want = [
        "p1: spec.myASN: missing local ASN",
        "p1: spec.dynamicASN: both peer ASN and dynamicASN specified",
        "p1: spec.peerAddress: invalid BGPPeer address \"leaf\"",
        "p1: spec.holdTime: invalid hold time 2s: must be 0 or >=3s",
        "p1: spec.routerID: invalid router ID \"::1\"",
        "p1: spec.passwordSecret: can not have both password and secret ref set",
        "p1: spec.vrf: VRFs are not supported by kbgp",
        "p1: spec.localASN: a per-peer local AS is not supported by kbgp",
        "p2: spec.interface: BGP unnumbered is not supported by kbgp",
        "p2: spec.keepaliveTime: invalid keepaliveTime 10s, must be lower than holdTime 9s",
        "p2: spec.connectTime: must be whole seconds",
        "p2: spec.ebgpMultiHop: invalid ebgp-multihop parameter set for an ibgp peer",
        "p3: spec.holdTime: \"soon\" is not a duration",
        "p3: spec.connectTime: is a field of metallb.io/v1beta2, not v1beta1",
        "ad: spec.aggregationLength: invalid aggregation length 33 for IPv4",
        "ad: spec.communities[0]: invalid community \"70000:1\"",
        "ad: spec.communities[2]: duplicate definition of \"1:1\"",
        "ad: spec.serviceSelectors: cannot be combined with an aggregation length other than the default",
        "c: spec.communities[0].value: parsing community \"no-export\"",
        "b: spec.detectMultiplier: must be 2..=255, got 1",
        "b: spec.echoMode: is not supported",
        "pool: spec.addresses[0]: \"20.0.0.5\" has no prefix length",
        "pool: spec.addresses[1]: invalid IP range \"20.0.0.9-20.0.0.1\": start IP is after the end IP",
        "pool: spec.addresses[2]: invalid IP range \"20.0.0.1-::1\": start and end are of different families",
        "pool: spec.addresses[3]: \"nope\" is not a CIDR or an a-b range",
    ];
    for w in want {
        assert!(e.iter().any(|e| e.starts_with(w)), "missing {w:?} in {e:#?}");
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
    // A field MetalLB does not have is refused, naming it.
    let typo = ML.replace("peerASN: 65005", "peerAsn: 65005");
    assert!(errors(&[&typo]).iter().any(|e| e.contains("unknown field `peerAsn`")), "{:?}", errors(&[&typo]));
    // An alias defined twice, across Community objects.
    let twice = "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: more, namespace: metallb-system}\nspec: {communities: [{name: no-export, value: \"65535:65281\"}]}\n";
    assert!(errors(&[ML, twice]).iter().any(|e| e.contains("alias \"no-export\" is also defined in Community")));
}

#[test]
fn an_unknown_alias_leaves_its_advertisement_out_with_a_note() {
    let ml = ML.replace("no-export, \"large", "no-such-alias, \"large");
    let web = service("web", "20.0.10.100", "advertise-bgp: \"true\"", "");
    let (plan, routes) = planned(&world(&[NODE, &ml, &web])).unwrap();
    assert!(routes.is_empty(), "announcing without the community asked for would be worse");
    assert!(
        plan.notes.iter().any(|n| n.contains("\"no-such-alias\" is neither a community nor an alias")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn objects_of_other_namespaces_and_layer_2_are_reported_not_read() {
    let l = loaded(&[
        NODE,
        &ML.replace("name: leaf, namespace: metallb-system", "name: leaf, namespace: elsewhere"),
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\nspec: {ipAddressPools: [lb-pool]}\n",
    ]);
    assert!(l.world.metallb.peers.is_empty());
    assert!(l.warnings.iter().any(|w| w.contains("BGPPeer elsewhere/leaf ignored")), "{:?}", l.warnings);
    assert!(l.warnings.iter().any(|w| w.starts_with("L2Advertisement l2: layer 2")), "{:?}", l.warnings);
    // A file that leaves the namespace out: the MetalLB namespace.
    let w = world(&[NODE, &ML.replace(", namespace: metallb-system", "")]);
    assert_eq!(w.metallb.peers.len(), 1);
    assert_eq!(w.pools.len(), 1);
}

#[test]
fn a_cilium_policy_and_metallb_peers_share_a_node_unless_they_configure_the_same_neighbor() {
    let web = service("web", "20.0.10.100", "advertise-bgp: \"true\"", "");
    // Different neighbors of the same AS: one virtual router, each neighbor with its routes.
    let spine = ML.replace("peerAddress: 10.0.5.1", "peerAddress: 10.0.5.2");
    let w = world(&[NODE, crate::test_fixtures::POLICY, &spine, &web]);
    let (plan, up) = Planner::new("rack0-node1").update(Arc::new(w)).unwrap();
    assert_eq!(plan.vrouters.len(), 1);
    assert_eq!(plan.peers().count(), 2);
    let Some(RouteUpdate::Full(groups)) = up else { panic!() };
    let routes_of = |addr: &str| {
        let (_, p) = plan.peers().find(|(_, p)| p.key.address.to_string() == addr).unwrap();
        groups.iter().find(|(g, _)| *g == p.group).map(|(_, r)| r.clone()).unwrap_or_default()
    };
    assert_eq!(prefixes(&routes_of("10.0.5.1")), ["10.1.0.0/24", "20.0.10.100/32"]);
    let m = routes_of("10.0.5.2");
    assert_eq!(prefixes(&m), ["20.0.10.100/32"]);
    assert_eq!(m[0].attrs.local_pref, Some(200));
    // The same neighbor from both: a conflict, reported.
    let e = planned(&world(&[NODE, crate::test_fixtures::POLICY, ML, &web])).unwrap_err().to_string();
    assert!(e.contains("neighbor 10.0.5.1 of AS65005 is configured both by CiliumBGPPeeringPolicy rack0-65005"), "{e}");
}

// ---- LB IPAM with MetalLB's pools and annotations ----

fn assigned(docs: &[&str]) -> crate::ipam::Allocation {
    crate::ipam::allocate(&world(docs))
}

fn lb(name: &str, ns: &str, annotations: &str, labels: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}, annotations: {{{annotations}}}, labels: {{{labels}}}}}\n\
         spec: {{type: LoadBalancer, ports: [{{port: 80, protocol: TCP}}]}}\n"
    )
}

fn pool(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: metallb-system}}\nspec: {{{spec}}}\n"
    )
}

fn ips(a: &crate::ipam::Allocation, key: &str) -> Vec<String> {
    a.services.get(key).map(|v| v.iter().map(|(ip, _)| ip.to_string()).collect()).unwrap_or_default()
}

#[test]
fn ipam_auto_assign_address_pool_and_load_balancer_ips() {
    let manual = pool("manual", "addresses: [20.0.1.0/24], autoAssign: false");
    let auto = pool("auto", "addresses: [20.0.2.10-20.0.2.20]");
    let a = assigned(&[
        &manual,
        &auto,
        &lb("plain", "default", "", ""),
        &lb("pinned", "default", "metallb.io/address-pool: manual", ""),
        &lb("asks", "default", "metallb.io/loadBalancerIPs: 20.0.1.77", ""),
        &lb("old", "default", "metallb.universe.tf/loadBalancerIPs: 20.0.2.15", ""),
        &lb("typo", "default", "metallb.io/address-pool: nope", ""),
    ]);
    assert_eq!(ips(&a, "default/plain"), ["20.0.2.10"], "autoAssign: false is skipped");
    assert_eq!(ips(&a, "default/pinned"), ["20.0.1.0"], "address-pool names a pool, even one not auto-assigned");
    assert_eq!(ips(&a, "default/asks"), ["20.0.1.77"]);
    assert_eq!(ips(&a, "default/old"), ["20.0.2.15"]);
    assert!(ips(&a, "default/typo").is_empty());
    assert!(
        a.problems.iter().any(|p| p.subject == "default/typo" && p.message.contains("\"nope\", which does not exist"))
    );
}

#[test]
fn ipam_service_allocation_orders_and_limits_pools() {
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {team: a}}\n";
    let general = pool("general", "addresses: [20.0.9.0/24]");
    let low = pool("low", "addresses: [20.0.3.0/24], serviceAllocation: {priority: 20, namespaces: [team-a]}");
    let high = pool(
        "high",
        "addresses: [20.0.4.0/24], serviceAllocation: {priority: 10, namespaceSelectors: [{matchLabels: {team: a}}]}",
    );
    let web = pool(
        "web-only",
        "addresses: [20.0.5.0/24], serviceAllocation: {serviceSelectors: [{matchLabels: {tier: web}}]}",
    );
    let a = assigned(&[
        ns,
        &general,
        &low,
        &high,
        &web,
        &lb("x", "team-a", "", ""),
        &lb("y", "default", "", ""),
        &lb("z", "default", "", "tier: web"),
        &lb("w", "default", "metallb.io/loadBalancerIPs: 20.0.4.9", ""),
    ]);
    assert_eq!(ips(&a, "team-a/x"), ["20.0.4.0"], "priority 10 before 20, both before pools without one");
    assert_eq!(ips(&a, "default/y"), ["20.0.9.0"], "a pool with serviceAllocation is never a general fallback");
    assert_eq!(ips(&a, "default/z"), ["20.0.5.0"], "unset priority, still before pools without serviceAllocation");
    assert!(ips(&a, "default/w").is_empty());
    assert!(
        a.problems.iter().any(|p| p.subject == "default/w" && p.message.contains("serviceAllocation")),
        "{:?}",
        a.problems
    );
}

#[test]
fn ipam_avoid_buggy_ips_and_sharing_across_namespaces() {
    let p = pool("p", "addresses: [20.0.6.255/32, 20.0.7.0/31], avoidBuggyIPs: true");
    let a = assigned(&[
        &p,
        &lb("a", "default", "metallb.io/allow-shared-ip: k", ""),
        &lb("b", "other", "metallb.io/allow-shared-ip: k", "").replace("port: 80", "port: 443"),
        &lb("c", "default", "metallb.io/loadBalancerIPs: 20.0.7.0", ""),
    ]);
    assert_eq!(ips(&a, "default/a"), ["20.0.7.1"], ".255 and .0 are skipped");
    assert_eq!(ips(&a, "other/b"), ["20.0.7.1"], "MetalLB's sharing key holds across namespaces");
    assert!(
        a.problems.iter().any(|p| p.subject == "default/c" && p.message.contains("avoidBuggyIPs")),
        "{:?}",
        a.problems
    );
    let st = a.pools.iter().find(|s| s.name == "p").unwrap();
    assert_eq!((st.total, st.used), (1, 1));
}

#[test]
fn lb_class_decides_which_services_are_announced_and_why_says_so() {
    let web = service("web", "20.0.10.100", "advertise-bgp: \"true\"", "");
    let classy = service("classy", "20.0.10.101", "advertise-bgp: \"true\"", "  loadBalancerClass: example.com/bgp\n");
    let mut w = world(&[NODE, ML, &web, &classy]);
    let (_, r) = planned(&w).unwrap();
    assert_eq!(prefixes(&r), ["20.0.10.100/32"], "another class is another controller's");
    w.lb_class = Some("example.com/bgp".into());
    let (plan, r) = planned(&w).unwrap();
    assert_eq!(prefixes(&r), ["20.0.10.101/32"]);
    assert!(
        candidate(&plan, &w, "20.0.10.100/32")
            .reason()
            .contains("no loadBalancerClass, and kbgp serves class example.com/bgp only"),
        "{}",
        candidate(&plan, &w, "20.0.10.100/32").reason()
    );
}
