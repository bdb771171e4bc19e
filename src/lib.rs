//! redis-sweep: delete keys by glob pattern inside the server, in slices that never block it.
//!
//! This crate is the binding: command handlers that parse, start and reply, and the registration
//! with the server. The logic lives in `sweep-core`; every call into the server is in `server`.

mod cluster;
mod config;
mod jobs;
mod metadata;
mod server;

use std::ffi::{c_int, CStr};

use redis_module::{raw, Context, RedisError, RedisResult, RedisString, RedisValue, Status};
use sweep_core::args::{job_id, ClearArgs};
use sweep_core::error::SweepError;

fn to_redis(e: SweepError) -> RedisError {
    match e {
        SweepError::WrongArity => RedisError::WrongArity,
        other => RedisError::String(other.to_string()),
    }
}

fn loaded() -> Result<&'static server::Api, RedisError> {
    server::api().ok_or(RedisError::Str("ERR the module is not loaded"))
}

/// SWEEP.CLEAR pattern [COUNT n] [BATCH m] [TYPE type] [IDLE seconds] [LIMIT max] [DRYRUN] [ASYNC]
/// [LOCAL]
fn clear_command(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let words: Vec<&[u8]> = args.iter().skip(1).map(RedisString::as_slice).collect();
    let parsed = ClearArgs::parse(&words).map_err(to_redis)?;
    let started = match cluster::clear(ctx.ctx, &words, &parsed).map_err(to_redis)? {
        Some(started) => started,
        None => jobs::start(ctx.ctx, parsed).map_err(to_redis)?,
    };
    match started {
        // The reply comes when the sweep ends.
        jobs::Started::Blocking => Ok(RedisValue::NoReply),
        jobs::Started::Async(id) => Ok(RedisValue::Integer(i64::try_from(id).unwrap_or(i64::MAX))),
    }
}

