//! Module configs (SPEC §4): `sweep.count`, `sweep.batch`, `sweep.slice-us`, `sweep.max-jobs`,
//! `sweep.history`.

use redis_module::raw;

/// The values in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub count: u64,
    pub batch: u64,
    pub slice_us: u64,
    pub max_jobs: u64,
    pub history: u64,
}

pub const DEFAULTS: Settings = Settings {
    count: 1000,
    batch: 500,
    slice_us: 1000,
    max_jobs: 16,
    history: 64,
};

/// The values in force now.
pub fn current() -> Settings {
    DEFAULTS
}

/// Registers the configs at load time. `args` are the words after the module path on the
/// `loadmodule` line.
pub fn register(_ctx: *mut raw::RedisModuleCtx, _args: &[&[u8]]) -> Result<(), String> {
    Ok(())
}
