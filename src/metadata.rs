//! `COMMAND DOCS` / `COMMAND INFO` metadata and ACL categories of the module's commands.
//!
//! - `RedisModule_SetCommandInfo` (Redis 7.0+) gives the summary, complexity, arity and arguments:
//!   `COMMAND DOCS`, `redis-cli` hints, and arity checked by the server before the command runs.
//! - `RedisModule_SetCommandACLCategories` (Redis 7.2+) puts the commands in ACL categories.
//!   Before 7.2 module commands are in no category at all: `-@write` or `-@dangerous` does not
//!   keep a user from them, only naming the command (`-sweep.clear`) does.
//!
//! Either function missing on the running server is skipped; so is a command that is not
//! registered.

use std::ffi::{c_int, CStr};
use std::mem::size_of;
use std::ptr;

use redis_module::raw;

/// The module's own version that introduced the commands (not a server version).
const SINCE: &CStr = c"1.0.0";

#[derive(Clone, Copy)]
enum Kind {
    String,
    Integer,
    PureToken,
    /// One of the sub-arguments.
    OneOf,
}

struct ArgDef {
    name: &'static CStr,
    kind: Kind,
    token: Option<&'static CStr>,
    optional: bool,
    /// What `redis-cli` and the docs show in place of the name.
    display: Option<&'static CStr>,
    summary: &'static CStr,
    /// May be given again, token and all (`OR a OR b`): `multiple` and `multiple_token`.
    repeats: bool,
    /// The choices of a `OneOf`.
    subargs: &'static [ArgDef],
}

struct CommandDef {
    name: &'static CStr,
    summary: &'static CStr,
    complexity: &'static CStr,
    arity: c_int,
    args: &'static [ArgDef],
    /// The full set: for module commands the server derives none from the flags. So, as the
    /// server does for its own commands, the `write`/`readonly` and `fast` flags given in
    /// `redis_module!` (lib.rs) are mirrored here as `@write`/`@read` and `@fast` (else `@slow`);
    /// tests/metadata.rs checks that they agree.
    acl_categories: &'static CStr,
}

const fn option(
    name: &'static CStr,
    kind: Kind,
    token: &'static CStr,
    display: Option<&'static CStr>,
    summary: &'static CStr,
) -> ArgDef {
    ArgDef {
        name,
        kind,
        token: Some(token),
        optional: true,
        display,
        summary,
        repeats: false,
        subargs: &[],
    }
}

/// An option that may be given again, token and all (`OR a OR b`).
const fn repeated(name: &'static CStr, token: &'static CStr, summary: &'static CStr) -> ArgDef {
    ArgDef {
        repeats: true,
        ..option(name, Kind::String, token, Some(c"pattern"), summary)
    }
}

static TTL_CHOICES: [ArgDef; 2] = [
    ArgDef {
        optional: false,
        ..option(
            c"persistent",
            Kind::PureToken,
            c"PERSISTENT",
            None,
            c"Only keys without a TTL",
        )
    },
    ArgDef {
        optional: false,
        ..option(
            c"volatile",
            Kind::PureToken,
            c"VOLATILE",
            None,
            c"Only keys with a TTL",
        )
    },
];

