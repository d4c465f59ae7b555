//! # session — one BGP peer's state machine, without sockets or clocks
//!
//! | file | what | RFC |
//! |---|---|---|
//! | `fsm.rs` | states, events, timers, collision detection | 4271 §8, §6.8; 6286 §2.3; 6608 |
//! | `negotiate.rs` | our OPEN, checks on theirs, what both decide | 4271 §6.2; 5492; 6793; 4760 §8 |
//! | `backoff.rs` | reconnect delays with jitter | 4271 §10 |
//! | `config.rs` | per-session settings | |

pub mod backoff;
pub mod config;
pub mod fsm;
pub mod negotiate;

pub use config::SessionConfig;
pub use fsm::{ConnId, Fsm, Input, Output, SessionError, State};
pub use negotiate::Negotiated;

#[cfg(test)]
mod pair;
#[cfg(test)]
mod tests;
