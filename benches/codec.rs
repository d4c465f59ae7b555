//! Codec throughput: /32 and /128 prefixes per second on one core, encoded into UPDATEs with
//! `kbgp::wire::update::write_announcements` (the packer the Adj-RIB-Out uses) and decoded
//! back with `kbgp::wire::decode`, against a yardstick measured in the same run: copying the
//! same encoded octets (what any sender pays at least to hand them to the kernel).
//!
//!   cargo bench --bench codec
//!
//! Criterion measures; at the end the bench reads criterion's estimates and prints a markdown
//! table with the rates and their ratio to the yardstick.

use bytes::BytesMut;
use criterion::{Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use kbgp::wire::attribute::{AsPath, MpNextHop, Origin};
use kbgp::wire::header::{self, MAX_EXTENDED_LEN, MAX_LEN};
use kbgp::wire::update::write_announcements;
use kbgp::wire::{Ctx, Family, Message, Nlri, PathAttributes};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

const N: usize = 100_000;

fn ctx(max_len: usize) -> Ctx {
    Ctx { four_octet_as: true, max_len, ..Ctx::default() }
}

/// What kbgp puts on an iBGP route: ORIGIN IGP, empty AS_PATH, LOCAL_PREF 100.
fn ibgp_attrs(next_hop: Option<Ipv4Addr>, c: &Ctx) -> BytesMut {
    let p = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::empty()),
        local_pref: Some(100),
        next_hop,
        ..Default::default()
    };
    let mut b = BytesMut::new();
    p.encode(c, &mut b);
    b
}

fn v4_prefixes() -> Vec<Nlri> {
    let base = u32::from(Ipv4Addr::new(100, 64, 0, 0));
    (0..N as u32).map(|i| Nlri::new(IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(base + i), 32)))).collect()
}

fn v6_prefixes() -> Vec<Nlri> {
    let base = u128::from("fd00:100::".parse::<Ipv6Addr>().expect("v6"));
    (0..N as u128).map(|i| Nlri::new(IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(base + i), 128)))).collect()
}

struct Case {
    /// Criterion's group name (also its directory under target/criterion).
    id: &'static str,
    name: &'static str,
    family: Family,
    mp: Option<MpNextHop>,
    attrs: BytesMut,
    prefixes: Vec<Nlri>,
    ctx: Ctx,
}

impl Case {
    fn encode(&self, out: &mut BytesMut) -> usize {
        write_announcements(self.family, self.mp.as_ref(), &self.attrs, &self.prefixes, &self.ctx, out).expect("encode")
    }
}

fn cases() -> Vec<Case> {
    let nh4 = Ipv4Addr::new(10, 0, 0, 2);
    let mut v = Vec::new();
    for (id, name, max) in [
        ("ipv4_32_4096", "IPv4 /32, 4096-octet UPDATEs", MAX_LEN),
        ("ipv4_32_65535", "IPv4 /32, 65535-octet UPDATEs (RFC 8654)", MAX_EXTENDED_LEN),
    ] {
        let c = ctx(max);
        v.push(Case {
            id,
            name,
            family: Family::IPV4_UNICAST,
            mp: None,
            attrs: ibgp_attrs(Some(nh4), &c),
            prefixes: v4_prefixes(),
            ctx: c,
        });
    }
    let c = ctx(MAX_LEN);
    v.push(Case {
        id: "ipv6_128_4096",
        name: "IPv6 /128 in MP_REACH_NLRI, 4096-octet UPDATEs",
        family: Family::IPV6_UNICAST,
        mp: Some(MpNextHop::V6 { global: "fd00::2".parse().expect("v6"), link_local: None }),
        attrs: ibgp_attrs(None, &c),
        prefixes: v6_prefixes(),
        ctx: c,
    });
    v
}

/// Splits a buffer of whole messages into the message slices.
fn split(buf: &[u8], max_len: usize) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let mut rest = buf;
    while let Ok(Some(h)) = header::peek_header(rest, max_len) {
        v.push(&rest[..h.len]);
        rest = &rest[h.len..];
    }
    assert!(rest.is_empty(), "encoded buffer does not frame");
    v
}

fn decode_all(msgs: &[&[u8]], c: &Ctx) -> usize {
    let mut n = 0;
    for m in msgs {
        match kbgp::wire::decode(m, c) {
            Ok(Message::Update(u)) => n += u.nlri.len() + u.mp_reach.map_or(0, |r| r.nlri.prefixes().len()),
            other => panic!("not an UPDATE: {other:?}"),
        }
    }
    n
}

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).parent().map(PathBuf::from).unwrap_or_else(|| "target".into())
}

fn bench(c: &mut Criterion, cases: &[Case]) {
    for case in cases {
        let mut encoded = BytesMut::with_capacity(N * 24);
        let msgs = case.encode(&mut encoded);
        let frames = split(&encoded, case.ctx.max_len);
        assert_eq!(frames.len(), msgs);
        assert_eq!(decode_all(&frames, &case.ctx), N, "round trip lost prefixes");
        let mut g = c.benchmark_group(case.id);
        g.throughput(Throughput::Elements(N as u64));
        let mut out = BytesMut::with_capacity(encoded.len() * 2);
        g.bench_function("encode", |b| {
            b.iter(|| {
                out.clear();
                black_box(case.encode(&mut out));
            })
        });
        g.bench_function("decode", |b| b.iter(|| black_box(decode_all(black_box(&frames), &case.ctx))));
        g.bench_function("copy", |b| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(&encoded));
                black_box(out.len())
            })
        });
        g.finish();
        println!("{}: {} prefixes in {} UPDATEs, {} octets", case.name, N, msgs, encoded.len());
    }
}

/// Criterion's mean time per iteration (ns) of group/bench, from its estimates file.
fn mean_ns(dir: &std::path::Path, group: &str, bench: &str) -> Option<f64> {
    let f = dir.join(group).join(bench).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).ok()?).ok()?;
    v.pointer("/mean/point_estimate")?.as_f64()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it (and with
    // arguments criterion rejects): then only check that every case round-trips.
    if !std::env::args().any(|a| a == "--bench") {
        for case in cases() {
            let mut out = BytesMut::new();
            let msgs = case.encode(&mut out);
            let frames = split(&out, case.ctx.max_len);
            assert_eq!((frames.len(), decode_all(&frames, &case.ctx)), (msgs, N), "{}", case.name);
        }
        println!("codec bench: every case round-trips (run `cargo bench --bench codec` to measure)");
        return;
    }
    let dir = target_dir().join("criterion");
    let mut c = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let cases = cases();
    bench(&mut c, &cases);
    c.final_summary();
    // The table, from what criterion just measured (absent when a filter skipped a bench).
    println!(
        "\n| prefixes (100,000 per iteration) | encode | decode | copy (yardstick) | encode time / copy time | decode time / copy time |"
    );
    println!("|---|---|---|---|---|---|");
    let rate = |ns: f64| N as f64 / (ns * 1e-9);
    let m = |r: f64| format!("{:.1} M/s", r / 1e6);
    for case in &cases {
        let get = |b| mean_ns(&dir, case.id, b).map(rate);
        let (Some(e), Some(d), Some(y)) = (get("encode"), get("decode"), get("copy")) else {
            println!("| {} | (not measured in this run) | | | | |", case.name);
            continue;
        };
        println!("| {} | {} | {} | {} | {:.0}× | {:.0}× |", case.name, m(e), m(d), m(y), y / e, y / d);
    }
    println!("\ntarget (issue 10): encode >= 50 M prefixes/s per core");
}
