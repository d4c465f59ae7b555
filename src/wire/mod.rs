//! # wire — the BGP-4 codec
//!
//! Pure and total: [`decode`] turns one framed message into a [`Message`] or a
//! [`DecodeError`] that maps one-to-one to the NOTIFICATION to send; [`encode`] appends a
//! message to a buffer. Nothing here panics on any input, does I/O or reads a clock.
//!
//! | file | what | RFC |
//! |---|---|---|
//! | `header.rs` | marker, length, type; framing | 4271 §4.1, §6.1; 8654 |
//! | `open.rs` | OPEN, optional parameters | 4271 §4.2, §6.2; 9072 |
//! | `capability.rs` | capabilities | 5492, 4760, 2918, 8950, 8654, 4724, 8538, 6793, 7911, 7313 |
//! | `update.rs` | UPDATE, End-of-RIB, packing | 4271 §4.3, §6.3; 7606; 4724 §2 |
//! | `attribute/` | path attributes | 4271 §5; 1997; 4360; 4456; 4760; 6793; 8092; 2545; 8950 |
//! | `nlri.rs` | prefixes, path identifiers | 4271 §4.3; 7911 |
//! | `notification.rs` | NOTIFICATION, shutdown text | 4271 §4.5; 9003 |
//! | `route_refresh.rs` | ROUTE-REFRESH | 2918; 7313 |
//! | `error.rs` | error codes, RFC 7606 actions | 4271 §6; 4486; 6608; 7606; 7313 |

pub mod attribute;
pub mod capability;
pub mod error;
pub mod family;
#[cfg(test)]
mod fixtures;
pub mod header;
pub mod mutate;
pub mod nlri;
pub mod notification;
pub mod open;
mod parse;
pub mod route_refresh;
pub mod update;

pub use attribute::PathAttributes;
pub use capability::Capability;
pub use error::{AttrError, DecodeError, EncodeError, Rfc7606Action};
pub use family::{Afi, Family, Safi};
pub use header::{Header, MessageType};
pub use nlri::Nlri;
pub use notification::Notification;
pub use open::Open;
pub use route_refresh::RouteRefresh;
pub use update::Update;

use bytes::BytesMut;

/// What the two speakers negotiated, as far as the encoding of messages depends on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// RFC 6793: both sides sent the 4-octet AS capability.
    pub four_octet_as: bool,
    /// 4096, or 65535 with RFC 8654 extended messages on both sides.
    pub max_len: usize,
    /// The peer is in another AS (changes RFC 7606 handling of LOCAL_PREF, ORIGINATOR_ID,
    /// CLUSTER_LIST).
    pub ebgp: bool,
    /// Families in which the peer sends ADD-PATH identifiers to us.
    pub add_path_rx: Vec<Family>,
    /// Families in which we send ADD-PATH identifiers.
    pub add_path_tx: Vec<Family>,
}

impl Default for Ctx {
    /// The context before OPENs are exchanged: 2-octet AS, 4096-octet messages, no ADD-PATH.
    fn default() -> Ctx {
        Ctx {
            four_octet_as: false,
            max_len: header::MAX_LEN,
            ebgp: false,
            add_path_rx: Vec::new(),
            add_path_tx: Vec::new(),
        }
    }
}

impl Ctx {
    pub fn add_path_rx(&self, f: Family) -> bool {
        self.add_path_rx.contains(&f)
    }
    pub fn add_path_tx(&self, f: Family) -> bool {
        self.add_path_tx.contains(&f)
    }
}

// UPDATEs dominate the traffic and are moved once; boxing them would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}

/// Decodes one complete message, header included (`buf` is exactly one message, as framed by
/// [`header::peek_header`]).
pub fn decode(buf: &[u8], ctx: &Ctx) -> Result<Message, DecodeError> {
    let h = match header::peek_header(buf, ctx.max_len)? {
        Some(h) => h,
        None => return Err(DecodeError::bad_length(buf.len() as u16, "message shorter than its header")),
    };
    if h.len != buf.len() {
        return Err(DecodeError::bad_length(
            h.len as u16,
            format!("length field {} but {} octets given", h.len, buf.len()),
        ));
    }
    let body = &buf[header::HEADER_LEN..];
    Ok(match h.kind {
        MessageType::Open => Message::Open(Open::decode(body)?),
        MessageType::Update => Message::Update(Update::decode(body, ctx)?),
        MessageType::Notification => Message::Notification(Notification::decode(body)),
        MessageType::Keepalive => Message::Keepalive,
        MessageType::RouteRefresh => Message::RouteRefresh(RouteRefresh::decode(body, buf)?),
    })
}

/// Appends one message. Fails, leaving `out` as it was, if the message would exceed the
/// maximum size (4096 for OPEN and KEEPALIVE, `ctx.max_len` for the others).
pub fn encode(msg: &Message, ctx: &Ctx, out: &mut BytesMut) -> Result<(), EncodeError> {
    let start = header::put_header(out, msg.kind());
    match msg {
        Message::Open(o) => o.encode_body(out),
        Message::Update(u) => u.encode_body(ctx, out),
        Message::Notification(n) => n.encode_body(out),
        Message::Keepalive => {}
        Message::RouteRefresh(r) => r.encode_body(out),
    }
    let len = out.len() - start;
    let max = match msg {
        Message::Open(_) | Message::Keepalive => header::MAX_LEN,
        _ => ctx.max_len,
    };
    if len > max {
        out.truncate(start);
        return Err(EncodeError::TooLong { len, max });
    }
    header::set_len(out, start);
    Ok(())
}

/// Encodes into a fresh buffer (for tests and one-off messages).
pub fn to_bytes(msg: &Message, ctx: &Ctx) -> Result<bytes::Bytes, EncodeError> {
    let mut b = BytesMut::new();
    encode(msg, ctx, &mut b)?;
    Ok(b.freeze())
}

#[cfg(test)]
mod tests;
