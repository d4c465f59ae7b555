//! # kbgp — a BGP-4 speaker for Kubernetes service IPs
//!
//! # Layout
//!
//! Data flows one way, and everything between the sockets is pure:
//!
//! ```text
//! config/ + source/ ──> World ──> ipam/ ──> plan/ ──> rib/ (Adj-RIB-Out) ──> session/ (FSM) ──> wire/ ──> TCP
//! ```
//!
//! | module | role |
//! |---|---|
//! | [`admin`] | the admin API's documents, its client and the CLI's tables (`kbgp peers`, `routes`, `why`) |
//! | [`config`] | the object model read from files (and later the API server), defaults, validation with field paths |
//! | [`source`] | where the World comes from: static files (with reload) or the Kubernetes API (watchers) |
//! | [`ipam`] | LB IPAM: addresses for LoadBalancer Services from the pools, deterministic |
//! | [`plan`] | `plan(node, world)`: for each peer of this node, the routes to announce and why |
//! | [`rib`] | per-peer Adj-RIB-Out (desired vs. sent, UPDATE packing) and bounded Adj-RIB-In |
//! | [`session`] | the RFC 4271 §8 FSM, sans-IO: inputs and a virtual clock in, actions out |
//! | [`wire`] | the codec: bytes <-> messages, errors <-> NOTIFICATIONs |
//! | [`daemon`] | the thin tokio layer: sockets, timers, signals, reload, metrics endpoint |
//! | [`metrics`] | Prometheus series |
//! | [`lab`] | tooling: containerlab topologies in network namespaces (`kbgp-lab`) |

pub mod admin;
pub mod config;
pub mod daemon;
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
