//! Finding the next hop of the other address family: the routable address of the other
//! family on the interface that carries the session. An IPv4 session announcing IPv6 routes
//! uses the interface's global IPv6 address as next hop (and vice versa), as FRR's
//! "next-hop-self" does.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every (interface name, address) of this network namespace.
pub fn interface_addresses() -> Vec<(String, IpAddr)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs; every node
    // and its fields are valid until then, and we only read them.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            let name = CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            match (*ifa.ifa_addr).sa_family as i32 {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    out.push((name, IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))));
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    out.push((name, IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))));
                }
                _ => {}
            }
        }
        libc::freeifaddrs(head);
    }
    out
}

/// Usable as a next hop: not loopback, unspecified, link-local or multicast.
pub fn routable(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => !(v.is_loopback() || v.is_unspecified() || v.is_link_local() || v.is_multicast()),
        IpAddr::V6(v) => {
            !(v.is_loopback() || v.is_unspecified() || v.is_multicast() || (v.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The routable address of the other family on the interface that has `local`.
pub fn companion(local: IpAddr, addrs: &[(String, IpAddr)]) -> Option<IpAddr> {
    let ifname = &addrs.iter().find(|(_, a)| *a == local)?.0;
    addrs.iter().filter(|(n, a)| n == ifname && a.is_ipv4() != local.is_ipv4() && routable(a)).map(|(_, a)| *a).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companion_address_on_the_same_interface() {
        let addrs: Vec<(String, IpAddr)> = [
            ("lo", "127.0.0.1"),
            ("lo", "::1"),
            ("eth0", "10.0.5.11"),
            ("eth0", "fe80::1"),
            ("eth0", "fd00:5::11"),
            ("eth1", "2001:db8::9"),
        ]
        .iter()
        .map(|(n, a)| (n.to_string(), a.parse().unwrap()))
        .collect();
        assert_eq!(companion("10.0.5.11".parse().unwrap(), &addrs), Some("fd00:5::11".parse().unwrap()));
        assert_eq!(companion("fd00:5::11".parse().unwrap(), &addrs), Some("10.0.5.11".parse().unwrap()));
        assert_eq!(companion("2001:db8::9".parse().unwrap(), &addrs), None);
        assert_eq!(companion("192.0.2.1".parse().unwrap(), &addrs), None);
    }

    #[test]
    fn this_host_has_a_loopback() {
        assert!(interface_addresses().iter().any(|(_, a)| a.is_loopback()));
    }
}
