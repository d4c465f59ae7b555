//! Table tests over Worlds built from YAML.

use super::*;
use crate::config::load_str;

fn world(docs: &[String]) -> World {
    load_str(&docs.join("\n---\n"), "t").unwrap().world
}

fn pool(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

fn pool_at(name: &str, ts: &str, spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {{name: {name}, creationTimestamp: \"{ts}\"}}\nspec: {spec}\n"
    )
}

/// A LoadBalancer Service; `meta` and `spec` are extra flow-style entries.
fn svc(name: &str, meta: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default{}{meta}}}\nspec: {{type: LoadBalancer{}{spec}}}\n",
        if meta.is_empty() { "" } else { ", " },
        if spec.is_empty() { "" } else { ", " },
    )
}

fn ips(a: &Allocation, key: &str) -> Vec<String> {
    a.services.get(key).map(|v| v.iter().map(|(ip, _)| ip.to_string()).collect()).unwrap_or_default()
}

fn problems(a: &Allocation) -> Vec<String> {
    a.problems.iter().map(|p| p.to_string()).collect()
}

const SEED_LAB_POOL: &str = "{blocks: [{start: 20.0.0.100, stop: 20.0.0.200}]}";

#[test]
fn the_seed_service_gets_20_0_0_100() {
    let a = allocate(&world(&[
        pool("lb-pool", SEED_LAB_POOL),
        svc("nginx-service", "labels: {advertise-bgp: \"true\"}", ""),
    ]));
    assert_eq!(ips(&a, "default/nginx-service"), vec!["20.0.0.100"]);
    assert_eq!(a.services["default/nginx-service"][0].1.as_deref(), Some("lb-pool"));
    assert_eq!(a.pools[0], PoolStatus { name: "lb-pool".into(), total: 101, used: 1, ..Default::default() });
    assert_eq!(a.pools[0].available(), 100);
    assert!(a.problems.is_empty());
}

#[test]
fn first_and_last_addresses() {
    let yes = allocate(&world(&[pool("p", "{blocks: [{cidr: 20.0.10.0/24}]}"), svc("a", "", "")]));
    assert_eq!(ips(&yes, "default/a"), vec!["20.0.10.0"]);
    let no =
        allocate(&world(&[pool("p", "{blocks: [{cidr: 20.0.10.0/24}], allowFirstLastIPs: \"No\"}"), svc("a", "", "")]));
    assert_eq!(ips(&no, "default/a"), vec!["20.0.10.1"]);
    assert_eq!(no.pools[0].total, 254);
}

#[test]
fn deterministic_whatever_the_document_order() {
    let docs = [pool("lb-pool", SEED_LAB_POOL), svc("c", "", ""), svc("a", "", ""), svc("b", "", "")];
    let a1 = allocate(&world(&docs));
    let mut rev = docs.to_vec();
    rev.reverse();
    let a2 = allocate(&world(&rev));
    assert_eq!(a1, a2);
    assert_eq!(ips(&a1, "default/a"), vec!["20.0.0.100"]);
    assert_eq!(ips(&a1, "default/b"), vec!["20.0.0.101"]);
    assert_eq!(ips(&a1, "default/c"), vec!["20.0.0.102"]);
}

#[test]
fn older_services_first_when_timestamps_exist() {
    let a = allocate(&world(&[
        pool("lb-pool", SEED_LAB_POOL),
        svc("a", "creationTimestamp: \"2026-02-01T00:00:00Z\"", ""),
        svc("z", "creationTimestamp: \"2026-01-01T00:00:00Z\"", ""),
    ]));
    assert_eq!(ips(&a, "default/z"), vec!["20.0.0.100"]);
    assert_eq!(ips(&a, "default/a"), vec!["20.0.0.101"]);
}

#[test]
fn addresses_in_status_are_kept_and_skipped() {
    let held = "apiVersion: v1\nkind: Service\nmetadata: {name: held}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 20.0.0.100}]}}\n";
    let a = allocate(&world(&[pool("lb-pool", SEED_LAB_POOL), held.into(), svc("new", "", "")]));
    assert_eq!(ips(&a, "default/held"), vec!["20.0.0.100"]);
    assert_eq!(ips(&a, "default/new"), vec!["20.0.0.101"]);
    assert_eq!(a.pools[0].used, 2);
}

