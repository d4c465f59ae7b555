//! The BFD Control packet (RFC 5880 §4.1) and the receive checks that need no session
//! (RFC 5880 §6.8.6, the first seven rules).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       My Discriminator                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Your Discriminator                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Desired Min TX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Required Min RX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |   (only with the A bit)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Intervals are in microseconds. kbgp sends no authentication section and, as §6.8.6
//! requires of a session without authentication, discards packets that carry one.

use std::fmt;

/// Octets of a Control packet without authentication.
pub const LEN: usize = 24;
/// The protocol version this implements.
pub const VERSION: u8 = 1;

/// `Sta`: a session state (RFC 5880 §4.1, §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `Diag`: why the sender's session last went down (RFC 5880 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Diag(pub u8);

impl Diag {
    pub const NONE: Diag = Diag(0);
    pub const DETECTION_TIME_EXPIRED: Diag = Diag(1);
    pub const ECHO_FAILED: Diag = Diag(2);
    pub const NEIGHBOR_SIGNALED_DOWN: Diag = Diag(3);
    pub const FORWARDING_PLANE_RESET: Diag = Diag(4);
    pub const PATH_DOWN: Diag = Diag(5);
    pub const CONCATENATED_PATH_DOWN: Diag = Diag(6);
    pub const ADMINISTRATIVELY_DOWN: Diag = Diag(7);
    pub const REVERSE_CONCATENATED_PATH_DOWN: Diag = Diag(8);

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "no diagnostic",
            1 => "control detection time expired",
            2 => "echo function failed",
            3 => "neighbor signaled session down",
            4 => "forwarding plane reset",
            5 => "path down",
            6 => "concatenated path down",
            7 => "administratively down",
            8 => "reverse concatenated path down",
            _ => "unknown diagnostic",
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One Control packet, without its authentication section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub diag: Diag,
    pub state: State,
    /// P: the sender asks for a packet with F set (a Poll Sequence, §6.5).
    pub poll: bool,
    /// F: the answer to a P.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane (RFC 5882 §4.3).
    pub control_plane_independent: bool,
    /// D: Demand mode (kbgp never asks for it).
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    /// Microseconds.
    pub desired_min_tx: u32,
    /// Microseconds; 0: the sender wants no packets.
    pub required_min_rx: u32,
    /// Microseconds; 0: no Echo packets (kbgp sends none).
    pub required_min_echo_rx: u32,
}

