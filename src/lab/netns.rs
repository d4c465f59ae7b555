//! Builds a containerlab topology out of network namespaces on a plain Linux host: one
//! namespace per node (named `clab-<lab>-<node>`, as containerlab names its containers), veth
//! pairs for links, a bridge in its own namespace for each `bridge` node, then each node's
//! exec lines, FRR (zebra and bgpd, Debian's) for FRR nodes and the kbgp command for kbgp
//! nodes. Container paths in commands are mapped to the host through the node's binds.
//! Nothing is created outside those namespaces but the state directory (logs, pid files).

use super::topology::{Node, Role, Topology, split_words};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ZEBRA: &str = "/usr/lib/frr/zebra";
const BGPD: &str = "/usr/lib/frr/bgpd";

pub struct Runner {
    pub topo: Topology,
    /// Logs, pid files and FRR's sockets, one directory per node.
    pub state: PathBuf,
    /// The kbgp binary that stands in for the `kbgp` of the image.
    pub kbgp: PathBuf,
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn owned(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Namespaces that exist now.
fn namespaces() -> Vec<String> {
    run(&["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

impl Runner {
    pub fn new(topo: Topology, state: Option<PathBuf>, kbgp: PathBuf) -> Runner {
        let state = state.unwrap_or_else(|| PathBuf::from(format!("/tmp/kbgp-lab/{}", topo.name)));
        Runner { topo, state, kbgp }
    }

    pub fn ns(&self, node: &str) -> String {
        format!("clab-{}-{}", self.topo.name, node)
    }

    fn dir(&self, node: &str) -> PathBuf {
        self.state.join(node)
    }

    fn in_ns(&self, node: &str, args: &[&str]) -> Result<String, String> {
        let ns = self.ns(node);
        let mut v = vec!["ip", "netns", "exec", &ns];
        v.extend_from_slice(args);
        run(&v)
    }

    fn check_tools(&self) -> Result<(), String> {
        let roles: Vec<Role> = self.topo.nodes.values().map(|n| n.role).collect();
        if roles.contains(&Role::Frr) {
            for b in [ZEBRA, BGPD] {
                if !Path::new(b).exists() {
                    return Err(format!("{b} is missing: install frr (apt-get install frr)"));
                }
            }
        }
        if roles.contains(&Role::Kbgp) && !self.kbgp.exists() {
            return Err(format!(
                "{} is missing: build kbgp (cargo build --release) or pass --kbgp",
                self.kbgp.display()
            ));
        }
        Ok(())
    }

    /// Brings the lab up. On any error everything made so far is removed again.
    pub fn up(&self) -> Result<(), String> {
        self.check_tools()?;
        let existing = namespaces();
        if let Some(ns) = self.topo.nodes.keys().map(|n| self.ns(n)).find(|ns| existing.contains(ns)) {
            return Err(format!("namespace {ns} exists: the lab is up already (run down first)"));
        }
        let r = self.build();
        if r.is_err() {
            let _ = self.down();
        }
        r
    }

    fn build(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.state).map_err(|e| format!("{}: {e}", self.state.display()))?;
        for n in self.topo.nodes.values() {
            let ns = self.ns(&n.name);
            run(&["ip", "netns", "add", &ns])?;
            self.in_ns(&n.name, &["ip", "link", "set", "lo", "up"])?;
            std::fs::create_dir_all(self.dir(&n.name)).map_err(|e| e.to_string())?;
            if n.role == Role::Bridge {
                self.in_ns(&n.name, &["ip", "link", "add", &n.name, "type", "bridge"])?;
                self.in_ns(&n.name, &["ip", "link", "set", &n.name, "up"])?;
            }
        }
        for l in &self.topo.links {
            let (na, nb) = (self.ns(&l.a.node), self.ns(&l.b.node));
            run(&[
                "ip", "link", "add", &l.a.iface, "netns", &na, "type", "veth", "peer", "name", &l.b.iface, "netns", &nb,
            ])?;
            for e in [&l.a, &l.b] {
                if self.topo.nodes[&e.node].role == Role::Bridge {
                    self.in_ns(&e.node, &["ip", "link", "set", &e.iface, "master", &e.node])?;
                }
                self.in_ns(&e.node, &["ip", "link", "set", &e.iface, "up"])?;
            }
        }
        for n in self.topo.nodes.values() {
            for line in &n.exec {
                let words = n.translate(line);
                self.in_ns(&n.name, &owned(&words)).map_err(|e| format!("node {}: exec {line:?}: {e}", n.name))?;
            }
        }
        for n in self.topo.nodes.values() {
            match n.role {
                Role::Frr => self.start_frr(n)?,
                Role::Kbgp => self.start_kbgp(n)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn start_frr(&self, n: &Node) -> Result<(), String> {
        let d = self.dir(&n.name);
        let conf = n.host_path("/etc/frr/frr.conf").ok_or("no frr.conf bind")?;
        // FRR's daemons run as frr and write next to their config: give them a copy.
        std::fs::copy(&conf, d.join("frr.conf")).map_err(|e| format!("{}: {e}", conf.display()))?;
        std::fs::write(d.join("zebra.conf"), format!("hostname {}\n", n.name)).map_err(|e| e.to_string())?;
        run(&["chown", "-R", "frr:frr", &d.display().to_string()])?;
        let p = |f: &str| d.join(f).display().to_string();
        let common = |daemon: &str, conf: &str| -> Vec<String> {
            vec![
                "-d".into(),
                "-u".into(),
                "frr".into(),
                "-g".into(),
                "frr".into(),
                "-f".into(),
                p(conf),
                "-i".into(),
                p(&format!("{daemon}.pid")),
                "-z".into(),
                p("zserv.api"),
                "--vty_socket".into(),
                d.display().to_string(),
                "-P".into(),
                "0".into(),
                "--log".into(),
                format!("file:{}", p(&format!("{daemon}.log"))),
            ]
        };
        let mut z = vec![ZEBRA.to_string()];
        z.extend(common("zebra", "zebra.conf"));
        self.in_ns(&n.name, &owned(&z))?;
        wait_file(&d.join("zserv.api"), Duration::from_secs(10))?;
        let mut b = vec![BGPD.to_string()];
        b.extend(common("bgpd", "frr.conf"));
        self.in_ns(&n.name, &owned(&b))?;
        wait_file(&d.join("bgpd.vty"), Duration::from_secs(10))
    }

    fn start_kbgp(&self, n: &Node) -> Result<(), String> {
        let d = self.dir(&n.name);
        let cmd = n.cmd.as_deref().unwrap_or("kbgp");
        let mut words = n.translate(cmd);
        words[0] = self.kbgp.display().to_string();
        let log = std::fs::File::create(d.join("kbgp.log")).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let ns = self.ns(&n.name);
        let mut c = Command::new("ip");
        // As in a container: only what the topology gives (it names the node by its Node file).
        c.args(["netns", "exec", &ns])
            .args(&words)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .env_remove("NODE_NAME")
            .env("KBGP_ADMIN_SOCKET", self.admin_socket(&n.name));
        // Its own session: it outlives this command and a Ctrl-C in the caller's terminal.
        use std::os::unix::process::CommandExt;
        c.process_group(0);
        let child = c.spawn().map_err(|e| format!("node {}: {e}", n.name))?;
        std::fs::write(d.join("kbgp.pid"), child.id().to_string()).map_err(|e| e.to_string())
    }

    /// Starts a kbgp node's kbgp again, as `up` started it (after a test stopped it).
    pub fn start(&self, node: &str) -> Result<(), String> {
        let n = self.topo.nodes.get(node).ok_or_else(|| format!("no node {node} in lab {}", self.topo.name))?;
        if n.role != Role::Kbgp {
            return Err(format!("node {node} runs no kbgp"));
        }
        if !namespaces().contains(&self.ns(node)) {
            return Err(format!("the lab is not up (no namespace {})", self.ns(node)));
        }
        if let Some(pid) = self.kbgp_pid(node)
            && Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        {
            return Err(format!("kbgp runs on {node} already (pid {pid})"));
        }
        self.start_kbgp(n)
    }

    /// Stops every process in the lab's namespaces and removes the namespaces (and with them
    /// every interface, bridge and address). Safe to run on a lab that is half up or down.
    pub fn down(&self) -> Result<(), String> {
        let existing = namespaces();
        let mine: Vec<String> = self.topo.nodes.keys().map(|n| self.ns(n)).filter(|ns| existing.contains(ns)).collect();
        for sig in ["-TERM", "-KILL"] {
            let mut any = false;
            for ns in &mine {
                for pid in run(&["ip", "netns", "pids", ns]).unwrap_or_default().split_whitespace() {
                    any = true;
                    let _ = run(&["kill", sig, pid]);
                }
            }
            if !any {
                break;
            }
            // Give SIGTERM a moment (kbgp sends its Cease; FRR removes its routes).
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end
                && mine.iter().any(|ns| !run(&["ip", "netns", "pids", ns]).unwrap_or_default().trim().is_empty())
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let mut errors = Vec::new();
        for ns in &mine {
            if let Err(e) = run(&["ip", "netns", "del", ns]) {
                errors.push(e);
            }
        }
        let _ = std::fs::remove_dir_all(&self.state);
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// One line per node: its namespace, whether it exists, and the processes in it.
    pub fn status(&self) -> String {
        let existing = namespaces();
        let mut out = String::new();
        for n in self.topo.nodes.values() {
            let ns = self.ns(&n.name);
            if !existing.contains(&ns) {
                out.push_str(&format!("{:<14} down\n", n.name));
                continue;
            }
            let mut procs: Vec<String> = run(&["ip", "netns", "pids", &ns])
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok().map(|c| c.trim().to_string()))
                .collect();
            procs.sort();
            let what = if procs.is_empty() { "-".to_string() } else { procs.join(",") };
            out.push_str(&format!("{:<14} up    {ns:<28} {what}\n", n.name));
        }
        out
    }

    /// The command to run `args` inside a node, as containerlab's `docker exec` would; vtysh
    /// is pointed at the node's FRR.
    pub fn exec_command(&self, node: &str, args: &[String]) -> Result<Command, String> {
        let n = self.topo.nodes.get(node).ok_or_else(|| format!("no node {node} in lab {}", self.topo.name))?;
        let mut words: Vec<String> = args.to_vec();
        if n.role == Role::Frr && words.first().is_some_and(|w| w == "vtysh") {
            words.insert(1, "--vty_socket".into());
            words.insert(2, self.dir(node).display().to_string());
        }
        if words.len() == 1 && words[0].contains(' ') {
            words = split_words(&words[0]);
        }
        let mut c = Command::new("ip");
        if n.role == Role::Kbgp {
            // `kbgp peers` inside a node talks to that node's kbgp, with the lab's binary.
            if words.first().is_some_and(|w| w == "kbgp") {
                words[0] = self.kbgp.display().to_string();
            }
            c.env("KBGP_ADMIN_SOCKET", self.admin_socket(node));
        }
        c.args(["netns", "exec", &self.ns(node)]).args(&words);
        Ok(c)
    }

    /// Where a kbgp node serves its admin API: in the lab's state, not /run/kbgp, so that
    /// several nodes (and the host's own kbgp) do not share one socket.
    pub fn admin_socket(&self, node: &str) -> PathBuf {
        self.dir(node).join("kbgp.sock")
    }

    /// The pid of the kbgp a node runs.
    pub fn kbgp_pid(&self, node: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir(node).join("kbgp.pid")).ok()?.trim().parse().ok()
    }
}

fn wait_file(p: &Path, timeout: Duration) -> Result<(), String> {
    let end = Instant::now() + timeout;
    while !p.exists() {
        if Instant::now() > end {
            return Err(format!("{} did not appear within {timeout:?}", p.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
