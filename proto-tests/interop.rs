//! Interoperability of kbgp with real BGP daemons from Debian (FRR, BIRD 2, GoBGP, ExaBGP),
//! each in a network namespace of its own, kbgp in another, joined by a veth pair.
//!
//! Scenarios, run against every daemon:
//! - `routes`: iBGP to a route reflector; 1,000 IPv4 /32 and 100 IPv6 /128 arrive with the
//!   right next hop, ORIGIN, AS_PATH, LOCAL_PREF and communities; the peer's own routes are
//!   counted in `kbgp_received_routes`; a reload that drops 500 makes the peer withdraw exactly
//!   those, without resetting the session.
//! - `four_octet_ebgp`: local AS 4200000001 over eBGP shows AS_PATH `4200000001` at the peer.
//! - `wrong_peer_asn`: a wrong `peerASN` ends in NOTIFICATION 2/2, seen by the peer.
//! - `hold_timer`: a peer frozen with SIGSTOP makes kbgp's hold timer expire (4/0); after
//!   SIGCONT the session comes back.
//! - `max_prefix`: more routes from the peer than `maxReceivedRoutes` with the Cease action end
//!   in Cease 6/1 (RFC 4486), a reconnect after the restart time, and a higher limit keeps the
//!   session.
//! - `gtsm` (FRR and BIRD): `ttlSecurity: true` (RFC 5082) against a peer enforcing GTSM comes
//!   up, actively and passively; kbgp without it, or a peer without it, stays down.
//!
//! A missing daemon fails the test.

mod common;

use common::peer::{PEER_V4, PEER_V6, Peer, PeerSpec, SeenRoute};
use common::{Kbgp, Lab, wait_for};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const SERVICES: usize = 10;
const V4_PER_SERVICE: usize = 100;
const V6_PER_SERVICE: usize = 10;
const COMMUNITY: &str = "65005:100";
const LARGE: &str = "4200000001:1:2";
const LOCAL_PREF: u32 = 150;

fn svc_v4(s: usize, i: usize) -> Ipv4Addr {
    Ipv4Addr::new(20, 0, s as u8, i as u8 + 1)
}

fn svc_v6(s: usize, i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, s as u16, i as u16 + 1)
}

/// The prefixes kbgp announces for these services.
fn expected(services: &[usize]) -> BTreeSet<IpNet> {
    let mut v = BTreeSet::new();
    for &s in services {
        v.extend((0..V4_PER_SERVICE).map(|i| IpNet::from(IpAddr::V4(svc_v4(s, i)))));
        v.extend((0..V6_PER_SERVICE).map(|i| IpNet::from(IpAddr::V6(svc_v6(s, i)))));
    }
    v
}

struct Conf {
    local_asn: u32,
    peer_asn: u32,
    services: Vec<usize>,
    /// (hold, keepalive)
    timers: Option<(u16, u16)>,
    /// kbgp only listens (kbgp.io kind with `passive: true`, node annotation `local-port=179`).
    passive: bool,
}

