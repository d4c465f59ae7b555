//! What every daemon driver offers the scenarios, and the routes the scenarios expect.

use super::{Lab, Proc};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A route as a peer daemon shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRoute {
    pub prefix: IpNet,
    pub next_hop: IpAddr,
    /// "igp", "egp" or "incomplete".
    pub origin: String,
    pub as_path: Vec<u32>,
    pub local_pref: Option<u32>,
    /// "asn:value", sorted.
    pub communities: Vec<String>,
    /// "global:local1:local2", sorted.
    pub large_communities: Vec<String>,
}

/// How the peer daemon is set up.
#[derive(Clone, Debug)]
pub struct PeerSpec {
    pub asn: u32,
    pub kbgp_asn: u32,
    /// GTSM (RFC 5082) towards kbgp: FRR `ttl-security hops 1`, BIRD `ttl security on`.
    pub gtsm: bool,
    /// TCP MD5 (RFC 2385) password towards kbgp.
    pub password: Option<&'static str>,
    /// BFD towards kbgp at 300 ms × 3: FRR `neighbor bfd` (with zebra and bfdd), BIRD
    /// `bfd on` (with `protocol bfd`).
    pub bfd: Option<Hops>,
    /// The peer is a router: kbgp's routes go into its kernel (FRR with zebra, BIRD with
    /// `protocol kernel`), forwarding is on, and it is a graceful restart helper.
    pub router: bool,
}

/// Single-hop (RFC 5881) or multihop (RFC 5883) BFD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hops {
    Single,
    Multi,
}

impl PeerSpec {
    pub fn ibgp(&self) -> bool {
        self.asn == self.kbgp_asn
    }
}

/// Routes every peer daemon announces to kbgp.
pub const PEER_V4: &[&str] = &["198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/24"];
pub const PEER_V6: &[&str] = &["2001:db8:ff00::/48", "2001:db8:ff01::/48"];

pub trait Peer {
    fn name(&self) -> &'static str;
    /// Every route received from kbgp, by prefix, with its attributes.
    fn routes(&self) -> Result<BTreeMap<IpNet, SeenRoute>, String>;
    /// Just the prefixes received from kbgp (cheaper where the daemon allows it).
    fn prefixes(&self) -> Result<std::collections::BTreeSet<IpNet>, String> {
        Ok(self.routes()?.into_keys().collect())
    }
    /// LOCAL_PREF the daemon itself puts on eBGP routes (BIRD shows its default of 100).
    fn ebgp_local_pref(&self) -> Option<u32> {
        None
    }
    fn established(&self) -> Result<bool, String>;
    /// Whether the daemon shows that it received this NOTIFICATION from kbgp. `Ok(None)`:
    /// the daemon does not expose codes, only that a NOTIFICATION arrived (see `notified`).
    fn received_notification(&self, code: u8, subcode: u8) -> Result<Option<bool>, String>;
    /// Whether any NOTIFICATION from kbgp was received (for daemons without codes).
    fn notified(&self) -> Result<bool, String>;
    fn process(&self) -> &Proc;
    /// The daemon's log (or event stream), for assertions on what it said.
    fn raw_log(&self) -> String;
    /// Asks the daemon to request a route refresh from kbgp; `None` if it cannot.
    fn request_refresh(&self) -> Option<Result<(), String>> {
        None
    }
}

/// Starts the named daemon as kbgp's peer in `lab`.
pub fn start(daemon: &str, lab: &mut Lab, spec: &PeerSpec) -> Box<dyn Peer> {
    match daemon {
        "frr" => Box::new(super::frr::Frr::start(lab, spec)),
        "bird" => Box::new(super::bird::Bird::start(lab, spec)),
        "gobgp" => Box::new(super::gobgp::Gobgp::start(lab, spec)),
        "exabgp" => Box::new(super::exabgp::Exabgp::start(lab, spec)),
        other => panic!("unknown daemon {other}"),
    }
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

pub fn origin_name(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "i" | "igp" | "0" => "igp".into(),
        "e" | "egp" | "1" => "egp".into(),
        _ => "incomplete".into(),
    }
}
