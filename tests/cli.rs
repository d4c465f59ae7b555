//! The `kbgp` command as a user meets it: `check` output and exit codes, and `run` refusing a
//! bad configuration before anything starts.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kbgp");

fn file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kbgp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn seed() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed");
    let mut docs: Vec<String> = ["bgp-peering-policies.yaml", "lb-ip-pool.yaml", "nginx.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(format!("{dir}/{f}")).unwrap())
        .collect();
    docs.push(
        "apiVersion: v1\nkind: Node\nmetadata: {name: kind-worker, labels: {rack: rack0}}\n\
         spec: {podCIDRs: [10.1.0.0/24]}\nstatus: {addresses: [{type: InternalIP, address: 10.0.5.11}]}\n"
            .into(),
    );
    docs.join("\n---\n")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN).args(args).env_remove("NODE_NAME").output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn check_accepts_the_seed_and_notes_what_it_ignores() {
    let p = file("seed.yaml", &seed());
    let (code, out, _) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: nginx-deployment: apps/v1 Deployment is not a kind kbgp reads; ignored"), "{out}");
    // The seed's pool as published (20.0.10.0/24): LB IPAM gives the Service its first address.
    assert!(out.contains("LB IPAM: default/nginx-service: 20.0.10.0 (pool lb-pool)"), "{out}");
    assert!(out.contains("node kind-worker: policy rack0-65005, 1 peers, 2 routes"), "{out}");
    assert!(out.trim_end().ends_with("ok (2 policies, 1 pools, 1 nodes, 1 services, 0 virtual IPs)"), "{out}");
}

#[test]
fn check_prints_one_line_per_problem_and_fails() {
    let bad = seed()
        .replace("peerASN: 65005 # BGP Peer 的ASN", "peerASN: 0")
        .replace("peerAddress: \"10.0.10.1/24\"", "peerAddress: \"leaf02\"");
    let p = file("bad.yaml", &bad);
    let (code, out, _) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with("warning:")).collect();
    assert_eq!(
        lines,
        vec![
            "rack0-65005: spec.virtualRouters[0].neighbors[0].peerASN: must be 1..=4294967295, got 0",
            "rack1-65010: spec.virtualRouters[0].neighbors[0].peerAddress: \"leaf02\" is not an IP address (with or without a /length)",
        ]
    );
}

#[test]
fn check_reports_a_node_with_two_policies() {
    let text = seed().replace("rack: rack1", "rack: rack0");
    let p = file("two.yaml", &text);
    let (code, out, _) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("kind-worker: metadata.labels: selected by 2 peering policies (rack0-65005, rack1-65010)"),
        "{out}"
    );
}

#[test]
fn check_fails_on_lb_ipam_conflicts() {
    let text = seed().replace("type: LoadBalancer", "type: LoadBalancer\n  loadBalancerIP: 192.0.2.1");
    let p = file("ipam.yaml", &text);
    let (code, out, _) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("LB IPAM: default/nginx-service: requested 192.0.2.1 is in no pool"), "{out}");
}

#[test]
fn several_files_and_directories_make_one_configuration() {
    let dir = std::env::temp_dir().join(format!("kbgp-cli-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed");
    let node = file(
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {rack: rack1}}\nstatus: {addresses: [{type: InternalIP, address: 10.0.10.11}]}\n",
    );
    let (code, out, _) = run(&["check", seed_dir, node.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("node n1: policy rack1-65010, 1 peers, 1 routes"), "{out}");
    // The same Node twice, in two files: one error naming it.
    let (code, out, _) = run(&["check", seed_dir, node.to_str().unwrap(), node.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("n1: metadata.name: another Node has this name"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_refuses_a_bad_file_before_starting() {
    let p = file("run-bad.yaml", &seed().replace("localASN: 65010", "localASN: 0"));
    let (code, _, err) = run(&["run", "--config", p.to_str().unwrap(), "--metrics-addr", "127.0.0.1:0"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "kbgp: rack1-65010: spec.virtualRouters[0].localASN: must be 1..=4294967295, got 0");
}

#[test]
fn run_needs_to_know_its_node() {
    let two = format!("{}\n---\napiVersion: v1\nkind: Node\nmetadata: {{name: other}}\n", seed());
    let p = file("run-nodes.yaml", &two);
    let (code, _, err) = run(&["run", "--config", p.to_str().unwrap(), "--metrics-addr", "127.0.0.1:0"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "kbgp: the file has 2 Node documents (kind-worker, other): pass --node or set NODE_NAME");
    let (code, _, err) =
        run(&["run", "--config", p.to_str().unwrap(), "--node", "nope", "--metrics-addr", "127.0.0.1:0"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("node \"nope\": no Node document with this name in the file (Nodes: kind-worker, other)"),
        "{err}"
    );
}

#[test]
fn check_resolves_auth_secret_ref_in_the_bgp_secrets_namespace() {
    let with_ref = seed().replacen("peerASN: 65005", "peerASN: 65005\n      authSecretRef: bgp-auth", 1);
    // No Secret: one problem naming the policy, the neighbor and the Secret.
    let p = file("md5-missing.yaml", &with_ref);
    let (code, out, _) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("authSecretRef bgp-auth: no Secret bgp-auth in the BGP secrets namespace"), "{out}");
    assert!(out.contains("policy rack0-65005, neighbor 10.0.5.1"), "{out}");
    // A Secret elsewhere is ignored, with a warning; in the namespace given, it is used.
    let secret =
        "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: bgp-auth, namespace: bgp}\nstringData: {password: pw}\n";
    let p = file("md5-elsewhere.yaml", &(with_ref.clone() + secret));
    let (code, out, _) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("warning: Secret bgp/bgp-auth ignored"), "{out}");
    let (code, out, _) = run(&["check", "--bgp-secrets-namespace", "bgp", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("pw,") && !out.contains(": pw"), "the password is not printed: {out}");
}

#[test]
fn check_validates_a_virtual_ip_and_the_files_its_check_reads() {
    let example = format!("{}/examples/control-plane-vip/kbgp.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&example).unwrap();
    // The kubeadm CA is not on this machine: one line naming the field.
    let missing = text.replace("/etc/kubernetes/pki/ca.crt", "/nonexistent/kbgp-test/ca.crt");
    let p = file("vip-missing-ca.yaml", &missing);
    let (code, out, _) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("kube-apiserver: spec.healthCheck.tls.caFile: /nonexistent/kbgp-test/ca.crt: ")),
        "{out}"
    );
    let insecure = text.replace("caFile: /etc/kubernetes/pki/ca.crt", "insecureSkipVerify: true");
    let p = file("vip-insecure.yaml", &insecure);
    let (code, out, _) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("VirtualIP kube-apiserver: 10.100.0.100 announced while HTTPS GET https://127.0.0.1:6443/readyz passes (rise 2, fall 3, every 1000 ms), by cp1"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("1 nodes, 0 services, 1 virtual IPs)"), "{out}");
    let bad = insecure.replace("type: HTTPS", "type: HTTP2");
    let p = file("vip-bad.yaml", &bad);
    let (code, out, _) = run(&["check", p.to_str().unwrap()]);
    assert_eq!(
        (code, out.trim()),
        (1, "kube-apiserver: spec.healthCheck.type: \"HTTP2\" is not one of HTTPS, HTTP, TCP")
    );
}
