//! The route set and every daemon's configuration for it. All senders announce the same
//! routes: N /32 LoadBalancer IPs from 100.64.0.0 up (1000 Services, N/1000 IPs each) and the
//! node's pod CIDR, so each receiver must end up holding N + 1 routes.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;

pub const ASN: u32 = 65000;
pub const POD_CIDR: &str = "10.244.0.0/24";
pub const SERVICES: usize = 1000;

/// The i-th LoadBalancer IP.
pub fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + i as u32)
}

fn create(path: &Path) -> BufWriter<fs::File> {
    BufWriter::with_capacity(1 << 20, fs::File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// `services` LoadBalancer Services with `per` ingress IPs each (pinned in status), labelled
/// for the policy's serviceSelector. IPs start at `first`.
pub fn kbgp_services(path: &Path, services: usize, per: usize, first: usize) {
    let mut w = create(path);
    for s in 0..services {
        let mut ips = String::with_capacity(per * 22);
        for j in 0..per {
            if j > 0 {
                ips.push_str(", ");
            }
            let _ = write!(ips, "{{ip: {}}}", ip(first + s * per + j));
        }
        writeln!(
            w,
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{s:05}\n  namespace: bench\n  labels: {{advertise-bgp: \"true\"}}\n\
             spec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\nstatus:\n  loadBalancer:\n    ingress: [{ips}]"
        )
        .expect("write services");
    }
    w.flush().expect("write services");
}

/// One Node (with the pod CIDR, InternalIP `node_ip`) and a kbgp.io/v1alpha1 peering policy
/// with one iBGP neighbor per address in `peers`, on `port`. connectRetryTimeSeconds is also
/// how long kbgp gives one TCP connect: 1 s is too short for 32 peers while kbgp is busy.
pub fn kbgp_node_policy(path: &Path, node_ip: Ipv4Addr, peers: &[Ipv4Addr], port: u16) -> String {
    let mut n = String::new();
    for p in peers {
        let _ = writeln!(
            n,
            "    - {{peerAddress: \"{p}/32\", peerASN: {ASN}, peerPort: {port}, connectRetryTimeSeconds: 5}}"
        );
    }
    let text = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: bench-node\n  labels: {{bench: \"true\"}}\n\
         spec:\n  podCIDR: {POD_CIDR}\n  podCIDRs: [{POD_CIDR}]\nstatus:\n  addresses: [{{type: InternalIP, address: {node_ip}}}]\n\
         ---\napiVersion: kbgp.io/v1alpha1\nkind: BGPPeeringPolicy\nmetadata:\n  name: bench\nspec:\n\
         \x20 nodeSelector: {{matchLabels: {{bench: \"true\"}}}}\n  virtualRouters:\n  - localASN: {ASN}\n\
         \x20   exportPodCIDR: true\n    serviceSelector: {{matchLabels: {{advertise-bgp: \"true\"}}}}\n    neighbors:\n{n}"
    );
    fs::write(path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text
}

/// BIRD 2 announcing the N + 1 routes (static blackholes) to one iBGP neighbor.
pub fn bird_sender(path: &Path, n: usize, local: Ipv4Addr, neighbor: Ipv4Addr, port: u16, log: &Path) {
    let mut w = create(path);
    writeln!(
        w,
        "log \"{}\" all;\nrouter id {local};\nprotocol device {{ }}\nprotocol static static1 {{\n  ipv4;\n  route {POD_CIDR} blackhole;",
        log.display()
    )
    .expect("write bird.conf");
    for i in 0..n {
        writeln!(w, "  route {}/32 blackhole;", ip(i)).expect("write bird.conf");
    }
    writeln!(
        w,
        "}}\nprotocol bgp peer1 {{\n  local {local} as {ASN};\n  neighbor {neighbor} port {port} as {ASN};\n\
         \x20 connect delay time 1; connect retry time 1; error wait time 1, 5;\n\
         \x20 ipv4 {{ import none; export where source = RTS_STATIC; next hop self; }};\n}}"
    )
    .expect("write bird.conf");
    w.flush().expect("write bird.conf");
}

/// BIRD 2 as the receiver: one passive iBGP session, every route imported. Log timestamps in
/// microseconds (UTC when started with TZ=UTC) give the moment the session is established.
pub fn bird_receiver(path: &Path, local: Ipv4Addr, neighbor: Ipv4Addr, log: &Path) {
    let text = format!(
        "log \"{}\" all;\ntimeformat log \"%F %T.%6f\";\nrouter id {local};\nprotocol device {{ }}\n\
         protocol direct {{ ipv4; interface \"eth0\"; }}\n\
         protocol bgp peer1 {{\n  local {local} as {ASN};\n  neighbor {neighbor} as {ASN};\n  passive on;\n\
         \x20 debug {{ states, events }};\n  ipv4 {{ import all; export none; }};\n}}\n",
        log.display()
    );
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// FRR bgpd announcing the N + 1 routes with `network` statements (no zebra: bgpd -Z).
pub fn frr_sender(path: &Path, n: usize, local: Ipv4Addr, neighbor: Ipv4Addr, log: &Path) {
    let mut w = create(path);
    writeln!(
        w,
        "frr defaults traditional\nhostname bench\nlog file {} informational\nlog timestamp precision 3\n!\n\
         router bgp {ASN}\n bgp router-id {local}\n bgp log-neighbor-changes\n no bgp ebgp-requires-policy\n\
         \x20no bgp default ipv4-unicast\n no bgp network import-check\n neighbor {neighbor} remote-as {ASN}\n\
         \x20neighbor {neighbor} timers connect 1\n address-family ipv4 unicast\n  neighbor {neighbor} activate\n  network {POD_CIDR}",
        log.display()
    )
    .expect("write bgpd.conf");
    for i in 0..n {
        writeln!(w, "  network {}/32", ip(i)).expect("write bgpd.conf");
    }
    writeln!(w, " exit-address-family\n!").expect("write bgpd.conf");
    w.flush().expect("write bgpd.conf");
}

/// gobgpd with one iBGP neighbor; the routes come from an MRT file (`gobgp mrt inject`).
pub fn gobgp_sender(path: &Path, local: Ipv4Addr, neighbor: Ipv4Addr) {
    let text = format!(
        "[global.config]\n  as = {ASN}\n  router-id = \"{local}\"\n  port = 179\n\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{neighbor}\"\n    peer-as = {ASN}\n\
         [neighbors.timers.config]\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n\
         [neighbors.transport.config]\n    local-address = \"{local}\"\n\
         [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n"
    );
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// An MRT TABLE_DUMP_V2 file (RFC 6396) with the N + 1 routes, one path each from one peer:
/// ORIGIN IGP, empty AS_PATH, NEXT_HOP `next_hop`, LOCAL_PREF 100. `gobgp mrt inject` loses
/// the tail of what it streams (it exits before gobgpd has read it all), so the routes are
/// followed by copies of the pod CIDR's record as padding: losing some of those changes
/// nothing in the RIB.
pub fn mrt(path: &Path, n: usize, next_hop: Ipv4Addr) {
    let mut w = create(path);
    let record = |subtype: u16, body: &[u8], w: &mut BufWriter<fs::File>| {
        let mut h = Vec::with_capacity(12);
        h.extend_from_slice(&0u32.to_be_bytes()); // timestamp
        h.extend_from_slice(&13u16.to_be_bytes()); // TABLE_DUMP_V2
        h.extend_from_slice(&subtype.to_be_bytes());
        h.extend_from_slice(&(body.len() as u32).to_be_bytes());
        w.write_all(&h).expect("write mrt");
        w.write_all(body).expect("write mrt");
    };
    // PEER_INDEX_TABLE: collector id, empty view name, one peer (IPv4, 4-octet AS).
    let mut b = Vec::new();
    b.extend_from_slice(&next_hop.octets());
    b.extend_from_slice(&0u16.to_be_bytes());
    b.extend_from_slice(&1u16.to_be_bytes());
    b.push(0b10);
    b.extend_from_slice(&next_hop.octets());
    b.extend_from_slice(&next_hop.octets());
    b.extend_from_slice(&ASN.to_be_bytes());
    record(1, &b, &mut w);
    let mut attrs = vec![0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4];
    attrs.extend_from_slice(&next_hop.octets());
    attrs.extend_from_slice(&[0x40, 5, 4, 0, 0, 0, 100]);
    let pod: ipnet::Ipv4Net = POD_CIDR.parse().expect("pod cidr");
    let padding = (n / 10).max(10_000);
    let routes = std::iter::once((pod.addr(), pod.prefix_len()))
        .chain((0..n).map(|i| (ip(i), 32)))
        .chain(std::iter::repeat_n((pod.addr(), pod.prefix_len()), padding));
    for (seq, (addr, len)) in routes.enumerate() {
        b.clear();
        b.extend_from_slice(&(seq as u32).to_be_bytes());
        b.push(len);
        b.extend_from_slice(&addr.octets()[..(len as usize).div_ceil(8)]);
        b.extend_from_slice(&1u16.to_be_bytes()); // entry count
        b.extend_from_slice(&0u16.to_be_bytes()); // peer index
        b.extend_from_slice(&0u32.to_be_bytes()); // originated time
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(&attrs);
        record(2, &b, &mut w); // RIB_IPV4_UNICAST
    }
    w.flush().expect("write mrt");
}
