//! The parser: block and flow structure, scalars, and where each node begins and ends.

use super::de::De;
use super::{Bail, MAX_DEPTH, MAX_KEY, R, Scalar, line_end, resolve};
use std::borrow::Cow;

/// Where a node is: right after `key:`, after `- `, in a flow collection, or a document.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ctx {
    Root,
    AfterKey,
    AfterDash,
    Flow,
}

/// A node that has begun: scalars are read whole, collections are positioned at their first
/// entry.
pub(super) enum Start<'a> {
    Scalar(Scalar<'a>),
    BlockMap(usize),
    BlockSeq(usize),
    FlowMap,
    FlowSeq,
}

/// The reader over one document.
pub(crate) struct Parser<'a> {
    t: &'a str,
    b: &'a [u8],
    pub(super) pos: usize,
    depth: usize,
}

/// A node to read again later (see [`Parser::revisit`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    pub(super) pos: usize,
    pub(super) n: isize,
    pub(super) ctx: Ctx,
}

fn indicator(c: u8) -> bool {
    b"-?:,[]{}#&*!|>'\"%@`".contains(&c)
}

impl<'a> Parser<'a> {
    pub fn new(doc: &'a str) -> Parser<'a> {
        Parser { t: doc, b: doc.as_bytes(), pos: 0, depth: 0 }
    }

    /// The document's root node.
    pub fn root(&mut self) -> De<'_, 'a> {
        self.pos = 0;
        De { p: self, n: -1, ctx: Ctx::Root }
    }

    /// Nothing is left after the root node.
    pub fn end(&self) -> R<()> {
        match self.peek_line()? {
            None => Ok(()),
            Some(_) => Err(Bail),
        }
    }

    /// Reads the node at `m` again; the position afterwards is where it was before.
    pub fn revisit<T>(&mut self, m: Mark, f: impl FnOnce(De<'_, 'a>) -> R<T>) -> R<T> {
        let back = self.pos;
        self.pos = m.pos;
        let v = f(De { p: self, n: m.n, ctx: m.ctx });
        self.pos = back;
        v
    }

    /// 0 past the end (NUL is not in the text: [`check_chars`]).
    #[inline]
    pub(super) fn byte(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    #[inline]
    pub(super) fn blank_or_end(&self, i: usize) -> bool {
        matches!(self.byte(i), b' ' | b'\n' | 0)
    }

    pub(super) fn column(&self, i: usize) -> usize {
        i - self.b[..i].iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1)
    }

    #[inline]
    pub(super) fn skip_spaces(&mut self) {
        while self.byte(self.pos) == b' ' {
            self.pos += 1;
        }
    }

    #[inline]
    pub(super) fn is_comment(&self, i: usize) -> bool {
        self.byte(i) == b'#' && (i == 0 || matches!(self.b[i - 1], b' ' | b'\n'))
    }

    /// `- ` (or `-` at the end of a line) at `i`.
    #[inline]
    pub(super) fn dash(&self, i: usize) -> bool {
        self.byte(i) == b'-' && self.blank_or_end(i + 1)
    }

    /// The next line with content after the current position, as (indentation, position of
    /// its content), without moving. Content left on the current line is an error.
    #[inline]
    pub(super) fn peek_line(&self) -> R<Option<(usize, usize)>> {
        let mut i = self.pos;
        let mut ls = (i == 0 || self.b[i - 1] == b'\n').then_some(i);
        loop {
            while self.byte(i) == b' ' {
                i += 1;
            }
            match self.byte(i) {
                0 => return Ok(None),
                b'\n' => {
                    i += 1;
                    ls = Some(i);
                }
                b'#' if self.is_comment(i) => i = line_end(self.b, i),
                _ => return ls.map(|s| Some((i - s, i))).ok_or(Bail),
            }
        }
    }

    /// After a scalar or flow collection in block context: nothing more on its line, and no
    /// line more indented than its parent (a continuation, or a stray key).
    #[inline]
    pub(super) fn check_after(&self, n: isize) -> R<()> {
        match self.peek_line()? {
            Some((ind, _)) if ind as isize > n => Err(Bail),
            _ => Ok(()),
        }
    }

    /// A plain scalar on one line, block context; and whether it is a key (`: ` follows).
    pub(super) fn plain_block(&mut self) -> (&'a str, bool) {
        let start = self.pos;
        let mut i = start;
        let mut key = false;
        loop {
            match self.byte(i) {
                0 | b'\n' => break,
                b':' if self.blank_or_end(i + 1) => {
                    key = true;
                    break;
                }
                b' ' if self.byte(i + 1) == b'#' => break,
                _ => i += 1,
            }
        }
        while i > start && self.b[i - 1] == b' ' {
            i -= 1;
        }
        self.pos = i;
        (&self.t[start..i], key)
    }

    /// A plain scalar in a flow collection, up to the first indicator or the line's end; a
    /// key also ends at `: `.
    pub(super) fn plain_flow(&mut self, key: bool) -> R<&'a str> {
        let start = self.pos;
        let mut i = start;
        loop {
            match self.byte(i) {
                0 | b'\n' | b',' | b'[' | b']' | b'{' | b'}' => break,
                b':' if key && self.blank_or_end(i + 1) => break,
                b':' => return Err(Bail),
                b' ' if self.byte(i + 1) == b'#' => break,
                _ => i += 1,
            }
        }
        while i > start && self.b[i - 1] == b' ' {
            i -= 1;
        }
        self.pos = i;
        Ok(&self.t[start..i])
    }

