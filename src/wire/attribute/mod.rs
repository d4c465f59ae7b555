//! Path attributes (RFC 4271 §4.3, §5) and their error handling (RFC 7606).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |O|T|P|E|  0    |  Type Code    | Length (1 octet, 2 if E set)  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                     Attribute Value ...                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! O optional, T transitive, P partial, E extended length.
//! ```
//! [`PathAttributes`] holds 4-octet AS semantics whatever the session negotiated: decoding
//! from a 2-octet speaker merges AS4_PATH / AS4_AGGREGATOR in, encoding to one splits them out
//! (RFC 6793 §4.2). MP_REACH_NLRI / MP_UNREACH_NLRI live on the UPDATE, not here.

pub mod as_path;
pub mod community;
pub mod mp;

pub use as_path::{AsPath, AsSegment, SegmentType};
pub use community::{Community, ExtCommunity, LargeCommunity};
pub use mp::{MpNextHop, MpNlri, MpReach, MpUnreach};

use super::Ctx;
use super::error::{AttrError, DecodeError, Rfc7606Action, update_sub};
use super::open::AS_TRANS;
use bytes::{BufMut, Bytes, BytesMut};
use std::net::Ipv4Addr;

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// Attribute flag bits.
pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// ORIGIN values (RFC 4271 §4.3 type 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Igp => "igp",
            Origin::Egp => "egp",
            Origin::Incomplete => "incomplete",
        }
    }
}

/// AGGREGATOR (RFC 4271 type 7; 4-octet AS per RFC 6793).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

/// An attribute kbgp does not interpret, kept with its flags.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Bytes,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Vec<Community>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub ext_communities: Vec<ExtCommunity>,
    pub large_communities: Vec<LargeCommunity>,
    /// Unrecognized optional attributes, in the order received.
    pub unknown: Vec<RawAttribute>,
}

/// What [`decode`] found besides plain attributes.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub attrs: PathAttributes,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
}

/// The (Optional, Transitive) bits a known attribute must carry (RFC 4271 §5, RFC 4456, 4760,
/// 4360, 6793, 8092).
fn expected_flags(t: u8) -> Option<(bool, bool)> {
    use code::*;
    Some(match t {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => (false, true),
        MULTI_EXIT_DISC | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => (true, false),
        AGGREGATOR | COMMUNITIES | EXTENDED_COMMUNITIES | AS4_PATH | AS4_AGGREGATOR | LARGE_COMMUNITY => (true, true),
        _ => return None,
    })
}

/// Collects the errors of one UPDATE and keeps the strongest action (RFC 7606 §3).
struct Errors<'a> {
    out: &'a mut Vec<AttrError>,
}

impl Errors<'_> {
    fn push(&mut self, type_code: u8, subcode: u8, action: Rfc7606Action, reason: impl Into<String>) {
        self.out.push(AttrError { type_code, subcode, action, reason: reason.into() });
    }
    fn withdraw(&mut self, t: u8, subcode: u8, reason: impl Into<String>) {
        self.push(t, subcode, Rfc7606Action::TreatAsWithdraw, reason)
    }
    fn discard(&mut self, t: u8, subcode: u8, reason: impl Into<String>) {
        self.push(t, subcode, Rfc7606Action::AttributeDiscard, reason)
    }
}

