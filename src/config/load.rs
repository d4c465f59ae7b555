//! Loading a multi-document YAML file into a [`World`].
//!
//! Every document is read even when an earlier one is wrong, so one run of `kbgp check`
//! reports every problem. A file with any error yields no World at all: nothing starts
//! half-way.

use super::World;
use super::cilium_v2::{
    Advertisement, AdvertisementSpec, ClusterConfig, ClusterConfigSpec, NodeOverride, NodeOverrideSpec, PeerConfig,
    PeerConfigSpec,
};
use super::error::{ConfigError, Diag};
use super::k8s::{
    EndpointRaw, EndpointSlice, EndpointSliceRaw, Node, NodeRaw, NodeSpecRaw, NodeStatusRaw, Service, ServiceRaw,
    ServiceSpecRaw, ServiceStatusRaw,
};
use super::meta::ObjectMeta;
use super::metallb::{
    self, AddressPoolSpec, BfdProfileSpec, BgpAdvertisementSpec, BgpPeerSpec, Communities, CommunitySpec,
};
use super::policy::{PeeringPolicy, PeeringPolicySpec, PolicyKind};
use super::pool::{LbPool, PoolKind, PoolRaw, PoolSpec};
use super::vip::{VirtualIPSpec, VirtualIp};
use super::yaml::{self, Bail, Mark, Shape};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded file: the World and the notes that did not stop it (unknown kinds, deprecations).
#[derive(Debug, Default)]
pub struct Loaded {
    pub world: World,
    pub warnings: Vec<String>,
}

/// The policy document; apiVersion, kind and metadata were read already.
#[derive(Deserialize)]
struct PolicyRaw {
    #[serde(default)]
    spec: PeeringPolicySpec,
}

/// Cilium's BGP v2 kinds.
#[derive(Clone, Copy)]
enum V2Kind {
    ClusterConfig,
    PeerConfig,
    Advertisement,
    NodeOverride,
}

/// MetalLB's kinds.
#[derive(Clone, Copy)]
enum MlKind {
    Pool,
    Peer { v1beta1: bool },
    Advertisement,
    Community,
    BfdProfile,
    L2Advertisement,
}

/// What a document is, from its apiVersion and kind.
#[derive(Clone, Copy)]
enum Kind {
    V2(V2Kind),
    MetalLb(MlKind),
    Namespace,
    Policy(PolicyKind),
    Pool(PoolKind),
    Node,
    Service,
    EndpointSlice,
    Secret,
    VirtualIp,
    List,
}

fn classify(api_version: &str, kind: &str) -> Option<Kind> {
    Some(match (api_version, kind) {
        ("cilium.io/v2alpha1", "CiliumBGPPeeringPolicy") => Kind::Policy(PolicyKind::Cilium),
        ("cilium.io/v2" | "cilium.io/v2alpha1", "CiliumBGPClusterConfig") => Kind::V2(V2Kind::ClusterConfig),
        ("cilium.io/v2" | "cilium.io/v2alpha1", "CiliumBGPPeerConfig") => Kind::V2(V2Kind::PeerConfig),
        ("cilium.io/v2" | "cilium.io/v2alpha1", "CiliumBGPAdvertisement") => Kind::V2(V2Kind::Advertisement),
        ("cilium.io/v2" | "cilium.io/v2alpha1", "CiliumBGPNodeConfigOverride") => Kind::V2(V2Kind::NodeOverride),
        ("kbgp.io/v1alpha1", "BGPPeeringPolicy") => Kind::Policy(PolicyKind::Kbgp),
        ("metallb.io/v1beta1", "IPAddressPool") => Kind::MetalLb(MlKind::Pool),
        ("metallb.io/v1beta1", "BGPPeer") => Kind::MetalLb(MlKind::Peer { v1beta1: true }),
        ("metallb.io/v1beta2", "BGPPeer") => Kind::MetalLb(MlKind::Peer { v1beta1: false }),
        ("metallb.io/v1beta1", "BGPAdvertisement") => Kind::MetalLb(MlKind::Advertisement),
        ("metallb.io/v1beta1", "Community") => Kind::MetalLb(MlKind::Community),
        ("metallb.io/v1beta1", "BFDProfile") => Kind::MetalLb(MlKind::BfdProfile),
        ("metallb.io/v1beta1", "L2Advertisement") => Kind::MetalLb(MlKind::L2Advertisement),
        ("v1", "Namespace") => Kind::Namespace,
        ("cilium.io/v2alpha1" | "cilium.io/v2", "CiliumLoadBalancerIPPool") => Kind::Pool(PoolKind::Cilium),
        ("kbgp.io/v1alpha1", "LoadBalancerIPPool") => Kind::Pool(PoolKind::Kbgp),
        ("v1", "Node") => Kind::Node,
        ("v1", "Service") => Kind::Service,
        ("discovery.k8s.io/v1", "EndpointSlice") => Kind::EndpointSlice,
        ("v1", "Secret") => Kind::Secret,
        ("kbgp.io/v1alpha1", "VirtualIP") => Kind::VirtualIp,
        ("v1", "List") => Kind::List,
        _ => return None,
    })
}

