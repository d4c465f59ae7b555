//! The in-cluster LB IPAM controller: exactly one replica, elected through a
//! `coordination.k8s.io/v1` Lease, writes what [`allocate`](super::allocate) decides.
//!
//! - Every kbgp agent runs the election; the holder renews every third of the lease duration,
//!   a new leader takes over once a lease is older than its duration, and a leader that cannot
//!   renew for a whole duration stops writing. On shutdown the leader releases the lease.
//! - It writes `status.loadBalancer.ingress` of Services that have none, and clears it on
//!   Services that are no longer of type LoadBalancer when every address there is from a
//!   pool. It never rewrites addresses a Service already has: another controller's
//!   assignment, or a conflict, is reported, not overwritten.
//! - It writes each pool's status: kbgp pools get `ipsTotal`, `ipsAvailable`, `ipsUsed` and
//!   `conflict`; Cilium pools get Cilium's conditions (`cilium.io/IPsTotal`, ...); MetalLB's
//!   IPAddressPools get MetalLB's `assignedIPv4/IPv6` and `availableIPv4/IPv6`.

use super::{Allocation, allocate};
use crate::config::conditions::{Condition, ObservedObjects, Subject, merged, same};
use crate::config::pool::{PoolKind, PoolStatusCr};
use crate::config::{ServiceType, World};
use crate::source::kube::{Kind, Snapshot};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Service as K8sService;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

#[derive(Clone, Debug)]
pub struct Options {
    /// This replica's name in the Lease.
    pub identity: String,
    pub namespace: String,
    pub lease_name: String,
    pub lease_duration: Duration,
    /// Write the configuration kinds' conditions (only a process that watches every Node
    /// can: `--lb-ipam-only`).
    pub conditions: bool,
}

/// What to do about the Lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseAction {
    Create,
    Renew,
    /// Free or expired: take it.
    TakeOver,
    /// Someone else holds it until then.
    Wait {
        holder: String,
        until: Timestamp,
    },
}

/// Decides from the Lease as read (pure).
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseAction {
    let Some(spec) = spec else { return LeaseAction::Create };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == me {
        return LeaseAction::Renew;
    }
    if holder.is_empty() {
        return LeaseAction::TakeOver;
    }
    match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(secs)) => {
            let until = renewed.saturating_add(SignedDuration::from_secs(secs as i64)).unwrap_or(*renewed);
            if now < until { LeaseAction::Wait { holder, until } } else { LeaseAction::TakeOver }
        }
        _ => LeaseAction::TakeOver,
    }
}

/// The status writes a World needs (pure).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Writes {
    /// (namespace, name, addresses): set `status.loadBalancer.ingress`; empty clears it.
    pub services: Vec<(String, String, Vec<IpAddr>)>,
    /// kbgp's and Cilium's pools (Cilium's written as its conditions).
    pub pools: Vec<(PoolKind, String, PoolStatusCr)>,
    /// MetalLB's IPAddressPools: (namespace, name, status).
    pub metallb_pools: Vec<(String, String, MetalLbPoolStatus)>,
}

/// MetalLB's `IPAddressPool` status (MetalLB 0.15): addresses per family, as 64-bit
/// integers (an IPv6 pool larger than that reports the largest one).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MetalLbPoolStatus {
    #[serde(rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    #[serde(rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    #[serde(rename = "availableIPv4")]
    pub available_ipv4: i64,
    #[serde(rename = "availableIPv6")]
    pub available_ipv6: i64,
}

impl MetalLbPoolStatus {
    pub fn of(p: &super::PoolStatus) -> MetalLbPoolStatus {
        let n = |v: u128| i64::try_from(v).unwrap_or(i64::MAX);
        MetalLbPoolStatus {
            assigned_ipv4: n(p.used - p.ipv6_used),
            assigned_ipv6: n(p.ipv6_used),
            available_ipv4: n(p.available_family(false)),
            available_ipv6: n(p.available_family(true)),
        }
    }
}

