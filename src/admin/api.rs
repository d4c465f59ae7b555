//! The admin API's JSON documents (version 1). Field names are camelCase, as in Kubernetes;
//! times are Unix seconds. The CLI reads them back with the same types, so a field added here
//! shows in `-o json` and `-o yaml` at once.
//!
//! | method and path | answer |
//! |---|---|
//! | `GET /v1/status` | [`Status`] |
//! | `GET /v1/peers` | `[`[`Peer`]`]` |
//! | `GET /v1/routes/advertised?peer=&family=` | `[`[`Route`]`]`: what each peer has from us |
//! | `GET /v1/routes/received?peer=&family=` | `[`[`Route`]`]`: what each peer sent us |
//! | `GET /v1/why?target=IP-OR-PREFIX` | [`crate::plan::why::Why`] |
//! | `POST /v1/diff?mode=replace\|overlay` (body: YAML) | [`Preview`]: what that configuration would change |
//! | `POST /v1/peers/ADDRESS/reset?soft=BOOL&vrouter=ASN` | [`Done`] |
//! | `POST /v1/peers/ADDRESS/refresh?vrouter=ASN` | [`Done`] |
//!
//! Errors come back with a 4xx/5xx status and an [`ApiError`].

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// What a configuration would change at the node's peers (`kbgp check --diff`, `kbgp diff`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub diff: crate::plan::diff::Diff,
    /// What loading it said (ignored kinds, LB IPAM problems).
    pub warnings: Vec<String>,
}

/// Where `kbgp run` serves the admin API unless told otherwise (`--admin-socket`,
/// `$KBGP_ADMIN_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/kbgp/kbgp.sock";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub node: String,
    pub version: String,
    /// `files: a.yaml, b.yaml` or `kubernetes`.
    pub source: String,
    pub started_at: u64,
    pub uptime_seconds: u64,
    /// The peering policy that selects this node.
    pub policy: Option<String>,
    /// Set while the newest configuration cannot be used and the last good one runs.
    pub config_error: Option<String>,
    pub peers: usize,
    pub established: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerFamily {
    pub ipv4: usize,
    pub ipv6: usize,
}

impl PerFamily {
    pub fn total(&self) -> usize {
        self.ipv4 + self.ipv6
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Messages {
    pub received: u64,
    pub sent: u64,
    pub updates_received: u64,
    pub updates_sent: u64,
}

/// A NOTIFICATION as an operator reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationInfo {
    pub at: u64,
    pub code: u8,
    pub subcode: u8,
    /// `Cease / Administrative Shutdown (6/2): "shutdown"`.
    pub text: String,
}

/// Why the session is not up, and what to check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub at: u64,
    pub text: String,
    pub hint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    pub address: IpAddr,
    pub port: u16,
    /// The virtual router's ASN (its `localASN`).
    pub vrouter: u32,
    pub local_as: u32,
    pub peer_as: u32,
    /// `iBGP` or `eBGP`.
    pub kind: String,
    pub router_id: Ipv4Addr,
    pub passive: bool,
    /// RFC 4271 state: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
    pub state: String,
    /// When the state last changed.
    pub state_since: u64,
    /// Seconds Established, when it is.
    pub uptime_seconds: Option<u64>,
    /// How many times the session came up since kbgp started.
    pub established_count: u64,
    pub local_address: Option<SocketAddr>,
    pub peer_router_id: Option<Ipv4Addr>,
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    /// Families configured for the neighbor.
    pub configured_families: Vec<String>,
    /// Families negotiated (Established only).
    pub families: Vec<String>,
    /// Capabilities negotiated (Established only).
    pub capabilities: Vec<String>,
    /// Routes the plan gives this peer.
    pub planned_routes: usize,
    /// Routes the peer has from us.
    pub advertised: PerFamily,
    /// Routes received from the peer and kept.
    pub received: PerFamily,
    /// Received routes dropped at `maxReceivedRoutes` since the session came up.
    pub received_dropped: u64,
    pub messages: Messages,
    pub last_error: Option<LastError>,
    pub last_notification_sent: Option<NotificationInfo>,
    pub last_notification_received: Option<NotificationInfo>,
    /// While kbgp waits to connect (after a failure, a reset or a settings change): seconds
    /// until its next attempt. Meanwhile it accepts the peer's connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_in_seconds: Option<u64>,
    /// The BFD session, for a neighbor with `bfd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<Bfd>,
    /// Received routes kept as stale while the peer restarts (graceful restart helper).
    #[serde(default)]
    pub received_stale: usize,
    /// While the peer restarts: what kbgp does with its routes, and for how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_restarting: Option<String>,
}

/// A peer's BFD session (RFC 5880).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bfd {
    /// AdminDown, Down, Init or Up.
    pub state: String,
    pub remote_state: String,
    /// When the state last changed (Unix seconds).
    pub since: u64,
    /// `single-hop` (RFC 5881) or `multihop` (RFC 5883).
    pub mode: String,
    /// Why it last went down, until it is Up again.
    pub diagnostic: String,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// The detection time in force, once the neighbor has been heard.
    pub detection_time_ms: Option<u64>,
    /// The transmit interval in force, before jitter.
    pub transmit_interval_ms: u64,
    pub up_count: u64,
    /// Times BFD took the BGP session down.
    pub down_count: u64,
    /// While BGP waits for BFD after BFD took it down: seconds left before it tries anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding_bgp_seconds: Option<u64>,
}

