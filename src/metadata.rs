//! `COMMAND DOCS` / `COMMAND INFO` metadata and ACL categories of the module's commands.

use redis_module::raw;

/// Describes every registered command to the server, where the server supports it (7.0+).
pub fn describe_commands(_ctx: *mut raw::RedisModuleCtx) -> Result<(), String> {
    Ok(())
}