    /// A single- or double-quoted scalar on one line; the position ends after the quote.
    pub(super) fn quoted(&mut self) -> R<Cow<'a, str>> {
        let q = self.byte(self.pos);
        let start = self.pos + 1;
        let mut i = start;
        let mut owned: Option<String> = None;
        let mut seg = start;
        loop {
            match self.byte(i) {
                0 | b'\n' => return Err(Bail),
                c if c == q && q == b'\'' && self.byte(i + 1) == b'\'' => {
                    let o = owned.get_or_insert_with(String::new);
                    o.push_str(&self.t[seg..=i]);
                    i += 2;
                    seg = i;
                }
                c if c == q => break,
                b'\\' if q == b'"' => {
                    let o = owned.get_or_insert_with(String::new);
                    o.push_str(&self.t[seg..i]);
                    let (ch, len) = self.escape(i + 1)?;
                    o.push(ch);
                    i += 1 + len;
                    seg = i;
                }
                _ => i += 1,
            }
        }
        self.pos = i + 1;
        Ok(match owned {
            None => Cow::Borrowed(&self.t[start..i]),
            Some(mut o) => {
                o.push_str(&self.t[seg..i]);
                Cow::Owned(o)
            }
        })
    }

    /// The escape after a backslash at `i`: the character and how many bytes it took.
    pub(super) fn escape(&self, i: usize) -> R<(char, usize)> {
        let hex = |n: usize| -> R<(char, usize)> {
            let digits = self.t.get(i + 1..i + 1 + n).ok_or(Bail)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Bail);
            }
            let v = u32::from_str_radix(digits, 16).map_err(|_| Bail)?;
            Ok((char::from_u32(v).ok_or(Bail)?, n + 1))
        };
        let c = match self.byte(i) {
            b'0' => '\0',
            b'a' => '\x07',
            b'b' => '\x08',
            b't' => '\t',
            b'n' => '\n',
            b'v' => '\x0b',
            b'f' => '\x0c',
            b'r' => '\r',
            b'e' => '\x1b',
            b' ' => ' ',
            b'"' => '"',
            b'/' => '/',
            b'\\' => '\\',
            b'N' => '\u{85}',
            b'_' => '\u{a0}',
            b'L' => '\u{2028}',
            b'P' => '\u{2029}',
            b'x' => return hex(2),
            b'u' => return hex(4),
            b'U' => return hex(8),
            _ => return Err(Bail),
        };
        Ok((c, 1))
    }

    /// A literal (`|`) or folded (`>`) block scalar; its lines are indented more than `n`.
    pub(super) fn block_scalar(&mut self, n: isize) -> R<String> {
        #[derive(PartialEq)]
        enum Chomp {
            Clip,
            Strip,
            Keep,
        }
        let folded = self.byte(self.pos) == b'>';
        self.pos += 1;
        let chomp = match self.byte(self.pos) {
            b'-' => Chomp::Strip,
            b'+' => Chomp::Keep,
            _ => Chomp::Clip,
        };
        if chomp != Chomp::Clip {
            self.pos += 1;
        }
        if !self.blank_or_end(self.pos) {
            return Err(Bail); // an indentation indicator, or anything else
        }
        self.skip_spaces();
        if self.is_comment(self.pos) {
            self.pos = line_end(self.b, self.pos);
        }
        if self.byte(self.pos) != b'\n' {
            return Err(Bail);
        }
        let mut i = self.pos + 1;
        let mut indent: Option<usize> = None;
        let (mut out, mut breaks, mut leading_spaces, mut content) = (String::new(), 0, 0, false);
        let mut end = self.pos;
        while i < self.b.len() {
            let le = line_end(self.b, i);
            let line = &self.t[i..le];
            let sp = line.len() - line.trim_start_matches(' ').len();
            if sp == line.len() {
                match indent {
                    Some(ind) if sp > ind => return Err(Bail),
                    _ => leading_spaces = leading_spaces.max(sp),
                }
                breaks += 1;
                i = le + 1;
                continue;
            }
            let ind = match indent {
                Some(ind) => ind,
                None if (sp as isize) <= n || leading_spaces > sp => break,
                None => *indent.insert(sp),
            };
            if sp < ind {
                break;
            }
            let text = &line[ind..];
            if folded && text.starts_with(' ') {
                return Err(Bail);
            }
            // Between two lines: a literal scalar keeps every break; a folded one turns a
            // single break into a space and keeps only the empty lines of several.
            let newlines = match (content, folded) {
                (false, _) => breaks,
                (true, true) if breaks == 0 => {
                    out.push(' ');
                    0
                }
                (true, true) => breaks,
                (true, false) => breaks + 1,
            };
            out.extend(std::iter::repeat_n('\n', newlines));
            out.push_str(text);
            content = true;
            breaks = 0;
            end = le;
            if le >= self.b.len() {
                return Err(Bail); // the last line has no line break
            }
            i = le + 1;
        }
        if !content || (chomp == Chomp::Keep && breaks > 0) {
            return Err(Bail);
        }
        if chomp != Chomp::Strip {
            out.push('\n');
        }
        self.pos = end;
        Ok(out)
    }

    /// Skips spaces, comments and line breaks inside a flow collection; its lines must be
    /// indented more than the block it is in.
    pub(super) fn flow_ws(&mut self, n: isize) -> R<()> {
        loop {
            self.skip_spaces();
            match self.byte(self.pos) {
                b'\n' => {
                    self.pos += 1;
                    let ls = self.pos;
                    self.skip_spaces();
                    if !matches!(self.byte(self.pos), b'\n' | b'#' | 0) && (self.pos - ls) as isize <= n {
                        return Err(Bail);
                    }
                }
                b'#' if self.is_comment(self.pos) => self.pos = line_end(self.b, self.pos),
                _ => return Ok(()),
            }
        }
    }

    /// Begins the node at the current position.
    #[inline]
    pub(super) fn start(&mut self, n: isize, ctx: Ctx) -> R<Start<'a>> {
        if let Ctx::Flow = ctx {
            return self.flow_start(n);
        }
        if !matches!(ctx, Ctx::Root) {
            self.skip_spaces();
            if !matches!(self.byte(self.pos), 0 | b'\n') && !self.is_comment(self.pos) {
                return self.inline(n, ctx);
            }
        }
        match self.peek_line()? {
            Some((ind, at)) if ind as isize > n => {
                self.pos = at;
                self.own_line(ind)
            }
            Some((ind, at)) if ind as isize == n && matches!(ctx, Ctx::AfterKey) && self.dash(at) => {
                self.pos = at;
                Ok(Start::BlockSeq(ind))
            }
            _ => Ok(Start::Scalar(Scalar::Null)),
        }
    }

    /// A node that begins a line, at column `ind`.
    pub(super) fn own_line(&mut self, ind: usize) -> R<Start<'a>> {
        let at = self.pos;
        match self.byte(at) {
            _ if self.dash(at) => Ok(Start::BlockSeq(ind)),
            b'[' | b'{' => self.flow_open(),
            b'"' | b'\'' => {
                let s = self.quoted()?;
                if self.key_follows() {
                    self.pos = at;
                    return Ok(Start::BlockMap(ind));
                }
                Ok(Start::Scalar(Scalar::Str(s)))
            }
            c if indicator(c) && c != b'-' => Err(Bail),
            _ => {
                let (s, key) = self.plain_block();
                if key {
                    self.pos = at;
                    return Ok(Start::BlockMap(ind));
                }
                Ok(Start::Scalar(resolve(s)?))
            }
        }
    }

    /// A node that begins after `key: ` or `- ` on the same line.
    pub(super) fn inline(&mut self, n: isize, ctx: Ctx) -> R<Start<'a>> {
        let at = self.pos;
        let compact = matches!(ctx, Ctx::AfterDash);
        match self.byte(at) {
            _ if self.dash(at) => {
                if compact {
                    Ok(Start::BlockSeq(self.column(at)))
                } else {
                    Err(Bail)
                }
            }
            b'|' | b'>' => Ok(Start::Scalar(Scalar::Str(Cow::Owned(self.block_scalar(n)?)))),
            b'[' | b'{' => self.flow_open(),
            b'"' | b'\'' => {
                let s = self.quoted()?;
                if self.key_follows() {
                    if !compact {
                        return Err(Bail);
                    }
                    self.pos = at;
                    return Ok(Start::BlockMap(self.column(at)));
                }
                Ok(Start::Scalar(Scalar::Str(s)))
            }
            c if indicator(c) && c != b'-' => Err(Bail),
            _ => {
                let (s, key) = self.plain_block();
                if key {
                    if !compact {
                        return Err(Bail);
                    }
                    self.pos = at;
                    return Ok(Start::BlockMap(self.column(at)));
                }
                Ok(Start::Scalar(resolve(s)?))
            }
        }
    }

    pub(super) fn flow_open(&mut self) -> R<Start<'a>> {
        let c = self.byte(self.pos);
        self.pos += 1;
        Ok(if c == b'{' { Start::FlowMap } else { Start::FlowSeq })
    }

    /// Whether `:` and a blank follow (after spaces): what was read is a key.
    pub(super) fn key_follows(&mut self) -> bool {
        let save = self.pos;
        self.skip_spaces();
        let key = self.byte(self.pos) == b':' && self.blank_or_end(self.pos + 1);
        self.pos = save;
        key
    }

    pub(super) fn flow_start(&mut self, n: isize) -> R<Start<'a>> {
        self.flow_ws(n)?;
        match self.byte(self.pos) {
            b'[' | b'{' => self.flow_open(),
            b'"' | b'\'' => Ok(Start::Scalar(Scalar::Str(self.quoted()?))),
            b'-' if !matches!(self.byte(self.pos + 1), b' ' | b'\n' | 0 | b',' | b']' | b'}') => {
                Ok(Start::Scalar(resolve(self.plain_flow(false)?)?))
            }
            c if indicator(c) || c == 0 || c == b'\n' => Err(Bail),
            _ => Ok(Start::Scalar(resolve(self.plain_flow(false)?)?)),
        }
    }

    /// A key of a block mapping, at the current position; the position ends after its `:`.
    pub(super) fn block_key(&mut self) -> R<&'a str> {
        let key = match self.byte(self.pos) {
            b'"' | b'\'' => match self.quoted()? {
                Cow::Borrowed(s) => s,
                Cow::Owned(_) => return Err(Bail),
            },
            // (`-x` is a plain key; `- ` begins a sequence.)
            c if indicator(c) && (c != b'-' || self.blank_or_end(self.pos + 1)) => return Err(Bail),
            _ => match self.plain_block() {
                (s, true) if matches!(resolve(s)?, Scalar::Str(_)) => s,
                _ => return Err(Bail),
            },
        };
        self.colon(key)
    }

    /// The `:` after a key, and checks on the key.
    pub(super) fn colon(&mut self, key: &'a str) -> R<&'a str> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(Bail);
        }
        self.skip_spaces();
        if self.byte(self.pos) != b':' || !self.blank_or_end(self.pos + 1) {
            return Err(Bail);
        }
        self.pos += 1;
        Ok(key)
    }

    /// A key of a flow mapping.
    pub(super) fn flow_key(&mut self) -> R<&'a str> {
        let key = match self.byte(self.pos) {
            b'"' | b'\'' => match self.quoted()? {
                Cow::Borrowed(s) => s,
                Cow::Owned(_) => return Err(Bail),
            },
            c if indicator(c) || c == b'\n' || c == 0 => return Err(Bail),
            _ => {
                let s = self.plain_flow(true)?;
                if !matches!(resolve(s)?, Scalar::Str(_)) {
                    return Err(Bail);
                }
                s
            }
        };
        self.colon(key)
    }
}

impl Parser<'_> {
    pub(super) fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(Bail) } else { Ok(()) }
    }

    /// A collection is done; a flow one in block context is checked like a scalar.
    pub(super) fn leave(&mut self, flow: bool, n: isize, ctx: Ctx) -> R<()> {
        self.depth -= 1;
        if flow && !matches!(ctx, Ctx::Flow) { self.check_after(n) } else { Ok(()) }
    }
}