pub fn writes(world: &World, a: &Allocation) -> Writes {
    let mut w = Writes::default();
    for s in &world.services {
        if world.handles(s) {
            if s.ingress_ips.is_empty()
                && let Some(v) = a.services.get(&s.key())
            {
                w.services.push((s.namespace.clone(), s.name.clone(), v.iter().map(|(ip, _)| *ip).collect()));
            }
        } else if !s.ingress_ips.is_empty()
            && s.kind != ServiceType::LoadBalancer
            && s.ingress_ips.iter().all(|ip| world.pools.iter().any(|p| p.contains(ip)))
        {
            // No longer a LoadBalancer: release the addresses it had from the pools. (A
            // LoadBalancer of another class is another controller's, whatever its addresses;
            // Kubernetes does not let a Service change its class.)
            w.services.push((s.namespace.clone(), s.name.clone(), Vec::new()));
        }
    }
    for p in &a.pools {
        let Some(pool) = world.pools.iter().find(|x| x.name == p.name) else { continue };
        let kind = pool.kind;
        if kind == PoolKind::MetalLb {
            let ns = pool.namespace.clone().unwrap_or_else(|| world.metallb.namespace().to_string());
            w.metallb_pools.push((ns, p.name.clone(), MetalLbPoolStatus::of(p)));
            continue;
        }
        w.pools.push((
            kind,
            p.name.clone(),
            PoolStatusCr {
                ips_total: p.total.to_string(),
                ips_available: p.available().to_string(),
                ips_used: p.used.to_string(),
                conflict: p.conflict.clone(),
            },
        ));
    }
    w
}

fn lease_spec(
    me: &str,
    duration: Duration,
    now: Timestamp,
    acquired: Option<MicroTime>,
    transitions: i32,
) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(duration.as_secs() as i32),
        acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

struct Elector {
    api: Api<Lease>,
    opts: Options,
    leader: bool,
    last_renew: Option<std::time::Instant>,
}

impl Elector {
    /// One round: returns whether this replica leads now.
    async fn step(&mut self) -> bool {
        let now = Timestamp::now();
        let current = match self.api.get_opt(&self.opts.lease_name).await {
            Ok(l) => l,
            Err(e) => {
                debug!("reading the lease: {e}");
                return self.keep_or_lose();
            }
        };
        let me = self.opts.identity.clone();
        let action = decide(current.as_ref().and_then(|l| l.spec.as_ref()), &me, now);
        let result = match (&action, current) {
            (LeaseAction::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.opts.lease_name.clone()),
                        namespace: Some(self.opts.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(lease_spec(&me, self.opts.lease_duration, now, None, 0)),
                };
                self.api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            (LeaseAction::Renew | LeaseAction::TakeOver, Some(mut lease)) => {
                let old = lease.spec.clone().unwrap_or_default();
                let (acquired, transitions) = if action == LeaseAction::Renew {
                    (old.acquire_time, old.lease_transitions.unwrap_or(0))
                } else {
                    (None, old.lease_transitions.unwrap_or(0) + 1)
                };
                lease.spec = Some(lease_spec(&me, self.opts.lease_duration, now, acquired, transitions));
                // The resourceVersion read makes this a compare-and-swap: one replica wins.
                self.api.replace(&self.opts.lease_name, &PostParams::default(), &lease).await.map(|_| ())
            }
            (LeaseAction::Wait { holder, until }, _) => {
                if self.leader {
                    info!(holder = %holder, "LB IPAM: another replica holds the lease now; no longer writing");
                }
                self.leader = false;
                debug!(holder = %holder, until = %until, "LB IPAM: lease held elsewhere");
                return false;
            }
            (_, None) => return self.keep_or_lose(),
        };
        match result {
            Ok(()) => {
                if !self.leader {
                    info!(identity = %me, lease = %format!("{}/{}", self.opts.namespace, self.opts.lease_name), "LB IPAM: this replica is the leader");
                }
                self.leader = true;
                self.last_renew = Some(std::time::Instant::now());
                true
            }
            Err(e) => {
                debug!("LB IPAM: lease write lost or failed: {e}");
                self.keep_or_lose()
            }
        }
    }

