//! # session — one BGP peer, without sockets or clocks
//!
//! | file | what | RFC |
//! |---|---|---|
//! | `fsm.rs` | states, events, timers, collision detection | 4271 §8, §6.8; 6286 §2.3; 6608 |
//! | `negotiate.rs` | our OPEN, checks on theirs, what both decide | 4271 §6.2; 5492; 6793; 4760 §8 |
//! | `backoff.rs` | reconnect delays with jitter | 4271 §10 |
//! | `config.rs` | per-session settings | |
//! | `peer.rs` | one peer, sans-IO: FSM + Adj-RIB-In + Adj-RIB-Out + End-of-RIB, refresh and reset sequencing | 4271 §9.2; 4724 §2; 2918; 7313; 7606 |
//! | `peer_status.rs` | a peer as the admin API shows it | |
//! | `speaker.rs` | every peer and the groups' tables: a plan applied as the difference | |

pub mod backoff;
pub mod config;
pub mod fsm;
pub mod fuzz;
pub mod negotiate;
pub mod peer;
mod peer_status;
pub mod speaker;

pub use config::{PeerKey, PeerSettings, SessionConfig};
pub use fsm::{ConnId, Fsm, Input, Output, SessionError, State};
pub use negotiate::Negotiated;

#[cfg(test)]
mod pair;
#[cfg(test)]
mod tests;