/// kbgp's file: the seed's policy shape, a pool that gives the services' routes communities
/// and LOCAL_PREF, the Node, and the Services with their LoadBalancer ingress IPs.
fn yaml(lab: &Lab, c: &Conf) -> String {
    let timers = c
        .timers
        .map(|(h, k)| format!("      holdTimeSeconds: {h}\n      keepAliveTimeSeconds: {k}\n"))
        .unwrap_or_default();
    let (api, kind, passive, annotations) = if c.passive {
        (
            "kbgp.io/v1alpha1",
            "BGPPeeringPolicy",
            "      passive: true\n",
            format!(", annotations: {{kbgp.io/virtual-router.{}: \"local-port=179\"}}", c.local_asn),
        )
    } else {
        ("cilium.io/v2alpha1", "CiliumBGPPeeringPolicy", "", String::new())
    };
    let mut y = format!(
        r#"apiVersion: {api}
kind: {kind}
metadata: {{name: rack0}}
spec:
  nodeSelector: {{matchLabels: {{rack: rack0}}}}
  virtualRouters:
  - localASN: {local}
    exportPodCIDR: false
    serviceSelector: {{matchLabels: {{advertise-bgp: "true"}}}}
    neighbors:
    - peerAddress: "{peer}/24"
      peerASN: {peer_asn}
      connectRetryTimeSeconds: 5
{timers}{passive}      advertisedPathAttributes:
      - selectorType: CiliumLoadBalancerIPPool
        selector: {{matchLabels: {{pool: test}}}}
        communities: {{standard: ["{COMMUNITY}"], large: ["{LARGE}"]}}
        localPreference: {LOCAL_PREF}
---
apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: {{name: test-pool, labels: {{pool: test}}}}
spec:
  blocks: [{{cidr: 20.0.0.0/16}}, {{cidr: "2001:db8:100::/64"}}]
---
apiVersion: v1
kind: Node
metadata: {{name: node1, labels: {{rack: rack0}}{annotations}}}
status: {{addresses: [{{type: InternalIP, address: {me}}}]}}
"#,
        local = c.local_asn,
        peer = lab.peer_v4,
        peer_asn = c.peer_asn,
        me = lab.kbgp_v4,
    );
    for &s in &c.services {
        let mut ingress: Vec<String> = (0..V4_PER_SERVICE).map(|i| format!("{{ip: {}}}", svc_v4(s, i))).collect();
        ingress.extend((0..V6_PER_SERVICE).map(|i| format!("{{ip: \"{}\"}}", svc_v6(s, i))));
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: default, labels: {{advertise-bgp: \"true\"}}}}\n\
             spec: {{type: LoadBalancer}}\nstatus: {{loadBalancer: {{ingress: [{}]}}}}\n",
            ingress.join(", ")
        ));
    }
    y
}

/// A lab with `daemon` as peer AS `peer_asn` and kbgp running `conf`.
fn setup(daemon: &str, tag: &str, conf: &Conf) -> (Lab, Box<dyn Peer>, Kbgp) {
    let mut lab = Lab::new(&format!("{daemon}-{tag}"));
    let peer = common::peer::start(
        daemon,
        &mut lab,
        &PeerSpec {
            asn: conf.peer_asn,
            kbgp_asn: conf.local_asn,
            gtsm: false,
            password: None,
            bfd: None,
            router: false,
        },
    );
    let kbgp = Kbgp::start(&lab, &yaml(&lab, conf));
    (lab, peer, kbgp)
}

fn diff(got: &BTreeSet<IpNet>, want: &BTreeSet<IpNet>) -> String {
    let missing: Vec<_> = want.difference(got).take(3).collect();
    let extra: Vec<_> = got.difference(want).take(3).collect();
    format!(
        "{} routes, want {}; missing {} (e.g. {missing:?}), unexpected {} (e.g. {extra:?})",
        got.len(),
        want.len(),
        want.difference(got).count(),
        got.difference(want).count()
    )
}

/// Waits until the peer holds exactly `want` from kbgp.
fn wait_prefixes(peer: &dyn Peer, want: &BTreeSet<IpNet>, timeout: Duration) {
    wait_for(&format!("{} to hold exactly the expected routes", peer.name()), timeout, || {
        let got = peer.prefixes()?;
        if got == *want { Ok(()) } else { Err(diff(&got, want)) }
    });
}

