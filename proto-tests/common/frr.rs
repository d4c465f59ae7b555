//! FRR 8.4 `bgpd` (no zebra) as kbgp's peer.

use super::peer::{PEER_V4, PEER_V6, Peer, PeerSpec, SeenRoute, origin_name, sorted};
use super::{Lab, Proc, adopt, require, sh, sh_lenient};
use ipnet::IpNet;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub struct Frr {
    dir: PathBuf,
    ns: String,
    kbgp: IpAddr,
    proc_: Proc,
}

const BGPD: &str = "/usr/lib/frr/bgpd";
const ZEBRA: &str = "/usr/lib/frr/zebra";
const BFDD: &str = "/usr/lib/frr/bfdd";

impl Frr {
    pub fn start(lab: &mut Lab, spec: &PeerSpec) -> Frr {
        require(BGPD);
        require("vtysh");
        let dir = lab.path("frr");
        fs::create_dir_all(&dir).expect("frr dir");
        let d = dir.display();
        let (peer, kbgp, peer6) = (lab.peer_v4, lab.kbgp_v4, lab.peer_v6);
        let rr = if spec.ibgp() { format!("  neighbor {kbgp} route-reflector-client\n") } else { String::new() };
        let mut gtsm = if spec.gtsm { format!(" neighbor {kbgp} ttl-security hops 1\n") } else { String::new() };
        if let Some(pw) = spec.password {
            gtsm.push_str(&format!(" neighbor {kbgp} password {pw}\n"));
        }
        if spec.router {
            // Helper mode is FRR's default; graceful restart said outright.
            gtsm.push_str(" bgp graceful-restart\n");
        }
        if spec.bfd.is_some() {
            gtsm.push_str(&format!(" neighbor {kbgp} bfd\n neighbor {kbgp} bfd profile kbgp\n"));
        }
        let nets4: String = PEER_V4.iter().map(|p| format!("  network {p}\n")).collect();
        let nets6: String = PEER_V6.iter().map(|p| format!("  network {p}\n")).collect();
        let conf = format!(
            "frr defaults traditional\nhostname peer\nlog file {d}/bgpd.log informational\nlog timestamp precision 3\n!\n\
             router bgp {asn}\n bgp router-id {peer}\n bgp log-neighbor-changes\n no bgp ebgp-requires-policy\n\
             no bgp default ipv4-unicast\n no bgp network import-check\n neighbor {kbgp} remote-as {kasn}\n\
             neighbor {kbgp} timers connect 1\n{gtsm} address-family ipv4 unicast\n{nets4}  neighbor {kbgp} activate\n{rr}\
             exit-address-family\n address-family ipv6 unicast\n{nets6}  neighbor {kbgp} activate\n{rr}\
             neighbor {kbgp} route-map V6NH out\n exit-address-family\n!\nroute-map V6NH permit 10\n set ipv6 next-hop global {peer6}\n!\n",
            asn = spec.asn,
            kasn = spec.kbgp_asn,
        );
        fs::write(dir.join("bgpd.conf"), conf).expect("bgpd.conf");
        let zserv = dir.join("zserv.api");
        let zserv_arg = zserv.to_str().expect("utf8");
        // BFD in FRR is bfdd, reached through zebra; routes reach the kernel through zebra
        // too. Both run beside bgpd on the lab's own zserv socket; without them bgpd runs
        // alone (-Z).
        let zebra = spec.bfd.is_some() || spec.router;
        let mut procs = Vec::new();
        if zebra {
            require(ZEBRA);
            fs::write(dir.join("zebra.conf"), format!("hostname peer\nlog file {d}/zebra.log informational\n"))
                .expect("zebra.conf");
        }
        if spec.bfd.is_some() {
            require(BFDD);
            fs::write(
                dir.join("bfdd.conf"),
                format!(
                    "hostname peer\nlog file {d}/bfdd.log debugging\nlog timestamp precision 3\ndebug bfd peer\n\
                     bfd\n profile kbgp\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n \
                     exit\n!\nexit\n"
                ),
            )
            .expect("bfdd.conf");
        }
        sh(&["chown", "-R", "frr:frr", dir.to_str().expect("utf8")]);
        if zebra {
            procs.push(start_daemon(&lab.peer_ns, &dir, "zebra", ZEBRA, &["-z", zserv_arg]));
            super::wait_for("zebra's zserv socket", std::time::Duration::from_secs(10), || {
                if zserv.exists() { Ok(()) } else { Err("not yet".into()) }
            });
        }
        if spec.bfd.is_some() {
            let bfdctl = dir.join("bfdd.sock");
            let args = ["-z", zserv_arg, "--bfdctl", bfdctl.to_str().expect("utf8")];
            procs.push(start_daemon(&lab.peer_ns, &dir, "bfdd", BFDD, &args));
        }
        let zebra_args: &[&str] = if zebra { &["-z", zserv_arg] } else { &["-Z"] };
        let proc_ = start_daemon(&lab.peer_ns, &dir, "bgpd", BGPD, zebra_args);
        // bgpd -d returns before it listens: a kbgp started at once would be refused once and
        // keep that as its last error.
        super::wait_for("bgpd to listen on port 179", std::time::Duration::from_secs(20), || {
            let ss = sh_lenient(&["ip", "netns", "exec", &lab.peer_ns, "ss", "-ltnH", "sport = :179"]);
            if ss.contains(":179") { Ok(()) } else { Err("not listening yet".into()) }
        });
        lab.procs.extend(procs);
        Frr { dir, ns: lab.peer_ns.clone(), kbgp: IpAddr::V4(kbgp), proc_ }
    }

