//! Kubernetes mode against an in-test API server (common/list_watch_server.rs) and a real
//! FRR route reflector: kbgp watches Nodes, Services, EndpointSlices and the peering policy
//! and pool kinds, and what it announces follows the objects, whatever the API server does.

mod common;

use common::list_watch_server::ListWatchServer;
use common::peer::{Peer, PeerSpec};
use common::{Kbgp, Lab, wait_for};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::time::Duration;

const NODES: &str = "api/v1/nodes";
const SERVICES: &str = "api/v1/services";
const SLICES: &str = "apis/discovery.k8s.io/v1/endpointslices";
const CILIUM_POLICIES: &str = "apis/cilium.io/v2alpha1/ciliumbgppeeringpolicies";
const CILIUM_POOLS: &str = "apis/cilium.io/v2alpha1/ciliumloadbalancerippools";
const KBGP_POLICIES: &str = "apis/kbgp.io/v1alpha1/bgppeeringpolicies";
const KBGP_POOLS: &str = "apis/kbgp.io/v1alpha1/loadbalancerippools";

fn prefixes(list: &[&str]) -> BTreeSet<IpNet> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

/// The seed's objects, with the lab's addresses: the rack-0 policy, the pool, the node.
fn seed_objects(s: &ListWatchServer, lab: &Lab) {
    s.apply(
        NODES,
        &format!(
            "{{apiVersion: v1, kind: Node, metadata: {{name: node1, labels: {{rack: rack0}}}},
              spec: {{podCIDRs: [10.1.0.0/24]}}, status: {{addresses: [{{type: InternalIP, address: {}}}]}}}}",
            lab.kbgp_v4
        ),
    );
    s.apply(
        CILIUM_POLICIES,
        &format!(
            r#"{{apiVersion: cilium.io/v2alpha1, kind: CiliumBGPPeeringPolicy, metadata: {{name: rack0-65005}},
               spec: {{nodeSelector: {{matchLabels: {{rack: rack0}}}},
                      virtualRouters: [{{localASN: 65005, exportPodCIDR: true,
                                         serviceSelector: {{matchLabels: {{advertise-bgp: "true"}}}},
                                         neighbors: [{{peerAddress: "{}/24", peerASN: 65005, connectRetryTimeSeconds: 5}}]}}]}}}}"#,
            lab.peer_v4
        ),
    );
    s.apply(
        CILIUM_POOLS,
        "{apiVersion: cilium.io/v2alpha1, kind: CiliumLoadBalancerIPPool, metadata: {name: lb-pool},
          spec: {blocks: [{start: 20.0.0.100, stop: 20.0.0.200}]}}",
    );
}

/// A LoadBalancer Service with its ingress IP already in status.
fn service(name: &str, ip: &str, label: &str, extra: &str) -> String {
    format!(
        r#"{{apiVersion: v1, kind: Service, metadata: {{name: {name}, namespace: default, labels: {{advertise-bgp: "{label}"}}}},
            spec: {{type: LoadBalancer, ports: [{{port: 80}}]{extra}}}, status: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}}}"#
    )
}

fn slice(name: &str, svc: &str, eps: &[(&str, bool, bool, bool)]) -> String {
    let e: Vec<String> = eps
        .iter()
        .map(|(n, r, s, t)| {
            format!(
                "{{addresses: [10.1.0.9], nodeName: {n}, conditions: {{ready: {r}, serving: {s}, terminating: {t}}}}}"
            )
        })
        .collect();
    format!(
        "{{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, addressType: IPv4, endpoints: [{}],
          metadata: {{name: {name}, namespace: default, labels: {{kubernetes.io/service-name: {svc}}}}}}}",
        e.join(", ")
    )
}

fn wait_routes(peer: &dyn Peer, want: &BTreeSet<IpNet>, timeout: Duration) {
    wait_for("the peer to hold exactly the expected routes", timeout, || {
        let got = peer.prefixes()?;
        if got == *want { Ok(()) } else { Err(format!("{got:?}")) }
    });
}

struct Setup {
    _lab: Lab,
    peer: Box<dyn Peer>,
    server: ListWatchServer,
    kbgp: Kbgp,
}

fn setup(tag: &str) -> Setup {
    let mut lab = Lab::new(tag);
    let peer = common::peer::start("frr", &mut lab, &PeerSpec { asn: 65005, kbgp_asn: 65005 });
    let server = ListWatchServer::start(&lab.kbgp_ns);
    server.set_missing(KBGP_POLICIES);
    server.set_missing(KBGP_POOLS);
    seed_objects(&server, &lab);
    let kbgp = Kbgp::start_kube(&lab, &server.kubeconfig(), "node1", common::METRICS, &[]);
    Setup { _lab: lab, peer, server, kbgp }
}

