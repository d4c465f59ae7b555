//! `kbgp-sink`: a minimal BGP receiver for benchmarks. It answers the OPEN, keeps the session
//! up with KEEPALIVEs, and then only frames messages and counts the prefixes in them (IPv4
//! NLRI and Withdrawn Routes, MP_REACH_NLRI and MP_UNREACH_NLRI), keeping no route table, so
//! what a sender is measured against costs next to nothing.
//!
//!   kbgp-sink --listen 127.0.1.1:179 [--listen ...] [--asn N] [--expect N] [--log-prefixes FILE]
//!
//! It prints one JSON line per session event on stdout (listening, established, expect: the
//! Nth announced prefix, eor, closed), each with the session's counters and times in
//! nanoseconds of CLOCK_MONOTONIC, which a harness outside the network namespace can compare
//! with its own clock. Anything malformed from a peer is logged and the session is closed;
//! nothing a peer sends can make it panic.

use bytes::BytesMut;
use clap::Parser;
use kbgp::wire::{self, Capability, Ctx, Family, Message, Open};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "kbgp-sink", version, about = "A BGP receiver that only counts prefixes (for benchmarks)")]
struct Opts {
    /// Address and port to listen on; repeat for more (e.g. 32 loopback addresses).
    #[arg(long, required = true)]
    listen: Vec<SocketAddr>,
    /// Our AS number (0: the same as the peer's, so every session is iBGP).
    #[arg(long, default_value_t = 0)]
    asn: u32,
    /// Our BGP identifier (default: the listening address, or 10.255.255.255 for IPv6).
    #[arg(long)]
    router_id: Option<Ipv4Addr>,
    /// Hold time we propose (0 or 3..=65535; 0 means no KEEPALIVEs at all).
    #[arg(long, default_value_t = 90)]
    hold_time: u16,
    /// Offer extended messages (RFC 8654).
    #[arg(long)]
    extended_messages: bool,
    /// Report the time of the Nth announced prefix of each session (an `expect` event).
    #[arg(long, default_value_t = 0)]
    expect: u64,
    /// Log every prefix as `MONOTONIC_NS a|w PREFIX` to this file (for churn latency).
    #[arg(long)]
    log_prefixes: Option<std::path::PathBuf>,
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One session's counters, as printed.
#[derive(Default)]
struct Counts {
    peer: String,
    local: String,
    peer_as: u32,
    accepted_ns: u64,
    established_ns: Option<u64>,
    first_update_ns: Option<u64>,
    last_update_ns: Option<u64>,
    expect_ns: Option<u64>,
    updates: u64,
    bytes: u64,
    prefixes: u64,
    withdrawals: u64,
    eor_v4_ns: Option<u64>,
    eor_v6_ns: Option<u64>,
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".to_string(), |n| n.to_string())
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Counts {
    fn line(&self, event: &str, extra: &str) -> String {
        format!(
            "{{\"event\":{},\"peer\":{},\"local\":{},\"peer_as\":{},\"t_ns\":{},\"accepted_ns\":{},\
             \"established_ns\":{},\"first_update_ns\":{},\"last_update_ns\":{},\"expect_ns\":{},\
             \"updates\":{},\"bytes\":{},\"prefixes\":{},\"withdrawals\":{},\"eor_ipv4_ns\":{},\"eor_ipv6_ns\":{}{}}}",
            json_str(event),
            json_str(&self.peer),
            json_str(&self.local),
            self.peer_as,
            now_ns(),
            self.accepted_ns,
            opt(self.established_ns),
            opt(self.first_update_ns),
            opt(self.last_update_ns),
            opt(self.expect_ns),
            self.updates,
            self.bytes,
            self.prefixes,
            self.withdrawals,
            opt(self.eor_v4_ns),
            opt(self.eor_v6_ns),
            extra
        )
    }
}

struct Shared {
    opts: Opts,
    out: Mutex<io::Stdout>,
    log: Option<Mutex<BufWriter<File>>>,
}

impl Shared {
    fn print(&self, line: &str) {
        let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    }
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let log = match &opts.log_prefixes {
        Some(p) => match File::create(p) {
            Ok(f) => Some(Mutex::new(BufWriter::with_capacity(1 << 16, f))),
            Err(e) => {
                eprintln!("kbgp-sink: {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    if opts.hold_time != 0 && opts.hold_time < 3 {
        eprintln!("kbgp-sink: --hold-time must be 0 or at least 3");
        return ExitCode::FAILURE;
    }
    let mut listeners = Vec::new();
    for addr in &opts.listen {
        match bind(*addr) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("kbgp-sink: listen {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let shared = Arc::new(Shared { opts, out: Mutex::new(io::stdout()), log });
    if shared.log.is_some() {
        // The prefix log is flushed every 100 ms, so a reader sees it while the sink runs.
        let s = shared.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(100));
                if let Some(l) = &s.log {
                    let _ = l.lock().unwrap_or_else(|e| e.into_inner()).flush();
                }
            }
        });
    }
    let addrs: Vec<String> = shared.opts.listen.iter().map(|a| json_str(&a.to_string())).collect();
    shared.print(&format!("{{\"event\":\"listening\",\"t_ns\":{},\"listen\":[{}]}}", now_ns(), addrs.join(",")));
    let mut threads = Vec::new();
    for l in listeners {
        let s = shared.clone();
        threads.push(std::thread::spawn(move || accept_loop(l, s)));
    }
    for t in threads {
        let _ = t.join();
    }
    ExitCode::SUCCESS
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    Ok(s.into())
}

fn accept_loop(l: TcpListener, s: Arc<Shared>) {
    loop {
        match l.accept() {
            Ok((stream, _)) => {
                let s = s.clone();
                std::thread::spawn(move || session(stream, &s));
            }
            Err(e) => {
                eprintln!("kbgp-sink: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Why a session ended.
enum End {
    Closed,
    Io(io::Error),
    Bad(String),
    Notification(u8, u8),
}

fn session(mut stream: TcpStream, s: &Shared) {
    let mut c = Counts {
        accepted_ns: now_ns(),
        peer: stream.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
        local: stream.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        ..Counts::default()
    };
    let _ = stream.set_nodelay(true);
    let end = run(&mut stream, s, &mut c);
    let why = match end {
        End::Closed => "peer closed the connection".to_string(),
        End::Io(e) => format!("i/o error: {e}"),
        End::Bad(w) => {
            eprintln!("kbgp-sink: {}: {w}: closing the session", c.peer);
            format!("malformed: {w}")
        }
        End::Notification(code, sub) => format!("NOTIFICATION {code}/{sub} received"),
    };
    s.print(&c.line("closed", &format!(",\"why\":{}", json_str(&why))));
}

const HEADER: usize = 19;

/// Reads until `buf[..]` holds at least one whole message; returns its length. Fails on a bad
/// header. `have` is how many octets of `buf` are filled.
fn frame(buf: &[u8], max_len: usize) -> Result<Option<(u8, usize)>, String> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    if buf[..16] != [0xff; 16] {
        return Err("header marker is not all ones".into());
    }
    let len = u16::from_be_bytes([buf[16], buf[17]]) as usize;
    let kind = buf[18];
    if !(HEADER..=max_len).contains(&len) {
        return Err(format!("message length {len} outside 19..={max_len}"));
    }
    if buf.len() < len { Ok(None) } else { Ok(Some((kind, len))) }
}

struct Conn<'a> {
    stream: &'a mut TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_len: usize,
}

impl Conn<'_> {
    /// The next whole message (type, bytes), reading as needed. `Ok(None)`: the read timed out
    /// (the caller sends a KEEPALIVE if one is due and calls again).
    fn next(&mut self) -> Result<Option<(u8, std::ops::Range<usize>)>, End> {
        loop {
            match frame(&self.buf[self.start..self.end], self.max_len) {
                Err(e) => return Err(End::Bad(e)),
                Ok(Some((kind, len))) => {
                    let r = self.start..self.start + len;
                    self.start += len;
                    return Ok(Some((kind, r)));
                }
                Ok(None) => {}
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.buf.len() - self.end < 65536 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => self.end += n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Io(e)),
            }
        }
    }
}

fn keepalive() -> [u8; HEADER] {
    let mut k = [0xffu8; HEADER];
    k[16] = 0;
    k[17] = HEADER as u8;
    k[18] = 4;
    k
}

fn run(stream: &mut TcpStream, s: &Shared, c: &mut Counts) -> End {
    let o = &s.opts;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut conn = Conn { stream, buf: vec![0u8; 1 << 20], start: 0, end: 0, max_len: wire::header::MAX_LEN };
    // Their OPEN first: our AS may follow theirs.
    let open = loop {
        match conn.next() {
            Err(e) => return e,
            Ok(None) => {
                if now_ns() - c.accepted_ns > 120_000_000_000 {
                    return End::Bad("no OPEN within 120 s".into());
                }
            }
            Ok(Some((1, r))) => match wire::decode(&conn.buf[r], &Ctx::default()) {
                Ok(Message::Open(open)) => break open,
                Ok(_) => return End::Bad("OPEN expected".into()),
                Err(e) => return End::Bad(format!("bad OPEN: {e}")),
            },
            Ok(Some((kind, _))) => return End::Bad(format!("message type {kind} before OPEN")),
        }
    };
    c.peer_as = open.asn();
    let asn = if o.asn == 0 { c.peer_as } else { o.asn };
    let id = o.router_id.unwrap_or(match conn.stream.local_addr() {
        Ok(SocketAddr::V4(a)) if *a.ip() != open.bgp_id => *a.ip(),
        _ => Ipv4Addr::new(10, 255, 255, 255),
    });
    let mut caps = vec![
        Capability::Multiprotocol(Family::IPV4_UNICAST),
        Capability::Multiprotocol(Family::IPV6_UNICAST),
        Capability::FourOctetAs(asn),
        Capability::RouteRefresh,
    ];
    if o.extended_messages {
        caps.push(Capability::ExtendedMessage);
    }
    let mut out = BytesMut::new();
    if let Err(e) = wire::encode(&Message::Open(Open::new(asn, o.hold_time, id, caps)), &Ctx::default(), &mut out) {
        return End::Bad(format!("cannot encode our OPEN: {e}"));
    }
    out.extend_from_slice(&keepalive());
    if let Err(e) = conn.stream.write_all(&out) {
        return End::Io(e);
    }
    if o.extended_messages && open.has(wire::capability::code::EXTENDED_MESSAGE) {
        conn.max_len = wire::header::MAX_EXTENDED_LEN;
    }
    let hold = if open.hold_time == 0 || o.hold_time == 0 { 0 } else { open.hold_time.min(o.hold_time) };
    let ka_every = if hold == 0 { u64::MAX } else { hold as u64 * 1_000_000_000 / 3 };
    let mut next_ka = now_ns().saturating_add(ka_every);
    let mut established = false;
    let mut line = String::new();
    loop {
        let msg = match conn.next() {
            Err(e) => return e,
            Ok(m) => m,
        };
        if ka_every != u64::MAX && now_ns() >= next_ka {
            if let Err(e) = conn.stream.write_all(&keepalive()) {
                return End::Io(e);
            }
            next_ka = now_ns() + ka_every;
        }
        let Some((kind, r)) = msg else { continue };
        match kind {
            4 => {
                if !established {
                    established = true;
                    c.established_ns = Some(now_ns());
                    s.print(&c.line("established", ""));
                }
            }
            2 => {
                if !established {
                    return End::Bad("UPDATE before the session is established".into());
                }
                let t = now_ns();
                c.first_update_ns.get_or_insert(t);
                c.last_update_ns = Some(t);
                c.updates += 1;
                c.bytes += r.len() as u64;
                let before = c.prefixes;
                let mut log = s.log.as_ref().map(|l| (l, &mut line));
                match count_update(&conn.buf[r.start + HEADER..r.end], c, t, &mut log) {
                    Err(e) => return End::Bad(e),
                    Ok(Some(family)) => {
                        if family == 2 {
                            c.eor_v6_ns = Some(t);
                        } else {
                            c.eor_v4_ns = Some(t);
                        }
                        let f = if family == 2 { "ipv6" } else { "ipv4" };
                        s.print(&c.line("eor", &format!(",\"family\":\"{f}\"")));
                    }
                    Ok(None) => {}
                }
                if o.expect > 0 && before < o.expect && c.prefixes >= o.expect {
                    c.expect_ns = Some(t);
                    s.print(&c.line("expect", &format!(",\"expect\":{}", o.expect)));
                }
            }
            3 => {
                let b = &conn.buf[r];
                let (code, sub) = (b.get(HEADER).copied().unwrap_or(0), b.get(HEADER + 1).copied().unwrap_or(0));
                return End::Notification(code, sub);
            }
            1 => return End::Bad("second OPEN".into()),
            5 => {} // ROUTE-REFRESH: we hold nothing to send.
            other => return End::Bad(format!("unknown message type {other}")),
        }
    }
}

type PrefixLog<'a> = Option<(&'a Mutex<BufWriter<File>>, &'a mut String)>;

/// Counts the prefixes of one UPDATE body into `c`. Returns the AFI of an End-of-RIB marker.
fn count_update(body: &[u8], c: &mut Counts, t: u64, log: &mut PrefixLog) -> Result<Option<u16>, String> {
    let wlen = u16_at(body, 0).ok_or("withdrawn routes length missing")? as usize;
    let withdrawn = body.get(2..2 + wlen).ok_or("withdrawn routes overrun the message")?;
    let alen = u16_at(body, 2 + wlen).ok_or("path attribute length missing")? as usize;
    let attrs = body.get(4 + wlen..4 + wlen + alen).ok_or("path attributes overrun the message")?;
    let nlri = &body[4 + wlen + alen..];
    c.withdrawals += prefixes(withdrawn, 1, false, t, log)?;
    c.prefixes += prefixes(nlri, 1, true, t, log)?;
    if wlen == 0 && alen == 0 && nlri.is_empty() {
        return Ok(Some(1));
    }
    let mut a = attrs;
    let mut only_empty_unreach = None;
    let mut n_attrs = 0;
    while !a.is_empty() {
        n_attrs += 1;
        let (flags, code) = (a[0], *a.get(1).ok_or("attribute header truncated")?);
        let (len, hl) = if flags & 0x10 != 0 {
            (u16_at(a, 2).ok_or("attribute length truncated")? as usize, 4)
        } else {
            (*a.get(2).ok_or("attribute length truncated")? as usize, 3)
        };
        let v = a.get(hl..hl + len).ok_or("attribute overruns the attribute field")?;
        match code {
            14 => {
                let afi = u16_at(v, 0).ok_or("MP_REACH_NLRI truncated")?;
                let nh = *v.get(3).ok_or("MP_REACH_NLRI truncated")? as usize;
                let rest = v.get(5 + nh..).ok_or("MP_REACH_NLRI next hop overruns")?;
                c.prefixes += prefixes(rest, afi, true, t, log)?;
            }
            15 => {
                let afi = u16_at(v, 0).ok_or("MP_UNREACH_NLRI truncated")?;
                let rest = v.get(3..).ok_or("MP_UNREACH_NLRI truncated")?;
                if rest.is_empty() {
                    only_empty_unreach = Some(afi);
                }
                c.withdrawals += prefixes(rest, afi, false, t, log)?;
            }
            _ => {}
        }
        a = &a[hl + len..];
    }
    Ok(if n_attrs == 1 && wlen == 0 && nlri.is_empty() { only_empty_unreach } else { None })
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Counts (and, with a log, records) the prefixes of one NLRI field of family `afi` (1: IPv4,
/// 2: IPv6; other AFIs are counted without checking the lengths).
fn prefixes(mut b: &[u8], afi: u16, announce: bool, t: u64, log: &mut PrefixLog) -> Result<u64, String> {
    let max = match afi {
        1 => 32,
        2 => 128,
        _ => 255,
    };
    let mut n = 0;
    while let Some((&bits, rest)) = b.split_first() {
        if bits > max {
            return Err(format!("prefix length {bits} in AFI {afi}"));
        }
        let octets = (bits as usize).div_ceil(8);
        let p = rest.get(..octets).ok_or("prefix overruns its field")?;
        if let Some((file, line)) = log.as_mut() {
            line.clear();
            let _ = write!(line, "{t} {} ", if announce { 'a' } else { 'w' });
            if afi == 2 {
                let mut a = [0u8; 16];
                a[..octets].copy_from_slice(p);
                let _ = write!(line, "{}/{bits}", Ipv6Addr::from(a));
            } else {
                let mut a = [0u8; 4];
                a[..octets.min(4)].copy_from_slice(&p[..octets.min(4)]);
                let _ = write!(line, "{}/{bits}", Ipv4Addr::from(a));
            }
            line.push('\n');
            let _ = file.lock().unwrap_or_else(|e| e.into_inner()).write_all(line.as_bytes());
        }
        n += 1;
        b = &rest[octets..];
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_v4_nlri_withdrawals_and_eor() {
        let mut c = Counts::default();
        // 1 withdrawn /24, attributes (ORIGIN), 2 NLRI /32.
        let body = [0, 4, 24, 10, 1, 0, 0, 4, 0x40, 1, 1, 0, 32, 1, 2, 3, 4, 32, 1, 2, 3, 5];
        assert_eq!(count_update(&body, &mut c, 0, &mut None), Ok(None));
        assert_eq!((c.prefixes, c.withdrawals), (2, 1));
        assert_eq!(count_update(&[0, 0, 0, 0], &mut c, 0, &mut None), Ok(Some(1)));
        // IPv6 End-of-RIB: MP_UNREACH_NLRI with AFI 2 SAFI 1 only.
        assert_eq!(count_update(&[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1], &mut c, 0, &mut None), Ok(Some(2)));
    }

    #[test]
    fn counts_mp_reach() {
        let mut c = Counts::default();
        let mut v = vec![0, 2, 1, 16];
        v.extend([0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.push(0);
        v.extend([128, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let mut body = vec![0, 0, 0, (v.len() + 3) as u8, 0x80, 14, v.len() as u8];
        body.extend(v);
        assert_eq!(count_update(&body, &mut c, 0, &mut None), Ok(None));
        assert_eq!(c.prefixes, 1);
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut c = Counts::default();
        for bad in
            [&[][..], &[0], &[0, 9, 1], &[0, 0, 0, 9, 0x40], &[0, 0, 0, 0, 33, 1, 2, 3, 4, 5], &[0, 0, 0, 0, 32, 1]]
        {
            assert!(count_update(bad, &mut c, 0, &mut None).is_err(), "{bad:?}");
        }
        // Every prefix of random-ish bytes either counts or fails, never panics.
        for seed in 0u32..2000 {
            let b: Vec<u8> =
                (0..(seed % 40)).map(|i| (seed.wrapping_mul(2654435761).rotate_left(i) & 0xff) as u8).collect();
            let _ = count_update(&b, &mut c, 0, &mut None);
            let _ = frame(&b, 4096);
        }
    }
}
