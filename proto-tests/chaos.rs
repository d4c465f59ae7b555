//! Chaos against real daemons, in network namespaces: paths that fail silently, daemons that
//! die, freeze or restart. Each test fails (never skips) when its daemon is missing.
//!
//! BFD (RFC 5880/5881): FRR (`bfdd`, through zebra) and BIRD (`protocol bfd`) peer with kbgp
//! across a bridge; the bridge stops forwarding (both interfaces keep their carrier, so only
//! BFD can notice), and the peer must drop kbgp's routes within the detection time + 200 ms.
//! Graceful restart (RFC 4724, RFC 8538): a client behind the peer (FRR with zebra, BIRD
//! with `protocol kernel`, both graceful restart helpers) opens a connection every 50 ms to
//! the seed's Service address, served in kbgp's namespace, while kbgp is killed with -9 and
//! started again, then stopped with SIGTERM and started again: no request may fail, and the
//! peer's table must never lose kbgp's routes.
//!
//! The figures are printed (`BFD <daemon>: ...`, `GR <daemon>: ...`) and recorded in
//! docs/resilience.md.

mod common;

use common::peer::{Hops, PeerSpec};
use common::{Kbgp, Lab, sh, spawn_in_netns, wait_for};
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The seed's Service address, and two more.
const SERVICE_IPS: [&str; 3] = ["20.0.0.100", "20.0.0.101", "20.0.0.102"];
/// 3 × 300 ms, on both sides.
const DETECTION: Duration = Duration::from_millis(900);
const SLACK: Duration = Duration::from_millis(200);

