//! Test plumbing: network namespaces joined by a veth pair, processes started inside them and
//! stopped on drop, kbgp's config and metrics, and polling with a deadline.
//!
//! Each lab gets a unique id, so tests run in parallel without sharing names or addresses:
//! namespaces `kbgp-<id>` (kbgp) and `peer-<id>` (the daemon under test), IPv4 10.<a>.<b>.0/24
//! and IPv6 fd77:<id>::/64, the peer at .1 / ::1 and kbgp at .2 / ::2.

#![allow(dead_code)]

pub mod bird;
pub mod exabgp;
pub mod frr;
pub mod gobgp;
pub mod list_watch_server;
pub mod peer;

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command, failing the test with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and returns its stdout, whatever its status.
pub fn sh_lenient(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Copies a directory tree (a lab, before a test edits it).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Fails the test unless `bin` is installed: a missing daemon is a failure, never a skip.
pub fn require(bin: &str) {
    let found = Path::new(bin).is_absolute() && Path::new(bin).exists()
        || Command::new("sh").args(["-c", &format!("command -v {bin}")]).output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{bin} is not installed: install it (apt-get install frr bird2 gobgpd exabgp) — interop tests never skip"
    );
}

/// Polls `f` every 200 ms until it returns `Ok`, or fails the test after `timeout` with the
/// last `Err` as the explanation.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let end = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= end => panic!("timed out after {timeout:?} waiting for {what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A process that is killed (SIGKILL to its process group is not needed: every daemon here
/// runs as one process) when dropped.
pub struct Proc {
    pub name: String,
    pub pid: u32,
    child: Option<Child>,
}

impl Proc {
    pub fn signal(&self, sig: &str) {
        sh(&["kill", &format!("-{sig}"), &self.pid.to_string()]);
    }

    pub fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
            && !fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default().contains(") Z ")
    }

    /// Waits for the process to exit by itself; returns its exit status if it was our child.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(c) = &mut self.child {
                if let Ok(Some(st)) = c.try_wait() {
                    return Some(st);
                }
            } else if !self.alive() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} (pid {}) did not exit within {timeout:?}", self.name, self.pid);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.pid.to_string()]).output();
        let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).output();
        if let Some(c) = &mut self.child {
            let _ = c.wait();
        }
    }
}

/// Starts `cmd` inside namespace `ns`, output to `log`.
pub fn spawn_in(ns: &str, name: &str, cmd: &[&str], log: &Path, env: &[(&str, &str)]) -> Proc {
    let out = fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let err = out.try_clone().expect("log file handle");
    let mut c = Command::new("ip");
    // kbgp reads $NODE_NAME; the tests name nodes in their files only.
    c.args(["netns", "exec", ns]).args(cmd).stdin(Stdio::null()).stdout(out).stderr(err).env_remove("NODE_NAME");
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Proc { name: name.into(), pid: child.id(), child: Some(child) }
}

