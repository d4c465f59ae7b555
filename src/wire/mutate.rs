//! A structure-aware generator of BGP messages for fuzzing: valid OPEN, UPDATE, NOTIFICATION,
//! ROUTE-REFRESH and KEEPALIVE messages are built field by field (each field remembers where
//! it is and what it is: a length, flags, a code, data), then mutated where decoders go
//! wrong: lengths off by one, zero or maximal; flags flipped; codes swapped for known or
//! unknown ones; prefix lengths beyond the family; fields cut, repeated or dropped. Random
//! bytes almost never get past the marker and the length; these reach every error path of
//! RFC 4271 §6 and RFC 7606.
//!
//! Used by the oracle in `session::fuzz` (its bounded run is a test), the libFuzzer target
//! (fuzz/fuzz_targets/structured.rs) and the long run (`examples/fuzz_wire.rs`). No
//! dependency: the PRNG is SplitMix64, so every run is reproducible from its seed.

use super::attribute::{code as attr, flag};
use super::header::MessageType;

/// SplitMix64: small, fast, and enough for picking fields.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len())]
    }
}

/// What a field of a built message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A length (or count) of `width` octets.
    Len(u8),
    /// Attribute flags.
    Flags,
    /// A type, code or subtype.
    Code,
    /// Anything else.
    Data,
}

/// One field: where it is in the message and what it is.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub at: usize,
    pub len: usize,
    pub kind: Kind,
}

/// A message and the map of its fields.
#[derive(Clone, Debug, Default)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub fields: Vec<Field>,
}

impl Built {
    fn put(&mut self, kind: Kind, b: &[u8]) {
        self.fields.push(Field { at: self.bytes.len(), len: b.len(), kind });
        self.bytes.extend_from_slice(b);
    }

    fn u8(&mut self, kind: Kind, v: u8) {
        self.put(kind, &[v]);
    }

    fn u16(&mut self, kind: Kind, v: u16) {
        self.put(kind, &v.to_be_bytes());
    }

    fn data(&mut self, b: &[u8]) {
        self.put(Kind::Data, b);
    }

    /// A length field of `width` octets to be filled by [`Built::close`].
    fn open_len(&mut self, width: u8) -> (usize, usize) {
        let at = self.bytes.len();
        self.put(Kind::Len(width), &vec![0; width as usize]);
        (at, width as usize)
    }

    /// Fills the length opened at `l` with the octets written since.
    fn close(&mut self, l: (usize, usize)) {
        let n = self.bytes.len() - l.0 - l.1;
        match l.1 {
            1 => self.bytes[l.0] = n.min(255) as u8,
            _ => self.bytes[l.0..l.0 + 2].copy_from_slice(&(n.min(65535) as u16).to_be_bytes()),
        }
    }
}

/// How the generated messages are meant to be read: the decoder must be given the same
/// (4-octet AS numbers in AS_PATH, ADD-PATH identifiers in IPv4 NLRI).
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    pub four_octet_as: bool,
    pub add_path_v4: bool,
}

fn prefix(b: &mut Built, r: &mut Rng, v6: bool, add_path: bool) {
    if add_path {
        b.data(&(r.next_u64() as u32).to_be_bytes());
    }
    let max = if v6 { 128 } else { 32 };
    let len = match r.below(4) {
        0 => max,
        1 => 0,
        _ => r.below(max + 1),
    };
    b.u8(Kind::Len(1), len as u8);
    let octets: Vec<u8> = (0..len.div_ceil(8)).map(|_| r.byte()).collect();
    b.data(&octets);
}

fn as_path(b: &mut Built, r: &mut Rng, four: bool) {
    for _ in 0..r.below(3) {
        b.u8(Kind::Code, r.pick(&[1, 2, 3, 4]));
        let n = r.below(5);
        b.u8(Kind::Len(1), n as u8);
        for _ in 0..n {
            if four {
                b.data(&(r.next_u64() as u32).to_be_bytes());
            } else {
                b.data(&(r.next_u64() as u16).to_be_bytes());
            }
        }
    }
}

