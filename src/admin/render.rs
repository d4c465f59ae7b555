//! The admin API's documents for people: aligned tables, ages instead of timestamps, and
//! `why` as an explanation with ✓ and ✗. Pure functions from documents to text, tested here.

use super::api::{Done, Peer, Route, Status};
use crate::plan::Step;
use crate::plan::why::Why;
use std::fmt::Write;

/// `45s`, `3m12s`, `2h05m`, `3d04h`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

fn ago(at: u64, now: u64) -> String {
    format!("{} ago", duration(now.saturating_sub(at)))
}

/// Left-aligned columns, two spaces apart; no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < width.len() {
                width[i] = width[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            l.push_str(c);
            if i + 1 < cells.len() {
                l.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

pub fn status(s: &Status) -> String {
    let mut out = String::new();
    let config = match &s.config_error {
        None => "ok".to_string(),
        Some(e) => format!("the newest configuration is rejected, the last good one runs: {e}"),
    };
    let rows = [
        ("node", s.node.clone()),
        ("version", s.version.clone()),
        ("source", s.source.clone()),
        ("configuration", config),
        ("policy", s.policy.clone().unwrap_or_else(|| "none selects this node".into())),
        ("up", duration(s.uptime_seconds)),
        ("peers", format!("{} ({} Established)", s.peers, s.established)),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<14}{v}");
    }
    out
}

/// The peers table, then a paragraph per peer with what does not fit in a column: the
/// negotiation when up, the last error and NOTIFICATIONs when not.
pub fn peers(list: &[Peer], now: u64) -> String {
    if list.is_empty() {
        return "no peers: no peering policy gives this node a neighbor (kbgp why <ip> says why)\n".into();
    }
    let header =
        ["PEER", "VROUTER", "LOCAL AS", "PEER AS", "STATE", "UP/DOWN", "ADVERTISED", "RECEIVED", "MSGS IN/OUT"];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            let for_ = match p.uptime_seconds {
                Some(u) => duration(u),
                None => format!("down {}", duration(now.saturating_sub(p.state_since))),
            };
            vec![
                p.address.to_string(),
                p.vrouter.to_string(),
                p.local_as.to_string(),
                p.peer_as.to_string(),
                p.state.clone(),
                for_,
                p.advertised.total().to_string(),
                p.received.total().to_string(),
                format!("{}/{}", p.messages.received, p.messages.sent),
            ]
        })
        .collect();
    let mut out = table(&header, &rows);
    for p in list {
        let _ = write!(out, "\n{} (vrouter AS{}, {}", p.address, p.vrouter, p.kind);
        if p.passive {
            out.push_str(", passive");
        }
        out.push_str("):\n");
        if p.state == "Established" {
            let _ = writeln!(
                out,
                "  up {} (Established {} since kbgp started), router ID {}, hold time {} s, keepalive {} s, \
                 local address {}",
                dash(p.uptime_seconds.map(duration)),
                match p.established_count {
                    1 => "once".to_string(),
                    n => format!("{n} times"),
                },
                dash(p.peer_router_id),
                dash(p.hold_time),
                dash(p.keepalive),
                dash(p.local_address)
            );
            let _ = writeln!(out, "  families: {}", p.families.join(", "));
            let _ = writeln!(out, "  capabilities: {}", p.capabilities.join(", "));
            let _ = writeln!(
                out,
                "  routes: {} planned, {} advertised (ipv4 {}, ipv6 {}), {} received (ipv4 {}, ipv6 {})",
                p.planned_routes,
                p.advertised.total(),
                p.advertised.ipv4,
                p.advertised.ipv6,
                p.received.total(),
                p.received.ipv4,
                p.received.ipv6
            );
        } else {
            let _ = writeln!(
                out,
                "  {} for {}, {} routes planned; configured families: {}",
                p.state,
                duration(now.saturating_sub(p.state_since)),
                p.planned_routes,
                p.configured_families.join(", ")
            );
            if let Some(n) = p.next_attempt_in_seconds {
                let _ = writeln!(out, "  next connection attempt in {n} s; the peer may connect meanwhile");
            }
        }
        if let Some(e) = &p.last_error {
            let when = ago(e.at, now);
            let _ = writeln!(out, "  last error ({when}): {}", e.text);
            if let Some(h) = &e.hint {
                let _ = writeln!(out, "    hint: {h}");
            }
        }
        if let Some(n) = &p.last_notification_received {
            let _ = writeln!(out, "  last NOTIFICATION received ({}): {}", ago(n.at, now), n.text);
        }
        if let Some(n) = &p.last_notification_sent {
            let _ = writeln!(out, "  last NOTIFICATION sent ({}): {}", ago(n.at, now), n.text);
        }
        if p.received_dropped > 0 {
            let _ = writeln!(out, "  {} received routes dropped at maxReceivedRoutes", p.received_dropped);
        }
        if let Some(r) = &p.peer_restarting {
            let _ = writeln!(out, "  graceful restart: {r} ({} stale routes)", p.received_stale);
        }
        if let Some(b) = &p.bfd {
            let detection = b.detection_time_ms.map_or("not yet known".to_string(), |d| format!("{d} ms"));
            let _ = write!(
                out,
                "  BFD {} ({}) for {}, peer {}, detection time {detection}, sending every {} ms, down {} times",
                b.state,
                b.mode,
                duration(now.saturating_sub(b.since)),
                b.remote_state,
                b.transmit_interval_ms,
                b.down_count
            );
            if b.state != "Up" && b.diagnostic != "no diagnostic" {
                let _ = write!(out, "; last: {}", b.diagnostic);
            }
            out.push('\n');
            if let Some(s) = b.holding_bgp_seconds {
                let _ = writeln!(out, "    BGP waits for BFD to be Up again (at most {s} s more)");
            }
        }
    }
    out
}