/// A document read into its raw type: where both readers meet.
enum RawDoc {
    V2(V2Raw),
    MetalLb(ObjectMeta, MlRaw),
    Namespace(ObjectMeta),
    Policy(PolicyKind, PeeringPolicySpec),
    Pool(PoolKind, PoolRaw),
    Node(NodeRaw),
    Service(ServiceRaw),
    EndpointSlice(EndpointSliceRaw),
    Secret(super::secret::SecretRaw),
    VirtualIp(VirtualIPSpec),
}

/// A Cilium BGP v2 document's spec (and the labels an advertisement is selected by).
enum V2Raw {
    ClusterConfig(ClusterConfigSpec),
    PeerConfig(PeerConfigSpec),
    Advertisement(BTreeMap<String, String>, AdvertisementSpec),
    NodeOverride(NodeOverrideSpec),
}

/// A MetalLB document's spec.
enum MlRaw {
    Pool(AddressPoolSpec),
    Peer(bool, Box<BgpPeerSpec>),
    Advertisement(BgpAdvertisementSpec),
    Community(CommunitySpec),
    BfdProfile(BfdProfileSpec),
}

/// A document whose spec is read by the careful reader only (MetalLB's kinds, Namespaces).
#[derive(Deserialize)]
struct MetaDoc<T> {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: T,
}

/// A Namespace: only its metadata matters (its `spec` and `status` are not read).
#[derive(Deserialize)]
struct NamespaceDoc {
    #[serde(default)]
    metadata: ObjectMeta,
}

impl MlKind {
    fn raw(self, v: serde_yaml::Value, name: &str, e: &mut Vec<ConfigError>) -> Option<RawDoc> {
        fn doc<T: DeserializeOwned + Default>(
            v: serde_yaml::Value,
            name: &str,
            e: &mut Vec<ConfigError>,
        ) -> Option<(ObjectMeta, T)> {
            typed::<MetaDoc<T>>(v, name, e).map(|d| (d.metadata, d.spec))
        }
        let (meta, raw) = match self {
            MlKind::Pool => doc(v, name, e).map(|(m, s)| (m, MlRaw::Pool(s)))?,
            MlKind::Peer { v1beta1 } => doc(v, name, e).map(|(m, s)| (m, MlRaw::Peer(v1beta1, Box::new(s))))?,
            MlKind::Advertisement => doc(v, name, e).map(|(m, s)| (m, MlRaw::Advertisement(s)))?,
            MlKind::Community => doc(v, name, e).map(|(m, s)| (m, MlRaw::Community(s)))?,
            MlKind::BfdProfile => doc(v, name, e).map(|(m, s)| (m, MlRaw::BfdProfile(s)))?,
            MlKind::L2Advertisement => return None,
        };
        Some(RawDoc::MetalLb(meta, raw))
    }
}

