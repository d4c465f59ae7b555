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

const VIRTUAL_IPS: &str = "apis/kbgp.io/v1alpha1/virtualips";
const NODE_UID: &str = "6d1f0f5e-3c1a-4b7e-9a43-0c5d2a9b1e11";
const NODE_STATUSES: &str = "apis/kbgp.io/v1alpha1/bgpnodestatuses";

fn prefixes(list: &[&str]) -> BTreeSet<IpNet> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

/// The seed's objects, with the lab's addresses: the rack-0 policy, the pool, the node.
fn seed_objects(s: &ListWatchServer, lab: &Lab) {
    s.apply(
        NODES,
        &format!(
            "{{apiVersion: v1, kind: Node, metadata: {{name: node1, uid: {NODE_UID}, labels: {{rack: rack0}}}},
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

/// A lab with an FRR route reflector (AS 65005, iBGP) and an in-test API server in kbgp's
/// namespace.
fn frr_lab(tag: &str) -> (Lab, Box<dyn Peer>, ListWatchServer) {
    let mut lab = Lab::new(tag);
    let peer = common::peer::start(
        "frr",
        &mut lab,
        &PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: false },
    );
    let server = ListWatchServer::start(&lab.kbgp_ns);
    (lab, peer, server)
}

/// The install's split: the node's speaker without LB IPAM, and the LB IPAM Deployment's
/// process (`--lb-ipam-only`, identity lb-ipam-0).
fn speaker_and_lb_ipam(lab: &Lab, server: &ListWatchServer) -> (Kbgp, Kbgp) {
    let speaker = Kbgp::start_kube(lab, &server.kubeconfig(), "node1", common::METRICS, &["--lb-ipam=false"]);
    let args = ["--lb-ipam-only", "--identity", "lb-ipam-0"];
    let controller = Kbgp::start_kube(lab, &server.kubeconfig(), "lb-ipam-0", "127.0.0.1:9181", &args);
    (speaker, controller)
}

fn setup(tag: &str) -> Setup {
    let (lab, peer, server) = frr_lab(tag);
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

const LEASES: &str = "apis/coordination.k8s.io/v1/leases";

/// A LoadBalancer Service with no address yet.
fn bare_service(name: &str, annotations: &str, extra: &str) -> String {
    format!(
        r#"{{apiVersion: v1, kind: Service, metadata: {{name: {name}, namespace: default, labels: {{advertise-bgp: "true"}}, annotations: {{{annotations}}}}},
            spec: {{type: LoadBalancer, ports: [{{port: 80}}]{extra}}}}}"#
    )
}

fn ingress(s: &ListWatchServer, name: &str) -> Vec<String> {
    s.get(SERVICES, Some("default"), name)
        .and_then(|o| o["status"]["loadBalancer"]["ingress"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["ip"].as_str().map(str::to_owned))
        .collect()
}

fn wait_ingress(s: &ListWatchServer, name: &str, want: &[&str]) {
    wait_for(&format!("{name}'s status.loadBalancer.ingress to be {want:?}"), Duration::from_secs(30), || {
        let got = ingress(s, name);
        if got == want { Ok(()) } else { Err(format!("{got:?}")) }
    });
}

fn lease_holder(s: &ListWatchServer) -> Option<String> {
    s.get(LEASES, Some("kube-system"), "kbgp-lb-ipam")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

#[test]
fn lb_ipam_assigns_honours_requests_reports_conflicts_and_releases() {
    let (lab, peer, server) = frr_lab("k8s-ipam");
    server.set_missing(KBGP_POLICIES);
    seed_objects(&server, &lab);
    let kbgp = Kbgp::start_kube(&lab, &server.kubeconfig(), "node1", common::METRICS, &[]);

    // The seed's Service has no address: the controller gives it the pool's first, kbgp
    // announces it, FRR has it.
    server.apply(SERVICES, &bare_service("nginx-service", "", ""));
    wait_ingress(&server, "nginx-service", &["20.0.0.100"]);
    wait_routes(peer.as_ref(), &prefixes(&["10.1.0.0/24", "20.0.0.100/32"]), Duration::from_secs(30));
    // A requested address.
    server.apply(SERVICES, &bare_service("asks", "lbipam.cilium.io/ips: 20.0.0.150", ""));
    wait_ingress(&server, "asks", &["20.0.0.150"]);
    // A request outside every pool: nothing written, the conflict is reported.
    server.apply(SERVICES, &bare_service("lost", "kbgp.io/ips: 192.0.2.1", ""));
    let log = lab.path("kbgp-node1.log");
    wait_for("the conflict in kbgp's log", Duration::from_secs(20), || {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        if l.contains("LB IPAM: default/lost: requested 192.0.2.1 is in no pool") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
    assert!(ingress(&server, "lost").is_empty());
    // The pool's status, in Cilium's conditions.
    wait_for("the pool's status", Duration::from_secs(20), || {
        let p = server.get(CILIUM_POOLS, None, "lb-pool").unwrap_or_default();
        let c = p["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let used =
            c.iter().find(|c| c["type"] == "cilium.io/IPsUsed").and_then(|c| c["message"].as_str().map(str::to_owned));
        if used.as_deref() == Some("2") { Ok(()) } else { Err(format!("{c:?}")) }
    });
    // An overlapping kbgp pool: conflicting, in its own status.
    server.apply(
        KBGP_POOLS,
        "{apiVersion: kbgp.io/v1alpha1, kind: LoadBalancerIPPool, metadata: {name: zz-overlap, creationTimestamp: \"2026-06-01T00:00:00Z\"},
          spec: {blocks: [{cidr: 20.0.0.128/28}]}}",
    );
    wait_for("the overlapping pool to be marked conflicting", Duration::from_secs(20), || {
        let p = server.get(KBGP_POOLS, None, "zz-overlap").unwrap_or_default();
        match p["status"]["conflict"].as_str() {
            Some(c) if c.contains("overlaps the older pool lb-pool") => Ok(()),
            _ => Err(format!("{}", p["status"])),
        }
    });
    // Another controller's Service is left alone, and a Service that stops being a
    // LoadBalancer gives its address back.
    server.apply(
        SERVICES,
        r#"{apiVersion: v1, kind: Service, metadata: {name: cloud, namespace: default},
            spec: {type: LoadBalancer, loadBalancerClass: example.com/cloud}, status: {loadBalancer: {ingress: [{ip: 20.0.0.160}]}}}"#,
    );
    let asks = server.get(SERVICES, Some("default"), "asks").unwrap();
    let mut changed = asks.clone();
    changed["spec"]["type"] = serde_json::json!("ClusterIP");
    server.apply(SERVICES, &changed.to_string());
    wait_ingress(&server, "asks", &[]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ingress(&server, "cloud"), ["20.0.0.160"]);
    assert!(
        !server.writes().iter().any(|(_, path, _)| path.contains("/services/cloud")),
        "kbgp wrote to another controller's Service"
    );
    drop(kbgp);
}

#[test]
fn a_second_replica_takes_the_lease_over() {
    let lab = Lab::new("k8s-lease");
    let server = ListWatchServer::start(&lab.kbgp_ns);
    server.set_missing(KBGP_POLICIES);
    server.set_missing(KBGP_POOLS);
    seed_objects(&server, &lab);
    let lease = ["--lease-duration", "6"];
    let mut a = Kbgp::start_kube(&lab, &server.kubeconfig(), "node1", "127.0.0.1:9181", &lease);
    wait_for("a leader", Duration::from_secs(20), || lease_holder(&server).ok_or_else(|| "no holder".to_string()));
    let b = Kbgp::start_kube(&lab, &server.kubeconfig(), "node2", "127.0.0.1:9182", &lease);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lease_holder(&server).as_deref(), Some("node1"), "the first replica keeps leading");
    server.apply(SERVICES, &bare_service("one", "", ""));
    wait_ingress(&server, "one", &["20.0.0.100"]);
    // The leader dies without releasing its lease: the other takes over within the duration.
    a.proc.signal("KILL");
    a.proc.wait_exit(Duration::from_secs(5));
    let t0 = std::time::Instant::now();
    wait_for("node2 to take the lease over", Duration::from_secs(12), || match lease_holder(&server) {
        Some(h) if h == "node2" => Ok(()),
        other => Err(format!("{other:?}")),
    });
    println!("lease taken over {:?} after the leader died (lease duration 6 s)", t0.elapsed());
    server.apply(SERVICES, &bare_service("two", "", ""));
    wait_ingress(&server, "two", &["20.0.0.101"]);
    // A leader that stops cleanly hands the lease back at once.
    b.proc.signal("TERM");
    wait_for("the lease to be released", Duration::from_secs(10), || match lease_holder(&server) {
        None => Ok(()),
        Some(h) => Err(h),
    });
}

/// Against a real cluster, when `KBGP_TEST_KUBECONFIG` names its kubeconfig (the only test
/// that skips, and only when that is unset). Read-only: kbgp's watchers list and watch every
/// kind there and build a World that holds the first node.
#[test]
fn real_cluster_read_only() {
    let Some(path) = std::env::var_os("KBGP_TEST_KUBECONFIG") else {
        eprintln!("skipped: KBGP_TEST_KUBECONFIG is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let kc = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        let list = nodes.list(&kube::api::ListParams::default().limit(1)).await.expect("list nodes");
        let node = list.items.first().and_then(|n| n.metadata.name.clone()).expect("the cluster has a node");
        let metrics = std::sync::Arc::new(kbgp::metrics::Metrics::new());
        let mut worlds = kbgp::source::kube::start(
            client,
            Some(node.clone()),
            kbgp::config::Namespaces::default(),
            None,
            Duration::from_millis(100),
            metrics.clone(),
        );
        let world = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if let Some(w) = worlds.borrow_and_update().clone() {
                    return w;
                }
                worlds.changed().await.expect("watchers running");
            }
        })
        .await
        .expect("a synced World within 60 s");
        assert!(world.node(&node).is_some(), "the World holds node {node}");
        assert_eq!(metrics.watch_up.with_label_values(&["nodes"]).get(), 1);
        eprintln!(
            "real cluster: node {node}, {} Services, {} policies, {} pools",
            world.services.len(),
            world.policies.len(),
            world.pools.len()
        );
    });
}

