//! Capabilities Advertisement (RFC 5492) and the capabilities kbgp understands.
//!
//! Each capability is a TLV inside an OPEN optional parameter of type 2:
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! +------------------------------+
//! ```
//! Unknown codes are kept raw ([`Capability::Unknown`]) and never fail the OPEN.

use super::error::{DecodeError, open_sub};
use super::family::{Afi, Family, Safi};
use super::parse::{OrBgp, bytes, u8_, u16_};
use bytes::{BufMut, Bytes, BytesMut};

/// Capability codes (IANA "Capability Codes").
pub mod code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const LONG_LIVED_GRACEFUL_RESTART: u8 = 71;
}

/// ADD-PATH Send/Receive field (RFC 7911 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    Receive,
    Send,
    Both,
}

impl AddPathMode {
    fn from_u8(v: u8) -> Option<AddPathMode> {
        match v {
            1 => Some(AddPathMode::Receive),
            2 => Some(AddPathMode::Send),
            3 => Some(AddPathMode::Both),
            _ => None,
        }
    }
    fn to_u8(self) -> u8 {
        match self {
            AddPathMode::Receive => 1,
            AddPathMode::Send => 2,
            AddPathMode::Both => 3,
        }
    }
    pub fn receives(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::Both)
    }
    pub fn sends(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::Both)
    }
}

/// One tuple of the Extended Next Hop Encoding capability (RFC 8950 §4).
/// Note the NLRI SAFI is 2 octets here, unlike everywhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtNextHop {
    pub nlri: Family,
    pub next_hop_afi: Afi,
}

/// Graceful Restart capability (RFC 4724 §3, N bit from RFC 8538 §2).
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits: R N - -) | Restart Time (12 bits) |
/// +--------------------------------------------------+
/// | AFI (16 bits) | SAFI (8 bits) | Flags for AFI (8 bits: F - - - - - - -) | ... repeated
/// +--------------------------------------------------+
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// R: the sender has restarted.
    pub restart_state: bool,
    /// N: the sender supports graceful restart for NOTIFICATION (RFC 8538).
    pub notification: bool,
    /// Seconds, 0..=4095.
    pub restart_time: u16,
    /// Families, each with its Forwarding State (F) bit.
    pub families: Vec<(Family, bool)>,
}

/// One family of the Long-Lived Graceful Restart capability (RFC 9494 §3).
/// ```text
/// +--------------------------------------------------+
/// | AFI (16 bits) | SAFI (8 bits) | Flags (8 bits: F - - - - - - -) |
/// | Long-lived Stale Time (24 bits, seconds)                         |  ... repeated
/// +--------------------------------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LongLived {
    pub family: Family,
    /// F: forwarding state kept across the restart.
    pub forwarding: bool,
    /// Seconds, 0..=16777215.
    pub stale_time: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// RFC 4760 §8: AFI (2), Reserved (1), SAFI (1).
    Multiprotocol(Family),
    /// RFC 2918 §2, empty value.
    RouteRefresh,
    /// RFC 8950 §4: (NLRI AFI 2, NLRI SAFI 2, Next Hop AFI 2) repeated.
    ExtendedNextHop(Vec<ExtNextHop>),
    /// RFC 8654 §3, empty value.
    ExtendedMessage,
    GracefulRestart(GracefulRestart),
    /// RFC 6793 §3: the 4-octet AS number.
    FourOctetAs(u32),
    /// RFC 7911 §4: (AFI 2, SAFI 1, Send/Receive 1) repeated.
    AddPath(Vec<(Family, AddPathMode)>),
    /// RFC 7313 §3, empty value.
    EnhancedRouteRefresh,
    /// RFC 9494 §3: Long-Lived Graceful Restart, per family.
    LongLivedGracefulRestart(Vec<LongLived>),
    /// Any capability kbgp does not interpret (e.g. FQDN, the pre-standard route refresh 128).
    Unknown {
        code: u8,
        value: Bytes,
    },
}

