//! libFuzzer target: `decode` must never panic, whatever the bytes and the negotiated context,
//! and whatever decodes cleanly must re-encode to something that decodes the same.
//! Run: `cargo fuzz run decode -- -max_total_time=300` (CI runs a bounded property test instead).
#![no_main]

use kbgp::wire::{Ctx, Family, Message, decode, header, to_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let ctx = Ctx {
        four_octet_as: flags & 1 != 0,
        max_len: if flags & 2 != 0 { header::MAX_EXTENDED_LEN } else { header::MAX_LEN },
        ebgp: flags & 4 != 0,
        add_path_rx: if flags & 8 != 0 { vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST] } else { vec![] },
        add_path_tx: vec![],
    };
    // Give the body a valid header half of the time, so the fuzzer reaches the parsers.
    let mut buf = Vec::with_capacity(rest.len() + 19);
    if flags & 16 != 0 && !rest.is_empty() {
        buf.extend_from_slice(&header::MARKER);
        buf.extend_from_slice(&((rest.len() + 18) as u16).to_be_bytes());
        buf.extend_from_slice(rest);
    } else {
        buf.extend_from_slice(rest);
    }
    if let Ok(m) = decode(&buf, &ctx) {
        let clean = !matches!(&m, Message::Update(u) if !u.errors.is_empty());
        // Re-encode as the peer would have: sending path identifiers where we receive them.
        let peer = Ctx { add_path_tx: ctx.add_path_rx.clone(), ..ctx.clone() };
        if clean && let Ok(again) = to_bytes(&m, &peer) {
            assert_eq!(decode(&again, &ctx).ok(), Some(m));
        }
    }
});