/// Checks every route's attributes as the peer shows them.
fn check_attributes(peer: &dyn Peer, lab: &Lab, routes: &BTreeMap<IpNet, SeenRoute>, local_asn: u32, ibgp: bool) {
    let mut problems = Vec::new();
    for r in routes.values() {
        let nh: IpAddr = if r.prefix.addr().is_ipv4() { IpAddr::V4(lab.kbgp_v4) } else { IpAddr::V6(lab.kbgp_v6) };
        let want_path: Vec<u32> = if ibgp { vec![] } else { vec![local_asn] };
        let want_lp = if ibgp { Some(LOCAL_PREF) } else { peer.ebgp_local_pref() };
        let mut bad = Vec::new();
        if r.next_hop != nh {
            bad.push(format!("next hop {} (want {nh})", r.next_hop));
        }
        if r.origin != "igp" {
            bad.push(format!("origin {} (want igp)", r.origin));
        }
        if r.as_path != want_path {
            bad.push(format!("AS_PATH {:?} (want {want_path:?})", r.as_path));
        }
        if r.local_pref != want_lp {
            bad.push(format!("LOCAL_PREF {:?} (want {want_lp:?})", r.local_pref));
        }
        if r.communities != vec![COMMUNITY.to_string()] {
            bad.push(format!("communities {:?} (want [{COMMUNITY}])", r.communities));
        }
        if r.large_communities != vec![LARGE.to_string()] {
            bad.push(format!("large communities {:?} (want [{LARGE}])", r.large_communities));
        }
        if !bad.is_empty() {
            problems.push(format!("{}: {}", r.prefix, bad.join(", ")));
        }
    }
    assert!(
        problems.is_empty(),
        "{}: {} of {} routes have wrong attributes, e.g.\n{}",
        peer.name(),
        problems.len(),
        routes.len(),
        problems.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn routes(daemon: &str) {
    let mut lab = Lab::new(&format!("{daemon}-routes"));
    lab.capture(daemon);
    let peer = common::peer::start(
        daemon,
        &mut lab,
        &PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: false },
    );
    let all: Vec<usize> = (0..SERVICES).collect();
    let conf = Conf { local_asn: 65005, peer_asn: 65005, services: all.clone(), timers: None, passive: false };
    let kbgp = Kbgp::start(&lab, &yaml(&lab, &conf));
    let want = expected(&all);
    assert_eq!(want.len(), 1100);
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(60));
    let seen = peer.routes().expect("routes");
    check_attributes(peer.as_ref(), &lab, &seen, 65005, true);

    // The peer's own routes are counted (and our routes reflected back are not).
    wait_for("kbgp_received_routes", Duration::from_secs(30), || {
        let m = kbgp.metrics();
        let v4 = common::metric_value(&m, "kbgp_received_routes", &[("afi", "ipv4")]);
        let v6 = common::metric_value(&m, "kbgp_received_routes", &[("afi", "ipv6")]);
        if (v4, v6) == (PEER_V4.len() as f64, PEER_V6.len() as f64) {
            Ok(())
        } else {
            Err(format!("ipv4 {v4}, ipv6 {v6}"))
        }
    });
    assert_eq!(kbgp.metric("kbgp_advertised_routes", &[("afi", "ipv4")]), 1000.0);
    assert_eq!(kbgp.metric("kbgp_advertised_routes", &[("afi", "ipv6")]), 100.0);

    // Reload without half of the services: exactly their routes are withdrawn, and the
    // session stays up (its settings did not change).
    let transitions = kbgp.metric("kbgp_session_transitions_total", &[]);
    let half: Vec<usize> = (0..SERVICES / 2).collect();
    kbgp.reload(&yaml(&lab, &Conf { services: half.clone(), ..conf }));
    let want = expected(&half);
    assert_eq!(want.len(), 550);
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(30));
    assert_eq!(kbgp.metric("kbgp_session_transitions_total", &[]), transitions, "the reload reset the session");
    assert!(peer.established().expect("state"), "{} no longer Established after the reload", peer.name());
    assert_eq!(kbgp.metric("kbgp_advertised_routes", &[("afi", "ipv4")]), 500.0);
}

fn four_octet_ebgp(daemon: &str) {
    let conf = Conf { local_asn: 4200000001, peer_asn: 65100, services: vec![3], timers: None, passive: false };
    let (lab, peer, kbgp) = setup(daemon, "as4", &conf);
    let want = expected(&[3]);
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(60));
    let seen = peer.routes().expect("routes");
    check_attributes(peer.as_ref(), &lab, &seen, 4200000001, false);
    assert_eq!(kbgp.metric("kbgp_advertised_routes", &[("afi", "ipv4")]), V4_PER_SERVICE as f64);
}

/// Waits until kbgp has sent NOTIFICATION `code`/`sub` at least `times` times (its metric).
fn wait_sent(kbgp: &Kbgp, code: u8, sub: u8, times: f64, timeout: Duration) {
    let (c, s) = (code.to_string(), sub.to_string());
    wait_for(&format!("kbgp to send NOTIFICATION {code}/{sub} ({times} times)"), timeout, || {
        let n = kbgp.metric("kbgp_notifications_total", &[("direction", "sent"), ("code", &c), ("subcode", &s)]);
        if n >= times { Ok(()) } else { Err(format!("{n} sent")) }
    });
}