/// A Cilium BGP v2 document; apiVersion and kind were read already.
#[derive(Deserialize)]
struct V2Doc<T> {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: T,
}

impl V2Kind {
    fn raw(self, v: serde_yaml::Value, name: &str, e: &mut Vec<ConfigError>) -> Option<V2Raw> {
        Some(match self {
            V2Kind::ClusterConfig => V2Raw::ClusterConfig(typed::<V2Doc<_>>(v, name, e)?.spec),
            V2Kind::PeerConfig => V2Raw::PeerConfig(typed::<V2Doc<_>>(v, name, e)?.spec),
            V2Kind::Advertisement => {
                let d = typed::<V2Doc<_>>(v, name, e)?;
                V2Raw::Advertisement(d.metadata.labels, d.spec)
            }
            V2Kind::NodeOverride => V2Raw::NodeOverride(typed::<V2Doc<_>>(v, name, e)?.spec),
        })
    }
}

/// The VirtualIP document; apiVersion, kind and metadata were read already.
#[derive(Deserialize)]
struct VipRaw {
    spec: VirtualIPSpec,
}

struct Loader<'a> {
    source: &'a str,
    errors: Vec<ConfigError>,
    loaded: Loaded,
}

fn typed<T: DeserializeOwned>(v: serde_yaml::Value, label: &str, errors: &mut Vec<ConfigError>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(v) {
        Ok(t) => Some(t),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            errors.push(ConfigError::new(label, path, e.into_inner().to_string()));
            None
        }
    }
}