/// The node's BGPNodeStatus follows its sessions and routes, is owned by the Node, is written
/// only when it changes; with --service-events a Service that stops being announced gets an
/// Event; the admin CLI works in Kubernetes mode too.
#[test]
fn node_status_service_events_and_the_cli_in_kubernetes_mode() {
    let (lab, peer, server) = frr_lab("k8s-status");
    server.set_missing(KBGP_POLICIES);
    server.set_missing(KBGP_POOLS);
    seed_objects(&server, &lab);
    server.apply(SERVICES, &service("nginx-service", "20.0.0.100", "true", ""));
    let extra = ["--node-status-interval", "1", "--service-events"];
    let kbgp = Kbgp::start_kube(&lab, &server.kubeconfig(), "node1", common::METRICS, &extra);
    wait_routes(peer.as_ref(), &prefixes(&["10.1.0.0/24", "20.0.0.100/32"]), Duration::from_secs(60));

    let status = |want_adv: u64| {
        wait_for("the BGPNodeStatus", Duration::from_secs(20), || {
            let o = server.get(NODE_STATUSES, None, "node1").ok_or("no BGPNodeStatus yet")?;
            let st = &o["status"];
            let received = (common::peer::PEER_V4.len() + common::peer::PEER_V6.len()) as u64;
            if st["peersUp"] == "1/1" && st["routesAdvertised"] == want_adv && st["routesReceived"] == received {
                Ok(o)
            } else {
                Err(o.to_string())
            }
        })
    };
    let o = status(2);
    assert_eq!(o["spec"]["nodeName"], "node1");
    let owner = &o["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str(), owner["uid"].as_str()),
        (Some("Node"), Some("node1"), Some(NODE_UID))
    );
    assert_eq!(o["status"]["policy"], "rack0-65005");
    assert_eq!(o["status"]["peers"][0]["address"], lab.peer_v4.to_string());
    assert_eq!(o["status"]["peers"][0]["state"], "Established");
    assert!(o["status"]["lastError"].is_null(), "{o}");
    // The same sessions in the shape of Cilium's CiliumBGPNodeConfig status.
    let i = &o["status"]["bgpInstances"][0];
    assert_eq!((i["name"].as_str(), i["localASN"].as_u64()), (Some("AS65005"), Some(65005)), "{o}");
    let p = &i["peers"][0];
    let peer_address = lab.peer_v4.to_string();
    assert_eq!(
        (p["name"].as_str(), p["peerAddress"].as_str(), p["peerASN"].as_u64(), p["peeringState"].as_str()),
        (Some(peer_address.as_str()), Some(peer_address.as_str()), Some(65005), Some("established")),
        "{o}"
    );
    assert_eq!(p["timers"]["appliedHoldTimeSeconds"], 90, "{o}");
    assert_eq!(p["timers"]["appliedKeepaliveSeconds"], 30, "{o}");
    assert!(p["establishedTime"].as_str().is_some_and(|t| t.ends_with('Z')), "{o}");
    let v4 = p["routeCount"].as_array().and_then(|c| c.iter().find(|c| c["afi"] == "ipv4")).cloned();
    assert_eq!(v4.as_ref().map(|c| (&c["safi"], &c["advertised"])), Some((&"unicast".into(), &2.into())), "{o}");

    // Nothing changes: nothing is written.
    let writes =
        |s: &ListWatchServer| s.writes().iter().filter(|(_, path, _)| path.contains("bgpnodestatuses")).count();
    let before = writes(&server);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(writes(&server), before, "an unchanged status is not written again");

    // The Service loses its label: withdrawn, the status follows, and the Service gets an Event.
    server.apply(SERVICES, &service("nginx-service", "20.0.0.100", "false", ""));
    wait_routes(peer.as_ref(), &prefixes(&["10.1.0.0/24"]), Duration::from_secs(20));
    status(1);
    let event = wait_for("an Event on the Service", Duration::from_secs(20), || {
        server
            .writes()
            .into_iter()
            .find(|(m, path, body)| {
                m == "POST" && path.contains("events.k8s.io") && body["regarding"]["name"] == "nginx-service"
            })
            .map(|(_, _, b)| b)
            .ok_or_else(|| "no Event posted".to_string())
    });
    assert_eq!(event["reason"], "NotAnnounced");
    assert_eq!(event["regarding"]["kind"], "Service");
    let note = event["note"].as_str().unwrap_or_default();
    assert!(
        note.starts_with("node node1 announces none of its addresses: 20.0.0.100/32: the serviceSelector"),
        "{note}"
    );
    assert_eq!(kbgp.metric("kbgp_service_events_total", &[("result", "sent")]), 1.0);
    // The update latency counts from the watch event, so the 100 ms debounce is in every one.
    let latency = |labels: &[(&str, &str)]| kbgp.metric("kbgp_update_latency_seconds_bucket", labels);
    assert!(latency(&[("le", "+Inf")]) >= 1.0, "the withdrawal was observed");
    assert_eq!(latency(&[("le", "0.1")]), 0.0, "no observation shorter than the debounce");
    assert!(kbgp.metric("kbgp_node_status_writes_total", &[("result", "written")]) >= 2.0);

    // The admin CLI in Kubernetes mode.
    let s = kbgp.cli_json(&["status"]);
    assert_eq!((s["source"].as_str(), s["established"].as_u64()), (Some("kubernetes"), Some(1)));
    let w = kbgp.cli_json(&["why", "20.0.0.100"]);
    let verdict = w["verdict"].as_str().unwrap_or_default();
    assert!(
        verdict.contains("is not announced by node node1: the serviceSelector of AS65005 does not match"),
        "{verdict}"
    );
    assert!(w["owners"][0].as_str().unwrap_or_default().starts_with("Service default/nginx-service"), "{w}");

    // Stopping kbgp says so in the status before the sessions close.
    let mut kbgp = kbgp;
    kbgp.proc.signal("TERM");
    assert!(kbgp.proc.wait_exit(Duration::from_secs(10)).is_some_and(|s| s.success()), "kbgp exits 0 on SIGTERM");
    let o = server.get(NODE_STATUSES, None, "node1").expect("the status stays");
    assert_eq!(o["status"]["peersUp"], "0/1", "{o}");
    assert_eq!(o["status"]["lastError"], "kbgp on this node stopped");
    assert_eq!(o["status"]["bgpInstances"][0]["peers"][0]["peeringState"], "idle", "{o}");
}

