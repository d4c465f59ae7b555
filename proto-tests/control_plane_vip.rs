//! The control-plane VIP lab (containerlab/control-plane-vip, issue 12): an FRR router with an
//! iBGP listen range and ECMP hashed on ports, three control-plane nodes each running kbgp
//! from the lab's files and a stand-in API server on :6443 (`kbgp-lab apiserver`), and a
//! client opening a new TLS connection to the VIP every 50 ms (`kbgp-lab client`).
//!
//! Each run (5 by default, `KBGP_VIP_LAB_RUNS` to change it) goes through the issue's
//! scenarios, timing each against the router's kernel route (polled every 20 ms) and
//! counting the client's failed requests; the table at the end gives the median and maximum
//! over the runs (docs/control-plane-vip.md quotes it):
//!
//! - no route while no server runs; the first healthy server's path within rise × interval
//!   + 1 s; all three next hops once all three are healthy;
//! - one failed `/readyz` withdraws nothing; `/readyz` failing: that path gone within
//!   fall × interval + 1 s, 0 failed requests; back within rise × interval + 1 s;
//! - the server killed: its path gone within fall × interval + 1 s, failed requests only
//!   inside that window; `/readyz` hanging: gone within fall × (interval + timeout) + 1 s;
//! - kbgp SIGTERM: the path gone in ≤ 1 s with 0 failed requests, the drain (GRACEFUL_SHUTDOWN,
//!   LOCAL_PREF 0) seen in the router's table; kbgp frozen (SIGSTOP): gone within the hold time;
//! - all servers down: no route.
//!
//! Between the first healthy path and "all servers down", the only failed requests allowed
//! are those that overlap the killed server's window.

mod common;

use common::{Proc, require, sh, sh_lenient, spawn_in, wait_for};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LAB_BIN: &str = env!("CARGO_BIN_EXE_kbgp-lab");
const KBGP_BIN: &str = env!("CARGO_BIN_EXE_kbgp");
const VIP: &str = "10.100.0.100";
const CP: [(&str, &str); 3] = [("cp1", "10.0.0.11"), ("cp2", "10.0.0.12"), ("cp3", "10.0.0.13")];
/// The lab's check (manifests/kbgp.yaml) and session timers.
const INTERVAL: Duration = Duration::from_millis(1000);
const TIMEOUT: Duration = Duration::from_millis(800);
const RISE: u32 = 2;
const FALL: u32 = 3;
const HOLD: Duration = Duration::from_secs(6);
const DRAIN: Duration = Duration::from_secs(1);
const SLACK: Duration = Duration::from_secs(1);

fn epoch_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// One line of the client's log.
#[derive(Debug, Clone)]
struct Req {
    start: u128,
    end: u128,
    ok: bool,
    what: String,
}

struct VipLab {
    name: String,
    dir: PathBuf,
    file: PathBuf,
    state: PathBuf,
    servers: BTreeMap<&'static str, Proc>,
    client: Option<Proc>,
    client_log: PathBuf,
    /// Every change of the router's next hops seen, as (last poll before it, first poll
    /// after it) in ms since the epoch: the change happened in between.
    changes: std::sync::Mutex<Vec<(u128, u128)>>,
}