#[test]
fn requested_addresses() {
    let p = pool("lb-pool", SEED_LAB_POOL);
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (svc("r", "annotations: {kbgp.io/ips: \"20.0.0.150\"}", ""), vec!["20.0.0.150"], vec![]),
        (
            svc("r", "annotations: {lbipam.cilium.io/ips: \"20.0.0.151, 20.0.0.152\"}", ""),
            vec!["20.0.0.151", "20.0.0.152"],
            vec![],
        ),
        (svc("r", "annotations: {io.cilium/lb-ipam-ips: \"20.0.0.153\"}", ""), vec!["20.0.0.153"], vec![]),
        (svc("r", "", "loadBalancerIP: 20.0.0.154"), vec!["20.0.0.154"], vec![]),
        (
            svc("r", "annotations: {kbgp.io/ips: \"192.0.2.1\"}", ""),
            vec![],
            vec!["default/r: requested 192.0.2.1 is in no pool"],
        ),
        (
            svc("r", "annotations: {kbgp.io/ips: \"twenty\"}", ""),
            vec![],
            vec!["default/r: requested address \"twenty\" is not an IP address"],
        ),
    ];
    for (s, want, want_problems) in cases {
        let a = allocate(&world(&[p.clone(), s.clone()]));
        assert_eq!(ips(&a, "default/r"), want, "{s}");
        assert_eq!(problems(&a), want_problems, "{s}");
    }
}

#[test]
fn a_requested_address_held_by_another_service_is_a_conflict() {
    let a = allocate(&world(&[
        pool("lb-pool", SEED_LAB_POOL),
        svc("first", "annotations: {kbgp.io/ips: \"20.0.0.120\"}", ""),
        svc("second", "annotations: {kbgp.io/ips: \"20.0.0.120\"}", ""),
    ]));
    assert_eq!(ips(&a, "default/first"), vec!["20.0.0.120"]);
    assert_eq!(ips(&a, "default/second"), Vec::<String>::new());
    assert_eq!(
        problems(&a),
        vec![
            "default/second: 20.0.0.120 is already assigned to default/first, and they cannot share it: they do not have the same sharing key"
        ]
    );
}

#[test]
fn pool_selectors_and_disabled_pools() {
    let web = pool("web", "{blocks: [{cidr: 20.0.1.0/24}], serviceSelector: {matchLabels: {tier: web}}}");
    let off = pool("off", "{blocks: [{cidr: 20.0.2.0/24}], disabled: true}");
    let a = allocate(&world(&[web.clone(), off.clone(), svc("w", "labels: {tier: web}", ""), svc("x", "", "")]));
    assert_eq!(ips(&a, "default/w"), vec!["20.0.1.0"]);
    assert_eq!(ips(&a, "default/x"), Vec::<String>::new());
    assert_eq!(problems(&a), vec!["default/x: no enabled pool selects this Service"]);
    let a = allocate(&world(&[web, off, svc("x", "annotations: {kbgp.io/ips: \"20.0.2.5\"}", "")]));
    assert_eq!(problems(&a), vec!["default/x: requested 20.0.2.5 is in pool off, which is disabled"]);
    let by_name = pool(
        "named",
        "{blocks: [{cidr: 20.0.3.0/24}], serviceSelector: {matchLabels: {io.kubernetes.service.name: special}}}",
    );
    let a = allocate(&world(&[
        by_name,
        svc("special", "", ""),
        svc("other", "annotations: {kbgp.io/ips: \"20.0.3.9\"}", ""),
    ]));
    assert_eq!(ips(&a, "default/special"), vec!["20.0.3.0"]);
    assert_eq!(
        problems(&a),
        vec!["default/other: requested 20.0.3.9 is in pool named, whose serviceSelector does not select this Service"]
    );
}

#[test]
fn overlapping_pools_the_newer_one_conflicts() {
    let old = pool_at("zzz-old", "2026-01-01T00:00:00Z", "{blocks: [{cidr: 20.0.0.0/16}]}");
    let new = pool_at("aaa-new", "2026-03-01T00:00:00Z", "{blocks: [{cidr: 20.0.10.0/24}]}");
    let a = allocate(&world(&[old, new, svc("s", "", "")]));
    assert_eq!(ips(&a, "default/s"), vec!["20.0.0.0"], "allocated from the older pool despite its name");
    assert_eq!(
        problems(&a),
        vec!["pool aaa-new: conflicting, no addresses handed out: it overlaps the older pool zzz-old"]
    );
    let st: Vec<_> = a.pools.iter().map(|p| (p.name.as_str(), p.conflict.is_some(), p.available())).collect();
    assert_eq!(st, vec![("zzz-old", false, 65535), ("aaa-new", true, 0)]);
    // Without timestamps, the name decides; a pool overlapping itself conflicts too.
    let a = allocate(&world(&[pool("self", "{blocks: [{cidr: 20.0.0.0/24}, {start: 20.0.0.9, stop: 20.0.0.20}]}")]));
    assert_eq!(problems(&a), vec!["pool self: conflicting, no addresses handed out: its blocks 0 and 1 overlap"]);
}

