//! COMMUNITIES (RFC 1997), EXTENDED COMMUNITIES (RFC 4360) and LARGE_COMMUNITY (RFC 8092).
//!
//! ```text
//! Community:       | AS (2 octets) | value (2 octets) |
//! Extended:        | Type (1) | Sub-type (1) | Value (6) |
//! Large community: | Global Administrator (4) | Local Data 1 (4) | Local Data 2 (4) |
//! ```

use std::fmt;
use std::str::FromStr;

/// A standard community, `asn:value` or a well-known name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

/// Well-known communities (RFC 1997, RFC 3765, RFC 8326, RFC 7999, RFC 9494, RFC 7611, and
/// the IANA registry), by the names Cilium's `wellKnown` enum uses; `graceful-shutdown` is
/// RFC 8326's name for `planned-shut`.
const WELL_KNOWN: &[(&str, u32)] = &[
    ("internet", 0x0000_0000),
    ("planned-shut", 0xFFFF_0000),
    ("graceful-shutdown", 0xFFFF_0000),
    ("accept-own", 0xFFFF_0001),
    ("route-filter-translated-v4", 0xFFFF_0002),
    ("route-filter-v4", 0xFFFF_0003),
    ("route-filter-translated-v6", 0xFFFF_0004),
    ("route-filter-v6", 0xFFFF_0005),
    ("llgr-stale", 0xFFFF_0006),
    ("no-llgr", 0xFFFF_0007),
    ("blackhole", 0xFFFF_029A),
    ("no-export", 0xFFFF_FF01),
    ("no-advertise", 0xFFFF_FF02),
    ("no-export-subconfed", 0xFFFF_FF03),
    ("no-peer", 0xFFFF_FF04),
];

impl Community {
    /// GRACEFUL_SHUTDOWN, 65535:0 (RFC 8326 §5).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);

    /// The well-known name of this community, if it has one.
    pub fn well_known_name(&self) -> Option<&'static str> {
        WELL_KNOWN.iter().find(|(_, v)| *v == self.0).map(|(n, _)| *n)
    }

    /// Looks a well-known community up by name (`no-export`, `no-advertise`, ...).
    pub fn well_known(name: &str) -> Option<Community> {
        let name = name.to_ascii_lowercase().replace('_', "-");
        WELL_KNOWN.iter().find(|(n, _)| *n == name).map(|(_, v)| Community(*v))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

impl FromStr for Community {
    type Err = String;
    /// `65000:100`, a single 32-bit number, or a well-known name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(c) = Community::well_known(s) {
            return Ok(c);
        }
        if let Some((a, v)) = s.split_once(':') {
            let a: u16 = a.parse().map_err(|_| format!("{s:?}: AS part must be 0..=65535"))?;
            let v: u16 = v.parse().map_err(|_| format!("{s:?}: value part must be 0..=65535"))?;
            return Ok(Community(((a as u32) << 16) | v as u32));
        }
        s.parse::<u32>()
            .map(Community)
            .map_err(|_| format!("{s:?}: expected ASN:VALUE (each 0..=65535), a 32-bit number, or a well-known name"))
    }
}

/// An extended community, kept as its 8 octets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtCommunity(pub [u8; 8]);

impl fmt::Display for ExtCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        match (b[0] & 0x3f, b[1]) {
            // Two-octet AS specific route target / origin (RFC 4360 §3.1).
            (0x00, 0x02) | (0x00, 0x03) => write!(
                f,
                "{}:{}:{}",
                if b[1] == 2 { "rt" } else { "soo" },
                u16::from_be_bytes([b[2], b[3]]),
                u32::from_be_bytes([b[4], b[5], b[6], b[7]])
            ),
            _ => write!(f, "0x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        }
    }
}

/// A large community `global:local1:local2` (RFC 8092).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

impl FromStr for LargeCommunity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || format!("{s:?}: expected GLOBAL:LOCAL1:LOCAL2, each 0..=4294967295");
        if parts.len() != 3 {
            return Err(bad());
        }
        let n = |i: usize| parts[i].parse::<u32>().map_err(|_| bad());
        Ok(LargeCommunity { global: n(0)?, local1: n(1)?, local2: n(2)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        assert_eq!("65000:100".parse::<Community>().unwrap(), Community(0xFDE8_0064));
        assert_eq!(Community(0xFDE8_0064).to_string(), "65000:100");
        assert_eq!("no-export".parse::<Community>().unwrap(), Community::NO_EXPORT);
        assert_eq!("NO_ADVERTISE".parse::<Community>().unwrap(), Community::NO_ADVERTISE);
        assert_eq!(Community::NO_EXPORT.well_known_name(), Some("no-export"));
        assert!("65536:1".parse::<Community>().is_err());
        assert!("a:b".parse::<Community>().is_err());
        let l: LargeCommunity = "4200000001:1:2".parse().unwrap();
        assert_eq!(l, LargeCommunity { global: 4200000001, local1: 1, local2: 2 });
        assert_eq!(l.to_string(), "4200000001:1:2");
        assert!("1:2".parse::<LargeCommunity>().is_err());
        assert_eq!(ExtCommunity([0, 2, 0xfd, 0xe8, 0, 0, 0, 7]).to_string(), "rt:65000:7");
    }
}