/// One route, advertised to or received from a peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    pub peer: IpAddr,
    pub vrouter: u32,
    /// `ipv4` or `ipv6`.
    pub family: String,
    pub prefix: IpNet,
    /// ADD-PATH path identifier, when the peer sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_id: Option<u32>,
    pub next_hop: Option<IpAddr>,
    /// `igp`, `egp` or `incomplete`.
    pub origin: Option<String>,
    /// Empty for a route of our own AS (iBGP).
    pub as_path: String,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ext_communities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub originator_id: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_list: Vec<Ipv4Addr>,
}

/// The answer to `reset` and `refresh`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Done {
    pub peer: IpAddr,
    pub vrouter: u32,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// `ipv4` / `ipv6`, the family filter of the routes endpoints.
pub fn parse_family(s: &str) -> Result<crate::wire::Family, String> {
    match s {
        "ipv4" | "ipv4-unicast" => Ok(crate::wire::Family::IPV4_UNICAST),
        "ipv6" | "ipv6-unicast" => Ok(crate::wire::Family::IPV6_UNICAST),
        other => Err(format!("family {other:?}: use ipv4 or ipv6")),
    }
}

/// An address or a prefix: `20.0.0.100` is `20.0.0.100/32`.
pub fn parse_target(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is neither an IP address nor a prefix (20.0.0.100, 10.1.0.0/24, 2001:db8::1)"))
}

/// Now, in Unix seconds, as the documents carry times.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl NotificationInfo {
    pub fn new(n: &crate::wire::Notification, at: u64) -> NotificationInfo {
        NotificationInfo { at, code: n.code, subcode: n.subcode, text: n.to_string() }
    }
}

impl Route {
    /// One route as the API shows it, from the attributes kbgp holds for it.
    pub fn new(
        peer: IpAddr,
        vrouter: u32,
        prefix: IpNet,
        path_id: Option<u32>,
        next_hop: Option<IpAddr>,
        a: &crate::wire::PathAttributes,
    ) -> Route {
        let strings = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>();
        Route {
            peer,
            vrouter,
            family: crate::wire::Family::of_prefix(&prefix).label(),
            prefix,
            path_id,
            next_hop,
            origin: a.origin.map(|o| o.name().to_string()),
            as_path: a.as_path.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            local_pref: a.local_pref,
            med: a.med,
            communities: strings(&mut a.communities.iter().map(|c| c.to_string())),
            large_communities: strings(&mut a.large_communities.iter().map(|c| c.to_string())),
            ext_communities: strings(&mut a.ext_communities.iter().map(|c| c.to_string())),
            originator_id: a.originator_id,
            cluster_list: a.cluster_list.clone(),
        }
    }
}

#[cfg(test)]
impl Peer {
    /// An iBGP peer of AS65005 in `state`, with nothing negotiated, counted or failed yet.
    pub fn sample(address: &str, state: &str) -> Peer {
        Peer {
            address: address.parse().expect("test address"),
            port: 179,
            vrouter: 65005,
            local_as: 65005,
            peer_as: 65005,
            kind: "iBGP".into(),
            router_id: Ipv4Addr::new(10, 0, 5, 11),
            passive: false,
            state: state.into(),
            state_since: 1_796_000_000,
            uptime_seconds: None,
            established_count: 0,
            local_address: None,
            peer_router_id: None,
            hold_time: None,
            keepalive: None,
            configured_families: vec!["ipv4".into(), "ipv6".into()],
            families: vec![],
            capabilities: vec![],
            planned_routes: 0,
            advertised: PerFamily::default(),
            received: PerFamily::default(),
            received_dropped: 0,
            messages: Messages::default(),
            last_error: None,
            last_notification_sent: None,
            last_notification_received: None,
            next_attempt_in_seconds: None,
            bfd: None,
            received_stale: 0,
            peer_restarting: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_families() {
        assert_eq!(parse_target("20.0.0.100").unwrap().to_string(), "20.0.0.100/32");
        assert_eq!(parse_target(" 10.1.0.7/24 ").unwrap().to_string(), "10.1.0.0/24");
        assert_eq!(parse_target("2001:db8::1").unwrap().to_string(), "2001:db8::1/128");
        assert!(parse_target("web").unwrap_err().contains("neither an IP address nor a prefix"));
        assert_eq!(parse_family("ipv6").unwrap().label(), "ipv6");
        assert_eq!(parse_family("l2vpn").unwrap_err(), "family \"l2vpn\": use ipv4 or ipv6");
    }

    #[test]
    fn a_route_shows_its_attributes_as_text() {
        use crate::wire::attribute::{Community, LargeCommunity, Origin};
        let a = crate::wire::PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(crate::wire::attribute::AsPath::sequence([65100, 65200])),
            local_pref: Some(100),
            communities: vec![Community(65000 << 16 | 100)],
            large_communities: vec![LargeCommunity { global: 65000, local1: 1, local2: 2 }],
            ..Default::default()
        };
        let r = Route::new(
            "10.0.5.1".parse().unwrap(),
            65005,
            "20.0.0.100/32".parse().unwrap(),
            None,
            Some("10.0.5.11".parse().unwrap()),
            &a,
        );
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["asPath"], "65100 65200");
        assert_eq!(j["origin"], "igp");
        assert_eq!(j["communities"][0], "65000:100");
        assert_eq!(j["largeCommunities"][0], "65000:1:2");
        assert_eq!(j["family"], "ipv4");
        assert!(j.get("pathId").is_none());
        let back: Route = serde_json::from_value(j).unwrap();
        assert_eq!(back, r);
    }
}