/// TCP MD5 in a cluster: the policy's `authSecretRef` names a Secret of kube-system (kbgp's
/// default BGP secrets namespace) that kbgp watches; a Secret elsewhere is not read; a new
/// password in the Secret restarts the session with it.
#[test]
fn md5_password_from_a_secret_of_the_bgp_secrets_namespace() {
    const SECRETS: &str = "api/v1/secrets";
    let mut lab = Lab::new("k8s-md5");
    let peer = common::peer::start(
        "frr",
        &mut lab,
        &PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: Some("rack0-pw"), bfd: None, router: false },
    );
    let server = ListWatchServer::start(&lab.kbgp_ns);
    server.set_missing(KBGP_POLICIES);
    server.set_missing(KBGP_POOLS);
    seed_objects(&server, &lab);
    let policy = server.get(CILIUM_POLICIES, None, "rack0-65005").expect("the seed policy");
    let mut policy = policy.clone();
    policy["spec"]["virtualRouters"][0]["neighbors"][0]["authSecretRef"] = "bgp-auth".into();
    server.apply(CILIUM_POLICIES, &policy.to_string());
    // base64 of "rack0-pw" and of "wrong-pw".
    let secret = |ns: &str, b64: &str| {
        format!(
            "{{apiVersion: v1, kind: Secret, metadata: {{name: bgp-auth, namespace: {ns}}}, data: {{password: {b64}}}}}"
        )
    };
    server.apply(SECRETS, &secret("default", "cmFjazAtcHc="));
    let kbgp = Kbgp::start_kube(&lab, &server.kubeconfig(), "node1", common::METRICS, &[]);
    let me = lab.peer_v4.to_string();
    let last_error = || {
        let p = kbgp.peer(&me);
        (
            p["state"].as_str().unwrap_or_default().to_string(),
            p["lastError"]["text"].as_str().unwrap_or_default().to_string(),
        )
    };
    // Only the default namespace has it: not read, the session stays down and says why.
    wait_for("the missing Secret reported", Duration::from_secs(60), || match last_error() {
        (state, e) if state != "Established" && e.contains("no Secret bgp-auth") => Ok(()),
        other => Err(format!("{other:?}")),
    });
    // In kube-system: the session comes up with the password.
    server.apply(SECRETS, &secret("kube-system", "cmFjazAtcHc="));
    wait_routes(peer.as_ref(), &prefixes(&["10.1.0.0/24"]), Duration::from_secs(60));
    // Rotated to a password FRR does not have: the session restarts and gets no answer.
    server.apply(SECRETS, &secret("kube-system", "d3JvbmctcHc="));
    wait_for("the session down with the wrong password", Duration::from_secs(60), || {
        let p = kbgp.peer(&me);
        let hint = p["lastError"]["hint"].as_str().unwrap_or_default();
        if p["state"] != "Established" && hint.contains("check the TCP MD5 password") && !peer.established()? {
            Ok(())
        } else {
            Err(format!("{p}"))
        }
    });
    // And back.
    server.apply(SECRETS, &secret("kube-system", "cmFjazAtcHc="));
    wait_routes(peer.as_ref(), &prefixes(&["10.1.0.0/24"]), Duration::from_secs(90));
}

