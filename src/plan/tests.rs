use super::*;
use crate::rib::{AdvertAttrs, Advertisement};
use std::sync::Arc;

use crate::test_fixtures::{POLICY, kbgp_kind, world};

const NODE: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: kind-worker, labels: {rack: rack0}}
spec: {podCIDRs: [10.1.0.0/24]}
status: {addresses: [{type: InternalIP, address: 10.0.5.11}]}
"#;

fn service(name: &str, labels: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.10\n  externalIPs: [192.0.2.10]\n{extra}status: {{loadBalancer: {{ingress: [{{ip: 20.0.0.100}}]}}}}\n"
    )
}

/// A plan with its routes, as the planner makes them from scratch.
#[derive(Debug)]
struct Planned {
    plan: Plan,
    routes: GroupRoutes,
}

impl std::ops::Deref for Planned {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.plan
    }
}

impl Planned {
    fn routes_of(&self, peer: &PeerPlan) -> &[Advertisement] {
        self.routes.iter().find(|(g, _)| *g == peer.group).map_or(&[], |(_, r)| r)
    }
}

fn plan(node: &str, w: &World) -> Result<Planned, PlanError> {
    let (plan, routes) = Planner::new(node).update(Arc::new(w.clone()))?;
    let routes = match routes {
        Some(RouteUpdate::Full(g)) => g,
        other => panic!("a first plan is a full one: {other:?}"),
    };
    Ok(Planned { plan: (*plan).clone(), routes })
}

/// Every candidate of the first virtual router, with its checks, as `kbgp why` sees them.
/// Also checks that the plan's decisions and the explanations agree.
fn candidates(p: &Planned, w: &World) -> Vec<Candidate> {
    let mut all: Vec<Candidate> = Vec::new();
    for t in ["0.0.0.0/0", "::/0"] {
        let mut per_vr = p.explain(w, &t.parse().unwrap());
        all.extend(per_vr.drain(..).next().unwrap_or_default());
    }
    for c in &all {
        let planned = p.vrouters[0]
            .peers
            .iter()
            .any(|peer| peer.takes(&c.prefix) && c.exports.is_none_or(|e| e == peer.group.exports));
        if !p.vrouters[0].peers.is_empty() {
            assert_eq!(
                c.advertised && planned,
                routes(p).contains(&c.prefix.to_string()),
                "{}: {}",
                c.prefix,
                c.reason()
            );
        }
    }
    all
}

fn routes(p: &Planned) -> Vec<String> {
    p.peers().flat_map(|(_, pp)| p.routes_of(pp).iter().map(|r| r.prefix.to_string())).collect()
}

#[test]
fn the_seed_gives_the_service_ip_and_the_pod_cidr() {
    let svc = service("nginx-service", "advertise-bgp: \"true\"", "");
    let w = world(&[POLICY, NODE, &svc]);
    let p = plan("kind-worker", &w).unwrap();
    assert_eq!(p.policy_name().as_deref(), Some("rack0-65005"));
    assert_eq!(routes(&p), vec!["10.1.0.0/24", "20.0.0.100/32"]);
    let (vr, peer) = p.peers().next().unwrap();
    assert_eq!(vr.router_id, Ipv4Addr::new(10, 0, 5, 11));
    assert_eq!(peer.key, PeerKey { local_asn: 65005, address: "10.0.5.1".parse().unwrap() });
    let s = &peer.settings;
    assert_eq!((s.port, s.ttl, s.session.peer_as, s.session.hold_time), (179, None, 65005, 90));
    assert!(p.routes_of(peer).iter().all(|r| *r.attrs == AdvertAttrs::default()));
    // ClusterIP and externalIP are candidates but not announced by default.
    let all = candidates(&p, &w);
    let c: Vec<_> = all.iter().filter(|c| !c.advertised).collect();
    assert_eq!(c.len(), 2);
    assert!(c.iter().any(|c| c.reason() == "serviceAdvertisements does not include ClusterIP"));
}

