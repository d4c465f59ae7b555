//! The subset of containerlab's topology file the netns runner reads: nodes (kind, image,
//! binds, exec, cmd) and links. Anything else in the file is left to containerlab.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct FileRaw {
    name: String,
    topology: TopologyRaw,
}

#[derive(Deserialize)]
struct TopologyRaw {
    #[serde(default)]
    nodes: BTreeMap<String, NodeRaw>,
    #[serde(default)]
    links: Vec<LinkRaw>,
}

#[derive(Deserialize)]
struct NodeRaw {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    binds: Vec<String>,
    #[serde(default)]
    exec: Vec<String>,
    #[serde(default)]
    cmd: Option<String>,
}

#[derive(Deserialize)]
struct LinkRaw {
    endpoints: Vec<String>,
}

/// A host path mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    pub host: PathBuf,
    pub container: String,
}

/// What a node is, for the runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A Linux bridge (a rack LAN).
    Bridge,
    /// An FRR router: zebra and bgpd with its bound `/etc/frr/frr.conf`.
    Frr,
    /// A node running the kbgp command.
    Kbgp,
    /// Anything else: only its exec lines run (a client).
    Host,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub role: Role,
    pub image: Option<String>,
    pub binds: Vec<Bind>,
    pub exec: Vec<String>,
    pub cmd: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub node: String,
    pub iface: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub a: Endpoint,
    pub b: Endpoint,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub name: String,
    /// The directory of the topology file: relative binds start there.
    pub dir: PathBuf,
    pub nodes: BTreeMap<String, Node>,
    pub links: Vec<Link>,
}

impl Node {
    /// The host path behind a container path, through the binds.
    pub fn host_path(&self, container: &str) -> Option<PathBuf> {
        self.binds
            .iter()
            .filter(|b| container == b.container || container.starts_with(&format!("{}/", b.container)))
            .max_by_key(|b| b.container.len())
            .map(|b| match container[b.container.len()..].trim_start_matches('/') {
                "" => b.host.clone(),
                rest => b.host.join(rest),
            })
    }

    /// A command line with every container path replaced by its host path.
    pub fn translate(&self, line: &str) -> Vec<String> {
        split_words(line)
            .into_iter()
            .map(|w| match self.host_path(&w) {
                Some(p) if w.starts_with('/') => p.display().to_string(),
                _ => w,
            })
            .collect()
    }
}

/// Splits a command line into words, with single and double quotes (as containerlab does).
pub fn split_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn endpoint(s: &str) -> Result<Endpoint, String> {
    let (node, iface) = s.split_once(':').ok_or_else(|| format!("endpoint {s:?} is not node:interface"))?;
    if iface.is_empty() || iface.len() > 15 {
        return Err(format!("endpoint {s:?}: interface names are 1 to 15 characters"));
    }
    Ok(Endpoint { node: node.to_string(), iface: iface.to_string() })
}

impl Topology {
    pub fn load(path: &Path) -> Result<Topology, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        Topology::parse(&text, &dir).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str, dir: &Path) -> Result<Topology, String> {
        let raw: FileRaw = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let mut nodes = BTreeMap::new();
        for (name, n) in raw.topology.nodes {
            let binds = n
                .binds
                .iter()
                .map(|b| {
                    let mut parts = b.splitn(3, ':');
                    let (Some(host), Some(container)) = (parts.next(), parts.next()) else {
                        return Err(format!("node {name}: bind {b:?} is not host:container[:options]"));
                    };
                    let host = Path::new(host);
                    let host = if host.is_absolute() { host.to_path_buf() } else { dir.join(host) };
                    Ok(Bind { host, container: container.trim_end_matches('/').to_string() })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let role = match (n.kind.as_deref(), &n.image, &n.cmd) {
                (Some("bridge"), _, _) => Role::Bridge,
                (_, _, Some(c)) if split_words(c).first().is_some_and(|w| w == "kbgp" || w.ends_with("/kbgp")) => {
                    Role::Kbgp
                }
                (_, Some(i), _) if i.contains("frr") => Role::Frr,
                _ => Role::Host,
            };
            let node = Node { name: name.clone(), role, image: n.image, binds, exec: n.exec, cmd: n.cmd };
            if role == Role::Frr && node.host_path("/etc/frr/frr.conf").is_none() {
                return Err(format!("node {name}: an FRR node needs a bind for /etc/frr/frr.conf"));
            }
            nodes.insert(name, node);
        }
        let mut links = Vec::new();
        let mut used = BTreeSet::new();
        for (i, l) in raw.topology.links.iter().enumerate() {
            let [a, b] = l.endpoints.as_slice() else {
                return Err(format!("links[{i}]: a link has two endpoints"));
            };
            let (a, b) = (endpoint(a)?, endpoint(b)?);
            for e in [&a, &b] {
                if !nodes.contains_key(&e.node) {
                    return Err(format!("links[{i}]: no node {}", e.node));
                }
                if !used.insert(e.clone()) {
                    return Err(format!("links[{i}]: {}:{} is used twice", e.node, e.iface));
                }
            }
            if nodes[&a.node].role == Role::Bridge && nodes[&b.node].role == Role::Bridge {
                return Err(format!("links[{i}]: two bridges cannot be linked"));
            }
            links.push(Link { a, b });
        }
        Ok(Topology { name: raw.name, dir: dir.to_path_buf(), nodes, links })
    }
}