impl<'s> Loader<'s> {
    fn new(source: &'s str) -> Loader<'s> {
        Loader { source, errors: Vec::new(), loaded: Loaded::default() }
    }

    fn finish(mut self) -> Result<Loaded, Vec<ConfigError>> {
        self.errors.extend(self.loaded.world.duplicates());
        if self.errors.is_empty() { Ok(self.loaded) } else { Err(self.errors) }
    }

    fn unknown_kind(&mut self, name: Option<&str>, label: &str, api_version: &str, kind: &str) {
        self.loaded
            .warnings
            .push(format!("{}: {api_version} {kind} is not a kind kbgp reads; ignored", name.unwrap_or(label)));
    }

    /// Validates a document into the World.
    fn accept(&mut self, name: &str, raw: RawDoc) {
        let w = &mut self.loaded.world;
        let mut d = Diag { doc: name, errors: &mut self.errors };
        match raw {
            RawDoc::Namespace(meta) => {
                w.namespaces.push(Arc::new(super::Namespace { name: name.to_string(), labels: meta.labels }))
            }
            RawDoc::MetalLb(meta, raw) => {
                let ns = meta.namespace.clone();
                let ml = &mut w.metallb;
                let warnings = &mut self.loaded.warnings;
                match raw {
                    MlRaw::Pool(spec) => {
                        w.pools.extend(metallb::pool_from_raw(&meta, name, &spec, &mut d).map(Arc::new))
                    }
                    MlRaw::Peer(v1beta1, spec) => ml.peers.extend(
                        metallb::Peer::from_raw(name, &spec, v1beta1, &mut d, warnings)
                            .map(|p| Arc::new(metallb::Peer { namespace: ns, ..p })),
                    ),
                    MlRaw::Advertisement(spec) => ml.advertisements.extend(
                        metallb::Advertisement::from_raw(name, &spec, &mut d)
                            .map(|a| Arc::new(metallb::Advertisement { namespace: ns, ..a })),
                    ),
                    MlRaw::Community(spec) => ml.communities.extend(
                        Communities::from_raw(name, &spec, &mut d)
                            .map(|c| Arc::new(Communities { namespace: ns, ..c })),
                    ),
                    MlRaw::BfdProfile(spec) => ml.bfd_profiles.extend(
                        metallb::BfdProfile::from_raw(name, &spec, &mut d, warnings)
                            .map(|b| Arc::new(metallb::BfdProfile { namespace: ns, ..b })),
                    ),
                }
            }
            RawDoc::V2(raw) => {
                let v2 = &mut w.bgp_v2;
                match raw {
                    V2Raw::ClusterConfig(spec) => {
                        v2.cluster_configs.extend(ClusterConfig::from_raw(name, &spec, &mut d).map(Arc::new))
                    }
                    V2Raw::PeerConfig(spec) => v2
                        .peer_configs
                        .extend(PeerConfig::from_raw(name, &spec, &mut d, &mut self.loaded.warnings).map(Arc::new)),
                    V2Raw::Advertisement(labels, spec) => {
                        v2.advertisements.extend(Advertisement::from_raw(name, &labels, &spec, &mut d).map(Arc::new))
                    }
                    V2Raw::NodeOverride(spec) => {
                        v2.overrides.extend(NodeOverride::from_raw(name, &spec, &mut d).map(Arc::new))
                    }
                }
            }
            RawDoc::Policy(pk, spec) => {
                if let Some(p) = PeeringPolicy::from_spec(name, pk, &spec, &mut d) {
                    w.policies.push(Arc::new(p));
                }
            }
            RawDoc::Pool(pk, raw) => {
                let before = d.errors.len();
                let p = LbPool::from_raw(pk, name, &raw, &mut d, &mut self.loaded.warnings);
                if d.errors.len() == before {
                    w.pools.push(Arc::new(p));
                }
            }
            RawDoc::Node(raw) => w.nodes.push(Arc::new(Node::from_raw(name, &raw, &mut d))),
            RawDoc::Service(raw) => w.services.push(Arc::new(Service::from_raw(name, &raw, &mut d))),
            RawDoc::EndpointSlice(raw) => w.endpoint_slices.push(Arc::new(EndpointSlice::from_raw(name, &raw))),
            RawDoc::VirtualIp(spec) => {
                if let Some(v) = VirtualIp::from_spec(name, &spec, &mut d) {
                    w.virtual_ips.push(Arc::new(v));
                }
            }
            RawDoc::Secret(raw) => {
                let before = d.errors.len();
                let s = super::secret::Secret::from_raw(name, &raw, &mut d);
                if d.errors.len() == before {
                    w.secrets.push(Arc::new(s));
                }
            }
        }
    }

    /// The careful reader: serde_yaml into a `Value` per document, then into the raw type,
    /// every problem with its field path.
    fn document(&mut self, label: String, v: serde_yaml::Value) {
        let serde_yaml::Value::Mapping(mut map) = v else {
            self.errors.push(ConfigError::new(label, "", "a document must be a mapping with apiVersion and kind"));
            return;
        };
        let s = |k: &str| map.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let (Some(api_version), Some(kind)) = (s("apiVersion"), s("kind")) else {
            self.errors.push(ConfigError::new(label, "", "missing apiVersion or kind"));
            return;
        };
        let name = map.get("metadata").and_then(|m| m.get("name")).and_then(|n| n.as_str()).map(str::to_owned);
        let Some(k) = classify(&api_version, &kind) else {
            self.unknown_kind(name.as_deref(), &label, &api_version, &kind);
            return;
        };
        if let Kind::List = k {
            match map.remove("items") {
                Some(serde_yaml::Value::Sequence(items)) => {
                    for (i, item) in items.into_iter().enumerate() {
                        self.document(format!("{label} items[{i}]"), item);
                    }
                }
                _ => self.errors.push(ConfigError::new(label, "items", "a List needs items")),
            }
            return;
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            self.errors.push(ConfigError::new(format!("{label} ({kind})"), "metadata.name", "is required"));
            return;
        };
        let v = serde_yaml::Value::Mapping(map);
        let e = &mut self.errors;
        let raw = match k {
            Kind::V2(vk) => vk.raw(v, &name, e).map(RawDoc::V2),
            Kind::MetalLb(MlKind::L2Advertisement) => {
                self.loaded.warnings.push(format!(
                    "L2Advertisement {name}: layer 2 (ARP/NDP) announcement is not done by kbgp, which announces over \
                     BGP only; ignored (a BGPAdvertisement announces the pool's addresses)"
                ));
                None
            }
            Kind::MetalLb(mk) => mk.raw(v, &name, e),
            Kind::Namespace => typed::<NamespaceDoc>(v, &name, e).map(|d| RawDoc::Namespace(d.metadata)),
            Kind::Policy(pk) => typed::<PolicyRaw>(v, &name, e).map(|r| RawDoc::Policy(pk, r.spec)),
            Kind::Pool(pk) => typed(v, &name, e).map(|r| RawDoc::Pool(pk, r)),
            Kind::Node => typed(v, &name, e).map(RawDoc::Node),
            Kind::Service => typed(v, &name, e).map(RawDoc::Service),
            Kind::EndpointSlice => typed(v, &name, e).map(RawDoc::EndpointSlice),
            Kind::Secret => typed(v, &name, e).map(RawDoc::Secret),
            Kind::VirtualIp => typed::<VipRaw>(v, &name, e).map(|r| RawDoc::VirtualIp(r.spec)),
            Kind::List => None,
        };
        if let Some(raw) = raw {
            self.accept(&name, raw);
        }
    }

    /// The fast reader ([`yaml`]): the document's fields straight into the raw type. Gives
    /// up on anything [`document`](Self::document) would report, so it never words an error
    /// of its own.
    fn fast_document<'a>(&mut self, label: &str, de: yaml::De<'_, 'a>, top: bool) -> Result<(), Bail> {
        let (mut api_version, mut kind) = (None, None);
        let mut f = Fields::default();
        let mut later: Vec<(&'a str, Mark)> = Vec::new();
        let mut items = None;
        let (shape, p) = de.map_entries(|key, v| {
            match key {
                "apiVersion" => api_version = Some(v.str()?),
                "kind" => kind = Some(v.str()?),
                "items" => items = Some(v.mark()?),
                "metadata" | "spec" | "status" | "endpoints" => match (&api_version, &kind) {
                    // apiVersion and kind come first in manifests; when they do not, the
                    // field is read again once they are known.
                    (Some(Some(a)), Some(Some(k))) => f.read(key, classify(a, k), v)?,
                    _ => later.push((key, v.mark()?)),
                },
                _ => v.skip()?,
            }
            Ok(())
        })?;
        match shape {
            Shape::Null if top => return Ok(()),
            Shape::Wanted => {}
            _ => return Err(Bail),
        }
        let (Some(Some(api_version)), Some(Some(kind))) = (api_version, kind) else { return Err(Bail) };
        let k = classify(&api_version, &kind);
        for (key, m) in later {
            p.revisit(m, |v| f.read(key, k, v))?;
        }
        let name = f.name();
        let Some(k) = k else {
            self.unknown_kind(name.as_deref(), label, &api_version, &kind);
            return Ok(());
        };
        if let Kind::List = k {
            let m = items.ok_or(Bail)?;
            let shape = p.revisit(m, |v| {
                v.seq_items(|i, item| self.fast_document(&format!("{label} items[{i}]"), item, false))
            })?;
            return if shape == Shape::Wanted { Ok(()) } else { Err(Bail) };
        }
        let name = name.filter(|n| !n.is_empty()).ok_or(Bail)?;
        let raw = match k {
            Kind::V2(vk) => RawDoc::V2(match vk {
                V2Kind::ClusterConfig => V2Raw::ClusterConfig(f.v2_cluster.unwrap_or_default()),
                V2Kind::PeerConfig => V2Raw::PeerConfig(f.v2_peer.unwrap_or_default()),
                V2Kind::Advertisement => {
                    V2Raw::Advertisement(f.meta.unwrap_or_default().labels, f.v2_advert.unwrap_or_default())
                }
                V2Kind::NodeOverride => V2Raw::NodeOverride(f.v2_override.unwrap_or_default()),
            }),
            Kind::Policy(pk) => RawDoc::Policy(pk, f.policy_spec.unwrap_or_default()),
            Kind::Pool(pk) => RawDoc::Pool(
                pk,
                PoolRaw { metadata: f.meta.unwrap_or_default(), spec: f.pool_spec.unwrap_or_default() },
            ),
            Kind::Node => RawDoc::Node(NodeRaw {
                metadata: f.meta.unwrap_or_default(),
                spec: f.node_spec.unwrap_or_default(),
                status: f.node_status.unwrap_or_default(),
            }),
            Kind::Service => RawDoc::Service(ServiceRaw {
                metadata: f.meta.unwrap_or_default(),
                spec: f.service_spec.unwrap_or_default(),
                status: f.service_status.unwrap_or_default(),
            }),
            Kind::EndpointSlice => RawDoc::EndpointSlice(EndpointSliceRaw {
                metadata: f.meta.unwrap_or_default(),
                endpoints: f.endpoints.unwrap_or_default(),
            }),
            Kind::VirtualIp => RawDoc::VirtualIp(f.vip_spec.ok_or(Bail)?),
            // Secrets, MetalLB's kinds and Namespaces are few and small: the careful reader
            // takes them.
            Kind::Secret | Kind::MetalLb(_) | Kind::Namespace | Kind::List => return Err(Bail),
        };
        self.accept(&name, raw);
        Ok(())
    }
}

/// The fields of a document the fast reader has read, typed by its kind.
#[derive(Default)]
struct Fields {
    /// `metadata` of the kinds that type it.
    meta: Option<ObjectMeta>,
    /// `metadata.name` of the others (any `metadata` is fine there, as in the careful reader).
    name_only: Option<String>,
    policy_spec: Option<PeeringPolicySpec>,
    pool_spec: Option<PoolSpec>,
    node_spec: Option<NodeSpecRaw>,
    node_status: Option<NodeStatusRaw>,
    service_spec: Option<ServiceSpecRaw>,
    service_status: Option<ServiceStatusRaw>,
    endpoints: Option<Vec<EndpointRaw>>,
    vip_spec: Option<VirtualIPSpec>,
    v2_cluster: Option<ClusterConfigSpec>,
    v2_peer: Option<PeerConfigSpec>,
    v2_advert: Option<AdvertisementSpec>,
    v2_override: Option<NodeOverrideSpec>,
}

impl Fields {
    /// Reads `key` of a document of kind `k` (`None`: a kind kbgp does not read).
    fn read(&mut self, key: &str, k: Option<Kind>, v: yaml::De<'_, '_>) -> Result<(), Bail> {
        use Kind::*;
        match (key, k) {
            ("metadata", Some(Pool(_) | Node | Service | EndpointSlice | V2(_))) => {
                self.meta = Some(Deserialize::deserialize(v)?)
            }
            ("metadata", _) => self.name_only = yaml::NameOnly::deserialize(v)?.0,
            ("spec", Some(Policy(_))) => self.policy_spec = Some(Deserialize::deserialize(v)?),
            ("spec", Some(V2(V2Kind::ClusterConfig))) => self.v2_cluster = Some(Deserialize::deserialize(v)?),
            ("spec", Some(V2(V2Kind::PeerConfig))) => self.v2_peer = Some(Deserialize::deserialize(v)?),
            ("spec", Some(V2(V2Kind::Advertisement))) => self.v2_advert = Some(Deserialize::deserialize(v)?),
            ("spec", Some(V2(V2Kind::NodeOverride))) => self.v2_override = Some(Deserialize::deserialize(v)?),
            ("spec", Some(Pool(_))) => self.pool_spec = Some(Deserialize::deserialize(v)?),
            ("spec", Some(Node)) => self.node_spec = Some(Deserialize::deserialize(v)?),
            ("status", Some(Node)) => self.node_status = Some(Deserialize::deserialize(v)?),
            ("spec", Some(Service)) => self.service_spec = Some(Deserialize::deserialize(v)?),
            ("status", Some(Service)) => self.service_status = Some(Deserialize::deserialize(v)?),
            ("spec", Some(VirtualIp)) => self.vip_spec = Some(Deserialize::deserialize(v)?),
            ("endpoints", Some(EndpointSlice)) => self.endpoints = Some(Deserialize::deserialize(v)?),
            _ => v.skip()?,
        }
        Ok(())
    }

