//! The announce benchmark of issue 10: kbgp, FRR, BIRD and GoBGP announcing the same 100k and
//! 1M /32 into a counting sink (kbgp-sink) and into BIRD; 32 peers; Kubernetes churn; idle
//! RSS; the load time of the 1M-IP file. Every daemon is started by hand in network
//! namespaces, as the interop tests do, and driven only through its command line and files.
//!
//!   sudo cargo bench --bench announce -- [--only sink,bird,peers32,churn,idle,load]
//!        [--senders frr,bird,gobgp,kbgp] [--sizes 100000,1000000] [--windows 100,0] ...
//!
//! Run as root (benches/run.sh does everything). Prints markdown tables, each figure beside a
//! yardstick from the same run, and writes the raw results to target/bench/announce.json.
//! Any daemon missing, exiting, or a transfer not completing in time fails the run (non-zero
//! exit), after every daemon is stopped and every namespace removed.

#[path = "../proto-tests/common/mod.rs"]
#[allow(clippy::all)]
mod common;
#[path = "support/confgen.rs"]
mod confgen;
#[path = "support/daemons.rs"]
mod daemons;
#[path = "support/sys.rs"]
mod sys;

use clap::Parser;
use common::list_watch_server::ListWatchServer;
use daemons::{BirdCtl, Env, Kind, Sink, start_bird, start_sender};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use sys::{Netns, ProcStats, now_ns, wait_until};

const ALL: &str = "sink,bird,peers32,churn,idle,load";

