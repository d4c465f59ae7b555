//! Building our OPEN, checking the peer's (RFC 4271 §6.2, RFC 6286, RFC 6793), and what the
//! two together decide (RFC 5492 and each capability's RFC).

use super::config::SessionConfig;
use crate::wire::capability::{AddPathMode, Capability, GracefulRestart, code as cap};
use crate::wire::error::open_sub;
use crate::wire::header::{MAX_EXTENDED_LEN, MAX_LEN};
use crate::wire::{Ctx, DecodeError, Family, Open};
use bytes::Bytes;
use std::net::Ipv4Addr;

/// The outcome of an OPEN exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_id: Ipv4Addr,
    /// Negotiated Hold Time in seconds (the smaller of the two; 0 = none).
    pub hold_time: u16,
    /// Keepalive interval in seconds (0 = none).
    pub keepalive: u16,
    /// Families both sides offered.
    pub families: Vec<Family>,
    pub four_octet_as: bool,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    pub extended_message: bool,
    pub add_path_rx: Vec<Family>,
    pub add_path_tx: Vec<Family>,
    /// Families in which the peer accepts an IPv6 next hop (RFC 8950).
    pub extended_next_hop: Vec<Family>,
    /// The peer's graceful restart capability, if it sent one.
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// The peer's long-lived graceful restart families (RFC 9494), if it sent the capability.
    pub peer_long_lived: Vec<crate::wire::capability::LongLived>,
    pub ebgp: bool,
    /// Everything the peer offered, for display.
    pub peer_capabilities: Vec<Capability>,
}

impl Negotiated {
    /// The codec context for this session.
    pub fn ctx(&self) -> Ctx {
        Ctx {
            four_octet_as: self.four_octet_as,
            max_len: if self.extended_message { MAX_EXTENDED_LEN } else { MAX_LEN },
            ebgp: self.ebgp,
            add_path_rx: self.add_path_rx.clone(),
            add_path_tx: self.add_path_tx.clone(),
        }
    }

    /// Short names of what was negotiated, for `kbgp peers` and logs.
    pub fn capability_names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.four_octet_as {
            v.push("4-octet-as");
        }
        if self.route_refresh {
            v.push("route-refresh");
        }
        if self.enhanced_route_refresh {
            v.push("enhanced-route-refresh");
        }
        if self.extended_message {
            v.push("extended-message");
        }
        if !self.add_path_rx.is_empty() {
            v.push("add-path-rx");
        }
        if !self.extended_next_hop.is_empty() {
            v.push("extended-next-hop");
        }
        if self.peer_graceful_restart.is_some() {
            v.push("peer-graceful-restart");
        }
        if !self.peer_long_lived.is_empty() {
            v.push("peer-long-lived-graceful-restart");
        }
        v
    }
}

/// The OPEN we send.
/// Our OPEN; `restarting`: the Restart State bit (RFC 4724 §3).
pub fn our_open(cfg: &SessionConfig, restarting: bool) -> Open {
    let mut caps: Vec<Capability> = cfg.families.iter().map(|f| Capability::Multiprotocol(*f)).collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    caps.push(Capability::FourOctetAs(cfg.local_as));
    if cfg.extended_message {
        caps.push(Capability::ExtendedMessage);
    }
    if let Some(restart_time) = cfg.graceful_restart {
        // F bit set: the routes kbgp announces stay usable while it restarts (the node keeps
        // serving them), which is what lets a peer keep them as stale.
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: restarting,
            notification: true,
            restart_time: restart_time.min(4095),
            families: cfg.families.iter().map(|f| (*f, true)).collect(),
        }));
        if let Some(stale_time) = cfg.long_lived_stale_time {
            caps.push(Capability::LongLivedGracefulRestart(
                cfg.families
                    .iter()
                    .map(|f| crate::wire::capability::LongLived { family: *f, forwarding: true, stale_time })
                    .collect(),
            ));
        }
    } else {
        // No families and no restart time: kbgp keeps no forwarding state across a restart,
        // but receives End-of-RIB (RFC 4724 §3). It is also what makes FRR send its EoR, and
        // FRR answers an enhanced ROUTE-REFRESH request (RFC 7313) only after that EoR: without
        // this capability `kbgp refresh` against FRR is silently ignored.
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: false,
            notification: false,
            restart_time: 0,
            families: Vec::new(),
        }));
    }
    if !cfg.add_path_receive.is_empty() {
        caps.push(Capability::AddPath(cfg.add_path_receive.iter().map(|f| (*f, AddPathMode::Receive)).collect()));
    }
    Open::new(cfg.local_as, cfg.hold_time, cfg.router_id, caps)
}