    fn name(&self) -> Option<String> {
        match &self.meta {
            Some(m) => m.name.clone(),
            None => self.name_only.clone(),
        }
    }
}

/// The fast reader over a whole text, or [`Bail`] when the careful one must read it.
pub(super) fn load_fast(text: &str, source: &str) -> Result<Result<Loaded, Vec<ConfigError>>, Bail> {
    let mut l = Loader::new(source);
    for (i, doc) in yaml::documents(text)?.into_iter().enumerate() {
        let mut p = yaml::Parser::new(doc);
        l.fast_document(&format!("document {}", i + 1), p.root(), true)?;
        p.end()?;
    }
    Ok(l.finish())
}

/// The careful reader over a whole text.
pub(super) fn load_careful(text: &str, source: &str) -> Result<Loaded, Vec<ConfigError>> {
    let mut l = Loader::new(source);
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        match serde_yaml::Value::deserialize(doc) {
            Ok(serde_yaml::Value::Null) => {}
            Ok(v) => l.document(format!("document {}", i + 1), v),
            Err(e) => {
                // A syntax error ends the stream: the parser cannot resynchronise.
                l.errors.push(ConfigError::new(l.source, "", format!("YAML: {e}")));
                break;
            }
        }
    }
    l.finish()
}

/// One object (e.g. from the API server) through the careful reader: the World it makes,
/// exactly as the same object in a file would.
pub fn load_value(v: serde_yaml::Value, label: &str) -> Result<Loaded, Vec<ConfigError>> {
    let mut l = Loader::new(label);
    l.document(label.to_string(), v);
    l.finish()
}