#[test]
fn dual_stack_and_ipv6_only() {
    let p = pool("p", "{blocks: [{cidr: 20.0.0.0/24}, {cidr: \"2001:db8:100::/64\"}]}");
    let a = allocate(&world(&[
        p.clone(),
        svc("ds", "", "ipFamilyPolicy: PreferDualStack"),
        svc("v6", "", "ipFamilies: [IPv6]"),
        svc("v4", "", ""),
    ]));
    assert_eq!(ips(&a, "default/ds"), vec!["20.0.0.0", "2001:db8:100::"]);
    assert_eq!(ips(&a, "default/v4"), vec!["20.0.0.1"]);
    assert_eq!(ips(&a, "default/v6"), vec!["2001:db8:100::1"]);
    let only4 = pool("p", "{blocks: [{cidr: 20.0.0.0/24}]}");
    let a = allocate(&world(&[only4, svc("v6", "", "ipFamilies: [IPv6]")]));
    assert_eq!(problems(&a), vec!["default/v6: no IPv6 address left in the pools that select this Service"]);
}

#[test]
fn sharing_keys() {
    let p = pool("lb-pool", SEED_LAB_POOL);
    let key = "annotations: {lbipam.cilium.io/sharing-key: k}";
    let a = allocate(&world(&[
        p.clone(),
        svc("http", key, "ports: [{port: 80}]"),
        svc("https", key, "ports: [{port: 443}]"),
        svc("http2", key, "ports: [{port: 80}]"),
        svc("plain", "", "ports: [{port: 22}]"),
    ]));
    assert_eq!(ips(&a, "default/http"), vec!["20.0.0.100"]);
    assert_eq!(ips(&a, "default/https"), vec!["20.0.0.100"], "shares: same key, other port");
    assert_eq!(ips(&a, "default/http2"), vec!["20.0.0.101"], "port 80 is taken on .100");
    assert_eq!(ips(&a, "default/plain"), vec!["20.0.0.102"]);
    assert!(a.problems.is_empty());
    assert_eq!(a.pools[0].used, 3);
    // Across namespaces, both sides must allow it.
    let other = |allow: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: b, namespace: other, annotations: {{lbipam.cilium.io/sharing-key: k{allow}}}}}\nspec: {{type: LoadBalancer, ports: [{{port: 443}}]}}\n"
        )
    };
    let a_side = svc(
        "a",
        "annotations: {lbipam.cilium.io/sharing-key: k, lbipam.cilium.io/sharing-cross-namespace: \"*\"}",
        "ports: [{port: 80}]",
    );
    let shared =
        allocate(&world(&[p.clone(), a_side.clone(), other(", lbipam.cilium.io/sharing-cross-namespace: default")]));
    assert_eq!(ips(&shared, "other/b"), vec!["20.0.0.100"]);
    let apart = allocate(&world(&[p, a_side, other("")]));
    assert_eq!(ips(&apart, "other/b"), vec!["20.0.0.101"]);
}

#[test]
fn exhaustion_and_services_that_are_not_ours() {
    let p = pool("tiny", "{blocks: [{cidr: 20.0.0.0/31}], allowFirstLastIPs: \"No\"}");
    let a = allocate(&world(&[
        p,
        svc("a", "", ""),
        svc("b", "", ""),
        svc("c", "", ""),
        svc("other-class", "", "loadBalancerClass: example.com/lb"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: cluster}\nspec: {type: ClusterIP}\n".into(),
    ]));
    assert_eq!(ips(&a, "default/a"), vec!["20.0.0.0"], "a /31 keeps both addresses");
    assert_eq!(ips(&a, "default/b"), vec!["20.0.0.1"]);
    assert_eq!(problems(&a), vec!["default/c: no IPv4 address left in the pools that select this Service"]);
    assert!(!a.services.contains_key("default/other-class") && !a.services.contains_key("default/cluster"));
}