static CLEAR_ARGS: [ArgDef; 12] = [
    ArgDef {
        name: c"pattern",
        kind: Kind::String,
        token: None,
        optional: false,
        display: None,
        summary: c"Glob pattern the key names must match, as KEYS and SCAN MATCH take",
        repeats: false,
        subargs: &[],
    },
    repeated(
        c"or",
        c"OR",
        c"Another pattern: keys matching any of the patterns are swept, in one pass",
    ),
    repeated(
        c"except",
        c"EXCEPT",
        c"Keys matching this pattern are left alone",
    ),
    option(
        c"count",
        Kind::Integer,
        c"COUNT",
        None,
        c"Keys visited per scan step (default: config sweep.count)",
    ),
    option(
        c"batch",
        Kind::Integer,
        c"BATCH",
        None,
        c"Most keys deleted per slice (default: config sweep.batch)",
    ),
    option(
        c"type",
        Kind::String,
        c"TYPE",
        None,
        c"Only keys of this type",
    ),
    option(
        c"idle",
        Kind::Integer,
        c"IDLE",
        Some(c"seconds"),
        c"Only keys not accessed for at least this many seconds",
    ),
    option(
        c"minsize",
        Kind::Integer,
        c"MINSIZE",
        Some(c"bytes"),
        c"Only keys whose MEMORY USAGE is at least this many bytes",
    ),
    ArgDef {
        name: c"ttl",
        kind: Kind::OneOf,
        token: None,
        optional: true,
        display: None,
        summary: c"Only keys without a TTL (PERSISTENT) or with one (VOLATILE)",
        repeats: false,
        subargs: &TTL_CHOICES,
    },
    option(
        c"limit",
        Kind::Integer,
        c"LIMIT",
        None,
        c"Stop after this many deletions",
    ),
    option(
        c"dryrun",
        Kind::PureToken,
        c"DRYRUN",
        None,
        c"Delete nothing, count what would be deleted",
    ),
    option(
        c"async",
        Kind::PureToken,
        c"ASYNC",
        None,
        c"Reply at once with a job id and sweep in the background",
    ),
];

static STATUS_ARGS: [ArgDef; 1] = [ArgDef {
    name: c"id",
    kind: Kind::Integer,
    token: None,
    optional: true,
    display: None,
    summary: c"Job id that SWEEP.CLEAR ... ASYNC replied",
    repeats: false,
    subargs: &[],
}];

static CANCEL_ARGS: [ArgDef; 1] = [ArgDef {
    name: c"id",
    kind: Kind::Integer,
    token: None,
    optional: false,
    display: None,
    summary: c"Job id that SWEEP.CLEAR ... ASYNC replied",
    repeats: false,
    subargs: &[],
}];

static COMMANDS: [CommandDef; 3] = [
    CommandDef {
        name: c"sweep.clear",
        summary: c"Deletes the keys whose names match a glob pattern, in slices that never block the server",
        complexity: c"O(N) where N is the number of keys in the database",
        arity: -2,
        args: &CLEAR_ARGS,
        acl_categories: c"write keyspace slow dangerous",
    },
    CommandDef {
        name: c"sweep.status",
        summary: c"Shows running and recent sweeps, or one sweep by id",
        complexity: c"O(N) where N is the number of jobs shown",
        arity: -1,
        args: &STATUS_ARGS,
        acl_categories: c"read fast",
    },
    CommandDef {
        name: c"sweep.cancel",
        summary: c"Stops a running sweep after its current slice",
        complexity: c"O(1)",
        arity: 2,
        args: &CANCEL_ARGS,
        acl_categories: c"write fast dangerous",
    },
];

