//! Kubernetes mode: this node's `BGPNodeStatus` (see `config/node_status.rs`), and, when asked
//! (`--service-events`), an Event on a Service when what this node announces of it changes.
//!
//! Both are paced so that a cluster of thousands of nodes does not flood the API server: the
//! status is written only when its content changes, at most once per `--node-status-interval`,
//! after a per-node random delay; an Event waits a per-node delay of up to [`EVENT_SPREAD`],
//! and there is at most one per Service per [`EVENT_INTERVAL`] and at most
//! [`EVENTS_PER_MINUTE`] per node, the rest dropped and counted.

use super::admin::{SharedView, collect_peers};
use crate::config::node_status::{BGPNodeStatus, NodeStatus, NodeStatusSpec, Pacer, node_status, steady};
use crate::metrics::Metrics;
use crate::plan::ServiceAnnouncement;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// How often the node's state is looked at (reading it is cheap; writing is paced).
const POLL: Duration = Duration::from_secs(2);
/// At most one Event per Service in this time.
pub const EVENT_INTERVAL: Duration = Duration::from_secs(30);
/// At most this many Events per node per minute.
pub const EVENTS_PER_MINUTE: usize = 10;
/// The longest a node waits before reporting a change, so that nodes spread their Events.
pub const EVENT_SPREAD: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Options {
    /// Write this node's BGPNodeStatus.
    pub node_status: bool,
    /// Shortest time between two writes of it.
    pub interval: Duration,
    /// Post an Event on a Service when its announcement by this node changes.
    pub service_events: bool,
}

/// What an Event says about a Service on this node.
fn describe(node: &str, a: &ServiceAnnouncement) -> (EventType, &'static str, String) {
    if a.announced.is_empty() {
        let why = a.not_announced.as_ref().map(|(p, w)| format!(": {p}: {w}")).unwrap_or_default();
        (EventType::Normal, "NotAnnounced", format!("node {node} announces none of its addresses{why}"))
    } else {
        let list: Vec<String> = a.announced.iter().map(|p| p.to_string()).collect();
        (EventType::Normal, "Announced", format!("node {node} announces {}", list.join(", ")))
    }
}

/// Decides which announcement changes become Events. Pure: the caller passes the time.
#[derive(Debug, Default)]
pub struct EventPacer {
    /// What the Events said last, per Service.
    reported: HashMap<String, ServiceAnnouncement>,
    last_event: HashMap<String, Instant>,
    recent: VecDeque<Instant>,
    primed: bool,
    pub dropped: u64,
    /// When each Service's state was first seen to differ from what was reported.
    changed: HashMap<String, Instant>,
    /// This node's wait before reporting a change (see [`EventPacer::new`]).
    delay: Duration,
}

impl EventPacer {
    /// A change is reported once it has lasted a per-node delay of up to `spread`, derived
    /// from `seed`: when every node sees the same change (a Service labelled), their Events
    /// reach the API server over `spread` rather than in the same second, and a change undone
    /// within the delay is no Event at all.
    pub fn new(spread: Duration, seed: u64) -> EventPacer {
        let ms = spread.as_millis() as u64;
        let delay = Duration::from_millis(if ms == 0 { 0 } else { seed % (ms + 1) });
        EventPacer { delay, ..EventPacer::default() }
    }

    /// The Services whose state differs from what was last reported and may be reported now.
    /// The first call only records the state: a restart of kbgp is not news.
    pub fn due(
        &mut self,
        now: &BTreeMap<String, ServiceAnnouncement>,
        t: Instant,
    ) -> Vec<(String, ServiceAnnouncement)> {
        if !self.primed {
            self.primed = true;
            self.reported = now.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            return Vec::new();
        }
        // A Service that is gone needs no Event; forget it.
        self.reported.retain(|k, _| now.contains_key(k));
        let reported = &self.reported;
        self.changed.retain(|k, _| now.get(k).is_some_and(|v| reported.get(k) != Some(v)));
        while self.recent.front().is_some_and(|x| t.duration_since(*x) >= Duration::from_secs(60)) {
            self.recent.pop_front();
        }
        let mut out = Vec::new();
        for (k, v) in now {
            let known = self.reported.get(k);
            if known == Some(v) || (known.is_none() && v.announced.is_empty()) {
                continue;
            }
            let since = *self.changed.entry(k.clone()).or_insert(t);
            if t.duration_since(since) < self.delay {
                continue; // not for long enough yet
            }
            if self.last_event.get(k).is_some_and(|x| t.duration_since(*x) < EVENT_INTERVAL) {
                continue; // reported later, if still different
            }
            if self.recent.len() >= EVENTS_PER_MINUTE {
                self.dropped += 1;
                self.reported.insert(k.clone(), v.clone());
                continue;
            }
            self.changed.remove(k);
            self.recent.push_back(t);
            self.last_event.insert(k.clone(), t);
            self.reported.insert(k.clone(), v.clone());
            out.push((k.clone(), v.clone()));
        }
        out
    }
}

struct Writer {
    client: kube::Client,
    node: String,
    metrics: Arc<Metrics>,
    created: bool,
    failing: bool,
}