pub fn routes(list: &[Route], received: bool) -> String {
    if list.is_empty() {
        return if received {
            "no routes received\n".into()
        } else {
            "no routes advertised (kbgp why <ip> says why an address is not)\n".into()
        };
    }
    let header = ["PEER", "VROUTER", "PREFIX", "NEXT HOP", "ORIGIN", "LOCAL PREF", "MED", "AS PATH", "COMMUNITIES"];
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let prefix = match r.path_id {
                Some(id) => format!("{} (path {id})", r.prefix),
                None => r.prefix.to_string(),
            };
            let mut comms: Vec<String> = r.communities.clone();
            comms.extend(r.large_communities.iter().cloned());
            comms.extend(r.ext_communities.iter().cloned());
            vec![
                r.peer.to_string(),
                r.vrouter.to_string(),
                prefix,
                dash(r.next_hop),
                dash(r.origin.clone()),
                dash(r.local_pref),
                dash(r.med),
                if r.as_path.is_empty() { "-".into() } else { r.as_path.clone() },
                if comms.is_empty() { "-".into() } else { comms.join(" ") },
            ]
        })
        .collect();
    let mut out = table(&header, &rows);
    let _ = writeln!(out, "{} routes", list.len());
    out
}

fn steps(out: &mut String, indent: &str, list: &[Step]) {
    for s in list {
        let _ = writeln!(out, "{indent}{} {}", if s.ok { "✓" } else { "✗" }, s.text);
    }
}

/// `kbgp why`: the verdict first, then the evidence in the order it was weighed.
pub fn why(w: &Why) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", w.verdict);
    let _ = writeln!(out, "Peering policy");
    steps(&mut out, "  ", &w.policy);
    if !w.owners.is_empty() {
        let _ = writeln!(out, "Owner");
        for o in &w.owners {
            let _ = writeln!(out, "  • {o}");
        }
    }
    if !w.ipam.is_empty() {
        let _ = writeln!(out, "LB IPAM");
        steps(&mut out, "  ", &w.ipam);
    }
    if !w.learned.is_empty() {
        let _ = writeln!(out, "Learned from peers");
        for l in &w.learned {
            let _ = writeln!(out, "  • {l}");
        }
    }
    for h in &w.health {
        let state = if h.healthy { "healthy" } else { "not healthy" };
        let _ = writeln!(
            out,
            "Health check of VirtualIP {} ({}): {state} for {:.1} s, {} changes: {}",
            h.virtual_ip,
            h.check,
            h.since_ms as f64 / 1000.0,
            h.transitions,
            h.reason
        );
        for r in h.results.iter().rev() {
            let mark = if r.ok { "✓" } else { "✗" };
            let grace = if r.in_grace { " (startup grace, not counted)" } else { "" };
            let _ = writeln!(out, "  {mark} {} ms ago, took {} ms: {}{grace}", r.ago_ms, r.latency_ms, r.text);
        }
    }
    for v in &w.vrouters {
        let _ = writeln!(out, "Virtual router AS{} (router ID {})", v.asn, v.router_id);
        if v.candidates.is_empty() {
            let _ = writeln!(out, "  nothing at or around {} is a candidate here", w.target);
        }
        for c in &v.candidates {
            let verdict = if c.advertised { "announced" } else { "not announced" };
            let _ = writeln!(out, "  {} ({}): {verdict}", c.prefix, c.source);
            steps(&mut out, "    ", &c.steps);
        }
        for p in &v.peers {
            let verdict = if p.announces() {
                "announced"
            } else if p.steps.is_empty() {
                "nothing to announce"
            } else {
                "not announced"
            };
            let _ = writeln!(out, "  to peer {} (AS{}): {verdict}", p.address, p.peer_as);
            steps(&mut out, "    ", &p.steps);
        }
    }
    out
}

