//! Address families: AFI (IANA "Address Family Numbers") and SAFI (RFC 4760 §6).
//!
//! Code points are open enums: an unknown value decodes to `Unknown(n)` and encodes back to `n`,
//! so a capability or attribute naming a family kbgp does not speak never fails to decode.

use std::fmt;

/// Address Family Identifier, 2 octets on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    Ipv4,
    Ipv6,
    Unknown(u16),
}

impl Afi {
    pub fn from_u16(v: u16) -> Afi {
        match v {
            1 => Afi::Ipv4,
            2 => Afi::Ipv6,
            n => Afi::Unknown(n),
        }
    }
    pub fn to_u16(self) -> u16 {
        match self {
            Afi::Ipv4 => 1,
            Afi::Ipv6 => 2,
            Afi::Unknown(n) => n,
        }
    }
}

/// Subsequent Address Family Identifier, 1 octet on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Safi {
    Unicast,
    Multicast,
    Unknown(u8),
}

impl Safi {
    pub fn from_u8(v: u8) -> Safi {
        match v {
            1 => Safi::Unicast,
            2 => Safi::Multicast,
            n => Safi::Unknown(n),
        }
    }
    pub fn to_u8(self) -> u8 {
        match self {
            Safi::Unicast => 1,
            Safi::Multicast => 2,
            Safi::Unknown(n) => n,
        }
    }
}

/// An (AFI, SAFI) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    pub afi: Afi,
    pub safi: Safi,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family { afi: Afi::Ipv4, safi: Safi::Unicast };
    pub const IPV6_UNICAST: Family = Family { afi: Afi::Ipv6, safi: Safi::Unicast };

    pub fn new(afi: Afi, safi: Safi) -> Family {
        Family { afi, safi }
    }

    /// The family of a unicast prefix.
    pub fn of_prefix(p: &ipnet::IpNet) -> Family {
        match p {
            ipnet::IpNet::V4(_) => Family::IPV4_UNICAST,
            ipnet::IpNet::V6(_) => Family::IPV6_UNICAST,
        }
    }

    /// Short label used in metrics and logs: `ipv4`, `ipv6`, or `afi/safi` numbers.
    pub fn label(&self) -> String {
        match (self.afi, self.safi) {
            (Afi::Ipv4, Safi::Unicast) => "ipv4".into(),
            (Afi::Ipv6, Safi::Unicast) => "ipv6".into(),
            (a, s) => format!("{}/{}", a.to_u16(), s.to_u8()),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.afi, self.safi) {
            (Afi::Ipv4, Safi::Unicast) => f.write_str("ipv4-unicast"),
            (Afi::Ipv6, Safi::Unicast) => f.write_str("ipv6-unicast"),
            (a, s) => write!(f, "afi {} safi {}", a.to_u16(), s.to_u8()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_points_round_trip() {
        for v in [0u16, 1, 2, 25, 65535] {
            assert_eq!(Afi::from_u16(v).to_u16(), v);
        }
        for v in [0u8, 1, 2, 4, 128, 255] {
            assert_eq!(Safi::from_u8(v).to_u8(), v);
        }
        assert_eq!(Afi::from_u16(2), Afi::Ipv6);
        assert_eq!(Safi::from_u8(1), Safi::Unicast);
        assert_eq!(Family::IPV6_UNICAST.label(), "ipv6");
        assert_eq!(Family::new(Afi::Unknown(25), Safi::Unknown(70)).label(), "25/70");
    }
}
