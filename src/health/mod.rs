//! # health — local health checks that gate what is announced (the control-plane VIP)
//!
//! | file | what |
//! |---|---|
//! | `verdict.rs` | from check results to healthy / not healthy: rise, fall, timeouts, a stalled checker, startup grace; sans-IO |
//!
//! The checks themselves (HTTPS, HTTP, TCP) and the `VirtualIP` kind that uses them come
//! with issue 12; the verdict is what decides, and it knows no clock and no socket.

pub mod verdict;

pub use verdict::{Outcome, Policy, Verdict};
