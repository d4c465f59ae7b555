//! Prometheus series (docs/metrics.md lists each with its meaning; a test keeps the two, the
//! Grafana dashboard and the alert rules in line with what is registered here).
//!
//! Every per-peer series carries `peer` (the neighbor's address) and `vrouter` (the virtual
//! router's local ASN): one node may peer with the same address from two virtual routers.

use crate::ipam::Allocation;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    pub registry: Registry,
    names: Vec<String>,
    // Sessions and routes, per peer.
    pub session_state: IntGaugeVec,
    pub session_up: IntGaugeVec,
    pub established: IntCounterVec,
    pub transitions: IntCounterVec,
    pub connect_attempts: IntCounterVec,
    pub advertised_routes: IntGaugeVec,
    pub received_routes: IntGaugeVec,
    pub received_routes_dropped: IntCounterVec,
    pub messages: IntCounterVec,
    pub notifications: IntCounterVec,
    pub update_errors: IntCounterVec,
    pub update_latency: HistogramVec,
    pub bfd_state: IntGaugeVec,
    pub bfd_transitions: IntCounterVec,
    pub bfd_detection_time: GaugeVec,
    pub bfd_discarded: IntCounterVec,
    // VirtualIP health checks.
    pub vip_healthy: IntGaugeVec,
    pub vip_checks: IntCounterVec,
    pub vip_check_duration: HistogramVec,
    pub vip_transitions: IntCounterVec,
    // The World and the plan.
    pub config_reloads: IntCounterVec,
    pub config_error: IntGauge,
    pub world_updates: IntCounterVec,
    pub plan_runs: IntCounterVec,
    pub plan_duration: Histogram,
    pub last_sync: IntGauge,
    /// The kernel's TCP MD5 drops (TcpExt in /proc/net/netstat), read at each scrape.
    tcp_md5_dropped: IntGaugeVec,
    pub watch_events: IntCounterVec,
    pub watch_errors: IntCounterVec,
    pub watch_up: IntGaugeVec,
    // LB IPAM.
    pub pool_size: GaugeVec,
    pub pool_used: GaugeVec,
    pub pool_available: GaugeVec,
    pub pool_conflict: IntGaugeVec,
    pub pool_disabled: IntGaugeVec,
    pub ipam_problems: IntGauge,
    pub ipam_leader: IntGauge,
    // Operating kbgp.
    pub admin_requests: IntCounterVec,
    pub node_status_writes: IntCounterVec,
    pub service_events: IntCounterVec,
    pub build_info: IntGaugeVec,
    /// Which peer task owns each peer's series: a task replaced after a settings change ends
    /// after its successor started, and must not remove the successor's series.
    peer_owners: std::sync::Mutex<std::collections::HashMap<(String, String), u64>>,
    next_owner: std::sync::atomic::AtomicU64,
}

/// A registry that remembers every series name it can expose, samples or not (the
/// registry's own `gather` skips families without samples).
struct Reg {
    r: Registry,
    names: Vec<String>,
}

// The definitions below are constants of this file: a bad name or a double registration is
// a programming error that the first unit test catches, not something input can cause.
impl Reg {
    fn add<T: prometheus::core::Collector + Clone + 'static>(&mut self, c: T, histogram: bool) -> T {
        for d in c.desc() {
            if histogram {
                self.names.extend(["_bucket", "_sum", "_count"].iter().map(|s| format!("{}{s}", d.fq_name)));
            }
            self.names.push(d.fq_name.clone());
        }
        self.r.register(Box::new(c.clone())).expect("each metric registered once");
        c
    }

    fn gauge(&mut self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition"), false)
    }

    fn int_gauge(&mut self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("static metric definition"), false)
    }

    fn float_gauge(&mut self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        self.add(GaugeVec::new(Opts::new(name, help), labels).expect("static metric definition"), false)
    }

    fn counter(&mut self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition"), false)
    }

    fn plain_histogram(&mut self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let o = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(Histogram::with_opts(o).expect("static metric definition"), true)
    }

    fn histogram(&mut self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
        let o = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(HistogramVec::new(o, labels).expect("static metric definition"), true)
    }
}

