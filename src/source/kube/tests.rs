//! The store fed with watcher events, and the conversions from API objects.

use super::*;
use serde_json::json;

fn svc(name: &str, label: &str) -> Obj {
    let s: K8sService = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"advertise-bgp": label},
                     "managedFields": [{"manager": "kubectl"}], "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "20.0.0.100"}]}}
    }))
    .unwrap();
    convert_service(&s).unwrap()
}

fn policy(hold: i64) -> Result<Obj, String> {
    let o: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cilium.io/v2alpha1", "kind": "CiliumBGPPeeringPolicy",
        "metadata": {"name": "rack0-65005"},
        "spec": {"nodeSelector": {"matchLabels": {"rack": "rack0"}},
                 "virtualRouters": [{"localASN": 65005, "neighbors": [{"peerAddress": "10.0.5.1/24", "peerASN": 65005, "holdTimeSeconds": hold}]}]}
    }))
    .unwrap();
    convert_policy(&o, PolicyKind::Cilium)
}

/// A store where every kind but the listed ones has synced empty.
fn store_synced_except(kinds: &[Kind]) -> Store {
    let mut s = Store::default();
    for k in KINDS.iter().filter(|k| !kinds.contains(k)) {
        s.apply(Update::Init(*k));
        s.apply(Update::InitDone(*k));
    }
    s
}

fn service_names(s: &Store) -> Vec<String> {
    s.world().services.iter().map(|s| s.key()).collect()
}

#[test]
fn nothing_until_every_kind_has_listed() {
    let mut s = store_synced_except(&[Kind::Service, Kind::CiliumPool]);
    assert!(!s.synced());
    s.apply(Update::Init(Kind::Service));
    s.apply(Update::InitDone(Kind::Service));
    assert!(!s.synced());
    assert!(s.apply(Update::Absent(Kind::CiliumPool)), "the first word about a kind is a change");
    assert!(s.synced());
}

#[test]
fn a_relist_replaces_at_init_done_only() {
    let mut s = store_synced_except(&[]);
    s.apply(Update::Apply(Kind::Service, "default/a".into(), Ok(svc("a", "true"))));
    s.apply(Update::Apply(Kind::Service, "default/b".into(), Ok(svc("b", "true"))));
    assert_eq!(service_names(&s), ["default/a", "default/b"]);
    // The watch restarts: b was deleted meanwhile.
    assert!(!s.apply(Update::Init(Kind::Service)));
    assert!(!s.apply(Update::InitApply(Kind::Service, "default/a".into(), Ok(svc("a", "true")))));
    assert_eq!(service_names(&s), ["default/a", "default/b"], "nothing changes before InitDone");
    assert!(s.apply(Update::InitDone(Kind::Service)));
    assert_eq!(service_names(&s), ["default/a"]);
    // An identical relist is no change at all.
    s.apply(Update::Init(Kind::Service));
    s.apply(Update::InitApply(Kind::Service, "default/a".into(), Ok(svc("a", "true"))));
    assert!(!s.apply(Update::InitDone(Kind::Service)));
}

#[test]
fn updates_deletes_and_no_op_updates() {
    let mut s = store_synced_except(&[]);
    assert!(s.apply(Update::Apply(Kind::Service, "default/a".into(), Ok(svc("a", "true")))));
    assert!(!s.apply(Update::Apply(Kind::Service, "default/a".into(), Ok(svc("a", "true")))), "same object");
    assert!(s.apply(Update::Apply(Kind::Service, "default/a".into(), Ok(svc("a", "false")))));
    assert!(s.apply(Update::Delete(Kind::Service, "default/a".into())));
    assert!(!s.apply(Update::Delete(Kind::Service, "default/a".into())));
}

#[test]
fn worlds_share_the_objects_that_did_not_change() {
    let mut s = store_synced_except(&[]);
    s.apply(Update::Apply(Kind::Service, "default/a".into(), Ok(svc("a", "true"))));
    s.apply(Update::Apply(Kind::Service, "default/b".into(), Ok(svc("b", "true"))));
    let w1 = s.world();
    s.apply(Update::Apply(Kind::Service, "default/b".into(), Ok(svc("b", "false"))));
    let w2 = s.world();
    assert!(Arc::ptr_eq(&w1.services[0], &w2.services[0]), "a is unchanged: one instance");
    assert!(!Arc::ptr_eq(&w1.services[1], &w2.services[1]));
    assert_eq!(w1.services[1].labels["advertise-bgp"], "true", "an older World keeps what it had");
    // An update that changes nothing, and a relist of the same objects, keep the instance too.
    s.apply(Update::Apply(Kind::Service, "default/a".into(), Ok(svc("a", "true"))));
    s.apply(Update::Init(Kind::Service));
    s.apply(Update::InitApply(Kind::Service, "default/a".into(), Ok(svc("a", "true"))));
    s.apply(Update::InitApply(Kind::Service, "default/b".into(), Ok(svc("b", "false"))));
    s.apply(Update::InitDone(Kind::Service));
    let w3 = s.world();
    assert!(Arc::ptr_eq(&w1.services[0], &w3.services[0]) && Arc::ptr_eq(&w2.services[1], &w3.services[1]));
    // LB IPAM in file mode changes its own copy, never a shared one.
    let mut w4 = w3.clone();
    Arc::make_mut(&mut w4.services[0]).ingress_ips.clear();
    assert_eq!(w3.services[0].ingress_ips.len(), 1);
}