/// One path attribute: flags, code, length (extended when the flags say so), value.
fn attribute(b: &mut Built, r: &mut Rng, s: Shape) {
    const CODES: [u8; 17] = [
        attr::ORIGIN,
        attr::AS_PATH,
        attr::NEXT_HOP,
        attr::MULTI_EXIT_DISC,
        attr::LOCAL_PREF,
        attr::ATOMIC_AGGREGATE,
        attr::AGGREGATOR,
        attr::COMMUNITIES,
        attr::ORIGINATOR_ID,
        attr::CLUSTER_LIST,
        attr::MP_REACH_NLRI,
        attr::MP_UNREACH_NLRI,
        attr::EXTENDED_COMMUNITIES,
        attr::AS4_PATH,
        attr::AS4_AGGREGATOR,
        attr::LARGE_COMMUNITY,
        99,
    ];
    let code = r.pick(&CODES);
    let well_known = code <= attr::ATOMIC_AGGREGATE;
    let mut flags = if well_known { flag::TRANSITIVE } else { flag::OPTIONAL | flag::TRANSITIVE };
    if matches!(code, attr::MULTI_EXIT_DISC | attr::ORIGINATOR_ID | attr::CLUSTER_LIST | 14 | 15) {
        flags = flag::OPTIONAL;
    }
    let extended = r.one_in(4);
    if extended {
        flags |= flag::EXTENDED_LENGTH;
    }
    b.u8(Kind::Flags, flags);
    b.u8(Kind::Code, code);
    let l = b.open_len(if extended { 2 } else { 1 });
    let four = |r: &mut Rng| (r.next_u64() as u32).to_be_bytes();
    match code {
        attr::ORIGIN => b.u8(Kind::Code, r.pick(&[0, 1, 2])),
        attr::AS_PATH => as_path(b, r, s.four_octet_as),
        attr::AS4_PATH => as_path(b, r, true),
        attr::NEXT_HOP | attr::MULTI_EXIT_DISC | attr::LOCAL_PREF | attr::ORIGINATOR_ID => b.data(&four(r)),
        attr::ATOMIC_AGGREGATE => {}
        attr::AGGREGATOR => {
            if s.four_octet_as {
                b.data(&four(r));
            } else {
                b.data(&(r.next_u64() as u16).to_be_bytes());
            }
            b.data(&four(r));
        }
        attr::AS4_AGGREGATOR => {
            b.data(&four(r));
            b.data(&four(r));
        }
        attr::COMMUNITIES | attr::CLUSTER_LIST => {
            for _ in 0..r.below(4) {
                b.data(&four(r));
            }
        }
        attr::EXTENDED_COMMUNITIES => {
            for _ in 0..r.below(3) {
                b.data(&r.next_u64().to_be_bytes());
            }
        }
        attr::LARGE_COMMUNITY => {
            for _ in 0..r.below(3) {
                b.data(&four(r));
                b.data(&four(r));
                b.data(&four(r));
            }
        }
        attr::MP_REACH_NLRI | attr::MP_UNREACH_NLRI => {
            let v6 = r.one_in(2);
            b.u16(Kind::Code, if v6 { 2 } else { 1 });
            b.u8(Kind::Code, r.pick(&[1, 1, 1, 2, 128]));
            if code == attr::MP_REACH_NLRI {
                let nh = if v6 { r.pick(&[16usize, 32]) } else { 4 };
                let ln = b.open_len(1);
                let hop: Vec<u8> = (0..nh).map(|_| r.byte()).collect();
                b.data(&hop);
                b.close(ln);
                b.u8(Kind::Data, 0);
            }
            for _ in 0..r.below(4) {
                prefix(b, r, v6, false);
            }
        }
        _ => {
            let v: Vec<u8> = (0..r.below(8)).map(|_| r.byte()).collect();
            b.data(&v);
        }
    }
    b.close(l);
}

fn update(b: &mut Built, r: &mut Rng, s: Shape) {
    let w = b.open_len(2);
    for _ in 0..r.below(3) {
        prefix(b, r, false, s.add_path_v4);
    }
    b.close(w);
    let a = b.open_len(2);
    for _ in 0..r.below(7) {
        attribute(b, r, s);
    }
    b.close(a);
    for _ in 0..r.below(4) {
        prefix(b, r, false, s.add_path_v4);
    }
}

fn open(b: &mut Built, r: &mut Rng) {
    b.u8(Kind::Code, if r.one_in(20) { 3 } else { 4 });
    b.u16(Kind::Data, r.pick(&[65005u16, 23456, 0, 65100]));
    b.u16(Kind::Data, r.pick(&[90u16, 3, 0, 1, 2, 65535]));
    b.data(&r.pick(&[[10, 0, 0, 1], [0, 0, 0, 0], [255, 255, 255, 255]]));
    let params = b.open_len(1);
    for _ in 0..r.below(3) {
        b.u8(Kind::Code, if r.one_in(10) { 1 } else { 2 });
        let p = b.open_len(1);
        for _ in 0..r.below(5) {
            let c = r.pick(&[1u8, 2, 6, 64, 65, 69, 70, 73, 200]);
            b.u8(Kind::Code, c);
            let l = b.open_len(1);
            match c {
                1 => {
                    b.u16(Kind::Code, r.pick(&[1, 2, 25]));
                    b.u8(Kind::Data, 0);
                    b.u8(Kind::Code, r.pick(&[1, 2, 4, 128]));
                }
                65 => b.data(&(r.next_u64() as u32).to_be_bytes()),
                64 => {
                    b.u16(Kind::Data, r.next_u64() as u16);
                    for _ in 0..r.below(3) {
                        b.u16(Kind::Code, r.pick(&[1, 2]));
                        b.u8(Kind::Code, 1);
                        b.u8(Kind::Flags, r.byte());
                    }
                }
                69 => {
                    for _ in 0..r.below(3) {
                        b.u16(Kind::Code, r.pick(&[1, 2]));
                        b.u8(Kind::Code, 1);
                        b.u8(Kind::Code, r.pick(&[1, 2, 3, 4]));
                    }
                }
                73 => {
                    b.u8(Kind::Len(1), 4);
                    b.data(b"node");
                    b.u8(Kind::Len(1), 0);
                }
                2 | 6 | 70 => {}
                _ => {
                    let v: Vec<u8> = (0..r.below(6)).map(|_| r.byte()).collect();
                    b.data(&v);
                }
            }
            b.close(l);
        }
        b.close(p);
    }
    b.close(params);
}

