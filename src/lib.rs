//! redis-sweep: delete keys by glob pattern inside the server, in slices that never block it.
//!
//! This crate is the binding: command handlers that parse, start and reply, and the registration
//! with the server. The logic lives in `sweep-core`; every call into the server is in `server`.

mod config;
mod jobs;
mod metadata;
mod server;

use redis_module::{
    redis_module, Context, RedisError, RedisResult, RedisString, RedisValue, Status,
};
use sweep_core::args::ClearArgs;
use sweep_core::error::SweepError;

fn to_redis(e: SweepError) -> RedisError {
    match e {
        SweepError::WrongArity => RedisError::WrongArity,
        other => RedisError::String(other.to_string()),
    }
}

/// SWEEP.CLEAR pattern [COUNT n] [BATCH m]
fn clear_command(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let words: Vec<&[u8]> = args.iter().skip(1).map(RedisString::as_slice).collect();
    let parsed = ClearArgs::parse(&words).map_err(to_redis)?;
    jobs::start_blocking(ctx.ctx, parsed).map_err(to_redis)?;
    // The reply comes when the sweep ends.
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
        .and_then(|()| server::subscribe(ctx.ctx, api));
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
    match jobs::deinit(api) {
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
        // `write`: replicas answer -READONLY, CLIENT PAUSE WRITE and min-replicas apply.
        // `deny-script`: a script cannot wait for a blocked command. No `deny-oom`: deleting
        // is how memory comes back.
        ["sweep.clear", clear_command, "write deny-script", 0, 0, 0, ""],
    ],
}