/// kbgp's file: one iBGP neighbor (the peer as route reflector, as in the seed) with `extra`
/// in its neighbor entry, and one LoadBalancer Service with [`SERVICE_IPS`].
fn config(lab: &Lab, extra: &str) -> String {
    let ingress: Vec<String> = SERVICE_IPS.iter().map(|ip| format!("{{ip: {ip}}}")).collect();
    format!(
        r#"apiVersion: kbgp.io/v1alpha1
kind: BGPPeeringPolicy
metadata: {{name: rack0}}
spec:
  nodeSelector: {{matchLabels: {{rack: rack0}}}}
  virtualRouters:
  - localASN: 65005
    exportPodCIDR: false
    serviceSelector: {{matchLabels: {{advertise-bgp: "true"}}}}
    neighbors:
    - peerAddress: "{peer}/24"
      peerASN: 65005
      connectRetryTimeSeconds: 5
{extra}---
apiVersion: v1
kind: Node
metadata: {{name: node1, labels: {{rack: rack0}}}}
status: {{addresses: [{{type: InternalIP, address: {me}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default, labels: {{advertise-bgp: "true"}}}}
spec: {{type: LoadBalancer}}
status: {{loadBalancer: {{ingress: [{ingress}]}}}}
"#,
        peer = lab.peer_v4,
        me = lab.kbgp_v4,
        ingress = ingress.join(", "),
    )
}

fn service_routes() -> BTreeSet<IpNet> {
    SERVICE_IPS.iter().map(|ip| format!("{ip}/32").parse().expect("prefix")).collect()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// kbgp's view of its BFD session with the peer (null without one).
fn kbgp_bfd(kbgp: &Kbgp, lab: &Lab) -> serde_json::Value {
    kbgp.peer(&lab.peer_v4.to_string())["bfd"].clone()
}

/// The link goes silent: the peer must drop kbgp's routes within the detection time + 200 ms,
/// kbgp must see BFD Down as fast and end the session with Cease 6/10, keep BGP down while
/// BFD is, and bring everything back once the path returns.
/// The BFD tests measure sub-second times: one at a time, and never beside the hundred
/// flaps, whose load on the machine slows the peer's CLI enough to show in the figure (FRR
/// logged its BFD Down 903 ms after a cut that the test, polling vtysh, saw as 1113 ms).
static TIMED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn bfd_link_cut(daemon: &str, hops: Hops) {
    let _one_at_a_time = TIMED.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::switched(&format!("{daemon}-bfd"));
    let spec = PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: Some(hops), router: false };
    let peer = common::peer::start(daemon, &mut lab, &spec);
    let (mode, multihop) = match hops {
        Hops::Single => ("single-hop", ""),
        // BIRD sends multihop BFD with the system's default TTL (64), not 255: kbgp's default
        // minimumTtl (254, as FRR's) would drop it.
        Hops::Multi => ("multihop", ", multihop: true, minimumTtl: 60"),
    };
    let bfd = format!("      bfd: {{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3{multihop}}}\n");
    let kbgp = Kbgp::start(&lab, &config(&lab, &bfd));
    let want = service_routes();
    wait_for("the Service routes at the peer", Duration::from_secs(60), || {
        let got = peer.prefixes()?;
        if got == want { Ok(()) } else { Err(format!("{got:?}")) }
    });
    wait_for("BFD Up at kbgp at the configured rate", Duration::from_secs(30), || {
        let b = kbgp_bfd(&kbgp, &lab);
        let fast = b["detectionTimeMs"] == 900 && b["transmitIntervalMs"] == 300;
        let up = b["state"] == "Up" && b["remoteState"] == "Up" && b["mode"] == mode;
        if up && fast { Ok(()) } else { Err(format!("{b}")) }
    });
    assert_eq!(kbgp.metric("kbgp_bfd_state", &[]), 3.0, "kbgp_bfd_state: Up");
    assert_eq!(kbgp.metric("kbgp_bfd_detection_time_seconds", &[]), 0.9);
    // Let the peer's Poll Sequence settle too (it lowers its own rate after Up).
    std::thread::sleep(Duration::from_secs(3));
    assert!(peer.established().expect("state"));

    let cut = Instant::now();
    lab.cut();
    // Each side is polled by its own thread, so that one's query time (vtysh, birdc, the
    // CLI: each some tens of ms, more on a loaded machine) is not added to the other's figure.
    let limit = Duration::from_secs(10);
    let (peer_gone, kbgp_down) = std::thread::scope(|s| {
        let k = s.spawn(|| {
            while cut.elapsed() < limit {
                if kbgp_bfd(&kbgp, &lab)["state"] == "Down" {
                    return Some(cut.elapsed());
                }
            }
            None
        });
        let mut gone = None;
        while gone.is_none() && cut.elapsed() < limit {
            if peer.prefixes().is_ok_and(|p| p.is_empty()) {
                gone = Some(cut.elapsed());
            }
        }
        (gone, k.join().unwrap_or(None))
    });
    let peer_gone = peer_gone.unwrap_or_else(|| panic!("{daemon} kept kbgp's routes 10 s after the cut"));
    let kbgp_down = kbgp_down.expect("kbgp's BFD Down within 10 s of the cut");
    eprintln!(
        "BFD {daemon} ({mode}): link cut at 300 ms x 3: {daemon} dropped kbgp's routes after {} ms, kbgp saw BFD Down after {} ms \
         (detection time {} ms)",
        ms(peer_gone),
        ms(kbgp_down),
        ms(DETECTION)
    );
    assert!(peer_gone <= DETECTION + SLACK, "{daemon} dropped the routes {} ms after the cut", ms(peer_gone));
    assert!(kbgp_down <= DETECTION + SLACK, "kbgp saw BFD Down {} ms after the cut", ms(kbgp_down));
    let sent =
        |sub: &str| kbgp.metric("kbgp_notifications_total", &[("direction", "sent"), ("code", "6"), ("subcode", sub)]);
    assert_eq!(sent("10"), 1.0, "kbgp ended the session with Cease 6/10 (BFD Down)");
    assert_eq!(kbgp.metric("kbgp_bfd_transitions_total", &[("to", "Down")]), 1.0);

    // While the path is down BGP stays down, and `kbgp peers` says it waits for BFD.
    std::thread::sleep(Duration::from_secs(2));
    let p = kbgp.peer(&lab.peer_v4.to_string());
    assert_ne!(p["state"], "Established", "{p}");
    assert!(p["bfd"]["holdingBgpSeconds"].as_u64().is_some(), "{p}");
    let text = kbgp.cli(&["peers"]).stdout;
    assert!(
        text.contains(&format!("BFD Down ({mode})")) && text.contains("BGP waits for BFD to be Up again"),
        "{text}"
    );

    // The path is back: BFD, then BGP, then the routes.
    let mended = Instant::now();
    lab.mend();
    wait_for("the routes back at the peer", Duration::from_secs(60), || {
        let got = peer.prefixes()?;
        if got == want { Ok(()) } else { Err(format!("{got:?}")) }
    });
    eprintln!("BFD {daemon} ({mode}): path back: routes at the peer again after {} ms", ms(mended.elapsed()));
    let b = kbgp_bfd(&kbgp, &lab);
    assert_eq!((b["state"].as_str(), b["upCount"].as_u64(), b["downCount"].as_u64()), (Some("Up"), Some(2), Some(1)));
}

/// The seed's Service, served on port 80 of [`SERVICE_IPS`][0] in `ns` (the address on lo) by
/// a thread, until `stop`.
fn serve(ns: &str, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    sh(&["ip", "-n", ns, "addr", "add", &format!("{}/32", SERVICE_IPS[0]), "dev", "lo"]);
    let l = common::in_netns(ns, || TcpListener::bind((SERVICE_IPS[0], 80)).expect("bind the Service address"));
    l.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut b = [0u8; 256];
                    let _ = c.read(&mut b);
                    let _ = c.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    })
}

/// A client in `ns` that opens a new connection to the Service every 50 ms until `stop`;
/// returns (sent, failures with when and why).
fn client(ns: &str, stop: Arc<AtomicBool>) -> JoinHandle<(usize, Vec<(Duration, String)>)> {
    spawn_in_netns(ns, move || {
        let to: SocketAddr = format!("{}:80", SERVICE_IPS[0]).parse().expect("address");
        let start = Instant::now();
        let (mut sent, mut failed) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            sent += 1;
            let r = (|| -> Result<(), String> {
                let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(1)).map_err(|e| e.to_string())?;
                c.set_read_timeout(Some(Duration::from_secs(1))).map_err(|e| e.to_string())?;
                c.write_all(b"GET / HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
                let mut body = String::new();
                c.read_to_string(&mut body).map_err(|e| e.to_string())?;
                if body.ends_with("ok") { Ok(()) } else { Err(format!("answer {body:?}")) }
            })();
            if let Err(e) = r {
                failed.push((start.elapsed(), e));
            }
            std::thread::sleep(Duration::from_millis(50).saturating_sub(t.elapsed()));
        }
        (sent, failed)
    })
}

