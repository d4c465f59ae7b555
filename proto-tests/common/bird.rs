//! BIRD 2 as kbgp's peer. BIRD has no JSON output: `show route all` is parsed.

use super::peer::{Hops, PEER_V4, PEER_V6, Peer, PeerSpec, SeenRoute, origin_name, sorted};
use super::{Lab, Proc, adopt, require, sh, sh_lenient};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

pub struct Bird {
    dir: PathBuf,
    ns: String,
    proc_: Proc,
}

impl Bird {
    pub fn start(lab: &mut Lab, spec: &PeerSpec) -> Bird {
        require("bird");
        require("birdc");
        let dir = lab.path("bird");
        fs::create_dir_all(&dir).expect("bird dir");
        let d = dir.display();
        let s4: String = PEER_V4.iter().map(|p| format!("  route {p} blackhole;\n")).collect();
        let s6: String = PEER_V6.iter().map(|p| format!("  route {p} blackhole;\n")).collect();
        // iBGP: route reflector for kbgp as in the seed; eBGP: multihop so BIRD sends a
        // 16-octet IPv6 next hop (see the notes on link-local next hops).
        let mut mode = match (spec.ibgp(), spec.gtsm) {
            (true, _) => "  rr client;\n",
            (false, true) => "  ttl security on;\n",
            (false, false) => "",
        }
        .to_string();
        if let Some(pw) = spec.password {
            mode.push_str(&format!("  password \"{pw}\";\n"));
        }
        let bfd = if let Some(hops) = spec.bfd {
            // BIRD runs iBGP as multihop unless told `direct`, and BFD follows.
            mode.push_str("  bfd on;\n");
            match (hops, spec.ibgp()) {
                (Hops::Single, true) if !spec.router => mode.push_str("  direct;\n"),
                (Hops::Multi, false) => mode.push_str("  multihop;\n"),
                _ => {}
            }
            "protocol bfd {\n  interface \"eth0\" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };\n  \
             multihop { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };\n}\n"
        } else {
            ""
        };
        // A router: kbgp's routes into the kernel, kbgp on the link (next hops resolved
        // directly), and graceful restart on (helper, and restarting itself).
        let kernel = if spec.router {
            if spec.ibgp() {
                mode.push_str("  direct;\n");
            }
            mode.push_str("  graceful restart on;\n");
            "protocol kernel { ipv4 { export where source = RTS_BGP; }; }\n"
        } else {
            ""
        };
        let conf = format!(
            "log \"{d}/bird.log\" all;\nrouter id {peer};\nprotocol device {{ }}\n\
             protocol direct {{ ipv4; ipv6; interface \"eth0\"; }}\n\
             protocol static static4 {{ ipv4;\n{s4}}}\nprotocol static static6 {{ ipv6;\n{s6}}}\n{bfd}{kernel}\
             protocol bgp peer1 {{\n  local {peer} as {asn};\n  neighbor {kbgp} as {kasn};\n{mode}\
             connect delay time 1; connect retry time 1; error wait time 1, 5;\n  debug {{ states, events }};\n\
             ipv4 {{ import all; export where source = RTS_STATIC; }};\n\
             ipv6 {{ import all; export where source = RTS_STATIC; }};\n}}\n",
            peer = lab.peer_v4,
            kbgp = lab.kbgp_v4,
            asn = spec.asn,
            kasn = spec.kbgp_asn,
        );
        let cfg = dir.join("bird.conf");
        fs::write(&cfg, conf).expect("bird.conf");
        let ctl = dir.join("bird.ctl");
        let pid = dir.join("bird.pid");
        sh(&[
            "ip",
            "netns",
            "exec",
            &lab.peer_ns,
            "bird",
            "-c",
            cfg.to_str().expect("utf8"),
            "-s",
            ctl.to_str().expect("utf8"),
            "-P",
            pid.to_str().expect("utf8"),
        ]);
        let proc_ = adopt("bird", &pid);
        Bird { dir, ns: lab.peer_ns.clone(), proc_ }
    }

    fn birdc(&self, cmd: &str) -> String {
        let ctl = self.dir.join("bird.ctl");
        let mut args =
            vec!["timeout", "20", "ip", "netns", "exec", &self.ns, "birdc", "-s", ctl.to_str().unwrap_or("")];
        args.extend(cmd.split(' '));
        sh_lenient(&args)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default()
    }
}