#[test]
fn an_invalid_policy_keeps_its_last_valid_version() {
    let mut s = store_synced_except(&[]);
    assert!(s.apply(Update::Apply(Kind::CiliumPolicy, "rack0-65005".into(), policy(90))));
    let bad = policy(2);
    assert!(bad.as_ref().is_err_and(|e| e.contains("holdTimeSeconds: must be 3..=65535")), "{bad:?}");
    assert!(!s.apply(Update::Apply(Kind::CiliumPolicy, "rack0-65005".into(), bad.clone())));
    assert_eq!(s.world().policies[0].virtual_routers[0].neighbors[0].hold_time, 90);
    assert_eq!(s.problems.len(), 1);
    // Also through a relist.
    s.apply(Update::Init(Kind::CiliumPolicy));
    s.apply(Update::InitApply(Kind::CiliumPolicy, "rack0-65005".into(), bad));
    assert!(!s.apply(Update::InitDone(Kind::CiliumPolicy)));
    assert_eq!(s.world().policies.len(), 1);
}

/// kbgp's policy kind: its generation, conditions and newest error are kept beside the
/// World for the status writer; an echo of kbgp's own status write is no new World.
#[test]
fn objects_with_conditions_are_observed() {
    let kbgp = |hold: i64, generation: i64, conditions: serde_json::Value| {
        let o: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "kbgp.io/v1alpha1", "kind": "BGPPeeringPolicy",
            "metadata": {"name": "rack0", "generation": generation},
            "spec": {"virtualRouters": [{"localASN": 65005, "neighbors": [{"peerAddress": "10.0.5.1/24", "peerASN": 65005, "holdTimeSeconds": hold}]}]},
            "status": {"conditions": conditions}
        }))
        .unwrap();
        (observe(&o), convert_policy(&o, PolicyKind::Kbgp))
    };
    let key = (Subject::Policy, "rack0".to_string());
    let mut s = store_synced_except(&[]);
    let (ob, obj) = kbgp(90, 1, json!([]));
    assert!(s.apply(Update::Observed(Kind::KbgpPolicy, "rack0".into(), ob)));
    assert!(s.apply(Update::Apply(Kind::KbgpPolicy, "rack0".into(), obj)));
    assert_eq!(s.observed()[&key], Observed { generation: Some(1), ..Default::default() });
    // kbgp's write comes back: nothing new to plan.
    let written =
        json!([{"type": "Accepted", "status": "True", "reason": "Valid", "message": "m", "lastTransitionTime": "t"}]);
    let (ob, obj) = kbgp(90, 1, written);
    assert!(!s.apply(Update::Observed(Kind::KbgpPolicy, "rack0".into(), ob)));
    assert!(!s.apply(Update::Apply(Kind::KbgpPolicy, "rack0".into(), obj)));
    assert_eq!(s.observed()[&key].conditions[0].reason, "Valid");
    // An invalid version: the World keeps the last valid one, the error is observed (and
    // stays through the echo of the condition written about it).
    for _ in 0..2 {
        let (ob, obj) = kbgp(2, 2, json!([]));
        s.apply(Update::Observed(Kind::KbgpPolicy, "rack0".into(), ob));
        s.apply(Update::Apply(Kind::KbgpPolicy, "rack0".into(), obj));
        let o = &s.observed()[&key];
        assert_eq!(o.generation, Some(2));
        assert!(o.error.as_deref().is_some_and(|e| e.contains("holdTimeSeconds")), "{o:?}");
        assert_eq!(s.world().policies[0].virtual_routers[0].neighbors[0].hold_time, 90);
    }
    // Through a relist and a delete.
    s.apply(Update::Init(Kind::KbgpPolicy));
    let (ob, obj) = kbgp(30, 3, json!([]));
    s.apply(Update::Observed(Kind::KbgpPolicy, "rack0".into(), ob));
    s.apply(Update::InitApply(Kind::KbgpPolicy, "rack0".into(), obj));
    assert!(s.observed()[&key].error.is_some(), "not swapped in before InitDone");
    assert!(s.apply(Update::InitDone(Kind::KbgpPolicy)));
    assert_eq!(s.observed()[&key], Observed { generation: Some(3), ..Default::default() });
    assert!(s.apply(Update::Delete(Kind::KbgpPolicy, "rack0".into())));
    assert!(s.observed().is_empty());
    for subject in Subject::ALL {
        assert_eq!(Kind::of_subject(subject).subject(), Some(subject));
    }
    // Kinds without conditions are not observed.
    let o: DynamicObject = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    assert_eq!(Kind::CiliumPolicy.subject(), None);
    assert_eq!(observe(&o), Observed::default());
}