/// Describes every registered command to the server, where the server supports it (7.0+).
pub fn describe_commands(ctx: *mut raw::RedisModuleCtx) -> Result<(), String> {
    // SAFETY: reading function pointers the server filled in before `RedisModule_OnLoad`.
    let (get_command, set_info, set_acl) = unsafe {
        (
            raw::RedisModule_GetCommand,
            raw::RedisModule_SetCommandInfo,
            raw::RedisModule_SetCommandACLCategories,
        )
    };
    let Some(get_command) = get_command else {
        return Ok(()); // Redis 6.x: no command metadata at all.
    };
    for def in &COMMANDS {
        // SAFETY: `ctx` is the OnLoad context and the name a NUL-terminated 'static string.
        let command = unsafe { get_command(ctx, def.name.as_ptr()) };
        if command.is_null() {
            continue; // not registered (yet): nothing to describe
        }
        let shown = def.name.to_string_lossy();
        if let Some(set_info) = set_info {
            let mut nested = Vec::new();
            let mut args = raw_args(def.args, &mut nested);
            let version = raw::RedisModuleCommandInfoVersion {
                version: 1,
                sizeof_historyentry: size_of::<raw::RedisModuleCommandHistoryEntry>(),
                sizeof_keyspec: size_of::<raw::RedisModuleCommandKeySpec>(),
                sizeof_arg: size_of::<raw::RedisModuleCommandArg>(),
            };
            let info = raw::RedisModuleCommandInfo {
                version: &version,
                summary: def.summary.as_ptr(),
                complexity: def.complexity.as_ptr(),
                since: SINCE.as_ptr(),
                history: ptr::null_mut(),
                tips: ptr::null(),
                arity: def.arity,
                key_specs: ptr::null_mut(), // the commands take no key arguments
                args: args.as_mut_ptr(),
            };
            // SAFETY: `command` is non-null and belongs to this module; `info`, `version` and
            // the zero-terminated `args` array (whose strings are 'static) outlive the call,
            // and the server copies everything it keeps.
            let status = unsafe { set_info(command, &info) };
            if status != raw::REDISMODULE_OK as c_int {
                return Err(format!(
                    "the server refused the command info of {shown} (see the line above)"
                ));
            }
        }
        if let Some(set_acl) = set_acl {
            // SAFETY: `command` is non-null and belongs to this module, we are in OnLoad, and
            // the categories are a NUL-terminated 'static string.
            let status = unsafe { set_acl(command, def.acl_categories.as_ptr()) };
            if status != raw::REDISMODULE_OK as c_int {
                return Err(format!(
                    "the server refused the ACL categories '{}' of {shown}",
                    def.acl_categories.to_string_lossy()
                ));
            }
        }
    }
    Ok(())
}

/// The server's form of `defs`, terminated by a zeroed element. The arrays of sub-arguments
/// are pushed to `nested`, which must outlive the use of the result (moving a `Vec` into it
/// does not move its heap buffer, so the pointers stay valid).
fn raw_args(
    defs: &[ArgDef],
    nested: &mut Vec<Vec<raw::RedisModuleCommandArg>>,
) -> Vec<raw::RedisModuleCommandArg> {
    let mut args: Vec<raw::RedisModuleCommandArg> = Vec::with_capacity(defs.len() + 1);
    for def in defs {
        let subargs = if def.subargs.is_empty() {
            ptr::null_mut()
        } else {
            let mut sub = raw_args(def.subargs, nested);
            let p = sub.as_mut_ptr();
            nested.push(sub);
            p
        };
        let mut flags = if def.optional {
            raw::REDISMODULE_CMD_ARG_OPTIONAL
        } else {
            raw::REDISMODULE_CMD_ARG_NONE
        };
        if def.repeats {
            flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE | raw::REDISMODULE_CMD_ARG_MULTIPLE_TOKEN;
        }
        args.push(raw::RedisModuleCommandArg {
            name: def.name.as_ptr(),
            type_: match def.kind {
                Kind::String => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
                Kind::Integer => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
                Kind::PureToken => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
                Kind::OneOf => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_ONEOF,
            },
            key_spec_index: -1,
            token: def.token.map_or(ptr::null(), CStr::as_ptr),
            summary: def.summary.as_ptr(),
            since: ptr::null(),
            flags: flags as c_int,
            deprecated_since: ptr::null(),
            subargs,
            display_text: def.display.map_or(ptr::null(), CStr::as_ptr),
        });
    }
    args.push(raw::RedisModuleCommandArg {
        name: ptr::null(),
        type_: 0,
        key_spec_index: 0,
        token: ptr::null(),
        summary: ptr::null(),
        since: ptr::null(),
        flags: 0,
        deprecated_since: ptr::null(),
        subargs: ptr::null_mut(),
        display_text: ptr::null(),
    });
    args
}
