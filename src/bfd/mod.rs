//! # bfd — Bidirectional Forwarding Detection, without sockets or clocks
//!
//! | file | what | RFC |
//! |---|---|---|
//! | `packet.rs` | the Control packet, its layout and the session-less receive checks | 5880 §4.1, §6.8.6 |
//! | `session.rs` | one session: states, timers, Poll Sequence, detection | 5880 §6; 5882 §3.2 |
//!
//! The UDP side (port 3784, single hop, RFC 5881; port 4784, multihop, RFC 5883; source
//! ports 49152–65535; TTL 255 out and checked in) is `daemon/bfd.rs`. Each BGP peer with
//! `bfd` owns one [`Session`]; `session::Peer` turns its state changes into BGP decisions.

pub mod packet;
pub mod session;

pub use packet::{Diag, Packet, PacketError, State};
pub use session::{Config, Session, Transition};

/// UDP port of single-hop BFD Control packets (RFC 5881 §4).
pub const PORT_SINGLE_HOP: u16 = 3784;
/// UDP port of multihop BFD Control packets (RFC 5883 §5).
pub const PORT_MULTIHOP: u16 = 4784;
/// Source ports BFD Control packets come from (RFC 5881 §4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
