//! redis-sweep: delete keys by glob pattern inside the server, in slices that never block it.
//!
//! This crate is the binding: command handlers that parse, start and reply, and the registration
//! with the server. The logic lives in `sweep-core`; every call into the server is in `server`.

mod cluster;
mod config;
mod jobs;
mod metadata;
mod server;

use redis_module::{
    redis_module, Context, RedisError, RedisResult, RedisString, RedisValue, Status,
};
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
    if !api.has_event_loop() {
        ctx.log_notice(
            "redis-sweep: this server has no event-loop hooks (Redis 7.0+); \
             slices are driven by timers and sweeps run slower",
        );
    }
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

redis_module! {
    name: "sweep",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [],
    init: init,
    deinit: deinit,
    commands: [
        // `write`: replicas answer -READONLY, CLIENT PAUSE WRITE and min-replicas apply. No
        // `deny-script`: scripts may start ASYNC sweeps; a blocking one is refused by the
        // command itself wherever the server cannot block (DENY_BLOCKING, MULTI, Lua flags).
        // No `deny-oom`: deleting is how memory comes back.
        ["sweep.clear", clear_command, "write", 0, 0, 0, ""],
        ["sweep.status", status_command, "readonly fast", 0, 0, 0, ""],
        // `write`: cancelling ends a job that writes; a replica has none to cancel anyway.
        ["sweep.cancel", cancel_command, "write fast", 0, 0, 0, ""],
    ],
}
