//! GoBGP 3 (`gobgpd`) as kbgp's peer, queried through its CLI on a per-lab unix socket.

use super::peer::{PEER_V4, PEER_V6, Peer, PeerSpec, SeenRoute, sorted};
use super::{Lab, Proc, require, sh_lenient, spawn_in, wait_for};
use ipnet::IpNet;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub struct Gobgp {
    sock: String,
    log: PathBuf,
    ns: String,
    kbgp: IpAddr,
    proc_: Proc,
}

impl Gobgp {
    pub fn start(lab: &mut Lab, spec: &PeerSpec) -> Gobgp {
        require("gobgpd");
        require("gobgp");
        let dir: PathBuf = lab.path("gobgp");
        fs::create_dir_all(&dir).expect("gobgp dir");
        let conf = format!(
            "[global.config]\n  as = {asn}\n  router-id = \"{peer}\"\n  port = 179\n  local-address-list = [\"{peer}\"]\n\n\
             [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{kbgp}\"\n    peer-as = {kasn}\n{auth}\
             [neighbors.timers.config]\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n\
             [neighbors.transport.config]\n    local-address = \"{peer}\"\n\
             [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n\
             [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv6-unicast\"\n",
            asn = spec.asn,
            peer = lab.peer_v4,
            kbgp = lab.kbgp_v4,
            kasn = spec.kbgp_asn,
            auth = spec.password.map(|p| format!("    auth-password = \"{p}\"\n")).unwrap_or_default(),
        );
        let cfg = dir.join("gobgpd.toml");
        fs::write(&cfg, conf).expect("gobgpd.toml");
        let sock = format!("unix://{}/gobgp.sock", dir.display());
        let proc_ = spawn_in(
            &lab.peer_ns,
            "gobgpd",
            &[
                "gobgpd",
                "-f",
                cfg.to_str().expect("utf8"),
                "-t",
                "toml",
                "--api-hosts",
                &sock,
                "--pprof-disable",
                "-p",
                "-l",
                "info",
            ],
            &dir.join("gobgpd.log"),
            &[],
        );
        let g =
            Gobgp { sock, log: dir.join("gobgpd.log"), ns: lab.peer_ns.clone(), kbgp: IpAddr::V4(lab.kbgp_v4), proc_ };
        wait_for("gobgpd API", Duration::from_secs(15), || {
            let out = g.cli(&["global"]);
            if out.contains("AS:") { Ok(()) } else { Err(out) }
        });
        for p in PEER_V4 {
            g.cli(&["global", "rib", "add", "-a", "ipv4", p, "origin", "igp"]);
        }
        let nh = lab.peer_v6.to_string();
        for p in PEER_V6 {
            g.cli(&["global", "rib", "add", "-a", "ipv6", p, "nexthop", &nh, "origin", "igp"]);
        }
        g
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut a = vec!["timeout", "20", "ip", "netns", "exec", &self.ns, "gobgp", "--target", &self.sock];
        a.extend_from_slice(args);
        sh_lenient(&a)
    }

    fn neighbor(&self) -> Result<Value, String> {
        let t = self.cli(&["neighbor", &self.kbgp.to_string(), "-j"]);
        serde_json::from_str(&t).map_err(|e| format!("{e}: {t:.200}"))
    }
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array().map(|a| a.iter().filter_map(|x| x.as_u64().map(|n| n as u32)).collect()).unwrap_or_default()
}

/// Parses `gobgp neighbor X adj-in -a AFI -j`: prefix → paths, attributes keyed by type code.
pub fn parse_adj_in(text: &str) -> Result<BTreeMap<IpNet, SeenRoute>, String> {
    let v: Value = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_str(text).map_err(|e| format!("{e}: {text:.200}"))?
    };
    if let Some(e) = v.get("error").and_then(Value::as_str) {
        // Asked while the session is down: GoBGP has no Adj-RIB-In for the peer then.
        return if e.contains("not established") { Ok(BTreeMap::new()) } else { Err(e.to_string()) };
    }
    let mut out = BTreeMap::new();
    for (p, paths) in v.as_object().into_iter().flatten() {
        let prefix: IpNet = p.parse().map_err(|_| format!("bad prefix {p}"))?;
        let Some(path) = paths.as_array().and_then(|a| a.first()) else { continue };
        let mut r = SeenRoute {
            prefix,
            next_hop: prefix.addr(),
            origin: String::new(),
            as_path: Vec::new(),
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
        };
        for a in path.get("attrs").and_then(Value::as_array).into_iter().flatten() {
            match a.get("type").and_then(Value::as_u64) {
                Some(1) => {
                    r.origin = super::peer::origin_name(&a.get("value").map(|v| v.to_string()).unwrap_or_default())
                }
                Some(2) => {
                    r.as_path = a
                        .get("as_paths")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .flat_map(|s| u32s(s.get("asns").unwrap_or(&Value::Null)))
                        .collect()
                }
                Some(3) | Some(14) => {
                    if let Some(nh) = a.get("nexthop").and_then(Value::as_str).and_then(|s| s.parse().ok()) {
                        r.next_hop = nh;
                    }
                }
                Some(5) => r.local_pref = a.get("value").and_then(Value::as_u64).map(|x| x as u32),
                Some(8) => {
                    r.communities = sorted(
                        u32s(a.get("communities").unwrap_or(&Value::Null))
                            .iter()
                            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                            .collect(),
                    )
                }
                Some(32) => {
                    r.large_communities = sorted(
                        a.get("value")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                            .map(|l| {
                                let n = |k: &str| l.get(k).and_then(Value::as_u64).unwrap_or(0);
                                format!("{}:{}:{}", n("ASN"), n("LocalData1"), n("LocalData2"))
                            })
                            .collect(),
                    )
                }
                _ => {}
            }
        }
        out.insert(prefix, r);
    }
    Ok(out)
}

impl Peer for Gobgp {
    fn name(&self) -> &'static str {
        "gobgp"
    }

    fn routes(&self) -> Result<BTreeMap<IpNet, SeenRoute>, String> {
        let mut out = BTreeMap::new();
        for afi in ["ipv4", "ipv6"] {
            let t = self.cli(&["neighbor", &self.kbgp.to_string(), "adj-in", "-a", afi, "-j"]);
            out.extend(parse_adj_in(&t)?);
        }
        Ok(out)
    }

    fn established(&self) -> Result<bool, String> {
        let v = self.neighbor()?;
        Ok(v.pointer("/state/session_state").and_then(Value::as_u64) == Some(6))
    }

    fn received_notification(&self, code: u8, subcode: u8) -> Result<Option<bool>, String> {
        // GoBGP logs the code of a NOTIFICATION received in Established; one received before
        // (an OPEN error) is only counted: then we cannot tell.
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let found = log.lines().any(|l| {
            l.contains("msg=\"received notification\"")
                && l.contains(&format!("Code={code} "))
                && l.contains(&format!("Subcode={subcode} "))
        });
        Ok(if found { Some(true) } else { None })
    }

    fn notified(&self) -> Result<bool, String> {
        let v = self.neighbor()?;
        Ok(v.pointer("/state/messages/received/notification").and_then(Value::as_u64).unwrap_or(0) > 0)
    }

    fn process(&self) -> &Proc {
        &self.proc_
    }

    fn raw_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
