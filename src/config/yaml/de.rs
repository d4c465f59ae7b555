//! The serde side: a node as a `Deserializer`, mappings and sequences as `MapAccess` and
//! `SeqAccess`, values handed over as a `serde_yaml::Value` would hand them.

use super::parse::{Ctx, Mark, Parser, Start};
use super::{Bail, R, Scalar};
use serde::Deserialize;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashSet;

/// A node to read: a `serde::Deserializer`.
pub(crate) struct De<'p, 'a> {
    pub(super) p: &'p mut Parser<'a>,
    pub(super) n: isize,
    pub(super) ctx: Ctx,
}

/// What a node turned out to be, for [`De::map_entries`] and [`De::seq_items`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Null,
    Wanted,
    Other,
}

impl<'p, 'a> De<'p, 'a> {
    fn begin(self) -> R<Started<'p, 'a>> {
        let start = self.p.start(self.n, self.ctx)?;
        if matches!(start, Start::Scalar(_)) && !matches!(self.ctx, Ctx::Flow) {
            self.p.check_after(self.n)?;
        }
        Ok(Started { p: self.p, n: self.n, ctx: self.ctx, start })
    }

    /// Reads the node and throws it away (it is still checked).
    pub fn skip(self) -> R<()> {
        IgnoredAny::deserialize(self).map(|_| ())
    }

    /// Reads the node past, to read it again with [`Parser::revisit`].
    pub fn mark(self) -> R<Mark> {
        let m = Mark { pos: self.p.pos, n: self.n, ctx: self.ctx };
        self.skip()?;
        Ok(m)
    }

    /// The node as a string if it is one (`Value::as_str`).
    pub fn str(self) -> R<Option<Cow<'a, str>>> {
        let s = self.begin()?;
        match s.start {
            Start::Scalar(Scalar::Str(v)) => Ok(Some(v)),
            Start::Scalar(_) => Ok(None),
            _ => s.skip_rest().map(|_| None),
        }
    }

    /// Calls `f` with each key and value of a mapping; `f` must read or skip the value.
    /// Returns the parser back, to [`revisit`](Parser::revisit) what `f` marked.
    pub fn map_entries(self, mut f: impl FnMut(&'a str, De<'_, 'a>) -> R<()>) -> R<(Shape, &'p mut Parser<'a>)> {
        let s = self.begin()?;
        let kind = match s.start {
            Start::Scalar(Scalar::Null) => return Ok((Shape::Null, s.p)),
            Start::BlockMap(m) => Nest::Block(m),
            Start::FlowMap => Nest::Flow(s.n),
            _ => {
                let p = s.skip_rest()?;
                return Ok((Shape::Other, p));
            }
        };
        let (n, ctx) = (s.n, s.ctx);
        let p = s.p;
        p.enter()?;
        let mut e = Entries { p, kind, first: true, seen: Seen::default(), pending: false };
        while let Some(k) = e.next_key()? {
            f(k, e.value())?;
        }
        let p = e.p;
        p.leave(kind.is_flow(), n, ctx)?;
        Ok((Shape::Wanted, p))
    }

    /// Calls `f` with each item of a sequence; `f` must read or skip it.
    pub fn seq_items(self, mut f: impl FnMut(usize, De<'_, 'a>) -> R<()>) -> R<Shape> {
        let s = self.begin()?;
        let kind = match s.start {
            Start::Scalar(Scalar::Null) => return Ok(Shape::Null),
            Start::BlockSeq(m) => Nest::Block(m),
            Start::FlowSeq => Nest::Flow(s.n),
            _ => {
                s.skip_rest()?;
                return Ok(Shape::Other);
            }
        };
        let (n, ctx) = (s.n, s.ctx);
        s.p.enter()?;
        let mut items = Items { p: s.p, kind, first: true };
        let mut i = 0;
        while let Some(d) = items.next()? {
            f(i, d)?;
            i += 1;
        }
        items.p.leave(kind.is_flow(), n, ctx).map(|_| Shape::Wanted)
    }
}

