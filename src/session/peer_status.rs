//! A [`Peer`] as the admin API shows it: `kbgp peers` and `kbgp routes`.
//!
//! The core keeps instants; the caller passes the current instant and Unix time so that the
//! documents can say when things happened.

use super::peer::Peer;
use crate::admin::api;
use crate::rib::OutTable;
use crate::wire::Family;
use std::time::Instant;

/// Unix time of `t`, given that `now` is `unix`.
fn unix_of(t: Instant, now: Instant, unix: u64) -> u64 {
    unix.saturating_sub(now.saturating_duration_since(t).as_secs())
}

impl Peer {
    /// Routes of a family the peer has from us: none without a session.
    pub fn advertised(&self, f: Family) -> usize {
        if self.session().is_some() { self.rib_out().count(f) } else { 0 }
    }

    /// The peer as `kbgp peers` shows it. `table` is its group's.
    pub fn status(&self, now: Instant, unix: u64, table: &OutTable) -> api::Peer {
        let settings = self.settings();
        let s = &settings.session;
        let session = self.session();
        let n = session.map(|(_, n, _)| n);
        let names = |v: &[Family]| v.iter().map(Family::label).collect::<Vec<_>>();
        let per_family = |count: &dyn Fn(Family) -> usize| api::PerFamily {
            ipv4: count(Family::IPV4_UNICAST),
            ipv6: count(Family::IPV6_UNICAST),
        };
        let st = &self.stats;
        let notification = |x: &Option<(Instant, crate::wire::Notification)>| {
            x.as_ref().map(|(t, n)| api::NotificationInfo::new(n, unix_of(*t, now, unix)))
        };
        api::Peer {
            address: self.key().address,
            port: settings.port,
            vrouter: self.key().local_asn,
            local_as: s.local_as,
            peer_as: s.peer_as,
            kind: if s.is_ebgp() { "eBGP" } else { "iBGP" }.into(),
            router_id: s.router_id,
            passive: s.passive,
            state: self.state().name().into(),
            state_since: st.state_since.map_or(unix, |t| unix_of(t, now, unix)),
            uptime_seconds: self.fsm().established_since().map(|t| now.saturating_duration_since(t).as_secs()),
            established_count: st.established_count,
            local_address: session.map(|(l, _, _)| l),
            peer_router_id: n.map(|n| n.peer_id),
            hold_time: n.map(|n| n.hold_time),
            keepalive: n.map(|n| n.keepalive),
            configured_families: names(&s.families),
            families: n.map(|n| names(&n.families)).unwrap_or_default(),
            capabilities: n.map(|n| n.capability_names().iter().map(|c| c.to_string()).collect()).unwrap_or_default(),
            planned_routes: table.total(),
            advertised: per_family(&|f| self.advertised(f)),
            received: per_family(&|f| self.rib_in().count(f)),
            received_dropped: self.rib_in().dropped,
            messages: st.messages,
            last_error: st.last_error.as_ref().map(|(t, e)| api::LastError {
                at: unix_of(*t, now, unix),
                text: e.to_string(),
                hint: self.hint(e).map(str::to_string),
            }),
            last_notification_sent: notification(&st.notification_sent),
            last_notification_received: notification(&st.notification_received),
            next_attempt_in_seconds: self
                .fsm()
                .next_attempt()
                .map(|t| t.saturating_duration_since(now).as_secs_f64().ceil() as u64),
            received_stale: self.rib_in().stale_count(),
            peer_restarting: self.helper.as_ref().map(|h| h.describe(now)),
            bfd: self.bfd.as_ref().map(|b| {
                let s = &b.session;
                let multihop = settings.bfd.is_some_and(|c| c.multihop);
                api::Bfd {
                    state: s.state().name().into(),
                    remote_state: s.remote_state().name().into(),
                    since: s.since.map_or(unix, |t| unix_of(t, now, unix)),
                    mode: if multihop { "multihop" } else { "single-hop" }.into(),
                    diagnostic: s.diag().name().into(),
                    local_discriminator: s.local_discriminator(),
                    remote_discriminator: s.remote_discriminator(),
                    detection_time_ms: s.detection_time().map(|d| d.as_millis() as u64),
                    transmit_interval_ms: s.transmit_interval().as_millis() as u64,
                    up_count: b.up_count,
                    down_count: b.down_count,
                    holding_bgp_seconds: b
                        .held_until
                        .map(|t| t.saturating_duration_since(now).as_secs_f64().ceil() as u64),
                }
            }),
        }
    }

    /// What the peer has from us (from its group's `table`), optionally of one family, sorted.
    pub fn advertised_routes(&self, table: &OutTable, family: Option<Family>) -> Vec<api::Route> {
        let (peer, vrouter) = (self.key().address, self.key().local_asn);
        let Some((_, _, export)) = self.session() else { return Vec::new() };
        let wanted = |p: &ipnet::IpNet| family.is_none_or(|f| Family::of_prefix(p) == f);
        let mut v: Vec<api::Route> = self
            .rib_out()
            .slots()
            .filter_map(|slot| {
                let r = table.route(slot).filter(|r| r.is_live() && wanted(&r.prefix))?;
                let nh = export.next_hop(matches!(r.prefix, ipnet::IpNet::V6(_)))?;
                let path = export.path(table.attrs(r.attrs)?, &nh);
                Some(api::Route::new(peer, vrouter, r.prefix, None, nh.addr(), &path))
            })
            .collect();
        v.sort_by_key(|r| r.prefix);
        v
    }

    /// What the peer sent us, optionally of one family, sorted.
    pub fn received_routes(&self, family: Option<Family>) -> Vec<api::Route> {
        let (peer, vrouter) = (self.key().address, self.key().local_asn);
        let wanted = |p: &ipnet::IpNet| family.is_none_or(|f| Family::of_prefix(p) == f);
        let mut v: Vec<api::Route> = self
            .rib_in()
            .routes()
            .filter(|((_, n), _)| wanted(&n.prefix))
            .map(|((_, n), a)| {
                let id = (n.path_id != 0).then_some(n.path_id);
                api::Route::new(peer, vrouter, n.prefix, id, a.next_hop, &a.path)
            })
            .collect();
        v.sort_by_key(|r| (r.prefix, r.path_id));
        v
    }
}