    /// After a failed round: a leader stays one until its lease has surely expired.
    fn keep_or_lose(&mut self) -> bool {
        if self.leader && self.last_renew.is_some_and(|t| t.elapsed() >= self.opts.lease_duration) {
            warn!("LB IPAM: could not renew the lease for a whole lease duration; no longer writing");
            self.leader = false;
        }
        self.leader
    }

    /// Gives the lease up so another replica takes over at once.
    async fn release(&mut self) {
        if !self.leader {
            return;
        }
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.opts.lease_name).await
            && lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.opts.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
            }
            match self.api.replace(&self.opts.lease_name, &PostParams::default(), &lease).await {
                Ok(_) => info!("LB IPAM: lease released"),
                Err(e) => warn!("LB IPAM: could not release the lease: {e}"),
            }
        }
        self.leader = false;
    }
}

/// What to do about one object's conditions.
#[derive(Debug, PartialEq, Eq)]
enum ConditionsWrite {
    /// Already written (the watch may not show it yet).
    Nothing,
    /// The object carries them already (written by an earlier leader): remember them.
    AlreadyThere(Vec<Condition>),
    Write(Vec<Condition>),
}

/// Decides from what the object carries (`seen`), what this leader wrote (`written`, with the
/// object's uid then) and what it should carry (pure).
fn decide_conditions(
    subject: Subject,
    seen: Option<&crate::config::conditions::Observed>,
    written: Option<&(Option<String>, Vec<Condition>)>,
    desired: &[Condition],
    now: &str,
) -> ConditionsWrite {
    let uid = seen.and_then(|x| x.uid.clone());
    let before = seen.map(|x| x.conditions.as_slice()).unwrap_or_default();
    // A recreated object (another uid) has nothing of what was written to the old one.
    let written = written.filter(|(u, _)| *u == uid).map(|(_, c)| c.as_slice());
    let want = merged(subject, written.unwrap_or(before), desired, now);
    if written.is_some_and(|w| same(w, &want)) {
        ConditionsWrite::Nothing
    } else if same(before, &want) {
        ConditionsWrite::AlreadyThere(want)
    } else {
        ConditionsWrite::Write(want)
    }
}

/// How long a kind whose status could not be written is left alone.
const UNWRITABLE_RETRY: Duration = Duration::from_secs(300);

/// Where the status of a kind with conditions is written: the resources it is watched as, the
/// preferred version first (Cilium 1.18 serves cilium.io/v2, 1.16-1.17 cilium.io/v2alpha1).
fn status_resources(subject: Subject) -> Vec<kube::api::ApiResource> {
    Kind::of_subject(subject).api_resources()
}

fn condition(t: &str, status: &str, reason: &str, message: &str, now: &str) -> serde_json::Value {
    json!({"type": t, "status": status, "reason": reason, "message": message, "lastTransitionTime": now})
}

