//! Processes, network namespaces and /proc readings for the announce benchmark, with one
//! registry of everything started so that it is all removed at the end: on success, on a
//! panic (guards drop while unwinding) and on SIGINT/SIGTERM (a thread waits for them).

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pids and namespaces alive now, for the signal handler's cleanup.
struct Registry {
    pids: Vec<u32>,
    netns: Vec<String>,
    dir: Option<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { pids: Vec::new(), netns: Vec::new(), dir: None });

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Nanoseconds of CLOCK_MONOTONIC, the clock kbgp-sink stamps its events with.
pub fn now_ns() -> u64 {
    clock(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds of CLOCK_REALTIME (BIRD's log timestamps).
pub fn realtime_ns() -> u64 {
    clock(libc::CLOCK_REALTIME)
}

fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs a command to completion; panics with its output if it fails (the interop tests' own).
pub use super::common::sh;

/// Runs a command and returns its stdout whatever its status.
pub fn sh_lenient(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
        .unwrap_or_default()
}

/// Fails unless `bin` is installed: a missing daemon is a failure, never a skip.
pub fn require(bin: &str) {
    let found = if Path::new(bin).is_absolute() {
        Path::new(bin).exists()
    } else {
        Command::new("sh").args(["-c", &format!("command -v {bin}")]).output().is_ok_and(|o| o.status.success())
    };
    assert!(found, "{bin} is not installed (benches/run.sh installs frr, bird2 and gobgpd with apt)");
}

/// Polls `f` every `every` until it gives `Some`, or panics after `timeout` naming `what`
/// and the last state `f` reported through `last`.
pub fn wait_until<T>(what: &str, timeout: Duration, every: Duration, mut f: impl FnMut(&mut String) -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        if let Some(v) = f(&mut last) {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {timeout:?} waiting for {what} (last seen: {last})");
        std::thread::sleep(every);
    }
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        sh(&["ip", "netns", "add", name]);
        registry().netns.push(name.to_string());
        sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
        Netns { name: name.to_string() }
    }

    /// Joins `a` and `b` with a veth pair named eth0 on both sides, addresses `a_ip`/24 and
    /// `b_ip`/24.
    pub fn link(a: &Netns, a_ip: &str, b: &Netns, b_ip: &str) {
        let (va, vb) = (format!("{}-a", short(&a.name)), format!("{}-b", short(&b.name)));
        sh(&["ip", "link", "add", &va, "type", "veth", "peer", "name", &vb]);
        sh(&["ip", "link", "set", &va, "netns", &a.name]);
        sh(&["ip", "link", "set", &vb, "netns", &b.name]);
        for (ns, dev, ip) in [(&a.name, &va, a_ip), (&b.name, &vb, b_ip)] {
            sh(&["ip", "-n", ns, "link", "set", dev, "name", "eth0"]);
            sh(&["ip", "-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
    }
}

/// A short, unique interface name (at most 13 characters before the -a/-b suffix).
fn short(ns: &str) -> String {
    let tail: String = ns.chars().rev().take(11).collect::<Vec<_>>().into_iter().rev().collect();
    tail.trim_start_matches('-').to_string()
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
        registry().netns.retain(|n| n != &self.name);
    }
}

/// A daemon we started (in the foreground, so it is our child), killed on drop.
pub struct Daemon {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `args` inside namespace `ns` (or here with `None`), stdout and stderr to `log`.
    pub fn spawn(ns: Option<&str>, name: &str, args: &[&str], log: &Path, env: &[(&str, &str)]) -> Daemon {
        let out = fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = out.try_clone().expect("log file handle");
        let mut c = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).args(args);
                c
            }
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        c.stdin(Stdio::null()).stdout(out).stderr(err).env_remove("NODE_NAME").env_remove("KUBECONFIG");
        for (k, v) in env {
            c.env(k, v);
        }
        child_setup(&mut c);
        let child = c.spawn().unwrap_or_else(|e| panic!("cannot start {name} ({args:?}): {e}"));
        let pid = child.id();
        registry().pids.push(pid);
        Daemon { name: name.to_string(), pid, log: log.to_path_buf(), child: Some(child) }
    }

    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Panics with the end of its log if it has exited.
    pub fn check_alive(&mut self) {
        if !self.alive() {
            panic!(
                "{} (pid {}) exited; its log {} ends with:\n{}",
                self.name,
                self.pid,
                self.log.display(),
                self.tail()
            );
        }
    }

    pub fn tail(&self) -> String {
        let t = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn stats(&self) -> ProcStats {
        ProcStats::of(self.pid)
    }

    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            registry().pids.retain(|p| *p != self.pid);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// In the child before exec: die with us even if we are killed, and get back the signals that
/// [`install_signal_cleanup`] blocked (the mask is inherited).
fn child_setup(c: &mut Command) {
    // SAFETY: prctl and sigprocmask are async-signal-safe, the sigset is our own.
    unsafe {
        c.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// CPU and memory of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    /// utime + stime, seconds.
    pub cpu_s: f64,
    /// VmHWM: peak resident set, KiB.
    pub hwm_kb: u64,
    /// VmRSS: resident set now, KiB.
    pub rss_kb: u64,
}

impl ProcStats {
    pub fn of(pid: u32) -> ProcStats {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let cpu_s = (ticks(11) + ticks(12)) as f64 / tck;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        ProcStats { cpu_s, hwm_kb: kb("VmHWM:"), rss_kb: kb("VmRSS:") }
    }
}

/// Waits until the process's CPU time has not grown by more than 10 ms in `quiet`: it has
/// finished loading. Returns how long that took.
pub fn wait_settled(d: &mut Daemon, quiet: Duration, timeout: Duration) -> Duration {
    let start = Instant::now();
    let mut last = (Instant::now(), d.stats().cpu_s);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        d.check_alive();
        let cpu = d.stats().cpu_s;
        if cpu - last.1 > 0.010 {
            last = (Instant::now(), cpu);
        } else if last.0.elapsed() >= quiet {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "{} still busy after {timeout:?} ({cpu:.2} CPU s)", d.name);
    }
}

/// Runs a command to its end, measuring wall time and peak RSS (from wait4's rusage).
pub struct Measured {
    pub wall_s: f64,
    pub maxrss_kb: u64,
    pub cpu_s: f64,
    pub ok: bool,
    pub output: String,
}

/// Runs `args` to its end through a fresh copy of this program (see [`measure_child`]), so
/// that the peak RSS wait4 reports is the command's own and not inherited from this large
/// process (Linux carries the parent's high-water mark into a forked child's ru_maxrss).
pub fn run_measured(args: &[&str], out: &Path) -> Measured {
    let me = std::env::current_exe().expect("current exe");
    let mut c = Command::new(me);
    c.arg(MEASURE).arg(out).arg("--").args(args).stdin(Stdio::null());
    child_setup(&mut c);
    let o = c.output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let text = String::from_utf8_lossy(&o.stdout);
    let v: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    assert!(v.len() == 4, "measuring {args:?} failed: {text}{}", String::from_utf8_lossy(&o.stderr));
    let mut output = String::new();
    if let Ok(mut f) = fs::File::open(out) {
        let mut buf = vec![0u8; 4096];
        let n = f.read(&mut buf).unwrap_or(0);
        output = String::from_utf8_lossy(&buf[..n]).into_owned();
    }
    Measured { wall_s: v[0], cpu_s: v[1], maxrss_kb: v[2] as u64, ok: v[3] == 0.0, output }
}

/// The first argument that makes this program run [`measure_child`] instead of the bench.
pub const MEASURE: &str = "--measure-child";

/// `PROGRAM --measure-child OUT -- CMD ARGS...`: runs CMD with its output in OUT and prints
/// "wall_s cpu_s maxrss_kb exit_code" from wait4. Called first thing in main, while this
/// process is still small.
pub fn measure_child(args: &[String]) -> ! {
    let (out, cmd) = match args {
        [out, dash, cmd @ ..] if dash == "--" && !cmd.is_empty() => (out, cmd),
        _ => {
            eprintln!("usage: {MEASURE} OUT -- CMD ARGS...");
            std::process::exit(2)
        }
    };
    let f = fs::File::create(out).unwrap_or_else(|e| panic!("{out}: {e}"));
    let e = f.try_clone().expect("file handle");
    let start = Instant::now();
    let child = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(e)
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, with valid pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall_s = start.elapsed().as_secs_f64();
    assert_eq!(rc, pid, "wait4 {cmd:?}: {}", std::io::Error::last_os_error());
    drop(child); // reaped by wait4 above
    let t = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    println!("{wall_s} {} {} {code}", t(ru.ru_utime) + t(ru.ru_stime), ru.ru_maxrss);
    std::process::exit(0)
}

/// Remembers the work directory, to remove it in the signal handler.
pub fn set_dir(dir: &Path) {
    registry().dir = Some(dir.to_path_buf());
}

/// Kills every registered process and deletes every registered namespace.
pub fn cleanup_all(remove_dir: bool) {
    let mut r = registry();
    for pid in r.pids.drain(..) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    for ns in r.netns.drain(..) {
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    }
    if remove_dir && let Some(d) = r.dir.take() {
        let _ = fs::remove_dir_all(d);
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this (main) thread and every thread started after,
/// and starts a thread that cleans up and exits when one arrives.
pub fn install_signal_cleanup() {
    // SAFETY: plain signal-mask calls on a sigset we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let set_copy = set;
        std::thread::spawn(move || {
            let mut sig = 0;
            libc::sigwait(&set_copy, &mut sig);
            eprintln!("\nannounce bench: signal {sig}: stopping every daemon and removing the namespaces");
            cleanup_all(true);
            std::process::exit(130);
        });
    }
}