fn u32_of(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

/// Decodes the Path Attributes field of an UPDATE.
///
/// Fatal errors (RFC 7606 "session reset") come back as `Err`. Everything RFC 7606 lets the
/// session survive is pushed to `errors` and the attribute is left out.
pub(crate) fn decode(mut buf: &[u8], ctx: &Ctx, errors: &mut Vec<AttrError>) -> Result<Decoded, DecodeError> {
    let mut errs = Errors { out: errors };
    let mut d = Decoded::default();
    let mut seen = [false; 256];
    let mut as4_path: Option<AsPath> = None;
    let mut as4_aggregator: Option<Aggregator> = None;

    while !buf.is_empty() {
        // RFC 7606 §4: an attribute header or value that runs past the field is
        // treat-as-withdraw; the Total Path Attribute Length still locates the NLRI.
        let ext = buf[0] & flag::EXTENDED_LENGTH != 0;
        let hdr_len = if ext { 4 } else { 3 };
        if buf.len() < hdr_len {
            errs.withdraw(0, update_sub::MALFORMED_ATTRIBUTE_LIST, "attribute header truncated");
            break;
        }
        let flags = buf[0];
        let t = buf[1];
        let len = if ext { u16::from_be_bytes([buf[2], buf[3]]) as usize } else { buf[2] as usize };
        if buf.len() < hdr_len + len {
            errs.withdraw(
                t,
                update_sub::ATTRIBUTE_LENGTH_ERROR,
                format!("attribute {t} of {len} octets overruns the field"),
            );
            break;
        }
        let whole = &buf[..hdr_len + len];
        let v = &buf[hdr_len..hdr_len + len];
        buf = &buf[hdr_len + len..];
        let attr_data = || Bytes::copy_from_slice(whole);

        if seen[t as usize] {
            if t == code::MP_REACH_NLRI || t == code::MP_UNREACH_NLRI {
                return Err(DecodeError::malformed_attribute_list(format!("attribute {t} appears twice")));
            }
            errs.discard(t, update_sub::MALFORMED_ATTRIBUTE_LIST, format!("repeated attribute {t} dropped"));
            continue;
        }
        seen[t as usize] = true;

        let optional = flags & flag::OPTIONAL != 0;
        let transitive = flags & flag::TRANSITIVE != 0;
        match expected_flags(t) {
            None if !optional => {
                return Err(DecodeError::update(
                    update_sub::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    attr_data(),
                    format!("unrecognized well-known attribute {t}"),
                ));
            }
            None => {
                d.attrs.unknown.push(RawAttribute {
                    flags: flags & !flag::EXTENDED_LENGTH,
                    type_code: t,
                    value: Bytes::copy_from_slice(v),
                });
                continue;
            }
            Some(want) if want != (optional, transitive) => {
                if t == code::MP_REACH_NLRI || t == code::MP_UNREACH_NLRI {
                    // The NLRI inside cannot be trusted: session reset.
                    return Err(DecodeError::update(
                        update_sub::ATTRIBUTE_FLAGS_ERROR,
                        attr_data(),
                        format!("flags 0x{flags:02x} on attribute {t}"),
                    ));
                }
                errs.withdraw(t, update_sub::ATTRIBUTE_FLAGS_ERROR, format!("flags 0x{flags:02x} on attribute {t}"));
                continue;
            }
            Some(_) => {}
        }

        let a = &mut d.attrs;
        match t {
            code::ORIGIN => match v {
                [0] => a.origin = Some(Origin::Igp),
                [1] => a.origin = Some(Origin::Egp),
                [2] => a.origin = Some(Origin::Incomplete),
                [x] => errs.withdraw(t, update_sub::INVALID_ORIGIN_ATTRIBUTE, format!("ORIGIN value {x}")),
                _ => errs.withdraw(t, update_sub::ATTRIBUTE_LENGTH_ERROR, format!("ORIGIN length {len}")),
            },
            code::AS_PATH => match AsPath::decode(v, ctx.four_octet_as) {
                Ok(p) => a.as_path = Some(p),
                Err(e) => errs.withdraw(t, update_sub::MALFORMED_AS_PATH, format!("AS_PATH: {e}")),
            },
            code::NEXT_HOP => {
                if len != 4 {
                    errs.withdraw(t, update_sub::ATTRIBUTE_LENGTH_ERROR, format!("NEXT_HOP length {len}"));
                } else {
                    let nh = Ipv4Addr::from(u32_of(v));
                    // RFC 4271 §6.3: a semantically wrong next hop makes the route unusable.
                    if nh.is_unspecified() || nh.is_broadcast() || nh.is_multicast() {
                        errs.withdraw(t, update_sub::INVALID_NEXT_HOP_ATTRIBUTE, format!("NEXT_HOP {nh}"));
                    } else {
                        a.next_hop = Some(nh);
                    }
                }
            }
            code::MULTI_EXIT_DISC => {
                if len == 4 {
                    a.med = Some(u32_of(v));
                } else {
                    errs.withdraw(t, update_sub::ATTRIBUTE_LENGTH_ERROR, format!("MULTI_EXIT_DISC length {len}"));
                }
            }
            code::LOCAL_PREF => {
                if ctx.ebgp {
                    errs.discard(t, 0, "LOCAL_PREF from an external peer");
                } else if len == 4 {
                    a.local_pref = Some(u32_of(v));
                } else {
                    errs.withdraw(t, update_sub::ATTRIBUTE_LENGTH_ERROR, format!("LOCAL_PREF length {len}"));
                }
            }
            code::ATOMIC_AGGREGATE => {
                if len == 0 {
                    a.atomic_aggregate = true;
                } else {
                    errs.discard(t, update_sub::ATTRIBUTE_LENGTH_ERROR, format!("ATOMIC_AGGREGATE length {len}"));
                }
            }
            code::AGGREGATOR => {
                let want = if ctx.four_octet_as { 8 } else { 6 };
                if len != want {
                    errs.discard(
                        t,
                        update_sub::ATTRIBUTE_LENGTH_ERROR,
                        format!("AGGREGATOR length {len}, want {want}"),
                    );
                } else if ctx.four_octet_as {
                    a.aggregator = Some(Aggregator { asn: u32_of(v), address: Ipv4Addr::from(u32_of(&v[4..])) });
                } else {
                    a.aggregator = Some(Aggregator {
                        asn: u16::from_be_bytes([v[0], v[1]]) as u32,
                        address: Ipv4Addr::from(u32_of(&v[2..])),
                    });
                }
            }
            code::COMMUNITIES => {
                if len == 0 || len % 4 != 0 {
                    errs.withdraw(t, update_sub::OPTIONAL_ATTRIBUTE_ERROR, format!("COMMUNITIES length {len}"));
                } else {
                    a.communities = v.chunks_exact(4).map(|c| Community(u32_of(c))).collect();
                }
            }
            code::ORIGINATOR_ID => {
                if ctx.ebgp {
                    errs.discard(t, 0, "ORIGINATOR_ID from an external peer");
                } else if len == 4 {
                    a.originator_id = Some(Ipv4Addr::from(u32_of(v)));
                } else {
                    errs.withdraw(t, update_sub::ATTRIBUTE_LENGTH_ERROR, format!("ORIGINATOR_ID length {len}"));
                }
            }
            code::CLUSTER_LIST => {
                if ctx.ebgp {
                    errs.discard(t, 0, "CLUSTER_LIST from an external peer");
                } else if len == 0 || len % 4 != 0 {
                    errs.withdraw(t, update_sub::ATTRIBUTE_LENGTH_ERROR, format!("CLUSTER_LIST length {len}"));
                } else {
                    a.cluster_list = v.chunks_exact(4).map(|c| Ipv4Addr::from(u32_of(c))).collect();
                }
            }
            code::MP_REACH_NLRI => {
                let r = MpReach::decode(v, |f| ctx.add_path_rx(f)).map_err(|e| {
                    DecodeError::update(
                        update_sub::OPTIONAL_ATTRIBUTE_ERROR,
                        attr_data(),
                        format!("MP_REACH_NLRI: {e}"),
                    )
                })?;
                d.mp_reach = Some(r);
            }
            code::MP_UNREACH_NLRI => {
                let u = MpUnreach::decode(v, |f| ctx.add_path_rx(f)).map_err(|e| {
                    DecodeError::update(
                        update_sub::OPTIONAL_ATTRIBUTE_ERROR,
                        attr_data(),
                        format!("MP_UNREACH_NLRI: {e}"),
                    )
                })?;
                d.mp_unreach = Some(u);
            }
            code::EXTENDED_COMMUNITIES => {
                if len == 0 || len % 8 != 0 {
                    errs.withdraw(
                        t,
                        update_sub::OPTIONAL_ATTRIBUTE_ERROR,
                        format!("EXTENDED_COMMUNITIES length {len}"),
                    );
                } else {
                    a.ext_communities = v
                        .chunks_exact(8)
                        .map(|c| {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(c);
                            ExtCommunity(b)
                        })
                        .collect();
                }
            }
            code::AS4_PATH => {
                // RFC 6793 §6: from a 4-octet speaker it is ignored; malformed is discarded.
                if !ctx.four_octet_as {
                    match AsPath::decode(v, true) {
                        Ok(p) => as4_path = Some(p),
                        Err(e) => errs.discard(t, update_sub::OPTIONAL_ATTRIBUTE_ERROR, format!("AS4_PATH: {e}")),
                    }
                }
            }
            code::AS4_AGGREGATOR => {
                if !ctx.four_octet_as {
                    if len == 8 {
                        as4_aggregator = Some(Aggregator { asn: u32_of(v), address: Ipv4Addr::from(u32_of(&v[4..])) });
                    } else {
                        errs.discard(t, update_sub::ATTRIBUTE_LENGTH_ERROR, format!("AS4_AGGREGATOR length {len}"));
                    }
                }
            }
            code::LARGE_COMMUNITY => {
                if len == 0 || len % 12 != 0 {
                    errs.withdraw(t, update_sub::OPTIONAL_ATTRIBUTE_ERROR, format!("LARGE_COMMUNITY length {len}"));
                } else {
                    a.large_communities = v
                        .chunks_exact(12)
                        .map(|c| LargeCommunity { global: u32_of(c), local1: u32_of(&c[4..]), local2: u32_of(&c[8..]) })
                        .collect();
                }
            }
            _ => unreachable!("expected_flags covers exactly the codes above"),
        }
    }

    // RFC 6793 §4.2.3: rebuild the 4-octet view from a 2-octet speaker's attributes.
    if let (Some(p), Some(as4)) = (&d.attrs.as_path, &as4_path) {
        d.attrs.as_path = Some(p.merge_as4(as4));
    }
    if let (Some(agg), Some(a4)) = (d.attrs.aggregator, as4_aggregator)
        && agg.asn == AS_TRANS as u32
    {
        d.attrs.aggregator = Some(a4);
    }
    Ok(d)
}

/// Writes one attribute, choosing the extended length form when the value needs it.
pub(crate) fn put_attr(out: &mut BytesMut, flags: u8, t: u8, value: &[u8]) {
    if value.len() > 255 {
        out.put_u8(flags | flag::EXTENDED_LENGTH);
        out.put_u8(t);
        out.put_u16(value.len() as u16);
    } else {
        out.put_u8(flags & !flag::EXTENDED_LENGTH);
        out.put_u8(t);
        out.put_u8(value.len() as u8);
    }
    out.put_slice(value);
}

const WELL_KNOWN: u8 = flag::TRANSITIVE;
const OPT_TRANS: u8 = flag::OPTIONAL | flag::TRANSITIVE;
const OPT_NON_TRANS: u8 = flag::OPTIONAL;

impl PathAttributes {
    /// Appends every attribute in type-code order. On a 2-octet session, AS numbers above
    /// 65535 go out as AS_TRANS with AS4_PATH / AS4_AGGREGATOR beside them (RFC 6793 §4.2.2).
    pub fn encode(&self, ctx: &Ctx, out: &mut BytesMut) {
        let mut v = BytesMut::with_capacity(64);
        if let Some(o) = self.origin {
            put_attr(out, WELL_KNOWN, code::ORIGIN, &[o as u8]);
        }
        if let Some(p) = &self.as_path {
            v.clear();
            p.encode(ctx.four_octet_as, &mut v);
            put_attr(out, WELL_KNOWN, code::AS_PATH, &v);
        }
        if let Some(nh) = self.next_hop {
            put_attr(out, WELL_KNOWN, code::NEXT_HOP, &nh.octets());
        }
        if let Some(m) = self.med {
            put_attr(out, OPT_NON_TRANS, code::MULTI_EXIT_DISC, &m.to_be_bytes());
        }
        if let Some(lp) = self.local_pref {
            put_attr(out, WELL_KNOWN, code::LOCAL_PREF, &lp.to_be_bytes());
        }
        if self.atomic_aggregate {
            put_attr(out, WELL_KNOWN, code::ATOMIC_AGGREGATE, &[]);
        }
        if let Some(agg) = self.aggregator {
            v.clear();
            if ctx.four_octet_as {
                v.put_u32(agg.asn);
            } else {
                v.put_u16(u16::try_from(agg.asn).unwrap_or(AS_TRANS));
            }
            v.put_slice(&agg.address.octets());
            put_attr(out, OPT_TRANS, code::AGGREGATOR, &v);
        }
        if !self.communities.is_empty() {
            v.clear();
            self.communities.iter().for_each(|c| v.put_u32(c.0));
            put_attr(out, OPT_TRANS, code::COMMUNITIES, &v);
        }
        if let Some(id) = self.originator_id {
            put_attr(out, OPT_NON_TRANS, code::ORIGINATOR_ID, &id.octets());
        }
        if !self.cluster_list.is_empty() {
            v.clear();
            self.cluster_list.iter().for_each(|c| v.put_slice(&c.octets()));
            put_attr(out, OPT_NON_TRANS, code::CLUSTER_LIST, &v);
        }
        if !self.ext_communities.is_empty() {
            v.clear();
            self.ext_communities.iter().for_each(|c| v.put_slice(&c.0));
            put_attr(out, OPT_TRANS, code::EXTENDED_COMMUNITIES, &v);
        }
        if !ctx.four_octet_as {
            if let Some(p) = self.as_path.as_ref().filter(|p| p.needs_as4()) {
                v.clear();
                p.encode(true, &mut v);
                put_attr(out, OPT_TRANS, code::AS4_PATH, &v);
            }
            if let Some(agg) = self.aggregator.filter(|a| a.asn > u16::MAX as u32) {
                v.clear();
                v.put_u32(agg.asn);
                v.put_slice(&agg.address.octets());
                put_attr(out, OPT_TRANS, code::AS4_AGGREGATOR, &v);
            }
        }
        if !self.large_communities.is_empty() {
            v.clear();
            for c in &self.large_communities {
                v.put_u32(c.global);
                v.put_u32(c.local1);
                v.put_u32(c.local2);
            }
            put_attr(out, OPT_TRANS, code::LARGE_COMMUNITY, &v);
        }
        for r in &self.unknown {
            put_attr(out, r.flags, r.type_code, &r.value);
        }
    }
}

#[cfg(test)]
mod tests;