/// The API server VIP as an object of the cluster, its check a TCP connect to `port` on the
/// node (kbgp's own metrics port answers; port 1 refuses).
fn virtual_ip(port: u16) -> String {
    format!(
        "{{apiVersion: kbgp.io/v1alpha1, kind: VirtualIP, metadata: {{name: kube-apiserver}},
          spec: {{addresses: [10.100.0.100], healthCheck: {{type: TCP, address: '127.0.0.1:{port}',
                 intervalMilliseconds: 200, timeoutMilliseconds: 100, rise: 2, fall: 2}}}}}}"
    )
}

#[test]
fn a_virtual_ip_from_the_api_server_follows_its_health_check() {
    let s = setup("k8s-vip");
    let base = prefixes(&["10.1.0.0/24"]);
    let with_vip = prefixes(&["10.1.0.0/24", "10.100.0.100/32"]);
    wait_routes(s.peer.as_ref(), &base, Duration::from_secs(60));
    let transitions = s.kbgp.metric("kbgp_session_transitions_total", &[]);
    s.server.apply(VIRTUAL_IPS, &virtual_ip(9180));
    wait_routes(s.peer.as_ref(), &with_vip, Duration::from_secs(20));
    // The check now fails: withdrawn; passes again: back.
    s.server.apply(VIRTUAL_IPS, &virtual_ip(1));
    wait_routes(s.peer.as_ref(), &base, Duration::from_secs(20));
    s.server.apply(VIRTUAL_IPS, &virtual_ip(9180));
    wait_routes(s.peer.as_ref(), &with_vip, Duration::from_secs(20));
    // An invalid version (a TCP check with no address) keeps the last valid one.
    s.server.apply(
        VIRTUAL_IPS,
        "{apiVersion: kbgp.io/v1alpha1, kind: VirtualIP, metadata: {name: kube-apiserver},
          spec: {addresses: [10.100.0.100], healthCheck: {type: TCP}}}",
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.peer.prefixes().unwrap(), with_vip, "the invalid version replaced the valid one");
    s.server.delete(VIRTUAL_IPS, None, "kube-apiserver");
    wait_routes(s.peer.as_ref(), &base, Duration::from_secs(20));
    assert_eq!(s.kbgp.metric("kbgp_session_transitions_total", &[]), transitions, "a session was reset");
}