/// SWEEP.STATUS [id]
fn status_command(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let api = loaded()?;
    match args.get(1..).unwrap_or_default() {
        [] => {
            let mut all = jobs::status_all();
            let cluster = cluster::status_all();
            if !cluster.is_empty() {
                // Newest first, the cluster sweeps among the local jobs (one id sequence).
                let local_id = |fields: &[(&str, server::Value)]| match fields.first() {
                    Some((_, server::Value::Int(id))) => u64::try_from(*id).unwrap_or(0),
                    _ => 0,
                };
                let mut merged: Vec<(u64, Vec<(&'static str, server::Value)>)> =
                    all.into_iter().map(|f| (local_id(&f), f)).collect();
                merged.extend(cluster);
                merged.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
                all = merged.into_iter().map(|(_, f)| f).collect();
            }
            api.reply_array(ctx.ctx, all.len());
            for fields in &all {
                api.reply_fields(ctx.ctx, fields);
            }
        }
        [id] => {
            let id = job_id(id.as_slice()).map_err(to_redis)?;
            let fields = match cluster::status_of(id) {
                Some(fields) => fields,
                None => jobs::status_of(id).map_err(to_redis)?,
            };
            api.reply_fields(ctx.ctx, &fields);
        }
        _ => return Err(RedisError::WrongArity),
    }
    Ok(RedisValue::NoReply)
}

/// SWEEP.CANCEL id
fn cancel_command(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let api = loaded()?;
    let [_, id] = args.as_slice() else {
        return Err(RedisError::WrongArity);
    };
    let id = job_id(id.as_slice()).map_err(to_redis)?;
    let fields = match cluster::cancel(ctx.ctx, id) {
        Some(result) => result.map_err(to_redis)?,
        None => jobs::cancel(ctx.ctx, id).map_err(to_redis)?,
    };
    api.reply_fields(ctx.ctx, &fields);
    Ok(RedisValue::NoReply)
}

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    let api = match server::Api::load() {
        Ok(api) => api,
        Err(missing) => {
            ctx.log_warning(&format!(
                "redis-sweep cannot load: this server lacks {}",
                missing.join(", ")
            ));
            return Status::Err;
        }
    };
    // SPEC §7: Redis 7.0 and later. A server without the 7.0 event-loop API (6.x) is refused.
    if !api.has_event_loop() {
        let version = ctx.get_redis_version().map_or("unknown".into(), |v| {
            format!("{}.{}.{}", v.major, v.minor, v.patch)
        });
        ctx.log_warning(&format!(
            "redis-sweep cannot load: it needs Redis 7.0 or later (the 7.0 module API), \
             and this server is Redis {version}"
        ));
        return Status::Err;
    }
    let words: Vec<&[u8]> = args.iter().map(RedisString::as_slice).collect();
    let setup = config::register(ctx.ctx, &words)
        .and_then(|()| metadata::describe_commands(ctx.ctx))
        .and_then(|()| jobs::init(api))
        .and_then(|()| cluster::init(ctx.ctx))
        .and_then(|()| server::subscribe(ctx.ctx, api))
        .and_then(|()| api.register_info(ctx.ctx));
    if let Err(e) = setup {
        ctx.log_warning(&format!("redis-sweep cannot load: {e}"));
        return Status::Err;
    }
    ctx.log_notice(&format!("redis-sweep: {}", api.mechanism.describe()));
    Status::Ok
}

fn deinit(ctx: &Context) -> Status {
    let Some(api) = server::api() else {
        return Status::Ok;
    };
    match cluster::deinit(ctx.ctx).and_then(|()| jobs::deinit(api, ctx.ctx)) {
        Ok(()) => Status::Ok,
        Err(e) => {
            ctx.log_warning(&format!("redis-sweep refuses to unload: {e}"));
            Status::Err
        }
    }
}

/// The Redis allocator for everything the module allocates, so `INFO memory` and `maxmemory` see it.
#[global_allocator]
static ALLOCATOR: redis_module::alloc::RedisAlloc = redis_module::alloc::RedisAlloc;

/// The module's name on `MODULE LIST` and in `MODULE UNLOAD`.
const NAME: &CStr = c"sweep";
/// `MODULE LIST`'s version: the crate's semver encoded as Redis modules do (1.2.3 is 10203).
const VERSION: c_int = sweep_core::version::encode(env!("CARGO_PKG_VERSION"));

type CommandHandler = fn(&Context, Vec<RedisString>) -> RedisResult;

/// Decodes the arguments, runs the handler and sends what it returned (handlers that reply
/// themselves return `NoReply`).
fn dispatch(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
    handler: CommandHandler,
) -> c_int {
    let context = Context::new(ctx);
    let args = redis_module::decode_args(ctx, argv, argc);
    context.reply(handler(&context, args)) as c_int
}

/// The `extern "C"` entry point the server calls for a command handler.
macro_rules! entry_point {
    ($name:ident, $handler:ident) => {
        extern "C" fn $name(
            ctx: *mut raw::RedisModuleCtx,
            argv: *mut *mut raw::RedisModuleString,
            argc: c_int,
        ) -> c_int {
            dispatch(ctx, argv, argc, $handler)
        }
    };
}

entry_point!(sweep_clear, clear_command);
entry_point!(sweep_status, status_command);
entry_point!(sweep_cancel, cancel_command);

/// The commands and their flags.
/// - `sweep.clear` is `write`: replicas answer -READONLY, CLIENT PAUSE WRITE and min-replicas
///   apply. No `deny-script`: scripts may start ASYNC sweeps; a blocking one is refused by the
///   command itself wherever the server cannot block (DENY_BLOCKING, MULTI, Lua flags). No
///   `deny-oom`: deleting is how memory comes back.
/// - `sweep.cancel` is `write`: cancelling ends a job that writes; a replica has none to cancel.
const COMMANDS: [(&CStr, server::CommandFn, &CStr); 3] = [
    (c"sweep.clear", sweep_clear, c"write"),
    (c"sweep.status", sweep_status, c"readonly fast"),
    (c"sweep.cancel", sweep_cancel, c"write fast"),
];

/// Called by the server on `loadmodule` / `MODULE LOAD`.
///
/// Written by hand rather than with the `redis_module!` macro of `redis-module` 2.0.8: the
/// macro's load path keeps a detached thread-safe context for its logger (about 17 KB with its
/// fake client) that nothing frees at unload, so every `MODULE UNLOAD` / `MODULE LOAD` cycle
/// leaked it. The module logs through its own contexts and needs none of it.
///
/// # Safety
/// Called by the server only, with its load context and arguments.
#[no_mangle]
pub unsafe extern "C" fn RedisModule_OnLoad(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    // SAFETY: `ctx` is the server's load context; this fills the API table first of all.
    if !unsafe { server::init_module(ctx, NAME, VERSION) } {
        return raw::REDISMODULE_ERR as c_int;
    }
    let context = Context::new(ctx);
    let args = redis_module::decode_args(ctx, argv, argc);
    for (name, handler, flags) in COMMANDS {
        if let Err(e) = server::create_command(ctx, name, handler, flags) {
            context.log_warning(&format!("redis-sweep cannot load: {e}"));
            return raw::REDISMODULE_ERR as c_int;
        }
    }
    init(&context, &args) as c_int
}

/// Called by the server on `MODULE UNLOAD`; a non-OK answer keeps the module loaded.
#[no_mangle]
pub extern "C" fn RedisModule_OnUnload(ctx: *mut raw::RedisModuleCtx) -> c_int {
    deinit(&Context::new(ctx)) as c_int
}
