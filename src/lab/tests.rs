//! The seed lab's topology file, read the way the runner reads it.

use super::topology::{Endpoint, Role, Topology, split_words};
use std::path::Path;

fn seed_lab() -> Topology {
    Topology::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/containerlab/seed-bgp/seed-bgp.clab.yml"))).unwrap()
}

#[test]
fn the_seed_lab_has_the_seed_topology() {
    let t = seed_lab();
    assert_eq!(t.name, "seed-bgp");
    let role = |n: &str| t.nodes[n].role;
    for n in ["spine01", "spine02", "leaf01", "leaf02"] {
        assert_eq!(role(n), Role::Frr, "{n}");
    }
    for n in ["rack0-node1", "rack0-node2", "rack1-node1", "rack1-node2"] {
        assert_eq!(role(n), Role::Kbgp, "{n}");
    }
    assert_eq!((role("leaf01-br"), role("client"), role("client2")), (Role::Bridge, Role::Host, Role::Host));
    assert_eq!(t.links.len(), 12);
    let ep = |n: &str, i: &str| Endpoint { node: n.into(), iface: i.into() };
    assert!(t.links.iter().any(|l| l.a == ep("leaf01", "eth2") && l.b == ep("spine01", "eth1")));
    assert!(t.links.iter().any(|l| l.a == ep("client2", "net0") && l.b.node == "leaf01-br"));
}

#[test]
fn container_paths_map_to_the_lab_directory() {
    let t = seed_lab();
    let n = &t.nodes["rack0-node1"];
    let words = n.translate(n.cmd.as_deref().unwrap());
    assert_eq!(words[0], "kbgp");
    assert_eq!(words[3], t.dir.join("manifests").display().to_string());
    assert_eq!(words[5], t.dir.join("nodes/rack0-node1/node.yaml").display().to_string());
    let httpd = n.translate(n.exec.last().unwrap());
    assert_eq!(httpd.last().unwrap(), &t.dir.join("nodes/rack0-node1/www").display().to_string());
    assert_eq!(t.nodes["leaf01"].host_path("/etc/frr/frr.conf"), Some(t.dir.join("frr/leaf01.conf")));
    assert_eq!(t.nodes["leaf01"].host_path("/etc/frrx"), None);
}

#[test]
fn words_and_quotes() {
    assert_eq!(split_words("sh -c 'a b' \"c d\" e"), vec!["sh", "-c", "a b", "c d", "e"]);
    assert_eq!(split_words("x ''"), vec!["x", ""]);
}

#[test]
fn mistakes_in_a_topology_are_named() {
    let base = "name: t\ntopology:\n  nodes:\n    a: {kind: linux}\n    b: {kind: linux}\n  links:\n";
    let bad = |links: &str| Topology::parse(&format!("{base}{links}"), Path::new("/x")).unwrap_err();
    assert_eq!(bad("    - endpoints: [\"a:eth1\", \"c:eth1\"]\n"), "links[0]: no node c");
    assert_eq!(
        bad("    - endpoints: [\"a:eth1\", \"b:eth1\"]\n    - endpoints: [\"a:eth1\", \"b:eth2\"]\n"),
        "links[1]: a:eth1 is used twice"
    );
    assert_eq!(bad("    - endpoints: [\"a:eth1\"]\n"), "links[0]: a link has two endpoints");
    assert!(bad("    - endpoints: [\"a:averyveryverylongname\", \"b:eth1\"]\n").contains("1 to 15 characters"));
    let frr = "name: t\ntopology:\n  nodes:\n    r: {kind: linux, image: quay.io/frrouting/frr:9.1.0}\n";
    assert_eq!(
        Topology::parse(frr, Path::new("/x")).unwrap_err(),
        "node r: an FRR node needs a bind for /etc/frr/frr.conf"
    );
}

#[test]
fn the_stand_in_api_server_reads_readyz_from_its_control_file() {
    use super::apiserver::{Readyz, readyz};
    let f = std::env::temp_dir().join(format!("kbgp-readyz-{}", std::process::id()));
    let _ = std::fs::remove_file(&f);
    assert_eq!(readyz(&f), Readyz::Ok, "a missing file is ready");
    for (text, want) in [("ok\n", Readyz::Ok), ("fail\n", Readyz::Fail), ("hang", Readyz::Hang)] {
        std::fs::write(&f, text).unwrap();
        assert_eq!(readyz(&f), want, "{text:?}");
    }
    // `fail N`: N failures, then ready, the file counting down.
    std::fs::write(&f, "fail 2\n").unwrap();
    assert_eq!(readyz(&f), Readyz::Fail);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "fail 1\n");
    assert_eq!(readyz(&f), Readyz::Fail);
    assert_eq!(readyz(&f), Readyz::Ok);
    std::fs::remove_file(&f).unwrap();
}