fn malformed(code: u8, why: &str) -> DecodeError {
    DecodeError::open(open_sub::UNSPECIFIC, Bytes::new(), format!("malformed capability {code}: {why}"))
}

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::LongLivedGracefulRestart(_) => code::LONG_LIVED_GRACEFUL_RESTART,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Decodes one capability value. A known capability whose value has the wrong size is
    /// a malformed optional parameter: OPEN error, subcode 0 (RFC 4271 §6.2).
    pub fn decode(code: u8, v: &[u8]) -> Result<Capability, DecodeError> {
        let fixed = |n: usize| {
            if v.len() == n { Ok(()) } else { Err(malformed(code, &format!("length {} != {n}", v.len()))) }
        };
        let multiple = |n: usize| {
            if v.len().is_multiple_of(n) {
                Ok(())
            } else {
                Err(malformed(code, &format!("length {} not a multiple of {n}", v.len())))
            }
        };
        Ok(match code {
            code::MULTIPROTOCOL => {
                fixed(4)?;
                Capability::Multiprotocol(Family::new(
                    Afi::from_u16(u16::from_be_bytes([v[0], v[1]])),
                    Safi::from_u8(v[3]),
                ))
            }
            code::ROUTE_REFRESH => {
                fixed(0)?;
                Capability::RouteRefresh
            }
            code::EXTENDED_MESSAGE => {
                fixed(0)?;
                Capability::ExtendedMessage
            }
            code::ENHANCED_ROUTE_REFRESH => {
                fixed(0)?;
                Capability::EnhancedRouteRefresh
            }
            code::FOUR_OCTET_AS => {
                fixed(4)?;
                Capability::FourOctetAs(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
            }
            code::EXTENDED_NEXT_HOP => {
                multiple(6)?;
                let tuples = v
                    .chunks_exact(6)
                    .map(|c| ExtNextHop {
                        nlri: Family::new(
                            Afi::from_u16(u16::from_be_bytes([c[0], c[1]])),
                            // The SAFI field is 16 bits here; values above 255 are not assigned.
                            Safi::from_u8(u16::from_be_bytes([c[2], c[3]]).min(255) as u8),
                        ),
                        next_hop_afi: Afi::from_u16(u16::from_be_bytes([c[4], c[5]])),
                    })
                    .collect();
                Capability::ExtendedNextHop(tuples)
            }
            code::ADD_PATH => {
                multiple(4)?;
                let mut out = Vec::with_capacity(v.len() / 4);
                for c in v.chunks_exact(4) {
                    let mode = AddPathMode::from_u8(c[3])
                        .ok_or_else(|| malformed(code, &format!("send/receive value {}", c[3])))?;
                    out.push((Family::new(Afi::from_u16(u16::from_be_bytes([c[0], c[1]])), Safi::from_u8(c[2])), mode));
                }
                Capability::AddPath(out)
            }
            code::GRACEFUL_RESTART => {
                let err = || malformed(code, "truncated");
                let (rest, flags_time) = u16_(v).or_bgp(err)?;
                if rest.len() % 4 != 0 {
                    return Err(malformed(code, "family list not a multiple of 4 octets"));
                }
                let families = rest
                    .chunks_exact(4)
                    .map(|c| {
                        (
                            Family::new(Afi::from_u16(u16::from_be_bytes([c[0], c[1]])), Safi::from_u8(c[2])),
                            c[3] & 0x80 != 0,
                        )
                    })
                    .collect();
                Capability::GracefulRestart(GracefulRestart {
                    restart_state: flags_time & 0x8000 != 0,
                    notification: flags_time & 0x4000 != 0,
                    restart_time: flags_time & 0x0fff,
                    families,
                })
            }
            code::LONG_LIVED_GRACEFUL_RESTART => {
                if !v.len().is_multiple_of(7) {
                    return Err(malformed(code, "family list not a multiple of 7 octets"));
                }
                Capability::LongLivedGracefulRestart(
                    v.chunks_exact(7)
                        .map(|c| LongLived {
                            family: Family::new(Afi::from_u16(u16::from_be_bytes([c[0], c[1]])), Safi::from_u8(c[2])),
                            forwarding: c[3] & 0x80 != 0,
                            stale_time: u32::from_be_bytes([0, c[4], c[5], c[6]]),
                        })
                        .collect(),
                )
            }
            _ => Capability::Unknown { code, value: Bytes::copy_from_slice(v) },
        })
    }

    /// Appends the TLV (code, length, value).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.code());
        let len_at = out.len();
        out.put_u8(0);
        match self {
            Capability::Multiprotocol(f) => {
                out.put_u16(f.afi.to_u16());
                out.put_u8(0);
                out.put_u8(f.safi.to_u8());
            }
            Capability::RouteRefresh | Capability::ExtendedMessage | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(t) => {
                for x in t {
                    out.put_u16(x.nlri.afi.to_u16());
                    out.put_u16(x.nlri.safi.to_u8() as u16);
                    out.put_u16(x.next_hop_afi.to_u16());
                }
            }
            Capability::GracefulRestart(gr) => {
                let mut ft = gr.restart_time & 0x0fff;
                if gr.restart_state {
                    ft |= 0x8000;
                }
                if gr.notification {
                    ft |= 0x4000;
                }
                out.put_u16(ft);
                for (f, fwd) in &gr.families {
                    out.put_u16(f.afi.to_u16());
                    out.put_u8(f.safi.to_u8());
                    out.put_u8(if *fwd { 0x80 } else { 0 });
                }
            }
            Capability::FourOctetAs(asn) => out.put_u32(*asn),
            Capability::AddPath(t) => {
                for (f, m) in t {
                    out.put_u16(f.afi.to_u16());
                    out.put_u8(f.safi.to_u8());
                    out.put_u8(m.to_u8());
                }
            }
            Capability::LongLivedGracefulRestart(t) => {
                for l in t {
                    out.put_u16(l.family.afi.to_u16());
                    out.put_u8(l.family.safi.to_u8());
                    out.put_u8(if l.forwarding { 0x80 } else { 0 });
                    out.extend_from_slice(&l.stale_time.min(0xff_ffff).to_be_bytes()[1..]);
                }
            }
            Capability::Unknown { value, .. } => out.extend_from_slice(value),
        }
        // A capability value is at most 255 octets; every list above is bounded by its caller.
        let len = (out.len() - len_at - 1).min(255);
        out[len_at] = len as u8;
    }
}

