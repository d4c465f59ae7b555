//! Message header and framing (RFC 4271 §4.1, §6.1; RFC 8654 for the extended size).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! |                     Marker (16 octets, all ones)              |
//! |                                                               |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//! Length counts the whole message, header included: 19..=4096, or up to 65535 for UPDATE,
//! NOTIFICATION and ROUTE-REFRESH once extended messages are negotiated (RFC 8654 §3; OPEN and
//! KEEPALIVE stay within 4096).

use super::error::DecodeError;

pub const MARKER: [u8; 16] = [0xff; 16];
pub const HEADER_LEN: usize = 19;
/// RFC 4271 maximum message size.
pub const MAX_LEN: usize = 4096;
/// RFC 8654 maximum message size.
pub const MAX_EXTENDED_LEN: usize = 65535;

/// Message type code points (RFC 4271 §4.1, RFC 2918 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open,
    Update,
    Notification,
    Keepalive,
    RouteRefresh,
}

impl MessageType {
    pub fn from_u8(v: u8) -> Option<MessageType> {
        Some(match v {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }
    pub fn to_u8(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }
    /// Lower-case name, used as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Open => "open",
            MessageType::Update => "update",
            MessageType::Notification => "notification",
            MessageType::Keepalive => "keepalive",
            MessageType::RouteRefresh => "route_refresh",
        }
    }
    /// Smallest valid length of a message of this type, header included.
    pub fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => 19,
            // RFC 7313: a wrong ROUTE-REFRESH length is its own error (7/1), checked in decode.
            MessageType::RouteRefresh => 19,
        }
    }
}

/// A validated header: the type and the total length of the message it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: MessageType,
    pub len: usize,
}

/// Looks at the start of a receive buffer. `Ok(None)`: fewer than 19 octets so far.
/// `max_len` is the negotiated maximum (4096 or 65535); OPEN and KEEPALIVE are held to 4096.
/// Errors are the RFC 4271 §6.1 header errors, with their data fields.
pub fn peek_header(buf: &[u8], max_len: usize) -> Result<Option<Header>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16] != MARKER {
        return Err(DecodeError::not_synchronized());
    }
    let raw_len = u16::from_be_bytes([buf[16], buf[17]]);
    let len = raw_len as usize;
    let kind = MessageType::from_u8(buf[18]).ok_or_else(|| DecodeError::bad_type(buf[18]))?;
    let max = match kind {
        MessageType::Open | MessageType::Keepalive => MAX_LEN,
        _ => max_len,
    };
    if len < HEADER_LEN || len > max {
        return Err(DecodeError::bad_length(raw_len, format!("length {len} outside 19..={max}")));
    }
    if len < kind.min_len() {
        return Err(DecodeError::bad_length(
            raw_len,
            format!("{} of {len} octets is shorter than {}", kind.name(), kind.min_len()),
        ));
    }
    if kind == MessageType::Keepalive && len != HEADER_LEN {
        return Err(DecodeError::bad_length(raw_len, "KEEPALIVE must be 19 octets"));
    }
    Ok(Some(Header { kind, len }))
}

/// Writes a header with a placeholder length; returns the offset to patch with [`set_len`].
pub(crate) fn put_header(out: &mut bytes::BytesMut, kind: MessageType) -> usize {
    let start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0, kind.to_u8()]);
    start
}

/// Patches the length of the message that starts at `start` to end at `out.len()`.
pub(crate) fn set_len(out: &mut bytes::BytesMut, start: usize) {
    let len = (out.len() - start) as u16;
    out[start + 16..start + 18].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(len: u16, t: u8) -> Vec<u8> {
        let mut v = MARKER.to_vec();
        v.extend_from_slice(&len.to_be_bytes());
        v.push(t);
        v
    }

    #[test]
    fn short_buffer_waits() {
        assert_eq!(peek_header(&[0xff; 18], MAX_LEN), Ok(None));
    }

    #[test]
    fn keepalive_header() {
        assert_eq!(peek_header(&hdr(19, 4), MAX_LEN), Ok(Some(Header { kind: MessageType::Keepalive, len: 19 })));
    }

    #[test]
    fn bad_marker_is_1_1() {
        let mut h = hdr(19, 4);
        h[3] = 0;
        let e = peek_header(&h, MAX_LEN).unwrap_err();
        assert_eq!((e.code, e.subcode), (1, 1));
    }

    #[test]
    fn bad_lengths_are_1_2_with_the_length_as_data() {
        for (len, t) in [(18u16, 2u8), (4097, 2), (20, 4), (28, 1), (22, 2), (20, 3)] {
            let e = peek_header(&hdr(len, t), MAX_LEN).unwrap_err();
            assert_eq!((e.code, e.subcode), (1, 2), "len {len} type {t}");
            assert_eq!(&e.data[..], &len.to_be_bytes(), "len {len} type {t}");
        }
    }

    #[test]
    fn extended_length_only_for_update_notification_refresh() {
        assert!(peek_header(&hdr(5000, 2), MAX_EXTENDED_LEN).unwrap().is_some());
        assert!(peek_header(&hdr(5000, 3), MAX_EXTENDED_LEN).unwrap().is_some());
        assert!(peek_header(&hdr(5000, 1), MAX_EXTENDED_LEN).is_err());
    }

    #[test]
    fn bad_type_is_1_3() {
        let e = peek_header(&hdr(19, 6), MAX_LEN).unwrap_err();
        assert_eq!((e.code, e.subcode, &e.data[..]), (1, 3, &[6u8][..]));
    }
}