/// Why a datagram is not a Control packet kbgp takes (RFC 5880 §6.8.6): it is discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketError {
    Short(usize),
    Version(u8),
    /// The Length field is below the minimum or above the datagram.
    Length {
        field: u8,
        datagram: usize,
    },
    ZeroDetectMult,
    Multipoint,
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while the sender's state is Init or Up.
    ZeroYourDiscriminator(State),
    /// An authentication section, and kbgp's sessions have none.
    Authenticated,
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::Short(n) => write!(f, "{n} octets, a Control packet has at least {LEN}"),
            PacketError::Version(v) => write!(f, "version {v}, not {VERSION}"),
            PacketError::Length { field, datagram } => {
                write!(f, "Length field {field} does not fit a datagram of {datagram} octets")
            }
            PacketError::ZeroDetectMult => f.write_str("Detect Mult is zero"),
            PacketError::Multipoint => f.write_str("the Multipoint bit is set"),
            PacketError::ZeroMyDiscriminator => f.write_str("My Discriminator is zero"),
            PacketError::ZeroYourDiscriminator(s) => write!(f, "Your Discriminator is zero in state {s}"),
            PacketError::Authenticated => f.write_str("authenticated, and the session has no authentication"),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Packet {
    /// Decodes one datagram, with the checks of §6.8.6 that need no session.
    pub fn decode(b: &[u8]) -> Result<Packet, PacketError> {
        if b.len() < LEN {
            return Err(PacketError::Short(b.len()));
        }
        let version = b[0] >> 5;
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let flags = b[1];
        let auth = flags & 0x04 != 0;
        let length = b[3];
        let min = if auth { LEN + 2 } else { LEN };
        if (length as usize) < min || length as usize > b.len() {
            return Err(PacketError::Length { field: length, datagram: b.len() });
        }
        let p = Packet {
            diag: Diag(b[0] & 0x1f),
            state: State::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            control_plane_independent: flags & 0x08 != 0,
            demand: flags & 0x02 != 0,
            detect_mult: b[2],
            my_discriminator: u32_at(b, 4),
            your_discriminator: u32_at(b, 8),
            desired_min_tx: u32_at(b, 12),
            required_min_rx: u32_at(b, 16),
            required_min_echo_rx: u32_at(b, 20),
        };
        if p.detect_mult == 0 {
            return Err(PacketError::ZeroDetectMult);
        }
        if flags & 0x01 != 0 {
            return Err(PacketError::Multipoint);
        }
        if p.my_discriminator == 0 {
            return Err(PacketError::ZeroMyDiscriminator);
        }
        if p.your_discriminator == 0 && matches!(p.state, State::Init | State::Up) {
            return Err(PacketError::ZeroYourDiscriminator(p.state));
        }
        if auth {
            return Err(PacketError::Authenticated);
        }
        Ok(p)
    }

    /// The 24 octets of this packet.
    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (VERSION << 5) | (self.diag.0 & 0x1f);
        b[1] = ((self.state as u8) << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        for (at, v) in [
            (4, self.my_discriminator),
            (8, self.your_discriminator),
            (12, self.desired_min_tx),
            (16, self.required_min_rx),
            (20, self.required_min_echo_rx),
        ] {
            b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Packet {
        Packet {
            diag: Diag::DETECTION_TIME_EXPIRED,
            state: State::Init,
            poll: true,
            final_: false,
            control_plane_independent: true,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x0102_0304,
            your_discriminator: 9,
            desired_min_tx: 300_000,
            required_min_rx: 250_000,
            required_min_echo_rx: 0,
        }
    }

    #[test]
    fn encodes_the_layout_of_rfc_5880_and_decodes_it_back() {
        let b = sample().encode();
        assert_eq!(b[0], 0x21, "version 1, diag 1");
        assert_eq!(b[1], 0b1010_1000, "Init, P, C");
        assert_eq!((b[2], b[3]), (3, 24));
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[12..16], &300_000u32.to_be_bytes());
        assert_eq!(Packet::decode(&b), Ok(sample()));
        // Trailing octets past Length are not the packet's.
        let mut long = b.to_vec();
        long.extend([0xff; 8]);
        assert_eq!(Packet::decode(&long), Ok(sample()));
    }

    #[test]
    fn each_session_less_rule_of_6_8_6_discards() {
        let good = sample().encode();
        let with = |f: &dyn Fn(&mut [u8; LEN])| {
            let mut b = good;
            f(&mut b);
            Packet::decode(&b)
        };
        assert_eq!(Packet::decode(&good[..20]), Err(PacketError::Short(20)));
        assert_eq!(with(&|b| b[0] = 0x41), Err(PacketError::Version(2)));
        assert_eq!(with(&|b| b[3] = 23), Err(PacketError::Length { field: 23, datagram: 24 }));
        assert_eq!(with(&|b| b[3] = 30), Err(PacketError::Length { field: 30, datagram: 24 }));
        assert_eq!(with(&|b| b[2] = 0), Err(PacketError::ZeroDetectMult));
        assert_eq!(with(&|b| b[1] |= 1), Err(PacketError::Multipoint));
        assert_eq!(with(&|b| b[4..8].fill(0)), Err(PacketError::ZeroMyDiscriminator));
        assert_eq!(with(&|b| b[8..12].fill(0)), Err(PacketError::ZeroYourDiscriminator(State::Init)));
        let mut auth = good.to_vec();
        auth[1] |= 0x04;
        auth[3] = 26;
        auth.extend([1, 2]);
        assert_eq!(Packet::decode(&auth), Err(PacketError::Authenticated));
        // Down with Your Discriminator zero is the first packet of a session: fine.
        assert!(
            with(&|b| {
                b[8..12].fill(0);
                b[1] = (State::Down as u8) << 6;
            })
            .is_ok()
        );
    }

    #[test]
    fn any_datagram_decodes_or_is_refused_without_panicking() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..20_000 {
            let len = n % 40;
            let b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if let Ok(p) = Packet::decode(&b) {
                assert_eq!(Packet::decode(&p.encode()), Ok(p));
            }
        }
    }
}