const V2_CLUSTER: &str = "apis/cilium.io/v2/ciliumbgpclusterconfigs";
const V2_PEERS: &str = "apis/cilium.io/v2/ciliumbgppeerconfigs";
const V2_ADVERTS: &str = "apis/cilium.io/v2/ciliumbgpadvertisements";
const ML_POOLS: &str = "apis/metallb.io/v1beta1/ipaddresspools";
const ML_PEERS: &str = "apis/metallb.io/v1beta2/bgppeers";
const ML_ADVERTS: &str = "apis/metallb.io/v1beta1/bgpadvertisements";
const ML_COMMUNITIES: &str = "apis/metallb.io/v1beta1/communities";

/// Cilium's v2 objects from the API server give FRR the same routes and attributes as the
/// v1 policy with path attributes; an advertisement's labels and a Service's follow.
#[test]
fn cilium_v2_and_metallb_objects_from_the_api_server_give_the_v1_routes() {
    let s = setup("k8s-v2");
    s.server.apply(SERVICES, &service("nginx-service", "20.0.0.100", "true", ""));
    wait_routes(s.peer.as_ref(), &prefixes(&["10.1.0.0/24", "20.0.0.100/32"]), Duration::from_secs(60));
    // The v1 policy with a community and LOCAL_PREF on the pool's routes.
    let v1 = format!(
        r#"{{apiVersion: cilium.io/v2alpha1, kind: CiliumBGPPeeringPolicy, metadata: {{name: rack0-65005}},
           spec: {{nodeSelector: {{matchLabels: {{rack: rack0}}}},
                  virtualRouters: [{{localASN: 65005, exportPodCIDR: true,
                                     serviceSelector: {{matchLabels: {{advertise-bgp: "true"}}}},
                                     neighbors: [{{peerAddress: "{}/24", peerASN: 65005, connectRetryTimeSeconds: 5,
                                       advertisedPathAttributes: [{{selectorType: CiliumLoadBalancerIPPool,
                                         communities: {{standard: ["65000:100"]}}, localPreference: 200}}]}}]}}]}}}}"#,
        s._lab.peer_v4
    );
    s.server.apply(CILIUM_POLICIES, &v1);
    let attrs = |r: &std::collections::BTreeMap<IpNet, common::peer::SeenRoute>| {
        r.values()
            .map(|x| (x.prefix, x.next_hop, x.communities.clone(), x.local_pref, x.as_path.clone()))
            .collect::<Vec<_>>()
    };
    let mut want = None;
    wait_for("the v1 attributes at FRR", Duration::from_secs(30), || {
        let r = s.peer.routes()?;
        match r.get(&"20.0.0.100/32".parse().unwrap()) {
            Some(x) if x.communities == ["65000:100"] && x.local_pref == Some(200) => {
                want = Some(attrs(&r));
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    });
    let want = want.unwrap();
    // The same intent in v2; the v1 policy goes (it would win over v2, as in Cilium).
    s.server.apply(
        V2_CLUSTER,
        &format!(
            r#"{{apiVersion: cilium.io/v2, kind: CiliumBGPClusterConfig, metadata: {{name: rack0}},
               spec: {{nodeSelector: {{matchLabels: {{rack: rack0}}}},
                      bgpInstances: [{{name: rack0-65005, localASN: 65005,
                        peers: [{{name: rr, peerAddress: "{}", peerASN: 65005, peerConfigRef: {{name: rr}}}}]}}]}}}}"#,
            s._lab.peer_v4
        ),
    );
    s.server.apply(
        V2_PEERS,
        r#"{apiVersion: cilium.io/v2, kind: CiliumBGPPeerConfig, metadata: {name: rr},
           spec: {timers: {connectRetryTimeSeconds: 5},
                  families: [{afi: ipv4, safi: unicast, advertisements: {matchLabels: {advertise: bgp}}}]}}"#,
    );
    s.server.apply(
        V2_ADVERTS,
        r#"{apiVersion: cilium.io/v2, kind: CiliumBGPAdvertisement, metadata: {name: bgp, labels: {advertise: bgp}},
           spec: {advertisements: [{advertisementType: PodCIDR},
             {advertisementType: Service, service: {addresses: [LoadBalancerIP]},
              selector: {matchLabels: {advertise-bgp: "true"}},
              attributes: {communities: {standard: ["65000:100"]}, localPreference: 200}}]}}"#,
    );
    s.server.delete(CILIUM_POLICIES, None, "rack0-65005");
    // The settings differ (hold time default, no /24): the session restarts, then the same
    // routes with the same attributes come back.
    wait_for("the v2 routes at FRR, as the v1 ones", Duration::from_secs(60), || {
        let got = attrs(&s.peer.routes()?);
        if got == want { Ok(()) } else { Err(format!("{got:?} != {want:?}")) }
    });
    // The advertisement loses its label: nothing is advertised, the session stays.
    let up = s.kbgp.metric("kbgp_session_transitions_total", &[]);
    s.server.apply(
        V2_ADVERTS,
        r#"{apiVersion: cilium.io/v2, kind: CiliumBGPAdvertisement, metadata: {name: bgp, labels: {advertise: other}},
           spec: {advertisements: [{advertisementType: PodCIDR}]}}"#,
    );
    wait_routes(s.peer.as_ref(), &BTreeSet::new(), Duration::from_secs(20));
    assert_eq!(s.kbgp.metric("kbgp_session_transitions_total", &[]), up);

    // The same intent in MetalLB's API (which has no pod CIDRs): the Service route comes back
    // with the same attributes. The community is given through a Community alias.
    let lb_route: Vec<_> = want.iter().filter(|r| r.0.to_string() == "20.0.0.100/32").cloned().collect();
    assert_eq!(lb_route.len(), 1, "{want:?}");
    s.server.apply(
        ML_POOLS,
        "{apiVersion: metallb.io/v1beta1, kind: IPAddressPool, metadata: {name: lb-pool, namespace: metallb-system},
          spec: {addresses: [20.0.0.100-20.0.0.200]}}",
    );
    s.server.apply(
        ML_COMMUNITIES,
        r#"{apiVersion: metallb.io/v1beta1, kind: Community, metadata: {name: c, namespace: metallb-system},
           spec: {communities: [{name: rack-routes, value: "65000:100"}]}}"#,
    );
    s.server.apply(
        ML_ADVERTS,
        r#"{apiVersion: metallb.io/v1beta1, kind: BGPAdvertisement, metadata: {name: rack0, namespace: metallb-system},
           spec: {ipAddressPools: [lb-pool], serviceSelectors: [{matchLabels: {advertise-bgp: "true"}}],
                  communities: [rack-routes], localPref: 200}}"#,
    );
    s.server.delete(V2_CLUSTER, None, "rack0");
    s.server.delete(CILIUM_POOLS, None, "lb-pool");
    s.server.apply(
        ML_PEERS,
        &format!(
            r#"{{apiVersion: metallb.io/v1beta2, kind: BGPPeer, metadata: {{name: rr, namespace: metallb-system}},
               spec: {{myASN: 65005, peerASN: 65005, peerAddress: "{}", connectTime: 5s,
                      nodeSelectors: [{{matchLabels: {{rack: rack0}}}}]}}}}"#,
            s._lab.peer_v4
        ),
    );
    wait_for("the MetalLB route at FRR, as the v1 one", Duration::from_secs(60), || {
        let got = attrs(&s.peer.routes()?);
        if got == lb_route { Ok(()) } else { Err(format!("{got:?} != {lb_route:?}")) }
    });
    // The Service loses its label: withdrawn; the session stays.
    let up = s.kbgp.metric("kbgp_session_transitions_total", &[]);
    s.server.apply(SERVICES, &service("nginx-service", "20.0.0.100", "false", ""));
    wait_routes(s.peer.as_ref(), &BTreeSet::new(), Duration::from_secs(20));
    assert_eq!(s.kbgp.metric("kbgp_session_transitions_total", &[]), up);
}

