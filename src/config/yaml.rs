//! A fast reader for the YAML manifests are written in, straight into serde types.
//!
//! `serde_yaml` records every event of a document before deserializing it, and kbgp then
//! built a `Value` tree per document before the typed objects: for a file of a million
//! addresses that is several copies of it and most of the load time. This reader walks the
//! text once and drives the serde visitors directly, borrowing scalars from the text.
//!
//! It reads the subset of YAML manifests use: block mappings and sequences (also a
//! sequence at its key's indentation, as `kubectl` writes them), flow mappings and
//! sequences, plain and quoted scalars on one line, literal and folded block scalars,
//! comments and several documents. Plain scalars resolve exactly as they do into a
//! `serde_yaml::Value` (null, booleans, integers, floats, strings), and every value reaches
//! the visitors as that `Value` would hand it over (a null is an empty sequence or mapping, a
//! string field does not take a number), so a document means the same through either reader.
//!
//! Anything else, such as anchors, tags, scalars over several lines, tabs, CR line ends or
//! directives, and any error at all, syntax or type, gives up with [`Bail`]. The loader then
//! reads the text again with serde_yaml, which reports each problem with its usual message.
//! So this reader never has to word an error; it has to never accept what serde_yaml would
//! reject or read differently, which the tests check against serde_yaml itself.

mod de;
mod lenient;
mod parse;

pub(crate) use de::{De, Shape};
pub(crate) use lenient::NameOnly;
pub(crate) use parse::{Mark, Parser};
use std::borrow::Cow;
use std::fmt;
use std::num::ParseIntError;

/// The fast reader gives up: the text is outside its subset, or wrong.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bail;

impl fmt::Display for Bail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outside the YAML the fast reader takes")
    }
}

impl std::error::Error for Bail {}

impl serde::de::Error for Bail {
    fn custom<T: fmt::Display>(_: T) -> Bail {
        Bail
    }
}

type R<T> = Result<T, Bail>;

/// Nesting deeper than this is left to serde_yaml (its limit is 128).
const MAX_DEPTH: usize = 100;
/// libyaml's limit for an implicit key.
const MAX_KEY: usize = 1024;

/// Characters libyaml accepts in a stream, less tab, CR and the Unicode line breaks (NEL, LS,
/// PS) and BOM, whose handling this reader does not reproduce.
fn check_chars(text: &str) -> R<()> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            if (c < 0x20 && c != b'\n') || c == 0x7f {
                return Err(Bail);
            }
            i += 1;
            continue;
        }
        let ch = text[i..].chars().next().ok_or(Bail)?;
        let u = ch as u32;
        let ok = (0xa0..=0xd7ff).contains(&u) && u != 0x2028 && u != 0x2029
            || (0xe000..=0xfffd).contains(&u) && u != 0xfeff
            || u >= 0x10000;
        if !ok {
            return Err(Bail);
        }
        i += ch.len_utf8();
    }
    Ok(())
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| from + p)
}

/// Whether a stretch of text holds anything but blank and comment lines.
fn has_content(chunk: &str) -> bool {
    chunk.lines().any(|l| {
        let t = l.trim_start_matches(' ');
        !t.is_empty() && !t.starts_with('#')
    })
}

/// The documents of a stream, numbered as serde_yaml numbers them: text before the first
/// `---` is a document only if it holds something; each `---` starts one (empty: null).
pub(crate) fn documents(text: &str) -> R<Vec<&str>> {
    check_chars(text)?;
    let b = text.as_bytes();
    let mut docs = Vec::new();
    let (mut start, mut explicit, mut ls) = (0, false, 0);
    while ls < b.len() {
        let le = line_end(b, ls);
        let line = &b[ls..le];
        let marker = |m: &[u8]| line.starts_with(m) && (line.len() == 3 || line[3] == b' ');
        if marker(b"---") {
            let rest = text[ls + 3..le].trim_start_matches(' ');
            if !rest.is_empty() && !rest.starts_with('#') {
                return Err(Bail);
            }
            if explicit || has_content(&text[start..ls]) {
                docs.push(&text[start..ls]);
            }
            start = (le + 1).min(b.len());
            explicit = true;
        } else if marker(b"...") || line.first() == Some(&b'%') {
            return Err(Bail);
        }
        ls = le + 1;
    }
    if explicit || has_content(&text[start..]) || docs.is_empty() {
        // (A stream with no document at all is one null document to serde_yaml.)
        docs.push(&text[start..]);
    }
    Ok(docs)
}