#[test]
fn reasons_name_the_failing_label() {
    let svc = service("web", "app: web", "");
    let w = world(&[POLICY, NODE, &svc]);
    let p = plan("kind-worker", &w).unwrap();
    assert_eq!(routes(&p), vec!["10.1.0.0/24"]);
    let all = candidates(&p, &w);
    let c = all.iter().find(|c| c.prefix.to_string() == "20.0.0.100/32").unwrap();
    assert!(!c.advertised);
    assert_eq!(c.source, "Service default/web LoadBalancer IP");
    assert_eq!(
        c.reason(),
        "the serviceSelector of AS65005 does not match: no label advertise-bgp (selector wants advertise-bgp=\"true\")"
    );
}

#[test]
fn service_advertisements_and_classes() {
    let pol = POLICY
        .replace("exportPodCIDR: true", "exportPodCIDR: false\n    serviceAdvertisements: [ExternalIP, ClusterIP]");
    let svc = service("web", "advertise-bgp: \"true\"", "");
    let p = plan("kind-worker", &world(&[&pol, NODE, &svc])).unwrap();
    assert_eq!(routes(&p), vec!["10.96.0.10/32", "192.0.2.10/32"]);
    let svc = service("web", "advertise-bgp: \"true\"", "  loadBalancerClass: example.com/other\n");
    let w = world(&[POLICY, NODE, &svc]);
    let p = plan("kind-worker", &w).unwrap();
    assert_eq!(routes(&p), vec!["10.1.0.0/24"]);
    assert!(candidates(&p, &w).iter().any(|c| c.reason().contains("belongs to another controller")));
    let svc = service("web", "advertise-bgp: \"true\"", "  loadBalancerClass: io.cilium/bgp-control-plane\n");
    assert_eq!(routes(&plan("kind-worker", &world(&[POLICY, NODE, &svc])).unwrap()).len(), 2);
}

#[test]
fn empty_or_missing_service_selector_selects_nothing() {
    let svc = service("web", "advertise-bgp: \"true\"", "");
    for pol in [
        POLICY.replace("serviceSelector: {matchLabels: {advertise-bgp: \"true\"}}", "serviceSelector: {}"),
        POLICY.replace("    serviceSelector: {matchLabels: {advertise-bgp: \"true\"}}\n", ""),
    ] {
        assert_eq!(routes(&plan("kind-worker", &world(&[&pol, NODE, &svc])).unwrap()), vec!["10.1.0.0/24"]);
    }
    let all = POLICY.replace(
        "serviceSelector: {matchLabels: {advertise-bgp: \"true\"}}",
        "serviceSelector: {matchExpressions: [{key: somekey, operator: NotIn, values: [never-used-value]}]}",
    );
    let svc = service("web", "", "");
    assert_eq!(routes(&plan("kind-worker", &world(&[&all, NODE, &svc])).unwrap()).len(), 2);
}

#[test]
fn node_selection() {
    let other = NODE.replace("rack: rack0", "rack: rack1");
    let p = plan("kind-worker", &world(&[POLICY, &other])).unwrap();
    assert!(p.vrouters.is_empty());
    assert_eq!(p.notes, vec!["no peering policy selects node kind-worker: nothing to announce"]);
    let second = POLICY.replace("rack0-65005", "again");
    let e = plan("kind-worker", &world(&[POLICY, &second, NODE])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "node kind-worker: selected by 2 peering policies (rack0-65005, again); a node may have only one"
    );
    assert_eq!(plan("nope", &world(&[POLICY, NODE])).unwrap_err(), PlanError::UnknownNode("nope".into()));
}

#[test]
fn annotations_override_router_id_and_port() {
    let n = NODE.replace(
        "labels: {rack: rack0}",
        "labels: {rack: rack0}, annotations: {cilium.io/bgp-virtual-router.65005: \"router-id=1.1.1.1,local-port=1179\", kbgp.io/virtual-router.65005: \"router-id=2.2.2.2\"}",
    );
    let p = plan("kind-worker", &world(&[POLICY, &n])).unwrap();
    assert_eq!(p.vrouters[0].router_id, Ipv4Addr::new(2, 2, 2, 2));
    assert_eq!(p.vrouters[0].listen_port, Some(1179));
    let bad = NODE.replace(
        "labels: {rack: rack0}",
        "labels: {rack: rack0}, annotations: {kbgp.io/virtual-router.65005: \"router-id=fd00::1\"}",
    );
    assert!(plan("kind-worker", &world(&[POLICY, &bad])).unwrap_err().to_string().contains("is not an IPv4 address"));
}

