//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4), IPv6 next hops (RFC 2545 §3) and
//! IPv6 next hops for IPv4 NLRI (RFC 8950 §3).
//!
//! ```text
//! MP_REACH_NLRI (type 14)                          MP_UNREACH_NLRI (type 15)
//! +---------------------------------------------+  +---------------------------------------+
//! | AFI (2 octets)                              |  | AFI (2 octets)                        |
//! | SAFI (1 octet)                              |  | SAFI (1 octet)                        |
//! | Length of Next Hop Network Address (1)      |  | Withdrawn Routes (variable)           |
//! | Network Address of Next Hop (variable)      |  +---------------------------------------+
//! | Reserved (1 octet, ignored on receipt)      |
//! | NLRI (variable)                             |
//! +---------------------------------------------+
//! ```
//! IPv6 next hop: 16 octets (global) or 32 (global then link-local).

use crate::wire::family::{Afi, Family, Safi};
use crate::wire::nlri::{self, Nlri, PrefixKind};
use bytes::{BufMut, Bytes, BytesMut};
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MpNextHop {
    V4(Ipv4Addr),
    V6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
    /// Next hop of a family kbgp does not decode.
    Raw(Bytes),
}

impl MpNextHop {
    fn len(&self) -> usize {
        match self {
            MpNextHop::V4(_) => 4,
            MpNextHop::V6 { link_local: None, .. } => 16,
            MpNextHop::V6 { link_local: Some(_), .. } => 32,
            MpNextHop::Raw(b) => b.len(),
        }
    }
}

/// NLRI of an MP attribute: decoded prefixes for IPv4/IPv6 unicast, raw octets otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MpNlri {
    Prefixes(Vec<Nlri>),
    Raw(Bytes),
}

impl MpNlri {
    pub fn prefixes(&self) -> &[Nlri] {
        match self {
            MpNlri::Prefixes(p) => p,
            MpNlri::Raw(_) => &[],
        }
    }
    pub fn is_empty(&self) -> bool {
        match self {
            MpNlri::Prefixes(p) => p.is_empty(),
            MpNlri::Raw(b) => b.is_empty(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    pub family: Family,
    pub next_hop: MpNextHop,
    pub nlri: MpNlri,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    pub family: Family,
    pub withdrawn: MpNlri,
}

fn prefix_kind(f: Family) -> Option<PrefixKind> {
    match (f.afi, f.safi) {
        (Afi::Ipv4, Safi::Unicast) => Some(PrefixKind::V4),
        (Afi::Ipv6, Safi::Unicast) => Some(PrefixKind::V6),
        _ => None,
    }
}

fn decode_nlri(buf: &[u8], f: Family, add_path: bool) -> Result<MpNlri, String> {
    match prefix_kind(f) {
        Some(kind) => {
            let mut v = Vec::new();
            nlri::decode_prefixes(buf, kind, add_path, &mut v)?;
            Ok(MpNlri::Prefixes(v))
        }
        None => Ok(MpNlri::Raw(Bytes::copy_from_slice(buf))),
    }
}

fn v6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

impl MpReach {
    /// Decodes the attribute value. `add_path(family)` says whether path identifiers are
    /// present. Errors are malformations: RFC 7606 §7.11 resets the session for them.
    pub fn decode(v: &[u8], add_path: impl Fn(Family) -> bool) -> Result<MpReach, String> {
        if v.len() < 5 {
            return Err(format!("{} octets, need at least 5", v.len()));
        }
        let family = Family::new(Afi::from_u16(u16::from_be_bytes([v[0], v[1]])), Safi::from_u8(v[2]));
        let nh_len = v[3] as usize;
        let nh = v.get(4..4 + nh_len).ok_or("next hop overruns the attribute")?;
        // The reserved octet follows the next hop.
        let rest = v.get(4 + nh_len + 1..).ok_or("reserved octet missing")?;
        let next_hop = match (prefix_kind(family), nh_len) {
            (None, _) => MpNextHop::Raw(Bytes::copy_from_slice(nh)),
            (Some(PrefixKind::V4), 4) => MpNextHop::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3])),
            (Some(_), 16) => MpNextHop::V6 { global: v6(nh), link_local: None },
            (Some(_), 32) => MpNextHop::V6 { global: v6(nh), link_local: Some(v6(&nh[16..])) },
            (Some(_), n) => return Err(format!("next hop length {n} for {family}")),
        };
        let nlri = decode_nlri(rest, family, add_path(family))?;
        Ok(MpReach { family, next_hop, nlri })
    }

