use super::*;
use crate::config::load_str;
use std::collections::BTreeMap;

/// The seed's policy with three neighbors: dual stack, IPv4 only, and one whose routes in the
/// `web` pool get a community: three export groups.
const POLICY: &str = r#"
apiVersion: cilium.io/v2alpha1
kind: CiliumBGPPeeringPolicy
metadata: {name: rack0}
spec:
  nodeSelector: {matchLabels: {rack: rack0}}
  virtualRouters:
  - localASN: 65005
    exportPodCIDR: true
    serviceSelector: {matchLabels: {advertise-bgp: "true"}}
    serviceAdvertisements: [LoadBalancerIP, ExternalIP]
    neighbors:
    - {peerAddress: 10.0.5.1, peerASN: 65005}
    - {peerAddress: 10.0.5.2, peerASN: 65005, families: [{afi: ipv4, safi: unicast}]}
    - peerAddress: 10.0.5.3
      peerASN: 65005
      advertisedPathAttributes:
      - selectorType: CiliumLoadBalancerIPPool
        selector: {matchLabels: {tier: web}}
        communities: {standard: ["65005:100"]}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: {name: web, labels: {tier: web}}
spec: {blocks: [{cidr: 20.0.0.0/28}]}
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {rack: rack0}}
spec: {podCIDRs: [10.1.0.0/24, "fd00:1::/64"]}
status: {addresses: [{type: InternalIP, address: 10.0.5.11}]}
"#;

/// One Service as the test varies it.
#[derive(Clone, Debug)]
struct Svc {
    selected: bool,
    local: bool,
    /// Ready endpoints on this node (only matters when `local`).
    ready_here: bool,
    ingress: Vec<String>,
    external: Vec<String>,
}

fn world(services: &BTreeMap<usize, Svc>) -> Arc<World> {
    world_named(services, |i| format!("s{i}"))
}

/// `name` makes each Service's name: zero-padded names keep the World in key order, as the
/// Kubernetes source does, plain ones do not, as files may not.
fn world_named(services: &BTreeMap<usize, Svc>, name: impl Fn(usize) -> String) -> Arc<World> {
    let mut docs = vec![POLICY.to_string()];
    for (i, s) in services {
        let i = name(*i);
        let label = if s.selected { "advertise-bgp: \"true\"" } else { "app: x" };
        let etp = if s.local { "Local" } else { "Cluster" };
        let list = |v: &[String]| v.iter().map(|ip| format!("\"{ip}\"")).collect::<Vec<_>>().join(", ");
        let ingress: Vec<String> = s.ingress.iter().map(|ip| format!("{{ip: \"{ip}\"}}")).collect();
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, labels: {{{label}}}}}\nspec: {{type: LoadBalancer, \
             externalTrafficPolicy: {etp}, externalIPs: [{}]}}\nstatus: {{loadBalancer: {{ingress: [{}]}}}}\n",
            list(&s.external),
            ingress.join(", ")
        ));
        if s.local {
            let node = if s.ready_here { "n1" } else { "n2" };
            docs.push(format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s{i}-1, labels: \
                 {{kubernetes.io/service-name: s{i}}}}}\naddressType: IPv4\nendpoints: [{{addresses: [10.1.0.9], \
                 nodeName: {node}, conditions: {{ready: true}}}}]\n"
            ));
        }
    }
    Arc::new(load_str(&docs.join("---\n"), "t").unwrap().world)
}

type Model = std::collections::HashMap<GroupKey, BTreeMap<IpNet, Arc<AdvertAttrs>>>;

fn model_of(groups: &GroupRoutes) -> Model {
    groups.iter().map(|(g, r)| (g.clone(), r.iter().map(|a| (a.prefix, a.attrs.clone())).collect())).collect()
}

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
    /// An address from a small set, so that Services share some, in the pool or not, v4 or v6.
    fn ip(&mut self) -> String {
        match self.next(3) {
            0 => format!("20.0.0.{}", self.next(20)),
            1 => format!("192.0.2.{}", self.next(10)),
            _ => format!("2001:db8::{:x}", self.next(10)),
        }
    }
}

#[test]
fn incremental_updates_give_what_planning_from_scratch_gives() {
    // In key order (the Services are matched by walking both lists) and not (by hashing).
    walk(|i| format!("s{i:03}"));
    walk(|i| format!("s{i}"));
}

