//! UPDATE message (RFC 4271 §4.3), error handling (RFC 7606), End-of-RIB (RFC 4724 §2), and
//! the packers that fill UPDATEs up to the negotiated size.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```
//! kbgp writes MP_UNREACH_NLRI / MP_REACH_NLRI as the first attributes (RFC 7606 §5.1).

use super::Ctx;
use super::attribute::{self, MpNextHop, MpReach, MpUnreach, PathAttributes, code, flag, put_attr};
use super::error::{AttrError, DecodeError, EncodeError, Rfc7606Action, update_sub};
use super::family::Family;
use super::header::{self, HEADER_LEN, MessageType};
use super::nlri::{self, Nlri, PrefixKind};
use super::parse::{OrBgp, bytes, u16_};
use bytes::{BufMut, BytesMut};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// IPv4 unicast prefixes in the Withdrawn Routes field.
    pub withdrawn: Vec<Nlri>,
    pub attributes: PathAttributes,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    /// IPv4 unicast prefixes in the NLRI field.
    pub nlri: Vec<Nlri>,
    /// RFC 7606 errors the session survived. Filled by decode, ignored by encode.
    pub errors: Vec<AttrError>,
}

impl Update {
    /// RFC 7606: some attribute error asks for every NLRI here to be handled as withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.errors.iter().any(|e| e.action == Rfc7606Action::TreatAsWithdraw)
    }

    /// The family whose End-of-RIB marker this is (RFC 4724 §2), if it is one.
    pub fn end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() || self.mp_reach.is_some() || !self.errors.is_empty() {
            return None;
        }
        if self.attributes != PathAttributes::default() {
            return None;
        }
        match &self.mp_unreach {
            None => Some(Family::IPV4_UNICAST),
            Some(u) if u.withdrawn.is_empty() => Some(u.family),
            Some(_) => None,
        }
    }

    /// Prefixes this UPDATE makes reachable, with their family. Empty under treat-as-withdraw.
    pub fn announced(&self) -> Vec<(Family, Nlri)> {
        if self.treat_as_withdraw() {
            return Vec::new();
        }
        let mut v: Vec<(Family, Nlri)> = self.nlri.iter().map(|n| (Family::IPV4_UNICAST, *n)).collect();
        if let Some(r) = &self.mp_reach {
            v.extend(r.nlri.prefixes().iter().map(|n| (r.family, *n)));
        }
        v
    }

    /// Prefixes this UPDATE removes: the withdrawn ones, plus the announced ones under
    /// treat-as-withdraw.
    pub fn withdrawn_all(&self) -> Vec<(Family, Nlri)> {
        let mut v: Vec<(Family, Nlri)> = self.withdrawn.iter().map(|n| (Family::IPV4_UNICAST, *n)).collect();
        if let Some(u) = &self.mp_unreach {
            v.extend(u.withdrawn.prefixes().iter().map(|n| (u.family, *n)));
        }
        if self.treat_as_withdraw() {
            v.extend(self.nlri.iter().map(|n| (Family::IPV4_UNICAST, *n)));
            if let Some(r) = &self.mp_reach {
                v.extend(r.nlri.prefixes().iter().map(|n| (r.family, *n)));
            }
        }
        v
    }

    /// Decodes the body of an UPDATE (after the 19-octet header).
    pub fn decode(body: &[u8], ctx: &Ctx) -> Result<Update, DecodeError> {
        let list = |why: &str| DecodeError::malformed_attribute_list(why.to_string());
        let (i, wlen) = u16_(body).or_bgp(|| list("withdrawn routes length missing"))?;
        let (i, wbuf) = bytes(i, wlen as usize).or_bgp(|| list("withdrawn routes overrun the message"))?;
        let (i, alen) = u16_(i).or_bgp(|| list("total path attribute length missing"))?;
        let (nlri_buf, abuf) = bytes(i, alen as usize).or_bgp(|| list("path attributes overrun the message"))?;

        let v4_add_path = ctx.add_path_rx(Family::IPV4_UNICAST);
        let mut withdrawn = Vec::new();
        nlri::decode_prefixes(wbuf, PrefixKind::V4, v4_add_path, &mut withdrawn)
            .map_err(|e| DecodeError::invalid_network_field(format!("withdrawn routes: {e}")))?;
        let mut errors = Vec::new();
        let d = attribute::decode(abuf, ctx, &mut errors)?;
        let mut nlri = Vec::new();
        nlri::decode_prefixes(nlri_buf, PrefixKind::V4, v4_add_path, &mut nlri)
            .map_err(|e| DecodeError::invalid_network_field(format!("NLRI: {e}")))?;

        // RFC 7606 §3 (d): missing well-known mandatory attributes are treat-as-withdraw.
        let mp_nlri = d.mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
        if !nlri.is_empty() || mp_nlri {
            let a = &d.attrs;
            let mut missing = Vec::new();
            if a.origin.is_none() {
                missing.push(code::ORIGIN);
            }
            if a.as_path.is_none() {
                missing.push(code::AS_PATH);
            }
            if !nlri.is_empty() && a.next_hop.is_none() {
                missing.push(code::NEXT_HOP);
            }
            for t in missing {
                if !errors.iter().any(|e| e.type_code == t) {
                    errors.push(AttrError {
                        type_code: t,
                        subcode: update_sub::MISSING_WELL_KNOWN_ATTRIBUTE,
                        action: Rfc7606Action::TreatAsWithdraw,
                        reason: format!("missing well-known attribute {t}"),
                    });
                }
            }
        }
        Ok(Update { withdrawn, attributes: d.attrs, mp_reach: d.mp_reach, mp_unreach: d.mp_unreach, nlri, errors })
    }

    /// Appends the UPDATE body.
    pub fn encode_body(&self, ctx: &Ctx, out: &mut BytesMut) {
        let v4_add_path = ctx.add_path_tx(Family::IPV4_UNICAST);
        let wlen_at = out.len();
        out.put_u16(0);
        self.withdrawn.iter().for_each(|n| nlri::encode_prefix(out, n, v4_add_path));
        patch_u16(out, wlen_at);
        let alen_at = out.len();
        out.put_u16(0);
        let mut v = BytesMut::new();
        if let Some(u) = &self.mp_unreach {
            u.encode(ctx.add_path_tx(u.family), &mut v);
            put_attr(out, flag::OPTIONAL, code::MP_UNREACH_NLRI, &v);
        }
        if let Some(r) = &self.mp_reach {
            v.clear();
            r.encode(ctx.add_path_tx(r.family), &mut v);
            put_attr(out, flag::OPTIONAL, code::MP_REACH_NLRI, &v);
        }
        self.attributes.encode(ctx, out);
        patch_u16(out, alen_at);
        self.nlri.iter().for_each(|n| nlri::encode_prefix(out, n, v4_add_path));
    }
}

