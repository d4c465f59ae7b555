//! # source — where the World comes from
//!
//! Today: a static file ([`file`]), reloaded on SIGHUP or when it changes. The Kubernetes
//! watchers join here later; both produce the same [`World`](crate::config::World).

pub mod file;
pub mod kube;

pub use file::FileSource;