/// A node that has begun.
struct Started<'p, 'a> {
    p: &'p mut Parser<'a>,
    n: isize,
    ctx: Ctx,
    start: Start<'a>,
}

impl<'p, 'a> Started<'p, 'a> {
    fn skip_rest(self) -> R<&'p mut Parser<'a>> {
        let (n, ctx) = (self.n, self.ctx);
        let p = self.p;
        match self.start {
            Start::Scalar(_) => {}
            Start::BlockMap(_) | Start::FlowMap => {
                let kind = if let Start::BlockMap(m) = self.start { Nest::Block(m) } else { Nest::Flow(n) };
                p.enter()?;
                let mut e = Entries { p: &mut *p, kind, first: true, seen: Seen::default(), pending: false };
                e.finish()?;
                p.leave(kind.is_flow(), n, ctx)?;
            }
            Start::BlockSeq(_) | Start::FlowSeq => {
                let kind = if let Start::BlockSeq(m) = self.start { Nest::Block(m) } else { Nest::Flow(n) };
                p.enter()?;
                let mut items = Items { p: &mut *p, kind, first: true };
                items.finish()?;
                p.leave(kind.is_flow(), n, ctx)?;
            }
        }
        Ok(p)
    }

    fn visit_map<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        let kind = match self.start {
            Start::BlockMap(m) => Nest::Block(m),
            Start::FlowMap => Nest::Flow(self.n),
            Start::Scalar(Scalar::Null) => Nest::Empty,
            _ => return Err(Bail),
        };
        self.p.enter()?;
        let mut e = Entries { p: &mut *self.p, kind, first: true, seen: Seen::default(), pending: false };
        let out = v.visit_map(&mut e)?;
        e.finish()?;
        self.p.leave(kind.is_flow(), self.n, self.ctx)?;
        Ok(out)
    }

    fn visit_seq<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        let kind = match self.start {
            Start::BlockSeq(m) => Nest::Block(m),
            Start::FlowSeq => Nest::Flow(self.n),
            Start::Scalar(Scalar::Null) => Nest::Empty,
            _ => return Err(Bail),
        };
        self.p.enter()?;
        let mut items = Items { p: &mut *self.p, kind, first: true };
        let out = v.visit_seq(&mut items)?;
        items.finish()?;
        self.p.leave(kind.is_flow(), self.n, self.ctx)?;
        Ok(out)
    }
}

impl<'a> de::Deserializer<'a> for Started<'_, 'a> {
    type Error = Bail;

    fn deserialize_any<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        let Started { p, n, ctx, start } = self;
        match start {
            Start::Scalar(Scalar::Null) => v.visit_unit(),
            Start::Scalar(Scalar::Bool(b)) => v.visit_bool(b),
            Start::Scalar(Scalar::U64(x)) => v.visit_u64(x),
            Start::Scalar(Scalar::I64(x)) => v.visit_i64(x),
            Start::Scalar(Scalar::F64(x)) => v.visit_f64(x),
            Start::Scalar(Scalar::Str(Cow::Borrowed(s))) => v.visit_str(s),
            Start::Scalar(Scalar::Str(Cow::Owned(s))) => v.visit_string(s),
            start @ (Start::BlockMap(_) | Start::FlowMap) => Started { p, n, ctx, start }.visit_map(v),
            start @ (Start::BlockSeq(_) | Start::FlowSeq) => Started { p, n, ctx, start }.visit_seq(v),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        match self.start {
            Start::Scalar(Scalar::Bool(_)) => self.deserialize_any(v),
            _ => Err(Bail),
        }
    }