/// Writes `out.len() - at - 2` into the 2 octets at `at`.
fn patch_u16(out: &mut BytesMut, at: usize) {
    let n = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&n.to_be_bytes());
}

/// Appends the End-of-RIB marker for `family` (RFC 4724 §2).
pub fn write_end_of_rib(family: Family, out: &mut BytesMut) {
    let start = header::put_header(out, MessageType::Update);
    if family == Family::IPV4_UNICAST {
        out.put_u32(0);
    } else {
        out.put_u16(0);
        out.put_u16(6);
        out.put_slice(&[flag::OPTIONAL, code::MP_UNREACH_NLRI, 3]);
        out.put_u16(family.afi.to_u16());
        out.put_u8(family.safi.to_u8());
    }
    header::set_len(out, start);
}

/// Appends as few UPDATEs as `ctx.max_len` allows to withdraw `prefixes`, all of `family`.
/// IPv4 unicast uses the Withdrawn Routes field, other families MP_UNREACH_NLRI.
/// Returns the number of messages written.
pub fn write_withdrawals(family: Family, prefixes: &[Nlri], ctx: &Ctx, out: &mut BytesMut) -> usize {
    let add_path = ctx.add_path_tx(family);
    let mut msgs = 0;
    let mut rest = prefixes;
    while !rest.is_empty() {
        let start = header::put_header(out, MessageType::Update);
        let budget;
        let mp_len_at;
        if family == Family::IPV4_UNICAST {
            out.put_u16(0);
            budget = ctx.max_len - HEADER_LEN - 4;
            mp_len_at = None;
        } else {
            out.put_u16(0);
            out.put_u16(0);
            out.put_slice(&[flag::OPTIONAL | flag::EXTENDED_LENGTH, code::MP_UNREACH_NLRI, 0, 0]);
            out.put_u16(family.afi.to_u16());
            out.put_u8(family.safi.to_u8());
            budget = ctx.max_len - HEADER_LEN - 4 - 4 - 3;
            mp_len_at = Some(out.len() - 5);
        }
        let mut used = 0;
        let mut taken = 0;
        for n in rest {
            let l = nlri::encoded_len(&n.prefix, add_path);
            if used + l > budget {
                break;
            }
            nlri::encode_prefix(out, n, add_path);
            used += l;
            taken += 1;
        }
        match mp_len_at {
            None => {
                patch_u16(out, start + HEADER_LEN);
                out.put_u16(0);
            }
            Some(at) => {
                patch_u16(out, at);
                let alen_at = start + HEADER_LEN + 2;
                patch_u16(out, alen_at);
            }
        }
        header::set_len(out, start);
        msgs += 1;
        if taken == 0 {
            // Unreachable: one prefix (at most 21 octets) always fits in an empty UPDATE.
            break;
        }
        rest = &rest[taken..];
    }
    msgs
}