/// A valid message (as far as its structure goes) of a random type, header included.
pub fn generate(r: &mut Rng, s: Shape) -> Built {
    let mut b = Built::default();
    b.put(Kind::Data, &[0xff; 16]);
    b.u16(Kind::Len(2), 0);
    let t = r.pick(&[1u8, 2, 2, 2, 2, 3, 4, 5]);
    b.u8(Kind::Code, t);
    match t {
        1 => open(&mut b, r),
        2 => update(&mut b, r, s),
        3 => {
            b.u8(Kind::Code, r.pick(&[1, 2, 3, 4, 5, 6, 7]));
            b.u8(Kind::Code, r.below(12) as u8);
            let v: Vec<u8> = (0..r.below(10)).map(|_| r.byte()).collect();
            b.data(&v);
        }
        5 => {
            b.u16(Kind::Code, r.pick(&[1, 2, 3]));
            b.u8(Kind::Code, r.pick(&[0, 1, 2, 3]));
            b.u8(Kind::Code, r.pick(&[1, 2]));
        }
        _ => {}
    }
    let n = b.bytes.len().min(65535) as u16;
    b.bytes[16..18].copy_from_slice(&n.to_be_bytes());
    b
}

/// 1 to 3 mutations of `b`, aimed at its fields; the header length is fixed up afterwards
/// nine times in ten, so most inputs reach the body's decoder.
pub fn mutate(r: &mut Rng, mut b: Built) -> Vec<u8> {
    for _ in 0..1 + r.below(3) {
        if b.fields.len() <= 3 {
            break;
        }
        // Leave the marker alone mostly: a bad marker is one code path, tested enough.
        let i = if r.one_in(50) { 0 } else { 1 + r.below(b.fields.len() - 1) };
        let f = b.fields[i];
        if f.at + f.len > b.bytes.len() {
            continue;
        }
        let bytes = &mut b.bytes[f.at..f.at + f.len];
        match (f.kind, r.below(8)) {
            (_, 0) => {
                // Cut at this field.
                b.bytes.truncate(f.at + r.below(f.len + 1));
            }
            (_, 1) => {
                // Repeat it.
                let copy = bytes.to_vec();
                let at = f.at + f.len;
                b.bytes.splice(at..at, copy);
            }
            (_, 2) => {
                // Drop it.
                b.bytes.drain(f.at..f.at + f.len);
            }
            (Kind::Len(w), _) => {
                let cur = bytes.iter().fold(0usize, |a, x| a << 8 | *x as usize);
                let max = if w == 1 { 255 } else { 65535 };
                let v = match r.below(6) {
                    0 => 0,
                    1 => max,
                    2 => cur + 1,
                    3 => cur.saturating_sub(1),
                    4 => r.below(max + 1),
                    _ => cur + 1 + r.below(16),
                }
                .min(max);
                if w == 1 {
                    bytes[0] = v as u8;
                } else {
                    bytes.copy_from_slice(&(v as u16).to_be_bytes());
                }
            }
            (Kind::Flags, _) => {
                bytes[0] ^= 1 << r.below(8);
            }
            (Kind::Code, _) => {
                let last = bytes.len() - 1;
                bytes[last] = match r.below(3) {
                    0 => r.byte(),
                    1 => r.pick(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32, 255]),
                    _ => bytes[last].wrapping_add(1),
                };
            }
            (Kind::Data, _) => {
                if !bytes.is_empty() {
                    let j = r.below(bytes.len());
                    bytes[j] = r.byte();
                }
            }
        }
    }
    if b.bytes.len() >= 18 && !r.one_in(10) {
        let n = b.bytes.len().min(65535) as u16;
        b.bytes[16..18].copy_from_slice(&n.to_be_bytes());
    }
    b.bytes
}

/// The message type a buffer claims (for tallies).
pub fn claimed_type(buf: &[u8]) -> Option<MessageType> {
    buf.get(18).and_then(|t| MessageType::from_u8(*t))
}
