//! Address arithmetic for pool blocks: sizes, membership and the lowest free address.

use crate::config::pool::Block;
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as a number, with its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Num {
    pub v6: bool,
    pub n: u128,
}

pub(crate) fn num(a: IpAddr) -> Num {
    match a {
        IpAddr::V4(x) => Num { v6: false, n: u32::from(x) as u128 },
        IpAddr::V6(x) => Num { v6: true, n: u128::from(x) },
    }
}

pub(crate) fn addr(n: Num) -> IpAddr {
    if n.v6 { IpAddr::V6(Ipv6Addr::from(n.n)) } else { IpAddr::V4(Ipv4Addr::from(n.n as u32)) }
}

/// Inclusive range of a block, and the addresses it keeps back.
pub(crate) fn bounds(b: &Block) -> (Num, Num) {
    match b {
        Block::Cidr(n) => (num(n.network()), num(n.broadcast())),
        Block::Range(a, z) => (num(*a), num(*z)),
    }
}

/// Addresses a block never hands out: with `allowFirstLastIPs: No`, the first and last of a
/// `cidr` block larger than two addresses (Cilium's rule; /31, /32, /127, /128 and ranges keep
/// everything).
pub(crate) fn reserved(b: &Block, allow_first_last: bool) -> Vec<Num> {
    match b {
        Block::Cidr(n) if !allow_first_last && !is_tiny(n) => vec![num(n.network()), num(n.broadcast())],
        _ => Vec::new(),
    }
}

fn is_tiny(n: &IpNet) -> bool {
    n.max_prefix_len() - n.prefix_len() <= 1
}

/// Number of addresses a block can hand out (saturating at u128::MAX for a whole IPv6 space).
pub(crate) fn capacity(b: &Block, allow_first_last: bool, avoid_buggy: bool) -> u128 {
    let (a, z) = bounds(b);
    let res = reserved(b, allow_first_last);
    let mut n = (z.n - a.n).saturating_add(1) - res.len() as u128;
    if avoid_buggy && !a.v6 {
        // IPv4 addresses in [0, x] whose last octet is `r`.
        let upto = |x: u128, r: u128| if x < r { 0 } else { (x - r) / 256 + 1 };
        let count = |r: u128| upto(z.n, r) - if a.n == 0 { 0 } else { upto(a.n - 1, r) };
        n -= count(0) + count(255) - res.iter().filter(|r| buggy(**r)).count() as u128;
    }
    n
}

/// MetalLB's `avoidBuggyIPs`: an IPv4 address ending in .0 or .255, which some old clients
/// mistake for a network or broadcast address.
pub(crate) fn buggy(n: Num) -> bool {
    !n.v6 && matches!(n.n & 0xff, 0 | 255)
}

pub(crate) fn overlaps(x: &Block, y: &Block) -> bool {
    let (a1, z1) = bounds(x);
    let (a2, z2) = bounds(y);
    a1.v6 == a2.v6 && a1.n <= z2.n && a2.n <= z1.n
}

/// The lowest address of the block that is neither used nor reserved.
pub(crate) fn lowest_free(
    b: &Block,
    allow_first_last: bool,
    avoid_buggy: bool,
    used: &BTreeSet<Num>,
) -> Option<IpAddr> {
    let (a, z) = bounds(b);
    let res = reserved(b, allow_first_last);
    let mut n = a.n;
    // `used` holds about one entry per Service, so this walks past at most that many.
    loop {
        if n > z.n {
            return None;
        }
        let cand = Num { v6: a.v6, n };
        if res.contains(&cand) || used.contains(&cand) || (avoid_buggy && buggy(cand)) {
            n = n.checked_add(1)?;
            continue;
        }
        return Some(addr(cand));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Block {
        Block::Cidr(s.parse().unwrap())
    }

    #[test]
    fn capacity_and_reserved() {
        assert_eq!(capacity(&cidr("20.0.10.0/24"), true, false), 256);
        assert_eq!(capacity(&cidr("20.0.10.0/24"), false, false), 254);
        assert_eq!(capacity(&cidr("20.0.10.0/31"), false, false), 2);
        assert_eq!(capacity(&cidr("20.0.10.7/32"), false, false), 1);
        assert_eq!(
            capacity(&Block::Range("20.0.0.100".parse().unwrap(), "20.0.0.200".parse().unwrap()), false, false),
            101
        );
        assert_eq!(capacity(&cidr("2001:db8::/64"), true, false), 1 << 64);
    }

    #[test]
    fn lowest_free_skips_used_and_reserved() {
        let b = cidr("20.0.10.0/30");
        let mut used = BTreeSet::new();
        assert_eq!(lowest_free(&b, true, false, &used), Some("20.0.10.0".parse().unwrap()));
        assert_eq!(lowest_free(&b, false, false, &used), Some("20.0.10.1".parse().unwrap()));
        used.insert(num("20.0.10.1".parse().unwrap()));
        assert_eq!(lowest_free(&b, false, false, &used), Some("20.0.10.2".parse().unwrap()));
        used.insert(num("20.0.10.2".parse().unwrap()));
        assert_eq!(lowest_free(&b, false, false, &used), None, ".3 is the reserved last address");
    }

    #[test]
    fn avoid_buggy_ips_skips_dot_0_and_dot_255() {
        // Two per /24, whatever the block's shape; the reserved first/last are not counted twice.
        assert_eq!(capacity(&cidr("20.0.10.0/24"), true, true), 254);
        assert_eq!(capacity(&cidr("20.0.10.0/24"), false, true), 254);
        assert_eq!(capacity(&cidr("20.0.0.0/22"), true, true), 1024 - 8);
        assert_eq!(capacity(&cidr("20.0.10.8/29"), true, true), 8);
        assert_eq!(capacity(&cidr("0.0.0.0/24"), true, true), 254);
        let r = Block::Range("20.0.10.250".parse().unwrap(), "20.0.11.5".parse().unwrap());
        assert_eq!(capacity(&r, true, true), 12 - 2);
        assert_eq!(capacity(&cidr("2001:db8::/120"), true, true), 256, "IPv6 has no such addresses");
        let used = BTreeSet::new();
        assert_eq!(lowest_free(&cidr("20.0.10.0/24"), true, true, &used), Some("20.0.10.1".parse().unwrap()));
        let top = cidr("20.0.10.254/31");
        let mut used = BTreeSet::new();
        used.insert(num("20.0.10.254".parse().unwrap()));
        assert_eq!(lowest_free(&top, true, true, &used), None, ".255 is never handed out");
        assert_eq!(lowest_free(&top, true, false, &used), Some("20.0.10.255".parse().unwrap()));
    }

    #[test]
    fn overlap_needs_the_same_family() {
        assert!(overlaps(&cidr("20.0.0.0/16"), &cidr("20.0.10.0/24")));
        assert!(!overlaps(&cidr("20.0.0.0/24"), &cidr("20.0.1.0/24")));
        assert!(!overlaps(&cidr("0.0.0.0/0"), &cidr("::/0")));
    }
}
