//! The acceptance test: seed 001's spine-leaf lab (containerlab/seed-bgp), built in network
//! namespaces by `kbgp-lab` from the containerlab file, with FRR leaves and spines and kbgp on
//! the four nodes running the seed's manifests.
//!
//! Checks, in order: leaf01's kernel has the service /32 and rack 0's pod CIDRs via rack 0's
//! nodes, as in the seed; both spines learn the /32 from both leaves; 20/20 HTTP answers from
//! the client behind spine02 and from client2 on rack 0's LAN; taking the label off the
//! Service withdraws the /32 from every leaf and spine kernel within 2 s while pod CIDRs stay;
//! with `maximum-paths` raised, leaf01 and spine01 spread the /32 over both paths (ECMP);
//! stopping kbgp on one node keeps the service reachable through the others.

mod common;

use common::{sh, wait_for};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LAB_BIN: &str = env!("CARGO_BIN_EXE_kbgp-lab");
const KBGP_BIN: &str = env!("CARGO_BIN_EXE_kbgp");
const VIP: &str = "20.0.0.100";

/// The lab, copied to a temporary directory (the test edits a manifest) under its own name,
/// so it never clashes with a lab a user has up. Taken down on drop.
struct SeedLab {
    dir: PathBuf,
    file: PathBuf,
    state: PathBuf,
}

impl SeedLab {
    fn up() -> SeedLab {
        SeedLab::up_as("seedtest")
    }

    /// The lab under its own name (labs of different names run side by side).
    fn up_as(name: &str) -> SeedLab {
        common::require("/usr/lib/frr/bgpd");
        common::require("busybox");
        common::require("curl");
        let dir = std::env::temp_dir().join(format!("kbgp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        common::copy_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/containerlab/seed-bgp")), &dir);
        let file = dir.join("seed-bgp.clab.yml");
        let text = std::fs::read_to_string(&file).unwrap().replace("name: seed-bgp", &format!("name: {name}"));
        std::fs::write(&file, text).unwrap();
        let lab = SeedLab { state: dir.join("state"), dir, file };
        let out = lab.lab(&["up", "--kbgp", KBGP_BIN]);
        assert!(out.status.success(), "kbgp-lab up: {}", String::from_utf8_lossy(&out.stderr));
        lab
    }

    fn lab(&self, args: &[&str]) -> std::process::Output {
        let mut a: Vec<&str> = vec![args[0], self.file.to_str().unwrap(), "--state", self.state.to_str().unwrap()];
        a.extend_from_slice(&args[1..]);
        Command::new(LAB_BIN).args(&a).output().unwrap()
    }

    /// Runs a command in a node; its stdout.
    fn exec(&self, node: &str, cmd: &[&str]) -> String {
        let mut a = vec!["exec", node, "--"];
        a.extend_from_slice(cmd);
        let out = self.lab(&a);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn route(&self, node: &str, prefix: &str) -> String {
        self.exec(node, &["ip", "route", "show", prefix])
    }

    /// Next hops of a kernel route (one or several), sorted.
    fn next_hops(&self, node: &str, prefix: &str) -> Vec<String> {
        let r = self.route(node, prefix);
        let mut v: Vec<String> = r
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_string())
            .collect();
        v.sort();
        v
    }

    /// (successes, attempts) of 20 HTTP GETs to the service IP from a node.
    fn curl20(&self, node: &str) -> usize {
        let out = self.exec(
            node,
            &["sh", "-c", &format!("for i in $(seq 1 20); do curl -s -o /dev/null -w '%{{http_code}}\\n' --connect-timeout 3 http://{VIP}; done")],
        );
        out.lines().filter(|l| *l == "200").count()
    }

    fn kbgp_pid(&self, node: &str) -> String {
        std::fs::read_to_string(self.state.join(node).join("kbgp.pid")).unwrap().trim().to_string()
    }

    fn hup_all(&self) {
        for n in ["rack0-node1", "rack0-node2", "rack1-node1", "rack1-node2"] {
            sh(&["kill", "-HUP", &self.kbgp_pid(n)]);
        }
    }

    fn vtysh(&self, node: &str, cmds: &[&str]) -> String {
        let mut a = vec!["vtysh"];
        for c in cmds {
            a.push("-c");
            a.push(c);
        }
        self.exec(node, &a)
    }
}