struct Writer {
    client: Client,
    /// Pool statuses written, so unchanged ones are not written again.
    pools: HashMap<String, PoolStatusCr>,
    metallb_pools: HashMap<(String, String), MetalLbPoolStatus>,
    /// Whether to write conditions ([`Options::conditions`]).
    conditions_on: bool,
    /// Conditions written, per object (with its uid: a recreated object has none yet), and
    /// the World they were worked out from.
    conditions: HashMap<(Subject, String), (Option<String>, Vec<Condition>)>,
    conditions_of: Option<(Arc<World>, Arc<ObservedObjects>, bool)>,
    /// A write failed: reconcile again at the next lease renewal (every third of the lease
    /// duration), even without a new World.
    retry: bool,
    /// Subjects whose status cannot be written (no status subresource, no right), said once.
    unwritable: HashMap<Subject, std::time::Instant>,
    problems: BTreeSet<String>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Writer {
    /// Writes the conditions of the configuration objects that differ from what they carry.
    async fn write_conditions(&mut self, snap: &Snapshot) {
        // A kind left alone for long enough is tried again with the next World.
        let retry = self.unwritable.values().any(|t| t.elapsed() >= UNWRITABLE_RETRY);
        if !retry
            && let Some((w, o, secrets_read)) = &self.conditions_of
            && *secrets_read == snap.secrets_read
            && crate::plan::conditions::same_inputs(w, &snap.world)
            && (Arc::ptr_eq(o, &snap.observed) || **o == *snap.observed)
        {
            return;
        }
        self.conditions_of = Some((snap.world.clone(), snap.observed.clone(), snap.secrets_read));
        let now = Timestamp::now().to_string();
        let all = crate::plan::conditions::conditions(&snap.world, &snap.observed, snap.secrets_read);
        let keys: HashSet<(Subject, String)> = all.iter().map(|o| (o.subject, o.name.clone())).collect();
        self.conditions.retain(|k, _| keys.contains(k));
        let mut failed = false;
        for o in all {
            if self.unwritable.get(&o.subject).is_some_and(|t| t.elapsed() < UNWRITABLE_RETRY) {
                continue;
            }
            let key = (o.subject, o.name.clone());
            let seen = snap.observed.get(&key);
            let uid = seen.and_then(|x| x.uid.clone());
            let want = match decide_conditions(o.subject, seen, self.conditions.get(&key), &o.conditions, &now) {
                ConditionsWrite::Nothing => continue,
                ConditionsWrite::AlreadyThere(c) => {
                    self.conditions.insert(key, (uid, c));
                    continue;
                }
                ConditionsWrite::Write(c) => c,
            };
            let patch = json!({"status": {"conditions": want}});
            let mut result = None;
            for ar in status_resources(o.subject) {
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
                let r = api.patch_status(&o.name, &PatchParams::default(), &Patch::Merge(&patch)).await;
                let again = matches!(&r, Err(kube::Error::Api(e)) if e.code == 404);
                result = Some(r);
                if !again {
                    break;
                }
            }
            let what = format!("{} {}", o.subject.kind_name(), o.name);
            match result {
                Some(Ok(_)) => {
                    let c = want.iter().map(|c| format!("{}={}", c.type_, c.status)).collect::<Vec<_>>().join(" ");
                    debug!(object = %what, conditions = %c, "LB IPAM: conditions written");
                    self.unwritable.remove(&o.subject);
                    self.conditions.insert(key, (uid, want));
                }
                Some(Err(kube::Error::Api(e))) if e.code == 403 || e.code == 404 => {
                    // 404 with the object there: a CRD without a status subresource (an older
                    // kbgp CRD, Cilium 1.16); 403: no right to it. Said once, tried again later.
                    let ar = &status_resources(o.subject)[0];
                    let there = Api::<DynamicObject>::all_with(self.client.clone(), ar).get_opt(&o.name).await;
                    if e.code == 403 || matches!(there, Ok(Some(_))) {
                        warn!(
                            kind = o.subject.kind_name(),
                            "LB IPAM: cannot write the status of {what} ({e}); is the CRD current (deploy/crds) and \
                             may the kbgp-lb-ipam ServiceAccount patch its status? Trying this kind again in {} s",
                            UNWRITABLE_RETRY.as_secs()
                        );
                        self.unwritable.insert(o.subject, std::time::Instant::now());
                    }
                }
                Some(Err(e)) => {
                    warn!(object = %what, "LB IPAM: could not write the conditions: {e}");
                    failed = true;
                }
                None => {}
            }
        }
        if failed {
            // Tried again at the next lease renewal, even if nothing it reads changed.
            self.conditions_of = None;
            self.retry = true;
        }
    }

    async fn reconcile(&mut self, snap: &Snapshot) {
        self.retry = false;
        if self.conditions_on {
            self.write_conditions(snap).await;
        }
        let world = &*snap.world;
        let a = allocate(world);
        self.metrics.set_pools(&a);
        let now_problems: BTreeSet<String> = a.problems.iter().map(|p| p.to_string()).collect();
        for p in now_problems.difference(&self.problems) {
            warn!("LB IPAM: {p}");
        }
        self.problems = now_problems;
        let w = writes(world, &a);
        for (ns, name, ips) in &w.services {
            let api: Api<K8sService> = Api::namespaced(self.client.clone(), ns);
            let patch = if ips.is_empty() {
                json!({"status": {"loadBalancer": {"ingress": null}}})
            } else {
                let ingress: Vec<_> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
                json!({"status": {"loadBalancer": {"ingress": ingress}}})
            };
            match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) if ips.is_empty() => info!(service = %format!("{ns}/{name}"), "LB IPAM: released its addresses"),
                Ok(_) => info!(service = %format!("{ns}/{name}"), addresses = ?ips, "LB IPAM: assigned"),
                Err(e) => {
                    warn!(service = %format!("{ns}/{name}"), "LB IPAM: could not write the Service's status: {e}");
                    self.retry = true;
                }
            }
        }
        for (kind, name, st) in w.pools {
            if self.pools.get(&name) == Some(&st) {
                continue;
            }
            let watched = match kind {
                PoolKind::MetalLb => continue, // in metallb_pools
                PoolKind::Kbgp => Kind::KbgpPool,
                PoolKind::Cilium => Kind::CiliumPool,
            };
            let Some(ar) = watched.api_resource() else { continue };
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
            let patch = match kind {
                PoolKind::Kbgp | PoolKind::MetalLb => json!({"status": st}),
                PoolKind::Cilium => {
                    let now = Timestamp::now().to_string();
                    let (c, r, m) = match &st.conflict {
                        Some(why) => ("True", "cidr_overlap", why.as_str()),
                        None => ("False", "resolved", ""),
                    };
                    json!({"status": {"conditions": [
                        condition("cilium.io/IPsTotal", "Unknown", "noreason", &st.ips_total, &now),
                        condition("cilium.io/IPsAvailable", "Unknown", "noreason", &st.ips_available, &now),
                        condition("cilium.io/IPsUsed", "Unknown", "noreason", &st.ips_used, &now),
                        condition("cilium.io/PoolConflict", c, r, m, &now),
                    ]}})
                }
            };
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    debug!(pool = %name, "LB IPAM: pool status written");
                    self.pools.insert(name, st);
                }
                Err(e) => {
                    warn!(pool = %name, "LB IPAM: could not write the pool's status: {e}");
                    self.retry = true;
                }
            }
        }
        for (ns, name, st) in w.metallb_pools {
            let key = (ns, name);
            if self.metallb_pools.get(&key) == Some(&st) {
                continue;
            }
            let Some(ar) = Kind::MetalLbPool.api_resource() else { continue };
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &key.0, &ar);
            match api.patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&json!({"status": st}))).await {
                Ok(_) => {
                    debug!(pool = %format!("{}/{}", key.0, key.1), "LB IPAM: pool status written");
                    self.metallb_pools.insert(key, st);
                }
                // MetalLB before 0.15 has no status on its pools.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    debug!(pool = %format!("{}/{}", key.0, key.1), "LB IPAM: the pool has no status to write: {e}");
                    self.metallb_pools.insert(key, st);
                }
                Err(e) => {
                    warn!(pool = %format!("{}/{}", key.0, key.1), "LB IPAM: could not write the pool's status: {e}");
                    self.retry = true;
                }
            }
        }
    }
}

