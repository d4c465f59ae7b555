//! What loading a static file costs, step by step, and a generator for the large file the
//! benchmark loads (N LoadBalancer Services with M ingress addresses each, a Node, a
//! peering policy and a pool as in examples/seed/), with the BIRD configuration that
//! announces the same routes.
//!
//! ```sh
//! cargo run --release --example load_file -- generate 1000 1000 /tmp/1m.yaml /tmp/1m.bird.conf
//! cargo run --release --example load_file -- time /tmp/1m.yaml
//! /usr/bin/time -v target/release/kbgp check /tmp/1m.yaml >/dev/null   # the whole check
//! /usr/bin/time -v bird -p -c /tmp/1m.bird.conf                         # BIRD parsing the same routes
//! ```

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

const HEAD: &str = r#"apiVersion: "cilium.io/v2alpha1"
kind: CiliumBGPPeeringPolicy
metadata:
  name: "rack0-65005"
spec:
  nodeSelector:
    matchLabels:
      rack: rack0
  virtualRouters:
  - localASN: 65005
    serviceSelector:
      matchLabels:
        advertise-bgp: "true"
    exportPodCIDR: true
    neighbors:
    - peerAddress: "10.0.5.1/24"
      peerASN: 65005
---
apiVersion: v1
kind: Node
metadata:
  name: rack0-node1
  labels:
    rack: rack0
spec:
  podCIDRs: [10.1.0.0/24]
status:
  addresses:
  - type: InternalIP
    address: 10.0.5.11
---
apiVersion: "cilium.io/v2alpha1"
kind: CiliumLoadBalancerIPPool
metadata:
  name: "lb-pool"
spec:
  blocks:
  - cidr: "20.0.0.0/8"
"#;

/// The k-th address: 20.0.0.0 onwards.
fn ip(k: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(0x1400_0000 + k)
}

fn generate(services: u32, per: u32, yaml: &str, bird: &str) -> std::io::Result<()> {
    let mut y = String::from(HEAD);
    let mut b = String::from("router id 10.0.5.11;\nprotocol device {}\nprotocol static s1 {\n  ipv4;\n");
    for s in 0..services {
        let _ = write!(
            y,
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{s}\n  namespace: default\n  labels:\n    advertise-bgp: \"true\"\nspec:\n  type: LoadBalancer\n  selector:\n    app: svc-{s}\n  ports:\n  - protocol: TCP\n    port: 80\nstatus:\n  loadBalancer:\n    ingress:\n"
        );
        for i in 0..per {
            let a = ip(s * per + i);
            let _ = writeln!(y, "    - ip: {a}");
            let _ = writeln!(b, "  route {a}/32 blackhole;");
        }
    }
    b.push_str("}\n");
    std::fs::write(yaml, y)?;
    std::fs::write(bird, b)
}

fn time(path: &str) -> Result<(), String> {
    let t = Instant::now();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let read = t.elapsed();
    let t = Instant::now();
    let mut loaded = kbgp::config::load_str(&text, path)
        .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))?;
    let load = t.elapsed();
    drop(text);
    let t = Instant::now();
    let alloc = kbgp::ipam::allocate(&loaded.world);
    let allocate = t.elapsed();
    let t = Instant::now();
    kbgp::ipam::apply(&mut loaded.world, &alloc);
    let apply = t.elapsed();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    println!(
        "read {:.0} ms, load {:.0} ms, LB IPAM {:.0} ms (+ apply {:.1} ms)",
        ms(read),
        ms(load),
        ms(allocate),
        ms(apply)
    );
    for n in &loaded.world.nodes {
        let t = Instant::now();
        let p = kbgp::plan::plan(&n.name, &loaded.world).map_err(|e| e.to_string())?;
        println!("plan for node {}: {:.0} ms, {} peers", n.name, ms(t.elapsed()), p.peers().count());
    }
    let addresses: usize = loaded.world.services.iter().map(|s| s.ingress_ips.len()).sum();
    println!("{} services, {addresses} addresses", loaded.world.services.len());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["generate", n, m, yaml, bird] => match (n.parse(), m.parse()) {
            (Ok(n), Ok(m)) => generate(n, m, yaml, bird).map_err(|e| e.to_string()),
            _ => Err("generate SERVICES ADDRESSES_PER_SERVICE FILE.yaml FILE.bird.conf".into()),
        },
        ["time", path] => time(path),
        _ => Err("usage: load_file generate N M FILE.yaml FILE.bird.conf | load_file time FILE.yaml".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
