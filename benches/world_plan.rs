//! How many watch events the Kubernetes World/plan path absorbs, and what the World costs in
//! memory. Prints a table; run with `cargo bench --bench world_plan`.
//!
//! Setup: 10,000 LoadBalancer Services (a third selected by the policy), 2,000 of them with
//! `externalTrafficPolicy: Local`, then 50,000 EndpointSlice updates as the API server sends
//! them (JSON watch events), endpoints spread over 20 nodes.
//!
//! Measured, in one run:
//! - decode only: parsing the watch events (`serde_json` into k8s-openapi types), the cost any
//!   client pays; it is the yardstick the other figures are a ratio of;
//! - ingest: decode + convert to the model + apply to the store (what each event costs kbgp);
//! - plan: building the World and planning for one node, done once per coalesced batch
//!   (every 100 ms in the daemon);
//! - memory: heap held by the store, from a counting allocator.

use k8s_openapi::api::core::v1::Service as K8sService;
use k8s_openapi::api::discovery::v1::EndpointSlice as K8sEndpointSlice;
use kbgp::config::policy::PolicyKind;
use kbgp::source::kube::{KINDS, Kind, Store, Update, convert_endpoint_slice, convert_policy, convert_service};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const NODES: usize = 20;

fn service_json(i: usize) -> serde_json::Value {
    let mut labels = json!({"app": format!("app-{i}")});
    if i.is_multiple_of(3) {
        labels["advertise-bgp"] = json!("true");
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("svc-{i}"), "namespace": format!("ns-{}", i % 50), "labels": labels,
                     "resourceVersion": i.to_string(), "uid": format!("uid-{i}"),
                     "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
        "spec": {"type": "LoadBalancer", "clusterIP": format!("10.96.{}.{}", i / 250, i % 250 + 1),
                 "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}],
                 "selector": {"app": format!("app-{i}")},
                 "externalTrafficPolicy": if i.is_multiple_of(5) { "Local" } else { "Cluster" }},
        "status": {"loadBalancer": {"ingress": [{"ip": format!("20.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)}]}}
    })
}

/// One EndpointSlice watch event as the API server sends it.
fn slice_event(n: usize, services: usize) -> String {
    let svc = (n * 7919) % services;
    let eps: Vec<serde_json::Value> = (0..3)
        .map(|k| {
            json!({"addresses": [format!("10.1.{}.{}", (n + k) % 200, k + 1)], "nodeName": format!("node{}", (n + k) % NODES),
                   "conditions": {"ready": !(n + k).is_multiple_of(4), "serving": true, "terminating": (n + k).is_multiple_of(4)}})
        })
        .collect();
    let o = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": format!("svc-{svc}-abcde"), "namespace": format!("ns-{}", svc % 50),
                     "labels": {"kubernetes.io/service-name": format!("svc-{svc}")}, "resourceVersion": (services + n).to_string()},
        "endpoints": eps, "ports": [{"port": 8080, "protocol": "TCP"}]
    });
    json!({"type": "MODIFIED", "object": o}).to_string()
}

#[derive(serde::Deserialize)]
struct WatchEvent<T> {
    #[allow(dead_code)]
    r#type: String,
    object: T,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let (services, updates) = if full { (10_000, 50_000) } else { (500, 2_000) };
    let node_json = json!({"metadata": {"name": "node0", "labels": {"rack": "rack0"}},
        "spec": {"podCIDRs": ["10.244.0.0/24"]}, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.5.11"}]}});
    let policy: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cilium.io/v2alpha1", "kind": "CiliumBGPPeeringPolicy", "metadata": {"name": "rack0"},
        "spec": {"nodeSelector": {"matchLabels": {"rack": "rack0"}}, "virtualRouters": [{"localASN": 65005, "exportPodCIDR": true,
                 "serviceSelector": {"matchLabels": {"advertise-bgp": "true"}},
                 "neighbors": [{"peerAddress": "10.0.5.1/24", "peerASN": 65005}]}]}
    }))
    .expect("policy");

    let mut store = Store::default();
    let before = LIVE.load(Ordering::Relaxed);
    for k in KINDS {
        store.apply(Update::Init(k));
        store.apply(Update::InitDone(k));
    }
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(node_json).expect("node");
    store.apply(Update::Apply(Kind::Node, "node0".into(), kbgp::source::kube::convert_node(&node)));
    store.apply(Update::Apply(Kind::CiliumPolicy, "rack0".into(), convert_policy(&policy, PolicyKind::Cilium)));
    let t = Instant::now();
    for i in 0..services {
        let s: K8sService = serde_json::from_value(service_json(i)).expect("service");
        let key = format!("ns-{}/svc-{i}", i % 50);
        store.apply(Update::Apply(Kind::Service, key, convert_service(&s)));
    }
    let load_services = t.elapsed();

    let events: Vec<String> = (0..updates).map(|n| slice_event(n, services)).collect();
    let bytes: usize = events.iter().map(String::len).sum();

    // Yardstick: decoding alone.
    let t = Instant::now();
    for e in &events {
        let ev: WatchEvent<K8sEndpointSlice> = serde_json::from_str(e).expect("event");
        std::hint::black_box(ev.object);
    }
    let decode = t.elapsed();

    // kbgp's path per event: decode, convert (keep this node's endpoints), apply.
    let t = Instant::now();
    let mut changed = 0;
    for e in &events {
        let ev: WatchEvent<K8sEndpointSlice> = serde_json::from_str(e).expect("event");
        let s = ev.object;
        let key =
            format!("{}/{}", s.metadata.namespace.as_deref().unwrap_or(""), s.metadata.name.as_deref().unwrap_or(""));
        if store.apply(Update::Apply(Kind::EndpointSlice, key, convert_endpoint_slice(&s, "node0"))) {
            changed += 1;
        }
    }
    let ingest = t.elapsed();
    drop(events);
    let held = LIVE.load(Ordering::Relaxed) - before;

    // One coalesced batch: World + plan for this node.
    let rounds = 20;
    let t = Instant::now();
    let mut routes = 0;
    for _ in 0..rounds {
        // From scratch, as after a policy change; a Service change costs only its routes.
        let w = std::sync::Arc::new(store.world());
        let (p, r) = kbgp::plan::Planner::new("node0").update(w).expect("plan");
        let Some(kbgp::plan::RouteUpdate::Full(groups)) = r else { panic!("a first plan is a full one") };
        let of = |g: &kbgp::plan::GroupKey| groups.iter().find(|(k, _)| k == g).map_or(0, |(_, r)| r.len());
        routes = p.peers().map(|(_, pp)| of(&pp.group)).sum::<usize>();
    }
    let plan = t.elapsed() / rounds;
    let slices = store.world().endpoint_slices.len();
    assert_eq!(store.world().services.len(), services);

    let per_s = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!(
        "World/plan path, {services} Services, {updates} EndpointSlice updates ({:.1} MB of watch events), one run\n",
        bytes as f64 / 1e6
    );
    println!("| step | time | rate | ratio to decode only |");
    println!("|---|---|---|---|");
    println!(
        "| decode only (serde_json, k8s-openapi) | {:.0} ms | {:.0} events/s | 1.00 |",
        decode.as_secs_f64() * 1e3,
        per_s(updates, decode)
    );
    println!(
        "| ingest: decode + convert + store | {:.0} ms | {:.0} events/s | {:.2} |",
        ingest.as_secs_f64() * 1e3,
        per_s(updates, ingest),
        ingest.as_secs_f64() / decode.as_secs_f64()
    );
    println!(
        "| World + plan for one node | {:.1} ms | {:.0} plans/s | |",
        plan.as_secs_f64() * 1e3,
        1.0 / plan.as_secs_f64()
    );
    println!(
        "| load {services} Services (decode + convert + store) | {:.0} ms | {:.0} objects/s | |",
        load_services.as_secs_f64() * 1e3,
        per_s(services, load_services)
    );
    println!();
    println!("store changed by {changed} of {updates} updates; {slices} EndpointSlices, {routes} routes planned");
    println!(
        "heap held by the store ({services} Services, {slices} EndpointSlices): {:.1} MiB",
        held as f64 / (1 << 20) as f64
    );
    // With events coalesced every 100 ms, a plan costs `plan` per batch: the sustained rate is
    // what is left of each second after 10 plans.
    let budget = 1.0 - 10.0 * plan.as_secs_f64();
    println!("sustained, planning every 100 ms: about {:.0} events/s", per_s(updates, ingest) * budget.max(0.0));
}