/// The shortest time between two reconciliations: a burst of watch events (a thousand
/// Service changes a second) costs ten allocations a second, not a thousand. Routes do not
/// wait for it: each node plans from its own watches.
pub const RECONCILE_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the election and, while leading, keeps status in line with each new World (at most
/// every [`RECONCILE_INTERVAL`]). Send on the returned channel to stop (the lease is
/// released).
pub fn start(
    client: Client,
    opts: Options,
    mut worlds: watch::Receiver<Option<crate::source::kube::Snapshot>>,
    metrics: Arc<crate::metrics::Metrics>,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop_tx, mut stop) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut elector = Elector {
            api: Api::namespaced(client.clone(), &opts.namespace),
            opts: opts.clone(),
            leader: false,
            last_renew: None,
        };
        let mut writer = Writer {
            client,
            pools: HashMap::new(),
            metallb_pools: HashMap::new(),
            conditions_on: opts.conditions,
            conditions: HashMap::new(),
            conditions_of: None,
            retry: false,
            unwritable: HashMap::new(),
            problems: BTreeSet::new(),
            metrics,
        };
        let renew = opts.lease_duration / 3;
        let mut next = tokio::time::Instant::now();
        // A World seen but not reconciled yet waits until then.
        let mut due: Option<tokio::time::Instant> = None;
        let mut last = tokio::time::Instant::now() - RECONCILE_INTERVAL;
        loop {
            tokio::select! {
                _ = &mut stop => {
                    elector.release().await;
                    return;
                }
                _ = tokio::time::sleep_until(next) => {
                    let was = elector.leader;
                    let leads = elector.step().await;
                    writer.metrics.ipam_leader.set(leads as i64);
                    if was && !leads {
                        // Another replica reports the pools now; stale values would mix in.
                        writer.metrics.set_pools(&super::Allocation::default());
                    }
                    next = tokio::time::Instant::now() + if leads { renew } else { renew.min(Duration::from_secs(2)) };
                    if leads && was && writer.retry {
                        let w = worlds.borrow().clone();
                        if let Some(w) = w {
                            writer.reconcile(&w).await;
                        }
                    }
                    if leads && !was {
                        // A new leader writes everything once.
                        writer.pools.clear();
                        writer.metallb_pools.clear();
                        writer.conditions.clear();
                        writer.conditions_of = None;
                        writer.unwritable.clear();
                        let w = worlds.borrow().clone();
                        if let Some(w) = w {
                            writer.reconcile(&w).await;
                        }
                    }
                }
                changed = worlds.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if elector.leader && due.is_none() {
                        due = Some(tokio::time::Instant::now().max(last + RECONCILE_INTERVAL));
                    }
                }
                _ = async { tokio::time::sleep_until(due.unwrap_or(next)).await }, if due.is_some() => {
                    due = None;
                    last = tokio::time::Instant::now();
                    let w = worlds.borrow_and_update().clone();
                    if let (true, Some(w)) = (elector.leader, w) {
                        writer.reconcile(&w).await;
                    }
                }
            }
        }
    });
    (stop_tx, task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn spec(holder: Option<&str>, renewed: &str, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            renew_time: Some(MicroTime(ts(renewed))),
            lease_duration_seconds: Some(secs),
            ..Default::default()
        }
    }

    #[test]
    fn lease_decisions() {
        let now = ts("2026-01-01T00:00:10Z");
        assert_eq!(decide(None, "a", now), LeaseAction::Create);
        assert_eq!(decide(Some(&spec(Some("a"), "2026-01-01T00:00:00Z", 15)), "a", now), LeaseAction::Renew);
        assert_eq!(
            decide(Some(&spec(Some("b"), "2026-01-01T00:00:00Z", 15)), "a", now),
            LeaseAction::Wait { holder: "b".into(), until: ts("2026-01-01T00:00:15Z") }
        );
        assert_eq!(
            decide(Some(&spec(Some("b"), "2026-01-01T00:00:00Z", 5)), "a", now),
            LeaseAction::TakeOver,
            "expired"
        );
        assert_eq!(decide(Some(&spec(None, "2026-01-01T00:00:09Z", 15)), "a", now), LeaseAction::TakeOver, "released");
    }

    fn world(text: &str) -> World {
        load_str(text, "t").unwrap().world
    }

    #[test]
    fn writes_assign_release_and_never_overwrite() {
        let w = world(
            r#"
apiVersion: cilium.io/v2alpha1
kind: CiliumLoadBalancerIPPool
metadata: {name: lb-pool}
spec: {blocks: [{start: 20.0.0.100, stop: 20.0.0.200}]}
---
apiVersion: v1
kind: Service
metadata: {name: new}
spec: {type: LoadBalancer}
---
apiVersion: v1
kind: Service
metadata: {name: held}
spec: {type: LoadBalancer}
status: {loadBalancer: {ingress: [{ip: 20.0.0.150}]}}
---
apiVersion: v1
kind: Service
metadata: {name: was-lb}
spec: {type: ClusterIP}
status: {loadBalancer: {ingress: [{ip: 20.0.0.120}]}}
---
apiVersion: v1
kind: Service
metadata: {name: cloud}
spec: {type: LoadBalancer, loadBalancerClass: example.com/cloud}
status: {loadBalancer: {ingress: [{ip: 198.51.100.7}]}}
---
apiVersion: v1
kind: Service
metadata: {name: cloud-in-pool}
spec: {type: LoadBalancer, loadBalancerClass: example.com/cloud}
status: {loadBalancer: {ingress: [{ip: 20.0.0.170}]}}
"#,
        );
        let a = allocate(&w);
        let out = writes(&w, &a);
        let svc: Vec<(String, Vec<String>)> =
            out.services.iter().map(|(_, n, ips)| (n.clone(), ips.iter().map(|i| i.to_string()).collect())).collect();
        assert_eq!(svc, vec![("new".to_string(), vec!["20.0.0.100".to_string()]), ("was-lb".to_string(), vec![])]);
        assert_eq!(out.pools.len(), 1);
        let (kind, name, st) = &out.pools[0];
        assert_eq!((kind, name.as_str()), (&PoolKind::Cilium, "lb-pool"));
        // Used: new, held, and two addresses other Services still show (was-lb until released,
        // cloud-in-pool for good).
        assert_eq!((st.ips_total.as_str(), st.ips_used.as_str(), st.ips_available.as_str()), ("101", "4", "97"));
    }
}

