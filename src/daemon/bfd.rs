//! BFD over UDP: the sockets around the sans-IO sessions of `session::Peer`.
//!
//! - Receiving: one socket per family and port, 3784 for single hop (RFC 5881 §4) and 4784
//!   for multihop (RFC 5883 §5), bound when the first neighbor needs it. Each datagram comes
//!   with the TTL (hop limit) it arrived with, from `IP_RECVTTL` / `IPV6_RECVHOPLIMIT`, so
//!   that the core can apply GTSM (RFC 5881 §5: single hop requires 255).
//! - Sending: one socket per session, from a source port in 49152–65535 that stays the
//!   same for the session (RFC 5881 §4), with TTL 255.
//!
//! Nothing here decides anything: datagrams go to `Speaker::handle_bfd`, packets come from
//! `Io::Bfd`.

use super::conn::{set_int, set_ttl};
use crate::bfd::{PORT_MULTIHOP, PORT_SINGLE_HOP, SOURCE_PORTS};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, error, info};

/// One datagram received on a BFD port.
#[derive(Debug)]
pub struct Datagram {
    pub from: IpAddr,
    pub multihop: bool,
    /// The TTL or hop limit it arrived with (0 when the kernel did not say).
    pub ttl: u8,
    pub bytes: Vec<u8>,
}

/// The receiving sockets.
pub struct Listeners {
    tx: mpsc::Sender<Datagram>,
    /// Single hop, multihop: bound (or tried) already.
    tried: [bool; 2],
    tasks: Vec<JoinHandle<()>>,
}

impl Listeners {
    pub fn new(tx: mpsc::Sender<Datagram>) -> Listeners {
        Listeners { tx, tried: [false; 2], tasks: Vec::new() }
    }

    /// Binds the port of single-hop or multihop BFD, for IPv4 and IPv6, once.
    pub fn ensure(&mut self, multihop: bool) {
        if std::mem::replace(&mut self.tried[usize::from(multihop)], true) {
            return;
        }
        let port = if multihop { PORT_MULTIHOP } else { PORT_SINGLE_HOP };
        let any: [IpAddr; 2] = [Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()];
        for ip in any {
            match receiver(SocketAddr::new(ip, port)) {
                Ok(sock) => {
                    info!(port, family = if ip.is_ipv4() { "ipv4" } else { "ipv6" }, "BFD listening");
                    let tx = self.tx.clone();
                    self.tasks.push(tokio::spawn(read_loop(sock, multihop, tx)));
                }
                // A host without IPv6 still runs IPv4 BFD.
                Err(e) if ip.is_ipv6() && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
                Err(e) => error!(port, "cannot receive BFD on {ip} port {port}: {e}; BFD sessions cannot come up"),
            }
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn receiver(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        set_int(s.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
    } else {
        set_int(s.as_fd(), libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

async fn read_loop(sock: UdpSocket, multihop: bool, tx: mpsc::Sender<Datagram>) {
    let mut buf = [0u8; 512];
    loop {
        if let Err(e) = sock.readable().await {
            return error!("BFD socket failed: {e}");
        }
        let got = sock.try_io(Interest::READABLE, || recv_with_ttl(&sock, &mut buf));
        match got {
            Ok((n, from, ttl)) => {
                let d = Datagram { from: from.ip().to_canonical(), multihop, ttl, bytes: buf[..n].to_vec() };
                if tx.send(d).await.is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => debug!("BFD receive: {e}"),
        }
    }
}

/// One datagram with its source and the TTL / hop limit from the control message.
fn recv_with_ttl(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, u8)> {
    // SAFETY: every pointer handed to recvmsg points into a local that outlives the call, with
    // its true length; the control messages are walked with the libc macros within
    // `msg_controllen`, and read unaligned.
    unsafe {
        let mut name: libc::sockaddr_storage = std::mem::zeroed();
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut control = [0u64; 16];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ttl = 0u8;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            let is_ttl = (h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_TTL)
                || (h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT);
            if is_ttl {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                ttl = u8::try_from(v).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        let from = match name.ss_family as libc::c_int {
            libc::AF_INET => {
                let a = std::ptr::read_unaligned((&name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>());
                SocketAddr::new(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)).into(), u16::from_be(a.sin_port))
            }
            libc::AF_INET6 => {
                let a = std::ptr::read_unaligned((&name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>());
                SocketAddr::new(Ipv6Addr::from(a.sin6_addr.s6_addr).into(), u16::from_be(a.sin6_port))
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidData, "not an IP source")),
        };
        Ok((n as usize, from, ttl))
    }
}

/// The sending socket of one session: TTL 255, a fixed source port in 49152–65535. A plain
/// non-blocking socket: sends never wait (tokio's `try_send_to` would refuse until its
/// reactor had seen the socket writable once, losing the first packets).
pub fn sender(peer: IpAddr, seed: u64) -> io::Result<std::net::UdpSocket> {
    let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let start = seed % span;
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free source port in 49152-65535");
    let any: IpAddr = if peer.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    for i in 0..64 {
        let port = *SOURCE_PORTS.start() + ((start + i * 257) % span) as u16;
        let local = SocketAddr::new(any, port);
        let s = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
        set_ttl(&s, &local, 255)?;
        s.set_nonblocking(true)?;
        match s.bind(&local.into()) {
            Ok(()) => return Ok(s.into()),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Sends one packet; a full socket buffer or an unreachable network loses it, as a lost
/// packet on the path would.
pub fn send(sock: &std::net::UdpSocket, to: SocketAddr, bytes: &[u8]) {
    if let Err(e) = sock.send_to(bytes, to) {
        debug!(%to, "BFD send: {e}");
    }
}

/// The port a session sends to.
pub fn port(multihop: bool) -> u16 {
    if multihop { PORT_MULTIHOP } else { PORT_SINGLE_HOP }
}