fn walk(name: impl Fn(usize) -> String + Copy) {
    let world = |s: &BTreeMap<usize, Svc>| world_named(s, name);
    let mut rng = Rng(42);
    let mut services: BTreeMap<usize, Svc> = BTreeMap::new();
    for i in 0..12 {
        let s = Svc {
            selected: rng.next(4) != 0,
            local: rng.next(3) == 0,
            ready_here: rng.next(2) == 0,
            ingress: (0..rng.next(3)).map(|_| rng.ip()).collect(),
            external: (0..rng.next(2)).map(|_| rng.ip()).collect(),
        };
        services.insert(i, s);
    }
    let mut planner = Planner::new("n1");
    let (_, first) = planner.update(world(&services)).unwrap();
    let Some(RouteUpdate::Full(groups)) = first else { panic!("the first update is full") };
    assert_eq!(groups.len(), 3, "three export groups");
    let mut model = model_of(&groups);
    let (mut deltas, mut changes) = (0, 0);
    for step in 0..300 {
        let i = rng.next(14);
        match rng.next(7) {
            0 => {
                services.remove(&i);
            }
            1 => {
                services
                    .entry(i)
                    .or_insert(Svc {
                        selected: true,
                        local: false,
                        ready_here: false,
                        ingress: vec![],
                        external: vec![],
                    })
                    .selected ^= true
            }
            2 => {
                if let Some(s) = services.get_mut(&i) {
                    s.local ^= true;
                }
            }
            3 => {
                if let Some(s) = services.get_mut(&i) {
                    s.ready_here ^= true;
                }
            }
            4 => {
                if let Some(s) = services.get_mut(&i) {
                    s.external = (0..rng.next(2)).map(|_| rng.ip()).collect();
                }
            }
            _ => {
                if let Some(s) = services.get_mut(&i) {
                    s.ingress = (0..rng.next(4)).map(|_| rng.ip()).collect();
                }
            }
        }
        let w = world(&services);
        let (_, update) = planner.update(w.clone()).unwrap();
        match update {
            None => {}
            Some(RouteUpdate::Delta(d)) => {
                deltas += 1;
                for (g, list) in d {
                    let m = model.entry(g).or_default();
                    for (p, a) in list {
                        changes += 1;
                        let before = m.get(&p).cloned();
                        assert_ne!(before, a, "step {step}: a delta entry that changes nothing ({p})");
                        match a {
                            Some(a) => m.insert(p, a),
                            None => m.remove(&p),
                        };
                    }
                }
            }
            Some(RouteUpdate::Full(_)) => panic!("step {step}: only Services changed, yet a full update"),
        }
        let (_, fresh) = Planner::new("n1").update(w).unwrap();
        let Some(RouteUpdate::Full(fresh)) = fresh else { panic!() };
        let mut want = model_of(&fresh);
        want.retain(|_, r| !r.is_empty());
        model.retain(|_, r| !r.is_empty());
        assert_eq!(model, want, "step {step}: incremental and from-scratch plans differ");
    }
    assert!(deltas > 30 && changes > 100, "the walk exercised the deltas ({deltas} deltas, {changes} changes)");
}

#[test]
fn a_shared_address_stays_until_its_last_service_goes() {
    let svc =
        |ip: &str| Svc { selected: true, local: false, ready_here: false, ingress: vec![ip.into()], external: vec![] };
    let mut services: BTreeMap<usize, Svc> = [(1, svc("192.0.2.1")), (2, svc("192.0.2.1"))].into_iter().collect();
    let mut planner = Planner::new("n1");
    planner.update(world(&services)).unwrap();
    services.remove(&1);
    let (_, u) = planner.update(world(&services)).unwrap();
    assert_eq!(u, None, "the other Service still asks for it: nothing changes");
    services.remove(&2);
    let (_, u) = planner.update(world(&services)).unwrap();
    let Some(RouteUpdate::Delta(d)) = u else { panic!("{u:?}") };
    // Withdrawn from the two groups that take IPv4 routes.
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|(_, c)| c == &vec![("192.0.2.1/32".parse().unwrap(), None)]));
}

#[test]
fn a_policy_or_node_change_plans_everything_again() {
    let services: BTreeMap<usize, Svc> = BTreeMap::new();
    let mut planner = Planner::new("n1");
    planner.update(world(&services)).unwrap();
    let (_, u) = planner.update(world(&services)).unwrap();
    assert_eq!(u, None, "the same World: no update");
    let text = POLICY.replace("podCIDRs: [10.1.0.0/24, \"fd00:1::/64\"]", "podCIDRs: [10.1.7.0/24]");
    let w = Arc::new(load_str(&text, "t").unwrap().world);
    let (_, u) = planner.update(w).unwrap();
    let Some(RouteUpdate::Full(g)) = u else { panic!("{u:?}") };
    assert!(g.iter().all(|(_, r)| r.iter().map(|a| a.prefix.to_string()).collect::<Vec<_>>() == ["10.1.7.0/24"]));
    assert_eq!(planner.prefixes(), 1);
}