/// Parses the text of a file. `source` names it in YAML syntax errors.
///
/// One pass from text to the raw types when the text is in the fast reader's subset (what
/// manifests and `kubectl get -o yaml` look like); otherwise, or on any problem, serde_yaml
/// reads it, document by document, and reports every problem.
pub fn load_str(text: &str, source: &str) -> Result<Loaded, Vec<ConfigError>> {
    load_fast(text, source).unwrap_or_else(|Bail| load_careful(text, source))
}

/// The files behind `paths`: each file as given, each directory's `*.yaml` and `*.yml` in
/// name order (not recursive).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p)
                .map_err(|e| ConfigError::new(p.display().to_string(), "", format!("cannot read: {e}")))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Loads several files (or directories) as one World; every problem of every file is reported.
pub fn load_files(paths: &[PathBuf]) -> Result<Loaded, Vec<ConfigError>> {
    let files = expand(paths).map_err(|e| vec![e])?;
    let mut all = Loaded::default();
    let mut errors = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(ConfigError::new(name, "", format!("cannot read: {e}")));
                continue;
            }
        };
        match load_str(&text, &name) {
            Ok(mut l) => {
                if let Some(dir) = f.parent() {
                    for v in &mut l.world.virtual_ips {
                        if let Some(r) = v.relative_to(dir) {
                            *v = Arc::new(r);
                        }
                    }
                }
                all.world.extend(l.world);
                all.warnings.extend(l.warnings);
            }
            Err(e) => errors.extend(e),
        }
    }
    if files.len() > 1 {
        errors.extend(all.world.duplicates());
    }
    if errors.is_empty() { Ok(all) } else { Err(errors) }
}

/// Loads one file.
pub fn load_file(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    load_files(&[path.to_path_buf()])
}