/// Appends as few UPDATEs as `ctx.max_len` allows to announce `prefixes`, all of `family`,
/// with one attribute set. `attrs` is the encoded Path Attributes field without MP attributes
/// (for IPv4 NLRI it includes NEXT_HOP). With `mp_next_hop`, prefixes go in MP_REACH_NLRI
/// (IPv6, or IPv4 with an IPv6 next hop per RFC 8950); without, in the IPv4 NLRI field.
pub fn write_announcements(
    family: Family,
    mp_next_hop: Option<&MpNextHop>,
    attrs: &[u8],
    prefixes: &[Nlri],
    ctx: &Ctx,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    if mp_next_hop.is_none() && family != Family::IPV4_UNICAST {
        return Err(EncodeError::Invalid("only IPv4 unicast can use the NLRI field"));
    }
    let add_path = ctx.add_path_tx(family);
    let mut mp_head = BytesMut::new();
    if let Some(nh) = mp_next_hop {
        mp_head.put_u16(family.afi.to_u16());
        mp_head.put_u8(family.safi.to_u8());
        attribute::mp::encode_next_hop(nh, &mut mp_head);
    }
    let fixed = HEADER_LEN + 4 + attrs.len() + if mp_next_hop.is_some() { 4 + mp_head.len() } else { 0 };
    let mut msgs = 0;
    let mut rest = prefixes;
    while !rest.is_empty() {
        let first = nlri::encoded_len(&rest[0].prefix, add_path);
        if fixed + first > ctx.max_len {
            return Err(EncodeError::TooLong { len: fixed + first, max: ctx.max_len });
        }
        let budget = ctx.max_len - fixed;
        let start = header::put_header(out, MessageType::Update);
        out.put_u16(0);
        let alen_at = out.len();
        out.put_u16(0);
        let mut mp_len_at = None;
        if mp_next_hop.is_some() {
            out.put_slice(&[flag::OPTIONAL | flag::EXTENDED_LENGTH, code::MP_REACH_NLRI, 0, 0]);
            mp_len_at = Some(out.len() - 2);
            out.put_slice(&mp_head);
        }
        let mut used = 0;
        let mut taken = 0;
        let mut put = |out: &mut BytesMut| {
            for n in rest {
                let l = nlri::encoded_len(&n.prefix, add_path);
                if used + l > budget {
                    break;
                }
                nlri::encode_prefix(out, n, add_path);
                used += l;
                taken += 1;
            }
        };
        match mp_len_at {
            Some(at) => {
                put(out);
                patch_u16(out, at);
                out.put_slice(attrs);
                patch_u16(out, alen_at);
            }
            None => {
                out.put_slice(attrs);
                patch_u16(out, alen_at);
                put(out);
            }
        }
        header::set_len(out, start);
        msgs += 1;
        rest = &rest[taken..];
    }
    Ok(msgs)
}

#[cfg(test)]
mod tests;