/// `(65005,100) (65005,200)` → ["65005:100", "65005:200"]; also the 3-part large form.
fn tuples(s: &str) -> Vec<String> {
    s.split(')')
        .filter_map(|t| t.trim().strip_prefix('('))
        .map(|t| t.split(',').map(str::trim).collect::<Vec<_>>().join(":"))
        .collect()
}

/// Parses `show route all protocol peer1`.
pub fn parse_routes(text: &str) -> BTreeMap<IpNet, SeenRoute> {
    let mut out = BTreeMap::new();
    let mut cur: Option<SeenRoute> = None;
    let flush = |r: Option<SeenRoute>, out: &mut BTreeMap<IpNet, SeenRoute>| {
        if let Some(r) = r {
            out.insert(r.prefix, r);
        }
    };
    for line in text.lines() {
        let t = line.trim();
        if !line.starts_with([' ', '\t']) {
            if let Some(p) = line.split_whitespace().next().and_then(|p| p.parse::<IpNet>().ok()) {
                flush(cur.take(), &mut out);
                cur = Some(SeenRoute {
                    prefix: p,
                    next_hop: p.addr(),
                    origin: String::new(),
                    as_path: Vec::new(),
                    local_pref: None,
                    communities: Vec::new(),
                    large_communities: Vec::new(),
                });
            }
            continue;
        }
        let Some(r) = cur.as_mut() else { continue };
        if let Some(v) = t.strip_prefix("BGP.origin:") {
            r.origin = origin_name(v.trim());
        } else if let Some(v) = t.strip_prefix("BGP.as_path:") {
            r.as_path = v.split_whitespace().filter_map(|a| a.parse().ok()).collect();
        } else if let Some(v) = t.strip_prefix("BGP.next_hop:") {
            if let Some(a) = v.split_whitespace().next().and_then(|a| a.parse().ok()) {
                r.next_hop = a;
            }
        } else if let Some(v) = t.strip_prefix("BGP.local_pref:") {
            r.local_pref = v.trim().parse().ok();
        } else if let Some(v) = t.strip_prefix("BGP.community:") {
            r.communities = sorted(tuples(v));
        } else if let Some(v) = t.strip_prefix("BGP.large_community:") {
            r.large_communities = sorted(tuples(v));
        }
    }
    flush(cur.take(), &mut out);
    out
}

impl Peer for Bird {
    fn name(&self) -> &'static str {
        "bird"
    }

    fn routes(&self) -> Result<BTreeMap<IpNet, SeenRoute>, String> {
        let t = self.birdc("show route all protocol peer1");
        if !t.contains("BIRD") {
            return Err(format!("birdc gave no answer: {t:.200}"));
        }
        Ok(parse_routes(&t))
    }

    fn ebgp_local_pref(&self) -> Option<u32> {
        Some(100)
    }

    fn established(&self) -> Result<bool, String> {
        let t = self.birdc("show protocols all peer1");
        Ok(t.lines().any(|l| l.trim().starts_with("BGP state:") && l.contains("Established")))
    }

    fn received_notification(&self, code: u8, subcode: u8) -> Result<Option<bool>, String> {
        // BIRD logs the text of what it received, not the numbers.
        let text = match (code, subcode) {
            (2, 2) => "Received: Bad peer AS",
            (4, 0) => "Received: Hold timer expired",
            (6, 1) => "Received: Maximum number of prefixes reached",
            (6, 2) => "Received: Administrative shutdown",
            (6, 3) => "Received: Peer de-configured",
            (6, 6) => "Received: Other configuration change",
            _ => return Err(format!("no BIRD text known for {code}/{subcode}")),
        };
        Ok(Some(self.log().contains(text)))
    }

    fn notified(&self) -> Result<bool, String> {
        Ok(self.log().contains("peer1: Received: "))
    }

    fn process(&self) -> &Proc {
        &self.proc_
    }

    fn raw_log(&self) -> String {
        self.log()
    }

    fn request_refresh(&self) -> Option<Result<(), String>> {
        let t = self.birdc("reload in peer1");
        Some(if t.contains("reloading") { Ok(()) } else { Err(t) })
    }
}