#[test]
fn lb_ipam_as_its_own_deployment_assigns_and_the_daemonset_announces() {
    let (lab, peer, server) = frr_lab("k8s-ipamd");
    server.set_missing(KBGP_POLICIES);
    seed_objects(&server, &lab);
    // The seed's Cilium pool goes; a MetalLB pool takes its place, with autoAssign off: only
    // a Service naming it gets an address.
    server.delete(CILIUM_POOLS, None, "lb-pool");
    server.apply(
        ML_POOLS,
        "{apiVersion: metallb.io/v1beta1, kind: IPAddressPool, metadata: {name: manual, namespace: metallb-system},
          spec: {addresses: [20.0.0.128/28], autoAssign: false, avoidBuggyIPs: true}}",
    );
    let (speaker, controller) = speaker_and_lb_ipam(&lab, &server);
    server.apply(SERVICES, &bare_service("plain", "", ""));
    server.apply(SERVICES, &bare_service("pinned", "metallb.io/address-pool: manual", ""));
    wait_ingress(&server, "pinned", &["20.0.0.128"]);
    assert_eq!(lease_holder(&server).as_deref(), Some("lb-ipam-0"), "only the Deployment takes the Lease");
    wait_routes(peer.as_ref(), &prefixes(&["10.1.0.0/24", "20.0.0.128/32"]), Duration::from_secs(30));
    assert!(ingress(&server, "plain").is_empty(), "autoAssign: false pools serve only who asks");
    // The speaker never wrote a Service's status: every write is the controller's.
    let log = std::fs::read_to_string(lab.path("kbgp-node1.log")).unwrap_or_default();
    assert!(!log.contains("LB IPAM: assigned"), "{log}");
    let log = std::fs::read_to_string(lab.path("kbgp-lb-ipam-0.log")).unwrap_or_default();
    assert!(log.contains("LB IPAM: assigned"), "{log}");
    drop((speaker, controller));
}