/// Seconds, from a millisecond to a minute.
const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Seconds, from 10 µs to 5 s.
const PLAN_BUCKETS: &[f64] = &[0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

const PEER: &[&str] = &["peer", "vrouter"];

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Reg { r: Registry::new(), names: Vec::new() };
        let peer_and = |more: &[&'static str]| -> Vec<&'static str> { PEER.iter().chain(more).copied().collect() };
        let m = Metrics {
            session_state: r.gauge(
                "kbgp_session_state",
                "BGP FSM state of the session: 1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established",
                PEER,
            ),
            session_up: r.gauge("kbgp_session_up", "1 when the session is Established", PEER),
            established: r.counter(
                "kbgp_session_established_total",
                "Times the session reached Established (a rising count is a flapping session)",
                PEER,
            ),
            transitions: r.counter("kbgp_session_transitions_total", "FSM state changes", PEER),
            connect_attempts: r.counter(
                "kbgp_connect_attempts_total",
                "Outgoing TCP connection attempts to the peer (a peer that cannot be reached keeps adding)",
                PEER,
            ),
            advertised_routes: r.gauge("kbgp_advertised_routes", "Routes the peer has from us", &peer_and(&["afi"])),
            received_routes: r.gauge(
                "kbgp_received_routes",
                "Routes received from the peer and kept",
                &peer_and(&["afi"]),
            ),
            received_routes_dropped: r.counter(
                "kbgp_received_routes_dropped_total",
                "Received routes not kept because the peer's maxReceivedRoutes was reached",
                PEER,
            ),
            messages: r.counter(
                "kbgp_messages_total",
                "BGP messages by direction (sent, received) and type",
                &peer_and(&["direction", "type"]),
            ),
            notifications: r.counter(
                "kbgp_notifications_total",
                "NOTIFICATION messages by direction, error code and subcode",
                &peer_and(&["direction", "code", "subcode"]),
            ),
            update_errors: r.counter(
                "kbgp_update_errors_total",
                "Malformed attributes in received UPDATEs that the session survived (RFC 7606), by action",
                &peer_and(&["action"]),
            ),
            update_latency: r.histogram(
                "kbgp_update_latency_seconds",
                "From a change of the configuration or the cluster seen by kbgp to the last UPDATE it caused \
                 written to the peer's socket, per session",
                &["vrouter"],
                LATENCY_BUCKETS,
            ),
            bfd_state: r.gauge(
                "kbgp_bfd_state",
                "BFD session state (RFC 5880): 0 AdminDown, 1 Down, 2 Init, 3 Up; only for neighbors with bfd",
                PEER,
            ),
            bfd_transitions: r.counter(
                "kbgp_bfd_transitions_total",
                "BFD state changes, by the state entered (Down from Up takes the BGP session down)",
                &peer_and(&["to"]),
            ),
            bfd_detection_time: r.float_gauge(
                "kbgp_bfd_detection_time_seconds",
                "BFD detection time in force (updated as it changes): the neighbor's Detect Mult times the slower of our receive interval \
                 and its transmit interval",
                PEER,
            ),
            bfd_discarded: r.counter(
                "kbgp_bfd_discarded_packets_total",
                "BFD datagrams received and discarded, by reason (malformed, unknown session, ttl, ...)",
                &["reason"],
            ),
            vip_healthy: r.gauge(
                "kbgp_vip_healthy",
                "1 while a VirtualIP's health check passes on this node (its route is announced), else 0",
                &["vip"],
            ),
            vip_checks: r.counter(
                "kbgp_vip_checks_total",
                "VirtualIP health checks run, by result (pass, fail, timeout)",
                &["vip", "result"],
            ),
            vip_check_duration: r.histogram(
                "kbgp_vip_check_duration_seconds",
                "Time a VirtualIP health check took (to the answer, the error or the timeout)",
                &["vip"],
                LATENCY_BUCKETS,
            ),
            vip_transitions: r.counter(
                "kbgp_vip_transitions_total",
                "VirtualIP health verdict changes, by the state entered (healthy, unhealthy)",
                &["vip", "to"],
            ),
            config_reloads: r.counter(
                "kbgp_config_reloads_total",
                "File mode: configuration reloads by result (applied, unchanged, rejected)",
                &["result"],
            ),
            config_error: r.int_gauge(
                "kbgp_config_error",
                "1 while the newest configuration is rejected (file mode) or cannot be planned, and the last good \
                 plan runs",
            ),
            world_updates: r.counter(
                "kbgp_world_updates_total",
                "New versions of the World (the objects kbgp plans from) taken from the source",
                &["source"],
            ),
            plan_runs: r.counter(
                "kbgp_plan_runs_total",
                "Plans computed, by result: applied (sessions changed), unchanged, failed (the last good plan \
                 stays)",
                &["result"],
            ),
            plan_duration: r.plain_histogram(
                "kbgp_plan_duration_seconds",
                "Time to compute LB IPAM and the plan from a World",
                PLAN_BUCKETS,
            ),
            tcp_md5_dropped: r.gauge(
                "kbgp_tcp_md5_dropped_segments",
                "TCP segments the kernel dropped for TCP MD5 (RFC 2385) in kbgp's network namespace since boot, by \
                 reason: failure (wrong signature: the passwords differ), not_found (unsigned on a keyed session), \
                 unexpected (signed on an unkeyed one). Counts only go up",
                &["reason"],
            ),
            last_sync: r.int_gauge(
                "kbgp_source_last_sync_timestamp_seconds",
                "When kbgp last read its source completely: the file loaded, or a Kubernetes watch finished a \
                 (re)list",
            ),
            watch_events: r.counter(
                "kbgp_watch_events_total",
                "Kubernetes watch events by resource and type (relist, apply, delete)",
                &["resource", "type"],
            ),
            watch_errors: r.counter("kbgp_watch_errors_total", "Kubernetes watch failures by resource", &["resource"]),
            watch_up: r.gauge(
                "kbgp_watch_up",
                "1 while the resource's watch is synced, 0 from a failure until it has relisted",
                &["resource"],
            ),
            pool_size: r.float_gauge("kbgp_ipam_pool_size", "Addresses in the LB IPAM pool", &["pool"]),
            pool_used: r.float_gauge("kbgp_ipam_pool_used", "Addresses of the pool assigned to Services", &["pool"]),
            pool_available: r.float_gauge(
                "kbgp_ipam_pool_available",
                "Addresses of the pool still free (0 when the pool is disabled or conflicts)",
                &["pool"],
            ),
            pool_conflict: r.gauge(
                "kbgp_ipam_pool_conflict",
                "1 when the pool overlaps another and hands out nothing",
                &["pool"],
            ),
            pool_disabled: r.gauge(
                "kbgp_ipam_pool_disabled",
                "1 when the pool is disabled (spec.disabled): it keeps its assignments and hands out nothing new",
                &["pool"],
            ),
            ipam_problems: r.int_gauge(
                "kbgp_ipam_problems",
                "Services LB IPAM could not serve as asked (pool exhausted, address taken, no pool)",
            ),
            ipam_leader: r.int_gauge(
                "kbgp_ipam_leader",
                "1 on the replica that leads LB IPAM (Kubernetes mode) and on every kbgp in file mode",
            ),
            admin_requests: r.counter(
                "kbgp_admin_requests_total",
                "Admin API requests by endpoint and HTTP status",
                &["endpoint", "code"],
            ),
            node_status_writes: r.counter(
                "kbgp_node_status_writes_total",
                "Writes of this node's BGPNodeStatus by result (written, failed)",
                &["result"],
            ),
            service_events: r.counter(
                "kbgp_service_events_total",
                "Kubernetes Events about Services' announcement on this node (--service-events), by result: \
                 sent, failed, dropped (over the per-node rate limit)",
                &["result"],
            ),
            build_info: r.gauge("kbgp_build_info", "Always 1; labels carry the version", &["version"]),
            registry: r.r,
            names: r.names,
            peer_owners: Default::default(),
            next_owner: Default::default(),
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        if let Ok(text) = std::fs::read_to_string("/proc/net/netstat") {
            for (reason, v) in tcp_md5_drops(&text) {
                self.tcp_md5_dropped.with_label_values(&[reason]).set(v as i64);
            }
        }
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Every series name kbgp can expose (histograms with their `_bucket`, `_sum` and
    /// `_count`), including those without a sample yet.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Shows LB IPAM's view of the pools; pools that are gone disappear.
    pub fn set_pools(&self, a: &Allocation) {
        for g in [&self.pool_size, &self.pool_used, &self.pool_available] {
            g.reset();
        }
        self.pool_conflict.reset();
        self.pool_disabled.reset();
        for p in &a.pools {
            let l = &[p.name.as_str()];
            self.pool_size.with_label_values(l).set(p.total as f64);
            self.pool_used.with_label_values(l).set(p.used as f64);
            self.pool_available.with_label_values(l).set(p.available() as f64);
            self.pool_conflict.with_label_values(l).set(p.conflict.is_some() as i64);
            self.pool_disabled.with_label_values(l).set(p.disabled as i64);
        }
        self.ipam_problems.set(a.problems.len() as i64);
    }

    /// Makes the caller the owner of the peer's series, which start as a stopped session;
    /// returns the token `forget_peer` takes.
    pub fn claim_peer(&self, peer: &str, vrouter: &str) -> u64 {
        let token = self.next_owner.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        // Counters the alert rules take `increase()` of exist from the start at 0: a series
        // born at 1 hides its first event from `increase()`.
        for c in [&self.established, &self.received_routes_dropped, &self.connect_attempts] {
            let _ = c.with_label_values(&[peer, vrouter]);
        }
        self.session_state.with_label_values(&[peer, vrouter]).set(crate::session::State::Idle as i64);
        self.session_up.with_label_values(&[peer, vrouter]).set(0);
        let mut owners = self.peer_owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.insert((peer.to_string(), vrouter.to_string()), token);
        token
    }

    /// Applies one event of a peer's core (`session::Peer`) to its series.
    pub fn peer_event(&self, peer: &str, vrouter: &str, e: &crate::session::peer::Event) {
        use crate::session::peer::Event;
        use crate::wire::Rfc7606Action;
        let l = &[peer, vrouter];
        match e {
            Event::State { to, .. } => {
                self.session_state.with_label_values(l).set(*to as i64);
                self.transitions.with_label_values(l).inc();
                if *to == crate::session::State::Established {
                    self.established.with_label_values(l).inc();
                }
            }
            Event::ConnectAttempt => self.connect_attempts.with_label_values(l).inc(),
            Event::Up => self.session_up.with_label_values(l).set(1),
            Event::Down => self.session_up.with_label_values(l).set(0),
            Event::Messages { sent, kind, count } => {
                let dir = if *sent { "sent" } else { "received" };
                self.messages.with_label_values(&[peer, vrouter, dir, kind.name()]).inc_by(*count);
            }
            Event::Notification { sent, code, subcode } => {
                let dir = if *sent { "sent" } else { "received" };
                let (c, s) = (code.to_string(), subcode.to_string());
                self.notifications.with_label_values(&[peer, vrouter, dir, &c, &s]).inc();
            }
            Event::UpdateError(a) => {
                let action = match a {
                    Rfc7606Action::TreatAsWithdraw => "treat-as-withdraw",
                    Rfc7606Action::AttributeDiscard => "attribute-discard",
                };
                self.update_errors.with_label_values(&[peer, vrouter, action]).inc();
            }
            Event::Dropped(n) => self.received_routes_dropped.with_label_values(l).inc_by(*n),
            Event::Routes { advertised, received } => {
                for (i, afi) in ["ipv4", "ipv6"].into_iter().enumerate() {
                    self.advertised_routes.with_label_values(&[peer, vrouter, afi]).set(advertised[i] as i64);
                    self.received_routes.with_label_values(&[peer, vrouter, afi]).set(received[i] as i64);
                }
            }
            Event::Latency(d) => self.update_latency.with_label_values(&[vrouter]).observe(d.as_secs_f64()),
            Event::Bfd(to) => {
                self.bfd_state.with_label_values(l).set(*to as i64);
                self.bfd_transitions.with_label_values(&[peer, vrouter, to.name()]).inc();
            }
            Event::BfdDetection(d) => self.bfd_detection_time.with_label_values(l).set(d.as_secs_f64()),
        }
    }

    /// Drops every series of a peer that is gone, so dashboards do not show ghosts; does
    /// nothing if another task claimed the peer since `token` was handed out.
    pub fn forget_peer(&self, peer: &str, vrouter: &str, token: u64) {
        // Held until the series are gone, so a successor cannot claim in between.
        let mut owners = self.peer_owners.lock().unwrap_or_else(|e| e.into_inner());
        let key = (peer.to_string(), vrouter.to_string());
        if owners.get(&key) != Some(&token) {
            return;
        }
        owners.remove(&key);
        let l = &[peer, vrouter];
        let _ = self.session_state.remove_label_values(l);
        let _ = self.session_up.remove_label_values(l);
        let _ = self.bfd_state.remove_label_values(l);
        let _ = self.bfd_detection_time.remove_label_values(l);
        for afi in ["ipv4", "ipv6"] {
            let _ = self.advertised_routes.remove_label_values(&[peer, vrouter, afi]);
            let _ = self.received_routes.remove_label_values(&[peer, vrouter, afi]);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The TCP MD5 drop counters of a /proc/net/netstat text: (reason, count) for those present.
/// The file pairs a line of names with a line of values per protocol ("TcpExt: ...").
pub fn tcp_md5_drops(netstat: &str) -> Vec<(&'static str, u64)> {
    const WANTED: [(&str, &str); 3] =
        [("TCPMD5Failure", "failure"), ("TCPMD5NotFound", "not_found"), ("TCPMD5Unexpected", "unexpected")];
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return Vec::new() };
    let pairs: Vec<(&str, &str)> = names.split_whitespace().zip(values.split_whitespace()).skip(1).collect();
    WANTED
        .iter()
        .filter_map(|(field, reason)| {
            let (_, v) = pairs.iter().find(|(n, _)| n == field)?;
            Some((*reason, v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_md5_drops_come_from_the_tcpext_lines() {
        let text = "TcpExt: SyncookiesSent TCPMD5NotFound TCPMD5Unexpected TCPMD5Failure\n\
                    TcpExt: 0 7 2 41\nIpExt: InNoRoutes TCPMD5Failure\nIpExt: 5 99\n";
        assert_eq!(tcp_md5_drops(text), vec![("failure", 41), ("not_found", 7), ("unexpected", 2)]);
        assert_eq!(tcp_md5_drops("IpExt: A\nIpExt: 1\n"), vec![]);
    }

    #[test]
    fn registry_builds_and_lists_histogram_series() {
        let m = Metrics::new();
        let names = m.names();
        for n in ["kbgp_session_up", "kbgp_update_latency_seconds_bucket", "kbgp_plan_duration_seconds_count"] {
            assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
        }
    }

    /// A session restarted for a settings change: the old task ends after the new one set
    /// its series, and must leave them alone.
    #[test]
    fn replaced_peer_task_does_not_remove_its_successors_series() {
        let m = Metrics::new();
        let up =
            |m: &Metrics| m.render().lines().any(|l| l == "kbgp_session_up{peer=\"10.0.0.1\",vrouter=\"65001\"} 1");
        let old = m.claim_peer("10.0.0.1", "65001");
        let new = m.claim_peer("10.0.0.1", "65001");
        // The counters the alerts take increase() of are there at 0 before the first event.
        for c in ["kbgp_session_established_total", "kbgp_received_routes_dropped_total"] {
            let line = format!("{c}{{peer=\"10.0.0.1\",vrouter=\"65001\"}} 0");
            assert!(m.render().lines().any(|l| l == line), "{line} missing");
        }
        m.session_up.with_label_values(&["10.0.0.1", "65001"]).set(1);
        m.forget_peer("10.0.0.1", "65001", old);
        assert!(up(&m), "the old task removed the new session's series:\n{}", m.render());
        m.forget_peer("10.0.0.1", "65001", new);
        assert!(!m.render().contains("kbgp_session_up{"), "series of a gone peer stay:\n{}", m.render());
    }

    /// Every `kbgp_...` word of a text.
    fn series_in(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("kbgp_") {
            let word: String =
                rest[i..].chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            out.insert(word.trim_end_matches('_').to_string());
            rest = &rest[i + 5..];
        }
        out
    }

    const DASHBOARD: &str = include_str!("../deploy/grafana/kbgp.json");
    const ALERTS: &str = include_str!("../deploy/prometheus/kbgp-alerts.yaml");
    const ALERT_TESTS: &str = include_str!("../deploy/prometheus/kbgp-alerts.test.yaml");
    const DOC: &str = include_str!("../docs/metrics.md");

    #[test]
    fn dashboard_alerts_and_doc_name_only_series_that_exist() {
        let m = Metrics::new();
        let known: std::collections::BTreeSet<String> = m.names().iter().cloned().collect();
        let files = [
            ("deploy/grafana/kbgp.json", DASHBOARD),
            ("deploy/prometheus/kbgp-alerts.yaml", ALERTS),
            ("deploy/prometheus/kbgp-alerts.test.yaml", ALERT_TESTS),
        ];
        for (file, text) in files {
            let used = series_in(text);
            let unknown: Vec<&String> = used.iter().filter(|n| !known.contains(*n)).collect();
            assert!(unknown.is_empty(), "{file} uses series kbgp does not have: {unknown:?}");
            assert!(used.len() >= 8, "{file} uses only {used:?}");
        }
        // The doc names only real series (and the one-off words around them), and lists each.
        let unknown: Vec<String> = series_in(DOC).into_iter().filter(|n| !known.contains(n)).collect();
        assert!(unknown.is_empty(), "docs/metrics.md names series kbgp does not have: {unknown:?}");
        for n in &known {
            assert!(DOC.contains(&format!("`{n}`")), "docs/metrics.md does not list `{n}`");
        }
    }

    #[test]
    fn dashboard_and_alerts_are_well_formed() {
        let d: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
        assert_eq!(d["uid"], "kbgp");
        let panels = d["panels"].as_array().expect("panels");
        let mut ids = std::collections::BTreeSet::new();
        for p in panels {
            assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "a panel without a title: {p}");
            assert!(p["gridPos"].is_object(), "{p}");
            assert!(ids.insert(p["id"].as_u64().expect("panel id")), "duplicate panel id {}", p["id"]);
            for t in p["targets"].as_array().into_iter().flatten() {
                assert!(t["expr"].as_str().is_some_and(|e| e.contains("kbgp_")), "a query on no kbgp series: {t}");
            }
        }
        let a: serde_yaml::Value = serde_yaml::from_str(ALERTS).expect("the rules are YAML");
        let rules = a["groups"][0]["rules"].as_sequence().expect("rules");
        let names: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
        for want in ["KbgpSessionDown", "KbgpSessionFlapping", "KbgpIpamPoolExhausted", "KbgpWatchNotSynced"] {
            assert!(names.contains(&want), "no alert {want} in {names:?}");
        }
        for r in rules {
            assert!(r["expr"].as_str().is_some_and(|e| e.contains("kbgp_")), "{r:?}");
            assert!(r["annotations"]["summary"].as_str().is_some(), "{r:?}");
        }
    }

    #[test]
    fn pools_follow_the_allocation() {
        let m = Metrics::new();
        let mut a = Allocation::default();
        a.pools.push(crate::ipam::PoolStatus { name: "lb".into(), total: 101, used: 1, ..Default::default() });
        m.set_pools(&a);
        let text = m.render();
        assert!(text.contains("kbgp_ipam_pool_available{pool=\"lb\"} 100"), "{text}");
        m.set_pools(&Allocation::default());
        assert!(!m.render().contains("pool=\"lb\""));
    }
}
