//! YAML shared by the unit tests of several modules.

/// The seed's rack-0 peering policy, in flow style.
pub const POLICY: &str = r#"
apiVersion: cilium.io/v2alpha1
kind: CiliumBGPPeeringPolicy
metadata: {name: rack0-65005}
spec:
  nodeSelector: {matchLabels: {rack: rack0}}
  virtualRouters:
  - localASN: 65005
    exportPodCIDR: true
    serviceSelector: {matchLabels: {advertise-bgp: "true"}}
    neighbors:
    - peerAddress: "10.0.5.1/24"
      peerASN: 65005
"#;

/// `yaml` (a policy such as [`POLICY`]) as kbgp's own kind, where the kbgp extensions of the
/// neighbors are allowed.
pub fn kbgp_kind(yaml: &str) -> String {
    yaml.replace("cilium.io/v2alpha1", "kbgp.io/v1alpha1").replace("CiliumBGPPeeringPolicy", "BGPPeeringPolicy")
}

/// The node of rack 0 that the Cilium v2 and MetalLB tests plan for.
pub const RACK0_NODE: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: rack0-node1, labels: {rack: rack0}}
spec: {podCIDRs: [10.1.0.0/24]}
status: {addresses: [{type: InternalIP, address: 10.0.5.11}]}
"#;

/// A LoadBalancer Service in `default` with `ip` as its ingress; `labels` and `extra` (spec
/// lines) are inserted as written.
pub fn lb_service(name: &str, ip: &str, labels: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default, labels: {{{labels}}}}}\n\
         spec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.10\n{extra}status: {{loadBalancer: {{ingress: [{{ip: {ip}}}]}}}}\n"
    )
}

/// The World of these YAML documents; a document that does not load fails the test with the
/// errors.
pub fn world(docs: &[&str]) -> crate::config::World {
    match crate::config::load_str(&docs.join("\n---\n"), "t") {
        Ok(l) => l.world,
        Err(e) => panic!("{e:?}"),
    }
}

/// The YAML's load errors, one line each (none when it loads).
pub fn load_errors(docs: &[&str]) -> Vec<String> {
    match crate::config::load_str(&docs.join("\n---\n"), "t") {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

/// A first plan of `node` and the routes of its first peer.
pub fn first_peer_routes(
    node: &str,
    w: &crate::config::World,
) -> Result<(std::sync::Arc<crate::plan::Plan>, Vec<crate::rib::Advertisement>), crate::plan::PlanError> {
    use crate::plan::{Planner, RouteUpdate};
    let (plan, up) = Planner::new(node).update(std::sync::Arc::new(w.clone()))?;
    let Some(RouteUpdate::Full(groups)) = up else { panic!("a first plan is a full one") };
    let routes = match plan.peers().next() {
        Some((_, p)) => groups.into_iter().find(|(g, _)| *g == p.group).map(|(_, r)| r).unwrap_or_default(),
        None => Vec::new(),
    };
    Ok((plan, routes))
}

/// The routes' prefixes, as text.
pub fn prefixes(r: &[crate::rib::Advertisement]) -> Vec<String> {
    r.iter().map(|a| a.prefix.to_string()).collect()
}