/// The conditions GitOps tools read, and MetalLB's pool counts, written by the LB IPAM leader
/// alone: a valid kbgp policy is Accepted; a second one over the same node makes both
/// Conflicting (routes stay); an invalid version is not Accepted while the last valid one keeps
/// announcing; Cilium's ClusterConfig gets Cilium's own conditions.
#[test]
fn the_lb_ipam_leader_writes_conditions_and_pool_counts() {
    let (lab, peer, server) = frr_lab("k8s-cond");
    seed_objects(&server, &lab);
    server.delete(CILIUM_POLICIES, None, "rack0-65005");
    server.delete(CILIUM_POOLS, None, "lb-pool");
    let policy = |name: &str, hold: u32| {
        format!(
            r#"{{apiVersion: kbgp.io/v1alpha1, kind: BGPPeeringPolicy, metadata: {{name: {name}}},
               spec: {{nodeSelector: {{matchLabels: {{rack: rack0}}}},
                      virtualRouters: [{{localASN: 65005, exportPodCIDR: true,
                        serviceSelector: {{matchLabels: {{advertise-bgp: "true"}}}},
                        neighbors: [{{peerAddress: "{}/24", peerASN: 65005, connectRetryTimeSeconds: 5,
                                      holdTimeSeconds: {hold}}}]}}]}}}}"#,
            lab.peer_v4
        )
    };
    server.apply(KBGP_POLICIES, &policy("rack0", 90));
    server.apply(
        ML_POOLS,
        "{apiVersion: metallb.io/v1beta1, kind: IPAddressPool, metadata: {name: ml, namespace: metallb-system},
          spec: {addresses: [20.0.0.128/28]}}",
    );
    server.apply(
        V2_CLUSTER,
        "{apiVersion: cilium.io/v2, kind: CiliumBGPClusterConfig, metadata: {name: nowhere},
          spec: {nodeSelector: {matchLabels: {rack: rack9}},
                 bgpInstances: [{name: x, localASN: 65099,
                   peers: [{name: p, peerAddress: 10.0.99.1, peerASN: 65099, peerConfigRef: {name: absent}}]}]}}",
    );
    let (speaker, controller) = speaker_and_lb_ipam(&lab, &server);
    server.apply(SERVICES, &bare_service("web", "", ""));
    wait_ingress(&server, "web", &["20.0.0.128"]);
    wait_routes(peer.as_ref(), &prefixes(&["10.1.0.0/24", "20.0.0.128/32"]), Duration::from_secs(60));

    // (type, status, reason, message) of an object's conditions, and its Accepted's time.
    let conditions = |resource: &str, name: &str| -> Vec<(String, String, String, String)> {
        let o = server.get(resource, None, name).unwrap_or_default();
        o["status"]["conditions"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|c| {
                        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                        (s("type"), s("status"), s("reason"), s("message"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let wait_conditions = |what: &str, resource: &str, name: &str, want: &[(&str, &str, &str)]| {
        wait_for(what, Duration::from_secs(20), || {
            let got = conditions(resource, name);
            let ok = want.len() == got.len()
                && want
                    .iter()
                    .all(|(t, s, r)| got.iter().any(|g| (g.0.as_str(), g.1.as_str(), g.2.as_str()) == (*t, *s, *r)));
            if ok { Ok(got) } else { Err(format!("{got:?}")) }
        })
    };
    let got = wait_conditions(
        "rack0 Accepted, not Conflicting",
        KBGP_POLICIES,
        "rack0",
        &[("Accepted", "True", "Valid"), ("Conflicting", "False", "NoConflict")],
    );
    assert_eq!(got[0].3, "valid; selects 1 of 1 node");
    let accepted_at = |name: &str| {
        let o = server.get(KBGP_POLICIES, None, name).unwrap_or_default();
        let list = o["status"]["conditions"].as_array().cloned().unwrap_or_default();
        let c = list.into_iter().find(|c| c["type"] == "Accepted").unwrap_or_default();
        (c["lastTransitionTime"].as_str().unwrap_or_default().to_string(), c["observedGeneration"].as_i64())
    };
    let (since, generation) = accepted_at("rack0");
    assert_eq!(generation, Some(1));
    let got = wait_conditions(
        "Cilium's conditions on the ClusterConfig",
        V2_CLUSTER,
        "nowhere",
        &[
            ("cilium.io/NoMatchingNode", "True", "NoMatchingNode"),
            ("cilium.io/MissingPeerConfigs", "True", "MissingPeerConfigs"),
            ("cilium.io/ConflictingClusterConfig", "False", "ConflictingClusterConfigs"),
        ],
    );
    assert!(
        got.iter().any(|c| c.3 == "no CiliumBGPPeerConfig absent; the peers that name it are not configured"),
        "{got:?}"
    );
    wait_for("MetalLB's pool counts", Duration::from_secs(20), || {
        let o = server.get(ML_POOLS, Some("metallb-system"), "ml").unwrap_or_default();
        let st = &o["status"];
        let got = (&st["assignedIPv4"], &st["availableIPv4"], &st["assignedIPv6"], &st["availableIPv6"]);
        if got == (&1.into(), &15.into(), &0.into(), &0.into()) { Ok(()) } else { Err(o.to_string()) }
    });

    // A second policy over the same node: both Conflicting; the node keeps its plan.
    server.apply(KBGP_POLICIES, &policy("also-rack0", 90));
    let got = wait_conditions(
        "rack0 Conflicting",
        KBGP_POLICIES,
        "rack0",
        &[("Accepted", "True", "Valid"), ("Conflicting", "True", "OverlappingNodeSelector")],
    );
    assert!(got[1].3.starts_with("node node1 also selected by BGPPeeringPolicy also-rack0"), "{got:?}");
    wait_conditions(
        "also-rack0 Conflicting",
        KBGP_POLICIES,
        "also-rack0",
        &[("Accepted", "True", "Valid"), ("Conflicting", "True", "OverlappingNodeSelector")],
    );
    assert_eq!(peer.prefixes().ok(), Some(prefixes(&["10.1.0.0/24", "20.0.0.128/32"])));
    server.delete(KBGP_POLICIES, None, "also-rack0");
    wait_conditions(
        "rack0 no longer Conflicting",
        KBGP_POLICIES,
        "rack0",
        &[("Accepted", "True", "Valid"), ("Conflicting", "False", "NoConflict")],
    );
    assert_eq!(accepted_at("rack0").0, since, "Accepted stayed True: its transition time stays");

    // An invalid version: not Accepted, for its generation; the last valid one announces on.
    server.apply(KBGP_POLICIES, &policy("rack0", 2));
    let got = wait_conditions(
        "rack0 not Accepted",
        KBGP_POLICIES,
        "rack0",
        &[("Accepted", "False", "Invalid"), ("Conflicting", "False", "NoConflict")],
    );
    let msg = &got.iter().find(|c| c.0 == "Accepted").unwrap().3;
    assert!(msg.contains("holdTimeSeconds") && msg.ends_with("its last valid version stays in effect"), "{msg}");
    assert_eq!(accepted_at("rack0").1, Some(2));
    assert_ne!(accepted_at("rack0").0, since, "Accepted changed: a new transition time");
    assert_eq!(peer.prefixes().ok(), Some(prefixes(&["10.1.0.0/24", "20.0.0.128/32"])));

    // The speaker never led LB IPAM: every status write was the controller's.
    let log = std::fs::read_to_string(lab.path("kbgp-node1.log")).unwrap_or_default();
    assert!(!log.contains("LB IPAM: this replica is the leader"), "{log}");
    drop((speaker, controller));
}
