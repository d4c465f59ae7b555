//! The `kbgp` command: `run` the speaker, `check` a configuration file, and ask a running
//! speaker what it does (`status`, `peers`, `routes`, `why`) or tell it to `reset` or
//! `refresh` a peer, over its admin socket.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "kbgp", version, about = "BGP speaker for Kubernetes service IPs and pod CIDRs")]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// The admin API's Unix socket: where `kbgp run` serves it ("none": not at all), and where
    /// the other commands find it.
    #[arg(long, global = true, env = "KBGP_ADMIN_SOCKET", default_value = kbgp::admin::api::DEFAULT_SOCKET)]
    admin_socket: PathBuf,
    /// How the admin commands print: a table for people, or the API's document.
    #[arg(long, short = 'o', global = true, value_parser = ["table", "json", "yaml"], default_value = "table")]
    output: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the speaker: from files with --config, else from the Kubernetes API server.
    Run {
        /// Configuration: a YAML file, or a directory of them; repeat to combine (e.g. shared
        /// manifests and this node's Node). Without it, kbgp watches the Kubernetes API
        /// (in-cluster, or $KUBECONFIG).
        #[arg(long, short = 'c', conflicts_with = "kubernetes")]
        config: Vec<PathBuf>,
        /// Read the configuration from the Kubernetes API server (the default without --config).
        #[arg(long)]
        kubernetes: bool,
        /// The node to run as (default: $NODE_NAME, else the only Node in the file).
        #[arg(long, env = "NODE_NAME")]
        node: Option<String>,
        /// Where /metrics, /healthz and /readyz are served.
        #[arg(long, default_value = "0.0.0.0:9180")]
        metrics_addr: SocketAddr,
        /// Seconds between checks of the file for changes (SIGHUP reloads at once).
        #[arg(long, default_value_t = 1)]
        watch_interval: u64,
        /// Kubernetes mode: milliseconds to gather watch events before planning, counted from
        /// the first event of a batch (0: plan at once). A burst of changes then costs one plan
        /// and one round of UPDATEs; the update latency is this window plus the work.
        #[arg(long, default_value_t = kbgp::daemon::DEFAULT_COALESCE_MS)]
        coalesce_window_ms: u64,
        /// The namespace of the Secrets that neighbors' authSecretRef names (TCP MD5
        /// passwords, key `password`), as Cilium's --bgp-secrets-namespace.
        #[arg(long, default_value = "kube-system")]
        bgp_secrets_namespace: String,
        /// The namespace of MetalLB's objects (IPAddressPool, BGPPeer, BGPAdvertisement,
        /// Community, BFDProfile) and of the Secrets BGPPeers' passwordSecret names, as
        /// MetalLB reads them from its own namespace.
        #[arg(long, default_value = kbgp::config::metallb::DEFAULT_NAMESPACE)]
        metallb_namespace: String,
        /// Handle (assign addresses to, and announce) only the LoadBalancer Services of this
        /// loadBalancerClass. Default: Services without a class, and those of class
        /// kbgp.io/bgp or io.cilium/bgp-control-plane.
        #[arg(long)]
        lb_class: Option<String>,
        /// On SIGTERM / SIGINT: `keep` the routes at peers with graceful restart while kbgp
        /// restarts (Cease with the N bit of RFC 8538, or no NOTIFICATION), or `withdraw`
        /// them (Hard Reset, Cease 6/9). Without graceful restart a peer always drops them.
        #[arg(long, value_parser = ["keep", "withdraw"], default_value = "keep")]
        on_shutdown: String,
        /// Where kbgp keeps the file that tells it, at start, that it restarted (for the
        /// Restart State bit of graceful restart); `none` to keep nothing.
        #[arg(long, default_value = "/run/kbgp")]
        state_dir: PathBuf,
        /// Kubernetes mode: take part in the LB IPAM controller (one replica leads, elected by
        /// a Lease, and writes Services' status.loadBalancer.ingress and pools' status).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        lb_ipam: bool,
        /// Kubernetes mode: run the LB IPAM controller alone, without BGP (deploy/kubernetes/
        /// lb-ipam.yaml runs it as a Deployment; the DaemonSet then runs with --lb-ipam=false).
        #[arg(long)]
        lb_ipam_only: bool,
        /// Namespace of the LB IPAM Lease.
        #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
        lease_namespace: String,
        /// Name of the LB IPAM Lease.
        #[arg(long, default_value = "kbgp-lb-ipam")]
        lease_name: String,
        /// This replica's identity in the Lease (default: the pod's name, else the node's).
        #[arg(long, env = "POD_NAME")]
        identity: Option<String>,
        /// Seconds a Lease holder may go without renewing before another replica takes over.
        #[arg(long, default_value_t = 15)]
        lease_duration: u64,
        /// Kubernetes mode: keep this node's BGPNodeStatus (kbgp.io/v1alpha1) up to date.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        node_status: bool,
        /// Shortest time, in seconds, between two writes of the BGPNodeStatus (jittered; only
        /// a changed status is written).
        #[arg(long, default_value_t = 30)]
        node_status_interval: u64,
        /// Kubernetes mode: post an Event on a Service when what this node announces of it
        /// changes (rate-limited per Service and per node).
        #[arg(long)]
        service_events: bool,
    },
    /// The running speaker: node, source, policy, peers up.
    Status,
    /// Every peer: state, uptime or last error, negotiation, routes, messages.
    Peers {
        /// Only this neighbor address.
        peer: Option<std::net::IpAddr>,
        /// Only this virtual router (local ASN).
        #[arg(long)]
        vrouter: Option<u32>,
    },
    /// Routes advertised to peers, or received from them.
    Routes {
        /// What the peers have from this node, or what they sent it.
        #[arg(value_parser = ["advertised", "received"])]
        which: String,
        /// Only this neighbor address.
        #[arg(long)]
        peer: Option<std::net::IpAddr>,
        /// Only this address family.
        #[arg(long, value_parser = ["ipv4", "ipv6"])]
        family: Option<String>,
        /// Only this virtual router (local ASN).
        #[arg(long)]
        vrouter: Option<u32>,
    },
    /// Why an address or prefix is, or is not, announced by this node, to each peer.
    Why {
        /// 20.0.0.100, 10.1.0.0/24, 2001:db8::1 ...
        target: String,
    },
    /// Reset one peer's session: hard (Cease, then connect again) or --soft (send every route
    /// again and ask the peer for its routes again, keeping the session).
    Reset {
        /// The neighbor's address.
        peer: std::net::IpAddr,
        #[arg(long)]
        soft: bool,
        /// The virtual router, when the address is a neighbor of several.
        #[arg(long)]
        vrouter: Option<u32>,
    },
    /// Ask a peer to send its routes again (ROUTE-REFRESH), keeping the session.
    Refresh {
        /// The neighbor's address.
        peer: std::net::IpAddr,
        /// The virtual router, when the address is a neighbor of several.
        #[arg(long)]
        vrouter: Option<u32>,
    },
    /// Print the CustomResourceDefinitions of kbgp's kinds, or write them to a directory.
    Crds {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Validate configuration files (or directories) as one: exit 0 if good, else one line per
    /// problem. Also shows the LB IPAM assignments and each node's plan.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also plan for this node (default: every Node in the file).
        #[arg(long)]
        node: Option<String>,
        /// The namespace of the Secrets that authSecretRef names, as for `kbgp run`.
        #[arg(long, default_value = "kube-system")]
        bgp_secrets_namespace: String,
        /// The namespace of MetalLB's objects, as for `kbgp run`.
        #[arg(long, default_value = kbgp::config::metallb::DEFAULT_NAMESPACE)]
        metallb_namespace: String,
        /// The only loadBalancerClass handled, as for `kbgp run`.
        #[arg(long)]
        lb_class: Option<String>,
        /// Ask the running kbgp (its admin socket) what these files, as its whole
        /// configuration, would change at its peers, without applying anything. Exit code 0:
        /// no change, 1: changes, 2: an error.
        #[arg(long)]
        diff: bool,
    },
    /// In a cluster: what these manifests, applied over the live objects, would change at
    /// this node's peers, without applying anything (as `kubectl diff`). Exit code 0: no
    /// change, 1: changes, 2: an error.
    Diff {
        /// Manifests (files or directories of *.yaml).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

fn check(
    files: &[PathBuf],
    node: Option<&str>,
    namespaces: &kbgp::config::Namespaces,
    lb_class: Option<String>,
) -> ExitCode {
    let mut loaded = match kbgp::config::load_files(files) {
        Ok(l) => l,
        Err(errs) => {
            for e in errs {
                println!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let dropped = loaded.world.scope(namespaces);
    loaded.world.lb_class = lb_class;
    for w in loaded.warnings.iter().chain(&dropped) {
        println!("warning: {w}");
    }
    let mut problems: Vec<String> = loaded.world.cross_check().iter().map(|e| e.to_string()).collect();
    let alloc = kbgp::ipam::allocate(&loaded.world);
    for (svc, ips) in &alloc.services {
        println!("LB IPAM: {svc}: {}", kbgp::ipam::describe(ips));
    }
    problems.extend(alloc.problems.iter().map(|p| format!("LB IPAM: {p}")));
    kbgp::ipam::apply(&mut loaded.world, &alloc);
    let nodes: Vec<String> = match node {
        Some(n) => vec![n.to_string()],
        None => loaded.world.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    let world = std::sync::Arc::new(loaded.world);
    for n in &nodes {
        let mut count = kbgp::plan::Count::default();
        match kbgp::plan::Planner::new(n).update_into(world.clone(), &mut count) {
            Ok(p) => {
                let peers = p.peers().count();
                for (_, pp) in p.peers() {
                    if let kbgp::session::config::Auth::Missing(why) = &pp.settings.auth {
                        problems.push(format!("node {n}: {why}"));
                    }
                }
                let routes: usize = p.peers().map(|(_, pp)| count.routes(&pp.group)).sum();
                println!(
                    "node {n}: policy {}, {peers} peers, {routes} routes",
                    p.policy_name().as_deref().unwrap_or("(none)")
                );
            }
            Err(kbgp::plan::PlanError::MultiplePolicies { .. }) => {} // reported by cross_check
            Err(e) => problems.push(e.to_string()),
        }
    }
    for v in &world.virtual_ips {
        let check = v.health_check.as_ref().map_or("always (no healthCheck)".to_string(), |h| {
            format!(
                "while {} passes (rise {}, fall {}, every {} ms)",
                h.target.describe(),
                h.policy.rise,
                h.policy.fall,
                h.policy.interval.as_millis()
            )
        });
        let by: Vec<&str> = world.nodes.iter().filter(|n| v.selects(&n.labels)).map(|n| n.name.as_str()).collect();
        let addrs: Vec<String> = v.addresses.iter().map(|a| a.to_string()).collect();
        println!(
            "VirtualIP {}: {} announced {check}, by {}",
            v.name,
            addrs.join(", "),
            if by.is_empty() { "no Node in the files".to_string() } else { by.join(", ") }
        );
        // The files the check reads, as the daemon will read them on this machine.
        if let Some(h) = &v.health_check
            && let Err(e) = kbgp::daemon::health::Probe::new(h)
        {
            problems.push(format!("{}: spec.healthCheck.{e}", v.name));
        }
    }
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!(
            "{}: ok ({} policies, {} pools, {} nodes, {} services, {} virtual IPs)",
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
            world.policies.len(),
            world.pools.len(),
            world.nodes.len(),
            world.services.len(),
            world.virtual_ips.len()
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `kbgp check --diff` (the files replace the configuration) and `kbgp diff -f` (they go over
/// the live objects): validated here, planned by the running kbgp. 0: no change, 1: changes,
/// 2: an error.
fn preview(cli: &Cli, files: &[PathBuf], overlay: bool) -> ExitCode {
    use kbgp::admin::api::Preview;
    let fail = |e: String| {
        eprintln!("kbgp: {e}");
        ExitCode::from(2)
    };
    if let Err(errs) = kbgp::config::load_files(files) {
        for e in errs {
            println!("{e}");
        }
        return ExitCode::from(2);
    }
    let paths = match kbgp::config::expand(files) {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let mut text = String::new();
    for p in &paths {
        match std::fs::read_to_string(p) {
            Ok(t) => {
                text.push_str("\n---\n");
                text.push_str(&t);
            }
            Err(e) => return fail(format!("{}: {e}", p.display())),
        }
    }
    let c = kbgp::admin::client::Client::new(&cli.admin_socket);
    let mode = if overlay { "overlay" } else { "replace" };
    let p: Preview = match c.call_with("POST", &format!("/v1/diff?mode={mode}"), text.into_bytes()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if let Err(e) = show(&cli.output, &p, kbgp::admin::render::preview) {
        return fail(e);
    }
    if p.diff.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Prints a document as asked: `-o json`, `-o yaml`, or the table `human` makes.
fn show<T: serde::Serialize>(output: &str, doc: &T, human: impl FnOnce(&T) -> String) -> Result<(), String> {
    let text = match output {
        "json" => serde_json::to_string_pretty(doc).map(|s| s + "\n").map_err(|e| e.to_string())?,
        "yaml" => serde_yaml::to_string(doc).map_err(|e| e.to_string())?,
        _ => human(doc),
    };
    print!("{text}");
    Ok(())
}

/// The admin commands: one request, one printout, one line on failure.
fn admin(cli: &Cli) -> Result<(), String> {
    use kbgp::admin::client::{Client, query};
    use kbgp::admin::{api, render};
    let c = Client::new(&cli.admin_socket);
    let out = cli.output.as_str();
    let now = api::unix_now();
    match &cli.cmd {
        Cmd::Status => show(out, &c.call::<api::Status>("GET", "/v1/status")?, render::status),
        Cmd::Peers { peer, vrouter } => {
            let q = query(&[("peer", peer.map(|p| p.to_string())), ("vrouter", vrouter.map(|v| v.to_string()))]);
            let list: Vec<api::Peer> = c.call("GET", &format!("/v1/peers{q}"))?;
            show(out, &list, |l| render::peers(l, now))
        }
        Cmd::Routes { which, peer, family, vrouter } => {
            let q = query(&[
                ("peer", peer.map(|p| p.to_string())),
                ("family", family.clone()),
                ("vrouter", vrouter.map(|v| v.to_string())),
            ]);
            let list: Vec<api::Route> = c.call("GET", &format!("/v1/routes/{which}{q}"))?;
            show(out, &list, |l| render::routes(l, which == "received"))
        }
        Cmd::Why { target } => {
            let t = api::parse_target(target)?;
            let w: kbgp::plan::why::Why =
                c.call("GET", &format!("/v1/why{}", query(&[("target", Some(t.to_string()))])))?;
            show(out, &w, render::why)
        }
        Cmd::Reset { peer, soft, vrouter } => {
            let q = query(&[("soft", Some(soft.to_string())), ("vrouter", vrouter.map(|v| v.to_string()))]);
            let d: api::Done = c.call("POST", &format!("/v1/peers/{peer}/reset{q}"))?;
            show(out, &d, render::done)
        }
        Cmd::Refresh { peer, vrouter } => {
            let q = query(&[("vrouter", vrouter.map(|v| v.to_string()))]);
            let d: api::Done = c.call("POST", &format!("/v1/peers/{peer}/refresh{q}"))?;
            show(out, &d, render::done)
        }
        Cmd::Run { .. } | Cmd::Crds { .. } | Cmd::Check { .. } | Cmd::Diff { .. } => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let admin_socket = (cli.admin_socket.as_os_str() != "none").then(|| cli.admin_socket.clone());
    match cli.cmd {
        Cmd::Check { ref files, diff: true, .. } => preview(&cli, files, false),
        Cmd::Diff { ref files } => preview(&cli, files, true),
        Cmd::Check { files, node, bgp_secrets_namespace, metallb_namespace, lb_class, diff: false } => check(
            &files,
            node.as_deref(),
            &kbgp::config::Namespaces { bgp_secrets: bgp_secrets_namespace, metallb: metallb_namespace },
            lb_class,
        ),
        Cmd::Crds { out } => {
            for (name, text) in kbgp::config::crd::crds() {
                match &out {
                    None => print!("---\n{text}"),
                    Some(dir) => {
                        let path = dir.join(name);
                        if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&path, text)) {
                            eprintln!("kbgp: {}: {e}", path.display());
                            return ExitCode::FAILURE;
                        }
                        println!("wrote {}", path.display());
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Run {
            config,
            kubernetes: _,
            node,
            metrics_addr,
            watch_interval,
            coalesce_window_ms,
            bgp_secrets_namespace,
            metallb_namespace,
            lb_class,
            lb_ipam,
            lb_ipam_only,
            lease_namespace,
            lease_name,
            identity,
            lease_duration,
            node_status,
            node_status_interval,
            service_events,
            on_shutdown,
            state_dir,
        } => {
            init_logs(&cli.log_format);
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("kbgp: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let lb_ipam = (lb_ipam && config.is_empty()).then(|| kbgp::ipam::controller::Options {
                identity: identity.or_else(|| node.clone()).unwrap_or_else(|| "kbgp".into()),
                namespace: lease_namespace,
                lease_name,
                lease_duration: Duration::from_secs(lease_duration.max(3)),
                conditions: false,
            });
            let opts = kbgp::daemon::RunOptions {
                config,
                node,
                metrics_addr,
                watch_interval: Duration::from_secs(watch_interval.max(1)),
                coalesce_window: Duration::from_millis(coalesce_window_ms),
                namespaces: kbgp::config::Namespaces { bgp_secrets: bgp_secrets_namespace, metallb: metallb_namespace },
                lb_class,
                lb_ipam,
                admin_socket,
                node_status: kbgp::daemon::node_status::Options {
                    node_status,
                    interval: Duration::from_secs(node_status_interval.max(1)),
                    service_events,
                },
                on_shutdown: if on_shutdown == "withdraw" {
                    kbgp::session::peer::Shutdown::Withdraw
                } else {
                    kbgp::session::peer::Shutdown::Keep
                },
                state_dir: (state_dir != std::path::Path::new("none")).then_some(state_dir),
            };
            if lb_ipam_only && (!opts.config.is_empty() || opts.lb_ipam.is_none()) {
                eprintln!("kbgp: --lb-ipam-only is for Kubernetes mode (no --config) with --lb-ipam=true");
                return ExitCode::FAILURE;
            }
            let result = if lb_ipam_only {
                rt.block_on(kbgp::daemon::run_lb_ipam(opts))
            } else {
                rt.block_on(kbgp::daemon::run(opts))
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    for line in e.lines() {
                        eprintln!("kbgp: {line}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
        // status, peers, routes, why, reset, refresh: one request to the running kbgp.
        _ => match admin(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kbgp: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
