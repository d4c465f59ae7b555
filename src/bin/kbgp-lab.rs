//! `kbgp-lab`: runs a containerlab topology in network namespaces (as root).
//!
//!   kbgp-lab up FILE [--kbgp PATH] [--state DIR]
//!   kbgp-lab status FILE
//!   kbgp-lab exec FILE NODE -- COMMAND...      (vtysh on an FRR node talks to its FRR)
//!   kbgp-lab down FILE
//!   kbgp-lab start FILE NODE                  (start a node's kbgp again, after it stopped)
//!   kbgp-lab apiserver --listen ADDR --cert F --key F --readyz F --name NAME
//!   kbgp-lab client --url URL --ca F --server-name NAME --out F

use clap::{Parser, Subcommand};
use kbgp::lab::{Runner, Topology};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kbgp-lab", version, about = "Run a containerlab topology in network namespaces")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args)]
struct Lab {
    /// The containerlab topology file.
    file: PathBuf,
    /// Where logs, pid files and FRR's sockets go (default /tmp/kbgp-lab/<lab name>).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The kbgp binary that runs on kbgp nodes (default: next to this program).
    #[arg(long)]
    kbgp: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the namespaces, links and addresses, and start FRR and kbgp.
    Up(Lab),
    /// Stop everything the lab started and remove its namespaces.
    Down(Lab),
    /// Each node: up or down, and its processes.
    Status(Lab),
    /// Run a command in a node.
    Exec {
        #[command(flatten)]
        lab: Lab,
        node: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Start a node's kbgp again (after a test stopped it); an error if it runs.
    Start {
        #[command(flatten)]
        lab: Lab,
        node: String,
    },
    /// A stand-in API server: HTTPS, `/readyz` as the control file says (ok, fail, fail N,
    /// hang), every other path answering the node's name.
    Apiserver {
        #[arg(long, default_value = "0.0.0.0:6443")]
        listen: std::net::SocketAddr,
        #[arg(long)]
        cert: PathBuf,
        #[arg(long)]
        key: PathBuf,
        /// The control file, read on every /readyz request.
        #[arg(long)]
        readyz: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// A client opening a new HTTPS connection to URL every --every-ms, one line per request
    /// in --out (start ms, duration ms, ok NAME | fail WHY).
    Client {
        #[arg(long)]
        url: String,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        server_name: String,
        #[arg(long, default_value_t = 50)]
        every_ms: u64,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

fn runner(lab: &Lab) -> Result<Runner, String> {
    let topo = Topology::load(&lab.file)?;
    let kbgp = lab.kbgp.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("kbgp")))
            .unwrap_or_else(|| PathBuf::from("kbgp"))
    });
    Ok(Runner::new(topo, lab.state.clone(), kbgp))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::Up(lab) => runner(lab).and_then(|r| {
            r.up()?;
            println!(
                "lab {} is up: {} nodes, {} links (state in {})",
                r.topo.name,
                r.topo.nodes.len(),
                r.topo.links.len(),
                r.state.display()
            );
            Ok(())
        }),
        Cmd::Down(lab) => runner(lab).and_then(|r| r.down()),
        Cmd::Status(lab) => runner(lab).map(|r| print!("{}", r.status())),
        Cmd::Start { lab, node } => runner(lab).and_then(|r| r.start(node)),
        Cmd::Apiserver { listen, cert, key, readyz, name } => {
            kbgp::lab::apiserver::serve(kbgp::lab::apiserver::Options {
                listen: *listen,
                cert: cert.clone(),
                key: key.clone(),
                readyz: readyz.clone(),
                name: name.clone(),
            })
        }
        Cmd::Client { url, ca, server_name, every_ms, timeout_ms, out } => {
            kbgp::lab::client::run(kbgp::lab::client::Options {
                url: url.clone(),
                ca_file: ca.clone(),
                server_name: server_name.clone(),
                every: std::time::Duration::from_millis((*every_ms).max(1)),
                timeout: std::time::Duration::from_millis(*timeout_ms),
                out: out.clone(),
            })
        }
        Cmd::Exec { lab, node, command } => {
            // As `docker exec`: the command's own exit code, and its own error message.
            match runner(lab).and_then(|r| r.exec_command(node, command)?.status().map_err(|e| e.to_string())) {
                Ok(status) => return ExitCode::from(status.code().unwrap_or(1).clamp(0, 255) as u8),
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kbgp-lab: {e}");
            ExitCode::FAILURE
        }
    }
}
