//! ExaBGP 4 as kbgp's peer. It reports what it receives as JSON lines through an API
//! process; the driver replays them into a table.

use super::peer::{PEER_V4, PEER_V6, Peer, PeerSpec, SeenRoute, origin_name, sorted};
use super::{Lab, Proc, require, spawn_in, wait_for};
use ipnet::IpNet;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub struct Exabgp {
    events: PathBuf,
    proc_: Proc,
}

const API: &str =
    "import sys\nout = open(sys.argv[1], 'a', buffering=1)\nfor line in sys.stdin:\n    out.write(line)\n";

impl Exabgp {
    pub fn start(lab: &mut Lab, spec: &PeerSpec) -> Exabgp {
        require("exabgp");
        require("python3");
        let dir = lab.path("exabgp");
        fs::create_dir_all(&dir).expect("exabgp dir");
        let api = dir.join("api.py");
        fs::write(&api, API).expect("api.py");
        let events = dir.join("events.jsonl");
        fs::write(&events, "").expect("events");
        let mut statics = String::new();
        for p in PEER_V4 {
            statics.push_str(&format!("        route {p} next-hop {} origin igp;\n", lab.peer_v4));
        }
        for p in PEER_V6 {
            statics.push_str(&format!("        route {p} next-hop {} origin igp;\n", lab.peer_v6));
        }
        let conf = format!(
            "process api {{\n    run /usr/bin/python3 {api} {ev};\n    encoder json;\n}}\n\
             neighbor {kbgp} {{\n    router-id {peer};\n    local-address {peer};\n    local-as {asn};\n    peer-as {kasn};\n\
             passive true;\n    listen 179;\n    family {{ ipv4 unicast; ipv6 unicast; }}\n\
             api {{\n        processes [ api ];\n        neighbor-changes;\n        receive {{ parsed; update; notification; }}\n    }}\n\
             static {{\n{statics}    }}\n}}\n",
            api = api.display(),
            ev = events.display(),
            kbgp = lab.kbgp_v4,
            peer = lab.peer_v4,
            asn = spec.asn,
            kasn = spec.kbgp_asn,
        );
        let cfg = dir.join("exabgp.conf");
        fs::write(&cfg, conf).expect("exabgp.conf");
        let log = dir.join("exabgp.log");
        let proc_ = spawn_in(
            &lab.peer_ns,
            "exabgp",
            &["exabgp", cfg.to_str().expect("utf8")],
            &dir.join("stdout.log"),
            &[
                ("exabgp.daemon.user", "root"),
                ("exabgp.log.destination", log.to_str().expect("utf8")),
                ("exabgp.api.cli", "false"),
            ],
        );
        let e = Exabgp { events, proc_ };
        // ExaBGP listens only once its configuration is loaded.
        let port_open = format!("{}:179", lab.peer_v4);
        wait_for("exabgp listening", Duration::from_secs(20), || {
            let ss = super::sh_lenient(&["ip", "netns", "exec", &lab.peer_ns, "ss", "-ltn"]);
            if ss.contains(&port_open) { Ok(()) } else { Err(ss) }
        });
        e
    }

    fn events(&self) -> Vec<Value> {
        fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn attrs_route(prefix: IpNet, nh: IpAddr, a: &Value) -> SeenRoute {
    let pairs = |key: &str| -> Vec<String> {
        a.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                c.as_array().map(|x| x.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(":")).unwrap_or_default()
            })
            .collect()
    };
    SeenRoute {
        prefix,
        next_hop: nh,
        origin: origin_name(a.get("origin").and_then(Value::as_str).unwrap_or("")),
        as_path: a
            .get("as-path")
            .and_then(Value::as_array)
            .map(|x| x.iter().filter_map(|n| n.as_u64().map(|n| n as u32)).collect())
            .unwrap_or_default(),
        local_pref: a.get("local-preference").and_then(Value::as_u64).map(|x| x as u32),
        communities: sorted(pairs("community")),
        large_communities: sorted(pairs("large-community")),
    }
}

/// Replays ExaBGP's JSON events into the table of routes it holds from kbgp.
pub fn replay(events: &[Value]) -> BTreeMap<IpNet, SeenRoute> {
    let mut rib = BTreeMap::new();
    for e in events {
        match e.get("type").and_then(Value::as_str) {
            Some("state") if e.pointer("/neighbor/state").and_then(Value::as_str) == Some("down") => rib.clear(),
            Some("update") => {
                let Some(u) = e.pointer("/neighbor/message/update") else { continue };
                for (_, list) in u.get("withdraw").and_then(Value::as_object).into_iter().flatten() {
                    for n in list.as_array().into_iter().flatten() {
                        if let Some(p) = n.get("nlri").and_then(Value::as_str).and_then(|s| s.parse::<IpNet>().ok()) {
                            rib.remove(&p);
                        }
                    }
                }
                let attrs = u.get("attribute").cloned().unwrap_or(Value::Null);
                for (_, by_nh) in u.get("announce").and_then(Value::as_object).into_iter().flatten() {
                    for (nh, list) in by_nh.as_object().into_iter().flatten() {
                        let Ok(nh) = nh.parse::<IpAddr>() else { continue };
                        for n in list.as_array().into_iter().flatten() {
                            if let Some(p) = n.get("nlri").and_then(Value::as_str).and_then(|s| s.parse::<IpNet>().ok())
                            {
                                // A 32-octet next hop shows twice; keep the global one.
                                if matches!(nh, IpAddr::V6(v) if (v.segments()[0] & 0xffc0) == 0xfe80)
                                    && rib.contains_key(&p)
                                {
                                    continue;
                                }
                                rib.insert(p, attrs_route(p, nh, &attrs));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    rib
}

impl Peer for Exabgp {
    fn name(&self) -> &'static str {
        "exabgp"
    }

    fn routes(&self) -> Result<BTreeMap<IpNet, SeenRoute>, String> {
        Ok(replay(&self.events()))
    }

    fn established(&self) -> Result<bool, String> {
        let last = self
            .events()
            .into_iter()
            .rfind(|e| e.get("type").and_then(Value::as_str) == Some("state"))
            .and_then(|e| e.pointer("/neighbor/state").and_then(Value::as_str).map(str::to_owned));
        Ok(last.as_deref() == Some("up"))
    }

    fn received_notification(&self, code: u8, subcode: u8) -> Result<Option<bool>, String> {
        Ok(Some(self.events().iter().any(|e| {
            e.get("type").and_then(Value::as_str) == Some("notification")
                && e.pointer("/neighbor/direction").and_then(Value::as_str) == Some("receive")
                && e.pointer("/neighbor/notification/code").and_then(Value::as_u64) == Some(code as u64)
                && e.pointer("/neighbor/notification/subcode").and_then(Value::as_u64) == Some(subcode as u64)
        })))
    }

    fn notified(&self) -> Result<bool, String> {
        Ok(self.events().iter().any(|e| e.get("type").and_then(Value::as_str) == Some("notification")))
    }

    fn process(&self) -> &Proc {
        &self.proc_
    }

    fn raw_log(&self) -> String {
        fs::read_to_string(&self.events).unwrap_or_default()
    }
}
