//! Decode errors and the NOTIFICATION each one becomes (RFC 4271 §6, RFC 7606, RFC 7313).
//!
//! A [`DecodeError`] is always fatal for the session: it carries the exact (code, subcode,
//! data) that RFC 4271 §6 prescribes, so the session layer sends it as is. Errors in path
//! attributes that RFC 7606 allows to survive ("treat-as-withdraw", "attribute discard") are not
//! `DecodeError`s: they are recorded on the decoded UPDATE as [`AttrError`]s.

use bytes::Bytes;
use std::fmt;

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header_sub {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5).
pub mod open_sub {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update_sub {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm_sub {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPENSENT: u8 = 1;
    pub const UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486, RFC 8538).
pub mod cease_sub {
    pub const MAX_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    /// RFC 9384: BFD declared the path down.
    pub const BFD_DOWN: u8 = 10;
}

/// ROUTE-REFRESH Message Error subcodes (RFC 7313 §5).
pub mod route_refresh_sub {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// A human name for a (code, subcode) pair, for logs and the CLI.
pub fn describe(code: u8, subcode: u8) -> &'static str {
    match (code, subcode) {
        (1, 1) => "message header error: connection not synchronized",
        (1, 2) => "message header error: bad message length",
        (1, 3) => "message header error: bad message type",
        (1, _) => "message header error",
        (2, 1) => "OPEN error: unsupported version number",
        (2, 2) => "OPEN error: bad peer AS",
        (2, 3) => "OPEN error: bad BGP identifier",
        (2, 4) => "OPEN error: unsupported optional parameter",
        (2, 6) => "OPEN error: unacceptable hold time",
        (2, 7) => "OPEN error: unsupported capability",
        (2, 11) => "OPEN error: role mismatch",
        (2, _) => "OPEN error",
        (3, 1) => "UPDATE error: malformed attribute list",
        (3, 2) => "UPDATE error: unrecognized well-known attribute",
        (3, 3) => "UPDATE error: missing well-known attribute",
        (3, 4) => "UPDATE error: attribute flags error",
        (3, 5) => "UPDATE error: attribute length error",
        (3, 6) => "UPDATE error: invalid ORIGIN attribute",
        (3, 8) => "UPDATE error: invalid NEXT_HOP attribute",
        (3, 9) => "UPDATE error: optional attribute error",
        (3, 10) => "UPDATE error: invalid network field",
        (3, 11) => "UPDATE error: malformed AS_PATH",
        (3, _) => "UPDATE error",
        (4, _) => "hold timer expired",
        (5, 1) => "FSM error: unexpected message in OpenSent",
        (5, 2) => "FSM error: unexpected message in OpenConfirm",
        (5, 3) => "FSM error: unexpected message in Established",
        (5, _) => "FSM error",
        (6, 1) => "cease: maximum number of prefixes reached",
        (6, 2) => "cease: administrative shutdown",
        (6, 3) => "cease: peer de-configured",
        (6, 4) => "cease: administrative reset",
        (6, 5) => "cease: connection rejected",
        (6, 6) => "cease: other configuration change",
        (6, 7) => "cease: connection collision resolution",
        (6, 8) => "cease: out of resources",
        (6, 9) => "cease: hard reset",
        (6, 10) => "cease: BFD down",
        (6, _) => "cease",
        (7, 1) => "ROUTE-REFRESH error: invalid message length",
        (7, _) => "ROUTE-REFRESH error",
        _ => "unknown error code",
    }
}

/// A fatal decode error: the NOTIFICATION to send, and a reason for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub code: u8,
    pub subcode: u8,
    /// The NOTIFICATION data field, exactly as RFC 4271 §6 defines it for this error.
    pub data: Bytes,
    /// What was wrong, for logs. Not sent on the wire.
    pub reason: String,
}

impl DecodeError {
    pub fn new(code: u8, subcode: u8, data: impl Into<Bytes>, reason: impl Into<String>) -> Self {
        DecodeError { code, subcode, data: data.into(), reason: reason.into() }
    }

