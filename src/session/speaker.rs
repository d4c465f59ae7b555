//! Every peer of the node and the export groups' tables, sans-IO: where plans meet sessions.
//!
//! [`Speaker::apply`] plans a World (with the node's [`Planner`], which hands over only the
//! routes that changed, or all of them straight into the tables after a policy change) and
//! makes the peers match, touching only what differs: only changed routes get a new version
//! in their group's table; a peer whose settings are unchanged keeps its session; a peer
//! whose settings changed is stopped (Cease 6/6) and replaced by one that connects
//! [`RESET_DELAY`] later; a peer that left the plan is stopped (Cease 6/3). Stopped cores are
//! handed back so the driver can write their last messages. The driver keeps the sockets;
//! this keeps the decisions.

use super::config::PeerKey;
use super::peer::{Peer, RESET_DELAY};
use crate::config::World;
use crate::plan::{GroupKey, Plan, PlanError, Planner, RouteSink};
use crate::rib::{AdvertAttrs, OutTable};
use crate::wire::Notification;
use crate::wire::error::cease_sub;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

struct Entry {
    core: Peer,
    group: GroupKey,
}

pub struct Speaker {
    planner: Planner,
    peers: BTreeMap<PeerKey, Entry>,
    tables: HashMap<GroupKey, OutTable>,
    /// BFD sessions by their discriminator.
    bfd: HashMap<u32, PeerKey>,
    /// Until the first plan: how long ago the previous kbgp on this node was last alive.
    restarted: Option<std::time::Duration>,
    next_discriminator: Option<u32>,
}

/// What [`Speaker::apply`] did.
pub struct Applied {
    pub plan: Arc<Plan>,
    pub changes: Vec<Change>,
    /// Every route was planned again (the first World, or a policy, node or pool change).
    pub full: bool,
}

/// The planner's routes, put straight into the groups' tables. During a full update the
/// group's table is out of the map, so each route costs no lookup of its group.
struct Tables<'a> {
    tables: &'a mut HashMap<GroupKey, OutTable>,
    current: Option<(GroupKey, OutTable)>,
    full: bool,
}

impl RouteSink for Tables<'_> {
    fn reset(&mut self) {
        self.full = true;
    }
    fn begin(&mut self, group: &GroupKey) {
        let mut t = self.tables.remove(group).unwrap_or_default();
        t.begin();
        self.current = Some((group.clone(), t));
    }
    fn put(&mut self, group: &GroupKey, prefix: IpNet, attrs: Option<&Arc<AdvertAttrs>>) {
        if let Some((g, t)) = self.current.as_mut().filter(|(g, _)| g == group) {
            let _ = g;
            match attrs {
                Some(a) => t.keep(prefix, a),
                None => t.remove(&prefix),
            };
            return;
        }
        let t = match self.tables.get_mut(group) {
            Some(t) => t,
            None => self.tables.entry(group.clone()).or_default(),
        };
        match attrs {
            Some(a) => t.upsert(prefix, a),
            None => t.remove(&prefix),
        };
    }
    fn end(&mut self, _: &GroupKey) {
        if let Some((g, mut t)) = self.current.take() {
            t.sweep();
            self.tables.insert(g, t);
        }
    }
}

/// What [`Speaker::apply`] did to one peer.
pub enum Change {
    /// A new core runs under this key (a new peer, or one restarted for new settings).
    Started(PeerKey),
    /// This core was stopped and taken out: drain its I/O, then drop it.
    Stopped(Box<Peer>),
}

impl Speaker {
    /// The speaker of node `node`.
    pub fn new(node: &str) -> Speaker {
        Speaker {
            planner: Planner::new(node),
            peers: BTreeMap::new(),
            tables: HashMap::new(),
            bfd: HashMap::new(),
            restarted: None,
            next_discriminator: None,
        }
    }

    /// kbgp restarted: the previous one was alive `ago`. The first plan's sessions with
    /// graceful restart whose restart time has not passed since then set the Restart State
    /// bit (RFC 4724 §3).
    pub fn set_restarted(&mut self, ago: std::time::Duration) {
        self.restarted = Some(ago);
    }

    pub fn keys(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.peers.keys().copied()
    }

    /// A peer's core and its group's table.
    pub fn get(&mut self, key: &PeerKey) -> Option<(&mut Peer, &mut OutTable)> {
        let e = self.peers.get_mut(key)?;
        let t = self.tables.entry(e.group.clone()).or_default();
        Some((&mut e.core, t))
    }

