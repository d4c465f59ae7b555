//! # rib — what each peer is sent and what it sent us
//!
//! | file | what |
//! |---|---|
//! | `export.rs` | an originated route → the attributes one session sends (iBGP/eBGP rules, next hop self) |
//! | `out_table.rs` | the routes of one export group, shared by its peers: a versioned change log each peer drains by cursor |
//! | `adj_rib_out.rs` | per-peer Adj-RIB-Out: a cursor into the table and one bit per route, UPDATE packing (RFC 4271 §9.2) |
//! | `adj_rib_in.rs` | per-peer Adj-RIB-In: received routes, bounded, with loop checks (RFC 4271 §9.1.2, RFC 4456 §8) |

pub mod adj_rib_in;
pub mod adj_rib_out;
pub mod export;
pub mod out_table;

pub use adj_rib_in::AdjRibIn;
pub use adj_rib_out::{AdjRibOut, Encoding, Flushed};
pub use export::{AdvertAttrs, Advertisement, ExportCtx, NextHop};
pub use out_table::OutTable;