#[test]
fn router_id_needs_an_ipv4_address() {
    let n = NODE.replace("{type: InternalIP, address: 10.0.5.11}", "{type: InternalIP, address: \"fd00::11\"}");
    let e = plan("kind-worker", &world(&[POLICY, &n])).unwrap_err();
    assert_eq!(e, PlanError::NoRouterId { node: "kind-worker".into(), asn: 65005 });
}

#[test]
fn passive_neighbors_need_a_listener() {
    let pol = kbgp_kind(POLICY).replace("peerASN: 65005", "peerASN: 65005\n      passive: true");
    assert!(matches!(plan("kind-worker", &world(&[&pol, NODE])), Err(PlanError::PassiveWithoutListener { .. })));
}

#[test]
fn path_attributes_per_selector_type() {
    let pol = POLICY.replace(
        "peerASN: 65005",
        r#"peerASN: 65005
      advertisedPathAttributes:
      - selectorType: CiliumLoadBalancerIPPool
        selector: {matchLabels: {tier: web}}
        communities: {standard: ["65005:100"]}
      - selectorType: PodCIDR
        localPreference: 150"#,
    );
    let pool = "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: web, labels: {tier: web}}\nspec: {blocks: [{cidr: 20.0.0.0/24}]}\n";
    let svc = service("web", "advertise-bgp: \"true\"", "");
    let p = plan("kind-worker", &world(&[&pol, NODE, &svc, pool])).unwrap();
    let (_, peer) = p.peers().next().unwrap();
    let pod = &p.routes_of(peer)[0];
    assert_eq!(pod.prefix.to_string(), "10.1.0.0/24");
    assert_eq!((pod.attrs.local_pref, pod.attrs.communities.len()), (Some(150), 0));
    let vip = &p.routes_of(peer)[1];
    assert_eq!(vip.attrs.communities[0].to_string(), "65005:100");
    assert_eq!(vip.attrs.local_pref, None);
    // A pool that does not match the selector adds nothing.
    let p = plan("kind-worker", &world(&[&pol, NODE, &svc, &pool.replace("tier: web", "tier: db")])).unwrap();
    assert!(p.routes_of(p.peers().next().unwrap().1)[1].attrs.communities.is_empty());
}

#[test]
fn families_filter_routes_and_ebgp_sets_ttl() {
    let pol = POLICY.replace(
        "peerASN: 65005",
        "peerASN: 65100\n      eBGPMultihopTTL: 3\n      families: [{afi: ipv4, safi: unicast}]",
    );
    let n = NODE.replace("podCIDRs: [10.1.0.0/24]", "podCIDRs: [10.1.0.0/24, \"fd00:1::/64\"]");
    let p = plan("kind-worker", &world(&[&pol, &n])).unwrap();
    assert_eq!(routes(&p), vec!["10.1.0.0/24"]);
    assert_eq!(p.peers().next().unwrap().1.settings.ttl, Some(3));
}

#[test]
fn equal_attributes_share_one_allocation() {
    let svc1 = service("a", "advertise-bgp: \"true\"", "");
    let svc2 = service("b", "advertise-bgp: \"true\"", "").replace("20.0.0.100", "20.0.0.101");
    let p = plan("kind-worker", &world(&[POLICY, NODE, &svc1, &svc2])).unwrap();
    let r = p.routes_of(p.peers().next().unwrap().1);
    assert_eq!(r.len(), 3);
    assert!(Arc::ptr_eq(&r[1].attrs, &r[2].attrs));
}

/// An endpoint: (node, ready, serving, terminating), `None` for an unset condition.
type Ep<'a> = (&'a str, Option<bool>, Option<bool>, Option<bool>);

