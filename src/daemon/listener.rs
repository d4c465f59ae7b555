//! Listening for BGP connections from configured peers (only when a virtual router has a
//! local port, as in Cilium). A connection from any other address is closed at once.

use super::peer::Cmd;
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
    s.listen(128)?;
    s.set_nonblocking(true)?;
    TcpListener::from_std(s.into())
}

pub fn spawn(port: u16, routing: Routing, driver: mpsc::Sender<Cmd>) -> io::Result<JoinHandle<()>> {
    let listener = bind(port)?;
    Ok(tokio::spawn(async move {
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
    }))
}