#[derive(Parser, Debug)]
#[command(name = "announce", about = "kbgp's announce, memory and churn benchmark (issue 10); run as root")]
struct Opts {
    /// Scenarios to run: sink, bird, peers32, churn, idle, load.
    #[arg(long, value_delimiter = ',', default_value = ALL)]
    only: Vec<String>,
    /// Senders for the sink and bird scenarios: kbgp, frr, bird, gobgp.
    #[arg(long, value_delimiter = ',', default_value = "frr,bird,gobgp,kbgp")]
    senders: Vec<String>,
    /// Route counts (/32 LoadBalancer IPs, a multiple of 1000; the pod CIDR comes on top).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    sizes: Vec<usize>,
    /// Peers of the many-peers scenario.
    #[arg(long, default_value_t = 32)]
    peers: usize,
    /// Routes per peer in the many-peers scenario.
    #[arg(long, default_value_t = 100_000)]
    peers_routes: usize,
    /// Coalescing windows (ms) of the churn scenario.
    #[arg(long, value_delimiter = ',', default_value = "100,0")]
    windows: Vec<u64>,
    /// Service changes per second in the churn scenario.
    #[arg(long, default_value_t = 1000)]
    churn_rate: u64,
    /// Seconds of churn.
    #[arg(long, default_value_t = 30)]
    churn_seconds: u64,
    /// Services (one LoadBalancer IP each) in the churn scenario.
    #[arg(long, default_value_t = 2000)]
    churn_services: usize,
    /// Size of the file whose load time is measured (default: the largest of --sizes).
    #[arg(long)]
    load_size: Option<usize>,
    /// The kbgp binary (default: the one cargo built with this bench).
    #[arg(long)]
    kbgp: Option<PathBuf>,
    /// The kbgp-sink binary (default: the one cargo built with this bench).
    #[arg(long)]
    sink: Option<PathBuf>,
    /// Longest wait for one load or transfer, seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// How often BIRD is asked for its route count, ms (the resolution of BIRD's times).
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// A label for this run in the report (e.g. the kbgp commit measured).
    #[arg(long, default_value = "")]
    label: String,
    /// Where the raw results go (default: target/bench/announce.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Keep the work directory (configs, logs) in /tmp.
    #[arg(long)]
    keep: bool,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const TX: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const RX: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

fn secs(s: f64) -> String {
    match s {
        s if s < 0.001 => format!("{:.0} µs", s * 1e6),
        s if s < 0.1 => format!("{:.1} ms", s * 1e3),
        s if s < 1.0 => format!("{:.0} ms", s * 1e3),
        s => format!("{s:.2} s"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a / b < 0.1 => format!("{:.4}", a / b),
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().map(PathBuf::from).unwrap_or_else(|| "target".into())
}

struct Run<'a> {
    opts: &'a Opts,
    env: Env,
    id: u32,
    results: serde_json::Map<String, Value>,
    tables: Vec<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(sys::MEASURE) {
        sys::measure_child(&args[2..]);
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it: then only
    // the parts that need no root and no daemon are checked.
    if !args.iter().any(|a| a == "--bench") {
        smoke();
        return;
    }
    let opts = Opts::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("announce bench: run as root (it creates network namespaces): sudo bash benches/run.sh");
        std::process::exit(2);
    }
    for s in &opts.only {
        assert!(ALL.split(',').any(|a| a == s), "--only: unknown scenario {s} (one of {ALL})");
    }
    sys::install_signal_cleanup();
    let id = std::process::id();
    let dir = PathBuf::from(format!("/tmp/kb-bench-{id}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("work dir");
    sys::set_dir(&dir);
    let env = Env {
        dir: dir.clone(),
        kbgp: opts.kbgp.clone().unwrap_or_else(|| env!("CARGO_BIN_EXE_kbgp").into()),
        sink: opts.sink.clone().unwrap_or_else(|| env!("CARGO_BIN_EXE_kbgp-sink").into()),
        timeout: Duration::from_secs(opts.timeout),
        poll: Duration::from_millis(opts.poll_ms),
    };
    let mut run = Run { opts: &opts, env, id, results: serde_json::Map::new(), tables: Vec::new() };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.all()));
    sys::cleanup_all(false);
    let failed = outcome.is_err();
    if failed {
        run.results.insert("failed".into(), Value::Bool(true));
    }
    let doc = run.report();
    println!("{doc}");
    if failed {
        eprintln!(
            "\nannounce bench FAILED (the reason is above; the tables above are the scenarios that completed); every \
             daemon was stopped and every namespace removed; configs and logs are kept in {}",
            dir.display()
        );
        std::process::exit(1);
    }
    if !opts.keep {
        let _ = fs::remove_dir_all(&dir);
    }
}

impl Run<'_> {
    fn has(&self, s: &str) -> bool {
        self.opts.only.iter().any(|o| o == s)
    }

    fn ns(&self, tag: &str) -> Netns {
        Netns::new(&format!("kb-bench-{}-{tag}", self.id))
    }

    fn senders(&self) -> Vec<Kind> {
        let k: Vec<Kind> = self.opts.senders.iter().map(|s| Kind::parse(s)).collect();
        k.iter().for_each(|k| k.require());
        k
    }

    fn all(&mut self) {
        sys::require("ip");
        let started = Instant::now();
        if self.has("sink") {
            self.transfers("sink");
        }
        if self.has("bird") {
            sys::require("bird");
            self.transfers("bird");
        }
        if self.has("peers32") {
            self.peers();
        }
        if self.has("churn") {
            self.churn_all();
        }
        if self.has("idle") {
            sys::require("bird");
            self.idle();
        }
        if self.has("load") {
            sys::require("bird");
            self.load();
        }
        eprintln!("announce bench: done in {:.0} s", started.elapsed().as_secs_f64());
    }

    fn progress(&self, what: &str) {
        eprintln!("announce bench: {what}");
    }

    // ---- senders into the sink or into BIRD ----

    fn transfers(&mut self, receiver: &str) {
        let kinds = self.senders();
        let (tx, rx) = (self.ns(&format!("{receiver}-tx")), self.ns(&format!("{receiver}-rx")));
        Netns::link(&tx, &TX.to_string(), &rx, &RX.to_string());
        let mut rows = Vec::new();
        for &n in &self.opts.sizes {
            for &k in &kinds {
                self.progress(&format!("{} → {receiver}, {n} routes", k.name()));
                let r = if receiver == "sink" { self.to_sink(&tx, &rx, k, n) } else { self.to_bird(&tx, &rx, k, n) };
                eprintln!("  {r}");
                rows.push(r);
            }
        }
        self.results.insert(receiver.into(), Value::Array(rows.clone()));
        let title = if receiver == "sink" {
            "Senders into the counting sink (kbgp-sink)"
        } else {
            "Senders into BIRD (receiver: BIRD 2, one iBGP session)"
        };
        let mut t = format!(
            "### {title}\n\nTime from Established to the receiver holding all N + 1 routes; sender's CPU seconds in that \
             time, peak RSS (VmHWM, includes loading) and RSS after. Ratios: time to FRR's, peak RSS to BIRD-as-sender's, \
             same N, same run.\n\n\
             | sender | N | Established → all |{} CPU s | peak RSS | RSS after | time / FRR | peak RSS / BIRD |\n|---|---|---|{}---|---|---|---|---|\n",
            if receiver == "bird" { " 99% |" } else { "" },
            if receiver == "bird" { "---|" } else { "" },
        );
        for r in &rows {
            let n = r["n"].as_u64();
            let same = |k: &str| rows.iter().find(|x| x["sender"] == k && x["n"].as_u64() == n);
            let frr = same("frr").and_then(|x| f(x, "established_to_all_s"));
            let bird = same("bird").and_then(|x| f(&x["sender_stats"], "peak_rss_kb"));
            let _ = writeln!(
                t,
                "| {} | {} | {} |{} {:.2} | {} | {} | {} | {} |",
                r["sender"].as_str().unwrap_or(""),
                n.unwrap_or(0),
                secs(f(r, "established_to_all_s").unwrap_or(0.0)),
                if receiver == "bird" {
                    format!(" {} |", secs(f(r, "established_to_99pct_s").unwrap_or(0.0)))
                } else {
                    String::new()
                },
                f(&r["sender_stats"], "cpu_s").unwrap_or(0.0),
                mib(r["sender_stats"]["peak_rss_kb"].as_u64().unwrap_or(0)),
                mib(r["sender_stats"]["rss_kb"].as_u64().unwrap_or(0)),
                ratio(f(r, "established_to_all_s"), frr),
                ratio(f(&r["sender_stats"], "peak_rss_kb"), bird),
            );
        }
        if receiver == "sink" {
            let _ = writeln!(t, "\nThe sink's own CPU per transfer: {}.", self.sink_cpu(&rows));
        } else {
            let _ = writeln!(
                t,
                "\nBIRD's route count is polled every {} ms over its control socket, so \"all\" and \"99%\" are up to that late; \
                 Established is BIRD's log timestamp.",
                self.opts.poll_ms
            );
        }
        self.tables.push(t);
    }

    fn sink_cpu(&self, rows: &[Value]) -> String {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {}: {:.2} s",
                    r["sender"].as_str().unwrap_or(""),
                    r["n"],
                    f(&r["receiver_stats"], "cpu_s").unwrap_or(0.0)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn to_sink(&self, tx: &Netns, rx: &Netns, k: Kind, n: usize) -> Value {
        let env = &self.env;
        let mut sender = start_sender(env, k, &tx.name, n, TX, RX);
        let before = sender.stats();
        let mut sink = Sink::start(env, &rx.name, &format!("{}-{n}", k.name()), &[format!("{RX}:179")], n + 1, false);
        let ev = sink.wait("expect", 1, env.timeout, &mut sender);
        let after = sender.stats();
        let sink_stats = sink.daemon.stats();
        let e = &ev[0];
        let (est, done) = (e["established_ns"].as_u64().unwrap_or(0), e["expect_ns"].as_u64().unwrap_or(0));
        sink.daemon.stop();
        sender.stop();
        json!({
            "sender": k.name(), "receiver": "kbgp-sink", "n": n, "routes": n + 1,
            "established_to_all_s": (done - est) as f64 / 1e9,
            "sender_stats": delta(&before, &after),
            "receiver_stats": daemons::stats_json(&sink_stats),
            "updates": e["updates"], "bytes": e["bytes"],
        })
    }

    fn to_bird(&self, tx: &Netns, rx: &Netns, k: Kind, n: usize) -> Value {
        let env = &self.env;
        let mut sender = start_sender(env, k, &tx.name, n, TX, RX);
        let before = sender.stats();
        let dir = env.path(&format!("bird-rx-{}-{n}", k.name()));
        fs::create_dir_all(&dir).expect("bird dir");
        let (conf, ctl, log) = (dir.join("bird.conf"), dir.join("bird.ctl"), dir.join("bird.log"));
        confgen::bird_receiver(&conf, RX, TX, &log);
        let mut bird = start_bird(&rx.name, "bird (receiver)", &conf, &ctl, &dir.join("bird.stdout"));
        let mut c = BirdCtl::connect(&ctl, env.timeout, &mut bird);
        let want = n as u64 + 1;
        let want99 = (want * 99).div_ceil(100);
        let mut t99 = None;
        let done =
            wait_until(&format!("BIRD to hold {want} routes from {}", k.name()), env.timeout, env.poll, |last| {
                sender.check_alive();
                bird.check_alive();
                let got = c.imported("peer1").unwrap_or_else(|e| panic!("birdc: {e}"));
                let t = now_ns();
                *last = format!("{got} routes");
                if got >= want99 && t99.is_none() {
                    t99 = Some(t);
                }
                (got >= want).then_some(t)
            });
        let after = sender.stats();
        let rx_stats = bird.stats();
        let est = daemons::bird_established_ns(&log)
            .unwrap_or_else(|| panic!("BIRD's log {} has no 'session established' line", log.display()));
        bird.stop();
        sender.stop();
        json!({
            "sender": k.name(), "receiver": "bird", "n": n, "routes": want,
            "established_to_all_s": done.saturating_sub(est) as f64 / 1e9,
            "established_to_99pct_s": t99.unwrap_or(done).saturating_sub(est) as f64 / 1e9,
            "poll_ms": self.opts.poll_ms,
            "sender_stats": delta(&before, &after),
            "receiver_stats": daemons::stats_json(&rx_stats),
        })
    }

    // ---- 32 peers ----

    fn peers(&mut self) {
        let n = self.opts.peers_routes;
        let ns = self.ns("peers");
        let mut rows = Vec::new();
        for peers in [1, self.opts.peers] {
            self.progress(&format!("kbgp → {peers} sink sessions, {n} routes each"));
            let addrs: Vec<Ipv4Addr> = (1..=peers as u8).map(|i| Ipv4Addr::new(127, 0, 1, i)).collect();
            let tag = format!("peers{peers}");
            let files = daemons::kbgp_files(&self.env, &tag, n, Ipv4Addr::LOCALHOST, &addrs, 179);
            let mut k = daemons::start_kbgp(&self.env, &ns.name, &tag, &files, 9180);
            daemons::kbgp_loaded(&self.env, &mut k, &ns.name, 9180);
            let before = k.stats();
            let listen: Vec<String> = addrs.iter().map(|a| format!("{a}:179")).collect();
            let mut sink = Sink::start(&self.env, &ns.name, &tag, &listen, n + 1, false);
            let ev = sink.wait("expect", peers, self.env.timeout, &mut k);
            let after = k.stats();
            let first = ev.iter().filter_map(|e| e["established_ns"].as_u64()).min().unwrap_or(0);
            let last = ev.iter().filter_map(|e| e["expect_ns"].as_u64()).max().unwrap_or(0);
            let slowest = ev
                .iter()
                .filter_map(|e| Some(e["expect_ns"].as_u64()? - e["established_ns"].as_u64()?))
                .max()
                .unwrap_or(0);
            let r = json!({
                "peers": peers, "n": n, "routes_each": n + 1,
                "first_established_to_last_done_s": (last - first) as f64 / 1e9,
                "slowest_session_established_to_all_s": slowest as f64 / 1e9,
                "kbgp_stats": delta(&before, &after),
            });
            eprintln!("  {r}");
            rows.push(r);
            sink.daemon.stop();
            k.stop();
        }
        let one = f(&rows[0]["kbgp_stats"], "peak_rss_kb");
        let mut t = format!(
            "### kbgp, one peer and {} peers ({n} routes each, into kbgp-sink on loopback addresses)\n\n\
             | peers | slowest session: Established → all | first Established → last peer has all | kbgp CPU s | peak RSS | RSS after | peak RSS / 1 peer |\n|---|---|---|---|---|---|---|\n",
            self.opts.peers
        );
        for r in &rows {
            let _ = writeln!(
                t,
                "| {} | {} | {} | {:.2} | {} | {} | {} |",
                r["peers"],
                secs(f(r, "slowest_session_established_to_all_s").unwrap_or(0.0)),
                secs(f(r, "first_established_to_last_done_s").unwrap_or(0.0)),
                f(&r["kbgp_stats"], "cpu_s").unwrap_or(0.0),
                mib(r["kbgp_stats"]["peak_rss_kb"].as_u64().unwrap_or(0)),
                mib(r["kbgp_stats"]["rss_kb"].as_u64().unwrap_or(0)),
                ratio(f(&r["kbgp_stats"], "peak_rss_kb"), one),
            );
        }
        self.results.insert("peers".into(), Value::Array(rows));
        self.tables.push(t);
    }

    // ---- idle ----

    fn idle(&mut self) {
        self.progress("idle RSS: kbgp and BIRD, one peer, 3 Services (+ pod CIDR)");
        let env = &self.env;
        let ns = self.ns("idle");
        let n = 3;
        let mut sink =
            Sink::start(env, &ns.name, "idle", &["127.0.1.1:1179".into(), "127.0.1.2:1179".into()], n + 1, false);
        let policy = env.path("kbgp-idle.yaml");
        confgen::kbgp_node_policy(&policy, Ipv4Addr::LOCALHOST, &[Ipv4Addr::new(127, 0, 1, 1)], 1179);
        let services = env.path("kbgp-services-idle.yaml");
        confgen::kbgp_services(&services, n, 1, 0);
        let mut k = daemons::start_kbgp(env, &ns.name, "idle", &[policy, services], 9180);
        let dir = env.path("bird-idle");
        fs::create_dir_all(&dir).expect("bird dir");
        let conf = dir.join("bird.conf");
        confgen::bird_sender(&conf, n, Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 1, 2), 1179, &dir.join("bird.log"));
        let mut b = start_bird(&ns.name, "bird (idle)", &conf, &dir.join("bird.ctl"), &dir.join("bird.stdout"));
        sink.wait("expect", 2, env.timeout, &mut k);
        b.check_alive();
        // Settle: the sessions are up and every route is sent; let allocators return memory.
        std::thread::sleep(Duration::from_secs(5));
        let (ks, bs, ss) = (k.stats(), b.stats(), sink.daemon.stats());
        let r = json!({
            "kbgp": daemons::stats_json(&ks), "bird": daemons::stats_json(&bs), "sink": daemons::stats_json(&ss),
            "settle_s": 5,
        });
        eprintln!("  {r}");
        let mut t = "### Idle: one peer, 3 Services and the pod CIDR, 5 s after the routes are sent\n\n\
                     | daemon | RSS | peak RSS | RSS / BIRD's |\n|---|---|---|---|\n"
            .to_string();
        for (name, s) in [("kbgp", &ks), ("BIRD 2 (same routes, one BGP peer)", &bs), ("kbgp-sink (2 sessions)", &ss)] {
            let _ = writeln!(
                t,
                "| {name} | {} | {} | {} |",
                mib(s.rss_kb),
                mib(s.hwm_kb),
                ratio(Some(s.rss_kb as f64), Some(bs.rss_kb as f64))
            );
        }
        self.results.insert("idle".into(), r);
        self.tables.push(t);
    }

    // ---- load time ----

    fn load(&mut self) {
        let n = self.opts.load_size.unwrap_or_else(|| self.opts.sizes.iter().copied().max().unwrap_or(1_000_000));
        self.progress(&format!("load time of the {n}-IP file: kbgp check vs bird -p"));
        let env = &self.env;
        let files = daemons::kbgp_files(env, "load", n, TX, &[RX], 179);
        let bird_conf = env.path(&format!("bird-load-{n}.conf"));
        confgen::bird_sender(&bird_conf, n, TX, RX, 179, &env.path("bird-load.log"));
        let mut args = vec![env.kbgp.to_str().expect("utf8"), "check"];
        args.extend(files.iter().map(|p| p.to_str().expect("utf8")));
        let k = sys::run_measured(&args, &env.path("kbgp-check.out"));
        assert!(k.ok, "kbgp check failed on the generated file: {}", k.output);
        let b = sys::run_measured(&["bird", "-p", "-c", bird_conf.to_str().expect("utf8")], &env.path("bird-p.out"));
        assert!(b.ok, "bird -p failed on the generated config: {}", b.output);
        let size = |p: &PathBuf| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let kbytes: u64 = files.iter().map(size).sum();
        let out_bytes = size(&env.path("kbgp-check.out"));
        let r = json!({
            "n": n,
            "kbgp_check": {"wall_s": k.wall_s, "cpu_s": k.cpu_s, "peak_rss_kb": k.maxrss_kb, "file_bytes": kbytes, "output_bytes": out_bytes},
            "bird_parse": {"wall_s": b.wall_s, "cpu_s": b.cpu_s, "peak_rss_kb": b.maxrss_kb, "file_bytes": size(&bird_conf)},
        });
        eprintln!("  {r}");
        let mut t = format!(
            "### Loading the {n}-IP file\n\n| what | wall | CPU s | peak RSS | file | wall / BIRD's |\n|---|---|---|---|---|---|\n"
        );
        for (name, m, bytes) in [
            ("`kbgp check` (1000 Services, Node, policy)", &k, kbytes),
            ("`bird -p -c` (the same routes as static routes)", &b, size(&bird_conf)),
        ] {
            let _ = writeln!(
                t,
                "| {name} | {} | {:.2} | {} | {:.1} MB | {} |",
                secs(m.wall_s),
                m.cpu_s,
                mib(m.maxrss_kb),
                bytes as f64 / 1e6,
                ratio(Some(m.wall_s), Some(b.wall_s))
            );
        }
        self.results.insert("load".into(), r);
        self.tables.push(t);
    }

    // ---- churn ----

    fn churn_all(&mut self) {
        let mut rows = Vec::new();
        for &w in &self.opts.windows.clone() {
            self.progress(&format!(
                "churn: {} changes/s for {} s over {} Services, coalescing window {w} ms",
                self.opts.churn_rate, self.opts.churn_seconds, self.opts.churn_services
            ));
            let r = self.churn(w);
            eprintln!("  {r}");
            rows.push(r);
        }
        let mut t = format!(
            "### Churn: {} Service changes per second for {} s ({} Services; each change adds or removes an ingress IP)\n\n\
             Latency from the change being applied on the list/watch server to the UPDATE at kbgp-sink.\n\n\
             | window | changes sent | seen at the sink | missing | p50 | p99 | max | target p99 | p99 / target | kbgp CPU s |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
            self.opts.churn_rate, self.opts.churn_seconds, self.opts.churn_services
        );
        for r in &rows {
            let ms = |k: &str| f(r, k).map_or("–".into(), |v| format!("{v:.1} ms"));
            let _ = writeln!(
                t,
                "| {} ms | {} ({:.0}/s) | {} | {} | {} | {} | {} | {} | {} | {:.2} |",
                r["window_ms"],
                r["sent"],
                f(r, "achieved_rate").unwrap_or(0.0),
                r["seen"],
                r["missing"],
                ms("p50_ms"),
                ms("p99_ms"),
                ms("max_ms"),
                ms("target_p99_ms"),
                ratio(f(r, "p99_ms"), f(r, "target_p99_ms")),
                f(&r["kbgp_stats"], "cpu_s").unwrap_or(0.0),
            );
        }
        self.results.insert("churn".into(), Value::Array(rows));
        self.tables.push(t);
    }

    fn churn(&self, window: u64) -> Value {
        const NODES: &str = "api/v1/nodes";
        const SERVICES: &str = "api/v1/services";
        let env = &self.env;
        let services = self.opts.churn_services;
        let ns = self.ns(&format!("churn{window}"));
        let server = ListWatchServer::start(&ns.name);
        server.set_missing("apis/kbgp.io/v1alpha1/bgppeeringpolicies");
        server.set_missing("apis/kbgp.io/v1alpha1/loadbalancerippools");
        server.apply(
            NODES,
            "{apiVersion: v1, kind: Node, metadata: {name: bench-node, uid: 0f0e0d0c-0b0a-4908-8706-050403020100, labels: {bench: \"true\"}},
              spec: {podCIDR: 10.244.0.0/24, podCIDRs: [10.244.0.0/24]}, status: {addresses: [{type: InternalIP, address: 127.0.0.1}]}}",
        );
        server.apply(
            "apis/cilium.io/v2alpha1/ciliumbgppeeringpolicies",
            &format!(
                r#"{{apiVersion: cilium.io/v2alpha1, kind: CiliumBGPPeeringPolicy, metadata: {{name: bench}},
                   spec: {{nodeSelector: {{matchLabels: {{bench: "true"}}}},
                          virtualRouters: [{{localASN: {asn}, exportPodCIDR: true,
                                             serviceSelector: {{matchLabels: {{advertise-bgp: "true"}}}},
                                             neighbors: [{{peerAddress: "127.0.1.1/32", peerASN: {asn}, connectRetryTimeSeconds: 5}}]}}]}}}}"#,
                asn = confgen::ASN
            ),
        );
        let svc = |s: usize, extra: bool| {
            let mut ips = format!("{{\"ip\": \"{}\"}}", confgen::ip(s));
            if extra {
                let _ = write!(ips, ", {{\"ip\": \"{}\"}}", confgen::ip(services + s));
            }
            format!(
                "{{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {{\"name\": \"svc-{s:05}\", \"namespace\": \"bench\", \
                 \"labels\": {{\"advertise-bgp\": \"true\"}}}}, \"spec\": {{\"type\": \"LoadBalancer\", \"ports\": [{{\"port\": 80}}]}}, \
                 \"status\": {{\"loadBalancer\": {{\"ingress\": [{ips}]}}}}}}"
            )
        };
        let tag = format!("churn{window}");
        let mut sink = Sink::start(env, &ns.name, &tag, &["127.0.1.1:179".into()], services + 1, true);
        let kc = env.path(&format!("kubeconfig-{tag}"));
        fs::write(&kc, server.kubeconfig()).expect("kubeconfig");
        let w = window.to_string();
        let mut k = sys::Daemon::spawn(
            Some(&ns.name),
            &format!("kbgp ({tag})"),
            &[
                env.kbgp.to_str().expect("utf8"),
                "run",
                "--kubernetes",
                "--node",
                "bench-node",
                "--coalesce-window-ms",
                &w,
                "--admin-socket",
                "none",
                "--metrics-addr",
                "127.0.0.1:9181",
            ],
            &env.path(&format!("kbgp-{tag}.log")),
            &[("KUBECONFIG", kc.to_str().expect("utf8"))],
        );
        // The Services come as watch events once kbgp is up: the test server's list honours
        // `limit=500` without a `continue` token, so a first list would see only 500 of them.
        sink.wait("established", 1, env.timeout, &mut k);
        for s in 0..services {
            server.apply(SERVICES, &svc(s, false));
        }
        sink.wait("expect", 1, env.timeout, &mut k);
        std::thread::sleep(Duration::from_secs(2));
        let before = k.stats();
        let rate = self.opts.churn_rate.max(1);
        let total = rate * self.opts.churn_seconds;
        let period = 1_000_000_000 / rate;
        let t0 = now_ns() + 10_000_000;
        let mut changes: Vec<(u64, Ipv4Addr, bool)> = Vec::with_capacity(total as usize);
        for i in 0..total {
            let at = t0 + i * period;
            let now = now_ns();
            if at > now {
                std::thread::sleep(Duration::from_nanos(at - now));
            }
            let s = (i as usize) % services;
            let add = (i as usize / services).is_multiple_of(2);
            let text = svc(s, add);
            let t = now_ns();
            server.apply(SERVICES, &text);
            changes.push((t, confgen::ip(services + s), add));
        }
        let t_end = now_ns();
        // Let the last changes arrive: until the prefix log is quiet for 1 s plus the window.
        let log = sink.prefix_log.clone().expect("prefix log");
        let quiet = Duration::from_millis(1000 + window);
        let mut last = (Instant::now(), 0u64);
        wait_until("the churn to end at the sink", env.timeout, Duration::from_millis(100), |_| {
            k.check_alive();
            let len = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
            if len != last.1 {
                last = (Instant::now(), len);
            }
            (last.0.elapsed() >= quiet).then_some(())
        });
        let after = k.stats();
        let seen = parse_prefix_log(&log);
        let (lat, missing, extra) = match_changes(&changes, &seen);
        sink.daemon.stop();
        k.stop();
        let mut sorted = lat.clone();
        sorted.sort_by(f64::total_cmp);
        let pct = |p: f64| -> Option<f64> {
            if sorted.is_empty() {
                return None;
            }
            let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
            Some(sorted[i])
        };
        json!({
            "window_ms": window, "services": services, "rate": rate, "seconds": self.opts.churn_seconds,
            "sent": changes.len(), "achieved_rate": changes.len() as f64 / ((t_end - t0) as f64 / 1e9),
            "seen": lat.len(), "missing": missing, "unexpected_updates": extra,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": sorted.last(),
            "mean_ms": if lat.is_empty() { None } else { Some(lat.iter().sum::<f64>() / lat.len() as f64) },
            "target_p99_ms": if window == 0 { 5.0 } else { window as f64 + 5.0 },
            "kbgp_stats": delta(&before, &after),
        })
    }

    // ---- the report ----

    fn report(&mut self) -> String {
        let date = sys::sh_lenient(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]).trim().to_string();
        let kernel = sys::sh_lenient(&["uname", "-r"]).trim().to_string();
        // SAFETY: sysconf has no preconditions.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let mut versions = serde_json::Map::new();
        for k in [Kind::Kbgp, Kind::Frr, Kind::Bird, Kind::Gobgp] {
            versions.insert(k.name().into(), Value::String(k.version(&self.env)));
        }
        let mut doc = format!(
            "## announce bench: {date}{}\n\nMachine: {cpus} CPUs, Linux {kernel}. {}\n\n",
            if self.opts.label.is_empty() { String::new() } else { format!(", {}", self.opts.label) },
            versions.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join("; ")
        );
        for t in &self.tables {
            doc.push_str(t);
            doc.push('\n');
        }
        let mut all = json!({
            "date": date, "label": self.opts.label, "cpus": cpus, "kernel": kernel, "versions": versions,
            "options": format!("{:?}", self.opts),
        });
        all.as_object_mut().expect("object").extend(self.results.clone());
        let path = self.opts.json.clone().unwrap_or_else(|| target_dir().join("bench").join("announce.json"));
        if let Some(d) = path.parent() {
            let _ = fs::create_dir_all(d);
        }
        fs::write(&path, serde_json::to_string_pretty(&all).expect("json"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let md = path.with_extension("md");
        let _ = fs::write(&md, &doc);
        doc.push_str(&format!("Raw results: {} (and this text: {})\n", path.display(), md.display()));
        doc
    }
}

