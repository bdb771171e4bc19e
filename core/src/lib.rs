//! The pure core of redis-sweep: everything that can be decided without a server.
//!
//! Nothing here touches `redis_module`; the module crate is a thin binding over it.

pub mod args;
pub mod cluster;
pub mod error;
pub mod glob;
pub mod minsize;
pub mod pace;
pub mod patterns;
pub mod sweep;
pub mod version;
