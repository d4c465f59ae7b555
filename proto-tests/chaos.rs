//! Chaos against real daemons, in network namespaces: paths that fail silently, daemons that
//! die, freeze or restart. Each test fails (never skips) when its daemon is missing.
//!
//! BFD (RFC 5880/5881): FRR (`bfdd`, through zebra) and BIRD (`protocol bfd`) peer with kbgp
//! across a bridge; the bridge stops forwarding (both interfaces keep their carrier, so only
//! BFD can notice), and the peer must drop kbgp's routes within the detection time + 200 ms.
//! The figures are printed (`BFD <daemon>: ...`) and recorded in docs/resilience.md.

mod common;

use common::peer::{Hops, PeerSpec};
use common::{Kbgp, Lab, wait_for};
use ipnet::IpNet;
use std::collections::BTreeSet;
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
fn bfd_link_cut(daemon: &str, hops: Hops) {
    let mut lab = Lab::switched(&format!("{daemon}-bfd"));
    let spec = PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: Some(hops) };
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
    let (mut peer_gone, mut kbgp_down) = (None, None);
    while (peer_gone.is_none() || kbgp_down.is_none()) && cut.elapsed() < Duration::from_secs(10) {
        if peer_gone.is_none() && peer.prefixes().is_ok_and(|p| p.is_empty()) {
            peer_gone = Some(cut.elapsed());
        }
        if kbgp_down.is_none() && kbgp_bfd(&kbgp, &lab)["state"] == "Down" {
            kbgp_down = Some(cut.elapsed());
        }
    }
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