#[cfg(test)]
mod conditions_tests {
    use super::*;
    use crate::config::conditions::Observed;

    #[test]
    fn conditions_are_written_once_and_again_for_a_recreated_object() {
        let valid = [Condition::new("Accepted", true, "Valid", "valid; selects 1 of 1 node")];
        let seen = |uid: &str, c: &[Condition]| Observed {
            uid: Some(uid.into()),
            conditions: c.to_vec(),
            ..Default::default()
        };
        let first = decide_conditions(Subject::VirtualIp, Some(&seen("a", &[])), None, &valid, "t1");
        let ConditionsWrite::Write(w) = first else { panic!("{first:?}") };
        assert_eq!(w[0].last_transition_time, "t1");
        let written = (Some("a".to_string()), w.clone());
        // The watch has not shown the write yet: nothing to do.
        assert_eq!(
            decide_conditions(Subject::VirtualIp, Some(&seen("a", &[])), Some(&written), &valid, "t2"),
            ConditionsWrite::Nothing
        );
        // A new leader finds them on the object.
        assert_eq!(
            decide_conditions(Subject::VirtualIp, Some(&seen("a", &w)), None, &valid, "t2"),
            ConditionsWrite::AlreadyThere(w.clone())
        );
        // Deleted and created again under the same name: written again.
        assert!(matches!(
            decide_conditions(Subject::VirtualIp, Some(&seen("b", &[])), Some(&written), &valid, "t3"),
            ConditionsWrite::Write(c) if c[0].last_transition_time == "t3"
        ));
        // A new message, same status: written, the time kept.
        let more = [Condition::new("Accepted", true, "Valid", "valid; selects 2 of 2 nodes")];
        assert!(matches!(
            decide_conditions(Subject::VirtualIp, Some(&seen("a", &w)), Some(&written), &more, "t4"),
            ConditionsWrite::Write(c) if c[0].last_transition_time == "t1"
        ));
    }
}