/// Adopts a daemon that wrote its pid to `pidfile`.
pub fn adopt(name: &str, pidfile: &Path) -> Proc {
    let pid = wait_for(&format!("{name} pid file"), Duration::from_secs(10), || {
        fs::read_to_string(pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .ok_or_else(|| "no pid yet".to_string())
    });
    Proc { name: name.into(), pid, child: None }
}

/// Two namespaces joined by a veth pair, removed on drop (after every process in `procs`).
pub struct Lab {
    pub id: u32,
    pub dir: PathBuf,
    pub kbgp_ns: String,
    pub peer_ns: String,
    pub peer_v4: Ipv4Addr,
    pub kbgp_v4: Ipv4Addr,
    pub peer_v6: Ipv6Addr,
    pub kbgp_v6: Ipv6Addr,
    pub procs: Vec<Proc>,
    /// With [`Lab::switched`]: the namespace of the bridge between the two.
    pub switch_ns: Option<String>,
    /// With [`Lab::add_client`]: a namespace behind the peer, which routes for it.
    pub client_ns: Option<String>,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        Lab::build(tag, false)
    }

    /// As [`Lab::new`], with a bridge (in a third namespace) between kbgp and the peer
    /// instead of one veth pair, so that the path can fail silently: [`Lab::cut`] takes
    /// kbgp's port off the bridge, and both ends keep their carrier, as behind a failed
    /// switch (no interface goes down for a daemon to notice).
    pub fn switched(tag: &str) -> Lab {
        Lab::build(tag, true)
    }

    /// A client namespace behind the peer, the peer as its router: client `eth0` is
    /// 10.<a+100>.<b>.2/24, the peer's `eth1` .1; the peer forwards, and kbgp's namespace
    /// routes everything back through the peer. Returns the client's address.
    pub fn add_client(&mut self) -> Ipv4Addr {
        let o = self.peer_v4.octets();
        let (router, client) = (Ipv4Addr::new(10, o[1] + 100, o[2], 1), Ipv4Addr::new(10, o[1] + 100, o[2], 2));
        let cl = format!("cl-{}", self.id);
        let _ = Command::new("ip").args(["netns", "del", &cl]).output();
        sh(&["ip", "netns", "add", &cl]);
        sh(&["ip", "-n", &cl, "link", "set", "lo", "up"]);
        let (a, b) = (format!("kc{}a", self.id), format!("kc{}b", self.id));
        let _ = Command::new("ip").args(["link", "del", &a]).output();
        sh(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        sh(&["ip", "link", "set", &a, "netns", &self.peer_ns]);
        sh(&["ip", "link", "set", &b, "netns", &cl]);
        sh(&["ip", "-n", &self.peer_ns, "link", "set", &a, "name", "eth1"]);
        sh(&["ip", "-n", &cl, "link", "set", &b, "name", "eth0"]);
        sh(&["ip", "-n", &self.peer_ns, "addr", "add", &format!("{router}/24"), "dev", "eth1"]);
        sh(&["ip", "-n", &cl, "addr", "add", &format!("{client}/24"), "dev", "eth0"]);
        sh(&["ip", "-n", &self.peer_ns, "link", "set", "eth1", "up"]);
        sh(&["ip", "-n", &cl, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &cl, "route", "add", "default", "via", &router.to_string()]);
        sh(&["ip", "netns", "exec", &self.peer_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        sh(&["ip", "-n", &self.kbgp_ns, "route", "add", "default", "via", &self.peer_v4.to_string()]);
        self.client_ns = Some(cl);
        client
    }

    /// Frames stop crossing the switch, both ways.
    pub fn cut(&self) {
        let sw = self.switch_ns.as_ref().expect("a switched lab");
        sh(&["ip", "-n", sw, "link", "set", &format!("k{}", self.id), "nomaster"]);
    }

    /// Frames cross the switch again.
    pub fn mend(&self) {
        let sw = self.switch_ns.as_ref().expect("a switched lab");
        sh(&["ip", "-n", sw, "link", "set", &format!("k{}", self.id), "master", "br0"]);
    }

    fn build(tag: &str, switched: bool) -> Lab {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // Unique across concurrent test binaries too: pid-derived high bits.
        let id = ((std::process::id() % 200) * 64 + n) % 12_000 + 1;
        let (a, b) = (100 + id / 250, id % 250 + 1);
        let lab = Lab {
            id,
            dir: std::env::temp_dir().join(format!("kbgp-proto-{tag}-{id}")),
            kbgp_ns: format!("kbgp-{id}"),
            peer_ns: format!("peer-{id}"),
            peer_v4: Ipv4Addr::new(10, a as u8, b as u8, 1),
            kbgp_v4: Ipv4Addr::new(10, a as u8, b as u8, 2),
            peer_v6: format!("fd77:{id:x}::1").parse().expect("v6"),
            kbgp_v6: format!("fd77:{id:x}::2").parse().expect("v6"),
            procs: Vec::new(),
            switch_ns: switched.then(|| format!("sw-{id}")),
            client_ns: None,
        };
        let _ = fs::remove_dir_all(&lab.dir);
        fs::create_dir_all(&lab.dir).expect("lab dir");
        for ns in [&lab.kbgp_ns, &lab.peer_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let (va, vb) = (format!("kv{id}a"), format!("kv{id}b"));
        let _ = Command::new("ip").args(["link", "del", &va]).output();
        if let Some(sw) = &lab.switch_ns {
            // peer eth0 <-> p<id> [br0] k<id> <-> kbgp eth0
            let _ = Command::new("ip").args(["netns", "del", sw]).output();
            sh(&["ip", "netns", "add", sw]);
            sh(&["ip", "-n", sw, "link", "add", "br0", "type", "bridge"]);
            sh(&["ip", "-n", sw, "link", "set", "br0", "up"]);
            for (end, port) in [(&va, format!("p{id}")), (&vb, format!("k{id}"))] {
                sh(&["ip", "link", "add", end, "type", "veth", "peer", "name", &port]);
                sh(&["ip", "link", "set", &port, "netns", sw]);
                sh(&["ip", "-n", sw, "link", "set", &port, "master", "br0"]);
                sh(&["ip", "-n", sw, "link", "set", &port, "up"]);
            }
        } else {
            sh(&["ip", "link", "add", &va, "type", "veth", "peer", "name", &vb]);
        }
        sh(&["ip", "link", "set", &va, "netns", &lab.peer_ns]);
        sh(&["ip", "link", "set", &vb, "netns", &lab.kbgp_ns]);
        for (ns, dev, v4, v6) in
            [(&lab.peer_ns, &va, lab.peer_v4, lab.peer_v6), (&lab.kbgp_ns, &vb, lab.kbgp_v4, lab.kbgp_v6)]
        {
            sh(&["ip", "-n", ns, "link", "set", dev, "name", "eth0"]);
            sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=0"]);
            sh(&["ip", "-n", ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            sh(&["ip", "-n", ns, "addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"]);
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
        lab
    }

    /// With `KBGP_CAPTURE=DIR` set, records the BGP traffic of this lab to `DIR/<tag>.pcap`
    /// (used by proto-tests/capture-fixtures.sh to refresh the codec's fixtures).
    pub fn capture(&mut self, tag: &str) {
        let Some(dir) = std::env::var_os("KBGP_CAPTURE") else { return };
        let file = PathBuf::from(dir).join(format!("{tag}.pcap"));
        let p = spawn_in(
            &self.kbgp_ns,
            "tcpdump",
            &["tcpdump", "-i", "eth0", "-U", "-s", "0", "-w", file.to_str().expect("utf8"), "tcp port 179"],
            &self.path("tcpdump.log"),
            &[],
        );
        std::thread::sleep(Duration::from_millis(500));
        self.procs.push(p);
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &self.procs {
            // Let tcpdump flush its file.
            let _ = Command::new("kill").args(["-INT", &p.pid.to_string()]).output();
        }
        std::thread::sleep(Duration::from_millis(200));
        self.procs.clear();
        for ns in [&self.kbgp_ns, &self.peer_ns].into_iter().chain(&self.switch_ns).chain(&self.client_ns) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        if std::thread::panicking() || std::env::var_os("KBGP_KEEP_LABS").is_some() {
            eprintln!("lab files kept for inspection in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns` (sockets it opens live there).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(ns, f).join().expect("netns thread")
}

/// Starts `f` on a thread that has entered namespace `ns`, and returns at once.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// GET http://addr/path from inside `ns`; the body, or an error text.
pub fn http_get(ns: &str, addr: &str, path: &str) -> Result<String, String> {
    let (addr, path) = (addr.to_string(), path.to_string());
    in_netns(ns, move || {
        let mut s = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
        let mut body = String::new();
        s.read_to_string(&mut body).map_err(|e| e.to_string())?;
        Ok(body.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
    })
}

/// kbgp running in the lab's kbgp namespace from `config` (a file in the lab dir).
pub struct Kbgp {
    pub ns: String,
    pub config: PathBuf,
    pub proc: Proc,
    pub metrics_addr: String,
    /// Its admin API socket, in the lab's directory.
    pub admin: PathBuf,
}

/// What one `kbgp` CLI command printed.
#[derive(Debug)]
pub struct CliOut {
    pub ok: bool,
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

pub const METRICS: &str = "127.0.0.1:9180";

impl Kbgp {
    pub fn start(lab: &Lab, yaml: &str) -> Kbgp {
        Kbgp::start_with(lab, yaml, &[])
    }

    /// As [`Kbgp::start`], with more arguments for `kbgp run`.
    pub fn start_with(lab: &Lab, yaml: &str, extra: &[&str]) -> Kbgp {
        let config = lab.path("kbgp.yaml");
        fs::write(&config, yaml).expect("write kbgp config");
        let bin = env!("CARGO_BIN_EXE_kbgp");
        let admin = lab.path("kbgp.sock");
        let mut args = vec![
            bin,
            "run",
            "--config",
            config.to_str().expect("utf8"),
            "--metrics-addr",
            METRICS,
            "--admin-socket",
            admin.to_str().expect("utf8"),
        ];
        // The restart state of this lab's kbgp, not the host's /run/kbgp.
        let state = lab.path("state");
        if !extra.contains(&"--state-dir") {
            args.extend(["--state-dir", state.to_str().expect("utf8")]);
        }
        args.extend_from_slice(extra);
        let proc = spawn_in(&lab.kbgp_ns, "kbgp", &args, &lab.path("kbgp.log"), &[("RUST_LOG", "info,kbgp=debug")]);
        let k = Kbgp { ns: lab.kbgp_ns.clone(), config, proc, metrics_addr: METRICS.to_string(), admin };
        wait_for("kbgp /readyz", Duration::from_secs(10), || match http_get(&k.ns, METRICS, "/readyz") {
            Ok(b) if b.starts_with("ready") => Ok(()),
            Ok(b) => Err(b),
            Err(e) => Err(e),
        });
        k
    }

    /// kbgp in Kubernetes mode, as node `node`, reading the API server behind `kubeconfig`.
    pub fn start_kube(lab: &Lab, kubeconfig: &str, node: &str, metrics: &str, extra: &[&str]) -> Kbgp {
        let kc = lab.path(&format!("kubeconfig-{node}"));
        fs::write(&kc, kubeconfig).expect("write kubeconfig");
        let bin = env!("CARGO_BIN_EXE_kbgp");
        let admin = lab.path(&format!("kbgp-{node}.sock"));
        let admin_arg = admin.to_str().expect("utf8").to_string();
        let mut args = vec![bin, "run", "--kubernetes", "--node", node, "--metrics-addr", metrics];
        args.extend_from_slice(&["--admin-socket", &admin_arg]);
        args.extend_from_slice(extra);
        let proc = spawn_in(
            &lab.kbgp_ns,
            "kbgp",
            &args,
            &lab.path(&format!("kbgp-{node}.log")),
            &[("RUST_LOG", "info,kbgp=debug"), ("KUBECONFIG", kc.to_str().expect("utf8"))],
        );
        let k = Kbgp { ns: lab.kbgp_ns.clone(), config: kc, proc, metrics_addr: metrics.to_string(), admin };
        wait_for("kbgp /healthz", Duration::from_secs(10), || match http_get(&k.ns, metrics, "/healthz") {
            Ok(b) if b.starts_with("ok") => Ok(()),
            Ok(b) => Err(b),
            Err(e) => Err(e),
        });
        k
    }

    /// Rewrites the config and sends SIGHUP.
    pub fn reload(&self, yaml: &str) {
        fs::write(&self.config, yaml).expect("write kbgp config");
        self.proc.signal("HUP");
    }

    /// Runs `kbgp ARGS` against this kbgp's admin socket (a Unix socket: no namespace needed).
    pub fn cli(&self, args: &[&str]) -> CliOut {
        let out = Command::new(env!("CARGO_BIN_EXE_kbgp"))
            .arg("--admin-socket")
            .arg(&self.admin)
            .args(args)
            .output()
            .expect("run the kbgp CLI");
        CliOut {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `kbgp ARGS -o json`, which must succeed, parsed.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.cli(&a);
        assert!(out.ok, "kbgp {args:?} failed: {}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("kbgp {args:?}: {e}: {}", out.stdout))
    }

    /// `kbgp peers -o json`, the entry of the peer at `address` (null when it is not there).
    pub fn peer(&self, address: &str) -> serde_json::Value {
        let v = self.cli_json(&["peers"]);
        v.as_array().and_then(|a| a.iter().find(|p| p["address"] == address)).cloned().unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        http_get(&self.ns, &self.metrics_addr, "/metrics").unwrap_or_default()
    }

    /// Sum of the samples of `name` whose labels contain every `k="v"` in `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_value(&self.metrics(), name, labels)
    }
}

pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

pub fn v6(a: Ipv6Addr) -> IpAddr {
    IpAddr::V6(a)
}
