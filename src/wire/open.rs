//! OPEN message (RFC 4271 §4.2), with extended optional parameters (RFC 9072).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Optional Parameters: (Type 1, Length 1, Value) ...       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! RFC 9072: when Opt Parm Len is 255 and the next octet is 255, a 2-octet length follows and
//! every parameter has a 2-octet length.
//!
//! Only syntax is checked here (and the version, since the rest of the layout depends on it).
//! Peer AS, hold time and BGP identifier are checked by the session against its configuration.

use super::capability::{self, Capability};
use super::error::{DecodeError, open_sub};
use super::family::Family;
use super::parse::{OrBgp, bytes, ipv4, u8_, u16_};
use bytes::{BufMut, Bytes, BytesMut};
use std::net::Ipv4Addr;

/// AS_TRANS (RFC 6793 §2): the 2-octet stand-in for an AS number above 65535.
pub const AS_TRANS: u16 = 23456;
const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED: u8 = 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

fn unspecific(why: &str) -> DecodeError {
    DecodeError::open(open_sub::UNSPECIFIC, Bytes::new(), why.to_string())
}

impl Open {
    /// Builds an OPEN for `asn`, putting AS_TRANS in My AS when it does not fit 2 octets.
    /// The caller includes [`Capability::FourOctetAs`] in `capabilities`.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Open {
        let my_as = u16::try_from(asn).unwrap_or(AS_TRANS);
        Open { my_as, hold_time, bgp_id, capabilities }
    }

    /// The sender's AS: the 4-octet AS capability if present, else My AS (RFC 6793 §4.1).
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(self.my_as as u32)
    }

    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    /// Families listed in Multiprotocol capabilities.
    pub fn mp_families(&self) -> Vec<Family> {
        self.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect()
    }

    pub fn has(&self, code: u8) -> bool {
        self.capabilities.iter().any(|c| c.code() == code)
    }

    /// Decodes the body of an OPEN (after the 19-octet header).
    pub fn decode(body: &[u8]) -> Result<Open, DecodeError> {
        let short = || unspecific("OPEN truncated");
        let (i, version) = u8_(body).or_bgp(short)?;
        if version != 4 {
            // Data: the largest version we support, 2 octets (RFC 4271 §6.2).
            return Err(DecodeError::open(
                open_sub::UNSUPPORTED_VERSION,
                Bytes::from_static(&[0, 4]),
                format!("peer speaks BGP version {version}"),
            ));
        }
        let (i, my_as) = u16_(i).or_bgp(short)?;
        let (i, hold_time) = u16_(i).or_bgp(short)?;
        let (i, bgp_id) = ipv4(i).or_bgp(short)?;
        let (i, opt_len) = u8_(i).or_bgp(short)?;
        let (params, extended) = if opt_len == 255 && i.first() == Some(&PARAM_EXTENDED) {
            let (i, _) = u8_(i).or_bgp(short)?;
            let (i, ext_len) = u16_(i).or_bgp(short)?;
            (i, Some(ext_len as usize))
        } else {
            (i, None)
        };
        let total = extended.unwrap_or(opt_len as usize);
        if params.len() != total {
            return Err(unspecific(&format!("optional parameters length {total} but {} octets follow", params.len())));
        }
        let mut capabilities = Vec::new();
        let mut rest = params;
        while !rest.is_empty() {
            let trunc = || unspecific("optional parameter truncated");
            let (i, ptype) = u8_(rest).or_bgp(trunc)?;
            let (i, plen) = if extended.is_some() {
                u16_(i).or_bgp(trunc)?
            } else {
                let (i, l) = u8_(i).or_bgp(trunc)?;
                (i, l as u16)
            };
            let (i, value) = bytes(i, plen as usize).or_bgp(trunc)?;
            if ptype != PARAM_CAPABILITIES {
                return Err(DecodeError::open(
                    open_sub::UNSUPPORTED_OPTIONAL_PARAMETER,
                    Bytes::new(),
                    format!("optional parameter type {ptype}"),
                ));
            }
            capability::decode_list(value, &mut capabilities)?;
            rest = i;
        }
        Ok(Open { my_as, hold_time, bgp_id, capabilities })
    }

    /// Appends the OPEN body: one optional parameter per capability, switching to the RFC 9072
    /// layout when the parameters do not fit in 255 octets.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(4);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_id.octets());
        let mut caps = Vec::with_capacity(self.capabilities.len());
        for c in &self.capabilities {
            let mut b = BytesMut::new();
            c.encode(&mut b);
            caps.push(b);
        }
        let short_len: usize = caps.iter().map(|c| c.len() + 2).sum();
        if short_len <= 255 {
            out.put_u8(short_len as u8);
            for c in &caps {
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u8(c.len() as u8);
                out.put_slice(c);
            }
        } else {
            let long_len: usize = caps.iter().map(|c| c.len() + 3).sum();
            out.put_u8(255);
            out.put_u8(PARAM_EXTENDED);
            out.put_u16(long_len.min(u16::MAX as usize) as u16);
            for c in &caps {
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u16(c.len() as u16);
                out.put_slice(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::family::Family;

    /// An OPEN body laid out the way FRR builds one (AS 65005, hold 9, id 10.0.5.1): MP ipv4
    /// and ipv6, route refresh (2 and 128), 4-octet AS, each in its own parameter. Real
    /// captures from each daemon are tested in `wire/fixtures.rs`.
    const FRR_OPEN: &[u8] = &[
        4, 0xfd, 0xed, 0, 9, 10, 0, 5, 1, 32, //
        2, 6, 1, 4, 0, 1, 0, 1, //
        2, 6, 1, 4, 0, 2, 0, 1, //
        2, 2, 128, 0, //
        2, 2, 2, 0, //
        2, 6, 65, 4, 0, 0, 0xfd, 0xed,
    ];

    #[test]
    fn decodes_a_real_open() {
        let o = Open::decode(FRR_OPEN).unwrap();
        assert_eq!(o.my_as, 65005);
        assert_eq!(o.asn(), 65005);
        assert_eq!(o.hold_time, 9);
        assert_eq!(o.bgp_id, Ipv4Addr::new(10, 0, 5, 1));
        assert_eq!(o.mp_families(), vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
        assert!(o.has(capability::code::ROUTE_REFRESH));
        assert!(o.has(128));
    }

    #[test]
    fn encodes_one_parameter_per_capability() {
        let o = Open::new(
            4200000001,
            90,
            Ipv4Addr::new(192, 0, 2, 1),
            vec![Capability::Multiprotocol(Family::IPV4_UNICAST), Capability::FourOctetAs(4200000001)],
        );
        assert_eq!(o.my_as, AS_TRANS);
        let mut b = BytesMut::new();
        o.encode_body(&mut b);
        assert_eq!(
            &b[..],
            &[4, 0x5b, 0xa0, 0, 90, 192, 0, 2, 1, 16, 2, 6, 1, 4, 0, 1, 0, 1, 2, 6, 65, 4, 0xfa, 0x56, 0xea, 0x01]
        );
        let back = Open::decode(&b).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.asn(), 4200000001);
    }

    #[test]
    fn rfc9072_extended_parameters_round_trip() {
        let caps: Vec<Capability> =
            (0..40).map(|n| Capability::Unknown { code: 200, value: Bytes::from(vec![n as u8; 5]) }).collect();
        let o = Open::new(65001, 90, Ipv4Addr::new(1, 1, 1, 1), caps);
        let mut b = BytesMut::new();
        o.encode_body(&mut b);
        assert_eq!(b[9], 255);
        assert_eq!(b[10], 255);
        assert_eq!(Open::decode(&b).unwrap(), o);
    }

    #[test]
    fn wrong_version_is_2_1_with_supported_version() {
        let mut body = FRR_OPEN.to_vec();
        body[0] = 3;
        let e = Open::decode(&body).unwrap_err();
        assert_eq!((e.code, e.subcode, &e.data[..]), (2, 1, &[0u8, 4][..]));
    }

    #[test]
    fn unknown_optional_parameter_is_2_4() {
        let body = [4, 0, 1, 0, 90, 1, 1, 1, 1, 3, 1, 1, 0];
        let e = Open::decode(&body).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 4));
    }

    #[test]
    fn parameter_length_mismatch_is_2_0() {
        let mut body = FRR_OPEN.to_vec();
        body[9] = 40;
        assert_eq!(Open::decode(&body).unwrap_err().subcode, 0);
        let body = [4, 0, 1, 0, 90, 1, 1, 1, 1, 3, 2, 5, 2];
        assert_eq!(Open::decode(&body).unwrap_err().subcode, 0);
    }
}