// ---- plain scalars, resolved as serde_yaml resolves them into a Value ----

/// A scalar as a `serde_yaml::Value` holds it.
#[derive(Debug)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'a, str>),
}

/// Leading zeros followed by digits: a string in YAML 1.2.
fn digits_but_not_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    s.len() > 1 && s.starts_with('0') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

const RADIXES: [(&str, u32); 3] = [("0x", 16), ("0o", 8), ("0b", 2)];

/// An unsigned integer: optional `+`, then decimal or `0x`/`0o`/`0b`.
fn unsigned<T>(s: &str, parse: fn(&str, u32) -> Result<T, ParseIntError>) -> Option<T> {
    let u = s.strip_prefix('+').unwrap_or(s);
    for (prefix, radix) in RADIXES {
        if let Some(rest) = u.strip_prefix(prefix) {
            if rest.starts_with(['+', '-']) {
                return None;
            }
            if let Ok(v) = parse(rest, radix) {
                return Some(v);
            }
        }
    }
    if u.starts_with(['+', '-']) || digits_but_not_number(s) {
        return None;
    }
    parse(u, 10).ok()
}

/// A negative integer: `-` then decimal or `0x`/`0o`/`0b`.
fn negative<T>(s: &str, parse: fn(&str, u32) -> Result<T, ParseIntError>) -> Option<T> {
    for (prefix, radix) in RADIXES {
        if let Some(rest) = s.strip_prefix('-').and_then(|r| r.strip_prefix(prefix))
            && let Ok(v) = parse(&format!("-{rest}"), radix)
        {
            return Some(v);
        }
    }
    if digits_but_not_number(s) {
        return None;
    }
    parse(s, 10).ok()
}

fn float(s: &str) -> Option<f64> {
    let u = match s.strip_prefix('+') {
        Some(u) if u.starts_with(['+', '-']) => return None,
        Some(u) => u,
        None => s,
    };
    match (u, s) {
        (".inf" | ".Inf" | ".INF", _) => return Some(f64::INFINITY),
        (_, "-.inf" | "-.Inf" | "-.INF") => return Some(f64::NEG_INFINITY),
        (_, ".nan" | ".NaN" | ".NAN") => return Some(f64::NAN),
        _ => {}
    }
    u.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Whether `s` cannot be a number: a byte no integer or float has (`0x`/`0o`/`0b` forms,
/// `.inf`, `.nan` included), or two dots (an IPv4 address).
fn not_a_number(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().any(|c| !(c.is_ascii_hexdigit() || b"+-.xoiInN".contains(c)))
        || b.iter().filter(|&&c| c == b'.').count() > 1
}

fn resolve(s: &str) -> R<Scalar<'_>> {
    match s.as_bytes().first() {
        None => return Ok(Scalar::Null),
        Some(c) if !b"0123456789+-.~nNtTfF".contains(c) => return Ok(Scalar::Str(Cow::Borrowed(s))),
        _ => {}
    }
    Ok(match s {
        "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "true" | "True" | "TRUE" => Scalar::Bool(true),
        "false" | "False" | "FALSE" => Scalar::Bool(false),
        _ if not_a_number(s) => Scalar::Str(Cow::Borrowed(s)),
        _ => {
            if let Some(v) = unsigned(s, u64::from_str_radix) {
                Scalar::U64(v)
            } else if let Some(v) = negative(s, i64::from_str_radix) {
                Scalar::I64(v)
            } else if unsigned(s, u128::from_str_radix).is_some() || negative(s, i128::from_str_radix).is_some() {
                return Err(Bail);
            } else if let Some(f) = float(s).filter(|_| !digits_but_not_number(s)) {
                Scalar::F64(f)
            } else {
                Scalar::Str(Cow::Borrowed(s))
            }
        }
    })
}

#[cfg(test)]
mod tests;