    fn deserialize_i64<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        match self.start {
            Start::Scalar(Scalar::U64(_) | Scalar::I64(_) | Scalar::F64(_)) => self.deserialize_any(v),
            _ => Err(Bail),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        match self.start {
            Start::Scalar(Scalar::Str(_)) => self.deserialize_any(v),
            _ => Err(Bail),
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        match self.start {
            Start::Scalar(Scalar::Null) => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        match self.start {
            Start::Scalar(Scalar::Null) => v.visit_unit(),
            _ => Err(Bail),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(self, _: &'static str, v: V) -> R<V::Value> {
        self.deserialize_unit(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(self, _: &'static str, v: V) -> R<V::Value> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.visit_seq(v)
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _: usize, v: V) -> R<V::Value> {
        self.visit_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(self, _: &'static str, _: usize, v: V) -> R<V::Value> {
        self.visit_seq(v)
    }

    fn deserialize_map<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.visit_map(v)
    }

    fn deserialize_struct<V: Visitor<'a>>(self, _: &'static str, _: &'static [&'static str], v: V) -> R<V::Value> {
        self.visit_map(v)
    }

    fn deserialize_enum<V: Visitor<'a>>(self, _: &'static str, _: &'static [&'static str], _: V) -> R<V::Value> {
        Err(Bail)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, _: V) -> R<V::Value> {
        Err(Bail)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, _: V) -> R<V::Value> {
        Err(Bail)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.skip_rest()?;
        v.visit_unit()
    }

    fn deserialize_i8<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_i16<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_i32<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_i128<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_u8<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_u16<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_u32<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_u64<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_u128<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_f32<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_f64<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_i64(v)
    }
    fn deserialize_char<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_string(v)
    }
    fn deserialize_str<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_string(v)
    }
    fn deserialize_identifier<V: Visitor<'a>>(self, v: V) -> R<V::Value> {
        self.deserialize_string(v)
    }
}

/// Every `deserialize_*` of [`De`] begins the node and hands it to [`Started`].
macro_rules! begin_then {
    ($($name:ident $(($($arg:ident: $ty:ty),*))?;)*) => {
        $(fn $name<V: Visitor<'a>>(self, $($($arg: $ty,)*)? v: V) -> R<V::Value> {
            self.begin()?.$name($($($arg,)*)? v)
        })*
    };
}

impl<'a> de::Deserializer<'a> for De<'_, 'a> {
    type Error = Bail;
    begin_then! {
        deserialize_any; deserialize_bool; deserialize_i8; deserialize_i16; deserialize_i32; deserialize_i64;
        deserialize_i128; deserialize_u8; deserialize_u16; deserialize_u32; deserialize_u64; deserialize_u128;
        deserialize_f32; deserialize_f64; deserialize_char; deserialize_str; deserialize_string; deserialize_bytes;
        deserialize_byte_buf; deserialize_option; deserialize_unit; deserialize_seq; deserialize_map;
        deserialize_identifier; deserialize_ignored_any;
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
    }
}

/// The keys of one mapping so far: duplicates are an error in serde_yaml.
#[derive(Default)]
struct Seen<'a> {
    few: [&'a str; 8],
    n: usize,
    many: Option<HashSet<&'a str>>,
}

impl<'a> Seen<'a> {
    fn insert(&mut self, k: &'a str) -> bool {
        if let Some(set) = &mut self.many {
            return set.insert(k);
        }
        if self.few[..self.n].contains(&k) {
            return false;
        }
        if self.n < self.few.len() {
            self.few[self.n] = k;
            self.n += 1;
        } else {
            let mut set: HashSet<&str> = self.few.iter().copied().collect();
            set.insert(k);
            self.many = Some(set);
        }
        true
    }
}

/// How a mapping or a sequence is laid out: block at an indent, flow at a depth, or empty
/// (a null in its place, or the end reached).
#[derive(Clone, Copy)]
enum Nest {
    Block(usize),
    Flow(isize),
    Empty,
}

impl Nest {
    fn is_flow(self) -> bool {
        matches!(self, Nest::Flow(_))
    }
}

struct Entries<'p, 'a> {
    p: &'p mut Parser<'a>,
    kind: Nest,
    first: bool,
    seen: Seen<'a>,
    /// A key was handed out and its value not yet taken.
    pending: bool,
}

