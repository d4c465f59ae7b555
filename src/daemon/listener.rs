//! Listening for BGP connections from configured peers (only when a virtual router has a
//! local port, as in Cilium). A connection from any other address is closed at once. The
//! listener answers with TTL 255 so that GTSM peers (RFC 5082) accept its SYN-ACK.

use super::peer::Cmd;
use crate::config::secret::SecretValue;
use crate::session::PeerKey;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Which peer takes a connection arriving on (local port, remote address).
pub type Routing = Arc<Mutex<HashMap<(u16, IpAddr), PeerKey>>>;

fn bind(port: u16) -> io::Result<TcpListener> {
    // One dual-stack socket when IPv6 exists, else IPv4 only.
    let v6 = || -> io::Result<Socket> {
        let s = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
        s.set_only_v6(false)?;
        s.set_reuse_address(true)?;
        s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
        Ok(s)
    };
    let s = match v6() {
        Ok(s) => s,
        Err(_) => {
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port).into())?;
            s
        }
    };
    // SYN-ACKs leave with TTL 255: a GTSM peer (RFC 5082) drops anything less, and the
    // listener cannot know whose SYN it answers. Each accepted session then gets its own TTL.
    match s.domain()? {
        d if d == Domain::IPV6 => {
            s.set_unicast_hops_v6(255)?;
            // IPv4 peers on the dual-stack socket.
            s.set_ttl_v4(255)?;
        }
        _ => s.set_ttl_v4(255)?,
    }
    s.listen(128)?;
    s.set_nonblocking(true)?;
    TcpListener::from_std(s.into())
}

/// A listening socket and the task that accepts on it, with the TCP MD5 keys (RFC 2385) set
/// on it per peer: the kernel answers a keyed peer's SYN only when it is signed with its key,
/// and the accepted connection inherits the key.
pub struct Listener {
    pub task: JoinHandle<()>,
    socket: Arc<TcpListener>,
    keyed: HashMap<IpAddr, SecretValue>,
}

impl Listener {
    /// Makes the socket's keys `want` (peer address -> password): sets new and changed ones,
    /// removes the others. A failure is logged with the peer and leaves that peer unkeyed (its
    /// SYNs then get no answer, which its session reports).
    pub fn set_keys(&mut self, port: u16, want: &HashMap<IpAddr, SecretValue>) {
        use std::os::fd::AsFd;
        let v6 = self.socket.local_addr().map(|a| a.is_ipv6()).unwrap_or(false);
        let gone: Vec<IpAddr> = self.keyed.keys().filter(|a| !want.contains_key(a)).copied().collect();
        for a in gone {
            if let Err(e) = super::conn::set_md5(self.socket.as_fd(), v6, a, None) {
                warn!(port, peer = %a, "cannot remove the TCP MD5 key from the listening socket: {e}");
            }
            self.keyed.remove(&a);
        }
        for (a, k) in want {
            if self.keyed.get(a) == Some(k) {
                continue;
            }
            match super::conn::set_md5(self.socket.as_fd(), v6, *a, Some(k.bytes())) {
                Ok(()) => {
                    self.keyed.insert(*a, k.clone());
                }
                Err(e) => warn!(port, peer = %a, "cannot set the TCP MD5 key on the listening socket: {e}"),
            }
        }
    }
}

pub fn spawn(port: u16, routing: Routing, driver: mpsc::Sender<Cmd>) -> io::Result<Listener> {
    let socket = Arc::new(bind(port)?);
    let listener = socket.clone();
    let task = tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!(port, "accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ip = remote.ip().to_canonical();
            let target = routing.lock().ok().and_then(|m| m.get(&(port, ip)).copied());
            match target {
                Some(key) => {
                    if driver.send(Cmd::Inbound(key, stream)).await.is_err() {
                        return;
                    }
                }
                None => debug!(port, peer = %ip, "connection from an address that is not a configured peer: closed"),
            }
        }
    });
    Ok(Listener { task, socket, keyed: HashMap::new() })
}
