//! Starting the senders (kbgp, FRR, BIRD, GoBGP) and the receivers (kbgp-sink, BIRD), each
//! by hand in its namespace, with its own files, and asking them how far they are.

use super::common;
use super::confgen;
use super::sys::{Daemon, ProcStats, now_ns, realtime_ns, require, sh, sh_lenient, wait_settled, wait_until};
use serde_json::Value;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const BGPD: &str = "/usr/lib/frr/bgpd";

/// What every scenario needs: where files go, the binaries, the limits.
pub struct Env {
    pub dir: PathBuf,
    pub kbgp: PathBuf,
    pub sink: PathBuf,
    /// Longest wait for any one load or transfer.
    pub timeout: Duration,
    /// How often BIRD is asked for its route count.
    pub poll: Duration,
}

impl Env {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Kbgp,
    Frr,
    Bird,
    Gobgp,
}

impl Kind {
    pub fn parse(s: &str) -> Kind {
        match s {
            "kbgp" => Kind::Kbgp,
            "frr" => Kind::Frr,
            "bird" => Kind::Bird,
            "gobgp" => Kind::Gobgp,
            other => panic!("unknown sender {other} (kbgp, frr, bird, gobgp)"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::Kbgp => "kbgp",
            Kind::Frr => "frr",
            Kind::Bird => "bird",
            Kind::Gobgp => "gobgp",
        }
    }
    pub fn require(self) {
        match self {
            Kind::Kbgp => {}
            Kind::Frr => {
                require(BGPD);
                require("vtysh");
            }
            Kind::Bird => {
                require("bird");
            }
            Kind::Gobgp => {
                require("gobgpd");
                require("gobgp");
            }
        }
    }
    pub fn version(self, env: &Env) -> String {
        let first = |s: String| s.lines().next().unwrap_or("").trim().to_string();
        match self {
            Kind::Kbgp => first(sh_lenient(&[env.kbgp.to_str().unwrap_or("kbgp"), "--version"])),
            Kind::Frr => first(sh_lenient(&[BGPD, "--version"])),
            Kind::Bird => first(sh_lenient(&["bird", "--version"])),
            Kind::Gobgp => first(sh_lenient(&["gobgpd", "--version"])),
        }
    }
}

/// The kbgp files for N routes: the Services (shared by every scenario with N) and a Node and
/// peering policy for these peers.
pub fn kbgp_files(env: &Env, tag: &str, n: usize, node_ip: Ipv4Addr, peers: &[Ipv4Addr], port: u16) -> Vec<PathBuf> {
    let services = env.path(&format!("kbgp-services-{n}.yaml"));
    if !services.exists() {
        let per = n.div_ceil(confgen::SERVICES);
        let count = n / per;
        assert_eq!(count * per, n, "N must be a multiple of {}", confgen::SERVICES);
        confgen::kbgp_services(&services, count, per, 0);
    }
    let policy = env.path(&format!("kbgp-{tag}.yaml"));
    confgen::kbgp_node_policy(&policy, node_ip, peers, port);
    vec![policy, services]
}

/// kbgp from files, in `ns`, its metrics on 127.0.0.1:`port` there.
pub fn start_kbgp(env: &Env, ns: &str, tag: &str, files: &[PathBuf], metrics_port: u16) -> Daemon {
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut args = vec![env.kbgp.to_str().expect("utf8").to_string(), "run".into()];
    for f in files {
        args.push("--config".into());
        args.push(f.to_str().expect("utf8").into());
    }
    args.extend(["--admin-socket".into(), "none".into(), "--metrics-addr".into(), metrics.clone()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::spawn(Some(ns), &format!("kbgp ({tag})"), &a, &env.path(&format!("kbgp-{tag}.log")), &[])
}

/// Waits for kbgp's /readyz, then for its CPU to settle: the file is loaded and planned.
pub fn kbgp_loaded(env: &Env, d: &mut Daemon, ns: &str, metrics_port: u16) {
    let addr = format!("127.0.0.1:{metrics_port}");
    wait_until("kbgp /readyz", env.timeout, Duration::from_millis(100), |last| {
        d.check_alive();
        match common::http_get(ns, &addr, "/readyz") {
            Ok(b) if b.starts_with("ready") => Some(()),
            Ok(b) => {
                *last = b;
                None
            }
            Err(e) => {
                *last = e;
                None
            }
        }
    });
    wait_settled(d, Duration::from_secs(1), env.timeout);
}

/// A sender of N + 1 routes, started in `ns` at `local`, towards `neighbor`, and loaded (it
/// holds every route and its CPU has settled) when this returns. The receiver is not up yet.
pub fn start_sender(env: &Env, kind: Kind, ns: &str, n: usize, local: Ipv4Addr, neighbor: Ipv4Addr) -> Daemon {
    let dir = env.path(&format!("{}-{n}", kind.name()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("sender dir");
    match kind {
        Kind::Kbgp => {
            let files = kbgp_files(env, &format!("sender-{n}"), n, local, &[neighbor], 179);
            let mut d = start_kbgp(env, ns, &format!("sender-{n}"), &files, 9180);
            kbgp_loaded(env, &mut d, ns, 9180);
            d
        }
        Kind::Frr => {
            let conf = dir.join("bgpd.conf");
            confgen::frr_sender(&conf, n, local, neighbor, &dir.join("bgpd.log"));
            sh(&["chown", "-R", "frr:frr", dir.to_str().expect("utf8")]);
            let d = dir.to_str().expect("utf8");
            let mut daemon = Daemon::spawn(
                Some(ns),
                "frr bgpd",
                &[
                    BGPD,
                    "-u",
                    "frr",
                    "-g",
                    "frr",
                    "-Z",
                    "-f",
                    conf.to_str().expect("utf8"),
                    "-i",
                    &format!("{d}/bgpd.pid"),
                    "--vty_socket",
                    d,
                    "-P",
                    "0",
                ],
                &dir.join("bgpd.stdout"),
                &[],
            );
            wait_until("FRR to load its networks", env.timeout, Duration::from_millis(500), |last| {
                daemon.check_alive();
                let t = sh_lenient(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "vtysh",
                    "--vty_socket",
                    d,
                    "-c",
                    "show bgp ipv4 unicast summary json",
                ]);
                let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                let got = v.get("tableVersion").and_then(Value::as_u64).unwrap_or(0);
                *last = format!("tableVersion {got}");
                (got as usize > n).then_some(())
            });
            wait_settled(&mut daemon, Duration::from_secs(1), env.timeout);
            daemon
        }
        Kind::Bird => {
            let conf = dir.join("bird.conf");
            confgen::bird_sender(&conf, n, local, neighbor, 179, &dir.join("bird.log"));
            let ctl = dir.join("bird.ctl");
            let mut daemon = start_bird(ns, "bird (sender)", &conf, &ctl, &dir.join("bird.stdout"));
            let mut c = BirdCtl::connect(&ctl, env.timeout, &mut daemon);
            wait_until("BIRD to load its static routes", env.timeout, Duration::from_millis(200), |last| {
                daemon.check_alive();
                let got = c.imported("static1").unwrap_or(0);
                *last = format!("{got} static routes");
                (got as usize > n).then_some(())
            });
            wait_settled(&mut daemon, Duration::from_secs(1), env.timeout);
            daemon
        }
        Kind::Gobgp => {
            let conf = dir.join("gobgpd.toml");
            confgen::gobgp_sender(&conf, local, neighbor);
            let mrt = env.path(&format!("routes-{n}.mrt"));
            if !mrt.exists() {
                confgen::mrt(&mrt, n, local);
            }
            let target = format!("unix://{}/gobgp.sock", dir.display());
            let mut daemon = Daemon::spawn(
                Some(ns),
                "gobgpd",
                &[
                    "gobgpd",
                    "-f",
                    conf.to_str().expect("utf8"),
                    "-t",
                    "toml",
                    "--api-hosts",
                    &target,
                    "--pprof-disable",
                    "-p",
                    "-l",
                    "warn",
                ],
                &dir.join("gobgpd.log"),
                &[],
            );
            let gobgp = |args: &[&str]| {
                let mut a = vec!["ip", "netns", "exec", ns, "gobgp", "--target", &target];
                a.extend_from_slice(args);
                sh_lenient(&a)
            };
            wait_until("gobgpd API", env.timeout, Duration::from_millis(200), |last| {
                daemon.check_alive();
                *last = gobgp(&["global"]);
                last.contains("AS:").then_some(())
            });
            let count = |gobgp: &dyn Fn(&[&str]) -> String| -> usize {
                let t = gobgp(&["global", "rib", "summary", "-a", "ipv4"]);
                // "Table ipv4-unicast\nDestination: 100001, Path: 100001"
                t.split("Destination:")
                    .nth(1)
                    .and_then(|r| r.split(',').next())
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            // `gobgp mrt inject` can return before every route is in: check, and inject again.
            let mut tries = 0;
            loop {
                tries += 1;
                let out = gobgp(&["mrt", "inject", "global", mrt.to_str().expect("utf8")]);
                wait_settled(&mut daemon, Duration::from_secs(1), env.timeout);
                let got = count(&gobgp);
                if got > n {
                    break;
                }
                assert!(tries < 5, "gobgp mrt inject: {got} of {} routes after {tries} tries: {out}", n + 1);
                eprintln!("  gobgp mrt inject stopped at {got} of {} routes; injecting again", n + 1);
            }
            daemon
        }
    }
}

pub fn start_bird(ns: &str, name: &str, conf: &Path, ctl: &Path, log: &Path) -> Daemon {
    Daemon::spawn(
        Some(ns),
        name,
        &["bird", "-f", "-c", conf.to_str().expect("utf8"), "-s", ctl.to_str().expect("utf8")],
        log,
        &[("TZ", "UTC")],
    )
}

/// A connection to BIRD's control socket (a Unix socket: no namespace needed).
pub struct BirdCtl {
    r: BufReader<UnixStream>,
}

impl BirdCtl {
    pub fn connect(path: &Path, timeout: Duration, d: &mut Daemon) -> BirdCtl {
        let s = wait_until("BIRD's control socket", timeout, Duration::from_millis(50), |last| {
            d.check_alive();
            match UnixStream::connect(path) {
                Ok(s) => Some(s),
                Err(e) => {
                    *last = e.to_string();
                    None
                }
            }
        });
        s.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut c = BirdCtl { r: BufReader::new(s) };
        c.reply().expect("BIRD greeting");
        c
    }

    /// Reads one reply: lines until one whose 4-digit code is followed by a space.
    fn reply(&mut self) -> Result<String, String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).map_err(|e| format!("birdc read: {e}"))?;
            if n == 0 {
                return Err("BIRD closed its control socket".into());
            }
            text.push_str(&line);
            let b = line.as_bytes();
            if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ' {
                return Ok(text);
            }
        }
    }

    pub fn cmd(&mut self, c: &str) -> Result<String, String> {
        let s = self.r.get_mut();
        s.write_all(format!("{c}\n").as_bytes()).map_err(|e| format!("birdc write: {e}"))?;
        self.reply()
    }

    /// Routes protocol `proto` has in the table ("Routes: N imported").
    pub fn imported(&mut self, proto: &str) -> Result<u64, String> {
        let t = self.cmd(&format!("show protocols all {proto}"))?;
        Ok(t.lines()
            .find_map(|l| l.trim().strip_prefix("Routes:"))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }
}

/// The moment BIRD's log says the session came up, converted from its UTC wall-clock stamp
/// ("%F %T.%6f") to CLOCK_MONOTONIC nanoseconds.
pub fn bird_established_ns(log: &Path) -> Option<u64> {
    let text = fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("BGP session established") || l.contains("State changed to up"))?;
    let mut it = line.split_whitespace();
    let (date, time) = (it.next()?, it.next()?);
    let wall = parse_utc(date, time)?;
    let offset = realtime_ns() as i128 - now_ns() as i128;
    u64::try_from(wall as i128 - offset).ok()
}

/// "2026-11-01" "12:34:56.123456" (UTC) → nanoseconds since the epoch.
pub fn parse_utc(date: &str, time: &str) -> Option<u64> {
    let d: Vec<i64> = date.split('-').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    // Days from civil (H. Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + t[0] * 3600 + t[1] * 60 + t[2];
    let digits = frac.len().min(9);
    let ns_frac: i64 = frac[..digits].parse::<i64>().ok()? * 10i64.pow((9 - digits) as u32);
    u64::try_from(secs * 1_000_000_000 + ns_frac).ok()
}

/// kbgp-sink, listening on `addrs`, reporting the (n)th prefix of each session.
pub struct Sink {
    pub daemon: Daemon,
    out: PathBuf,
    pub prefix_log: Option<PathBuf>,
}

impl Sink {
    pub fn start(env: &Env, ns: &str, tag: &str, addrs: &[String], expect: usize, log_prefixes: bool) -> Sink {
        let out = env.path(&format!("sink-{tag}.jsonl"));
        let prefix_log = log_prefixes.then(|| env.path(&format!("sink-{tag}.prefixes")));
        let mut args = vec![env.sink.to_str().expect("utf8").to_string()];
        for a in addrs {
            args.push("--listen".into());
            args.push(a.clone());
        }
        args.extend(["--expect".into(), expect.to_string()]);
        if let Some(p) = &prefix_log {
            args.extend(["--log-prefixes".into(), p.to_str().expect("utf8").into()]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        // stdout is the event stream; stderr goes with it into the same file.
        let mut daemon = Daemon::spawn(Some(ns), &format!("kbgp-sink ({tag})"), &a, &out, &[]);
        wait_until("kbgp-sink to listen", env.timeout, Duration::from_millis(20), |_| {
            daemon.check_alive();
            read_events(&out).iter().any(|e| e["event"] == "listening").then_some(())
        });
        Sink { daemon, out, prefix_log }
    }

    pub fn events(&self) -> Vec<Value> {
        read_events(&self.out)
    }

    /// Waits for `count` sessions to report `event`; returns those events. Fails on a
    /// session that closes first.
    pub fn wait(&mut self, event: &str, count: usize, timeout: Duration, sender: &mut Daemon) -> Vec<Value> {
        wait_until(
            &format!("{count} kbgp-sink session(s) to report {event}"),
            timeout,
            Duration::from_millis(10),
            |last| {
                self.daemon.check_alive();
                sender.check_alive();
                let ev = self.events();
                // A connection closed before its OPEN is a sender giving up one attempt (it
                // tries again); an established session that closes is a failure.
                if let Some(c) = ev.iter().find(|e| e["event"] == "closed" && !e["established_ns"].is_null()) {
                    panic!("a session to kbgp-sink closed: {c}\n{} log:\n{}", sender.name, sender.tail());
                }
                let got: Vec<Value> = ev.into_iter().filter(|e| e["event"] == event).collect();
                *last = format!(
                    "{} of {count}; {}",
                    got.len(),
                    self.events().last().map(|e| e.to_string()).unwrap_or_else(|| "no events".into())
                );
                (got.len() >= count).then_some(got)
            },
        )
    }
}

fn read_events(path: &Path) -> Vec<Value> {
    let mut t = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut t);
    }
    t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Stats of a daemon, plus its name, as a JSON object.
pub fn stats_json(s: &ProcStats) -> Value {
    serde_json::json!({"cpu_s": s.cpu_s, "peak_rss_kb": s.hwm_kb, "rss_kb": s.rss_kb})
}
