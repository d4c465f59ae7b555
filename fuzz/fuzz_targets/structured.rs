//! libFuzzer over the structure-aware generator: the input picks the seed, so the fuzzer's
//! corpus is a set of seeds, each a structured message mutated at its fields and checked by
//! the oracle of kbgp::session::fuzz (decoder and peer core).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut seed = [0u8; 8];
    for (i, b) in data.iter().take(8).enumerate() {
        seed[i] = *b;
    }
    let t = kbgp::session::fuzz::run(u64::from_le_bytes(seed), 4);
    assert!(t.violations.is_empty(), "{}", t.render());
});