#[test]
fn the_seed_manifests_give_the_seed_routes_and_follow_the_labels() {
    let s = setup("k8s-seed");
    s.server.apply(SERVICES, &service("nginx-service", "20.0.0.100", "true", ""));
    wait_routes(s.peer.as_ref(), &prefixes(&["10.1.0.0/24", "20.0.0.100/32"]), Duration::from_secs(60));
    // The label goes: the /32 is withdrawn, the pod CIDR stays, the session is not reset.
    let transitions = s.kbgp.metric("kbgp_session_transitions_total", &[]);
    s.server.apply(SERVICES, &service("nginx-service", "20.0.0.100", "false", ""));
    wait_routes(s.peer.as_ref(), &prefixes(&["10.1.0.0/24"]), Duration::from_secs(20));
    // A second Service, then the policy changes what it selects.
    s.server.apply(SERVICES, &service("other", "20.0.0.101", "true", ""));
    wait_routes(s.peer.as_ref(), &prefixes(&["10.1.0.0/24", "20.0.0.101/32"]), Duration::from_secs(20));
    s.server.delete(SERVICES, Some("default"), "other");
    wait_routes(s.peer.as_ref(), &prefixes(&["10.1.0.0/24"]), Duration::from_secs(20));
    assert_eq!(s.kbgp.metric("kbgp_session_transitions_total", &[]), transitions);
}

#[test]
fn external_traffic_policy_local_through_a_rolling_update() {
    let s = setup("k8s-etp");
    let base = prefixes(&["10.1.0.0/24"]);
    let with = prefixes(&["10.1.0.0/24", "20.0.0.102/32"]);
    s.server.apply(SERVICES, &service("web", "20.0.0.102", "true", ", externalTrafficPolicy: Local"));
    // No endpoint yet: not announced.
    wait_routes(s.peer.as_ref(), &base, Duration::from_secs(60));
    s.server.apply(SLICES, &slice("web-1", "web", &[("node1", true, true, false)]));
    wait_routes(s.peer.as_ref(), &with, Duration::from_secs(20));
    // A rolling update: the old pod drains while the new one starts, then the old one goes.
    // The route must never leave the peer.
    let steps = [
        vec![("node1", false, true, true), ("node1", false, false, false)],
        vec![("node1", false, true, true), ("node1", true, true, false)],
        vec![("node1", true, true, false)],
    ];
    for (i, eps) in steps.iter().enumerate() {
        s.server.apply(SLICES, &slice("web-1", "web", eps));
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(s.peer.prefixes().unwrap(), with, "step {i}: the route left the peer");
        }
    }
    // The last local endpoint goes (it moved to another node): withdrawn.
    s.server.apply(SLICES, &slice("web-1", "web", &[("node2", true, true, false)]));
    wait_routes(s.peer.as_ref(), &base, Duration::from_secs(20));
}

#[test]
fn an_api_server_that_misbehaves_or_disappears_withdraws_nothing() {
    let s = setup("k8s-down");
    s.server.apply(SERVICES, &service("a", "20.0.0.110", "true", ""));
    s.server.apply(SERVICES, &service("b", "20.0.0.111", "true", ""));
    let both = prefixes(&["10.1.0.0/24", "20.0.0.110/32", "20.0.0.111/32"]);
    wait_routes(s.peer.as_ref(), &both, Duration::from_secs(60));
    let transitions = s.kbgp.metric("kbgp_session_transitions_total", &[]);

    // Watches cut mid-stream and a too-old resourceVersion (410): kbgp re-watches and relists,
    // and a change made meanwhile arrives.
    s.server.cut_watches();
    s.server.apply(SERVICES, &service("c", "20.0.0.112", "true", ""));
    let three = prefixes(&["10.1.0.0/24", "20.0.0.110/32", "20.0.0.111/32", "20.0.0.112/32"]);
    wait_routes(s.peer.as_ref(), &three, Duration::from_secs(40));
    s.server.compact();
    s.server.delete(SERVICES, Some("default"), "c");
    wait_routes(s.peer.as_ref(), &both, Duration::from_secs(40));

    // The API server goes away for a while: nothing is withdrawn.
    s.server.set_down(true);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(s.peer.prefixes().unwrap(), both, "a route was withdrawn while the API server was down");
    }
    // While it was away, b was deleted. When it is back, exactly that goes.
    s.server.delete(SERVICES, Some("default"), "b");
    s.server.set_down(false);
    wait_routes(s.peer.as_ref(), &prefixes(&["10.1.0.0/24", "20.0.0.110/32"]), Duration::from_secs(60));
    assert_eq!(s.kbgp.metric("kbgp_session_transitions_total", &[]), transitions, "the session was reset");
    assert!(s.peer.established().unwrap());
}
