//! A VirtualIP's address on a local interface (`localInterface`), set and removed through
//! rtnetlink (RFC 3549; `RTM_NEWADDR` / `RTM_DELADDR`, as `ip addr add|del ADDR/32 dev lo`).
//!
//! ```text
//!  nlmsghdr (16)          ifaddrmsg (8)                  rtattr IFA_LOCAL, IFA_ADDRESS
//! +------+----+-----+---+ +------+-----+-----+-----+----+ +-----+------+-----------+
//! | len  |type|flags|seq| |family|plen |flags|scope|index| | len | type | address   | ...
//! +------+----+-----+---+ +------+-----+-----+-----+----+ +-----+------+-----------+
//! ```
//!
//! The kernel answers each request with an `NLMSG_ERROR` whose code is 0 on success.

use std::io;
use std::net::IpAddr;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// No duplicate address detection for an IPv6 host address.
const IFA_F_NODAD: u8 = 0x02;

fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// The request: `add` or delete `ip` as a host address on interface `index`.
fn request(add: bool, ip: IpAddr, index: u32, seq: u32) -> Vec<u8> {
    let (family, plen, octets): (u8, u8, Vec<u8>) = match ip {
        IpAddr::V4(a) => (libc::AF_INET as u8, 32, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, 128, a.octets().to_vec()),
    };
    let mut body = vec![family, plen, if ip.is_ipv6() { IFA_F_NODAD } else { 0 }, 0];
    body.extend_from_slice(&index.to_ne_bytes());
    attr(&mut body, IFA_LOCAL, &octets);
    attr(&mut body, IFA_ADDRESS, &octets);
    let kind = if add { libc::RTM_NEWADDR } else { libc::RTM_DELADDR };
    let mut flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    if add {
        flags |= (libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16;
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend(body);
    msg
}

/// Sends one request and reads its acknowledgement: the kernel's error code (0: done).
fn call(msg: &[u8]) -> io::Result<i32> {
    // SAFETY: plain socket calls on a descriptor this function owns and closes; the buffers
    // are valid for the lengths passed.
    unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let close = |r: io::Result<i32>| {
            libc::close(fd);
            r
        };
        let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as u16;
        let sent = libc::sendto(
            fd,
            msg.as_ptr() as *const libc::c_void,
            msg.len(),
            0,
            &kernel as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        if sent < 0 {
            return close(Err(io::Error::last_os_error()));
        }
        let mut buf = [0u8; 512];
        let n = libc::recv(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
        if n < 0 {
            return close(Err(io::Error::last_os_error()));
        }
        close(parse_ack(&buf[..n as usize]))
    }
}

/// The error code of an `NLMSG_ERROR` acknowledgement (negative errno, or 0).
fn parse_ack(b: &[u8]) -> io::Result<i32> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "unexpected netlink answer");
    let kind = u16::from_ne_bytes(b.get(4..6).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
    if kind != libc::NLMSG_ERROR as u16 {
        return Err(bad());
    }
    Ok(i32::from_ne_bytes(b.get(16..20).ok_or_else(bad)?.try_into().map_err(|_| bad())?))
}

fn index_of(iface: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(iface).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 { Err(io::Error::new(io::ErrorKind::NotFound, format!("no interface {iface}"))) } else { Ok(i) }
}

/// Puts `ip` (/32 or /128) on `iface`; already there is fine.
pub fn add(iface: &str, ip: IpAddr) -> io::Result<()> {
    match call(&request(true, ip, index_of(iface)?, 1))? {
        0 => Ok(()),
        e if -e == libc::EEXIST => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

/// Takes `ip` off `iface`; not there is fine.
pub fn remove(iface: &str, ip: IpAddr) -> io::Result<()> {
    match call(&request(false, ip, index_of(iface)?, 2))? {
        0 => Ok(()),
        e if -e == libc::EADDRNOTAVAIL || -e == libc::ENOENT => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_laid_out_as_rtnetlink_expects() {
        let m = request(true, "10.0.0.100".parse().unwrap(), 1, 7);
        assert_eq!(m.len(), 16 + 8 + 8 + 8);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), libc::RTM_NEWADDR);
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 32, 0, 0]);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 1);
        assert_eq!(&m[28..32], &[10, 0, 0, 100]);
        let m = request(false, "fd00::100".parse().unwrap(), 1, 8);
        assert_eq!(m.len(), 16 + 8 + 20 + 20);
        assert_eq!(&m[16..18], &[libc::AF_INET6 as u8, 128]);
    }

    #[test]
    fn an_error_answer_gives_its_code() {
        let mut b = vec![0u8; 36];
        b[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        b[16..20].copy_from_slice(&(-libc::EEXIST).to_ne_bytes());
        assert_eq!(parse_ack(&b).unwrap(), -libc::EEXIST);
        assert!(parse_ack(&b[..10]).is_err());
    }
}