impl Drop for SeedLab {
    fn drop(&mut self) {
        let out = self.lab(&["down"]);
        if !out.status.success() {
            eprintln!("kbgp-lab down: {}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_hops(lab: &SeedLab, node: &str, prefix: &str, want: &[&str], timeout: Duration) {
    wait_for(&format!("{node}: {prefix} via {want:?}"), timeout, || {
        let got = lab.next_hops(node, prefix);
        if got == want { Ok(()) } else { Err(format!("next hops {got:?}; route: {}", lab.route(node, prefix).trim())) }
    });
}

#[test]
fn seed_lab_end_to_end() {
    let lab = SeedLab::up();

    // The seed's routes: leaf01 reaches the service and rack 0's pod CIDRs through rack 0's
    // nodes; the spines through leaf01 (10.0.101.2 on spine01, 10.0.103.2 on spine02).
    wait_hops(&lab, "leaf01", VIP, &["10.0.5.11"], Duration::from_secs(60));
    wait_hops(&lab, "leaf01", "10.1.0.0/24", &["10.0.5.11"], Duration::from_secs(30));
    wait_hops(&lab, "leaf01", "10.1.3.0/24", &["10.0.5.12"], Duration::from_secs(30));
    // Rack 1's LAN and pod CIDRs through spine01, the client's LAN through spine02.
    for p in ["10.0.10.0/24", "10.1.1.0/24", "10.1.2.0/24"] {
        wait_hops(&lab, "leaf01", p, &["10.0.101.1"], Duration::from_secs(30));
    }
    wait_hops(&lab, "leaf01", "192.168.0.0/24", &["10.0.103.1"], Duration::from_secs(30));
    wait_hops(&lab, "spine01", VIP, &["10.0.101.2"], Duration::from_secs(30));
    wait_hops(&lab, "spine02", VIP, &["10.0.103.2"], Duration::from_secs(30));
    println!("leaf01:\n{}", lab.exec("leaf01", &["ip", "route"]));
    println!("spine01:\n{}", lab.exec("spine01", &["ip", "route"]));
    // Both racks announce it: each spine has a path through each leaf.
    for spine in ["spine01", "spine02"] {
        wait_for(&format!("{spine} to have {VIP} from both leaves"), Duration::from_secs(30), || {
            let j = lab.vtysh(spine, &[&format!("show bgp ipv4 unicast {VIP}/32 json")]);
            let v: serde_json::Value = serde_json::from_str(&j).map_err(|e| format!("{e}: {j:.200}"))?;
            let mut from: Vec<String> = v["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p.pointer("/peer/routerId").and_then(|x| x.as_str()).map(str::to_owned))
                .collect();
            from.sort();
            if from == ["10.0.10.1", "10.0.5.1"] { Ok(()) } else { Err(format!("paths from {from:?}")) }
        });
    }
    for client in ["client", "client2"] {
        assert_eq!(lab.curl20(client), 20, "{client}: answers out of 20");
    }
    // The operator's view from a node, as the README shows it.
    let peers = lab.exec("rack0-node1", &["kbgp", "peers"]);
    let row = peers.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("10.0.5.1 ") && row.contains("Established"), "kbgp peers:\n{peers}");
    let why = lab.exec("rack0-node1", &["kbgp", "why", VIP]);
    assert_eq!(
        why.lines().next(),
        Some("20.0.0.100/32 is announced by node rack0-node1 to 1 of 1 peers (10.0.5.1)"),
        "kbgp why:\n{why}"
    );

    // Take the label off the Service: every leaf and spine loses the /32 within 2 s, the pod
    // CIDRs stay.
    let svc = lab.dir.join("manifests/nginx-service.yaml");
    let text = std::fs::read_to_string(&svc).unwrap();
    std::fs::write(&svc, text.replace("advertise-bgp: \"true\"", "advertise-bgp: \"false\"")).unwrap();
    let t0 = Instant::now();
    lab.hup_all();
    for node in ["leaf01", "leaf02", "spine01", "spine02"] {
        wait_for(
            &format!("{node} to withdraw {VIP} within 2 s"),
            Duration::from_secs(2).saturating_sub(t0.elapsed()),
            || {
                let r = lab.route(node, VIP);
                if r.trim().is_empty() { Ok(()) } else { Err(r) }
            },
        );
    }
    println!("withdrawn everywhere {:?} after SIGHUP", t0.elapsed());
    let why = lab.exec("rack0-node1", &["kbgp", "why", VIP]);
    assert!(
        why.starts_with(
            "20.0.0.100/32 is not announced by node rack0-node1: the serviceSelector of AS65005 does not match"
        ),
        "kbgp why after the label change:\n{why}"
    );
    for (node, prefix, via) in [
        ("leaf01", "10.1.0.0/24", "10.0.5.11"),
        ("leaf01", "10.1.3.0/24", "10.0.5.12"),
        ("leaf02", "10.1.1.0/24", "10.0.10.11"),
        ("leaf02", "10.1.2.0/24", "10.0.10.12"),
        ("spine01", "10.1.0.0/24", "10.0.101.2"),
        ("spine02", "10.1.1.0/24", "10.0.104.2"),
    ] {
        assert_eq!(lab.next_hops(node, prefix), [via], "{node}: pod CIDR {prefix} after the label went");
    }
    std::fs::write(&svc, text).unwrap();
    lab.hup_all();
    wait_hops(&lab, "leaf01", VIP, &["10.0.5.11"], Duration::from_secs(10));

    // ECMP: raise maximum-paths on the leaves (iBGP, both nodes of a rack) and the spines
    // (eBGP, both leaves).
    for (leaf, asn) in [("leaf01", "65005"), ("leaf02", "65010")] {
        lab.vtysh(
            leaf,
            &["conf t", &format!("router bgp {asn}"), "address-family ipv4 unicast", "maximum-paths ibgp 4"],
        );
    }
    for (spine, asn) in [("spine01", "65100"), ("spine02", "65200")] {
        lab.vtysh(spine, &["conf t", &format!("router bgp {asn}"), "address-family ipv4 unicast", "maximum-paths 4"]);
    }
    wait_hops(&lab, "leaf01", VIP, &["10.0.5.11", "10.0.5.12"], Duration::from_secs(20));
    wait_hops(&lab, "leaf02", VIP, &["10.0.10.11", "10.0.10.12"], Duration::from_secs(20));
    wait_hops(&lab, "spine01", VIP, &["10.0.101.2", "10.0.102.2"], Duration::from_secs(20));
    println!("leaf01 with ECMP:\n{}", lab.route("leaf01", VIP));
    for client in ["client", "client2"] {
        assert_eq!(lab.curl20(client), 20, "{client} with ECMP: answers out of 20");
    }

    // Stop kbgp on rack0-node1: its routes go, the service stays reachable through the others.
    sh(&["kill", "-TERM", &lab.kbgp_pid("rack0-node1")]);
    wait_hops(&lab, "leaf01", VIP, &["10.0.5.12"], Duration::from_secs(10));
    wait_for("rack0-node1's pod CIDR to be withdrawn", Duration::from_secs(10), || {
        let r = lab.route("leaf01", "10.1.0.0/24");
        if r.trim().is_empty() { Ok(()) } else { Err(r) }
    });
    for client in ["client", "client2"] {
        assert_eq!(lab.curl20(client), 20, "{client} with rack0-node1 stopped: answers out of 20");
    }
}

/// What the FRR routers hold for `prefix`: per path, the next hop, communities, LOCAL_PREF and
/// AS path, sorted (timestamps and the best-path reasons left out).
fn bgp_paths(lab: &SeedLab, router: &str, prefix: &str) -> Vec<(String, String, Option<u64>, String)> {
    let j = lab.vtysh(router, &[&format!("show bgp ipv4 unicast {prefix} json")]);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
    let mut out: Vec<_> = v["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p.pointer("/nexthops/0/ip").and_then(|x| x.as_str()).unwrap_or_default().to_string(),
                p.pointer("/community/string").and_then(|x| x.as_str()).unwrap_or_default().to_string(),
                p["locPrf"].as_u64().or(p["localpref"].as_u64()),
                p.pointer("/aspath/string").and_then(|x| x.as_str()).unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

type View = Vec<(String, String, Vec<(String, String, Option<u64>, String)>)>;

/// Every leaf's and spine's paths for each of `prefixes`.
fn view(lab: &SeedLab, prefixes: &[&str]) -> View {
    let mut v = Vec::new();
    for router in ["leaf01", "leaf02", "spine01", "spine02"] {
        for p in prefixes {
            v.push((router.to_string(), p.to_string(), bgp_paths(lab, router, p)));
        }
    }
    v
}

/// Replaces the manifests that describe the BGP intent with `files` and reloads every node.
fn switch_to(lab: &SeedLab, files: &[(&str, String)]) {
    let dir = lab.dir.join("manifests");
    for old in ["bgp-peering-policies.yaml", "lb-ip-pool.yaml", "cilium-v2.yaml", "metallb.yaml"] {
        let _ = std::fs::remove_file(dir.join(old));
    }
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    lab.hup_all();
}

const POD_CIDRS: [&str; 4] = ["10.1.0.0/24", "10.1.3.0/24", "10.1.1.0/24", "10.1.2.0/24"];

#[test]
fn the_same_intent_in_cilium_v1_v2_and_metallb_gives_identical_routes() {
    let lab = SeedLab::up_as("seedapis");
    let manifests = lab.dir.join("manifests");
    let read = |f: &str| std::fs::read_to_string(manifests.join(f)).unwrap();
    let pool = read("lb-ip-pool.yaml");
    // Cilium v1: the seed's policies, each neighbor with a community and LOCAL_PREF on the
    // pool's routes.
    let attrs = "      advertisedPathAttributes:\n      - selectorType: CiliumLoadBalancerIPPool\n        \
                 communities: {standard: [\"65000:100\"]}\n        localPreference: 200\n";
    let v1 = read("bgp-peering-policies.yaml")
        .replace("      peerASN: 65005 # BGP Peer 的ASN\n", &format!("      peerASN: 65005 # BGP Peer 的ASN\n{attrs}"));
    let v1 =
        v1.replace("      peerASN: 65010 # BGP Peer 的ASN", &format!("      peerASN: 65010 # BGP Peer 的ASN\n{attrs}"));
    assert_eq!(v1.matches("advertisedPathAttributes").count(), 2, "{v1}");
    switch_to(&lab, &[("bgp-peering-policies.yaml", v1), ("lb-ip-pool.yaml", pool.clone())]);
    let mut all: Vec<&str> = vec!["20.0.0.100/32"];
    all.extend(POD_CIDRS);
    let mut want = View::new();
    wait_for("the v1 routes with their community at every router", Duration::from_secs(60), || {
        let v = view(&lab, &all);
        let ok = v.iter().all(|(r, p, paths)| {
            !paths.is_empty()
                && (*p != "20.0.0.100/32" || paths.iter().all(|x| x.1 == "65000:100"))
                && (!r.starts_with("leaf") || *p != "20.0.0.100/32" || paths.iter().any(|x| x.2 == Some(200)))
        });
        want = v.clone();
        if ok { Ok(()) } else { Err(format!("{v:?}")) }
    });
    println!("v1, at the routers: {want:#?}");

    // Cilium v2: the example's objects with the same attributes on the Service advertisement.
    let v2 = include_str!("../examples/cilium-v2.yaml").replace(
        "        advertise-bgp: \"true\"\n",
        "        advertise-bgp: \"true\"\n    attributes:\n      communities: {standard: [\"65000:100\"]}\n      localPreference: 200\n",
    );
    assert!(v2.contains("localPreference: 200"), "{v2}");
    switch_to(&lab, &[("cilium-v2.yaml", v2), ("lb-ip-pool.yaml", pool)]);
    wait_for("the v2 routes, identical to the v1 ones", Duration::from_secs(90), || {
        let v = view(&lab, &all);
        if v == want { Ok(()) } else { Err(format!("{v:?}")) }
    });

    // MetalLB: the example's objects, the seed's addresses as an IPAddressPool, the community
    // through a Community alias. MetalLB's API has no pod CIDRs: those routes go.
    let ml = include_str!("../examples/metallb.yaml")
        .replace("  - 20.0.10.0/24\n", "  - 20.0.0.100-20.0.0.200\n")
        .replace("  serviceSelectors:\n", "  communities: [rack-routes]\n  localPref: 200\n  serviceSelectors:\n");
    let community = "---\napiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: communities, namespace: metallb-system}\nspec:\n  communities:\n  - {name: rack-routes, value: \"65000:100\"}\n";
    assert!(ml.contains("20.0.0.100-20.0.0.200") && ml.contains("localPref: 200"), "{ml}");
    switch_to(&lab, &[("metallb.yaml", format!("{ml}{community}"))]);
    let want_lb: View = want.iter().filter(|(_, p, _)| p == "20.0.0.100/32").cloned().collect();
    wait_for("the MetalLB Service route, identical to the v1 one, and no pod CIDRs", Duration::from_secs(90), || {
        let lb = view(&lab, &["20.0.0.100/32"]);
        let pods = view(&lab, &POD_CIDRS);
        if lb != want_lb {
            return Err(format!("{lb:?} != {want_lb:?}"));
        }
        match pods.iter().find(|(_, _, paths)| !paths.is_empty()) {
            Some(p) => Err(format!("pod CIDR still announced: {p:?}")),
            None => Ok(()),
        }
    });
    let why = lab.exec("rack1-node2", &["kbgp", "why", VIP]);
    assert!(why.contains("BGPAdvertisement metallb-system/advertise-bgp"), "kbgp why:\n{why}");
}
