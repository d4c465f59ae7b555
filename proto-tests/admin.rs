//! The admin API and the CLI over it, against a running kbgp in a namespace with a real FRR
//! peer and a second neighbor that never answers (its address resolves to a MAC nobody has,
//! so SYNs vanish as behind a firewall).
//!
//! Every command is run as an operator would run it (`kbgp peers`, `kbgp routes ...`,
//! `kbgp why ...`, `kbgp reset ...`, `kbgp refresh ...`, `kbgp status`), in the table form
//! and with `-o json`, and its effect is checked on the wire or at FRR, not only in kbgp's
//! own answer. FRR missing fails the test.

mod common;

use common::peer::{PEER_V4, PEER_V6, PeerSpec};
use common::{Kbgp, Lab, metric_value, wait_for};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

const POD_CIDR: &str = "10.244.7.0/24";

fn dead_peer(lab: &Lab) -> Ipv4Addr {
    let o = lab.peer_v4.octets();
    Ipv4Addr::new(o[0], o[1], o[2], 9)
}

fn yaml(lab: &Lab, extra_service: bool) -> String {
    let mut y = format!(
        r#"apiVersion: cilium.io/v2alpha1
kind: CiliumBGPPeeringPolicy
metadata: {{name: rack0}}
spec:
  nodeSelector: {{matchLabels: {{rack: rack0}}}}
  virtualRouters:
  - localASN: 65005
    exportPodCIDR: true
    serviceSelector: {{matchLabels: {{advertise-bgp: "true"}}}}
    neighbors:
    - {{peerAddress: "{peer}/24", peerASN: 65005, connectRetryTimeSeconds: 5}}
    - {{peerAddress: "{dead}/24", peerASN: 65005, connectRetryTimeSeconds: 5}}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: {{name: lb-pool}}
spec: {{blocks: [{{start: 20.0.0.100, stop: 20.0.0.200}}]}}
---
apiVersion: v1
kind: Node
metadata: {{name: node1, labels: {{rack: rack0}}}}
spec: {{podCIDRs: ["{POD_CIDR}"]}}
status: {{addresses: [{{type: InternalIP, address: {me}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default, labels: {{advertise-bgp: "true"}}}}
spec: {{type: LoadBalancer}}
status: {{loadBalancer: {{ingress: [{{ip: 20.0.0.100}}]}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: hidden, namespace: default, labels: {{app: hidden}}}}
spec: {{type: LoadBalancer}}
status: {{loadBalancer: {{ingress: [{{ip: 20.0.0.101}}]}}}}
"#,
        peer = lab.peer_v4,
        dead = dead_peer(lab),
        me = lab.kbgp_v4,
    );
    if extra_service {
        y.push_str(
            "---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: default, labels: {advertise-bgp: \"true\"}}\n\
             spec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 20.0.0.102}]}}\n",
        );
    }
    y
}

fn peer_doc<'a>(peers: &'a Value, address: &str) -> &'a Value {
    peers
        .as_array()
        .and_then(|a| a.iter().find(|p| p["address"] == address))
        .unwrap_or_else(|| panic!("no peer {address} in {peers}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn every_admin_command_against_frr() {
    let mut lab = Lab::new("admin");
    let frr = common::peer::start(
        "frr",
        &mut lab,
        &PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: false },
    );
    // The second neighbor's address resolves, but to a MAC nobody has: connects time out.
    let dead = dead_peer(&lab).to_string();
    common::sh(&[
        "ip",
        "-n",
        &lab.kbgp_ns,
        "neigh",
        "add",
        &dead,
        "lladdr",
        "02:00:00:00:00:09",
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    let kbgp = Kbgp::start_with(&lab, &yaml(&lab, false), &["--log-format", "json"]);
    let (up, me) = (lab.peer_v4.to_string(), lab.kbgp_v4.to_string());

    // kbgp peers: the FRR session up with its negotiation and counts; the dead one with the
    // error and what to check.
    let peers =
        wait_for("FRR Established, routes both ways, the other peer timed out", Duration::from_secs(60), || {
            let v = kbgp.cli_json(&["peers"]);
            let (p, d) = (peer_doc(&v, &up), peer_doc(&v, &dead));
            let ready = p["state"] == "Established"
                && p["advertised"]["ipv4"] == 2
                && p["received"]["ipv4"] == PEER_V4.len()
                && p["received"]["ipv6"] == PEER_V6.len()
                && d["lastError"]["text"].as_str().is_some_and(|t| t.contains("timed out"));
            if ready { Ok(v) } else { Err(format!("{v}")) }
        });
    let p = peer_doc(&peers, &up);
    assert_eq!(
        (p["vrouter"].clone(), p["localAs"].clone(), p["peerAs"].clone()),
        (65005.into(), 65005.into(), 65005.into())
    );
    assert_eq!(p["kind"], "iBGP");
    assert_eq!(p["families"], serde_json::json!(["ipv4", "ipv6"]));
    let caps: Vec<&str> = p["capabilities"].as_array().unwrap().iter().filter_map(|c| c.as_str()).collect();
    assert!(caps.contains(&"route-refresh") && caps.contains(&"4-octet-as"), "{caps:?}");
    assert!(n(&p["messages"]["received"]) >= 3 && n(&p["messages"]["sent"]) >= 3, "{p}");
    assert_eq!(p["establishedCount"], 1);
    assert!(p["lastError"].is_null(), "{p}");
    let d = peer_doc(&peers, &dead);
    assert_eq!(d["lastError"]["text"], "TCP connect failed: timed out after 5 s", "{d}");
    assert_eq!(
        d["lastError"]["hint"],
        "check the peer's address, firewall, MD5 password, and GTSM (ttlSecurity) on both sides"
    );
    assert!(d["state"] == "Connect" || d["state"] == "Active" || d["state"] == "Idle", "{d}");
    assert!(d["uptimeSeconds"].is_null());

    let table = kbgp.cli(&["peers"]);
    assert!(table.ok, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(
        lines[0].starts_with("PEER") && lines[0].contains("STATE") && lines[0].contains("MSGS IN/OUT"),
        "{table:?}"
    );
    let row = lines.iter().find(|l| l.starts_with(&up)).expect("a row for FRR");
    assert!(row.contains("Established"), "{row}");
    let row = lines.iter().find(|l| l.starts_with(&dead)).expect("a row for the dead peer");
    assert!(row.contains("down "), "{row}");
    assert!(
        table.stdout.contains("last error")
            && table.stdout.contains(
                "hint: check the peer's address, firewall, MD5 password, and GTSM (ttlSecurity) on both sides"
            )
    );
    assert!(table.stdout.contains("capabilities: ") && table.stdout.contains("route-refresh"));

    // kbgp status
    let s = kbgp.cli_json(&["status"]);
    assert_eq!((s["node"].clone(), s["peers"].clone(), s["established"].clone()), ("node1".into(), 2.into(), 1.into()));
    assert_eq!(s["policy"], "rack0");
    let st = kbgp.cli(&["status"]);
    assert!(st.ok && st.stdout.contains("peers         2 (1 Established)"), "{st:?}");

    // kbgp routes advertised: what FRR has from us, as FRR sees it too.
    let adv = kbgp.cli_json(&["routes", "advertised", "--peer", &up]);
    let got: BTreeSet<String> =
        adv.as_array().unwrap().iter().map(|r| r["prefix"].as_str().unwrap().to_string()).collect();
    let want: BTreeSet<String> = [POD_CIDR, "20.0.0.100/32"].iter().map(|s| s.to_string()).collect();
    assert_eq!(got, want);
    for r in adv.as_array().unwrap() {
        assert_eq!(r["nextHop"], me.as_str(), "{r}");
        assert_eq!((r["origin"].clone(), r["localPref"].clone()), ("igp".into(), 100.into()), "{r}");
    }
    let at_frr: BTreeSet<String> = frr.prefixes().expect("FRR's table").iter().map(|p| p.to_string()).collect();
    assert_eq!(at_frr, want, "FRR holds what kbgp says it advertised");
    let t = kbgp.cli(&["routes", "advertised"]);
    assert!(t.ok && t.stdout.contains("20.0.0.100/32") && t.stdout.contains("2 routes"), "{t:?}");
    assert!(kbgp.cli_json(&["routes", "advertised", "--peer", &dead]).as_array().unwrap().is_empty());

    // kbgp routes received, by family
    let v4 = kbgp.cli_json(&["routes", "received", "--family", "ipv4"]);
    let got: BTreeSet<String> =
        v4.as_array().unwrap().iter().map(|r| r["prefix"].as_str().unwrap().to_string()).collect();
    assert_eq!(got, PEER_V4.iter().map(|s| s.to_string()).collect());
    assert!(v4.as_array().unwrap().iter().all(|r| r["nextHop"] == up.as_str() && r["peer"] == up.as_str()));
    let v6 = kbgp.cli_json(&["routes", "received", "--peer", &up, "--family", "ipv6"]);
    assert_eq!(v6.as_array().unwrap().len(), PEER_V6.len());

    // kbgp why: announced to FRR, not to the dead peer, and why.
    let w = kbgp.cli(&["why", "20.0.0.100"]);
    assert!(w.ok, "{w:?}");
    assert_eq!(
        w.stdout.lines().next(),
        Some(format!("20.0.0.100/32 is announced by node node1 to 1 of 2 peers ({up})").as_str())
    );
    for line in [
        "  ✓ CiliumBGPPeeringPolicy rack0 selects this node: nodeSelector (rack=rack0) matches its labels",
        "  • Service default/web (type LoadBalancer) has 20.0.0.100 as LoadBalancer IP",
        "  ✓ LB IPAM assigns it to Service default/web from lb-pool",
        &format!("  to peer {up} (AS65005): announced"),
        &format!("    ✓ 20.0.0.100/32 has been sent to the peer with next hop {me}"),
        &format!("  to peer {dead} (AS65005): not announced"),
    ] {
        assert!(w.stdout.lines().any(|l| l == line), "missing {line:?} in:\n{}", w.stdout);
    }
    assert!(
        w.stdout.contains("not Established: TCP connect failed: timed out after 5 s (check the peer's address, firewall, MD5 password, and GTSM (ttlSecurity) on both sides)"),
        "{}",
        w.stdout
    );
    let hidden = kbgp.cli_json(&["why", "20.0.0.101"]);
    let verdict = hidden["verdict"].as_str().unwrap();
    assert!(
        verdict
            .starts_with("20.0.0.101/32 is not announced by node node1: the serviceSelector of AS65005 does not match")
            && verdict.contains("advertise-bgp"),
        "{verdict}"
    );
    let pod = kbgp.cli_json(&["why", "10.244.7.5"]);
    assert!(pod["verdict"].as_str().unwrap().starts_with("10.244.7.5/32 is announced by node node1"), "{pod}");
    // An address this node does not announce but learns: where its traffic goes instead.
    let learned = kbgp.cli_json(&["why", "198.51.100.5"]);
    assert_eq!(
        learned["verdict"],
        format!(
            "198.51.100.5/32 is not announced by node node1, which learns it instead: peer {up} sends \
             198.51.100.0/24 via {up} with an empty AS path (from this AS)"
        ),
        "{learned}"
    );
    let bad = kbgp.cli(&["why", "web"]);
    assert!(!bad.ok && bad.stderr.contains("neither an IP address nor a prefix"), "{bad:?}");

    // kbgp refresh: FRR sends its routes again.
    let before = n(&peer_doc(&kbgp.cli_json(&["peers"]), &up)["messages"]["updatesReceived"]);
    let r = kbgp.cli(&["refresh", &up]);
    assert!(r.ok && r.stdout.contains("asked the peer to send its routes again"), "{r:?}");
    wait_for("FRR to answer the ROUTE-REFRESH with UPDATEs", Duration::from_secs(20), || {
        let now = n(&peer_doc(&kbgp.cli_json(&["peers"]), &up)["messages"]["updatesReceived"]);
        if now > before { Ok(()) } else { Err(format!("{now} UPDATEs received, {before} before")) }
    });
    let r = kbgp.cli(&["refresh", &dead]);
    assert!(!r.ok && r.stderr.contains("not Established"), "{r:?}");

    // kbgp reset --soft: every route sent again, same session.
    let before = n(&peer_doc(&kbgp.cli_json(&["peers"]), &up)["messages"]["updatesSent"]);
    let r = kbgp.cli(&["reset", &up, "--soft"]);
    assert!(r.ok && r.stdout.contains("sending all 2 routes again"), "{r:?}");
    wait_for("the routes sent again", Duration::from_secs(20), || {
        let p = kbgp.cli_json(&["peers"]);
        let p = peer_doc(&p, &up);
        if n(&p["messages"]["updatesSent"]) > before && p["establishedCount"] == 1 {
            Ok(())
        } else {
            Err(p.to_string())
        }
    });

    // kbgp reset: FRR sees the Cease (administrative reset) and the session comes back.
    let r = kbgp.cli(&["reset", &up]);
    assert!(r.ok && r.stdout.contains("sent Cease (administrative reset)"), "{r:?}");
    // Right after it, the peer waits out the reset delay and says so.
    let waiting = kbgp.cli(&["peers", &up]);
    let says = |s: &str| ["1", "2"].iter().any(|n| s.contains(&format!("next connection attempt in {n} s")));
    assert!(waiting.ok && says(&waiting.stdout), "{waiting:?}");
    wait_for("the session back after the reset", Duration::from_secs(30), || {
        let p = kbgp.cli_json(&["peers"]);
        let p = peer_doc(&p, &up);
        if p["state"] == "Established" && p["establishedCount"] == 2 && p["advertised"]["ipv4"] == 2 {
            Ok(())
        } else {
            Err(p.to_string())
        }
    });
    assert_eq!(frr.received_notification(6, 4), Ok(Some(true)), "FRR logs the administrative reset");
    let p = kbgp.cli_json(&["peers", &up]);
    assert_eq!(p[0]["lastNotificationSent"]["text"], "cease: administrative reset (6/4): \"reset by kbgp reset\"");

    // Update latency: a new Service reaches FRR, and the histogram counts it.
    let count = |k: &Kbgp| metric_value(&k.metrics(), "kbgp_update_latency_seconds_count", &[]);
    let before = count(&kbgp);
    kbgp.reload(&yaml(&lab, true));
    wait_for("20.0.0.102 at FRR", Duration::from_secs(20), || {
        let p = frr.prefixes()?;
        if p.iter().any(|p| p.to_string() == "20.0.0.102/32") { Ok(()) } else { Err(format!("{p:?}")) }
    });
    wait_for("the latency observed", Duration::from_secs(5), || {
        if count(&kbgp) > before { Ok(()) } else { Err("no new observation".to_string()) }
    });

    // Mistakes are one line each, with what to do.
    let e = kbgp.cli(&["peers", "192.0.2.1"]);
    assert!(
        !e.ok && e.stderr.trim_end().lines().count() == 1 && e.stderr.contains("no peer 192.0.2.1 on node node1"),
        "{e:?}"
    );
    let e = kbgp.cli(&["reset", "192.0.2.1"]);
    assert!(!e.ok && e.stderr.contains("no peer 192.0.2.1"), "{e:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_kbgp"))
        .args(["--admin-socket", lab.path("nothing.sock").to_str().unwrap(), "peers"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("is `kbgp run` running on this node?"), "{err}");
    // A second kbgp on the same socket refuses to start, and says why.
    let second = Command::new("ip")
        .args(["netns", "exec", &lab.kbgp_ns, env!("CARGO_BIN_EXE_kbgp"), "run", "--config"])
        .arg(&kbgp.config)
        .args(["--metrics-addr", "127.0.0.1:9181", "--admin-socket"])
        .arg(&kbgp.admin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success() && err.contains("another process (another kbgp?) serves"), "{err}");

    // Every request above was counted.
    let m = kbgp.metrics();
    for endpoint in ["status", "peers", "routes", "why", "reset", "refresh"] {
        assert!(metric_value(&m, "kbgp_admin_requests_total", &[("endpoint", endpoint)]) >= 1.0, "{endpoint}");
    }
    assert!(metric_value(&m, "kbgp_admin_requests_total", &[("endpoint", "peers"), ("code", "404")]) >= 1.0);
    assert_eq!(metric_value(&m, "kbgp_session_established_total", &[("peer", &up), ("vrouter", "65005")]), 2.0);

    wait_for("three connection attempts to the dead peer", Duration::from_secs(30), || {
        let n = kbgp.metric("kbgp_connect_attempts_total", &[("peer", &dead)]);
        if n >= 3.0 { Ok(()) } else { Err(format!("{n}")) }
    });
    let m = kbgp.metrics();
    // The JSON log: one object per line; every line of a peer (its core or its driver) names
    // the peer and the virtual router; the dead peer's failure is logged once however often it is retried.
    let log = std::fs::read_to_string(lab.path("kbgp.log")).expect("kbgp.log");
    let mut dead_errors = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let target = v["target"].as_str().unwrap_or_default();
        if target == "kbgp::daemon::peer" || target == "kbgp::session::peer" {
            let f = &v["fields"];
            assert!(f["peer"].is_string() && f["vrouter"].is_string(), "a peer line without peer and vrouter: {line}");
            let msg = f["message"].as_str().unwrap_or_default();
            if f["peer"] == dead.as_str() && msg.starts_with("session not up") {
                dead_errors += 1;
                assert_eq!(
                    f["hint"], "check the peer's address, firewall, MD5 password, and GTSM (ttlSecurity) on both sides",
                    "{line}"
                );
            }
        }
    }
    assert_eq!(dead_errors, 1, "the same failure is logged once, not at every retry");
    let attempts = metric_value(&m, "kbgp_connect_attempts_total", &[("peer", &dead)]);
    assert!(attempts >= 3.0, "the dead peer was retried ({attempts} attempts)");
}

#[test]
fn check_diff_previews_a_change_without_applying_it() {
    let mut lab = Lab::new("adiff");
    let frr = common::peer::start(
        "frr",
        &mut lab,
        &PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: false },
    );
    let running = yaml(&lab, false);
    let kbgp = Kbgp::start_with(&lab, &running, &[]);
    let up = lab.peer_v4.to_string();
    let want: BTreeSet<ipnet::IpNet> = [POD_CIDR, "20.0.0.100/32"].iter().map(|p| p.parse().unwrap()).collect();
    wait_for("FRR has the two routes", Duration::from_secs(60), || {
        let got = frr.prefixes()?;
        if got == want { Ok(()) } else { Err(format!("{got:?}")) }
    });
    let write = |name: &str, text: &str| {
        let p = lab.path(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let transitions = kbgp.metric("kbgp_session_transitions_total", &[]);

    // The running configuration itself: no change, exit 0.
    let same = write("same.yaml", &running);
    let out = kbgp.cli(&["check", "--diff", &same]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("node node1: no change"), "{}", out.stdout);

    // One more Service and another label: routes added and withdrawn, sessions kept, exit 1.
    let more = yaml(&lab, true).replace("labels: {advertise-bgp: \"true\"}}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 20.0.0.100}]}}", "labels: {advertise-bgp: \"false\"}}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 20.0.0.100}]}}");
    assert!(more.contains("advertise-bgp: \"false\""), "{more}");
    let more = write("more.yaml", &more);
    let out = kbgp.cli(&["check", "--diff", &more]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("peer {up} (AS65005): session kept; 2 route changes")), "{}", out.stdout);
    assert!(out.stdout.contains("  + 20.0.0.102/32  -"), "{}", out.stdout);
    assert!(out.stdout.contains("  - 20.0.0.100/32"), "{}", out.stdout);
    // -o json for a pipeline.
    let j = kbgp.cli(&["-o", "json", "check", "--diff", &more]);
    assert_eq!(j.code, Some(1));
    let v: Value = serde_json::from_str(&j.stdout).unwrap_or_else(|e| panic!("{e}: {}", j.stdout));
    let p = v["diff"]["peers"].as_array().unwrap().iter().find(|p| p["address"] == up.as_str()).unwrap().clone();
    assert_eq!(p["added"][0]["prefix"], "20.0.0.102/32");
    assert_eq!(p["withdrawn"][0], "20.0.0.100/32");
    assert_eq!(p["session"]["kind"], "kept");

    // Timers: the session would restart, and the preview says why.
    let hold = write(
        "hold.yaml",
        &running.replace(
            "connectRetryTimeSeconds: 5}",
            "connectRetryTimeSeconds: 5, holdTimeSeconds: 9, keepAliveTimeSeconds: 3}",
        ),
    );
    let out = kbgp.cli(&["check", "--diff", &hold]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("peer {up} (AS65005): session reset (hold time 90 -> 9, keepalive 30 -> 3)")),
        "{}",
        out.stdout
    );

    // kbgp diff -f: objects over the running ones (here one new Service).
    let svc = write(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: default, labels: {advertise-bgp: \"true\"}}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 20.0.0.102}]}}\n",
    );
    let out = kbgp.cli(&["diff", "-f", &svc]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("  + 20.0.0.102/32"), "{}", out.stdout);
    assert!(!out.stdout.contains("  - "), "nothing else goes: {}", out.stdout);

    // A broken file: exit 2, the error names the field; nothing is asked.
    let bad = write(
        "bad.yaml",
        &running.replace("peerASN: 65005, connectRetryTimeSeconds: 5}", "peerASN: 0, connectRetryTimeSeconds: 5}"),
    );
    let out = kbgp.cli(&["check", "--diff", &bad]);
    assert_eq!(out.code, Some(2), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("peerASN: must be 1..=4294967295, got 0"), "{}", out.stdout);

    // Nothing was applied: FRR holds the same routes and no session moved.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(frr.prefixes().unwrap(), want);
    assert_eq!(kbgp.metric("kbgp_session_transitions_total", &[]), transitions);
}