pub fn done(d: &Done) -> String {
    format!("{} (vrouter AS{}): {}\n", d.peer, d.vrouter, d.message)
}

/// A preview: per peer what would change, or that nothing would.
pub fn preview(p: &crate::admin::api::Preview) -> String {
    use crate::plan::diff::SessionChange;
    let d = &p.diff;
    let mut out = String::new();
    for w in &p.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    if d.policy_before != d.policy_after {
        let name = |p: &Option<String>| p.clone().unwrap_or_else(|| "(none)".into());
        out.push_str(&format!("node {}: policy {} -> {}\n", d.node, name(&d.policy_before), name(&d.policy_after)));
    }
    if d.peers.is_empty() {
        out.push_str(&format!("node {}: no change to any peer's session or routes\n", d.node));
    }
    for x in &d.peers {
        let session = match &x.session {
            SessionChange::Kept => "session kept".to_string(),
            SessionChange::New => "new session".to_string(),
            SessionChange::Removed => "session closed, its routes withdrawn".to_string(),
            SessionChange::Reset { because } => format!("session reset ({})", because.join(", ")),
        };
        let n = x.added.len() + x.withdrawn.len() + x.changed.len();
        out.push_str(&format!("peer {} (AS{}): {session}; {n} route changes\n", x.address, x.vrouter));
        for r in &x.added {
            out.push_str(&format!("  + {}  {}\n", r.prefix, r.attributes));
        }
        for r in &x.withdrawn {
            out.push_str(&format!("  - {r}\n"));
        }
        for c in &x.changed {
            out.push_str(&format!("  ~ {}  {} -> {}\n", c.prefix, c.before, c.after));
        }
    }
    for n in &d.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::api::{LastError, Messages};

    fn peer(state: &str) -> Peer {
        let mut p = Peer::sample("10.0.5.1", state);
        p.state_since = 1000;
        p.uptime_seconds = (state == "Established").then_some(192);
        p.planned_routes = 2;
        p.messages = Messages { received: 3, sent: 4, updates_received: 0, updates_sent: 1 };
        p
    }

    #[test]
    fn durations() {
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(192), "3m12s");
        assert_eq!(duration(7500), "2h05m");
        assert_eq!(duration(3 * 86400 + 4 * 3600 + 5), "3d04h");
    }

    #[test]
    fn tables_align_without_trailing_spaces() {
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()], vec!["q".into(), "".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\nq\n");
    }

    #[test]
    fn a_down_peer_shows_its_error_and_what_to_check() {
        let mut p = peer("Active");
        p.last_error = Some(LastError {
            at: 1100,
            text: "TCP connect failed: timed out after 120 s".into(),
            hint: Some("check the peer's address, firewall, MD5 password, and GTSM (ttlSecurity) on both sides".into()),
        });
        let out = peers(&[p], 1300);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("PEER      VROUTER  LOCAL AS  PEER AS  STATE"), "{out}");
        assert!(lines[1].contains("Active") && lines[1].contains("down 5m00s") && lines[1].ends_with("3/4"), "{out}");
        assert!(out.contains("  last error (3m20s ago): TCP connect failed: timed out after 120 s\n"), "{out}");
        assert!(
            out.contains(
                "    hint: check the peer's address, firewall, MD5 password, and GTSM (ttlSecurity) on both sides\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_peer_waiting_to_connect_says_when() {
        let mut p = peer("Idle");
        p.next_attempt_in_seconds = Some(2);
        let out = peers(&[p.clone()], 1300);
        assert!(out.contains("  next connection attempt in 2 s; the peer may connect meanwhile\n"), "{out}");
        p.next_attempt_in_seconds = None;
        assert!(!peers(&[p], 1300).contains("next connection attempt"));
    }
}