/// Waits until the daemon shows that it received NOTIFICATION `code`/`sub` from kbgp.
fn wait_reported(peer: &dyn Peer, daemon: &str, code: u8, sub: u8) {
    wait_for(&format!("{daemon} to report NOTIFICATION {code}/{sub}"), Duration::from_secs(20), || {
        match peer.received_notification(code, sub)? {
            Some(true) => Ok(()),
            Some(false) => Err("not in the peer's log/events yet".into()),
            // GoBGP only counts NOTIFICATIONs received before Established; kbgp's own counter
            // (see wait_sent) gives the code.
            None => {
                if peer.notified()? {
                    Ok(())
                } else {
                    Err("peer counted no NOTIFICATION".into())
                }
            }
        }
    });
}

fn wrong_peer_asn(daemon: &str) {
    // kbgp expects AS 65099; the daemon is AS 65005 and expects kbgp as 65005.
    let conf = Conf { local_asn: 65005, peer_asn: 65099, services: vec![0], timers: None, passive: false };
    let mut lab = Lab::new(&format!("{daemon}-badas"));
    let peer = common::peer::start(
        daemon,
        &mut lab,
        &PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: false },
    );
    let kbgp = Kbgp::start(&lab, &yaml(&lab, &conf));
    wait_sent(&kbgp, 2, 2, 1.0, Duration::from_secs(30));
    wait_reported(peer.as_ref(), daemon, 2, 2);
    assert_eq!(kbgp.metric("kbgp_session_up", &[]), 0.0);
    assert!(!peer.established().expect("state"));
}

/// `yaml` as the kbgp.io kind (where the kbgp extensions are allowed), with `extra` lines added
/// to the neighbor.
fn kbgp_kind(yaml: &str, extra: &str) -> String {
    yaml.replacen(
        "apiVersion: cilium.io/v2alpha1\nkind: CiliumBGPPeeringPolicy",
        "apiVersion: kbgp.io/v1alpha1\nkind: BGPPeeringPolicy",
        1,
    )
    .replace("connectRetryTimeSeconds: 5\n", &format!("connectRetryTimeSeconds: 5\n{extra}"))
}

/// GTSM (RFC 5082) on a directly connected eBGP session, the peer enforcing it too (FRR
/// `ttl-security hops 1`, BIRD `ttl security on`): with `ttlSecurity: true` the session comes
/// up and the routes arrive; without it the peer drops kbgp's TTL-1 packets; and with it
/// against a peer that sends TTL 1, kbgp's kernel drops the peer's packets. A passive kbgp
/// accepts the peer's TTL-255 connection.
fn gtsm(daemon: &str) {
    const GTSM: &str = "      ttlSecurity: true\n";
    let conf = Conf { local_asn: 65200, peer_asn: 65100, services: vec![3], timers: None, passive: false };
    let ebgp = PeerSpec { asn: 65100, kbgp_asn: 65200, gtsm: true, password: None, bfd: None, router: false };
    // `kbgp_side`: whether kbgp's own state is checked too. When only the peer enforces GTSM
    // it may let the first segments of an accepted connection through (FRR sets IP_MINTTL on
    // the accepted socket after accept(), so kbgp's OPEN can slip in): kbgp may then count the
    // session up while the peer, which drops every KEEPALIVE after, never does.
    let stays_down = |peer: &dyn Peer, kbgp: &Kbgp, why: &str, kbgp_side: bool| {
        for _ in 0..12 {
            std::thread::sleep(Duration::from_secs(1));
            assert!(!peer.established().expect("state"), "{why}: the session came up");
            if kbgp_side {
                assert_eq!(kbgp.metric("kbgp_session_up", &[]), 0.0, "{why}: kbgp says up");
            }
        }
    };
    {
        let mut lab = Lab::new(&format!("{daemon}-gtsm"));
        let peer = common::peer::start(daemon, &mut lab, &ebgp);
        let kbgp = Kbgp::start(&lab, &kbgp_kind(&yaml(&lab, &conf), GTSM));
        wait_prefixes(peer.as_ref(), &expected(&[3]), Duration::from_secs(60));
        check_attributes(peer.as_ref(), &lab, &peer.routes().expect("routes"), 65200, false);
        assert_eq!(kbgp.metric("kbgp_session_up", &[]), 1.0);
    }
    {
        let mut lab = Lab::new(&format!("{daemon}-gtsm-off"));
        let peer = common::peer::start(daemon, &mut lab, &ebgp);
        let kbgp = Kbgp::start(&lab, &yaml(&lab, &conf));
        stays_down(peer.as_ref(), &kbgp, "kbgp without ttlSecurity, the peer with GTSM", false);
    }
    {
        let mut lab = Lab::new(&format!("{daemon}-gtsm-peer-off"));
        let peer = common::peer::start(daemon, &mut lab, &PeerSpec { gtsm: false, ..ebgp.clone() });
        let kbgp = Kbgp::start(&lab, &kbgp_kind(&yaml(&lab, &conf), GTSM));
        stays_down(peer.as_ref(), &kbgp, "kbgp with ttlSecurity, the peer sending TTL 1", true);
    }
    {
        let conf = Conf { passive: true, ..conf };
        let mut lab = Lab::new(&format!("{daemon}-gtsm-passive"));
        let peer = common::peer::start(daemon, &mut lab, &ebgp);
        let kbgp = Kbgp::start(
            &lab,
            &yaml(&lab, &conf).replace("      passive: true\n", &format!("      passive: true\n{GTSM}")),
        );
        wait_prefixes(peer.as_ref(), &expected(&[3]), Duration::from_secs(60));
        drop(kbgp);
    }
}