/// CPU used between two readings, and the memory at the second.
fn delta(before: &ProcStats, after: &ProcStats) -> Value {
    json!({"cpu_s": after.cpu_s - before.cpu_s, "peak_rss_kb": after.hwm_kb, "rss_kb": after.rss_kb})
}

/// The sink's prefix log: prefix → [(time, announced)].
fn parse_prefix_log(path: &std::path::Path) -> HashMap<Ipv4Addr, Vec<(u64, bool)>> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut m: HashMap<Ipv4Addr, Vec<(u64, bool)>> = HashMap::new();
    for l in text.lines() {
        let mut it = l.split(' ');
        let (Some(t), Some(kind), Some(p)) = (it.next(), it.next(), it.next()) else { continue };
        let (Ok(t), Some(Ok(a))) = (t.parse::<u64>(), p.strip_suffix("/32").map(str::parse::<Ipv4Addr>)) else {
            continue;
        };
        m.entry(a).or_default().push((t, kind == "a"));
    }
    m
}

/// Matches each change to the first UPDATE of the same kind for its prefix at the sink that
/// came after it and before the next change of the same kind to that prefix. Returns the
/// latencies (ms), the changes never seen, and the UPDATEs no change explains.
fn match_changes(
    changes: &[(u64, Ipv4Addr, bool)],
    seen: &HashMap<Ipv4Addr, Vec<(u64, bool)>>,
) -> (Vec<f64>, usize, usize) {
    let mut by: HashMap<Ipv4Addr, Vec<(u64, bool)>> = HashMap::new();
    for &(t, p, add) in changes {
        by.entry(p).or_default().push((t, add));
    }
    let (mut lat, mut missing, mut used_total) = (Vec::new(), 0, 0);
    for (p, list) in &by {
        let events = seen.get(p).map(Vec::as_slice).unwrap_or(&[]);
        let mut used = vec![false; events.len()];
        for (i, &(t, add)) in list.iter().enumerate() {
            let next_same = list[i + 1..].iter().find(|c| c.1 == add).map_or(u64::MAX, |c| c.0);
            let hit = events.iter().enumerate().find(|(j, e)| !used[*j] && e.1 == add && e.0 >= t && e.0 < next_same);
            match hit {
                Some((j, e)) => {
                    used[j] = true;
                    used_total += 1;
                    lat.push((e.0 - t) as f64 / 1e6);
                }
                None => missing += 1,
            }
        }
    }
    let events: usize = by.keys().map(|p| seen.get(p).map_or(0, Vec::len)).sum();
    (lat, missing, events - used_total)
}

