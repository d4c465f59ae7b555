//! AS_PATH (RFC 4271 §4.3, §5.1.2) and AS4_PATH (RFC 6793 §3, §4.2.3).
//!
//! ```text
//! +-----------------------+-----------------------+------------------------------+
//! | Segment Type (1 octet)| Segment Length (1 oct)| Segment Value: Length ASNs,  |
//! | 1 SET, 2 SEQUENCE,    | number of ASNs        | 2 octets each, or 4 octets   |
//! | 3 CONFED_SEQ, 4 CONFED_SET                    | when 4-octet AS is in use    |
//! +-----------------------+-----------------------+------------------------------+
//! ```
//! kbgp keeps AS numbers as 4-octet values everywhere. The codec narrows them to AS_TRANS and
//! adds AS4_PATH when talking to a 2-octet speaker, and merges AS4_PATH back when decoding.

use crate::wire::open::AS_TRANS;
use bytes::{BufMut, BytesMut};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentType {
    Set,
    Sequence,
    ConfedSequence,
    ConfedSet,
}

impl SegmentType {
    fn from_u8(v: u8) -> Option<SegmentType> {
        Some(match v {
            1 => SegmentType::Set,
            2 => SegmentType::Sequence,
            3 => SegmentType::ConfedSequence,
            4 => SegmentType::ConfedSet,
            _ => return None,
        })
    }
    fn to_u8(self) -> u8 {
        match self {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: SegmentType,
    pub asns: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// An empty path (what iBGP originates).
    pub fn empty() -> AsPath {
        AsPath::default()
    }

    /// A single AS_SEQUENCE.
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> AsPath {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::empty();
        }
        AsPath { segments: vec![AsSegment { kind: SegmentType::Sequence, asns }] }
    }

    /// Prepends `asn` (RFC 4271 §5.1.2: to the leading AS_SEQUENCE, or a new one).
    pub fn prepend(&mut self, asn: u32) {
        match self.segments.first_mut() {
            Some(s) if s.kind == SegmentType::Sequence && s.asns.len() < 255 => s.asns.insert(0, asn),
            _ => self.segments.insert(0, AsSegment { kind: SegmentType::Sequence, asns: vec![asn] }),
        }
    }

    /// Path length for route selection: an AS_SET counts 1, confederation segments 0 (RFC 5065).
    pub fn count(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                _ => 0,
            })
            .sum()
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// Every AS number in order, flattened (for display and tests).
    pub fn asns(&self) -> Vec<u32> {
        self.segments.iter().flat_map(|s| s.asns.iter().copied()).collect()
    }

    /// True when some AS number does not fit in 2 octets.
    pub fn needs_as4(&self) -> bool {
        self.segments.iter().any(|s| s.asns.iter().any(|&a| a > u16::MAX as u32))
    }

    /// Decodes an AS_PATH (or AS4_PATH with `four_octet`). Errors follow RFC 7606 §7.2:
    /// unknown segment type, zero-length segment, overrun, or a single trailing octet.
    pub fn decode(mut buf: &[u8], four_octet: bool) -> Result<AsPath, String> {
        let width = if four_octet { 4 } else { 2 };
        let mut segments = Vec::new();
        while !buf.is_empty() {
            if buf.len() < 2 {
                return Err("one octet left after the last segment".into());
            }
            let kind = SegmentType::from_u8(buf[0]).ok_or_else(|| format!("segment type {}", buf[0]))?;
            let n = buf[1] as usize;
            if n == 0 {
                return Err("segment of length zero".into());
            }
            let body =
                buf.get(2..2 + n * width).ok_or_else(|| format!("segment of {n} ASNs overruns the attribute"))?;
            let asns = body
                .chunks_exact(width)
                .map(|c| {
                    if four_octet {
                        u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                    } else {
                        u16::from_be_bytes([c[0], c[1]]) as u32
                    }
                })
                .collect();
            segments.push(AsSegment { kind, asns });
            buf = &buf[2 + n * width..];
        }
        Ok(AsPath { segments })
    }

    /// Appends the attribute value. With 2-octet encoding, AS numbers above 65535 become
    /// AS_TRANS. Segments longer than 255 ASNs are split.
    pub fn encode(&self, four_octet: bool, out: &mut BytesMut) {
        for s in &self.segments {
            for chunk in s.asns.chunks(255) {
                out.put_u8(s.kind.to_u8());
                out.put_u8(chunk.len() as u8);
                for &a in chunk {
                    if four_octet {
                        out.put_u32(a);
                    } else {
                        out.put_u16(u16::try_from(a).unwrap_or(AS_TRANS));
                    }
                }
            }
        }
    }