/// TCP MD5 (RFC 2385) with the password from a `v1` Secret in kbgp's file, as Cilium's
/// `authSecretRef` reads it: the right password gives the session and the routes; a Secret
/// rotated to a password the peer does not have takes the session down and `kbgp peers` says
/// to check the password; rotated back, the session returns. A neighbor whose Secret is
/// missing stays down with the reason.
fn md5(daemon: &str) {
    const RIGHT: &str = "kbgp-md5-right";
    let conf = Conf { local_asn: 65005, peer_asn: 65005, services: vec![5], timers: None, passive: false };
    let mut lab = Lab::new(&format!("{daemon}-md5"));
    let peer = common::peer::start(
        daemon,
        &mut lab,
        &PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: Some(RIGHT), bfd: None, router: false },
    );
    let with = |password: Option<&str>| {
        let mut y = yaml(&lab, &conf)
            .replace("connectRetryTimeSeconds: 5\n", "connectRetryTimeSeconds: 5\n      authSecretRef: bgp-auth\n");
        if let Some(pw) = password {
            use base64::Engine as _;
            let b64 = base64::engine::general_purpose::STANDARD.encode(pw);
            y.push_str(&format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bgp-auth, namespace: kube-system}}\n\
                 type: Opaque\ndata: {{password: {b64}}}\n"
            ));
        }
        y
    };
    let kbgp = Kbgp::start(&lab, &with(Some(RIGHT)));
    let want = expected(&[5]);
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(60));
    let me = lab.peer_v4.to_string();

    // Rotated to a password the peer does not have: the session is restarted with it and
    // gets no answer.
    kbgp.reload(&with(Some("kbgp-md5-wrong")));
    let down = wait_for("kbgp to report the wrong password", Duration::from_secs(60), || {
        let p = kbgp.peer(&me);
        let hint = p["lastError"]["hint"].as_str().unwrap_or_default().to_string();
        if p["state"] != "Established" && hint.contains("check the TCP MD5 password on both sides") {
            Ok(p)
        } else {
            Err(format!("{p}"))
        }
    });
    assert!(!peer.established().expect("state"), "{down}");
    let log = fs::read_to_string(lab.path("kbgp.log")).unwrap_or_default();
    assert!(!log.contains(RIGHT) && !log.contains("kbgp-md5-wrong"), "kbgp logged a password");

    // Rotated back: the session and the routes return.
    kbgp.reload(&with(Some(RIGHT)));
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(90));

    // The Secret gone: that session stays down, and says which Secret.
    kbgp.reload(&with(None));
    wait_for("kbgp to report the missing Secret", Duration::from_secs(30), || {
        let p = kbgp.peer(&me);
        let text = p["lastError"]["text"].as_str().unwrap_or_default().to_string();
        if text.contains("authSecretRef bgp-auth: no Secret bgp-auth") { Ok(()) } else { Err(format!("{p}")) }
    });
    wait_prefixes(peer.as_ref(), &BTreeSet::new(), Duration::from_secs(30));
    drop((kbgp, peer, lab));

    // Passive: the key is on kbgp's listening socket, for that peer only.
    let conf = Conf { passive: true, ..conf };
    let mut lab = Lab::new(&format!("{daemon}-md5p"));
    let peer = common::peer::start(
        daemon,
        &mut lab,
        &PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: Some(RIGHT), bfd: None, router: false },
    );
    let y = |pw: &str| {
        yaml(&lab, &conf).replace("      passive: true\n", "      passive: true\n      authSecretRef: bgp-auth\n")
            + &format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bgp-auth, namespace: kube-system}}\n\
                 stringData: {{password: {pw}}}\n"
            )
    };
    // First with a password the peer does not have: kbgp's kernel drops the peer's SYNs, and
    // the metric shows it (kbgp's namespace is the lab's own, so its count starts at 0).
    let kbgp = Kbgp::start(&lab, &y("kbgp-md5-wrong"));
    wait_for("kbgp_tcp_md5_dropped_segments{reason=failure} to rise", Duration::from_secs(60), || {
        let n = kbgp.metric("kbgp_tcp_md5_dropped_segments", &[("reason", "failure")]);
        if n >= 1.0 { Ok(()) } else { Err(format!("{n}")) }
    });
    assert!(!peer.established().expect("state"));
    kbgp.reload(&y(RIGHT));
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(60));
}

