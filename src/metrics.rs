//! Prometheus series (see docs/metrics.md for the list and meaning of each).

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    pub registry: Registry,
    pub session_state: IntGaugeVec,
    pub session_up: IntGaugeVec,
    pub advertised_routes: IntGaugeVec,
    pub received_routes: IntGaugeVec,
    pub received_routes_dropped: IntCounterVec,
    pub messages: IntCounterVec,
    pub notifications: IntCounterVec,
    pub transitions: IntCounterVec,
    pub update_errors: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub build_info: IntGaugeVec,
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition");
    r.register(Box::new(g.clone())).expect("each metric registered once");
    g
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    r.register(Box::new(c.clone())).expect("each metric registered once");
    c
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let m = Metrics {
            session_state: gauge(
                &r,
                "kbgp_session_state",
                "BGP FSM state of the session: 1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established",
                &["peer", "vrouter"],
            ),
            session_up: gauge(&r, "kbgp_session_up", "1 when the session is Established", &["peer"]),
            advertised_routes: gauge(&r, "kbgp_advertised_routes", "Routes the peer has from us", &["peer", "afi"]),
            received_routes: gauge(
                &r,
                "kbgp_received_routes",
                "Routes received from the peer and kept",
                &["peer", "afi"],
            ),
            received_routes_dropped: counter(
                &r,
                "kbgp_received_routes_dropped_total",
                "Received routes not kept because the peer's maxReceivedRoutes was reached",
                &["peer"],
            ),
            messages: counter(
                &r,
                "kbgp_messages_total",
                "BGP messages by direction (sent, received) and type",
                &["peer", "direction", "type"],
            ),
            notifications: counter(
                &r,
                "kbgp_notifications_total",
                "NOTIFICATION messages by direction, error code and subcode",
                &["peer", "direction", "code", "subcode"],
            ),
            transitions: counter(&r, "kbgp_session_transitions_total", "FSM state changes", &["peer"]),
            update_errors: counter(
                &r,
                "kbgp_update_errors_total",
                "Malformed attributes in received UPDATEs that the session survived (RFC 7606), by action",
                &["peer", "action"],
            ),
            config_reloads: counter(
                &r,
                "kbgp_config_reloads_total",
                "Configuration reloads by result (applied, unchanged, rejected)",
                &["result"],
            ),
            build_info: gauge(&r, "kbgp_build_info", "Always 1; labels carry the version", &["version"]),
            registry: r,
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Drops every series of a peer that is gone, so dashboards do not show ghosts.
    pub fn forget_peer(&self, peer: &str, vrouter: &str) {
        let _ = self.session_state.remove_label_values(&[peer, vrouter]);
        let _ = self.session_up.remove_label_values(&[peer]);
        for afi in ["ipv4", "ipv6"] {
            let _ = self.advertised_routes.remove_label_values(&[peer, afi]);
            let _ = self.received_routes.remove_label_values(&[peer, afi]);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
