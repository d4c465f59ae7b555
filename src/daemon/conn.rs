//! One TCP connection: how it is opened, and the two tasks that frame what it reads and write
//! what it is given. All framing happens here and only here.

use crate::wire::DecodeError;
use crate::wire::header::{self, MAX_EXTENDED_LEN};
use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What a reader task reports.
#[derive(Debug)]
pub enum ReadEvent {
    /// One complete message, header included.
    Frame(Bytes),
    /// The header was invalid: the session must send this NOTIFICATION.
    Invalid(DecodeError),
    /// The peer closed the connection, or reading failed.
    Closed(Option<io::Error>),
}

/// Sets the IP TTL / hop limit (eBGP: 1 unless multihop).
pub(super) fn set_ttl(s: &Socket, addr: &SocketAddr, ttl: u8) -> io::Result<()> {
    match addr {
        SocketAddr::V4(_) => s.set_ttl_v4(ttl as u32),
        SocketAddr::V6(_) => s.set_unicast_hops_v6(ttl as u32),
    }
}

/// An integer socket option.
pub(super) fn set_int(
    fd: std::os::fd::BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fd` is an open socket borrowed for the call; the value is a c_int on the stack
    // and its size is passed with it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The (level, name) of the TTL or, with `min`, of the GTSM minimum, for traffic with
/// `peer`. An IPv4 peer on an IPv6 socket (`::ffff:a.b.c.d` on a dual-stack listener) is
/// IPv4 traffic, ruled by the IPv4 options.
fn ttl_option(peer: &SocketAddr, min: bool) -> (libc::c_int, libc::c_int) {
    match (peer.ip().to_canonical().is_ipv4(), min) {
        (true, false) => (libc::IPPROTO_IP, libc::IP_TTL),
        (true, true) => (libc::IPPROTO_IP, libc::IP_MINTTL),
        (false, false) => (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
        (false, true) => (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT),
    }
}

/// GTSM (RFC 5082 §3): the kernel drops the peer's segments that arrive with a TTL (IPv6:
/// hop limit) below `min`.
fn set_min_ttl(fd: std::os::fd::BorrowedFd<'_>, peer: &SocketAddr, min: u8) -> io::Result<()> {
    let (level, name) = ttl_option(peer, true);
    set_int(fd, level, name, min.into())
}

/// Linux's `struct tcp_md5sig` (include/uapi/linux/tcp.h), for TCP_MD5SIG.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; libc::TCP_MD5SIG_MAXKEYLEN],
}

/// TCP MD5 (RFC 2385): signs every segment to and from `peer` with `key` on this socket, or
/// (`None`) removes the key. On an IPv6 socket an IPv4 peer is given as `::ffff:a.b.c.d`,
/// which the kernel files as the IPv4 address. The key is at most 80 octets (the plan checks).
pub(super) fn set_md5(
    fd: std::os::fd::BorrowedFd<'_>,
    v6_socket: bool,
    peer: IpAddr,
    key: Option<&[u8]>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let key = key.unwrap_or_default();
    if key.len() > libc::TCP_MD5SIG_MAXKEYLEN {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "TCP MD5 password longer than 80 octets"));
    }
    // SAFETY: all-zero is a valid value of this plain C struct (no pointers, no enums).
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let target = match peer.to_canonical() {
        IpAddr::V4(a) if v6_socket => IpAddr::V6(a.to_ipv6_mapped()),
        other => other,
    };
    let sa: socket2::SockAddr = SocketAddr::new(target, 0).into();
    // SAFETY: `sa` holds a sockaddr_in or sockaddr_in6 of `sa.len()` octets, which fits the
    // 128-octet sockaddr_storage.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&mut sig.addr as *mut libc::sockaddr_storage).cast::<u8>(),
            sa.len() as usize,
        );
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `fd` is an open socket borrowed for the call; `sig` lives on the stack for it
    // and its size is passed with it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    // The key bytes on the stack are not worth keeping around.
    sig.key.fill(0);
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// What a session's sockets need: its TTL, the GTSM minimum, its TCP MD5 password.
#[derive(Clone, Debug, Default)]
pub struct SocketOpts {
    pub ttl: Option<u8>,
    pub min_ttl: Option<u8>,
    pub md5: Option<crate::config::secret::SecretValue>,
    /// Bind outgoing connections to this address (MetalLB `sourceAddress`, Cilium
    /// `localAddress`).
    pub local_address: Option<IpAddr>,
}

impl SocketOpts {
    pub fn of(s: &crate::session::PeerSettings) -> SocketOpts {
        let md5 = match &s.auth {
            crate::session::config::Auth::Md5(k) => Some(k.clone()),
            _ => None,
        };
        SocketOpts { ttl: s.ttl, min_ttl: s.min_ttl, md5, local_address: s.local_address }
    }
}

/// Opens a connection to `peer` with the session's socket options.
pub async fn connect(peer: SocketAddr, o: &SocketOpts) -> io::Result<TcpStream> {
    use std::os::fd::AsFd;
    let domain = if peer.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if let Some(t) = o.ttl {
        set_ttl(&s, &peer, t)?;
    }
    if let Some(m) = o.min_ttl {
        set_min_ttl(s.as_fd(), &peer, m)?;
    }
    if let Some(k) = &o.md5 {
        set_md5(s.as_fd(), peer.is_ipv6(), peer.ip(), Some(k.bytes()))?;
    }
    if let Some(a) = o.local_address {
        s.bind(&SocketAddr::new(a, 0).into()).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot bind to the local address {a} (is it on this node?): {e}"))
        })?;
    }
    s.set_tcp_nodelay(true)?;
    s.set_nonblocking(true)?;
    let std: std::net::TcpStream = s.into();
    let stream = tokio::net::TcpSocket::from_std_stream(std).connect(peer).await?;
    Ok(stream)
}

/// Applies session socket options to an accepted connection. With GTSM the handshake itself
/// was not checked (the listener serves every peer); from here on, segments below `min_ttl`
/// are dropped, so a spoofed session cannot get past its OPEN.
pub(super) fn prepare_accepted(stream: &TcpStream, ttl: Option<u8>, min_ttl: Option<u8>) -> io::Result<()> {
    use std::os::fd::AsFd;
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    // The listener sends with 255 (see listener.rs); an accepted session gets its own TTL,
    // or the system default (-1) when it has none.
    let (level, name) = ttl_option(&peer, false);
    set_int(stream.as_fd(), level, name, ttl.map_or(-1, libc::c_int::from))?;
    if let Some(m) = min_ttl {
        set_min_ttl(stream.as_fd(), &peer, m)?;
    }
    Ok(())
}

/// Reads from the socket and sends one event per complete message, as `wrap` makes it. A
/// full channel stops the reading, so a slow session pushes back on the peer through TCP.
pub fn spawn_reader<T: Send + 'static>(
    mut rd: OwnedReadHalf,
    tx: mpsc::Sender<T>,
    wrap: impl Fn(ReadEvent) -> T + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            // Hand out every complete message already in the buffer.
            loop {
                match header::peek_header(&buf, MAX_EXTENDED_LEN) {
                    Ok(Some(h)) if buf.len() >= h.len => {
                        let frame = buf.split_to(h.len).freeze();
                        if tx.send(wrap(ReadEvent::Frame(frame))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        let _ = tx.send(wrap(ReadEvent::Invalid(e))).await;
                        return;
                    }
                }
            }
            buf.reserve(64 * 1024);
            match rd.read_buf(&mut buf).await {
                Ok(0) => {
                    let _ = tx.send(wrap(ReadEvent::Closed(None))).await;
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = tx.send(wrap(ReadEvent::Closed(Some(e)))).await;
                    return;
                }
            }
        }
    })
}

/// One write: the octets, and whether the owner wants to hear when they are written (it
/// counts the UPDATE chunks in flight; control messages are not counted, so they are never
/// held back).
#[derive(Debug)]
pub struct Write {
    pub bytes: Bytes,
    pub counted: bool,
}

/// Writes what it receives, in order, calling `written` after each counted write. When the
/// sender is dropped it writes what is queued, shuts the connection down and ends. A stuck
/// peer cannot hold it: the owner aborts it.
pub fn spawn_writer(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Write>,
    written: impl Fn() + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(w) = rx.recv().await {
            if wr.write_all(&w.bytes).await.is_err() {
                return;
            }
            if w.counted {
                written();
            }
        }
        let _ = wr.shutdown().await;
    })
}

/// A connection's two tasks, and the UPDATE chunks its writer has not written yet.
pub struct Wire {
    pub tx: mpsc::UnboundedSender<Write>,
    pub in_flight: usize,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Wire {
    /// Starts the reader and writer of `stream`: frames go out through `tx` as `wrap` makes
    /// them, and `written` is called after each counted write.
    pub fn start<T: Send + 'static>(
        stream: TcpStream,
        tx: mpsc::Sender<T>,
        wrap: impl Fn(ReadEvent) -> T + Send + 'static,
        written: impl Fn() + Send + 'static,
    ) -> Wire {
        let (rd, wr) = stream.into_split();
        let (wtx, wrx) = mpsc::unbounded_channel();
        Wire { tx: wtx, in_flight: 0, reader: spawn_reader(rd, tx, wrap), writer: spawn_writer(wr, wrx, written) }
    }

    /// Closes the connection: the writer writes what is queued (a NOTIFICATION) and shuts
    /// the socket down, then the reader reads until the peer's FIN; each gets [`CLOSE_GRACE`]
    /// before it is cut. Returns the task doing that, to wait for at exit.
    pub fn close(self) -> JoinHandle<()> {
        let Wire { tx, reader, writer, .. } = self;
        drop(tx);
        tokio::spawn(async move {
            let w = writer.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, writer).await.is_err() {
                w.abort();
            }
            // Our FIN is out. Keep reading (the driver drops what arrives) until the peer
            // closes too: a socket closed with unread data sends RST instead of FIN, and a
            // peer's kernel that gets RST throws away what it had not read yet, our
            // NOTIFICATION included (ExaBGP, still sending its table, lost it that way).
            let r = reader.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, reader).await.is_err() {
                r.abort();
            }
        })
    }
}

/// Connects in the background and hands the result to `done`.
pub fn spawn_connect(
    peer: SocketAddr,
    opts: SocketOpts,
    done: impl FnOnce(io::Result<TcpStream>) + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move { done(connect(peer, &opts).await) })
}

/// How long a closing connection may take to flush its last messages (a NOTIFICATION).
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