#[cfg(test)]
mod metallb_tests {
    use super::*;
    use crate::config::load_str;

    /// MetalLB's pool status counts each family; an IPv6 pool beyond 64 bits reports the
    /// largest 64-bit number, as the field cannot hold more.
    #[test]
    fn metallb_pools_get_their_counts_per_family() {
        let w = load_str(
            r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: dual, namespace: metallb-system}
spec: {addresses: [20.0.0.0/30, 20.0.1.1-20.0.1.2, "fd00::/120"], avoidBuggyIPs: true}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: huge, namespace: metallb-system}
spec: {addresses: ["fd01::/56"], autoAssign: false}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, ipFamilies: [IPv4, IPv6], ipFamilyPolicy: RequireDualStack}
"#,
            "t",
        )
        .unwrap()
        .world;
        let out = writes(&w, &allocate(&w));
        assert!(out.pools.is_empty(), "MetalLB's pools are written in MetalLB's shape only");
        assert!(out.metallb_pools.iter().all(|(ns, _, _)| ns == "metallb-system"));
        let by_name: HashMap<&str, &MetalLbPoolStatus> =
            out.metallb_pools.iter().map(|(_, n, s)| (n.as_str(), s)).collect();
        // 20.0.0.0/30 without .0: 3; the range: 2; fd00::/120: 256 (avoidBuggyIPs is IPv4's).
        assert_eq!(
            by_name["dual"],
            &MetalLbPoolStatus { assigned_ipv4: 1, assigned_ipv6: 1, available_ipv4: 4, available_ipv6: 255 }
        );
        assert_eq!(
            by_name["huge"],
            &MetalLbPoolStatus { assigned_ipv4: 0, assigned_ipv6: 0, available_ipv4: 0, available_ipv6: i64::MAX }
        );
        assert_eq!(serde_json::to_value(by_name["dual"]).unwrap()["availableIPv6"], 255);
    }
}