#[test]
fn addresses_held_by_another_controllers_services_are_never_handed_out() {
    let theirs = "apiVersion: v1\nkind: Service\nmetadata: {name: cloud}\nspec: {type: LoadBalancer, loadBalancerClass: example.com/cloud}\nstatus: {loadBalancer: {ingress: [{ip: 20.0.0.100}]}}\n";
    let a = allocate(&world(&[
        pool("lb-pool", SEED_LAB_POOL),
        theirs.into(),
        svc("mine", "", ""),
        svc("asks", "annotations: {kbgp.io/ips: \"20.0.0.100\"}", ""),
    ]));
    assert_eq!(ips(&a, "default/mine"), vec!["20.0.0.101"]);
    assert!(!a.services.contains_key("default/cloud"), "not ours to assign");
    assert_eq!(
        problems(&a),
        vec![
            "default/asks: 20.0.0.100 is already assigned to default/cloud, and they cannot share it: they do not have the same sharing key"
        ]
    );
}

#[test]
fn apply_fills_only_services_without_addresses() {
    let held = "apiVersion: v1\nkind: Service\nmetadata: {name: held}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.7}]}}\n";
    let mut w = world(&[pool("lb-pool", SEED_LAB_POOL), held.into(), svc("new", "", "")]);
    let a = allocate(&w);
    apply(&mut w, &a);
    let by: BTreeMap<String, Vec<IpAddr>> = w.services.iter().map(|s| (s.key(), s.ingress_ips.clone())).collect();
    assert_eq!(by["default/held"], vec!["192.0.2.7".parse::<IpAddr>().unwrap()], "outside every pool, but kept");
    assert_eq!(by["default/new"], vec!["20.0.0.100".parse::<IpAddr>().unwrap()]);
    assert_eq!(a.services["default/held"][0].1, None);
}

#[test]
fn describe_folds_runs_of_consecutive_addresses_from_one_origin() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let p: Option<Arc<str>> = Some("lb-pool".into());
    let given: Vec<Given> = vec![
        (ip("20.0.0.254"), p.clone()),
        (ip("20.0.0.255"), p.clone()),
        (ip("20.0.1.0"), p.clone()),
        (ip("20.0.1.1"), None),
        (ip("20.0.1.3"), None),
        (ip("2001:db8::1"), p.clone()),
        (ip("2001:db8::2"), p.clone()),
    ];
    assert_eq!(
        describe(&given),
        "20.0.0.254-20.0.1.0 (3 addresses, pool lb-pool), 20.0.1.1 (its status, in no pool), \
         20.0.1.3 (its status, in no pool), 2001:db8::1-2001:db8::2 (2 addresses, pool lb-pool)"
    );
    assert_eq!(describe(&given[..1]), "20.0.0.254 (pool lb-pool)");
    assert_eq!(describe(&[]), "");
}

#[test]
fn lb_class_restricts_what_is_handled() {
    let docs = [
        pool("p", "{blocks: [{cidr: 20.0.0.0/30}]}"),
        svc("plain", "", ""),
        svc("ours", "", "loadBalancerClass: example.com/bgp"),
        svc("cilium", "", "loadBalancerClass: io.cilium/bgp-control-plane"),
        svc("other", "", "loadBalancerClass: example.com/other"),
    ];
    // Default: classless, kbgp's and Cilium's classes.
    let a = allocate(&world(&docs));
    // (Services in name order: cilium before plain.)
    assert_eq!(ips(&a, "default/cilium"), ["20.0.0.0"]);
    assert_eq!(ips(&a, "default/plain"), ["20.0.0.1"]);
    assert!(ips(&a, "default/ours").is_empty() && ips(&a, "default/other").is_empty());
    // --lb-class example.com/bgp: that class only, classless ones are left to another controller.
    let mut w = world(&docs);
    w.lb_class = Some("example.com/bgp".into());
    let a = allocate(&w);
    assert_eq!(a.services.keys().collect::<Vec<_>>(), ["default/ours"]);
    assert_eq!(ips(&a, "default/ours"), ["20.0.0.0"]);
    apply(&mut w, &a);
    assert!(w.services.iter().find(|s| s.name == "plain").unwrap().ingress_ips.is_empty());
}
