use super::*;
use crate::config::load::{load_careful, load_fast};
use crate::config::load_str;

/// The kubeadm API server check, as docs/control-plane-vip.md gives it.
const KUBEADM: &str = "
apiVersion: kbgp.io/v1alpha1
kind: VirtualIP
metadata:
  name: kube-apiserver
spec:
  addresses:
  - 10.0.0.100
  - fd00::100/128
  healthCheck:
    type: HTTPS
    url: https://127.0.0.1:6443/readyz
    tls:
      caFile: /etc/kubernetes/pki/ca.crt
      serverName: kubernetes
  localInterface:
    name: lo
";

fn one(yaml: &str) -> VirtualIp {
    let l = load_str(yaml, "t").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(l.world.virtual_ips.len(), 1);
    (*l.world.virtual_ips[0]).clone()
}

fn errors(yaml: &str) -> Vec<String> {
    load_str(yaml, "t").unwrap_err().iter().map(|e| e.to_string()).collect()
}

#[test]
fn the_kubeadm_check_loads_with_its_defaults() {
    let v = one(KUBEADM);
    assert_eq!(v.addresses, vec!["10.0.0.100".parse::<IpAddr>().unwrap(), "fd00::100".parse().unwrap()]);
    let h = v.health_check.unwrap();
    assert_eq!(h.expected_status, 200);
    assert_eq!(h.policy, Policy::default());
    let Target::Http { host, port, path, tls: Some(tls), .. } = &h.target else { panic!("{:?}", h.target) };
    assert_eq!((host.as_str(), *port, path.as_str()), ("127.0.0.1", 6443, "/readyz"));
    assert_eq!(tls.server_name, "kubernetes");
    assert_eq!(tls.ca_file.as_deref(), Some(std::path::Path::new("/etc/kubernetes/pki/ca.crt")));
    assert_eq!(v.local_interface, Some(LocalInterface { name: "lo".into(), manage: Manage::WhileHealthy }));
    assert_eq!(v.drain, Duration::ZERO);
    assert!(v.virtual_routers.is_none() && v.peers.is_none() && v.node_selector.is_none());
}

#[test]
fn both_readers_read_it_alike() {
    let fast = load_fast(KUBEADM, "t").unwrap_or_else(|_| panic!("in the fast reader's subset")).unwrap();
    let careful = load_careful(KUBEADM, "t").unwrap();
    assert_eq!(fast.world, careful.world);
}

#[test]
fn every_field_is_checked_with_its_path() {
    let bad = "
apiVersion: kbgp.io/v1alpha1
kind: VirtualIP
metadata:
  name: vip
spec:
  addresses: [10.0.0.100/24, 10.0.0.1, 10.0.0.1, 127.0.0.1]
  virtualRouters: [0]
  peers: [leaf]
  advertisedPathAttributes:
    communities: {standard: ['65000:x'], wellKnown: [nope]}
    med: -1
  healthCheck:
    type: HTTPS
    url: http://127.0.0.1:6443/readyz
    expectedStatus: 99
    intervalMilliseconds: 500
    timeoutMilliseconds: 800
    rise: 0
    fall: 101
  localInterface: {name: averyveryverylongname, manage: Sometimes}
  gracefulShutdown: {drainSeconds: 301}
";
    let e = errors(bad);
    let want = [
        "vip: spec.addresses[0]: \"10.0.0.100/24\": a VirtualIP is one address, announced as /32",
        "vip: spec.addresses[2]: 10.0.0.1 is listed twice",
        "vip: spec.addresses[3]: \"127.0.0.1\": an unspecified, multicast or loopback address cannot be announced",
        "vip: spec.virtualRouters[0]: must be 1..=4294967295, got 0",
        "vip: spec.peers[0]: \"leaf\" is not an IP address (with or without a /length)",
        "vip: spec.advertisedPathAttributes.communities.standard[0]: \"65000:x\": expected ASN:VALUE (each 0..=65535) or a 32-bit number",
        "vip: spec.advertisedPathAttributes.med: must be 0..=4294967295, got -1",
        "vip: spec.healthCheck.url: \"http://127.0.0.1:6443/readyz\": type HTTPS needs a https:// URL",
        "vip: spec.healthCheck.expectedStatus: must be 100..=599, got 99",
        "vip: spec.healthCheck.timeoutMilliseconds: 800 ms is longer than intervalMilliseconds (500 ms): checks would overlap",
        "vip: spec.healthCheck.rise: must be 1..=100, got 0",
        "vip: spec.healthCheck.fall: must be 1..=100, got 101",
        "vip: spec.localInterface.name: \"averyveryverylongname\" is not an interface name (1 to 15 characters)",
        "vip: spec.localInterface.manage: \"Sometimes\" is not one of WhileHealthy, Always, Never",
        "vip: spec.gracefulShutdown.drainSeconds: must be 0..=300, got 301",
    ];
    for w in want {
        assert!(e.iter().any(|x| x == w), "missing {w:?} in {e:#?}");
    }
    assert!(e.iter().any(|x| x.starts_with("vip: spec.advertisedPathAttributes.communities.wellKnown[0]")), "{e:#?}");
    assert_eq!(e.len(), want.len() + 1, "{e:#?}");
}