    fn vtysh(&self, cmds: &[String]) -> String {
        let mut args: Vec<String> = ["timeout", "20", "ip", "netns", "exec", &self.ns, "vtysh", "--vty_socket"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(self.dir.display().to_string());
        for c in cmds {
            args.push("-c".into());
            args.push(c.clone());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        sh_lenient(&a)
    }

    /// (afi, prefix) of every route kbgp sent, from the summary table.
    fn table(&self) -> Result<Vec<(&'static str, String)>, String> {
        let mut prefixes = Vec::new();
        for afi in ["ipv4", "ipv6"] {
            let t = self.vtysh(&[format!("show bgp {afi} unicast json")]);
            let v: Value =
                serde_json::from_str(&t).map_err(|e| format!("show bgp {afi} unicast json: {e}: {t:.200}"))?;
            if let Some(routes) = v.get("routes").and_then(Value::as_object) {
                for (p, paths) in routes {
                    let from_kbgp = paths.as_array().is_some_and(|a| {
                        a.iter().any(|x| x.get("peerId").and_then(Value::as_str) == Some(&self.kbgp.to_string()))
                    });
                    if from_kbgp {
                        prefixes.push((afi, p.clone()));
                    }
                }
            }
        }
        Ok(prefixes)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("bgpd.log")).unwrap_or_default()
    }
}

/// Starts FRR daemon `name` (`bin`) in `ns` as user frr, with `<name>.conf` and `<name>.pid`
/// in `dir`, its vty socket there and no TCP vty, plus `extra`.
fn start_daemon(ns: &str, dir: &Path, name: &str, bin: &str, extra: &[&str]) -> Proc {
    let conf = dir.join(format!("{name}.conf"));
    let pid = dir.join(format!("{name}.pid"));
    let mut args = vec!["ip", "netns", "exec", ns, bin, "-d", "-u", "frr", "-g", "frr"];
    args.extend(["-f", conf.to_str().expect("utf8"), "-i", pid.to_str().expect("utf8")]);
    args.extend(["--vty_socket", dir.to_str().expect("utf8"), "-P", "0"]);
    args.extend_from_slice(extra);
    sh(&args);
    adopt(name, &pid)
}

fn json_objects(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text).into_iter::<Value>().filter_map(Result::ok).collect()
}

impl Peer for Frr {
    fn name(&self) -> &'static str {
        "frr"
    }

    fn prefixes(&self) -> Result<std::collections::BTreeSet<IpNet>, String> {
        Ok(self.table()?.into_iter().filter_map(|(_, p)| p.parse().ok()).collect())
    }

    fn routes(&self) -> Result<BTreeMap<IpNet, SeenRoute>, String> {
        // The table lists prefixes; per-prefix JSON has every attribute. One vtysh run
        // takes many per-prefix commands.
        let prefixes = self.table()?;
        let cmds: Vec<String> = prefixes.iter().map(|(afi, p)| format!("show bgp {afi} unicast {p} json")).collect();
        let mut out = BTreeMap::new();
        for chunk in cmds.chunks(400) {
            for v in json_objects(&self.vtysh(chunk)) {
                let prefix: IpNet = match v.get("prefix").and_then(Value::as_str).and_then(|s| s.parse().ok()) {
                    Some(p) => p,
                    None => continue,
                };
                let Some(path) = v.get("paths").and_then(Value::as_array).and_then(|a| {
                    a.iter().find(|x| x.pointer("/peer/peerId").and_then(Value::as_str) == Some(&self.kbgp.to_string()))
                }) else {
                    continue;
                };
                let next_hop = path
                    .pointer("/nexthops/0/ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("{prefix}: no next hop in {path}"))?;
                let as_path = path
                    .pointer("/aspath/string")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect();
                let list = |key: &str| -> Vec<String> {
                    path.pointer(&format!("/{key}/list"))
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default()
                };
                out.insert(
                    prefix,
                    SeenRoute {
                        prefix,
                        next_hop,
                        origin: origin_name(path.get("origin").and_then(Value::as_str).unwrap_or("")),
                        as_path,
                        local_pref: path.get("locPrf").and_then(Value::as_u64).map(|x| x as u32),
                        communities: sorted(list("community")),
                        large_communities: sorted(list("largeCommunity")),
                    },
                );
            }
        }
        Ok(out)
    }

    fn established(&self) -> Result<bool, String> {
        let t = self.vtysh(&[format!("show bgp neighbors {} json", self.kbgp)]);
        let v: Value = serde_json::from_str(&t).map_err(|e| format!("{e}: {t:.200}"))?;
        Ok(v.pointer(&format!("/{}/bgpState", self.kbgp)).and_then(Value::as_str) == Some("Established"))
    }

    fn received_notification(&self, code: u8, subcode: u8) -> Result<Option<bool>, String> {
        let needle = format!("%NOTIFICATION: received from neighbor {} {code}/{subcode} ", self.kbgp);
        Ok(Some(self.log().contains(&needle)))
    }

    fn notified(&self) -> Result<bool, String> {
        Ok(self.log().contains(&format!("%NOTIFICATION: received from neighbor {}", self.kbgp)))
    }

    fn process(&self) -> &Proc {
        &self.proc_
    }

    fn raw_log(&self) -> String {
        self.log()
    }

    fn request_refresh(&self) -> Option<Result<(), String>> {
        for afi in ["ipv4", "ipv6"] {
            self.vtysh(&[format!("clear bgp {afi} unicast {} soft in", self.kbgp)]);
        }
        Some(Ok(()))
    }
}