/// What `cargo test --all-targets` checks: the generated kbgp files pass `kbgp check`, the MRT
/// file frames, BIRD's log stamps convert, and changes match the UPDATEs that answer them.
fn smoke() {
    let dir = std::env::temp_dir().join(format!("kb-bench-smoke-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("smoke dir");
    let (policy, services) = (dir.join("policy.yaml"), dir.join("services.yaml"));
    confgen::kbgp_node_policy(&policy, TX, &[RX], 179);
    confgen::kbgp_services(&services, 10, 3, 0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kbgp"))
        .arg("check")
        .args([&policy, &services])
        .output()
        .expect("run kbgp check");
    assert!(out.status.success(), "kbgp check rejects the generated file: {}", String::from_utf8_lossy(&out.stdout));
    let mrt = dir.join("r.mrt");
    confgen::mrt(&mrt, 100, TX);
    let b = fs::read(&mrt).expect("mrt");
    let (mut at, mut records) = (0, 0);
    while at + 12 <= b.len() {
        at += 12 + u32::from_be_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]) as usize;
        records += 1;
    }
    assert_eq!((at, records), (b.len(), 1 + 101 + 10_000), "MRT records");
    assert!(daemons::parse_utc("1970-01-02", "00:00:01.5").is_some_and(|t| t == 86_401_500_000_000));
    let p: Ipv4Addr = "100.64.0.1".parse().expect("ip");
    let changes = [(10, p, true), (20, p, false), (30, p, true)];
    let seen = HashMap::from([(p, vec![(15, true), (26, false)])]);
    let (lat, missing, extra) = match_changes(&changes, &seen);
    assert_eq!((lat.len(), missing, extra), (2, 1, 0));
    let _ = fs::remove_dir_all(&dir);
    println!("announce bench: generators and matching check out (run benches/run.sh as root to measure)");
}