/// An EndpointSlice of `web` with these endpoints.
fn slice(name: &str, eps: &[Ep]) -> String {
    let b = |v: Option<bool>| v.map_or("null".to_string(), |x| x.to_string());
    let list: Vec<String> = eps
        .iter()
        .map(|(n, r, s, t)| {
            format!(
                "{{addresses: [10.1.0.9], nodeName: {n}, conditions: {{ready: {}, serving: {}, terminating: {}}}}}",
                b(*r),
                b(*s),
                b(*t)
            )
        })
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: default, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nendpoints: [{}]\n",
        list.join(", ")
    )
}

fn local_svc() -> String {
    service("web", "advertise-bgp: \"true\"", "  externalTrafficPolicy: Local\n")
}

fn vip(p: &Planned, w: &World) -> Option<Candidate> {
    candidates(p, w).into_iter().find(|c| c.prefix.to_string() == "20.0.0.100/32")
}

#[test]
fn external_traffic_policy_local_follows_endpoints_on_this_node() {
    let t = Some(true);
    let f = Some(false);
    let cases: Vec<(&str, Vec<String>, bool, &str)> = vec![
        ("ready here", vec![slice("a", &[("kind-worker", t, t, f)])], true, "1 ready endpoint(s) on this node"),
        ("conditions unset mean ready", vec![slice("a", &[("kind-worker", None, None, None)])], true, "1 ready"),
        ("only elsewhere", vec![slice("a", &[("other", t, t, f)])], false, "no ready endpoint on this node"),
        ("not ready here", vec![slice("a", &[("kind-worker", f, f, f)])], false, "no ready endpoint"),
        (
            "draining here",
            vec![slice("a", &[("kind-worker", f, t, t)])],
            true,
            "terminating but still serving (graceful drain)",
        ),
        ("terminated here", vec![slice("a", &[("kind-worker", f, f, t)])], false, "no ready endpoint"),
        ("no slices at all", vec![], false, "no ready endpoint"),
        (
            "second slice",
            vec![slice("a", &[("other", t, t, f)]), slice("b", &[("kind-worker", t, t, f)])],
            true,
            "1 ready",
        ),
    ];
    for (name, slices, announced, why) in cases {
        let mut docs: Vec<String> = vec![POLICY.into(), NODE.into(), local_svc()];
        docs.extend(slices);
        let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
        let w = world(&refs);
        let c = vip(&plan("kind-worker", &w).unwrap(), &w).unwrap();
        assert_eq!(c.advertised, announced, "{name}: {}", c.reason());
        assert!(c.reason().contains(why), "{name}: {}", c.reason());
        assert!(c.reason().contains("externalTrafficPolicy: Local"), "{name}: {}", c.reason());
    }
}

#[test]
fn a_rolling_update_keeps_the_route_without_a_gap() {
    let t = Some(true);
    let f = Some(false);
    // old pod ready -> old pod draining while the new one starts -> new ready -> old gone.
    let steps = [
        slice("a", &[("kind-worker", t, t, f)]),
        slice("a", &[("kind-worker", f, t, t), ("kind-worker", f, f, f)]),
        slice("a", &[("kind-worker", f, t, t), ("kind-worker", t, t, f)]),
        slice("a", &[("kind-worker", t, t, f)]),
    ];
    for (i, s) in steps.iter().enumerate() {
        let svc = local_svc();
        let w = world(&[POLICY, NODE, &svc, s]);
        let p = plan("kind-worker", &w).unwrap();
        let c = vip(&p, &w).unwrap();
        assert!(c.advertised, "step {i}: {}", c.reason());
        assert!(routes(&p).contains(&"20.0.0.100/32".to_string()), "step {i}");
    }
    // The last local endpoint stops serving: withdrawn.
    let svc = local_svc();
    let gone = slice("a", &[("kind-worker", f, f, t)]);
    let p = plan("kind-worker", &world(&[POLICY, NODE, &svc, &gone])).unwrap();
    assert!(!routes(&p).contains(&"20.0.0.100/32".to_string()));
}