#[test]
fn checks_take_the_fields_of_their_type() {
    let spec = |check: &str| {
        format!(
            "apiVersion: kbgp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: v}}\nspec:\n  addresses: [10.0.0.100]\n  healthCheck: {check}\n"
        )
    };
    assert_eq!(
        errors(&spec("{type: TCP, url: 'http://a/', tls: {insecureSkipVerify: true}}")),
        vec![
            "v: spec.healthCheck.url: is for types HTTPS and HTTP; type TCP takes address",
            "v: spec.healthCheck.tls: is for types HTTPS and HTTP",
            "v: spec.healthCheck.address: is required for type TCP, e.g. 127.0.0.1:6443",
        ]
    );
    assert_eq!(
        errors(&spec("{type: HTTPS, url: 'https://127.0.0.1:6443/readyz'}")),
        vec![
            "v: spec.healthCheck.tls.caFile: is required to verify the server (e.g. /etc/kubernetes/pki/ca.crt), unless insecureSkipVerify: true"
        ]
    );
    assert_eq!(
        errors(&spec(
            "{type: HTTPS, url: 'https://a:1/', tls: {insecureSkipVerify: true, caFile: ca, clientCertFile: c}}"
        )),
        vec![
            "v: spec.healthCheck.tls.insecureSkipVerify: cannot be combined with caFile: either verify against the CA or not at all",
            "v: spec.healthCheck.tls.clientKeyFile: is required with clientCertFile",
        ]
    );
    assert_eq!(errors(&spec("{type: UDP}")), vec!["v: spec.healthCheck.type: \"UDP\" is not one of HTTPS, HTTP, TCP"]);
    assert_eq!(
        errors(&spec("{type: TCP, address: '::1:6443'}")),
        vec!["v: spec.healthCheck.address: \"::1:6443\": expected host:port, e.g. 127.0.0.1:6443 or [::1]:6443"]
    );
    let v = one(&spec(
        "{type: TCP, address: '[::1]:6443', intervalMilliseconds: 100, timeoutMilliseconds: 50, rise: 1, fall: 2, startupGraceSeconds: 30}",
    ));
    let h = v.health_check.unwrap();
    assert_eq!(h.target, Target::Tcp { host: "::1".into(), port: 6443 });
    assert_eq!(h.target.describe(), "TCP connect to [::1]:6443");
    assert_eq!(
        h.policy,
        Policy {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(50),
            rise: 1,
            fall: 2,
            startup_grace: Duration::from_secs(30)
        }
    );
    let v = one(&spec("{type: HTTP, url: 'http://localhost/healthz?verbose'}"));
    let Some(HealthCheck { target: Target::Http { host, port, path, tls: None, .. }, .. }) = v.health_check else {
        panic!()
    };
    assert_eq!((host.as_str(), port, path.as_str()), ("localhost", 80, "/healthz?verbose"));
}

#[test]
fn announced_only_while_healthy_unless_unchecked() {
    let v = one(KUBEADM);
    let mut h = VipHealth::default();
    assert!(!v.up(&h));
    h.healthy.insert("kube-apiserver".into());
    assert!(v.up(&h));
    let unchecked =
        one("apiVersion: kbgp.io/v1alpha1\nkind: VirtualIP\nmetadata: {name: v}\nspec: {addresses: [10.0.0.100]}\n");
    assert!(unchecked.up(&VipHealth::default()));
}

#[test]
fn two_virtual_ips_with_one_name_are_an_error() {
    let two = format!("{KUBEADM}---\n{KUBEADM}");
    assert_eq!(errors(&two), vec!["kube-apiserver: metadata.name: another VirtualIP has this name"]);
}

#[test]
fn relative_tls_files_are_taken_from_the_directory_of_their_file() {
    let dir = std::env::temp_dir().join(format!("kbgp-vip-rel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = KUBEADM.replace(
        "caFile: /etc/kubernetes/pki/ca.crt",
        "caFile: ../pki/ca.crt\n      clientCertFile: /abs/c.crt\n      clientKeyFile: k.key",
    );
    std::fs::write(dir.join("vip.yaml"), text).unwrap();
    let l = crate::config::load_files(&[dir.join("vip.yaml")]).unwrap_or_else(|e| panic!("{e:?}"));
    let Some(HealthCheck { target: Target::Http { tls: Some(t), .. }, .. }) = &l.world.virtual_ips[0].health_check
    else {
        panic!()
    };
    assert_eq!(t.ca_file.as_deref(), Some(dir.join("../pki/ca.crt").as_path()));
    assert_eq!(t.client_cert, Some((PathBuf::from("/abs/c.crt"), dir.join("k.key"))));
    // Absolute paths are left alone (and nothing is copied).
    let abs = one(KUBEADM);
    assert!(abs.relative_to(&dir).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}