    /// Appends the attribute value.
    pub fn encode(&self, add_path: bool, out: &mut BytesMut) {
        out.put_u16(self.family.afi.to_u16());
        out.put_u8(self.family.safi.to_u8());
        encode_next_hop(&self.next_hop, out);
        match &self.nlri {
            MpNlri::Prefixes(p) => p.iter().for_each(|n| nlri::encode_prefix(out, n, add_path)),
            MpNlri::Raw(b) => out.put_slice(b),
        }
    }
}

/// Next hop length, next hop, reserved octet.
pub(crate) fn encode_next_hop(nh: &MpNextHop, out: &mut BytesMut) {
    out.put_u8(nh.len() as u8);
    match nh {
        MpNextHop::V4(a) => out.put_slice(&a.octets()),
        MpNextHop::V6 { global, link_local } => {
            out.put_slice(&global.octets());
            if let Some(ll) = link_local {
                out.put_slice(&ll.octets());
            }
        }
        MpNextHop::Raw(b) => out.put_slice(b),
    }
    out.put_u8(0);
}

impl MpUnreach {
    pub fn decode(v: &[u8], add_path: impl Fn(Family) -> bool) -> Result<MpUnreach, String> {
        if v.len() < 3 {
            return Err(format!("{} octets, need at least 3", v.len()));
        }
        let family = Family::new(Afi::from_u16(u16::from_be_bytes([v[0], v[1]])), Safi::from_u8(v[2]));
        let withdrawn = decode_nlri(&v[3..], family, add_path(family))?;
        Ok(MpUnreach { family, withdrawn })
    }

    pub fn encode(&self, add_path: bool, out: &mut BytesMut) {
        out.put_u16(self.family.afi.to_u16());
        out.put_u8(self.family.safi.to_u8());
        match &self.withdrawn {
            MpNlri::Prefixes(p) => p.iter().for_each(|n| nlri::encode_prefix(out, n, add_path)),
            MpNlri::Raw(b) => out.put_slice(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_reach_fixture() {
        let r = MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: MpNextHop::V6 { global: "fd00::11".parse().unwrap(), link_local: None },
            nlri: MpNlri::Prefixes(vec![Nlri::new("2001:db8::100/128".parse().unwrap())]),
        };
        let mut b = BytesMut::new();
        r.encode(false, &mut b);
        let mut want = vec![0, 2, 1, 16, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0, 128];
        want.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(&b[..], &want[..]);
        assert_eq!(MpReach::decode(&b, |_| false).unwrap(), r);
    }

    #[test]
    fn global_and_link_local() {
        let r = MpReach {
            family: Family::IPV6_UNICAST,
            next_hop: MpNextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            },
            nlri: MpNlri::Prefixes(vec![]),
        };
        let mut b = BytesMut::new();
        r.encode(false, &mut b);
        assert_eq!(b[3], 32);
        assert_eq!(MpReach::decode(&b, |_| false).unwrap(), r);
    }

    #[test]
    fn ipv4_nlri_with_ipv6_next_hop_rfc8950() {
        let r = MpReach {
            family: Family::IPV4_UNICAST,
            next_hop: MpNextHop::V6 { global: "2001:db8::1".parse().unwrap(), link_local: None },
            nlri: MpNlri::Prefixes(vec![Nlri::new("20.0.0.100/32".parse().unwrap())]),
        };
        let mut b = BytesMut::new();
        r.encode(false, &mut b);
        assert_eq!(MpReach::decode(&b, |_| false).unwrap(), r);
    }

    #[test]
    fn unknown_family_kept_raw() {
        let v = [0, 25, 70, 4, 1, 2, 3, 4, 0, 9, 9, 9];
        let r = MpReach::decode(&v, |_| false).unwrap();
        assert_eq!(r.nlri, MpNlri::Raw(Bytes::from_static(&[9, 9, 9])));
        let mut b = BytesMut::new();
        r.encode(false, &mut b);
        assert_eq!(&b[..], &v[..]);
    }

    #[test]
    fn malformed() {
        assert!(MpReach::decode(&[0, 2, 1, 16, 0], |_| false).is_err(), "next hop overrun");
        assert!(MpReach::decode(&[0, 2, 1, 4, 1, 2, 3, 4, 0], |_| false).is_err(), "v4 next hop for v6");
        assert!(MpReach::decode(&[0, 1, 1, 4, 1, 2, 3, 4], |_| false).is_err(), "reserved missing");
        assert!(MpReach::decode(&[0, 1, 1, 4, 1, 2, 3, 4, 0, 33, 1], |_| false).is_err(), "bad prefix");
        assert!(MpUnreach::decode(&[0, 2], |_| false).is_err());
        assert!(MpUnreach::decode(&[0, 2, 1, 129], |_| false).is_err());
        let u = MpUnreach::decode(&[0, 2, 1], |_| false).unwrap();
        assert!(u.withdrawn.is_empty(), "End-of-RIB shape");
    }
}
