use super::*;
use crate::wire::Family;
use std::net::IpAddr;

fn seed() -> String {
    ["bgp-peering-policies.yaml", "lb-ip-pool.yaml", "nginx.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("{}/examples/seed/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

fn errors(yaml: &str) -> Vec<String> {
    load_str(yaml, "test.yaml").unwrap_err().iter().map(|e| e.to_string()).collect()
}

use crate::test_fixtures::{POLICY, kbgp_kind};

#[test]
fn the_seed_manifests_load_as_they_are() {
    let l = load_str(&seed(), "seed").unwrap();
    let w = &l.world;
    assert_eq!(w.policies.len(), 2);
    assert_eq!(w.pools.len(), 1);
    assert_eq!(w.services.len(), 1);
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
    assert!(l.warnings[0].contains("apps/v1 Deployment"), "{:?}", l.warnings);
    let p = &w.policies[0];
    assert_eq!(p.name, "rack0-65005");
    let vr = &p.virtual_routers[0];
    assert_eq!(vr.local_asn, 65005);
    let ex = &vr.exports[0];
    assert!(ex.pod_cidrs[0].enabled);
    let a = ex.services[0].addresses;
    assert!(a.load_balancer_ip && !a.cluster_ip && !a.external_ip);
    let n = &vr.neighbors[0];
    assert_eq!(n.address, "10.0.5.1".parse::<IpAddr>().unwrap());
    assert_eq!((n.port, n.peer_asn, n.hold_time, n.keepalive, n.connect_retry_secs), (179, 65005, 90, 30, 120));
    assert_eq!(n.ebgp_multihop_ttl, 1);
    assert_eq!(n.families, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert!(!n.passive && n.graceful_restart.is_none());
    let s = &w.services[0];
    assert_eq!(
        (s.namespace.as_str(), s.name.as_str(), s.kind),
        ("default", "nginx-service", ServiceType::LoadBalancer)
    );
    assert_eq!(s.labels["advertise-bgp"], "true");
}

#[test]
fn out_of_range_asn_names_document_and_field() {
    let y = POLICY.replace("peerASN: 65005", "peerASN: 0");
    assert_eq!(
        errors(&y),
        vec!["rack0-65005: spec.virtualRouters[0].neighbors[0].peerASN: must be 1..=4294967295, got 0"]
    );
    let y = POLICY.replace("peerASN: 65005", "peerASN: 4294967296");
    assert_eq!(
        errors(&y)[0],
        "rack0-65005: spec.virtualRouters[0].neighbors[0].peerASN: must be 1..=4294967295, got 4294967296"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let y = POLICY
        .replace("peerASN: 65005", "peerASN: 65005\n      holdTimeSeconds: 2\n      peerPort: 70000")
        .replace("localASN: 65005", "localASN: -1");
    let e = errors(&y);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e.iter().any(|x| x.contains("localASN: must be 1..=4294967295")));
    assert!(e.iter().any(|x| x.contains("neighbors[0].holdTimeSeconds: must be 3..=65535")));
    assert!(e.iter().any(|x| x.contains("neighbors[0].peerPort: must be 1..=65535")));
}

#[test]
fn typos_and_wrong_types_are_caught_with_their_path() {
    let y = POLICY.replace("peerASN: 65005", "peerAsn: 65005");
    let e = errors(&y);
    assert!(e[0].starts_with("rack0-65005: spec.virtualRouters[0].neighbors[0].peerAsn: unknown field `peerAsn`, expected one of `peerAddress`"), "{e:?}");
    let y = POLICY.replace("localASN: 65005", "localASN: sixty");
    assert!(
        errors(&y)[0].starts_with("rack0-65005: spec.virtualRouters[0].localASN: invalid type"),
        "{:?}",
        errors(&y)
    );
}

#[test]
fn keepalive_must_not_exceed_hold_time() {
    let y =
        POLICY.replace("peerASN: 65005", "peerASN: 65005\n      holdTimeSeconds: 9\n      keepAliveTimeSeconds: 10");
    assert_eq!(
        errors(&y),
        vec![
            "rack0-65005: spec.virtualRouters[0].neighbors[0].keepAliveTimeSeconds: 10 is larger than holdTimeSeconds (9)"
        ]
    );
}

#[test]
fn zero_timers_mean_the_default_as_in_cilium() {
    let y = POLICY.replace("peerASN: 65005", "peerASN: 65005\n      holdTimeSeconds: 0\n      keepAliveTimeSeconds: 0");
    let n = &load_str(&y, "t").unwrap().world.policies[0].virtual_routers[0].neighbors[0];
    assert_eq!((n.hold_time, n.keepalive), (90, 30));
}

#[test]
fn kbgp_extensions_need_the_kbgp_kind() {
    let y = POLICY.replace("peerASN: 65005", "peerASN: 65005\n      passive: true");
    assert_eq!(
        errors(&y),
        vec![
            "rack0-65005: spec.virtualRouters[0].neighbors[0].passive: is a kbgp extension: use apiVersion kbgp.io/v1alpha1, kind BGPPeeringPolicy"
        ]
    );
    let y = kbgp_kind(&y);
    let l = load_str(&y, "t").unwrap();
    assert!(l.world.policies[0].virtual_routers[0].neighbors[0].passive);
    assert_eq!(l.world.policies[0].kind, PolicyKind::Kbgp);
}

#[test]
fn path_attributes_and_families() {
    let y = POLICY.replace(
        "peerASN: 65005",
        r#"peerASN: 65005
      families: [{afi: ipv4, safi: unicast}]
      advertisedPathAttributes:
      - selectorType: CiliumLoadBalancerIPPool
        communities: {standard: ["65005:100"], wellKnown: [no-export], large: ["65005:1:2"]}
        localPreference: 200"#,
    );
    let l = load_str(&y, "t").unwrap();
    let n = &l.world.policies[0].virtual_routers[0].neighbors[0];
    assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
    let r = &n.path_attributes[0];
    assert_eq!(r.communities.len(), 2);
    assert_eq!(r.large_communities[0].to_string(), "65005:1:2");
    assert_eq!(r.local_preference, Some(200));
    let bad = y
        .replace("\"65005:100\"", "\"65536:1\"")
        .replace("no-export", "no-exports")
        .replace("ipv4, safi: unicast", "l2vpn, safi: evpn");
    let e = errors(&bad);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].contains("families[0]: l2vpn/evpn is not supported"), "{e:?}");
    assert!(e.iter().any(|x| x.contains("advertisedPathAttributes[0].communities.standard[0]")));
    assert!(e.iter().any(|x| x.contains("advertisedPathAttributes[0].communities.wellKnown[0]")));
}

#[test]
fn syntax_errors_point_at_the_line() {
    let e = errors("apiVersion: v1\nkind: Node\nmetadata: {name: a\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("test.yaml: YAML: "), "{e:?}");
    assert!(e[0].contains("line"), "{e:?}");
}

#[test]
fn documents_need_a_name_and_a_kind() {
    let e = errors("apiVersion: v1\nkind: Service\nmetadata: {}\n");
    assert_eq!(e, vec!["document 1 (Service): metadata.name: is required"]);
    let e = errors("foo: bar\n");
    assert_eq!(e, vec!["document 1: missing apiVersion or kind"]);
}

#[test]
fn services_and_nodes() {
    let y = r#"
apiVersion: v1
kind: Node
metadata: {name: kind-worker, labels: {rack: rack0}}
spec: {podCIDRs: [10.1.0.0/24, "fd00:1::/64"]}
status: {addresses: [{type: InternalIP, address: 10.0.5.11}, {type: Hostname, address: kind-worker}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod, labels: {advertise-bgp: "true"}}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00:96::10"]
  externalIPs: [192.0.2.10]
  externalTrafficPolicy: Local
status: {loadBalancer: {ingress: [{ip: 20.0.0.100}, {hostname: lb.example}]}}
"#;
    let w = load_str(y, "t").unwrap().world;
    let n = w.node("kind-worker").unwrap();
    assert_eq!(n.pod_cidrs.len(), 2);
    assert_eq!(n.address("InternalIP", true), Some("10.0.5.11".parse().unwrap()));
    let s = &w.services[0];
    assert_eq!(s.key(), "prod/web");
    assert_eq!(s.cluster_ips.len(), 2);
    assert_eq!(s.ingress_ips, vec!["20.0.0.100".parse::<IpAddr>().unwrap()]);
    assert!(s.external_traffic_local);
    let e = errors(&y.replace("192.0.2.10", "192.0.2.300"));
    assert_eq!(e, vec!["web: spec.externalIPs[0]: \"192.0.2.300\" is not an IP address"]);
    let e = errors(&y.replace("advertise-bgp: \"true\"", "advertise-bgp: true"));
    assert!(e[0].starts_with("web: metadata.labels.advertise-bgp: invalid type: boolean `true`"), "{e:?}");
}

#[test]
fn a_node_with_two_policies_is_a_cross_document_error() {
    let y = format!(
        "{POLICY}\n---\n{}\n---\napiVersion: v1\nkind: Node\nmetadata: {{name: n1, labels: {{rack: rack0}}}}\n",
        POLICY.replace("rack0-65005", "other")
    );
    let w = load_str(&y, "t").unwrap().world;
    let e: Vec<String> = w.cross_check().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        e,
        vec!["n1: metadata.labels: selected by 2 peering policies (rack0-65005, other); a node may have only one"]
    );
}

#[test]
fn lists_and_pools() {
    let y = r#"
apiVersion: v1
kind: List
items:
- apiVersion: cilium.io/v2alpha1
  kind: CiliumLoadBalancerIPPool
  metadata: {name: p1, labels: {tier: web}}
  spec:
    blocks: [{cidr: 20.0.0.0/24}, {start: 20.0.1.10, stop: 20.0.1.20}, {start: 20.0.2.5}]
    allowFirstLastIPs: "No"
"#;
    let w = load_str(y, "t").unwrap().world;
    let p = &w.pools[0];
    assert_eq!(p.blocks.len(), 3);
    assert!(!p.allow_first_last_ips);
    assert!(p.contains(&"20.0.1.15".parse().unwrap()));
    assert!(p.contains(&"20.0.2.5".parse().unwrap()));
    assert!(!p.contains(&"20.0.2.6".parse().unwrap()));
    let e = errors(&y.replace("stop: 20.0.1.20", "stop: 20.0.1.2"));
    assert_eq!(e, vec!["p1: spec.blocks[1].stop: 20.0.1.2 is before start 20.0.1.10"]);
}

/// The fast reader and the careful one give the same World, warnings and errors, or the
/// fast one leaves the text to the careful one. Returns whether the fast one read it.
fn readers_agree(text: &str) -> bool {
    let careful = load::load_careful(text, "t");
    let Ok(fast) = load::load_fast(text, "t") else { return false };
    match (fast, careful) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.world, b.world, "{text}");
            assert_eq!(a.warnings, b.warnings, "{text}");
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "{text}"),
        (a, b) => panic!("fast {a:?}, careful {b:?}:\n{text}"),
    }
    true
}