#[test]
fn services_keep_what_the_plan_reads() {
    let Obj::Service(s) = svc("web", "true") else { panic!() };
    assert_eq!(s.key(), "default/web");
    assert_eq!(s.ingress_ips, vec!["20.0.0.100".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(s.ports, vec![80]);
    assert_eq!(s.labels.len(), 1);
    // Only annotations kbgp reads are kept; managed fields are not modelled at all.
    assert!(s.annotations.is_empty(), "{:?}", s.annotations);
    let asks: K8sService = serde_json::from_value(json!({
        "metadata": {"name": "x", "annotations": {"lbipam.cilium.io/ips": "20.0.0.5", "other.example/x": "y"}},
        "spec": {"type": "LoadBalancer"}
    }))
    .unwrap();
    let Obj::Service(s) = convert_service(&asks).unwrap() else { panic!() };
    assert_eq!(s.annotations.keys().collect::<Vec<_>>(), ["lbipam.cilium.io/ips"]);
}

#[test]
fn endpoint_slices_keep_only_this_nodes_endpoints() {
    let e: K8sEndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.1.0.5"], "nodeName": "n1", "conditions": {"ready": true}},
            {"addresses": ["10.1.1.5"], "nodeName": "n2", "conditions": {"ready": true}},
            {"addresses": ["10.1.0.6"], "nodeName": "n1", "conditions": {"ready": false, "serving": true, "terminating": true}}
        ]
    }))
    .unwrap();
    let Obj::EndpointSlice(s) = convert_endpoint_slice(&e, "n1").unwrap() else { panic!() };
    assert_eq!(s.service.as_deref(), Some("web"));
    assert_eq!(s.endpoints.len(), 2);
    assert!(s.endpoints[1].terminating && s.endpoints[1].serving && !s.endpoints[1].ready);
}

#[test]
fn pools_and_nodes_convert() {
    let p: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cilium.io/v2alpha1", "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": "lb-pool", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"blocks": [{"start": "20.0.0.100", "stop": "20.0.0.200"}]}
    }))
    .unwrap();
    let Obj::Pool(pool) = convert_pool(&p, PoolKind::Cilium).unwrap() else { panic!() };
    assert!(pool.contains(&"20.0.0.150".parse().unwrap()));
    assert_eq!(pool.creation_timestamp.as_deref(), Some("2026-01-01T00:00:00Z"));
    let bad: DynamicObject =
        serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {"blocks": [{"cidr": "nope"}]}})).unwrap();
    assert_eq!(convert_pool(&bad, PoolKind::Kbgp).unwrap_err(), "x: spec.blocks[0].cidr: \"nope\" is not a CIDR");
    let n: K8sNode = serde_json::from_value(json!({
        "metadata": {"name": "n1", "labels": {"rack": "rack0"}, "annotations": {"kbgp.io/virtual-router.65005": "local-port=179"}},
        "spec": {"podCIDRs": ["10.1.0.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.5.11"}, {"type": "Hostname", "address": "n1"}]}
    }))
    .unwrap();
    let Obj::Node(node) = convert_node(&n).unwrap() else { panic!() };
    assert_eq!(node.pod_cidrs.len(), 1);
    assert_eq!(node.addresses.len(), 1);
}

#[test]
fn a_steady_stream_of_changes_does_not_postpone_the_world() {
    let t0 = tokio::time::Instant::now();
    let ms = Duration::from_millis;
    let mut d = Debounce::new(ms(100));
    assert_eq!(d.deadline(true), None, "nothing changed: nothing to build");
    for i in 0..10 {
        d.changed(t0 + ms(50 * i));
    }
    assert_eq!(d.deadline(false), None, "not synced yet");
    assert_eq!(d.deadline(true), Some(t0 + ms(100)), "100 ms after the first change, not the last");
    assert_eq!(d.take(), Some(t0));
    assert_eq!(d.deadline(true), None);
}
