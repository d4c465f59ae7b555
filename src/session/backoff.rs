//! Retry delays with exponential backoff and jitter (RFC 4271 §10: jitter the ConnectRetry
//! timer by a random factor in 0.75..=1.0). The random source is seeded by the caller, so
//! tests are deterministic.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff { min, max: max.max(min), failures: 0, rng: seed | 1 }
    }

    /// xorshift64*: enough randomness to spread reconnects, no dependency.
    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.min.saturating_mul(1u32 << self.failures.min(20));
        self.failures = self.failures.saturating_add(1);
        let base = exp.min(self.max);
        // Factor in [0.75, 1.0].
        let frac = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(0.75 + 0.25 * frac)
    }

    /// A session stayed up: start again from the shortest delay.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(120), 42);
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (i, x) in d.iter().enumerate() {
            let base = Duration::from_secs((1u64 << i).min(120));
            assert!(*x <= base && *x >= base.mul_f64(0.75), "attempt {i}: {x:?} vs {base:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_differs_between_seeds() {
        let a = Backoff::new(Duration::from_secs(8), Duration::from_secs(8), 1).next_delay();
        let b = Backoff::new(Duration::from_secs(8), Duration::from_secs(8), 2).next_delay();
        assert_ne!(a, b);
    }
}