#[test]
fn the_fast_reader_reads_manifests_as_the_careful_one() {
    let service = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: prod\n  labels:\n    advertise-bgp: \"true\"\n  annotations:\n    kbgp.io/ips: 20.0.0.7\n{extra}spec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.10\n  ports:\n  - port: 80\n    protocol: TCP\n  externalTrafficPolicy: Local\nstatus:\n  loadBalancer:\n    ingress:\n    - ip: 20.0.0.100\n    - ip: 20.0.0.100\n    - hostname: lb.example\n"
        )
    };
    // kubectl get -o yaml: keys in alphabetical order, so a List's kind comes after its items.
    let kubectl_list = format!(
        "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata:\n    name: n1\n    labels: {{rack: rack0}}\n  spec:\n    podCIDRs:\n    - 10.1.0.0/24\n  status:\n    addresses:\n    - address: 10.0.5.11\n      type: InternalIP\n- {}\nkind: List\nmetadata:\n  resourceVersion: \"\"\n",
        service("web", "  creationTimestamp: \"2026-01-01T00:00:00Z\"\n").replace('\n', "\n  ").trim_end()
    );
    // Fields before apiVersion and kind are read again once they are known.
    let kind_last = "metadata: {name: late}\nspec: {podCIDR: 10.2.0.0/24}\nkind: Node\napiVersion: v1\n";
    let taken = [
        seed(),
        POLICY.to_string(),
        kbgp_kind(POLICY),
        service("web", ""),
        format!("{}---\n{}", service("a", ""), service("b", "")),
        kubectl_list,
        kind_last.to_string(),
        // Errors found after reading: validation, duplicates, the policy's metadata untyped.
        POLICY.replace("peerASN: 65005", "peerASN: 0"),
        format!("{}---\n{}", service("a", ""), service("a", "")),
        POLICY.replace("{name: rack0-65005}", "{name: rack0-65005, labels: {weird: 1}}"),
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: p}\nspec: {cidrs: [{cidr: 20.0.0.0/24}]}\n".into(),
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, labels: {kubernetes.io/service-name: web}}\nendpoints:\n- addresses: [10.1.0.5]\n  nodeName: n1\n  conditions: {ready: false}\n".into(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, labels: {v: 1}}\nspec: {replicas: 1}\n".into(),
        "apiVersion: apps/v1\nkind: Deployment\nspec: {}\n".into(),
        "---\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n}\n".into(),
        "apiVersion: v1\nkind: List\nitems: []\n".into(),
    ];
    for t in &taken {
        assert!(readers_agree(t), "the fast reader left this to the careful one:\n{t}");
    }
    // Problems the careful reader words: the fast one leaves them to it.
    for t in [
        "apiVersion: v1\nkind: Service\nmetadata: {}\n".to_string(),
        "foo: bar\n".into(),
        "- a\n".into(),
        "apiVersion: v1\nkind: List\n".into(),
        "apiVersion: v1\nkind: List\nitems: [5]\n".into(),
        POLICY.replace("peerASN: 65005", "peerAsn: 65005"),
        service("web", "").replace("advertise-bgp: \"true\"", "advertise-bgp: true"),
        "apiVersion: v1\nkind: Node\nmetadata: {name: a\n".into(),
        "apiVersion: v1\nkind: Node\nkind: Node\nmetadata: {name: a}\n".into(),
        "apiVersion: 1\nkind: Node\nmetadata: {name: a}\n".into(),
    ] {
        assert!(!readers_agree(&t), "{t}");
        assert!(load_str(&t, "t").is_err(), "{t}");
    }
}