impl VipLab {
    fn up() -> VipLab {
        require("/usr/lib/frr/bgpd");
        require("openssl");
        let name = format!("cpv{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("kbgp-cpvlab-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        common::copy_dir(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/containerlab/control-plane-vip")), &dir);
        let file = dir.join("control-plane-vip.clab.yml");
        let text = std::fs::read_to_string(&file).unwrap().replace("name: cp-vip", &format!("name: {name}"));
        std::fs::write(&file, text).unwrap();
        sh(&["bash", dir.join("pki.sh").to_str().unwrap(), dir.join("pki").to_str().unwrap()]);
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let lab = VipLab {
            name,
            state: dir.join("state"),
            client_log: dir.join("run/client.log"),
            file,
            dir,
            servers: BTreeMap::new(),
            client: None,
            changes: Default::default(),
        };
        let out = lab.lab(&["up", "--kbgp", KBGP_BIN]);
        assert!(out.status.success(), "kbgp-lab up: {}", String::from_utf8_lossy(&out.stderr));
        lab
    }

    fn lab(&self, args: &[&str]) -> std::process::Output {
        let mut a: Vec<&str> = vec![args[0], self.file.to_str().unwrap(), "--state", self.state.to_str().unwrap()];
        a.extend_from_slice(&args[1..]);
        Command::new(LAB_BIN).args(&a).output().unwrap()
    }

    fn exec(&self, node: &str, cmd: &[&str]) -> String {
        let mut a = vec!["exec", node, "--"];
        a.extend_from_slice(cmd);
        String::from_utf8_lossy(&self.lab(&a).stdout).into_owned()
    }

    fn ns(&self, node: &str) -> String {
        format!("clab-{}-{node}", self.name)
    }

    fn control(&self, node: &str) -> PathBuf {
        self.dir.join(format!("run/{node}.readyz"))
    }

    fn set_readyz(&self, node: &str, what: &str) {
        std::fs::write(self.control(node), format!("{what}\n")).unwrap();
    }

    fn start_server(&mut self, node: &'static str) {
        self.set_readyz(node, "ok");
        let pki = self.dir.join("pki");
        let log = self.dir.join(format!("run/{node}.apiserver.log"));
        let p = spawn_in(
            &self.ns(node),
            &format!("apiserver on {node}"),
            &[
                LAB_BIN,
                "apiserver",
                "--cert",
                pki.join("apiserver.crt").to_str().unwrap(),
                "--key",
                pki.join("apiserver.key").to_str().unwrap(),
                "--readyz",
                self.control(node).to_str().unwrap(),
                "--name",
                node,
            ],
            &log,
            &[],
        );
        wait_for(&format!("the API server on {node} to listen"), Duration::from_secs(10), || {
            let l = std::fs::read_to_string(&log).unwrap_or_default();
            if l.contains("serving") { Ok(()) } else { Err(l) }
        });
        self.servers.insert(node, p);
    }

    /// SIGKILL, as an API server that crashes.
    fn kill_server(&mut self, node: &str) {
        drop(self.servers.remove(node));
    }

    fn start_client(&mut self) {
        let ca = self.dir.join("pki/ca.crt");
        let url = format!("https://{VIP}:6443/version");
        let log = self.dir.join("run/client.stderr");
        let args = [
            LAB_BIN,
            "client",
            "--url",
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "--server-name",
            VIP,
            "--every-ms",
            "50",
            "--timeout-ms",
            "1000",
            "--out",
            self.client_log.to_str().unwrap(),
        ];
        self.client = Some(spawn_in(&self.ns("client"), "client", &args, &log, &[]));
    }

    fn requests(&self) -> Vec<Req> {
        std::fs::read_to_string(&self.client_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.splitn(4, ' ');
                let start: u128 = w.next()?.parse().ok()?;
                let dur: u128 = w.next()?.parse().ok()?;
                let ok = w.next()? == "ok";
                Some(Req { start, end: start + dur, ok, what: w.next().unwrap_or_default().to_string() })
            })
            .collect()
    }

    /// The router's kernel next hops for the VIP, sorted.
    fn hops(&self) -> Vec<String> {
        let r = sh_lenient(&["ip", "-n", &self.ns("router"), "route", "show", VIP]);
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

    fn vtysh(&self, cmd: &str) -> serde_json::Value {
        let out = self.exec("router", &["vtysh", "-c", cmd]);
        serde_json::from_str(&out).unwrap_or(serde_json::Value::Null)
    }

    /// The router's BGP paths for the VIP: (from, local preference, communities).
    fn bgp_paths(&self) -> Vec<(String, u64, String)> {
        let v = self.vtysh(&format!("show bgp ipv4 unicast {VIP}/32 json"));
        v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p.pointer("/peer/peerId").and_then(|x| x.as_str()).unwrap_or("?").to_string(),
                    p["locPrf"].as_u64().or_else(|| p["localpref"].as_u64()).unwrap_or(100),
                    p.pointer("/community/string").and_then(|x| x.as_str()).unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Sessions established so far, per node (FRR's count): unchanged while only checks fail.
    fn established(&self) -> BTreeMap<String, u64> {
        let v = self.vtysh("show bgp neighbors json");
        v.as_object()
            .into_iter()
            .flatten()
            .filter(|(_, n)| n["bgpState"] == "Established")
            .map(|(k, n)| (k.clone(), n["connectionsEstablished"].as_u64().unwrap_or(0)))
            .collect()
    }

    fn kbgp_pid(&self, node: &str) -> String {
        std::fs::read_to_string(self.state.join(node).join("kbgp.pid")).unwrap().trim().to_string()
    }
}

impl Drop for VipLab {
    fn drop(&mut self) {
        self.client = None;
        self.servers.clear();
        let out = self.lab(&["down"]);
        if !out.status.success() {
            eprintln!("kbgp-lab down: {}", String::from_utf8_lossy(&out.stderr));
        }
        if std::thread::panicking() {
            eprintln!("the lab's files are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn ips(nodes: &[&str]) -> Vec<String> {
    CP.iter().filter(|(n, _)| nodes.contains(n)).map(|(_, a)| a.to_string()).collect()
}

/// Polls the router's next hops every 20 ms until they are `want`; the time since `t0`.
/// Fails the test if that takes longer than `limit`. Records when the change happened.
fn until_hops(lab: &VipLab, t0: Instant, want: &[&str], limit: Duration, what: &str) -> Duration {
    let want = ips(want);
    let mut before = epoch_ms(SystemTime::now());
    loop {
        let polled = epoch_ms(SystemTime::now());
        let got = lab.hops();
        let dt = t0.elapsed();
        if got == want {
            lab.changes.lock().unwrap().push((before, epoch_ms(SystemTime::now())));
            return dt;
        }
        assert!(dt <= limit, "{what}: next hops {got:?} after {dt:?}, wanted {want:?} within {limit:?}");
        before = polled;
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that the next hops stay `want` for `d`.
fn steady_hops(lab: &VipLab, want: &[&str], d: Duration, what: &str) {
    let want = ips(want);
    let end = Instant::now() + d;
    while Instant::now() < end {
        let got = lab.hops();
        assert_eq!(got, want, "{what}: the next hops changed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What one run measured.
#[derive(Default)]
struct Run {
    times: BTreeMap<&'static str, Duration>,
    /// (window, failed requests, of which cut in flight by a route change).
    failed: Vec<(&'static str, usize, usize)>,
}

/// A time window of the run, for counting the client's failures in it.
struct Window {
    name: &'static str,
    from: SystemTime,
    to: SystemTime,
}

fn failed_in(reqs: &[Req], from: SystemTime, to: SystemTime) -> Vec<&Req> {
    let (a, b) = (epoch_ms(from), epoch_ms(to));
    reqs.iter().filter(|r| !r.ok && r.end >= a && r.start <= b).collect()
}

fn one_run(lab: &mut VipLab, first: bool) -> Run {
    let mut run = Run::default();
    let mut windows: Vec<Window> = Vec::new();
    let limit_rise = INTERVAL * RISE + SLACK;
    let limit_fall = INTERVAL * FALL + SLACK;

    // No server: no route, for 2 s, and nothing in the router's table.
    steady_hops(lab, &[], Duration::from_secs(2), "no API server runs");
    assert!(lab.bgp_paths().is_empty(), "no API server runs, yet the router has {:?}", lab.bgp_paths());

    // Bootstrap: the first server, then the other two.
    let t0 = Instant::now();
    lab.start_server("cp1");
    run.times.insert("bootstrap: first server → its route", until_hops(lab, t0, &["cp1"], limit_rise, "bootstrap"));
    let t0 = Instant::now();
    lab.start_server("cp2");
    lab.start_server("cp3");
    run.times.insert(
        "bootstrap: all three → three next hops",
        until_hops(lab, t0, &["cp1", "cp2", "cp3"], limit_rise, "all three healthy"),
    );
    let healthy_since = SystemTime::now();
    let sessions = lab.established();
    assert_eq!(sessions.len(), 3, "sessions: {sessions:?}");
    // The router spreads new connections over all three.
    std::thread::sleep(Duration::from_millis(1500));
    let since = epoch_ms(healthy_since);
    let mut served: Vec<String> =
        lab.requests().into_iter().filter(|r| r.ok && r.start >= since).map(|r| r.what).collect();
    served.sort();
    served.dedup();
    assert_eq!(served, ["cp1", "cp2", "cp3"], "the nodes that answered the client since all three were healthy");

    // One failed /readyz: nothing is withdrawn (and the check did ask: the count went down).
    lab.set_readyz("cp1", "fail 1");
    steady_hops(lab, &["cp1", "cp2", "cp3"], INTERVAL * (FALL + 1), "one failed /readyz");
    assert_eq!(std::fs::read_to_string(lab.control("cp1")).unwrap().trim(), "ok", "the check never asked cp1");

    // Readiness lost: the path goes, no request fails (the server still serves), back again.
    let (t0, w0) = (Instant::now(), SystemTime::now());
    lab.set_readyz("cp1", "fail");
    run.times.insert("/readyz fails → path gone", until_hops(lab, t0, &["cp2", "cp3"], limit_fall, "readiness lost"));
    std::thread::sleep(Duration::from_millis(1500));
    if first {
        let why = lab.exec("cp1", &["kbgp", "why", VIP]);
        assert!(why.contains("not announced") && why.contains("Health check"), "kbgp why on cp1:\n{why}");
    }
    let (t0, w1) = (Instant::now(), SystemTime::now());
    windows.push(Window { name: "/readyz fails → path gone", from: w0, to: w1 });
    lab.set_readyz("cp1", "ok");
    run.times.insert("recovery → path back", until_hops(lab, t0, &["cp1", "cp2", "cp3"], limit_rise, "recovery"));
    windows.push(Window { name: "recovery → path back", from: w1, to: SystemTime::now() });

    // The server killed: failures only until its path is gone.
    let (t0, w0) = (Instant::now(), SystemTime::now());
    lab.kill_server("cp2");
    let gone = until_hops(lab, t0, &["cp1", "cp3"], limit_fall, "server killed");
    run.times.insert("server killed → path gone", gone);
    let kill_window =
        Window { name: "server killed → path gone", from: w0, to: w0 + gone + Duration::from_millis(100) };
    std::thread::sleep(Duration::from_millis(1500));
    let t0 = Instant::now();
    lab.start_server("cp2");
    until_hops(lab, t0, &["cp1", "cp2", "cp3"], limit_rise, "server restarted");

    // /readyz hangs (the rest of the server answers).
    let (t0, w0) = (Instant::now(), SystemTime::now());
    lab.set_readyz("cp3", "hang");
    let limit_hang = (INTERVAL + TIMEOUT) * FALL + SLACK;
    run.times.insert("/readyz hangs → path gone", until_hops(lab, t0, &["cp1", "cp2"], limit_hang, "hang"));
    std::thread::sleep(Duration::from_millis(1500));
    windows.push(Window { name: "/readyz hangs → path gone", from: w0, to: SystemTime::now() });
    lab.set_readyz("cp3", "ok");
    let t0 = Instant::now();
    until_hops(lab, t0, &["cp1", "cp2", "cp3"], limit_rise + TIMEOUT, "back after the hang");
    assert_eq!(lab.established(), sessions, "the sessions did not stay up while only the checks failed");

    // kbgp SIGTERM on cp1: the drain takes its path out of the router's choice at once (LOCAL_PREF
    // 0, GRACEFUL_SHUTDOWN), the withdrawal follows after drainSeconds, then the Cease.
    let (t0, w0) = (Instant::now(), SystemTime::now());
    sh(&["kill", "-TERM", &lab.kbgp_pid("cp1")]);
    let drained = std::thread::scope(|s| {
        let table = s.spawn(|| {
            let mut seen_drain = None;
            loop {
                let paths = lab.bgp_paths();
                let dt = t0.elapsed();
                let mine: Vec<_> = paths.iter().filter(|p| p.0 == "10.0.0.11").collect();
                if mine.is_empty() {
                    return (seen_drain, dt);
                }
                if seen_drain.is_none()
                    && mine.iter().any(|p| p.1 == 0 && (p.2.contains("graceful-shutdown") || p.2.contains("65535:0")))
                {
                    seen_drain = Some(dt);
                }
                assert!(dt < DRAIN + Duration::from_secs(2), "cp1's path still in the router's table: {paths:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let gone = until_hops(lab, t0, &["cp2", "cp3"], Duration::from_secs(1), "kbgp SIGTERM");
        run.times.insert("kbgp SIGTERM → path gone", gone);
        table.join().unwrap()
    });
    let (seen_drain, withdrawn) = drained;
    let seen_drain = seen_drain.expect("the router never saw cp1's path drained (LOCAL_PREF 0, GRACEFUL_SHUTDOWN)");
    assert!(withdrawn >= DRAIN, "withdrawn after {withdrawn:?}, before the {DRAIN:?} drain");
    run.times.insert("kbgp SIGTERM → drained path in the router's table", seen_drain);
    run.times.insert("kbgp SIGTERM → withdrawn (after the drain)", withdrawn);
    std::thread::sleep(Duration::from_millis(1500));
    windows.push(Window { name: "kbgp SIGTERM → path gone", from: w0, to: SystemTime::now() });
    let out = lab.lab(&["start", "cp1"]);
    assert!(out.status.success(), "kbgp-lab start cp1: {}", String::from_utf8_lossy(&out.stderr));
    let t0 = Instant::now();
    run.times.insert(
        "kbgp restarted → path back",
        until_hops(lab, t0, &["cp1", "cp2", "cp3"], Duration::from_secs(15), "kbgp restarted"),
    );

    // kbgp frozen on cp2: the router drops the session at its hold time.
    let (t0, w0) = (Instant::now(), SystemTime::now());
    let pid = lab.kbgp_pid("cp2");
    sh(&["kill", "-STOP", &pid]);
    run.times.insert("kbgp SIGSTOP → path gone", until_hops(lab, t0, &["cp1", "cp3"], HOLD + SLACK, "kbgp frozen"));
    std::thread::sleep(Duration::from_millis(1500));
    windows.push(Window { name: "kbgp SIGSTOP → path gone", from: w0, to: SystemTime::now() });
    sh(&["kill", "-CONT", &pid]);
    let t0 = Instant::now();
    run.times.insert(
        "kbgp resumed → path back",
        until_hops(lab, t0, &["cp1", "cp2", "cp3"], Duration::from_secs(20), "kbgp resumed"),
    );
    let all_down_from = SystemTime::now();

    // Every server down: no route at all.
    let t0 = Instant::now();
    for (n, _) in CP {
        lab.kill_server(n);
    }
    run.times.insert("all servers killed → no route", until_hops(lab, t0, &[], limit_fall, "all down"));
    wait_for("the router's table to drop the VIP", Duration::from_secs(2), || {
        let p = lab.bgp_paths();
        if p.is_empty() { Ok(()) } else { Err(format!("{p:?}")) }
    });

    // The client's failures, per window. A connection in flight at the instant the router
    // changes its ECMP set may be rehashed to another node, which resets it: such cuts are
    // counted apart (they overlap a recorded change, ±5 ms). Between all healthy and all
    // down, no other request may fail outside the killed server's window.
    std::thread::sleep(Duration::from_millis(1200));
    let reqs = lab.requests();
    let changes = lab.changes.lock().unwrap().clone();
    let cut = |r: &Req| changes.iter().any(|&(a, b)| r.end + 5 >= a && r.start <= b + 5);
    for w in windows.iter().chain([&kill_window]) {
        let f = failed_in(&reqs, w.from, w.to);
        let cuts = f.iter().filter(|r| cut(r)).count();
        run.failed.push((w.name, f.len(), cuts));
    }
    let (ka, kb) = (epoch_ms(kill_window.from), epoch_ms(kill_window.to));
    let stray: Vec<&Req> = failed_in(&reqs, healthy_since, all_down_from)
        .into_iter()
        .filter(|r| !(cut(r) || r.end >= ka && r.start <= kb))
        .collect();
    let total = reqs.iter().filter(|r| r.start >= since && r.start <= epoch_ms(all_down_from)).count();
    println!(
        "run: {total} requests while healthy; (window, failed, of which cut in flight by a route change): {:?}; \
         other failures outside the killed server's window: {stray:?}",
        run.failed
    );
    assert!(stray.is_empty(), "requests failed outside the killed server's window: {stray:?}");
    run
}

fn median_max(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

#[test]
fn control_plane_vip_lab() {
    let runs: usize = std::env::var("KBGP_VIP_LAB_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut lab = VipLab::up();
    wait_for("the three sessions to come up", Duration::from_secs(30), || {
        let e = lab.established();
        if e.len() == 3 { Ok(()) } else { Err(format!("{e:?}")) }
    });
    lab.start_client();
    let mut all = Vec::new();
    for i in 0..runs {
        println!("--- run {} of {runs}", i + 1);
        all.push(one_run(&mut lab, i == 0));
    }
    // The report.
    println!("\n| event | limit | median | max |\n|---|---|---|---|");
    let limits = [
        ("bootstrap: first server → its route", "rise × interval + 1 s = 3 s"),
        ("bootstrap: all three → three next hops", "3 s"),
        ("/readyz fails → path gone", "fall × interval + 1 s = 4 s"),
        ("recovery → path back", "3 s"),
        ("server killed → path gone", "4 s"),
        ("/readyz hangs → path gone", "fall × (interval + timeout) + 1 s = 6.4 s"),
        ("kbgp SIGTERM → path gone", "1 s"),
        ("kbgp SIGTERM → drained path in the router's table", "—"),
        ("kbgp SIGTERM → withdrawn (after the drain)", "drain 1 s + 2 s"),
        ("kbgp restarted → path back", "15 s"),
        ("kbgp SIGSTOP → path gone", "hold time 6 s + 1 s"),
        ("kbgp resumed → path back", "20 s"),
        ("all servers killed → no route", "4 s"),
    ];
    assert_eq!(all[0].times.len(), limits.len(), "events measured: {:?}", all[0].times.keys());
    for (event, limit) in limits {
        let mut v: Vec<Duration> = all.iter().filter_map(|r| r.times.get(event).copied()).collect();
        assert_eq!(v.len(), runs, "{event} was not measured in every run");
        let (med, max) = median_max(&mut v);
        println!("| {event} | {limit} | {} ms | {} ms |", med.as_millis(), max.as_millis());
    }
    println!("\n| window | failed requests per run | of which cut in flight by a route change |\n|---|---|---|");
    for (i, (w, _, _)) in all[0].failed.iter().enumerate() {
        let f: Vec<String> = all.iter().map(|r| r.failed[i].1.to_string()).collect();
        let c: Vec<String> = all.iter().map(|r| r.failed[i].2.to_string()).collect();
        println!("| {w} | {} | {} |", f.join(", "), c.join(", "));
    }
    // The zero-failure windows: nothing fails but what a rehash cuts in flight.
    for w in [
        "/readyz fails → path gone",
        "recovery → path back",
        "/readyz hangs → path gone",
        "kbgp SIGTERM → path gone",
        "kbgp SIGSTOP → path gone",
    ] {
        for (i, r) in all.iter().enumerate() {
            let (_, f, c) = r.failed.iter().find(|(name, _, _)| *name == w).copied().unwrap();
            assert_eq!(f - c, 0, "run {}: requests failed in {w} that no route change explains", i + 1);
        }
    }
}