/// kbgp's routes as the peer sees them, polled while `busy` runs; fails the test the moment
/// they are not all there.
fn never_missing<T>(peer: &dyn common::peer::Peer, what: &str, mut busy: impl FnMut() -> Option<T>) -> T {
    let want = service_routes();
    loop {
        let got = peer.prefixes().expect("the peer's table");
        assert_eq!(got, want, "{what}: the peer lost kbgp's routes");
        if let Some(v) = busy() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// kbgp restarts twice (kill -9, then SIGTERM) behind a client that must not notice.
fn graceful_restart(daemon: &str) {
    let mut lab = Lab::new(&format!("{daemon}-gr"));
    lab.add_client();
    let spec = PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: true };
    let peer = common::peer::start(daemon, &mut lab, &spec);
    let yaml = config(&lab, "      gracefulRestart: {enabled: true, restartTimeSeconds: 120}\n");
    let stop_server = Arc::new(AtomicBool::new(false));
    let server = serve(&lab.kbgp_ns, stop_server.clone());
    let mut kbgp = Kbgp::start(&lab, &yaml);
    let me = lab.peer_v4.to_string();
    let established = |k: &Kbgp| k.peer(&me)["state"] == "Established";
    wait_for("the Service route in the peer's kernel", Duration::from_secs(60), || {
        let r = sh(&["ip", "-n", &lab.peer_ns, "route", "show", &format!("{}/32", SERVICE_IPS[0])]);
        if r.contains(&format!("via {}", lab.kbgp_v4)) { Ok(()) } else { Err(r) }
    });
    let stop_client = Arc::new(AtomicBool::new(false));
    let cl = client(lab.client_ns.as_deref().expect("client"), stop_client.clone());
    std::thread::sleep(Duration::from_secs(2));

    for (signal, how) in [("KILL", "kill -9"), ("TERM", "SIGTERM")] {
        let t = Instant::now();
        kbgp.proc.signal(signal);
        never_missing(peer.as_ref(), how, || (!kbgp.proc.alive()).then_some(()));
        // The peer holds the routes as stale while no kbgp runs.
        let dead = Instant::now();
        never_missing(peer.as_ref(), how, || (dead.elapsed() > Duration::from_secs(2)).then_some(()));
        let restarted = Instant::now();
        kbgp = Kbgp::start(&lab, &yaml);
        never_missing(peer.as_ref(), how, || established(&kbgp).then_some(()));
        let up = common::metric_value(&kbgp.metrics(), "kbgp_session_up", &[]);
        eprintln!(
            "GR {daemon}: {how}: kbgp down {} ms, Established again {} ms after its start",
            ms(restarted - t),
            ms(restarted.elapsed())
        );
        assert_eq!(up, 1.0, "kbgp_session_up");
        let log = std::fs::read_to_string(lab.path("kbgp.log")).unwrap_or_default();
        assert!(log.contains("restarting: the previous kbgp was alive"), "kbgp knew it restarted ({how})");
        // Past the End-of-RIB the peer keeps the routes as fresh, not stale.
        never_missing(peer.as_ref(), how, || (restarted.elapsed() > Duration::from_secs(4)).then_some(()));
    }
    stop_client.store(true, Ordering::Relaxed);
    let (sent, failed) = cl.join().expect("client");
    eprintln!("GR {daemon}: {sent} requests every 50 ms through kill -9 and SIGTERM restarts, {} failed", failed.len());
    assert!(sent > 150, "only {sent} requests");
    assert!(failed.is_empty(), "requests failed: {failed:?}");

    // --on-shutdown withdraw: the peer drops the routes at once (Hard Reset, or a plain Cease).
    kbgp.proc.signal("KILL");
    let _ = kbgp.proc.wait_exit(Duration::from_secs(5));
    let kbgp = Kbgp::start_with(&lab, &yaml, &["--on-shutdown", "withdraw"]);
    wait_for(
        "the session",
        Duration::from_secs(60),
        || {
            if established(&kbgp) { Ok(()) } else { Err("not yet".into()) }
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    kbgp.proc.signal("TERM");
    wait_for("the routes withdrawn at the peer", Duration::from_secs(5), || {
        let got = peer.prefixes()?;
        if got.is_empty() { Ok(()) } else { Err(format!("{got:?}")) }
    });
    eprintln!("GR {daemon}: --on-shutdown withdraw: routes gone at the peer {} ms after SIGTERM", ms(t.elapsed()));
    assert!(!std::fs::exists(lab.path("state/alive")).unwrap_or(true), "a withdrawing stop leaves no restart state");
    stop_server.store(true, Ordering::Relaxed);
    let _ = server.join();
}

/// A stand-in for the API server's /readyz on 127.0.0.1:`port` of `ns`: answers with the
/// status in `status` (0: accepts and never answers), until `stop`.
fn readyz(ns: &str, port: u16, status: Arc<std::sync::atomic::AtomicU16>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let l = common::in_netns(ns, move || TcpListener::bind(("127.0.0.1", port)).expect("bind readyz"));
    l.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut b = [0u8; 512];
                    let _ = c.read(&mut b);
                    match status.load(Ordering::Relaxed) {
                        0 => held.push(c),
                        code => {
                            let r = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                            let _ = c.write_all(r.as_bytes());
                        }
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    })
}

/// A VirtualIP behind a health check, at FRR with graceful restart: nothing until the check
/// passes `rise` times, withdrawn after `fall` failures or a hanging endpoint while the
/// session stays up, and on SIGTERM withdrawn explicitly while the peer keeps the other
/// routes through graceful restart.
#[test]
fn a_virtual_ip_follows_its_health_check_and_goes_first_on_sigterm() {
    let _t = TIMED.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new("frr-vip");
    let spec = PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: false };
    let peer = common::peer::start("frr", &mut lab, &spec);
    let status = Arc::new(std::sync::atomic::AtomicU16::new(500));
    let stop = Arc::new(AtomicBool::new(false));
    let server = readyz(&lab.kbgp_ns, 18443, status.clone(), stop.clone());
    let (interval, rise, fall, timeout) = (200u64, 2u64, 3u64, 100u64);
    let yaml = format!(
        "{}---\napiVersion: kbgp.io/v1alpha1\nkind: VirtualIP\nmetadata: {{name: kube-apiserver}}\nspec:\n  addresses: [10.0.0.100]\n  \
         advertisedPathAttributes: {{communities: {{standard: ['65005:443']}}}}\n  healthCheck: {{type: HTTP, url: 'http://127.0.0.1:18443/readyz', \
         intervalMilliseconds: {interval}, timeoutMilliseconds: {timeout}, rise: {rise}, fall: {fall}}}\n  \
         localInterface: {{name: lo}}\n",
        config(&lab, "      gracefulRestart: {enabled: true, restartTimeSeconds: 120}\n")
    );
    let mut kbgp = Kbgp::start(&lab, &yaml);
    let vip: IpNet = "10.0.0.100/32".parse().expect("prefix");
    let has_vip = || peer.prefixes().expect("the peer's table").contains(&vip);
    wait_for("the Service routes at the peer", Duration::from_secs(60), || {
        let got = peer.prefixes()?;
        if got == service_routes() { Ok(()) } else { Err(format!("{got:?}")) }
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert!(!has_vip(), "announced while /readyz fails");
    let on_lo = || sh(&["ip", "-n", &lab.kbgp_ns, "addr", "show", "dev", "lo"]).contains("10.0.0.100/32");
    assert!(!on_lo(), "on lo before the check passed");
    let ms_ = Duration::from_millis;
    let timed =
        |what: &str, limit: Duration, want: bool| {
            let t = Instant::now();
            wait_for(what, limit + Duration::from_secs(2), || {
                if has_vip() == want { Ok(()) } else { Err("not yet".into()) }
            });
            let took = t.elapsed();
            eprintln!("VIP frr: {what} after {} ms (limit {} ms)", ms(took), ms(limit));
            assert!(took <= limit, "{what}: {} ms, more than {} ms", ms(took), ms(limit));
        };
    status.store(200, Ordering::Relaxed);
    timed("announced once healthy", ms_(rise * interval + 1000), true);
    let got = peer.routes().expect("routes");
    assert!(got[&vip].communities.iter().any(|c| c == "65005:443"), "{:?}", got[&vip]);
    assert!(on_lo(), "the address is on lo while healthy");
    // One failure is not enough.
    status.store(500, Ordering::Relaxed);
    std::thread::sleep(ms_(interval + interval / 2));
    status.store(200, Ordering::Relaxed);
    std::thread::sleep(ms_(interval * 3));
    assert!(has_vip(), "one failed check withdrew the VirtualIP");
    status.store(500, Ordering::Relaxed);
    timed("withdrawn after fall failures", ms_(fall * interval + 1000), false);
    assert!(peer.prefixes().expect("table").is_superset(&service_routes()), "the session stays up");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!on_lo(), "the address is off lo once withdrawn");
    status.store(200, Ordering::Relaxed);
    timed("announced again", ms_(rise * interval + 1000), true);
    status.store(0, Ordering::Relaxed);
    timed("withdrawn while /readyz hangs", ms_(fall * (interval + timeout) + 1000), false);
    status.store(200, Ordering::Relaxed);
    timed("announced after the hang", ms_(rise * interval + 1000), true);
    let why = kbgp.cli(&["why", "10.0.0.100"]).stdout;
    assert!(why.contains("health check (HTTP GET http://127.0.0.1:18443/readyz) passes"), "{why}");
    assert!(
        why.contains("Health check of VirtualIP kube-apiserver (HTTP GET http://127.0.0.1:18443/readyz): healthy for")
            && why.contains("changes: 2 checks passed in a row")
            && why.contains("✓ ")
            && why.contains("✗ ")
            && why.contains("timed out after 100 ms"),
        "kbgp why shows the check's verdict and its last results: {why}"
    );
    let m = kbgp.metrics();
    assert_eq!(common::metric_value(&m, "kbgp_vip_healthy", &[("vip", "kube-apiserver")]), 1.0);
    assert!(
        common::metric_value(&m, "kbgp_vip_transitions_total", &[("vip", "kube-apiserver"), ("to", "unhealthy")])
            >= 2.0
    );
    // SIGTERM: the VirtualIP is withdrawn; graceful restart keeps only the Service routes.
    let t = Instant::now();
    kbgp.proc.signal("TERM");
    wait_for("the VirtualIP withdrawn after SIGTERM", Duration::from_secs(3), || {
        if has_vip() { Err("still there".into()) } else { Ok(()) }
    });
    eprintln!("VIP frr: withdrawn {} ms after SIGTERM", ms(t.elapsed()));
    assert!(t.elapsed() <= Duration::from_secs(1), "SIGTERM withdrawal took {} ms", ms(t.elapsed()));
    let _ = kbgp.proc.wait_exit(Duration::from_secs(10));
    assert_eq!(
        peer.prefixes().expect("table"),
        service_routes(),
        "the peer keeps the Service routes, not the VirtualIP"
    );
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
}

/// kbgp's resident memory, KiB.
fn rss_kib(kbgp: &Kbgp) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{}/status", kbgp.proc.pid)).expect("kbgp's /proc status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// The peer (BIRD, graceful restart on) dies and comes back: kbgp, as helper, keeps its
/// routes as stale meanwhile (RFC 4724 §4.2), its own routes return to the peer, and the
/// stale ones are replaced.
#[test]
fn a_restarting_peer_keeps_its_routes_stale_at_kbgp() {
    let mut lab = Lab::new("bird-peer-restart");
    let spec = PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: true };
    let peer = common::peer::start("bird", &mut lab, &spec);
    let kbgp = Kbgp::start(&lab, &config(&lab, ""));
    let me = lab.peer_v4.to_string();
    let received = |k: &Kbgp| {
        let p = k.peer(&me);
        (p["received"]["ipv4"].as_u64().unwrap_or(0) + p["received"]["ipv6"].as_u64().unwrap_or(0), p)
    };
    let all = (common::peer::PEER_V4.len() + common::peer::PEER_V6.len()) as u64;
    wait_for("the peer's routes at kbgp", Duration::from_secs(60), || match received(&kbgp) {
        (n, _) if n == all => Ok(()),
        (_, p) => Err(format!("{p}")),
    });
    peer.process().signal("KILL");
    let p = wait_for("kbgp to hold the peer's routes as stale", Duration::from_secs(30), || match received(&kbgp) {
        (n, p) if n == all && p["receivedStale"] == all && p["state"] != "Established" => Ok(p),
        (_, p) => Err(format!("{p}")),
    });
    assert!(p["peerRestarting"].as_str().unwrap_or_default().contains("kept as stale"), "{p}");
    let text = kbgp.cli(&["peers"]).stdout;
    assert!(text.contains("graceful restart: the peer is restarting") && text.contains("stale routes"), "{text}");
    drop(peer);
    let peer = common::peer::start("bird", &mut lab, &spec);
    wait_for("kbgp's routes at the restarted peer", Duration::from_secs(60), || {
        let got = peer.prefixes()?;
        if got == service_routes() { Ok(()) } else { Err(format!("{got:?}")) }
    });
    wait_for("fresh routes from the restarted peer", Duration::from_secs(30), || match received(&kbgp) {
        (n, p) if n == all && p["receivedStale"] == 0 && p.get("peerRestarting").is_none() => Ok(()),
        (_, p) => Err(format!("{p}")),
    });
}

/// 100 flaps in a row (kbgp's TCP connection killed each time the session is up): kbgp
/// comes back every time with the whole table at the peer, and its memory stays flat.
#[test]
fn a_hundred_flaps_leave_kbgp_correct_and_its_memory_flat() {
    let _not_beside_the_timed_tests = TIMED.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new("frr-flaps");
    let spec = PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: false };
    let peer = common::peer::start("frr", &mut lab, &spec);
    // A flapping session backs off up to the connect retry time (dampening); 1 s keeps the
    // hundred flaps short.
    let yaml = config(&lab, "").replace("connectRetryTimeSeconds: 5", "connectRetryTimeSeconds: 1");
    let kbgp = Kbgp::start(&lab, &yaml);
    let me = lab.peer_v4.to_string();
    let count = |k: &Kbgp| k.metric("kbgp_session_established_total", &[]);
    let up_again = |k: &Kbgp, n: f64| {
        wait_for("the session up again", Duration::from_secs(30), || {
            let p = k.peer(&me);
            if p["state"] == "Established" && count(k) >= n { Ok(()) } else { Err(format!("{p}")) }
        })
    };
    up_again(&kbgp, 1.0);
    let started = Instant::now();
    let mut rss = Vec::new();
    for i in 1..=100 {
        let peer_port = format!("dst {} dport = :179", lab.peer_v4);
        let args: Vec<&str> =
            ["ip", "netns", "exec", &lab.kbgp_ns, "ss", "-K"].into_iter().chain(peer_port.split(' ')).collect();
        sh(&args);
        up_again(&kbgp, 1.0 + i as f64);
        if i == 10 || i == 100 {
            rss.push(rss_kib(&kbgp));
        }
    }
    wait_for("every route at the peer after the flaps", Duration::from_secs(30), || {
        let got = peer.prefixes()?;
        if got == service_routes() { Ok(()) } else { Err(format!("{got:?}")) }
    });
    assert_eq!(count(&kbgp), 101.0, "one Established per flap");
    eprintln!(
        "flaps: 100 in {} s; kbgp RSS {} KiB after 10, {} KiB after 100",
        started.elapsed().as_secs(),
        rss[0],
        rss[1]
    );
    assert!(rss[1] <= rss[0] + 1024, "RSS grew from {} to {} KiB over 90 flaps", rss[0], rss[1]);
}

mod graceful_restart {
    #[test]
    fn frr() {
        super::graceful_restart("frr")
    }
    #[test]
    fn bird() {
        super::graceful_restart("bird")
    }
}

mod bfd {
    use super::Hops;
    #[test]
    fn frr() {
        super::bfd_link_cut("frr", Hops::Single)
    }
    #[test]
    fn bird() {
        super::bfd_link_cut("bird", Hops::Single)
    }
    /// RFC 5883: BIRD runs iBGP as multihop, and its BFD session with it.
    #[test]
    fn bird_multihop() {
        super::bfd_link_cut("bird", Hops::Multi)
    }
}