    /// Reconstructs the real path from an AS_PATH received from a 2-octet speaker and its
    /// AS4_PATH (RFC 6793 §4.2.3): keep the leading ASNs of AS_PATH that AS4_PATH does not
    /// cover, then AS4_PATH. If AS4_PATH is the longer of the two it is ignored.
    pub fn merge_as4(&self, as4: &AsPath) -> AsPath {
        let (n, m) = (self.count(), as4.count());
        if n < m {
            return self.clone();
        }
        let mut keep = n - m;
        let mut segments = Vec::new();
        for s in &self.segments {
            if keep == 0 {
                break;
            }
            match s.kind {
                SegmentType::Sequence => {
                    let take = keep.min(s.asns.len());
                    segments.push(AsSegment { kind: s.kind, asns: s.asns[..take].to_vec() });
                    keep -= take;
                }
                SegmentType::Set => {
                    segments.push(s.clone());
                    keep -= 1;
                }
                _ => segments.push(s.clone()),
            }
        }
        segments.extend(as4.segments.iter().cloned());
        AsPath { segments }
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let list = s.asns.iter().map(|a| a.to_string()).collect::<Vec<_>>();
            match s.kind {
                SegmentType::Sequence => f.write_str(&list.join(" "))?,
                SegmentType::Set => write!(f, "{{{}}}", list.join(","))?,
                SegmentType::ConfedSequence => write!(f, "({})", list.join(" "))?,
                SegmentType::ConfedSet => write!(f, "[{}]", list.join(","))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_and_four_octet_fixtures() {
        let p = AsPath::sequence([65005, 65100]);
        let mut b = BytesMut::new();
        p.encode(false, &mut b);
        assert_eq!(&b[..], &[2, 2, 0xfd, 0xed, 0xfe, 0x4c]);
        assert_eq!(AsPath::decode(&b, false).unwrap(), p);
        let p = AsPath::sequence([4200000001]);
        let mut b = BytesMut::new();
        p.encode(true, &mut b);
        assert_eq!(&b[..], &[2, 1, 0xfa, 0x56, 0xea, 0x01]);
        assert_eq!(AsPath::decode(&b, true).unwrap(), p);
        let mut b = BytesMut::new();
        p.encode(false, &mut b);
        assert_eq!(&b[..], &[2, 1, 0x5b, 0xa0], "AS_TRANS in a 2-octet path");
    }

    #[test]
    fn long_sequences_are_split() {
        let p = AsPath::sequence(1..=300);
        let mut b = BytesMut::new();
        p.encode(true, &mut b);
        let back = AsPath::decode(&b, true).unwrap();
        assert_eq!(back.segments.len(), 2);
        assert_eq!(back.asns(), p.asns());
    }

    #[test]
    fn malformed_paths_rfc7606() {
        assert!(AsPath::decode(&[2], true).is_err(), "single octet");
        assert!(AsPath::decode(&[2, 0], true).is_err(), "zero length");
        assert!(AsPath::decode(&[5, 1, 0, 0, 0, 1], true).is_err(), "bad type");
        assert!(AsPath::decode(&[2, 2, 0, 0, 0, 1], true).is_err(), "overrun");
        assert!(AsPath::decode(&[2, 1, 0, 1, 0], false).is_err(), "trailing octet");
    }

    #[test]
    fn as4_merge() {
        // Old speaker path: 65001 AS_TRANS AS_TRANS ; AS4_PATH: 4200000001 4200000002
        let old = AsPath::sequence([65001, 23456, 23456]);
        let as4 = AsPath::sequence([4200000001, 4200000002]);
        assert_eq!(old.merge_as4(&as4).asns(), vec![65001, 4200000001, 4200000002]);
        // AS4_PATH longer than AS_PATH: ignored.
        assert_eq!(AsPath::sequence([23456]).merge_as4(&as4).asns(), vec![23456]);
    }

    #[test]
    fn prepend_and_display() {
        let mut p = AsPath::empty();
        p.prepend(65010);
        p.prepend(65005);
        assert_eq!(p.to_string(), "65005 65010");
        let p = AsPath {
            segments: vec![
                AsSegment { kind: SegmentType::Sequence, asns: vec![1, 2] },
                AsSegment { kind: SegmentType::Set, asns: vec![3, 4] },
            ],
        };
        assert_eq!(p.to_string(), "1 2 {3,4}");
        assert_eq!(p.count(), 3);
    }
}
