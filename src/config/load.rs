//! Loading a multi-document YAML file into a [`World`].
//!
//! Every document is read even when an earlier one is wrong, so one run of `kbgp check`
//! reports every problem. A file with any error yields no World at all: nothing starts
//! half-way.

use super::World;
use super::error::{ConfigError, Diag};
use super::k8s::{EndpointSlice, EndpointSliceRaw, Node, NodeRaw, Service, ServiceRaw};
use super::policy::{PeeringPolicy, PeeringPolicySpec, PolicyKind};
use super::pool::{LbPool, PoolKind, PoolRaw};
use serde::Deserialize;
use serde::de::DeserializeOwned;
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

/// What a document is, from its apiVersion and kind.
enum Kind {
    Policy(PolicyKind),
    Pool(PoolKind),
    Node,
    Service,
    EndpointSlice,
    List,
}

fn classify(api_version: &str, kind: &str) -> Option<Kind> {
    Some(match (api_version, kind) {
        ("cilium.io/v2alpha1", "CiliumBGPPeeringPolicy") => Kind::Policy(PolicyKind::Cilium),
        ("kbgp.io/v1alpha1", "BGPPeeringPolicy") => Kind::Policy(PolicyKind::Kbgp),
        ("cilium.io/v2alpha1" | "cilium.io/v2", "CiliumLoadBalancerIPPool") => Kind::Pool(PoolKind::Cilium),
        ("kbgp.io/v1alpha1", "LoadBalancerIPPool") => Kind::Pool(PoolKind::Kbgp),
        ("v1", "Node") => Kind::Node,
        ("v1", "Service") => Kind::Service,
        ("discovery.k8s.io/v1", "EndpointSlice") => Kind::EndpointSlice,
        ("v1", "List") => Kind::List,
        _ => return None,
    })
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

impl Loader<'_> {
    fn document(&mut self, label: String, v: serde_yaml::Value) {
        let Some(map) = v.as_mapping() else {
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
            self.loaded.warnings.push(format!(
                "{}: {api_version} {kind} is not a kind kbgp reads; ignored",
                name.as_deref().unwrap_or(&label)
            ));
            return;
        };
        if let Kind::List = k {
            match map.get("items").and_then(|i| i.as_sequence()) {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.document(format!("{label} items[{i}]"), item.clone());
                    }
                }
                None => self.errors.push(ConfigError::new(label, "items", "a List needs items")),
            }
            return;
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            self.errors.push(ConfigError::new(format!("{label} ({kind})"), "metadata.name", "is required"));
            return;
        };
        let mut d = Diag { doc: &name, errors: &mut self.errors };
        match k {
            Kind::Policy(pk) => {
                if let Some(raw) = typed::<PolicyRaw>(v, &name, d.errors)
                    && let Some(p) = PeeringPolicy::from_spec(&name, pk, &raw.spec, &mut d)
                {
                    self.loaded.world.policies.push(Arc::new(p));
                }
            }
            Kind::Pool(pk) => {
                if let Some(raw) = typed::<PoolRaw>(v, &name, d.errors) {
                    let before = d.errors.len();
                    let p = LbPool::from_raw(pk, &name, &raw, &mut d, &mut self.loaded.warnings);
                    if d.errors.len() == before {
                        self.loaded.world.pools.push(Arc::new(p));
                    }
                }
            }
            Kind::Node => {
                if let Some(raw) = typed::<NodeRaw>(v, &name, d.errors) {
                    let n = Node::from_raw(&name, &raw, &mut d);
                    self.loaded.world.nodes.push(Arc::new(n));
                }
            }
            Kind::Service => {
                if let Some(raw) = typed::<ServiceRaw>(v, &name, d.errors) {
                    let s = Service::from_raw(&name, &raw, &mut d);
                    self.loaded.world.services.push(Arc::new(s));
                }
            }
            Kind::EndpointSlice => {
                if let Some(raw) = typed::<EndpointSliceRaw>(v, &name, d.errors) {
                    self.loaded.world.endpoint_slices.push(Arc::new(EndpointSlice::from_raw(&name, &raw)));
                }
            }
            Kind::List => {}
        }
    }
}

/// Parses the text of a file. `source` names it in YAML syntax errors.
pub fn load_str(text: &str, source: &str) -> Result<Loaded, Vec<ConfigError>> {
    let mut l = Loader { source, errors: Vec::new(), loaded: Loaded::default() };
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
    l.errors.extend(l.loaded.world.duplicates());
    if l.errors.is_empty() { Ok(l.loaded) } else { Err(l.errors) }
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
            Ok(l) => {
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