/// Past `maxReceivedRoutes` with `maxReceivedRoutesAction: Cease` (RFC 4486): the peer's five
/// routes against a limit of three end the session with Cease 6/1, kbgp connects again after
/// the restart time (and ceases again), and a higher limit brings the session back for good.
fn max_prefix(daemon: &str) {
    let conf = Conf { local_asn: 65005, peer_asn: 65005, services: vec![0], timers: None, passive: false };
    let mut lab = Lab::new(&format!("{daemon}-maxpfx"));
    let peer = common::peer::start(
        daemon,
        &mut lab,
        &PeerSpec { asn: 65005, kbgp_asn: 65005, gtsm: false, password: None, bfd: None, router: false },
    );
    let with = |extra: &str| kbgp_kind(&yaml(&lab, &conf), extra);
    let limit =
        "      maxReceivedRoutes: 3\n      maxReceivedRoutesAction: Cease\n      maxReceivedRoutesRestartSeconds: 3\n";
    let kbgp = Kbgp::start(&lab, &with(limit));
    let ceased = || kbgp.metric("kbgp_notifications_total", &[("direction", "sent"), ("code", "6"), ("subcode", "1")]);
    wait_sent(&kbgp, 6, 1, 1.0, Duration::from_secs(60));
    wait_reported(peer.as_ref(), daemon, 6, 1);
    // kbgp connects again after 3 s, and ceases again.
    wait_sent(&kbgp, 6, 1, 2.0, Duration::from_secs(40));
    kbgp.reload(&with("      maxReceivedRoutes: 10\n"));
    wait_prefixes(peer.as_ref(), &expected(&[0]), Duration::from_secs(60));
    wait_for("the peer's five routes, kept", Duration::from_secs(30), || {
        let m = kbgp.metrics();
        let v4 = common::metric_value(&m, "kbgp_received_routes", &[("afi", "ipv4")]);
        let v6 = common::metric_value(&m, "kbgp_received_routes", &[("afi", "ipv6")]);
        if (v4, v6) == (PEER_V4.len() as f64, PEER_V6.len() as f64) {
            Ok(())
        } else {
            Err(format!("ipv4 {v4}, ipv6 {v6}"))
        }
    });
    let n = ceased();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(ceased(), n, "no Cease 6/1 once the limit is above what the peer sends");
    assert!(peer.established().expect("state"));
}

fn hold_timer(daemon: &str) {
    let conf = Conf { local_asn: 65005, peer_asn: 65005, services: vec![0], timers: Some((3, 1)), passive: false };
    let (_lab, peer, kbgp) = setup(daemon, "hold", &conf);
    let up = |want: f64| {
        let k = &kbgp;
        move || {
            let v = k.metric("kbgp_session_up", &[]);
            if v == want { Ok(()) } else { Err(format!("kbgp_session_up {v}")) }
        }
    };
    wait_for("the session", Duration::from_secs(60), up(1.0));
    peer.process().signal("STOP");
    // kbgp's hold timer expires.
    wait_sent(&kbgp, 4, 0, 1.0, Duration::from_secs(15));
    wait_for("the session to be down", Duration::from_secs(5), up(0.0));
    peer.process().signal("CONT");
    wait_for("the session to come back after SIGCONT", Duration::from_secs(90), up(1.0));
    wait_prefixes(peer.as_ref(), &expected(&[0]), Duration::from_secs(30));
}