#[test]
fn a_large_file_takes_the_fast_reader() {
    // The shape of the benchmark's 1M-address file, smaller: it must not fall back.
    let mut y = format!("{POLICY}\n---\napiVersion: v1\nkind: Node\nmetadata: {{name: n1, labels: {{rack: rack0}}}}\n");
    for s in 0..20 {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{s}\n  labels:\n    advertise-bgp: \"true\"\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\nstatus:\n  loadBalancer:\n    ingress:\n"
        ));
        for i in 0..50 {
            y.push_str(&format!("    - ip: 20.0.{s}.{i}\n"));
        }
    }
    assert!(readers_agree(&y));
    let w = load_str(&y, "t").unwrap().world;
    assert_eq!(w.services.iter().map(|s| s.ingress_ips.len()).sum::<usize>(), 1000);
}

#[test]
fn max_received_routes_action_and_restart() {
    use crate::config::policy::OverLimit;
    use std::time::Duration;
    let kbgp = |extra: &str| {
        kbgp_kind(POLICY).replace("peerASN: 65005", &format!("peerASN: 65005\n      maxReceivedRoutes: 10{extra}"))
    };
    let over = |y: &str| load_str(y, "t").unwrap().world.policies[0].virtual_routers[0].neighbors[0].over_max_received;
    assert_eq!(over(&kbgp("")), OverLimit::Drop);
    assert_eq!(over(&kbgp("\n      maxReceivedRoutesAction: Drop")), OverLimit::Drop);
    assert_eq!(
        over(&kbgp("\n      maxReceivedRoutesAction: Cease")),
        OverLimit::Cease { restart: Some(Duration::from_secs(60)) }
    );
    assert_eq!(
        over(&kbgp("\n      maxReceivedRoutesAction: Cease\n      maxReceivedRoutesRestartSeconds: 0")),
        OverLimit::Cease { restart: None }
    );
    let field = "rack0-65005: spec.virtualRouters[0].neighbors[0]";
    assert_eq!(
        errors(&kbgp("\n      maxReceivedRoutesAction: cease")),
        vec![format!("{field}.maxReceivedRoutesAction: \"cease\" is not one of Drop, Cease")]
    );
    assert_eq!(
        errors(&kbgp("\n      maxReceivedRoutesRestartSeconds: 30")),
        vec![format!("{field}.maxReceivedRoutesRestartSeconds: applies only with maxReceivedRoutesAction: Cease")]
    );
    assert_eq!(
        errors(&kbgp("\n      maxReceivedRoutesAction: Cease\n      maxReceivedRoutesRestartSeconds: 90000")),
        vec![format!("{field}.maxReceivedRoutesRestartSeconds: must be 0..=86400, got 90000")]
    );
}

