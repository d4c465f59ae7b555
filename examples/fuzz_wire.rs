//! The long run of the structure-aware fuzzer (kbgp::session::fuzz): valid BGP messages built
//! field by field, mutated where decoders go wrong, through the decoder and an Established
//! peer core. Exits 1 on any violation (a panic aborts the run on its own).
//!
//! ```sh
//! cargo run --release --example fuzz_wire -- 10000000        # inputs (default 10 M), one thread per core
//! cargo run --release --example fuzz_wire -- 10000000 42     # and a base seed
//! ```

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0x6b62_6770);
    let threads = std::thread::available_parallelism().map(|p| p.get()).unwrap_or(1) as u64;
    let start = Instant::now();
    let per = n.div_ceil(threads);
    let handles: Vec<_> =
        (0..threads).map(|i| std::thread::spawn(move || kbgp::session::fuzz::run(seed.wrapping_add(i), per))).collect();
    let mut failed = false;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(t) => {
                println!("thread {i} (seed {}):\n{}", seed.wrapping_add(i as u64), t.render());
                failed |= !t.violations.is_empty();
            }
            Err(_) => {
                println!("thread {i} panicked");
                failed = true;
            }
        }
    }
    println!(
        "{} inputs in {:.1} s, {}",
        per * threads,
        start.elapsed().as_secs_f64(),
        if failed { "FAILED" } else { "no violation" }
    );
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