#[test]
fn internal_traffic_policy_local_applies_to_cluster_ips_only() {
    let pol = POLICY
        .replace("exportPodCIDR: true", "exportPodCIDR: true\n    serviceAdvertisements: [LoadBalancerIP, ClusterIP]");
    let svc = service("web", "advertise-bgp: \"true\"", "  internalTrafficPolicy: Local\n");
    let p = plan("kind-worker", &world(&[&pol, NODE, &svc])).unwrap();
    let r = routes(&p);
    assert!(r.contains(&"20.0.0.100/32".to_string()), "eTP Cluster: the LB IP stays");
    assert!(!r.contains(&"10.96.0.10/32".to_string()), "iTP Local without a local endpoint: no cluster IP");
    let here = slice("a", &[("kind-worker", Some(true), Some(true), Some(false))]);
    let p = plan("kind-worker", &world(&[&pol, NODE, &svc, &here])).unwrap();
    assert!(routes(&p).contains(&"10.96.0.10/32".to_string()));
}

#[test]
fn per_service_summary_says_what_is_announced_and_why_not() {
    let web = service("web", "advertise-bgp: \"true\"", "");
    let hidden = service("hidden", "app: hidden", "").replace("20.0.0.100", "20.0.0.101");
    let w = world(&[POLICY, NODE, &web, &hidden]);
    let p = plan("kind-worker", &w).unwrap();
    let s = p.services(&w);
    let web = &s["default/web"];
    assert_eq!(web.announced.iter().map(|p| p.to_string()).collect::<Vec<_>>(), vec!["20.0.0.100/32"]);
    // Its cluster IP is a candidate that serviceAdvertisements leaves out.
    assert_eq!(
        web.not_announced,
        Some(("192.0.2.10/32".parse().unwrap(), "serviceAdvertisements does not include ExternalIP".into()))
    );
    let hidden = &s["default/hidden"];
    assert!(hidden.announced.is_empty());
    let (prefix, why) = hidden.not_announced.clone().unwrap();
    assert_eq!(prefix.to_string(), "20.0.0.101/32");
    assert!(why.starts_with("the serviceSelector of AS65005 does not match"), "{why}");
}

#[test]
fn neighbors_with_one_policy_share_their_routes() {
    let pol = POLICY.replace(
        "    - peerAddress: \"10.0.5.1/24\"\n      peerASN: 65005\n",
        "    - peerAddress: \"10.0.5.1/24\"\n      peerASN: 65005\n    - peerAddress: 10.0.5.2\n      peerASN: 65005\n    \
         - peerAddress: 10.0.5.3\n      peerASN: 65005\n      families: [{afi: ipv4, safi: unicast}]\n",
    );
    let svc = service("web", "advertise-bgp: \"true\"", "");
    let p = plan("kind-worker", &world(&[&pol, NODE, &svc])).unwrap();
    let peers = &p.vrouters[0].peers;
    assert_eq!(peers.len(), 3);
    assert_eq!(peers[0].group, peers[1].group, "same families and attributes: one export group");
    assert_ne!(peers[0].group, peers[2].group, "another family list is another export group");
    assert_eq!(p.routes.len(), 2, "two groups planned, not three");
    assert_eq!(p.routes_of(&peers[2]).len(), 2);
    assert!(peers.iter().all(|peer| peer.takes(&"20.0.0.100/32".parse().unwrap())));
}

#[test]
fn ttl_security_sends_and_requires_255() {
    let kbgp = |extra: &str| kbgp_kind(POLICY).replace("peerASN: 65005", &format!("peerASN: 65100{extra}"));
    let p = plan("kind-worker", &world(&[&kbgp("\n      ttlSecurity: true"), NODE])).unwrap();
    let s = &p.peers().next().unwrap().1.settings;
    assert_eq!((s.ttl, s.min_ttl), (Some(255), Some(255)));
    let p = plan("kind-worker", &world(&[&kbgp(""), NODE])).unwrap();
    let s = &p.peers().next().unwrap().1.settings;
    assert_eq!((s.ttl, s.min_ttl), (Some(1), None), "plain eBGP: TTL 1, nothing required");
}

