//! # kbgp — a BGP-4 speaker for Kubernetes service IPs
//!
//! # Layout
//!
//! Data flows one way, and everything between the sockets is pure:
//!
//! ```text
//! config/ + source/ ──> World ──> ipam/ ──> plan/ (Planner) ──> rib/ (OutTable per group, Adj-RIB-Out per peer)
//!                    ──> session/ (Speaker, Peer: FSM + RIBs + sequencing) ──> wire/ ──> daemon/ (the driver) ──> TCP
//! ```
//!
//! | module | role |
//! |---|---|
//! | [`admin`] | the admin API's documents, its client and the CLI's tables (`kbgp peers`, `routes`, `why`) |
//! | [`bfd`] | BFD (RFC 5880): the Control packet and one session's state machine, sans-IO |
//! | [`config`] | the object model read from files (and later the API server), defaults, validation with field paths |
//! | [`source`] | where the World comes from: static files (with reload) or the Kubernetes API (watchers) |
//! | [`health`] | local health checks' verdicts (rise, fall, stalled checker), sans-IO: what gates the control-plane VIP |
//! | [`ipam`] | LB IPAM: addresses for LoadBalancer Services from the pools, deterministic |
//! | [`plan`] | this node's peers and export groups, and a planner that keeps their routes up to date from each World, and why |
//! | [`rib`] | the shared table of each export group, the per-peer Adj-RIB-Out over it (cursor, UPDATE packing), bounded Adj-RIB-In |
//! | [`session`] | the RFC 4271 §8 FSM and the peer core around it, sans-IO: inputs and a virtual clock in, bytes and actions out |
//! | [`wire`] | the codec: bytes <-> messages, errors <-> NOTIFICATIONs |
//! | [`daemon`] | the thin tokio layer: the peer driver (sockets, timers), signals, reload, metrics endpoint |
//! | [`metrics`] | Prometheus series |
//! | [`lab`] | tooling: containerlab topologies in network namespaces (`kbgp-lab`) |

pub mod admin;
pub mod bfd;
pub mod config;
pub mod daemon;
pub mod health;
pub mod ipam;
pub mod lab;
pub mod metrics;
pub mod plan;
pub mod rib;
pub mod session;
pub mod source;
pub mod wire;

#[cfg(test)]
mod test_fixtures;
