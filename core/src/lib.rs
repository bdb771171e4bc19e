//! The pure core of redis-sweep: everything that can be decided without a server.
//!
//! Nothing here touches `redis_module`; the module crate is a thin binding over it.

pub mod args;
pub mod error;
pub mod glob;
pub mod pace;
pub mod sweep;
