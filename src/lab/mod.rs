//! # lab — containerlab topologies in network namespaces
//!
//! Tooling, not part of the speaker: `kbgp-lab` reads a containerlab `.clab.yml` and builds the
//! same lab on a plain Linux host (`topology.rs` parses, `netns.rs` builds), so the one topology
//! file runs both under containerlab and in CI. `apiserver.rs` and `client.rs` are the control-plane
//! VIP lab's stand-in API server and its client.

pub mod apiserver;
pub mod client;
pub mod netns;
pub mod topology;

pub use netns::Runner;
pub use topology::{Role, Topology};

#[cfg(test)]
mod tests;