fn open_error(subcode: u8, reason: String) -> DecodeError {
    DecodeError::open(subcode, Bytes::new(), reason)
}

/// Checks the peer's OPEN against our settings and works out what the session will use.
/// Errors are the NOTIFICATION to send (RFC 4271 §6.2).
pub fn negotiate(cfg: &SessionConfig, peer: &Open) -> Result<Negotiated, DecodeError> {
    let peer_as = peer.asn();
    // Configured AS 0: any AS, learned from this OPEN (Cilium v2's `peerASN: 0`).
    if cfg.peer_as != 0 && peer_as != cfg.peer_as {
        return Err(open_error(
            open_sub::BAD_PEER_AS,
            format!("peer says AS {peer_as}, configured peerASN is {}", cfg.peer_as),
        ));
    }
    if peer.hold_time == 1 || peer.hold_time == 2 {
        return Err(open_error(open_sub::UNACCEPTABLE_HOLD_TIME, format!("hold time {}", peer.hold_time)));
    }
    let ebgp = if cfg.peer_as == 0 { peer_as != cfg.local_as } else { cfg.is_ebgp() };
    // RFC 6286 §2.2: any non-zero identifier; inside one AS it must differ from ours.
    if peer.bgp_id.is_unspecified() || (!ebgp && peer.bgp_id == cfg.router_id) {
        return Err(open_error(open_sub::BAD_BGP_IDENTIFIER, format!("BGP identifier {}", peer.bgp_id)));
    }

    let mut theirs = peer.mp_families();
    if theirs.is_empty() {
        // RFC 4760 §8: no Multiprotocol capability means IPv4 unicast only.
        theirs.push(Family::IPV4_UNICAST);
    }
    let families: Vec<Family> = cfg.families.iter().copied().filter(|f| theirs.contains(f)).collect();

    let hold_time = cfg.hold_time.min(peer.hold_time);
    let keepalive = if hold_time == 0 { 0 } else { cfg.keepalive.min(hold_time / 3).max(1) };

    let mut add_path_rx = Vec::new();
    let peer_add_path = peer.capabilities.iter().find_map(|c| match c {
        Capability::AddPath(v) => Some(v.clone()),
        _ => None,
    });
    if let Some(list) = &peer_add_path {
        for (f, mode) in list {
            if mode.sends() && cfg.add_path_receive.contains(f) && families.contains(f) {
                add_path_rx.push(*f);
            }
        }
    }
    let extended_next_hop = peer
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::ExtendedNextHop(v) => Some(v.iter().map(|t| t.nlri).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    let peer_graceful_restart = peer.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g.clone()),
        _ => None,
    });
    // RFC 9494 §3: without the graceful restart capability, LLGR is ignored.
    let peer_long_lived = peer
        .capabilities
        .iter()
        .find_map(|c| match c {
            Capability::LongLivedGracefulRestart(v) if peer_graceful_restart.is_some() => Some(v.clone()),
            _ => None,
        })
        .unwrap_or_default();

    Ok(Negotiated {
        peer_as,
        peer_id: peer.bgp_id,
        hold_time,
        keepalive,
        families,
        four_octet_as: peer.four_octet_as().is_some(),
        route_refresh: peer.has(cap::ROUTE_REFRESH),
        enhanced_route_refresh: peer.has(cap::ENHANCED_ROUTE_REFRESH),
        extended_message: cfg.extended_message && peer.has(cap::EXTENDED_MESSAGE),
        add_path_rx,
        // kbgp originates one path per prefix: it never sends path identifiers.
        add_path_tx: Vec::new(),
        extended_next_hop,
        peer_graceful_restart,
        peer_long_lived,
        ebgp,
        peer_capabilities: peer.capabilities.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig::new(65005, 65005, Ipv4Addr::new(10, 0, 5, 11))
    }

    fn peer_open(asn: u32, hold: u16, id: [u8; 4], caps: Vec<Capability>) -> Open {
        Open::new(asn, hold, Ipv4Addr::from(id), caps)
    }

    #[test]
    fn our_open_offers_what_we_support() {
        let o = our_open(&SessionConfig::new(4200000001, 65010, Ipv4Addr::new(1, 1, 1, 1)), false);
        assert_eq!(o.my_as, 23456);
        assert_eq!(o.asn(), 4200000001);
        assert_eq!(o.mp_families(), vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
        assert!(o.has(cap::ROUTE_REFRESH) && o.has(cap::ENHANCED_ROUTE_REFRESH) && o.has(cap::EXTENDED_MESSAGE));
        // Without graceful restart configured: the capability with no families, so that peers
        // send End-of-RIB (and FRR answers our enhanced route refresh requests).
        let gr = o.capabilities.iter().find_map(|x| match x {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        });
        assert_eq!(
            gr,
            Some(GracefulRestart { restart_state: false, notification: false, restart_time: 0, families: vec![] })
        );
        let mut c = cfg();
        c.graceful_restart = Some(120);
        let o = our_open(&c, false);
        let gr = o.capabilities.iter().find_map(|x| match x {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        });
        let gr = gr.unwrap();
        assert!(gr.notification && !gr.restart_state);
        assert_eq!(gr.restart_time, 120);
        assert_eq!(gr.families.len(), 2);
    }

    #[test]
    fn negotiation_takes_the_intersection() {
        let p = peer_open(
            65005,
            9,
            [10, 0, 5, 1],
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::FourOctetAs(65005),
                Capability::RouteRefresh,
            ],
        );
        let n = negotiate(&cfg(), &p).unwrap();
        assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
        assert_eq!((n.hold_time, n.keepalive), (9, 3));
        assert!(n.four_octet_as && n.route_refresh && !n.extended_message && !n.ebgp);
        assert_eq!(n.ctx().max_len, 4096);
    }

    #[test]
    fn no_mp_capability_means_ipv4_unicast() {
        let n = negotiate(&cfg(), &peer_open(65005, 90, [10, 0, 5, 1], vec![])).unwrap();
        assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
        assert!(!n.four_octet_as);
        assert_eq!(n.keepalive, 30);
    }

    #[test]
    fn hold_time_zero_disables_keepalives() {
        let n = negotiate(&cfg(), &peer_open(65005, 0, [10, 0, 5, 1], vec![])).unwrap();
        assert_eq!((n.hold_time, n.keepalive), (0, 0));
    }

    #[test]
    fn open_errors() {
        let e = negotiate(&cfg(), &peer_open(65099, 90, [10, 0, 5, 1], vec![])).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 2));
        let e = negotiate(&cfg(), &peer_open(4200000001, 90, [10, 0, 5, 1], vec![Capability::FourOctetAs(4200000001)]))
            .unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 2), "4-octet AS from the capability");
        for hold in [1, 2] {
            let e = negotiate(&cfg(), &peer_open(65005, hold, [10, 0, 5, 1], vec![])).unwrap_err();
            assert_eq!((e.code, e.subcode), (2, 6));
        }
        let e = negotiate(&cfg(), &peer_open(65005, 90, [0, 0, 0, 0], vec![])).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 3));
        let e = negotiate(&cfg(), &peer_open(65005, 90, [10, 0, 5, 11], vec![])).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 3), "iBGP peer with our own identifier");
        let mut ebgp = cfg();
        ebgp.peer_as = 65100;
        assert!(negotiate(&ebgp, &peer_open(65100, 90, [10, 0, 5, 11], vec![])).is_ok(), "RFC 6286: allowed over eBGP");
    }

    #[test]
    fn peer_as_zero_learns_the_as_from_the_open() {
        // cfg() is AS 65005 to 65005; with peer AS 0 any AS is taken, iBGP or eBGP by it.
        let mut any = cfg();
        any.peer_as = 0;
        let n = negotiate(&any, &peer_open(65099, 90, [10, 0, 5, 1], vec![])).unwrap();
        assert_eq!((n.peer_as, n.ebgp), (65099, true));
        let n = negotiate(&any, &peer_open(65005, 90, [10, 0, 5, 1], vec![])).unwrap();
        assert_eq!((n.peer_as, n.ebgp), (65005, false));
        let e = negotiate(&any, &peer_open(65005, 90, [10, 0, 5, 11], vec![])).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 3), "learned iBGP: our own identifier is refused");
        let n = negotiate(&any, &peer_open(4200000001, 90, [10, 0, 5, 1], vec![Capability::FourOctetAs(4200000001)]))
            .unwrap();
        assert_eq!((n.peer_as, n.ebgp), (4200000001, true), "4-octet AS from the capability");
    }

    #[test]
    fn extended_message_and_add_path_need_both_sides() {
        let mut c = cfg();
        c.add_path_receive = vec![Family::IPV4_UNICAST];
        let p = peer_open(
            65005,
            90,
            [10, 0, 5, 1],
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::ExtendedMessage,
                Capability::AddPath(vec![(Family::IPV4_UNICAST, AddPathMode::Both)]),
            ],
        );
        let n = negotiate(&c, &p).unwrap();
        assert!(n.extended_message);
        assert_eq!(n.ctx().max_len, 65535);
        assert_eq!(n.add_path_rx, vec![Family::IPV4_UNICAST]);
        c.extended_message = false;
        assert!(!negotiate(&c, &p).unwrap().extended_message);
    }
}