impl Writer {
    /// Creates the object, owned by the Node, if it is not there yet.
    async fn ensure(&mut self) -> Result<(), String> {
        let api: Api<BGPNodeStatus> = Api::all(self.client.clone());
        if self.created {
            return Ok(());
        }
        if api.get_opt(&self.node).await.map_err(|e| e.to_string())?.is_some() {
            self.created = true;
            return Ok(());
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let n = nodes.get(&self.node).await.map_err(|e| format!("cannot read Node {}: {e}", self.node))?;
        let uid = n.metadata.uid.ok_or_else(|| format!("Node {} has no metadata.uid to own its status", self.node))?;
        let mut o = BGPNodeStatus::new(&self.node, NodeStatusSpec { node_name: self.node.clone() });
        o.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: self.node.clone(),
            uid,
            ..Default::default()
        }]);
        match api.create(&PostParams::default(), &o).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.to_string()),
        }
        self.created = true;
        Ok(())
    }

    async fn write(&mut self, status: &NodeStatus) -> bool {
        let r = async {
            self.ensure().await?;
            let api: Api<BGPNodeStatus> = Api::all(self.client.clone());
            let patch = serde_json::json!({"status": status});
            match api.patch_status(&self.node, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.created = false; // deleted under us: create it again next time
                    Err(format!("BGPNodeStatus {} is gone", self.node))
                }
                Err(e) => Err(e.to_string()),
            }
        }
        .await;
        match r {
            Ok(()) => {
                self.metrics.node_status_writes.with_label_values(&["written"]).inc();
                if self.failing {
                    info!(node = %self.node, "BGPNodeStatus written again");
                }
                self.failing = false;
                debug!(node = %self.node, peers_up = %status.peers_up, "BGPNodeStatus written");
                true
            }
            Err(e) => {
                self.metrics.node_status_writes.with_label_values(&["failed"]).inc();
                if !self.failing {
                    warn!(node = %self.node, "cannot write BGPNodeStatus, trying again later: {e}");
                }
                self.failing = true;
                false
            }
        }
    }
}

/// The status of a node whose kbgp is stopping: every session about to close.
fn stopped(mut s: NodeStatus) -> NodeStatus {
    const WHY: &str = "kbgp on this node stopped";
    s.peers_up = format!("0/{}", s.peers.len());
    s.routes_advertised = 0;
    s.routes_received = 0;
    s.last_error = Some(WHY.into());
    for p in s.bgp_instances.iter_mut().flat_map(|i| i.peers.iter_mut()) {
        p.peering_state = "idle".into();
        (p.timers, p.established_time) = (None, None);
        for c in &mut p.route_count {
            (c.received, c.advertised) = (0, 0);
        }
    }
    for p in &mut s.peers {
        p.state = "Idle".into();
        p.advertised = 0;
        p.received = 0;
        p.last_error = Some(WHY.into());
    }
    s
}