    /// Whether another established peer drains the same table as `key`, so that UPDATE
    /// chunks are worth keeping for it.
    pub fn sharing(&self, key: &PeerKey) -> bool {
        let Some(e) = self.peers.get(key) else { return false };
        self.peers.iter().any(|(k, o)| k != key && o.group == e.group && o.core.established_conn().is_some())
    }

    /// The earliest deadline of any peer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers.values().filter_map(|e| e.core.poll_timeout()).min()
    }

    /// Runs the deadlines due at `now`; returns the peers that had one.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<PeerKey> {
        let mut due = Vec::new();
        for (k, e) in &mut self.peers {
            if e.core.poll_timeout().is_some_and(|t| t <= now) {
                e.core.handle_timeout(now);
                due.push(*k);
            }
        }
        due
    }

    /// Frees the tombstones of `key`'s table that every established peer of it has passed.
    pub fn collect(&mut self, key: &PeerKey) {
        let Some(group) = self.peers.get(key).map(|e| &e.group) else { return };
        let min = self.peers.values().filter(|e| e.group == *group).filter_map(|e| e.core.cursor()).min();
        if let Some(t) = self.tables.get_mut(group) {
            t.collect(min.unwrap_or(t.version()));
        }
    }

    /// Plans `world` and makes the tables and peers match. `since`: when the change behind it
    /// was seen (the start of the update latency). `seed` gives each new core its jitter.
    /// On a plan error nothing changes.
    pub fn apply(
        &mut self,
        world: Arc<World>,
        now: Instant,
        since: Instant,
        seed: impl Fn(&str) -> u64,
    ) -> Result<Applied, PlanError> {
        let mut sink = Tables { tables: &mut self.tables, current: None, full: false };
        let plan = self.planner.update_into(world, &mut sink)?;
        let full = sink.full;
        let mut changes = Vec::new();
        let wanted: HashMap<PeerKey, crate::plan::PeerPlan> = plan.peers().map(|(_, p)| (p.key, p.clone())).collect();
        let gone: Vec<PeerKey> = self.peers.keys().filter(|k| !wanted.contains_key(k)).copied().collect();
        for k in gone {
            info!(peer = %k.address, vrouter = %k.local_asn, "peer removed from the configuration");
            changes.extend(
                self.stop(&k, now, Notification::cease(cease_sub::PEER_DECONFIGURED, ""))
                    .map(|p| Change::Stopped(Box::new(p))),
            );
        }
        let groups: HashSet<&GroupKey> = wanted.values().map(|p| &p.group).collect();
        let restarted = self.restarted.take();
        for (key, p) in &wanted {
            if let Some(e) = self.peers.get_mut(key)
                && e.group != p.group
                && e.core.settings().same_session(&p.settings)
            {
                // Another export group, the same session: the peer moves to the new table.
                e.group = p.group.clone();
                e.core.table_replaced(now);
            }
            let at = match self.peers.get_mut(key) {
                Some(e) if e.core.settings() == &p.settings => continue,
                Some(e) if e.core.settings().same_session(&p.settings) => {
                    e.core.set_bfd(now, p.settings.bfd);
                    continue;
                }
                Some(_) => {
                    info!(
                        peer = %key.address,
                        vrouter = %key.local_asn,
                        "session settings changed: restarting the session in {} s",
                        RESET_DELAY.as_secs()
                    );
                    let n = Notification::cease(cease_sub::OTHER_CONFIGURATION_CHANGE, "");
                    changes.extend(self.stop(key, now, n).map(|p| Change::Stopped(Box::new(p))));
                    Some(now + RESET_DELAY)
                }
                None => None,
            };
            let mut core = Peer::new(*key, p.settings.clone(), seed(&key.to_string()));
            if p.settings.bfd.is_some() {
                let d = self.discriminator(&seed);
                core.attach_bfd(now, d, seed(&format!("bfd {key}")));
                self.bfd.insert(d, *key);
            }
            let within = |rt: u16| restarted.is_some_and(|ago| ago < std::time::Duration::from_secs(rt.into()));
            if p.settings.session.graceful_restart.is_some_and(within) {
                core.set_restarting(true);
            }
            core.start(now, at);
            self.peers.insert(*key, Entry { core, group: p.group.clone() });
            changes.push(Change::Started(*key));
        }
        self.tables.retain(|g, _| groups.contains(g));
        for e in self.peers.values_mut() {
            if let Some(t) = self.tables.get(&e.group) {
                e.core.table_changed(t.version(), since);
            }
        }
        Ok(Applied { plan, changes, full })
    }

    /// Stops and takes out one peer.
    fn stop(&mut self, key: &PeerKey, now: Instant, n: Notification) -> Option<Peer> {
        let mut e = self.peers.remove(key)?;
        if let Some(d) = e.core.bfd_discriminator() {
            self.bfd.remove(&d);
        }
        e.core.retire(now, n);
        Some(e.core)
    }

    /// A BFD discriminator no session uses: random-looking, non-zero (RFC 5880 §6.3).
    fn discriminator(&mut self, seed: impl Fn(&str) -> u64) -> u32 {
        let mut d = *self.next_discriminator.get_or_insert_with(|| (seed("bfd discriminators") as u32 >> 1) | 1);
        while d == 0 || self.bfd.contains_key(&d) {
            d = d.wrapping_add(1);
        }
        self.next_discriminator = Some(d.wrapping_add(1));
        d
    }

    /// A BFD datagram from `from`, on the multihop port or not, that arrived with `ttl`:
    /// handed to its session (by Your Discriminator, or by address for a first packet,
    /// RFC 5880 §6.3). Returns the peer it went to, or why it was discarded: a short reason
    /// for the metric and the detail.
    pub fn handle_bfd(
        &mut self,
        now: Instant,
        from: std::net::IpAddr,
        multihop: bool,
        ttl: u8,
        datagram: &[u8],
    ) -> Result<PeerKey, (&'static str, String)> {
        let p = crate::bfd::Packet::decode(datagram).map_err(|e| ("malformed", e.to_string()))?;
        let from = from.to_canonical();
        let unknown = |why: String| ("unknown_session", why);
        let key = if p.your_discriminator != 0 {
            let key = *self
                .bfd
                .get(&p.your_discriminator)
                .ok_or_else(|| unknown(format!("no session has discriminator {}", p.your_discriminator)))?;
            if key.address != from {
                return Err(unknown(format!(
                    "discriminator {} is the session with {}",
                    p.your_discriminator, key.address
                )));
            }
            key
        } else {
            let bfd = |e: &&Entry| e.core.settings().bfd.is_some_and(|b| b.multihop == multihop);
            let mut candidates = self.peers.iter().filter(|(k, e)| k.address == from && bfd(e));
            // Two virtual routers peering with one address: the session not yet paired, or
            // the one this neighbor's session is paired with.
            let pick = candidates.clone().find(|(_, e)| {
                e.core
                    .bfd_session()
                    .is_some_and(|s| s.remote_discriminator() == 0 || s.remote_discriminator() == p.my_discriminator)
            });
            *pick.or_else(|| candidates.next()).ok_or_else(|| unknown(format!("no BFD session with {from}")))?.0
        };
        let e = self.peers.get_mut(&key).ok_or_else(|| unknown(format!("no peer {key}")))?;
        e.core.handle_bfd(now, multihop, ttl, &p)?;
        Ok(key)
    }

    /// kbgp shuts down: every peer ends as `mode` says (with `n` where a NOTIFICATION goes);
    /// hands their cores back.
    pub fn shutdown(&mut self, now: Instant, n: Notification, mode: super::peer::Shutdown) -> Vec<Peer> {
        let peers = std::mem::take(&mut self.peers);
        self.bfd.clear();
        peers
            .into_iter()
            .map(|(k, mut e)| {
                let said = e.core.shutdown(now, n.clone(), mode);
                info!(peer = %k.address, vrouter = %k.local_asn, "shutdown: {said}");
                e.core
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use crate::session::State;
    use crate::session::peer::Io;

    /// A World of node n1 under the seed's policy, with `services` selected Services.
    fn world(extra_policy: &str, services: usize) -> Arc<World> {
        let node = "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {rack: rack0}}\nspec: {podCIDRs: [10.1.0.0/24]}\nstatus: {addresses: [{type: InternalIP, address: 10.0.5.11}]}\n";
        let mut docs = vec![
            crate::test_fixtures::POLICY
                .replace("      peerASN: 65005\n", &format!("      peerASN: 65005\n{extra_policy}")),
            node.into(),
        ];
        for i in 0..services {
            docs.push(format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, labels: {{advertise-bgp: \"true\"}}}}\nspec: {{type: LoadBalancer}}\nstatus: {{loadBalancer: {{ingress: [{{ip: 20.0.0.{i}}}]}}}}\n"
            ));
        }
        Arc::new(load_str(&docs.join("---\n"), "t").unwrap().world)
    }

    fn apply(s: &mut Speaker, w: Arc<World>, now: Instant) -> Vec<Change> {
        s.apply(w, now, now, |_| 1).unwrap().changes
    }

    fn started(c: &[Change]) -> usize {
        c.iter().filter(|c| matches!(c, Change::Started(_))).count()
    }

    fn cease(core: &mut Peer) -> Vec<Io> {
        std::iter::from_fn(|| core.poll_io()).collect()
    }

    #[test]
    fn a_plan_starts_peers_and_fills_their_table() {
        let mut s = Speaker::new("n1");
        let now = Instant::now();
        let c = apply(&mut s, world("", 3), now);
        assert_eq!(started(&c), 1);
        let key = s.keys().next().unwrap();
        let (core, table) = s.get(&key).unwrap();
        assert_eq!(core.state(), State::Connect);
        assert_eq!(table.total(), 4, "three Service IPs and the pod CIDR");
    }

    #[test]
    fn unchanged_settings_keep_the_session_and_only_routes_change() {
        let mut s = Speaker::new("n1");
        let now = Instant::now();
        apply(&mut s, world("", 3), now);
        let key = s.keys().next().unwrap();
        let v = s.get(&key).unwrap().1.version();
        let c = apply(&mut s, world("", 4), now);
        assert!(c.is_empty(), "same settings: the peer is not touched");
        let (_, table) = s.get(&key).unwrap();
        assert_eq!(table.version(), v + 1, "one route added, one version");
        assert_eq!(table.total(), 5);
        // The same World again: nothing at all.
        assert!(apply(&mut s, world("", 4), now).is_empty());
        assert_eq!(s.get(&key).unwrap().1.version(), v + 1);
    }

    #[test]
    fn a_policy_change_replaces_the_routes_in_place() {
        let mut s = Speaker::new("n1");
        let now = Instant::now();
        apply(&mut s, world("", 3), now);
        let key = s.keys().next().unwrap();
        let v = s.get(&key).unwrap().1.version();
        // Pod CIDRs no longer exported: a full replan; only that route changes in the table.
        let w = world("", 3);
        let mut w2 = (*w).clone();
        let mut p = (*w2.policies[0]).clone();
        p.virtual_routers[0].exports[0].pod_cidrs[0].enabled = false;
        w2.policies[0] = Arc::new(p);
        let a = s.apply(Arc::new(w2), now, now, |_| 1).unwrap();
        assert!(a.full && a.changes.is_empty(), "the session stays");
        let (_, table) = s.get(&key).unwrap();
        assert_eq!((table.total(), table.version()), (3, v + 1), "one withdrawal, one version");
    }

    #[test]
    fn new_path_attributes_move_the_peer_to_a_full_table() {
        let mut s = Speaker::new("n1");
        let now = Instant::now();
        apply(&mut s, world("", 3), now);
        let key = s.keys().next().unwrap();
        let rules = "      advertisedPathAttributes: [{selectorType: CiliumLoadBalancerIPPool, communities: {standard: [\"65000:1\"]}}]\n";
        let a = s.apply(world(rules, 3), now, now, |_| 1).unwrap();
        assert!(a.changes.is_empty(), "the core stays");
        let (_, table) = s.get(&key).unwrap();
        assert_eq!(table.total(), 4, "the peer's new group has every route");
    }

    #[test]
    fn changed_settings_restart_with_a_delay_and_removed_peers_get_cease() {
        let mut s = Speaker::new("n1");
        let now = Instant::now();
        apply(&mut s, world("", 1), now);
        let key = s.keys().next().unwrap();
        assert_eq!(cease(s.get(&key).unwrap().0), vec![Io::Connect]);
        let c = apply(&mut s, world("      holdTimeSeconds: 30\n", 1), now);
        assert_eq!(c.len(), 2);
        let Change::Stopped(mut old) = c.into_iter().next().unwrap() else { panic!("the old core first") };
        // It had no connection: no NOTIFICATION to write, only the cancelled attempt.
        assert_eq!(cease(&mut old), vec![Io::CancelConnect]);
        let (core, _) = s.get(&key).unwrap();
        assert_eq!(core.fsm().next_attempt(), Some(now + RESET_DELAY));
        let mut none = (*world("", 1)).clone();
        none.policies.clear();
        let c = apply(&mut s, Arc::new(none), now);
        assert!(matches!(&c[..], [Change::Stopped(_)]));
        assert!(s.get(&key).is_none());
        assert_eq!(s.tables.len(), 0, "a group no peer uses is dropped");
    }

    fn bfd_world(bfd: &str) -> Arc<World> {
        let w = world("", 1);
        let mut w2 = (*w).clone();
        let mut p = (*w2.policies[0]).clone();
        p.virtual_routers[0].neighbors[0].bfd = (!bfd.is_empty()).then(|| {
            let y = crate::test_fixtures::kbgp_kind(crate::test_fixtures::POLICY)
                .replace("      peerASN: 65005\n", &format!("      peerASN: 65005\n      bfd: {bfd}\n"));
            load_str(&y, "t").unwrap().world.policies[0].virtual_routers[0].neighbors[0].bfd.unwrap()
        });
        w2.policies[0] = Arc::new(p);
        Arc::new(w2)
    }

    fn bfd_packet(my: u32, your: u32) -> [u8; 24] {
        crate::bfd::Packet {
            diag: crate::bfd::Diag::NONE,
            state: if your == 0 { crate::bfd::State::Down } else { crate::bfd::State::Init },
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: my,
            your_discriminator: your,
            desired_min_tx: 1_000_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 0,
        }
        .encode()
    }

    #[test]
    fn bfd_datagrams_reach_their_session_by_discriminator_or_address() {
        let mut s = Speaker::new("n1");
        let now = Instant::now();
        apply(&mut s, bfd_world("{}"), now);
        let key = s.keys().next().unwrap();
        let disc = s.get(&key).unwrap().0.bfd_discriminator().unwrap();
        assert_ne!(disc, 0);
        let rr = key.address;
        let other: std::net::IpAddr = "10.0.5.99".parse().unwrap();
        assert_eq!(s.handle_bfd(now, rr, false, 255, &bfd_packet(77, 0)), Ok(key), "a first packet, by address");
        assert_eq!(s.get(&key).unwrap().0.bfd_session().unwrap().state(), crate::bfd::State::Init);
        assert_eq!(s.handle_bfd(now, rr, false, 255, &bfd_packet(77, disc)), Ok(key), "then by discriminator");
        assert_eq!(s.get(&key).unwrap().0.bfd_session().unwrap().state(), crate::bfd::State::Up);
        #[track_caller]
        fn reason(r: Result<PeerKey, (&'static str, String)>) -> &'static str {
            r.map_err(|e| e.0).unwrap_err()
        }
        assert_eq!(reason(s.handle_bfd(now, other, false, 255, &bfd_packet(77, 0))), "unknown_session");
        assert_eq!(reason(s.handle_bfd(now, other, false, 255, &bfd_packet(77, disc))), "unknown_session");
        assert_eq!(reason(s.handle_bfd(now, rr, false, 255, &bfd_packet(77, disc + 1000))), "unknown_session");
        assert_eq!(reason(s.handle_bfd(now, rr, false, 255, &[0x20; 10])), "malformed");
        assert_eq!(reason(s.handle_bfd(now, rr, true, 255, &bfd_packet(77, 0))), "unknown_session", "not multihop");
        // The IPv4-mapped form a dual-stack socket reports is the same address.
        let mapped = std::net::IpAddr::V6(match rr {
            std::net::IpAddr::V4(a) => a.to_ipv6_mapped(),
            v6 => panic!("{v6}"),
        });
        assert_eq!(s.handle_bfd(now, mapped, false, 255, &bfd_packet(77, disc)), Ok(key));
    }

    #[test]
    fn new_bfd_rates_keep_the_session_and_bfd_on_or_off_restarts_it() {
        let mut s = Speaker::new("n1");
        let now = Instant::now();
        apply(&mut s, bfd_world("{}"), now);
        let key = s.keys().next().unwrap();
        let disc = s.get(&key).unwrap().0.bfd_discriminator();
        assert!(apply(&mut s, bfd_world("{transmitInterval: 100}"), now).is_empty(), "a Poll Sequence, no reset");
        let core = s.get(&key).unwrap().0;
        assert_eq!(core.bfd_discriminator(), disc);
        assert_eq!(core.bfd_session().unwrap().config().transmit_interval, std::time::Duration::from_millis(100));
        let c = apply(&mut s, bfd_world(""), now);
        assert_eq!(c.len(), 2, "BFD off: a new session");
        assert!(s.bfd.is_empty(), "the discriminator is free again");
        assert!(s.get(&key).unwrap().0.bfd_session().is_none());
    }
}
