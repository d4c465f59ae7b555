//! # health — local health checks that gate what is announced (the control-plane VIP)
//!
//! | file | what |
//! |---|---|
//! | `verdict.rs` | from check results to healthy / not healthy: rise, fall, timeouts, a stalled checker, startup grace |
//! | `monitor.rs` | every check of the node: which run (following the configuration), their generations and verdicts |
//!
//! Both are sans-IO: the checks themselves (HTTPS, HTTP, TCP) run in `daemon/health.rs`,
//! which hands each result here with the time; the verdicts decide, and the daemon puts the
//! set of healthy VirtualIPs into the World it plans.

pub mod monitor;
pub mod verdict;

pub use monitor::Monitor;
pub use verdict::{Change, Outcome, Policy, Record, Verdict};