fn shutdown(daemon: &str) {
    let conf = Conf { local_asn: 65005, peer_asn: 65005, services: vec![1], timers: None, passive: false };
    let (_lab, peer, mut kbgp) = setup(daemon, "term", &conf);
    wait_prefixes(peer.as_ref(), &expected(&[1]), Duration::from_secs(60));
    kbgp.proc.signal("TERM");
    let status = kbgp.proc.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "kbgp exit status after SIGTERM: {status:?}");
    if daemon == "exabgp" {
        // ExaBGP 4.2.21 cannot decode an RFC 9003 shutdown communication: its notification.py
        // formats the text into a bytes template with a str, the exception becomes 1/0 "can
        // not decode update message of type 3" (3 = NOTIFICATION). It still tears down.
        wait_for("exabgp to receive the NOTIFICATION", Duration::from_secs(20), || {
            let log = peer.raw_log();
            let choked =
                log.contains("\"state\": \"down\"") && log.contains("can not decode update message of type \\\"3\\\"");
            if choked { Ok(()) } else { Err("no down event for our NOTIFICATION".into()) }
        });
    } else {
        wait_for(&format!("{daemon} to report Cease 6/2"), Duration::from_secs(20), || {
            match peer.received_notification(6, 2)? {
                Some(true) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        // And the shutdown communication's text, as each daemon logs it.
        let text = match daemon {
            "frr" => "6/2 (Cease/Administrative Shutdown) \"shutdown\"",
            "bird" => "Received: Administrative shutdown: \"shutdown\"",
            "gobgp" => "Communicated-Reason=shutdown",
            other => panic!("no shutdown text known for {other}"),
        };
        assert!(peer.raw_log().contains(text), "{daemon} did not log the shutdown communication {text:?}");
    }
    wait_prefixes(peer.as_ref(), &BTreeSet::new(), Duration::from_secs(20));
}

/// Changing a session setting restarts only that session, with Cease 6/6; taking the peer out
/// of the configuration ends it with Cease 6/3 and withdraws everything.
fn reconfigure(daemon: &str) {
    let conf = Conf { local_asn: 65005, peer_asn: 65005, services: vec![2], timers: None, passive: false };
    let (lab, peer, kbgp) = setup(daemon, "reconf", &conf);
    let want = expected(&[2]);
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(60));
    let notified = |code: u8, sub: u8| {
        let p = &peer;
        move || match p.received_notification(code, sub)? {
            Some(true) => Ok(()),
            other => Err(format!("{code}/{sub} not reported: {other:?}")),
        }
    };
    // New hold time: a new session.
    kbgp.reload(&yaml(&lab, &Conf { timers: Some((30, 10)), ..conf }));
    wait_for(&format!("{daemon} to report Cease 6/6"), Duration::from_secs(20), notified(6, 6));
    wait_for("the new session", Duration::from_secs(60), || {
        let up = kbgp.metric("kbgp_session_up", &[]);
        if up == 1.0 && peer.established()? { Ok(()) } else { Err(format!("kbgp_session_up {up}")) }
    });
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(30));
    // The node's labels no longer match the policy: the peer is de-configured.
    let gone = yaml(
        &lab,
        &Conf { timers: Some((30, 10)), services: vec![2], local_asn: 65005, peer_asn: 65005, passive: false },
    )
    .replace(
        "labels: {rack: rack0}}
status",
        "labels: {rack: rack9}}
status",
    );
    kbgp.reload(&gone);
    wait_for(&format!("{daemon} to report Cease 6/3"), Duration::from_secs(20), notified(6, 3));
    wait_prefixes(peer.as_ref(), &BTreeSet::new(), Duration::from_secs(20));
    assert_eq!(kbgp.metric("kbgp_config_reloads_total", &[("result", "applied")]), 2.0);
}

