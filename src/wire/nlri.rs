//! Prefix encoding in NLRI and Withdrawn Routes fields (RFC 4271 §4.3, RFC 4760 §5) and the
//! ADD-PATH path identifier (RFC 7911 §3).
//!
//! ```text
//! +--------------------------------+
//! | Path Identifier (4 octets)     |   only when ADD-PATH is negotiated for this
//! +--------------------------------+   family and direction
//! | Length (1 octet, in bits)      |
//! +--------------------------------+
//! | Prefix (ceil(Length/8) octets) |
//! +--------------------------------+
//! ```

use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// One prefix as carried in an UPDATE. `path_id` is 0 when ADD-PATH is not in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri {
    pub path_id: u32,
    pub prefix: IpNet,
}

impl Nlri {
    pub fn new(prefix: IpNet) -> Nlri {
        Nlri { path_id: 0, prefix }
    }
}

impl From<IpNet> for Nlri {
    fn from(p: IpNet) -> Nlri {
        Nlri::new(p)
    }
}

/// Which address family a prefix list holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixKind {
    V4,
    V6,
}

/// Decodes a whole prefix list. Host bits beyond the prefix length are cleared.
/// The error names what was wrong; the caller picks the NOTIFICATION (RFC 7606 §5.3: the
/// NLRI cannot be trusted, so the session is reset).
pub fn decode_prefixes(mut buf: &[u8], kind: PrefixKind, add_path: bool, out: &mut Vec<Nlri>) -> Result<(), String> {
    let max_bits = match kind {
        PrefixKind::V4 => 32,
        PrefixKind::V6 => 128,
    };
    while !buf.is_empty() {
        let mut path_id = 0;
        if add_path {
            if buf.len() < 4 {
                return Err("path identifier truncated".into());
            }
            path_id = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            buf = &buf[4..];
        }
        let Some((&bits, rest)) = buf.split_first() else {
            return Err("prefix length missing".into());
        };
        if bits > max_bits {
            return Err(format!("prefix length {bits} exceeds {max_bits}"));
        }
        let n = (bits as usize).div_ceil(8);
        if rest.len() < n {
            return Err(format!("prefix of /{bits} needs {n} octets, {} left", rest.len()));
        }
        let prefix = match kind {
            PrefixKind::V4 => {
                let mut a = [0u8; 4];
                a[..n].copy_from_slice(&rest[..n]);
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(a), bits).trunc())
            }
            PrefixKind::V6 => {
                let mut a = [0u8; 16];
                a[..n].copy_from_slice(&rest[..n]);
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(a), bits).trunc())
            }
        };
        out.push(Nlri { path_id, prefix });
        buf = &rest[n..];
    }
    Ok(())
}

/// Octets one prefix takes on the wire.
pub fn encoded_len(prefix: &IpNet, add_path: bool) -> usize {
    1 + (prefix.prefix_len() as usize).div_ceil(8) + if add_path { 4 } else { 0 }
}

/// Appends one prefix; the path identifier is written only when `add_path` is set.
pub fn encode_prefix(out: &mut BytesMut, n: &Nlri, add_path: bool) {
    if add_path {
        out.put_u32(n.path_id);
    }
    let bits = n.prefix.prefix_len();
    let len = (bits as usize).div_ceil(8);
    out.put_u8(bits);
    match n.prefix {
        IpNet::V4(p) => out.put_slice(&p.addr().octets()[..len]),
        IpNet::V6(p) => out.put_slice(&p.addr().octets()[..len]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn fixtures_both_ways() {
        let cases: &[(&str, &[u8])] = &[
            ("20.0.0.100/32", &[32, 20, 0, 0, 100]),
            ("10.1.0.0/24", &[24, 10, 1, 0]),
            ("0.0.0.0/0", &[0]),
            ("10.128.0.0/9", &[9, 10, 128]),
            ("2001:db8::1/128", &[128, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            ("2001:db8::/32", &[32, 0x20, 1, 0x0d, 0xb8]),
        ];
        for (s, bytes) in cases {
            let mut out = BytesMut::new();
            encode_prefix(&mut out, &Nlri::new(p(s)), false);
            assert_eq!(&out[..], *bytes, "{s}");
            assert_eq!(encoded_len(&p(s), false), bytes.len());
            let kind = if s.contains(':') { PrefixKind::V6 } else { PrefixKind::V4 };
            let mut got = Vec::new();
            decode_prefixes(bytes, kind, false, &mut got).unwrap();
            assert_eq!(got, vec![Nlri::new(p(s))]);
        }
    }

    #[test]
    fn add_path_identifier() {
        let n = Nlri { path_id: 7, prefix: p("10.0.0.0/8") };
        let mut out = BytesMut::new();
        encode_prefix(&mut out, &n, true);
        assert_eq!(&out[..], &[0, 0, 0, 7, 8, 10]);
        let mut got = Vec::new();
        decode_prefixes(&out, PrefixKind::V4, true, &mut got).unwrap();
        assert_eq!(got, vec![n]);
    }

    #[test]
    fn host_bits_are_cleared() {
        let mut got = Vec::new();
        decode_prefixes(&[24, 10, 1, 2], PrefixKind::V4, false, &mut got).unwrap();
        assert_eq!(got[0].prefix, p("10.1.2.0/24"));
        got.clear();
        decode_prefixes(&[9, 10, 0xff], PrefixKind::V4, false, &mut got).unwrap();
        assert_eq!(got[0].prefix, p("10.128.0.0/9"));
    }

    #[test]
    fn malformed_lists_are_errors() {
        for bad in [&[33u8, 1, 2, 3, 4, 5][..], &[24, 10, 1], &[8]] {
            assert!(decode_prefixes(bad, PrefixKind::V4, false, &mut Vec::new()).is_err(), "{bad:?}");
        }
        assert!(decode_prefixes(&[129], PrefixKind::V6, false, &mut Vec::new()).is_err());
        assert!(decode_prefixes(&[0, 0, 0], PrefixKind::V4, true, &mut Vec::new()).is_err());
    }
}