#[test]
fn auth_secret_ref_resolves_the_password_or_says_what_is_missing() {
    use crate::session::config::Auth;
    let pol = POLICY.replace("peerASN: 65005", "peerASN: 65005\n      authSecretRef: bgp-auth");
    let secret = |data: &str| {
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: bgp-auth, namespace: kube-system}}\n{data}\n")
    };
    let auth =
        |docs: &[&str]| plan("kind-worker", &world(docs)).unwrap().peers().next().unwrap().1.settings.auth.clone();
    match auth(&[&pol, NODE, &secret("stringData: {password: s3cret}")]) {
        Auth::Md5(k) => assert_eq!(k.bytes(), b"s3cret"),
        other => panic!("{other:?}"),
    }
    let why = |a: Auth| match a {
        Auth::Missing(w) => w,
        other => panic!("{other:?}"),
    };
    let w = why(auth(&[&pol, NODE]));
    assert!(w.contains("authSecretRef bgp-auth: no Secret bgp-auth in the BGP secrets namespace"), "{w}");
    assert!(w.contains("neighbor 10.0.5.1") && w.contains("policy "), "names the policy and neighbor: {w}");
    let w = why(auth(&[&pol, NODE, &secret("stringData: {pass: x}")]));
    assert!(w.contains("Secret kube-system/bgp-auth has no key \"password\""), "{w}");
    let w = why(auth(&[&pol, NODE, &secret("stringData: {password: \"\"}")]));
    assert!(w.contains("must be 1 to 80 octets, it has 0"), "{w}");
    assert!(!format!("{:?}", auth(&[&pol, NODE, &secret("stringData: {password: s3cret}")])).contains("s3cret"));
}

// ---- VirtualIPs ----

fn virtual_ip(extra: &str) -> String {
    format!(
        "apiVersion: kbgp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: api}}\nspec:\n  addresses: [10.0.0.100]\n  healthCheck: {{type: TCP, address: '127.0.0.1:6443'}}\n{extra}"
    )
}

fn healthy(w: &World, names: &[&str], draining: bool) -> Arc<World> {
    let mut w = w.clone();
    w.vip_health =
        Arc::new(crate::config::VipHealth { healthy: names.iter().map(|n| n.to_string()).collect(), draining });
    Arc::new(w)
}

/// The one change a World brings, for the first group.
fn delta(p: &mut Planner, w: Arc<World>) -> Vec<(IpNet, Option<Arc<AdvertAttrs>>)> {
    match p.update(w).unwrap().1 {
        Some(RouteUpdate::Delta(mut g)) => {
            assert_eq!(g.len(), 1, "{g:?}");
            g.remove(0).1
        }
        other => panic!("expected a delta: {other:?}"),
    }
}

#[test]
fn a_virtual_ip_is_announced_only_while_its_check_passes() {
    let attrs = "  advertisedPathAttributes:\n    communities: {standard: ['65005:7']}\n    localPreference: 200\n    med: 10\n";
    let w = world(&[POLICY, NODE, &virtual_ip(attrs)]);
    let p = plan("kind-worker", &w).unwrap();
    assert_eq!(routes(&p), vec!["10.1.0.0/24"], "nothing before the check passes");
    let c = candidates(&p, &w).into_iter().find(|c| c.virtual_ip.as_deref() == Some("api")).unwrap();
    assert_eq!(
        c.reason(),
        "its health check (TCP connect to 127.0.0.1:6443) does not pass: 2 passing checks in a row are needed"
    );

    let mut planner = Planner::new("kind-worker");
    planner.update(Arc::new(w.clone())).unwrap();
    let vip: IpNet = "10.0.0.100/32".parse().unwrap();
    // Healthy: only the VirtualIP's route changes, with its attributes.
    let up = delta(&mut planner, healthy(&w, &["api"], false));
    assert_eq!(up.len(), 1);
    let a = up[0].1.clone().unwrap();
    assert_eq!(up[0].0, vip);
    assert_eq!((a.communities[0].to_string(), a.local_pref, a.med), ("65005:7".into(), Some(200), Some(10)));
    assert_eq!(planner.prefixes(), 2);
    // Shutting down: GRACEFUL_SHUTDOWN and LOCAL_PREF 0 (RFC 8326).
    let drain = delta(&mut planner, healthy(&w, &["api"], true));
    let a = drain[0].1.clone().unwrap();
    assert!(a.communities.contains(&crate::wire::attribute::Community::GRACEFUL_SHUTDOWN));
    assert_eq!(a.local_pref, Some(0));
    // Unhealthy: withdrawn.
    assert_eq!(delta(&mut planner, healthy(&w, &[], false)), vec![(vip, None)]);
    // The explanation agrees once healthy.
    let hw = healthy(&w, &["api"], false);
    let p = plan("kind-worker", &hw).unwrap();
    assert!(routes(&p).contains(&"10.0.0.100/32".to_string()));
    candidates(&p, &hw);
}