#[test]
fn ttl_security_is_for_directly_connected_ebgp_and_the_kbgp_kind() {
    let kbgp = |neighbor: &str| kbgp_kind(POLICY).replace("peerASN: 65005", neighbor);
    let field = "rack0-65005: spec.virtualRouters[0].neighbors[0].ttlSecurity";
    let ok = load_str(&kbgp("peerASN: 65100\n      ttlSecurity: true"), "t").unwrap();
    assert!(ok.world.policies[0].virtual_routers[0].neighbors[0].ttl_security);
    assert_eq!(
        errors(&kbgp("peerASN: 65005\n      ttlSecurity: true")),
        vec![format!("{field}: is for eBGP neighbors (RFC 5082): peerASN 65005 is this virtual router's localASN")]
    );
    assert_eq!(
        errors(&kbgp("peerASN: 65100\n      eBGPMultihopTTL: 2\n      ttlSecurity: true")),
        vec![format!(
            "{field}: is for directly connected neighbors (RFC 5082 §3): it cannot be combined with eBGPMultihopTTL above 1"
        )]
    );
    let cilium = POLICY.replace("peerASN: 65005", "peerASN: 65100\n      ttlSecurity: true");
    assert_eq!(
        errors(&cilium),
        vec![format!("{field}: is a kbgp extension: use apiVersion kbgp.io/v1alpha1, kind BGPPeeringPolicy")]
    );
}

