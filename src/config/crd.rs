//! The CustomResourceDefinitions of kbgp's own kinds, generated from the Rust types
//! (`kbgp crds --out deploy/crds`). A test fails when the committed files are stale.

use super::node_status::BGPNodeStatus;
use super::policy::BGPPeeringPolicy;
use super::pool::LoadBalancerIPPool;
use super::vip::VirtualIP;
use kube::CustomResourceExt;

const HEADER: &str = "# Generated from the Rust types by `kbgp crds --out deploy/crds`. Do not edit.\n";

/// (file name, YAML) of every CRD.
pub fn crds() -> Vec<(&'static str, String)> {
    let y = |crd| serde_yaml::to_string(&crd).map(|t| format!("{HEADER}{t}")).unwrap_or_default();
    vec![
        ("kbgp.io_bgppeeringpolicies.yaml", y(BGPPeeringPolicy::crd())),
        ("kbgp.io_loadbalancerippools.yaml", y(LoadBalancerIPPool::crd())),
        ("kbgp.io_bgpnodestatuses.yaml", y(BGPNodeStatus::crd())),
        ("kbgp.io_virtualips.yaml", y(VirtualIP::crd())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_are_up_to_date() {
        for (name, text) in crds() {
            let path = format!("{}/deploy/crds/{name}", env!("CARGO_MANIFEST_DIR"));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(committed == text, "{path} is stale: run `cargo run -- crds --out deploy/crds`");
        }
    }

    #[test]
    fn the_schema_carries_the_ranges_and_no_closed_objects() {
        let (_, policy) = &crds()[0];
        assert!(policy.contains("maximum: 4294967295"), "ASN range in the schema");
        assert!(policy.contains("peerASN"));
        assert!(!policy.contains("additionalProperties: false"));
        let (_, pool) = &crds()[1];
        assert!(pool.contains("subresources:") && pool.contains("status: {}"));
        assert!(!pool.contains("cidrs"), "the removed field is not offered");
    }
}