/// kbgp never connects: the daemon does, to kbgp's listener.
fn passive(daemon: &str) {
    let conf = Conf { local_asn: 65005, peer_asn: 65005, services: vec![4], timers: None, passive: true };
    let (lab, peer, kbgp) = setup(daemon, "passive", &conf);
    wait_prefixes(peer.as_ref(), &expected(&[4]), Duration::from_secs(60));
    // Next hops too: an accepted connection's local address must not be taken for IPv6.
    check_attributes(peer.as_ref(), &lab, &peer.routes().expect("routes"), 65005, true);
    // The session is the daemon's connection to port 179 (kbgp made no attempt).
    let ss = common::sh(&["ip", "netns", "exec", &kbgp.ns, "ss", "-tn", "state", "established"]);
    let local_ports: Vec<&str> = ss.lines().skip(1).filter_map(|l| l.split_whitespace().nth(2)).collect();
    assert!(
        !local_ports.is_empty() && local_ports.iter().all(|a| a.ends_with(":179")),
        "kbgp's end of every session is port 179: {ss}"
    );
}

fn route_refresh(daemon: &str) {
    let conf = Conf { local_asn: 65005, peer_asn: 65005, services: vec![0, 1], timers: None, passive: false };
    let (_lab, peer, kbgp) = setup(daemon, "rr", &conf);
    let want = expected(&[0, 1]);
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(60));
    let updates = kbgp.metric("kbgp_messages_total", &[("direction", "sent"), ("type", "update")]);
    peer.request_refresh().expect("this daemon can request a refresh").expect("refresh request");
    wait_for("kbgp to receive ROUTE-REFRESH and answer", Duration::from_secs(30), || {
        let rr = kbgp.metric("kbgp_messages_total", &[("direction", "received"), ("type", "route_refresh")]);
        let now = kbgp.metric("kbgp_messages_total", &[("direction", "sent"), ("type", "update")]);
        if rr >= 1.0 && now > updates {
            Ok(())
        } else {
            Err(format!("{rr} refresh requests, {} UPDATEs since", now - updates))
        }
    });
    // With enhanced route refresh the peer purges what the refresh did not repeat: every
    // route must still be there, and stay.
    std::thread::sleep(Duration::from_secs(2));
    wait_prefixes(peer.as_ref(), &want, Duration::from_secs(30));
    assert!(peer.established().expect("state"));
}

macro_rules! matrix {
    ($($daemon:ident),*) => {
        $(
            mod $daemon {
                #[test]
                fn routes() { super::routes(stringify!($daemon)) }
                #[test]
                fn four_octet_ebgp() { super::four_octet_ebgp(stringify!($daemon)) }
                #[test]
                fn wrong_peer_asn() { super::wrong_peer_asn(stringify!($daemon)) }
                #[test]
                fn hold_timer() { super::hold_timer(stringify!($daemon)) }
                #[test]
                fn shutdown() { super::shutdown(stringify!($daemon)) }
                #[test]
                fn reconfigure() { super::reconfigure(stringify!($daemon)) }
                #[test]
                fn max_prefix() { super::max_prefix(stringify!($daemon)) }
            }
        )*
    };
}

matrix!(frr, bird, gobgp, exabgp);

/// TCP MD5 against the daemons the issue names (the ExaBGP driver sets no password).
mod md5 {
    #[test]
    fn frr() {
        super::md5("frr")
    }
    #[test]
    fn bird() {
        super::md5("bird")
    }
    #[test]
    fn gobgp() {
        super::md5("gobgp")
    }
}

/// GTSM needs the peer to enforce it as well: FRR and BIRD do.
mod gtsm {
    #[test]
    fn frr() {
        super::gtsm("frr")
    }
    #[test]
    fn bird() {
        super::gtsm("bird")
    }
}

// ExaBGP is set up passive (it only listens), so it cannot reach a passive kbgp.
#[test]
fn frr_passive() {
    passive("frr")
}
#[test]
fn bird_passive() {
    passive("bird")
}
#[test]
fn gobgp_passive() {
    passive("gobgp")
}

// ExaBGP cannot ask for a route refresh; GoBGP's soft reset in replays its own Adj-RIB-In
// instead of sending ROUTE-REFRESH.
#[test]
fn frr_route_refresh() {
    route_refresh("frr")
}
#[test]
fn bird_route_refresh() {
    route_refresh("bird")
}