/// Starts the writer; send on the returned channel to stop it.
pub fn start(
    client: kube::Client,
    node: String,
    view: SharedView,
    metrics: Arc<Metrics>,
    opts: Options,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop_tx, mut stop) = oneshot::channel();
    let task = tokio::spawn(async move {
        let recorder = Recorder::new(
            client.clone(),
            Reporter { controller: "kbgp".into(), instance: Some(format!("kbgp-{node}")) },
        );
        let mut writer =
            Writer { client, node: node.clone(), metrics: metrics.clone(), created: false, failing: false };
        if opts.node_status {
            // At 0 from the start, so that the alert rules' increase() sees the first write.
            for result in ["written", "failed"] {
                let _ = metrics.node_status_writes.with_label_values(&[result]);
            }
        }
        let mut pacer = Pacer::new(opts.interval, super::seed(&node));
        let mut last: Option<NodeStatus> = None;
        let mut events = EventPacer::new(EVENT_SPREAD, super::seed(&node));
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => {
                    // Say so before the sessions go, so the status does not show a stopped
                    // kbgp as up. (A crash cannot; the pod's restart count and metrics can.)
                    if opts.node_status && writer.created {
                        let plan = view.read().ok().map(|v| v.plan.clone()).unwrap_or_default();
                        let status = stopped(node_status(&plan, None, &collect_peers(&view).await));
                        let _ = tokio::time::timeout(Duration::from_secs(2), writer.write(&status)).await;
                    }
                    return;
                }
                _ = tick.tick() => {}
            }
            let (plan, config_error, services, synced) = match view.read() {
                Ok(v) => {
                    // Only the Events need the per-Service summary.
                    let services = if opts.service_events { v.plan.services(&v.world) } else { Default::default() };
                    (v.plan.clone(), v.config_error.clone(), services, !v.plan.node.is_empty())
                }
                Err(_) => return,
            };
            if !synced {
                continue; // nothing planned yet: the first World has not arrived
            }
            if opts.node_status {
                let peers = collect_peers(&view).await;
                let mut status = node_status(&plan, config_error, &peers);
                if let Some(before) = &last {
                    steady(before, &mut status);
                }
                last = Some(status.clone());
                let now = tokio::time::Instant::now().into_std();
                if pacer.due(&status, now).is_some_and(|at| at <= now) {
                    let ok = writer.write(&status).await;
                    pacer.attempted(&status, ok, now);
                }
            }
            if opts.service_events {
                let now = tokio::time::Instant::now().into_std();
                let dropped = events.dropped;
                for (key, a) in events.due(&services, now) {
                    let Some((ns, name)) = key.split_once('/') else { continue };
                    let (type_, reason, note) = describe(&node, &a);
                    let reference = ObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Service".into()),
                        namespace: Some(ns.into()),
                        name: Some(name.into()),
                        ..Default::default()
                    };
                    let ev = Event {
                        type_,
                        reason: reason.into(),
                        note: Some(note),
                        action: "Announce".into(),
                        secondary: None,
                    };
                    match recorder.publish(&ev, &reference).await {
                        Ok(()) => metrics.service_events.with_label_values(&["sent"]).inc(),
                        Err(e) => {
                            metrics.service_events.with_label_values(&["failed"]).inc();
                            debug!(service = %key, "cannot post the Event: {e}");
                        }
                    }
                }
                if events.dropped > dropped {
                    metrics.service_events.with_label_values(&["dropped"]).inc_by(events.dropped - dropped);
                }
            }
        }
    });
    (stop_tx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(prefixes: &[&str]) -> ServiceAnnouncement {
        ServiceAnnouncement {
            announced: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
            not_announced: prefixes.is_empty().then(|| ("20.0.0.100/32".parse().unwrap(), "no".into())),
        }
    }

    #[test]
    fn events_only_for_changes_and_paced() {
        let t0 = Instant::now();
        let mut p = EventPacer::default();
        let mut m = BTreeMap::new();
        m.insert("default/web".to_string(), state(&["20.0.0.100/32"]));
        assert!(p.due(&m, t0).is_empty(), "the state at start is not news");
        assert!(p.due(&m, t0 + Duration::from_secs(1)).is_empty());
        m.insert("default/web".to_string(), state(&[]));
        let due = p.due(&m, t0 + Duration::from_secs(2));
        assert_eq!(due.len(), 1);
        let (_, reason, note) = describe("n1", &due[0].1);
        assert_eq!(
            (reason, note.as_str()),
            ("NotAnnounced", "node n1 announces none of its addresses: 20.0.0.100/32: no")
        );
        // Back within the interval: held until the interval has passed, then reported.
        m.insert("default/web".to_string(), state(&["20.0.0.100/32"]));
        assert!(p.due(&m, t0 + Duration::from_secs(3)).is_empty());
        let later = p.due(&m, t0 + Duration::from_secs(40));
        assert_eq!(later.len(), 1);
        assert_eq!(describe("n1", &later[0].1).2, "node n1 announces 20.0.0.100/32");
        // A new Service that is not announced here is not news either.
        m.insert("default/other".to_string(), state(&[]));
        assert!(p.due(&m, t0 + Duration::from_secs(80)).is_empty());
    }

    #[test]
    fn at_most_so_many_events_a_minute() {
        let t0 = Instant::now();
        let mut p = EventPacer::default();
        let mut m = BTreeMap::new();
        p.due(&m, t0);
        for i in 0..25 {
            m.insert(format!("default/s{i:02}"), state(&["20.0.0.1/32"]));
        }
        assert_eq!(p.due(&m, t0 + Duration::from_secs(1)).len(), EVENTS_PER_MINUTE);
        assert_eq!(p.dropped, 15);
    }

    #[test]
    fn nodes_spread_their_events_and_a_brief_change_is_none() {
        let t0 = Instant::now();
        let mut m = BTreeMap::new();
        m.insert("default/web".to_string(), state(&["20.0.0.100/32"]));
        let mut when = Vec::new();
        for node in 0..50u64 {
            let mut p = EventPacer::new(EVENT_SPREAD, node.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            p.due(&m, t0);
            let mut off = m.clone();
            off.insert("default/web".to_string(), state(&[]));
            let at = (0..=60)
                .map(|i| t0 + Duration::from_millis(100 * i))
                .find(|t| !p.due(&off, *t).is_empty())
                .expect("reported within the spread");
            assert!(at <= t0 + EVENT_SPREAD + Duration::from_millis(100), "{:?}", at - t0);
            when.push((at - t0).as_millis());
        }
        when.sort();
        when.dedup();
        assert!(when.len() >= 20, "50 nodes report at only {} different times", when.len());
        // A change undone before the node's delay is over: no Event.
        let mut p = EventPacer::new(EVENT_SPREAD, 4999);
        p.due(&m, t0);
        let mut off = m.clone();
        off.insert("default/web".to_string(), state(&[]));
        assert!(p.due(&off, t0 + Duration::from_secs(1)).is_empty());
        assert!(p.due(&m, t0 + Duration::from_secs(2)).is_empty());
        assert!(p.due(&off, t0 + Duration::from_secs(3)).is_empty(), "the wait starts over");
        assert_eq!(p.due(&off, t0 + Duration::from_secs(8)).len(), 1);
    }
}
