//! The `kbgp` command: `run` the speaker, `check` a configuration file.

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
        /// Kubernetes mode: take part in the LB IPAM controller (one replica leads, elected by
        /// a Lease, and writes Services' status.loadBalancer.ingress and pools' status).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        lb_ipam: bool,
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

fn check(files: &[PathBuf], node: Option<&str>) -> ExitCode {
    let mut loaded = match kbgp::config::load_files(files) {
        Ok(l) => l,
        Err(errs) => {
            for e in errs {
                println!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    for w in &loaded.warnings {
        println!("warning: {w}");
    }
    let mut problems: Vec<String> = loaded.world.cross_check().iter().map(|e| e.to_string()).collect();
    let alloc = kbgp::ipam::allocate(&loaded.world);
    for (svc, ips) in &alloc.services {
        let list: Vec<String> = ips
            .iter()
            .map(|(ip, pool)| match pool {
                Some(p) => format!("{ip} (pool {p})"),
                None => format!("{ip} (its status, in no pool)"),
            })
            .collect();
        println!("LB IPAM: {svc}: {}", list.join(", "));
    }
    problems.extend(alloc.problems.iter().map(|p| format!("LB IPAM: {p}")));
    kbgp::ipam::apply(&mut loaded.world, &alloc);
    let nodes: Vec<String> = match node {
        Some(n) => vec![n.to_string()],
        None => loaded.world.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    for n in &nodes {
        match kbgp::plan::plan(n, &loaded.world) {
            Ok(p) => {
                let peers = p.peers().count();
                let routes: usize = p.peers().map(|(_, pp)| pp.routes.len()).sum();
                println!(
                    "node {n}: policy {}, {peers} peers, {routes} routes",
                    p.policy.as_deref().unwrap_or("(none)")
                );
            }
            Err(kbgp::plan::PlanError::MultiplePolicies { .. }) => {} // reported by cross_check
            Err(e) => problems.push(e.to_string()),
        }
    }
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!(
            "{}: ok ({} policies, {} pools, {} nodes, {} services)",
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
            loaded.world.policies.len(),
            loaded.world.pools.len(),
            loaded.world.nodes.len(),
            loaded.world.services.len()
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { files, node } => check(&files, node.as_deref()),
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
            lb_ipam,
            lease_namespace,
            lease_name,
            identity,
            lease_duration,
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
            });
            let opts = kbgp::daemon::RunOptions {
                config,
                node,
                metrics_addr,
                watch_interval: Duration::from_secs(watch_interval.max(1)),
                lb_ipam,
            };
            match rt.block_on(kbgp::daemon::run(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    for line in e.lines() {
                        eprintln!("kbgp: {line}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}
