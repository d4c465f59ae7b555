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
