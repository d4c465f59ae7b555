//! NOTIFICATION message (RFC 4271 §4.5) and the Shutdown Communication (RFC 9003).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! RFC 9003: for Cease / Administrative Shutdown (6/2) and Administrative Reset (6/4) the data
//! is a 1-octet length and up to 255 octets of UTF-8 text.
//!
//! RFC 4486 §4: for Cease / Maximum Number of Prefixes Reached (6/1) the data is the family
//! and the configured upper bound:
//!
//! ```text
//! +-------------------------------+---------------+-------------------------------+
//! | AFI (2 octets)                | SAFI (1)      | Upper bound (4 octets)        |
//! +-------------------------------+---------------+-------------------------------+
//! ```

use super::Family;
use super::error::{DecodeError, cease_sub, code, describe};
use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Bytes,
}

/// RFC 9003 §2: the longest Shutdown Communication, in octets.
pub const MAX_SHUTDOWN_MESSAGE: usize = 255;

impl Notification {
    pub fn new(code: u8, subcode: u8, data: impl Into<Bytes>) -> Notification {
        Notification { code, subcode, data: data.into() }
    }

    /// A Cease; for subcodes 2 and 4 the message goes in as an RFC 9003 Shutdown Communication,
    /// cut at a character boundary to fit 255 octets.
    /// Cease 6/9, Hard Reset (RFC 8538 §3), carrying `inner`'s code, subcode and data: the
    /// peer flushes the routes even though graceful restart with the N bit was negotiated.
    pub fn hard_reset(inner: &Notification) -> Notification {
        let mut data = BytesMut::with_capacity(2 + inner.data.len());
        data.extend_from_slice(&[inner.code, inner.subcode]);
        data.extend_from_slice(&inner.data);
        Notification { code: super::error::code::CEASE, subcode: cease_sub::HARD_RESET, data: data.freeze() }
    }

    pub fn cease(subcode: u8, message: &str) -> Notification {
        let mut data = BytesMut::new();
        if (subcode == cease_sub::ADMINISTRATIVE_SHUTDOWN || subcode == cease_sub::ADMINISTRATIVE_RESET)
            && !message.is_empty()
        {
            let mut end = message.len().min(MAX_SHUTDOWN_MESSAGE);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            data.put_u8(end as u8);
            data.put_slice(&message.as_bytes()[..end]);
        }
        Notification::new(code::CEASE, subcode, data.freeze())
    }

    /// 6/1 (RFC 4486 §4): the peer sent more than `limit` routes; `family` is the one that
    /// crossed it.
    pub fn max_prefixes(family: Family, limit: u32) -> Notification {
        let mut data = BytesMut::with_capacity(7);
        data.put_u16(family.afi.to_u16());
        data.put_u8(family.safi.to_u8());
        data.put_u32(limit);
        Notification::new(code::CEASE, cease_sub::MAX_PREFIXES_REACHED, data.freeze())
    }

    /// The family and upper bound of a 6/1 that carries them (RFC 4486 §4).
    pub fn max_prefixes_data(&self) -> Option<(Family, u32)> {
        if self.code != code::CEASE || self.subcode != cease_sub::MAX_PREFIXES_REACHED || self.data.len() != 7 {
            return None;
        }
        let d = &self.data;
        let family = Family::new(super::Afi::from_u16(u16::from_be_bytes([d[0], d[1]])), super::Safi::from_u8(d[2]));
        Some((family, u32::from_be_bytes([d[3], d[4], d[5], d[6]])))
    }

    /// 4/0, sent when the Hold Timer expires.
    pub fn hold_timer_expired() -> Notification {
        Notification::new(code::HOLD_TIMER_EXPIRED, 0, Bytes::new())
    }

    /// The RFC 9003 message, when this is a Cease 2 or 4 carrying a valid one.
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != code::CEASE
            || !(self.subcode == cease_sub::ADMINISTRATIVE_SHUTDOWN || self.subcode == cease_sub::ADMINISTRATIVE_RESET)
        {
            return None;
        }
        let (&len, text) = self.data.split_first()?;
        let text = text.get(..len as usize)?;
        std::str::from_utf8(text).ok().map(str::to_owned)
    }

    pub fn describe(&self) -> &'static str {
        describe(self.code, self.subcode)
    }

    pub fn decode(body: &[u8]) -> Notification {
        // The header check guarantees at least the two code octets.
        let code = body.first().copied().unwrap_or(0);
        let subcode = body.get(1).copied().unwrap_or(0);
        Notification::new(code, subcode, Bytes::copy_from_slice(body.get(2..).unwrap_or(&[])))
    }

    pub fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.code);
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }
}

impl From<&DecodeError> for Notification {
    fn from(e: &DecodeError) -> Notification {
        Notification::new(e.code, e.subcode, e.data.clone())
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.describe(), self.code, self.subcode)?;
        if let Some(m) = self.shutdown_message() {
            write!(f, ": \"{}\"", m.escape_debug())?;
        } else if !self.data.is_empty() {
            write!(f, " data {}", self.data.iter().map(|b| format!("{b:02x}")).collect::<String>())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_prefixes_carries_family_and_bound() {
        let n = Notification::max_prefixes(Family::IPV6_UNICAST, 1000);
        assert_eq!((n.code, n.subcode), (6, 1));
        assert_eq!(&n.data[..], &[0, 2, 1, 0, 0, 0x03, 0xe8]);
        assert_eq!(n.max_prefixes_data(), Some((Family::IPV6_UNICAST, 1000)));
        assert_eq!(Notification::new(6, 1, Bytes::new()).max_prefixes_data(), None, "the data is optional");
    }

    #[test]
    fn shutdown_communication_round_trip() {
        let n = Notification::cease(cease_sub::ADMINISTRATIVE_SHUTDOWN, "shutdown");
        let mut b = BytesMut::new();
        n.encode_body(&mut b);
        assert_eq!(&b[..], b"\x06\x02\x08shutdown");
        let back = Notification::decode(&b);
        assert_eq!(back.shutdown_message().as_deref(), Some("shutdown"));
        assert_eq!(back.to_string(), "cease: administrative shutdown (6/2): \"shutdown\"");
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let msg = "é".repeat(200);
        let n = Notification::cease(cease_sub::ADMINISTRATIVE_RESET, &msg);
        assert_eq!(n.data[0] as usize, 254);
        assert_eq!(n.shutdown_message().unwrap().chars().count(), 127);
    }

    #[test]
    fn other_cease_subcodes_carry_no_text() {
        let n = Notification::cease(cease_sub::PEER_DECONFIGURED, "ignored");
        assert!(n.data.is_empty());
        assert_eq!(n.shutdown_message(), None);
    }

    #[test]
    fn bad_shutdown_text_is_not_a_message() {
        let n = Notification::new(6, 2, Bytes::from_static(b"\x09short"));
        assert_eq!(n.shutdown_message(), None);
        let n = Notification::new(6, 2, Bytes::from_static(b"\x02\xff\xfe"));
        assert_eq!(n.shutdown_message(), None);
    }

    #[test]
    fn from_decode_error() {
        let e = DecodeError::bad_length(17, "x");
        let n = Notification::from(&e);
        assert_eq!((n.code, n.subcode, &n.data[..]), (1, 2, &[0u8, 17][..]));
    }
}