impl<'a> Entries<'_, 'a> {
    fn next_key(&mut self) -> R<Option<&'a str>> {
        if self.pending {
            self.value().skip()?;
        }
        let first = std::mem::replace(&mut self.first, false);
        let key = match self.kind {
            Nest::Empty => return Ok(None),
            Nest::Block(m) => {
                if !first {
                    match self.p.peek_line()? {
                        Some((ind, at)) if ind == m => self.p.pos = at,
                        Some((ind, _)) if ind > m => return Err(Bail),
                        _ => {
                            self.kind = Nest::Empty;
                            return Ok(None);
                        }
                    }
                }
                self.p.block_key()?
            }
            Nest::Flow(n) => {
                self.p.flow_ws(n)?;
                if self.p.byte(self.p.pos) == b'}' {
                    self.p.pos += 1;
                    self.kind = Nest::Empty;
                    return Ok(None);
                }
                if !first {
                    if self.p.byte(self.p.pos) != b',' {
                        return Err(Bail);
                    }
                    self.p.pos += 1;
                    self.p.flow_ws(n)?;
                }
                self.p.flow_key()?
            }
        };
        if !self.seen.insert(key) {
            return Err(Bail);
        }
        self.pending = true;
        Ok(Some(key))
    }

    fn value(&mut self) -> De<'_, 'a> {
        self.pending = false;
        match self.kind {
            Nest::Block(m) => De { p: &mut *self.p, n: m as isize, ctx: Ctx::AfterKey },
            Nest::Flow(n) => De { p: &mut *self.p, n, ctx: Ctx::Flow },
            Nest::Empty => De { p: &mut *self.p, n: isize::MAX, ctx: Ctx::Flow },
        }
    }

    fn finish(&mut self) -> R<()> {
        while self.next_key()?.is_some() {
            self.value().skip()?;
        }
        Ok(())
    }
}

impl<'a> MapAccess<'a> for Entries<'_, 'a> {
    type Error = Bail;

    fn next_key_seed<K: DeserializeSeed<'a>>(&mut self, seed: K) -> R<Option<K::Value>> {
        match self.next_key()? {
            Some(k) => seed.deserialize(BorrowedStrDeserializer::new(k)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> R<V::Value> {
        if !self.pending {
            return Err(Bail);
        }
        seed.deserialize(self.value())
    }
}

struct Items<'p, 'a> {
    p: &'p mut Parser<'a>,
    kind: Nest,
    first: bool,
}

impl<'a> Items<'_, 'a> {
    /// The next item; it must be read before asking for another.
    fn next(&mut self) -> R<Option<De<'_, 'a>>> {
        let first = std::mem::replace(&mut self.first, false);
        match self.kind {
            Nest::Empty => Ok(None),
            Nest::Block(m) => {
                if !first {
                    match self.p.peek_line()? {
                        Some((ind, at)) if ind == m && self.p.dash(at) => self.p.pos = at,
                        Some((ind, _)) if ind > m => return Err(Bail),
                        _ => {
                            self.kind = Nest::Empty;
                            return Ok(None);
                        }
                    }
                }
                self.p.pos += 1;
                Ok(Some(De { p: &mut *self.p, n: m as isize, ctx: Ctx::AfterDash }))
            }
            Nest::Flow(n) => {
                self.p.flow_ws(n)?;
                if self.p.byte(self.p.pos) == b']' {
                    self.p.pos += 1;
                    self.kind = Nest::Empty;
                    return Ok(None);
                }
                if !first {
                    if self.p.byte(self.p.pos) != b',' {
                        return Err(Bail);
                    }
                    self.p.pos += 1;
                    self.p.flow_ws(n)?;
                    if self.p.byte(self.p.pos) == b']' {
                        return Err(Bail);
                    }
                }
                Ok(Some(De { p: &mut *self.p, n, ctx: Ctx::Flow }))
            }
        }
    }

    fn finish(&mut self) -> R<()> {
        while let Some(d) = self.next()? {
            d.skip()?;
        }
        Ok(())
    }
}

impl<'a> SeqAccess<'a> for Items<'_, 'a> {
    type Error = Bail;

    fn next_element_seed<T: DeserializeSeed<'a>>(&mut self, seed: T) -> R<Option<T::Value>> {
        match self.next()? {
            Some(d) => seed.deserialize(d).map(Some),
            None => Ok(None),
        }
    }
}