    /// 1/1: the marker is not all ones.
    pub fn not_synchronized() -> Self {
        Self::new(code::MESSAGE_HEADER, header_sub::CONNECTION_NOT_SYNCHRONIZED, Bytes::new(), "marker is not all ones")
    }

    /// 1/2: data is the erroneous 2-octet Length field.
    pub fn bad_length(len: u16, reason: impl Into<String>) -> Self {
        Self::new(
            code::MESSAGE_HEADER,
            header_sub::BAD_MESSAGE_LENGTH,
            Bytes::copy_from_slice(&len.to_be_bytes()),
            reason,
        )
    }

    /// 1/3: data is the erroneous Type field.
    pub fn bad_type(t: u8) -> Self {
        Self::new(
            code::MESSAGE_HEADER,
            header_sub::BAD_MESSAGE_TYPE,
            Bytes::copy_from_slice(&[t]),
            format!("unknown message type {t}"),
        )
    }

    pub fn open(subcode: u8, data: impl Into<Bytes>, reason: impl Into<String>) -> Self {
        Self::new(code::OPEN_MESSAGE, subcode, data, reason)
    }

    pub fn update(subcode: u8, data: impl Into<Bytes>, reason: impl Into<String>) -> Self {
        Self::new(code::UPDATE_MESSAGE, subcode, data, reason)
    }

    /// 3/1 Malformed Attribute List (no data).
    pub fn malformed_attribute_list(reason: impl Into<String>) -> Self {
        Self::update(update_sub::MALFORMED_ATTRIBUTE_LIST, Bytes::new(), reason)
    }

    /// 3/10 Invalid Network Field (no data).
    pub fn invalid_network_field(reason: impl Into<String>) -> Self {
        Self::update(update_sub::INVALID_NETWORK_FIELD, Bytes::new(), reason)
    }

    /// Short text of the (code, subcode) pair.
    pub fn describe(&self) -> &'static str {
        describe(self.code, self.subcode)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{}): {}", self.describe(), self.code, self.subcode, self.reason)
    }
}

impl std::error::Error for DecodeError {}

/// RFC 7606 §2: how a malformed attribute that does not reset the session is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rfc7606Action {
    /// The attribute is dropped; the UPDATE is processed without it.
    AttributeDiscard,
    /// Every NLRI in the UPDATE (IPv4 and MP_REACH) is handled as withdrawn.
    TreatAsWithdraw,
}

/// A non-fatal attribute error found while decoding an UPDATE (RFC 7606).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttrError {
    /// Type code of the attribute at fault (0 when the error is about the attribute list).
    pub type_code: u8,
    /// The RFC 4271 §6.3 subcode this error had before RFC 7606, for logs and counters.
    pub subcode: u8,
    pub action: Rfc7606Action,
    pub reason: String,
}

/// Error from `encode`: the message cannot be emitted within the negotiated size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {len} octets exceeds the maximum of {max}")]
    TooLong { len: usize, max: usize },
    #[error("{0}")]
    Invalid(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_errors_carry_rfc4271_data() {
        let e = DecodeError::bad_length(5000, "too long");
        assert_eq!((e.code, e.subcode), (1, 2));
        assert_eq!(&e.data[..], &[0x13, 0x88]);
        let e = DecodeError::bad_type(9);
        assert_eq!((e.code, e.subcode, &e.data[..]), (1, 3, &[9u8][..]));
        let e = DecodeError::not_synchronized();
        assert_eq!((e.code, e.subcode, e.data.len()), (1, 1, 0));
    }

    #[test]
    fn every_subcode_has_a_name() {
        for (c, s) in [(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (2, 3), (2, 4), (2, 6), (2, 7)] {
            assert!(!describe(c, s).ends_with("error"), "{c}/{s}");
        }
        for s in [1, 2, 3, 4, 5, 6, 8, 9, 10, 11] {
            assert!(describe(3, s).starts_with("UPDATE error: "), "3/{s}");
        }
        assert_eq!(describe(4, 0), "hold timer expired");
        assert_eq!(describe(6, 2), "cease: administrative shutdown");
    }
}