#[test]
fn without_a_check_a_virtual_ip_is_always_announced() {
    let v = "apiVersion: kbgp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: api}\nspec: {addresses: [10.0.0.100, 'fd00::100']}\n";
    let p = plan("kind-worker", &world(&[POLICY, NODE, v])).unwrap();
    assert_eq!(routes(&p), vec!["10.0.0.100/32", "10.1.0.0/24", "fd00::100/128"]);
}

#[test]
fn a_virtual_ip_goes_to_the_peers_and_virtual_routers_it_names() {
    let pol = kbgp_kind(POLICY)
        .replace("      peerASN: 65005", "      peerASN: 65005\n    - peerAddress: 10.0.5.2\n      peerASN: 65005");
    let v = virtual_ip("  peers: [10.0.5.2]\n");
    let w = healthy(&world(&[&pol, NODE, &v]), &["api"], false);
    let p = plan("kind-worker", &w).unwrap();
    let to = |addr: &str| {
        let (_, peer) = p.peers().find(|(_, pp)| pp.key.address.to_string() == addr).unwrap();
        p.routes_of(peer).iter().map(|r| r.prefix.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(to("10.0.5.1"), vec!["10.1.0.0/24"]);
    assert_eq!(to("10.0.5.2"), vec!["10.0.0.100/32", "10.1.0.0/24"]);
    // A virtual router or neighbor the policy does not have is a note, not an error.
    let v = virtual_ip("  virtualRouters: [65099]\n  peers: [10.0.9.9]\n");
    let p = plan("kind-worker", &world(&[&pol, NODE, &v])).unwrap();
    assert_eq!(
        p.notes,
        vec![
            "VirtualIP api: spec.virtualRouters: policy rack0-65005 has no virtual router AS65099 on node kind-worker",
            "VirtualIP api: spec.peers: 10.0.9.9 is not a neighbor of its virtual routers in policy rack0-65005",
        ]
    );
    // A node the VirtualIP does not select does not announce it.
    let v = virtual_ip("  nodeSelector: {matchLabels: {role: control-plane}}\n");
    let w = healthy(&world(&[POLICY, NODE, &v]), &["api"], false);
    let p = plan("kind-worker", &w).unwrap();
    assert_eq!(routes(&p), vec!["10.1.0.0/24"]);
}

#[test]
fn a_virtual_ip_wins_over_a_service_with_the_same_address_while_it_is_up() {
    let pol = POLICY.replace(
        "peerASN: 65005",
        "peerASN: 65005\n      advertisedPathAttributes:\n      - selectorType: CiliumLoadBalancerIPPool\n        communities: {standard: ['65005:100']}",
    );
    let pool = "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: web}\nspec: {blocks: [{cidr: 20.0.0.0/24}]}\n";
    let svc = service("web", "advertise-bgp: \"true\"", "");
    let v = virtual_ip("  advertisedPathAttributes: {med: 5}\n").replace("10.0.0.100", "20.0.0.100");
    let w = world(&[&pol, NODE, &svc, pool, &v]);
    let mut planner = Planner::new("kind-worker");
    planner.update(Arc::new(w.clone())).unwrap();
    let up = delta(&mut planner, healthy(&w, &["api"], false));
    let a = up[0].1.clone().unwrap();
    assert_eq!((a.med, a.communities.len()), (Some(5), 0), "the VirtualIP's attributes");
    let down = delta(&mut planner, healthy(&w, &[], false));
    let a = down[0].1.clone().unwrap();
    assert_eq!((a.med, a.communities[0].to_string()), (None, "65005:100".into()), "the Service's route is back");
}