#[test]
fn bfd_takes_metallb_names_and_defaults_and_names_each_bad_field() {
    let kbgp = |neighbor: &str| kbgp_kind(POLICY).replace("peerASN: 65005", neighbor);
    let bfd_of = |y: &str| load_str(&kbgp(y), "t").unwrap().world.policies[0].virtual_routers[0].neighbors[0].bfd;
    let ms = std::time::Duration::from_millis;
    let b = bfd_of("peerASN: 65005\n      bfd: {}").unwrap();
    assert_eq!(
        (b.session.transmit_interval, b.session.receive_interval, b.session.detect_multiplier),
        (ms(300), ms(300), 3)
    );
    assert_eq!((b.multihop, b.min_ttl, b.session.passive), (false, 255, false));
    let b = bfd_of("peerASN: 65100\n      eBGPMultihopTTL: 3\n      bfd: {receiveInterval: 100, transmitInterval: 50, detectMultiplier: 5, passiveMode: true}")
        .unwrap();
    assert_eq!(
        (b.session.transmit_interval, b.session.receive_interval, b.session.detect_multiplier),
        (ms(50), ms(100), 5)
    );
    assert_eq!((b.multihop, b.min_ttl, b.session.passive), (true, 254, true), "eBGP multihop: RFC 5883 by default");
    assert_eq!(bfd_of("peerASN: 65005\n      bfd: {multihop: true, minimumTtl: 250}").unwrap().min_ttl, 250);
    assert_eq!(bfd_of("peerASN: 65005").map(|_| ()), None, "absent: no BFD");
    let field = "rack0-65005: spec.virtualRouters[0].neighbors[0].bfd";
    assert_eq!(
        errors(&kbgp(
            "peerASN: 65005\n      bfd: {receiveInterval: 5, detectMultiplier: 1, minimumTtl: 200, echoMode: true}"
        )),
        vec![
            format!("{field}.receiveInterval: must be 10..=60000, got 5"),
            format!("{field}.detectMultiplier: must be 2..=255, got 1"),
            format!(
                "{field}.minimumTtl: applies only to multihop BFD: single hop always requires TTL 255 (RFC 5881 §5)"
            ),
            format!("{field}.echoMode: is not supported: kbgp runs BFD in asynchronous mode without Echo"),
        ]
    );
    let cilium = POLICY.replace("peerASN: 65005", "peerASN: 65005\n      bfd: {}");
    assert_eq!(
        errors(&cilium),
        vec![format!("{field}: is a kbgp extension: use apiVersion kbgp.io/v1alpha1, kind BGPPeeringPolicy")]
    );
}

#[test]
fn long_lived_graceful_restart_is_a_kbgp_extension_that_needs_graceful_restart() {
    let gr = |g: &str| format!("peerASN: 65005\n      gracefulRestart: {g}");
    let kbgp = |g: &str| kbgp_kind(POLICY).replace("peerASN: 65005", &gr(g));
    let n = load_str(&kbgp("{enabled: true, longLivedStaleTimeSeconds: 86400}"), "t").unwrap().world.policies[0]
        .virtual_routers[0]
        .neighbors[0]
        .clone();
    assert_eq!((n.graceful_restart, n.long_lived_stale_time), (Some(120), Some(86400)));
    let field = "rack0-65005: spec.virtualRouters[0].neighbors[0].gracefulRestart.longLivedStaleTimeSeconds";
    assert_eq!(
        errors(&kbgp("{enabled: false, longLivedStaleTimeSeconds: 60}")),
        vec![format!("{field}: needs gracefulRestart.enabled: true (RFC 9494 §3)")]
    );
    assert_eq!(
        errors(&kbgp("{enabled: true, longLivedStaleTimeSeconds: 16777216}")),
        vec![format!("{field}: must be 1..=16777215, got 16777216")]
    );
    assert_eq!(
        errors(&POLICY.replace("peerASN: 65005", &gr("{enabled: true, longLivedStaleTimeSeconds: 60}"))),
        vec![format!("{field}: is a kbgp extension: use apiVersion kbgp.io/v1alpha1, kind BGPPeeringPolicy")]
    );
}
