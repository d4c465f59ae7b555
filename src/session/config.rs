//! What one session needs to know about itself and its peer.

use crate::wire::Family;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Per-session settings, derived from the peering policy. Two sessions with equal settings
/// behave identically, so a reload that leaves them equal leaves the session alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionConfig {
    pub local_as: u32,
    /// The peer's AS; 0 takes whatever AS the peer's OPEN gives (the session is iBGP or eBGP
    /// once it is known).
    pub peer_as: u32,
    pub router_id: Ipv4Addr,
    /// Hold Time proposed in our OPEN: 0 (no keepalives) or 3..=65535 seconds.
    pub hold_time: u16,
    /// Keepalive interval we want; the session uses at most a third of the negotiated hold time.
    pub keepalive: u16,
    /// Longest wait between two connection attempts (RFC 4271 ConnectRetryTime). Attempts
    /// start at `min_retry` and back off exponentially up to this, with jitter.
    pub connect_retry: Duration,
    pub min_retry: Duration,
    /// Never initiate a connection; wait for the peer.
    pub passive: bool,
    /// Families to offer in Multiprotocol capabilities.
    pub families: Vec<Family>,
    /// Offer RFC 8654 extended messages.
    pub extended_message: bool,
    /// Families in which we ask the peer to send ADD-PATH identifiers (RFC 7911 receive).
    pub add_path_receive: Vec<Family>,
    /// Offer graceful restart (RFC 4724, with the N bit of RFC 8538) with this restart time.
    pub graceful_restart: Option<u16>,
    /// With graceful restart: offer long-lived graceful restart (RFC 9494) with this stale
    /// time, seconds.
    pub long_lived_stale_time: Option<u32>,
}

impl SessionConfig {
    /// Settings with Cilium's defaults, for tests and examples.
    pub fn new(local_as: u32, peer_as: u32, router_id: Ipv4Addr) -> SessionConfig {
        SessionConfig {
            local_as,
            peer_as,
            router_id,
            hold_time: 90,
            keepalive: 30,
            connect_retry: Duration::from_secs(120),
            min_retry: Duration::from_secs(1),
            passive: false,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            extended_message: true,
            add_path_receive: Vec::new(),
            graceful_restart: None,
            long_lived_stale_time: None,
        }
    }

    /// Whether the configured peer AS makes it eBGP (with AS 0, not known before the OPEN:
    /// the negotiated session says).
    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.peer_as
    }
}

/// Identifies a peer across plans: a change of key is a different peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    pub local_asn: u32,
    pub address: IpAddr,
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (vrouter AS{})", self.address, self.local_asn)
    }
}

/// Everything that, when changed, needs a new session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerSettings {
    pub session: SessionConfig,
    pub address: IpAddr,
    pub port: u16,
    /// IP TTL for the session's packets: eBGP multihop TTL, `None` (system default) for iBGP.
    pub ttl: Option<u8>,
    /// GTSM (RFC 5082): the lowest TTL (hop limit) accepted from the peer.
    pub min_ttl: Option<u8>,
    /// The local address outgoing connections are bound to (`None`: the kernel's choice).
    pub local_address: Option<IpAddr>,
    pub max_received_routes: usize,
    /// TCP MD5 (RFC 2385).
    pub auth: Auth,
    /// Past `max_received_routes`: drop, or Cease 6/1 and connect again later (RFC 4486).
    pub over_max_received: crate::config::policy::OverLimit,
    /// BFD (RFC 5880): its rates change without a new session (see [`PeerSettings::same_session`]).
    pub bfd: Option<crate::config::policy::Bfd>,
}

impl PeerSettings {
    /// Whether `other` can keep this session: equal but for BFD's rates, which a Poll
    /// Sequence changes in place (RFC 5880 §6.8.3). Turning BFD on or off, or between single
    /// hop and multihop, needs a new session.
    pub fn same_session(&self, other: &PeerSettings) -> bool {
        let shape = |s: &PeerSettings| s.bfd.map(|b| (b.multihop, b.min_ttl));
        let mut a = self.clone();
        a.bfd = other.bfd;
        a == *other && shape(self) == shape(other)
    }
}

/// A session's TCP authentication (RFC 2385).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Auth {
    #[default]
    None,
    /// The password; its `Debug` does not show it.
    Md5(crate::config::secret::SecretValue),
    /// The Secret or its key is missing: the session stays down and says why.
    Missing(String),
}