/// The install's RBAC lets LB IPAM write every status it writes, and nothing grants the
/// nodes' ServiceAccount any status of the configuration.
#[cfg(test)]
mod rbac_tests {
    use super::*;

    fn rules(file: &str, kind: &str, name: &str) -> Vec<(String, String, Vec<String>)> {
        let text = std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut out = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
            if v["kind"] != kind || v["metadata"]["name"] != name {
                continue;
            }
            for r in v["rules"].as_array().unwrap() {
                let strings = |k: &str| -> Vec<String> {
                    r[k].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
                };
                for g in strings("apiGroups") {
                    for res in strings("resources") {
                        out.push((g.clone(), res, strings("verbs")));
                    }
                }
            }
        }
        out
    }

    fn may_patch(rules: &[(String, String, Vec<String>)], group: &str, resource: &str) -> bool {
        rules.iter().any(|(g, r, v)| g == group && r == resource && v.iter().any(|v| v == "patch"))
    }

    use serde::Deserialize;

    #[test]
    fn lb_ipam_may_patch_every_status_it_writes() {
        let cluster = rules("deploy/kubernetes/rbac.yaml", "ClusterRole", "kbgp-lb-ipam");
        let nodes = rules("deploy/kubernetes/rbac.yaml", "ClusterRole", "kbgp");
        for s in Subject::ALL {
            for ar in status_resources(s) {
                let res = format!("{}/status", ar.plural);
                assert!(may_patch(&cluster, &ar.group, &res), "kbgp-lb-ipam may not patch {}/{res}", ar.group);
                assert!(!may_patch(&nodes, &ar.group, &res), "the nodes' role may patch {}/{res}", ar.group);
            }
        }
        for (g, r) in [
            ("", "services/status"),
            ("kbgp.io", "loadbalancerippools/status"),
            ("cilium.io", "ciliumloadbalancerippools/status"),
        ] {
            assert!(may_patch(&cluster, g, r), "kbgp-lb-ipam may not patch {g}/{r}");
        }
        let metallb = rules("deploy/components/metallb/rbac.yaml", "Role", "kbgp-metallb-lb-ipam");
        assert!(may_patch(&metallb, "metallb.io", "ipaddresspools/status"));
    }
}
