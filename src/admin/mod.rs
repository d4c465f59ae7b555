//! # admin — the operator's view: the admin API's documents, its client, and how the CLI
//! prints them
//!
//! `kbgp run` serves the API on a Unix socket (`daemon/admin.rs`); `kbgp peers`, `kbgp routes`,
//! `kbgp why`, `kbgp reset` and `kbgp refresh` are clients of it.
//!
//! | file | what |
//! |---|---|
//! | `api.rs` | the JSON documents and paths, version 1 |
//! | `client.rs` | HTTP/1.1 over the Unix socket, blocking: the CLI needs no runtime |
//! | `render.rs` | tables and the `why` explanation, for people |

pub mod api;
pub mod client;
pub mod render;