/// Decodes the value of an OPEN optional parameter of type 2: one or more capability TLVs.
pub fn decode_list(mut v: &[u8], out: &mut Vec<Capability>) -> Result<(), DecodeError> {
    while !v.is_empty() {
        let (rest, code) = u8_(v).or_bgp(|| malformed(0, "truncated header"))?;
        let (rest, len) = u8_(rest).or_bgp(|| malformed(code, "truncated header"))?;
        let (rest, value) = bytes(rest, len as usize).or_bgp(|| malformed(code, "value overruns the parameter"))?;
        out.push(Capability::decode(code, value)?);
        v = rest;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(c: Capability, bytes: &[u8]) {
        let mut out = BytesMut::new();
        c.encode(&mut out);
        assert_eq!(&out[..], bytes, "encode {c:?}");
        let mut got = Vec::new();
        decode_list(bytes, &mut got).unwrap();
        assert_eq!(got, vec![c]);
    }

    #[test]
    fn fixtures_both_ways() {
        round_trip(Capability::Multiprotocol(Family::IPV6_UNICAST), &[1, 4, 0, 2, 0, 1]);
        round_trip(Capability::RouteRefresh, &[2, 0]);
        round_trip(Capability::ExtendedMessage, &[6, 0]);
        round_trip(Capability::EnhancedRouteRefresh, &[70, 0]);
        round_trip(Capability::FourOctetAs(4200000001), &[65, 4, 0xfa, 0x56, 0xea, 0x01]);
        round_trip(
            Capability::ExtendedNextHop(vec![ExtNextHop { nlri: Family::IPV4_UNICAST, next_hop_afi: Afi::Ipv6 }]),
            &[5, 6, 0, 1, 0, 1, 0, 2],
        );
        round_trip(
            Capability::AddPath(vec![
                (Family::IPV4_UNICAST, AddPathMode::Receive),
                (Family::IPV6_UNICAST, AddPathMode::Both),
            ]),
            &[69, 8, 0, 1, 1, 1, 0, 2, 1, 3],
        );
        round_trip(
            Capability::GracefulRestart(GracefulRestart {
                restart_state: true,
                notification: true,
                restart_time: 120,
                families: vec![(Family::IPV4_UNICAST, true)],
            }),
            &[64, 6, 0xc0, 120, 0, 1, 1, 0x80],
        );
        round_trip(Capability::Unknown { code: 73, value: Bytes::from_static(b"\x02ab") }, &[73, 3, 2, b'a', b'b']);
        round_trip(
            Capability::LongLivedGracefulRestart(vec![LongLived {
                family: Family::IPV4_UNICAST,
                forwarding: true,
                stale_time: 86400,
            }]),
            &[71, 7, 0, 1, 1, 0x80, 0x01, 0x51, 0x80],
        );
    }

    #[test]
    fn several_in_one_parameter() {
        let mut got = Vec::new();
        decode_list(&[2, 0, 65, 4, 0, 0, 0xfd, 0xe9, 128, 0], &mut got).unwrap();
        assert_eq!(
            got,
            vec![
                Capability::RouteRefresh,
                Capability::FourOctetAs(65001),
                Capability::Unknown { code: 128, value: Bytes::new() }
            ]
        );
    }

    #[test]
    fn malformed_known_capability_is_open_error_0() {
        for bad in [&[1u8, 3, 0, 1, 0][..], &[65, 2, 0, 1], &[69, 4, 0, 1, 1, 9], &[2, 5, 0], &[64, 1, 0]] {
            let e = decode_list(bad, &mut Vec::new()).unwrap_err();
            assert_eq!((e.code, e.subcode), (2, 0), "{bad:?}");
        }
    }
}
